#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/report/plan.hpp"
#include "tools/moesim/commands.hpp"
#include "tools/moesim/console.hpp"

namespace moesim::cli {

namespace {

// Rejected points printed before the rest is left to the --out file.
constexpr std::size_t kRejectedLines = 40;

struct PlanCommandOptions {
  std::string scenario;
  std::vector<std::string> slos;
  std::optional<double> max_drop_rate;
  double max_incomplete_rate = 0;
  std::vector<std::string> searches;
  std::vector<std::string> monotone;
  std::vector<std::string> prices;
  std::vector<std::string> overrides;
  std::optional<double> duration_s;
  std::size_t jobs = std::max(1u, std::thread::hardware_concurrency());
  bool exhaustive = false;
  bool full_frontier = false;
  std::string out;
  std::string reports;
  bool quiet = false;
};

PlanSpec make_spec(const PlanCommandOptions& options) {
  PlanSpec spec;
  spec.scenario_file = options.scenario;
  spec.overrides = options.overrides;
  if (options.duration_s) {
    spec.overrides.push_back(duration_override(*options.duration_s));
  }
  for (const auto& option : options.searches)
    spec.dimensions.push_back(parse_search(option));
  for (const auto& label : options.monotone)
    mark_monotone(spec.dimensions, label);
  for (const auto& option : options.slos)
    spec.slos.push_back(parse_slo(option));
  spec.max_drop_rate = options.max_drop_rate;
  spec.max_incomplete_rate = options.max_incomplete_rate;
  for (const auto& option : options.prices)
    add_gpu_price(spec.price_per_gpu_hour, option);
  spec.exhaustive = options.exhaustive;
  spec.full_frontier = options.full_frontier;
  spec.report_directory = options.reports;
  return spec;
}

std::string cost_text(const PlanSpec& spec, const PlanPoint& point) {
  return spec.price_per_gpu_hour.empty() ? fmt::format("{} GPUs", point.gpus)
                                         : fmt::format("{} GPUs, {:.2f}/h", point.gpus, point.cost);
}

// Seconds for the SLOs, a plain fraction for the rates.
std::string check_value(const ObjectiveCheck& check, double value) {
  const bool rate = check.name == "drop_rate" || check.name == "incomplete_rate";
  return rate ? fmt::format("{:.4g}", value) : fmt::format("{:.4g} s", value);
}

std::string checks_text(const PlanPoint& point, bool only_failed) {
  std::string text;
  for (const auto& check : point.checks) {
    if (only_failed && check.met()) continue;
    if (!text.empty()) text += "; ";
    text += fmt::format("{} {} {} {}", check.name, check_value(check, check.value), check.met() ? "<=" : ">",
                        check_value(check, check.limit));
    if (!check.met() && check.limit > 0)
      text += fmt::format(" (+{:.0f} %)", 100 * (check.value / check.limit - 1));
  }
  return text;
}

void print_frontier(const PlanSpec& spec, const PlanResult& result) {
  const auto bisected = result.bisected;
  fmt::print("frontier  {}\n", bisected
                                   ? fmt::format("smallest passing {} for each combination of the others",
                                                 spec.dimensions[*bisected].label())
                                   : std::string("every combination"));
  for (const auto& entry : result.frontier) {
    const PlanPoint& first = result.points[entry.points.front()];
    std::string combination;
    for (std::size_t d = 0; d < spec.dimensions.size(); ++d) {
      if (d == bisected) continue;
      if (!combination.empty()) combination += ", ";
      combination += spec.dimensions[d].label() + "=" + first.values[d].dump();
    }
    if (combination.empty()) combination = "(all)";
    std::string outcome;
    if (entry.point) {
      const PlanPoint& point = result.points[*entry.point];
      outcome =
          fmt::format("point {}: {}{}: {}", point.index,
                      bisected ? spec.dimensions[*bisected].label() + "=" + point.values[*bisected].dump()
                               : std::string("passes"),
                      entry.status == FrontierStatus::found ? "" : " (passes; smaller values not searched)",
                      cost_text(spec, point));
      outcome += "; " + checks_text(point, false);
    } else {
      outcome = std::string(frontier_status_name(entry.status));
    }
    fmt::print("  {:<40} {}\n", combination, outcome);
  }
}

void print_rejected(const PlanSpec& spec, const PlanResult& result) {
  std::size_t printed = 0;
  std::size_t rejected = 0;
  for (const auto& point : result.points) {
    std::string why;
    switch (point.status) {
      case PointStatus::failed:
        why = checks_text(point, true);
        break;
      case PointStatus::invalid:
        why = fmt::format("{}: {}", status_name(point.status), point.reason);
        break;
      default:
        continue;
    }
    ++rejected;
    if (printed == 0) fmt::print("rejected\n");
    if (printed < kRejectedLines) {
      fmt::print("  point {} ({}): {}\n", point.index, describe_plan_point(spec, point), why);
      ++printed;
    }
  }
  if (rejected > printed) fmt::print("  ... {} more (see the --out file)\n", rejected - printed);
}

void plan(const PlanCommandOptions& options) {
  const PlanSpec spec = make_spec(options);
  const auto start = std::chrono::steady_clock::now();
  ProgressLine progress(options.quiet);
  PlanOptions plan_options;
  plan_options.jobs = options.jobs;
  if (progress.enabled()) {
    plan_options.progress = [&](std::size_t round, std::size_t simulated, std::size_t round_done,
                                std::size_t round_size) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      progress.update(fmt::format("round {}: {}/{} points  simulated {}  elapsed {:.0f} s", round, round_done,
                                  round_size, simulated, elapsed));
    };
  }
  const PlanResult result = run_plan(spec, plan_options);
  progress.finish();
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!options.out.empty()) write_file_atomically(options.out, plan_json(spec, result).dump(2) + "\n");
  if (options.quiet) return;

