#include <cstdio>
#include <exception>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sim/common/error.hpp"
#include "tools/moesim/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"moesim: discrete-event simulator for capacity planning of Mixture-of-Experts LLM serving"};
  app.require_subcommand(1);
  moesim::cli::add_run_commands(app);
  moesim::cli::add_bench_command(app);
  moesim::cli::add_trace_commands(app);
  moesim::cli::add_models_commands(app);
  moesim::cli::add_calibrate_commands(app);
  moesim::cli::add_sweep_commands(app);
  moesim::cli::add_routing_commands(app);
  moesim::cli::add_topology_commands(app);
  moesim::cli::add_report_commands(app);
  moesim::cli::add_plan_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // CLI11 reports --help as a "success" exit; everything else is a usage error.
    const int code = app.exit(error);
    return code == 0 ? moesim::kExitOk : moesim::kExitInputError;
  } catch (const moesim::InputError& error) {
    fmt::print(stderr, "moesim: error: {}\n", error.what());
    return moesim::kExitInputError;
  } catch (const std::exception& error) {
    fmt::print(stderr, "moesim: internal error: {}\n", error.what());
    return moesim::kExitInternalError;
  }
  return moesim::kExitOk;
}
