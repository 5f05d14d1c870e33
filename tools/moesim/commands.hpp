#pragma once

#include <CLI/CLI.hpp>

// Each group of `moesim` subcommands registers itself on the application.
// A callback prints its results to stdout and reports bad input by throwing
// moesim::InputError; main() turns that into a message on stderr and exit code 2.
namespace moesim::cli {

void add_run_commands(CLI::App& app);        // run, validate
void add_bench_command(CLI::App& app);       // bench
void add_trace_commands(CLI::App& app);      // trace inspect
void add_models_commands(CLI::App& app);     // models import-hf, models show
void add_calibrate_commands(CLI::App& app);  // calibrate fit, calibrate check
void add_sweep_commands(CLI::App& app);      // sweep, merge
void add_routing_commands(CLI::App& app);    // routing inspect
void add_topology_commands(CLI::App& app);   // topology inspect
void add_report_commands(CLI::App& app);     // report --html
void add_plan_command(CLI::App& app);        // plan

}  // namespace moesim::cli