  fmt::print("plan      {} points in the grid, {} simulated in {} rounds ({}); {:.1f} s wall with {} jobs\n",
             result.points.size(), result.simulated, result.rounds,
             spec.exhaustive   ? std::string("exhaustive")
             : result.bisected ? fmt::format("bisection over {}", spec.dimensions[*result.bisected].label())
                               : std::string("cheapest first"),
             wall_s, options.jobs);
  if (result.chosen) {
    const PlanPoint& point = result.points[*result.chosen];
    fmt::print("chosen    point {}: {}: {}\n", point.index, describe_plan_point(spec, point),
               cost_text(spec, point));
    fmt::print("          {}\n", checks_text(point, false));
  } else {
    fmt::print("chosen    none: no point of the grid meets the objectives\n");
  }
  print_frontier(spec, result);
  print_rejected(spec, result);
  if (!options.out.empty()) fmt::print("plan file {}\n", options.out);
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto options = std::make_shared<PlanCommandOptions>();
  CLI::App* command = app.add_subcommand(
      "plan", "Find the cheapest deployment that meets latency SLOs on the scenario's workload");
  command->add_option("scenario", options->scenario, "Scenario file (JSON)")->required();
  command->add_option("--slo", options->slos,
                      "METRIC_STAT=TIME, e.g. ttft_p99=2s, tpot_p99=100ms (ttft|tpot|e2e|queue, "
                      "mean|p50|p90|p99|p999|max, s|ms|us); repeatable");
  command->add_option("--max-drop-rate", options->max_drop_rate,
                      "Largest acceptable MoE drop rate (dropped over routed assignments)");
  command->add_option("--max-incomplete-rate", options->max_incomplete_rate,
                      "Largest acceptable share of rejected or unfinished requests (default 0)");
  command
      ->add_option(
          "--search", options->searches,
          "key=v1,v2,... or key=start:stop:step, or key1+key2=values to set keys together; repeatable")
      ->required();
  command->add_option(
      "--monotone", options->monotone,
      "A searched key whose growth never hurts the SLOs (e.g. deployment.instances): bisected");
  command->add_option("--price-per-gpu-hour", options->prices,
                      "PRICE, or GPU=PRICE per GPU name: rank by cost per hour instead of GPU count");
  command->add_option("--set", options->overrides, "Override a scenario key for every point: key=value");
  command->add_option("--duration", options->duration_s,
                      "Simulate only the first S seconds of arrivals (sets workload.duration_s)");
  command->add_option("--jobs,-j", options->jobs, "Points simulated at once (default: the number of cores)")
      ->check(CLI::Range(1, 4096));
  command->add_flag("--exhaustive", options->exhaustive,
                    "Simulate every valid point (brute force) instead of bisecting and pruning");
  command->add_flag("--full-frontier", options->full_frontier,
                    "Do not prune combinations that can only cost more than the best point");
  command->add_option("--out", options->out, "Write the plan as JSON (points, checks, frontier)");
  command->add_option("--reports", options->reports,
                      "Directory for the report of every simulated point (point-<index>.json)");
  command->add_flag("--quiet,-q", options->quiet, "No progress and no printed plan");
  command->callback([options] { plan(*options); });
}

}  // namespace moesim::cli
