#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/report/sweep.hpp"
#include "tools/moesim/commands.hpp"
#include "tools/moesim/console.hpp"

namespace moesim::cli {

namespace {

struct SweepCommandOptions {
  std::string scenario;
  std::vector<std::string> vary;
  std::vector<std::string> overrides;
  std::optional<double> duration_s;
  bool zip = false;
  std::string out;
  std::size_t jobs = std::max(1u, std::thread::hardware_concurrency());
  std::string shard;
  bool quiet = false;
  bool reproducible = false;
};

struct MergeCommandOptions {
  std::vector<std::string> inputs;
  std::string out;
  bool quiet = false;
};

std::string clock_text(double seconds) {
  const auto whole = static_cast<long>(seconds + 0.5);
  return whole >= 3600 ? fmt::format("{}h{:02}m{:02}s", whole / 3600, whole / 60 % 60, whole % 60)
                       : fmt::format("{}m{:02}s", whole / 60, whole % 60);
}

std::string metric_text(const nlohmann::json& value, const char* format) {
  return value.is_number() ? fmt::format(fmt::runtime(format), value.get<double>()) : "-";
}

// The summary's key columns, one line per point.
void print_summary_table(const std::filesystem::path& directory) {
  const nlohmann::json summary = JsonReader::parse_file(directory / "summary.json");
  std::vector<std::size_t> widths;
  std::string header = fmt::format("{:>5}", "point");
  for (const auto& key : summary["keys"]) {
    widths.push_back(std::max<std::size_t>(8, key.get<std::string>().size()));
    header += fmt::format("  {:>{}}", key.get<std::string>(), widths.back());
  }
  header += fmt::format("  {:>8}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}", "req/s", "drop", "ttft p99", "tpot p50",
                        "tpot p99", "e2e p99");
  fmt::print("{}\n", header);
  for (const auto& point : summary["points"]) {
    std::string line = fmt::format("{:>5}", point["index"].get<std::size_t>());
    for (std::size_t k = 0; k < widths.size(); ++k) {
      const auto& value = point["values"][summary["keys"][k].get<std::string>()];
      line += fmt::format("  {:>{}}", value.is_string() ? value.get<std::string>() : value.dump(), widths[k]);
    }
    const auto& m = point["metrics"];
    line += fmt::format("  {:>8}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
                        metric_text(m["requests_per_s"], "{:.2f}"), metric_text(m["drop_rate"], "{:.4f}"),
                        metric_text(m["ttft_p99_s"], "{:.4f}"), metric_text(m["tpot_p50_s"], "{:.4f}"),
                        metric_text(m["tpot_p99_s"], "{:.4f}"), metric_text(m["e2e_p99_s"], "{:.3f}"));
    fmt::print("{}\n", line);
  }
}

void sweep(const SweepCommandOptions& options) {
  std::vector<SweepAxis> axes;
  for (const auto& option : options.vary)
    axes.push_back(parse_vary(option));
  std::vector<std::string> overrides = options.overrides;
  if (options.duration_s) {
    overrides.push_back(duration_override(*options.duration_s));
  }
  const SweepManifest manifest =
      make_manifest(options.scenario, overrides, options.zip ? SweepMode::zip : SweepMode::cross, axes);
  SweepOptions sweep_options;
  sweep_options.jobs = options.jobs;
  sweep_options.reproducible = options.reproducible;
  if (!options.shard.empty()) sweep_options.shard = parse_shard(options.shard);

  const auto start = std::chrono::steady_clock::now();
  const auto elapsed_s = [&start] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  ProgressLine progress(options.quiet);
  if (progress.enabled()) {
    sweep_options.progress = [&](std::size_t done, std::size_t total) {
      const double elapsed = elapsed_s();
      const std::string eta =
          done == 0 ? "?"
                    : clock_text(elapsed / static_cast<double>(done) * static_cast<double>(total - done));
      progress.update(fmt::format("points {}/{}  elapsed {}  ETA {}", done, total, clock_text(elapsed), eta));
    };
  }
  const SweepOutcome outcome = run_sweep(manifest, options.out, sweep_options);
  progress.finish();
  if (options.quiet) return;
  print_summary_table(options.out);
  fmt::print("sweep     {} points", outcome.points);
  if (!options.shard.empty()) fmt::print(", shard {}: {}", options.shard, outcome.in_shard);
  fmt::print("; {} run, {} already done; {:.1f} s wall with {} jobs\n", outcome.ran, outcome.skipped,
             elapsed_s(), options.jobs);
  fmt::print("summary   {} ({} points)\n", (std::filesystem::path(options.out) / "summary.csv").string(),
             outcome.summarised);
}

void merge(const MergeCommandOptions& options) {
  std::vector<std::filesystem::path> inputs(options.inputs.begin(), options.inputs.end());
  const MergeOutcome outcome = merge_sweeps(inputs, options.out);
  if (!outcome.missing.empty()) {
    std::string listed;
    for (std::size_t i = 0; i < outcome.missing.size() && i < 10; ++i) {
      listed += fmt::format("{}{}", i > 0 ? ", " : "", outcome.missing[i]);
    }
    if (outcome.missing.size() > 10) listed += ", ...";
    fmt::print(stderr, "moesim: warning: {} of {} points have no report yet (points {})\n",
               outcome.missing.size(), outcome.points, listed);
  }
  if (!options.quiet) {
    fmt::print("merged    {} of {} points into {}\n", outcome.present, outcome.points, options.out);
    fmt::print("summary   {}\n", (std::filesystem::path(options.out) / "summary.csv").string());
  }
}

}  // namespace

void add_sweep_commands(CLI::App& app) {
  auto options = std::make_shared<SweepCommandOptions>();
  CLI::App* sweep_command =
      app.add_subcommand("sweep", "Run a scenario over a grid of overrides, in parallel, into one directory");
  sweep_command->add_option("scenario", options->scenario, "Scenario file (JSON)")->required();
  sweep_command
      ->add_option(
          "--vary", options->vary,
          "key=v1,v2,..., key=start:stop:step or key=start:stop (stop included when on the grid); repeatable")
      ->required();
  sweep_command->add_flag("--zip", options->zip,
                          "Pair the --vary lists element by element instead of their cross product");
  sweep_command->add_option("--set", options->overrides,
                            "Override a scenario key for every point: key=value");
  sweep_command->add_option("--duration", options->duration_s,
                            "Simulate only the first S seconds of arrivals (sets workload.duration_s)");
  sweep_command
      ->add_option("--out", options->out, "Sweep directory (created; resumed if it holds this sweep)")
      ->required();
  sweep_command->add_option("--jobs,-j", options->jobs, "Points run at once (default: the number of cores)")
      ->check(CLI::Range(1, 4096));
  sweep_command->add_option("--shard", options->shard,
                            "i/N: run only the points whose index % N == i (i from 0); join with merge");
  sweep_command->add_flag("--quiet,-q", options->quiet, "No progress and no summary table");
  sweep_command->add_flag("--reproducible", options->reproducible,
                          "Write wall-clock figures as 0 so reruns give byte-identical reports");
  sweep_command->callback([options] { sweep(*options); });

  auto merge_options = std::make_shared<MergeCommandOptions>();
  CLI::App* merge_command =
      app.add_subcommand("merge", "Join sweep directories (shards) and write the combined summary");
  merge_command->add_option("dirs", merge_options->inputs, "Sweep directories with the same sweep.json")
      ->required();
  merge_command->add_option("--out", merge_options->out, "Output directory (may be one of the inputs)")
      ->required();
  merge_command->add_flag("--quiet,-q", merge_options->quiet, "Print nothing on success");
  merge_command->callback([merge_options] { merge(*merge_options); });
}

}  // namespace moesim::cli
