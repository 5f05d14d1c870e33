#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/config/scenario.hpp"
#include "sim/report/chrome_trace.hpp"
#include "sim/report/report.hpp"
#include "tools/moesim/commands.hpp"
#include "tools/moesim/console.hpp"

namespace moesim::cli {

namespace {

struct RunOptions {
  std::string scenario;
  std::vector<std::string> overrides;
  std::string report;
  std::optional<std::uint64_t> seed;
  bool quiet = false;
  bool reproducible = false;
  std::string chrome_trace;
  double chrome_trace_start_s = 0;
  double chrome_trace_duration_s = 10;
  std::size_t chrome_trace_max_events = ChromeTraceOptions{}.max_events;
};

std::optional<ChromeTraceWriter> make_chrome_trace(const RunOptions& options) {
  if (options.chrome_trace.empty()) return std::nullopt;
  if (!std::isfinite(options.chrome_trace_start_s) || options.chrome_trace_start_s < 0) {
    throw InputError("--chrome-trace-start", "", "expected simulated seconds >= 0");
  }
  if (!std::isfinite(options.chrome_trace_duration_s) || options.chrome_trace_duration_s <= 0 ||
      options.chrome_trace_duration_s > 1e9) {
    throw InputError("--chrome-trace-duration", "", "expected simulated seconds > 0 (at most 1e9)");
  }
  return std::optional<ChromeTraceWriter>(
      std::in_place, options.chrome_trace,
      ChromeTraceOptions{.start = seconds_to_ns(options.chrome_trace_start_s),
                         .duration = seconds_to_ns(options.chrome_trace_duration_s),
                         .max_events = options.chrome_trace_max_events});
}

std::filesystem::path report_path(const RunOptions& options, const Scenario& scenario) {
  if (!options.report.empty()) return options.report;
  if (!scenario.outputs.report.empty()) return scenario.outputs.report;
  return scenario.name + ".report.json";
}

void print_summary(const nlohmann::json& report, const std::filesystem::path& path) {
  const auto& summary = report["summary"];
  const auto& requests = summary["requests"];
  fmt::print("requests    arrived {}  completed {}  rejected {}  unfinished {}\n",
             requests["arrived"].get<std::uint64_t>(), requests["completed"].get<std::uint64_t>(),
             requests["rejected"].get<std::uint64_t>(), requests["unfinished"].get<std::uint64_t>());
  fmt::print("throughput  {:.1f} req/s  {:.0f} input tok/s  {:.0f} output tok/s  on {} GPUs\n",
             summary["throughput"]["requests_per_s"].get<double>(),
             summary["throughput"]["input_tokens_per_s"].get<double>(),
             summary["throughput"]["output_tokens_per_s"].get<double>(), summary["gpus"].get<int>());
  for (const char* metric : {"ttft_s", "tpot_s", "e2e_s", "queue_s"}) {
    const auto& m = summary[metric];
    fmt::print("{:<11} mean {:.4f}  p50 {:.4f}  p90 {:.4f}  p99 {:.4f}  max {:.4f}\n", metric,
               m["mean"].get<double>(), m["p50"].get<double>(), m["p90"].get<double>(),
               m["p99"].get<double>(), m["max"].get<double>());
  }
  if (!report["moe"].is_null()) {
    const auto& moe = report["moe"];
    fmt::print(
        "moe         drop rate {:.5f}  expert max/mean {:.2f} (p99 {:.2f})  rank max/mean {:.2f} (p99 "
        "{:.2f})\n",
        moe["drop_rate"].get<double>(), moe["imbalance"]["expert_max_over_mean"]["mean"].get<double>(),
        moe["imbalance"]["expert_max_over_mean"]["p99"].get<double>(),
        moe["imbalance"]["rank_max_over_mean"]["mean"].get<double>(),
        moe["imbalance"]["rank_max_over_mean"]["p99"].get<double>());
  }
  if (report.contains("disaggregation")) {
    const auto& split = report["disaggregation"];
    for (const char* kind : {"prefill", "decode"}) {
      const auto& group = split[kind];
      fmt::print("{:<11} {} instance(s) on {} GPUs  {} steps  utilization {:.2f}  preemptions {}\n", kind,
                 group["instances"].get<int>(), group["gpus"].get<int>(), group["steps"].get<std::uint64_t>(),
                 group["utilization"].get<double>(), group["preemptions"].get<std::uint64_t>());
    }
    const auto& kv = split["kv_transfer"];
    fmt::print("kv transfer {} done  {:.2f} MB mean  wait p99 {:.4f} s  transfer p50 {:.4f} p99 {:.4f} s\n",
               kv["completed"].get<std::uint64_t>(), kv["mean_bytes"].get<double>() / 1e6,
               kv["wait_s"]["p99"].get<double>(), kv["transfer_s"]["p50"].get<double>(),
               kv["transfer_s"]["p99"].get<double>());
  }
  const auto& simulator = report["simulator"];
  fmt::print("simulator   {:.2f} s wall  {} events  {:.0f} simulated s\n", simulator["wall_s"].get<double>(),
             simulator["events"].get<std::uint64_t>(), simulator["sim_time_s"].get<double>());
  fmt::print("report      {}\n", path.string());
}

void run(const RunOptions& options) {
  const Scenario scenario = load_scenario(options.scenario, options.overrides, options.seed);
  const auto path = report_path(options, scenario);
  SimulationInputs inputs = simulation_inputs(scenario);
  std::optional<ChromeTraceWriter> trace = make_chrome_trace(options);
  if (trace) inputs.timeline = &*trace;
  ProgressLine progress(options.quiet);
  if (progress.enabled()) {
    inputs.progress = [&progress](const SimulationProgress& p) {
      progress.update(fmt::format("simulated {:.0f} s  arrived {}  completed {}  steps {}",
                                  ns_to_seconds(p.now), p.arrived, p.completed, p.steps));
    };
  }
  const auto start = std::chrono::steady_clock::now();
  const SimulationResult result = simulate(inputs);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.finish();
  SimulatorCost cost{
      .wall_s = wall_s, .peak_rss_bytes = peak_rss_bytes(), .reproducible = options.reproducible};
  const nlohmann::json report = build_report(scenario, result, cost);
  if (trace) trace->finish();
  write_file_atomically(path, render_report(report));
  if (options.quiet) return;
  print_summary(report, path);
  if (trace) {
    fmt::print("trace       {} ({} steps, {} events{})\n", options.chrome_trace, trace->steps(),
               trace->events(), trace->truncated() ? ", stopped at --chrome-trace-max-events" : "");
  }
}

void validate(const std::string& file, const std::vector<std::string>& overrides) {
  const Scenario scenario = load_scenario(file, overrides);
  fmt::print("{}: valid\n", file);
  fmt::print("  model      {} ({:.1f} B params, {:.1f} B active per token)\n", scenario.model.name,
             scenario.model.derived.total_params / 1e9, scenario.model.derived.active_params_per_token / 1e9);
  fmt::print("  cluster    {} ({} GPUs of {})\n", scenario.cluster.name,
             scenario.cluster.nodes * scenario.cluster.gpus_per_node, scenario.gpu.name);
  std::vector<std::pair<std::string, const DeploymentSpec*>> groups{{"deployment", &scenario.deployment}};
  if (scenario.disaggregation) {
    groups = {{"prefill", &scenario.disaggregation->prefill}, {"decode", &scenario.disaggregation->decode}};
  }
  for (const auto& [name, group] : groups) {
    const auto& layout = group->layout;
    const MemoryPlan memory = plan_memory(scenario.model, scenario.gpu, layout, group->gpu_memory_utilization,
                                          group->activation_reserve_bytes);
    fmt::print("  {:<10} {} instance(s) x {} GPUs: attention TP{} x DP{}, experts EP{} x TP{}\n", name,
               group->instances, layout.gpus(), layout.attention_tp, layout.attention_dp, layout.expert_ep,
               layout.expert_tp);
    fmt::print("  memory     {:.1f} GB weights, {:.1f} GB KV cache per GPU = {} tokens per attention rank\n",
               memory.weight_bytes / 1e9, memory.kv_cache_bytes / 1e9, memory.kv_token_capacity);
  }
}

}  // namespace

void add_run_commands(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* run_command = app.add_subcommand("run", "Replay a scenario and write its JSON report");
  run_command->add_option("scenario", options->scenario, "Scenario file (JSON)")->required();
  run_command->add_option("--set", options->overrides,
                          "Override a scenario key: path.to.key=value (repeatable)");
  run_command->add_option("--report", options->report,
                          "Report file (default: outputs.report or NAME.report.json)");
  run_command->add_option("--seed", options->seed, "Random seed (replaces the scenario's)");
  run_command->add_flag("--quiet,-q", options->quiet, "No progress and no summary");
  run_command->add_flag("--reproducible", options->reproducible,
                        "Write wall-clock figures as 0 so identical runs give byte-identical reports");
  run_command->add_option(
      "--chrome-trace", options->chrome_trace,
      "Write a window of the timeline (per EP rank and layer) as a Chrome/Perfetto trace");
  run_command->add_option("--chrome-trace-start", options->chrome_trace_start_s,
                          "Start of the trace window (simulated s, default 0)");
  run_command->add_option("--chrome-trace-duration", options->chrome_trace_duration_s,
                          "Length of the trace window (simulated s, default 10)");
  run_command
      ->add_option("--chrome-trace-max-events", options->chrome_trace_max_events,
                   "Most events in the trace (default 250000)")
      ->check(CLI::PositiveNumber);
  run_command->callback([options] { run(*options); });

  auto validate_options = std::make_shared<RunOptions>();
  CLI::App* validate_command = app.add_subcommand("validate", "Check a scenario without running it");
  validate_command->add_option("scenario", validate_options->scenario, "Scenario file (JSON)")->required();
  validate_command->add_option("--set", validate_options->overrides,
                               "Override a scenario key: path.to.key=value");
  validate_command->callback(
      [validate_options] { validate(validate_options->scenario, validate_options->overrides); });
}

}  // namespace moesim::cli
