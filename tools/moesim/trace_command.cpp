#include <cstdint>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/workload/trace_source.hpp"
#include "sim/workload/trace_statistics.hpp"
#include "sim/workload/trace_writer.hpp"
#include "sim/workload/workload.hpp"
#include "tools/moesim/commands.hpp"

namespace moesim::cli {

namespace {

struct InspectOptions {
  std::string file;
  std::string format;
  double spread_buckets_s = 0.0;
  bool json = false;
};

struct GenerateOptions {
  std::string workload_file;
  std::string output_file;
  std::uint64_t seed = 1;
};

void print_lengths(std::string_view name, const LengthSummary& summary) {
  fmt::print("{:<18}mean {:.1f}  p50 {:.0f}  p99 {:.1f}  max {}\n", name, summary.mean, summary.p50,
             summary.p99, summary.max);
}

void inspect(const InspectOptions& options) {
  const TraceFormat format = options.format.empty() ? guess_trace_format(options.file)
                                                    : parse_trace_format(options.format, "--format");
  TraceSpec trace;
  trace.file = default_trace_file_spec(format, options.file);
  trace.spread_buckets_s = options.spread_buckets_s;
  WorkloadSpec limits;
  TraceSource source(trace, limits);
  const TraceStatistics statistics = compute_trace_statistics(source);
  if (options.json) {
    nlohmann::json json = to_json(statistics);
    json["file"] = options.file;
    json["format"] = trace_format_name(format);
    fmt::print("{}\n", json.dump(2));
    return;
  }
  fmt::print("{} ({})\n", options.file, trace_format_name(format));
  fmt::print("{:<18}{}\n", "rows", statistics.rows);
  fmt::print("{:<18}{:.1f} s\n", "span", statistics.span_s);
  fmt::print("{:<18}{:.3f} req/s\n", "mean rate", statistics.mean_rate_per_s);
  fmt::print("{:<18}{:.3f}\n", "inter-arrival CV", statistics.interarrival_cv);
  print_lengths("prompt tokens", statistics.input);
  print_lengths("output tokens", statistics.output);
  if (statistics.prefix_blocks > 0) {
    fmt::print("{:<18}{:.1f} % of {} block ids\n", "repeated blocks",
               100.0 * statistics.repeated_block_fraction, statistics.prefix_blocks);
  }
}

void generate(const GenerateOptions& options) {
  const std::filesystem::path file(options.workload_file);
  const nlohmann::json document = JsonReader::parse_file(file);
  const WorkloadSpec spec = parse_workload(JsonReader(document, file.string()), file.parent_path());
  if (std::holds_alternative<ClosedLoopSpec>(spec.source)) {
    throw InputError(file.string(), "kind",
                     "a closed-loop workload depends on completions and cannot be written");
  }
  const auto source = make_request_source(spec, options.seed);
  write_file_atomically(options.output_file, write_generic_csv(*source));
}

}  // namespace

void add_trace_commands(CLI::App& app) {
  CLI::App* trace = app.add_subcommand("trace", "Inspect and generate request traces");
  trace->require_subcommand(1);

  auto inspect_options = std::make_shared<InspectOptions>();
  CLI::App* inspect_command = trace->add_subcommand(
      "inspect", "Rows, span, rate, inter-arrival CV, token lengths and prefix reuse of a trace");
  inspect_command->add_option("file", inspect_options->file, "trace file")->required();
  inspect_command->add_option("--format", inspect_options->format,
                              "azure, mooncake, csv or jsonl (default: guessed from the file)");
  inspect_command->add_option(
      "--spread-buckets-s", inspect_options->spread_buckets_s,
      "spread requests with equal timestamps over this many seconds (default 0: as written)");
  inspect_command->add_flag("--json", inspect_options->json, "print the figures as JSON");
  inspect_command->callback([inspect_options] { inspect(*inspect_options); });

  auto generate_options = std::make_shared<GenerateOptions>();
  CLI::App* generate_command = trace->add_subcommand(
      "generate", "Write a synthetic workload (a JSON \"workload\" object) as a generic CSV trace");
  generate_command
      ->add_option("workload", generate_options->workload_file, "JSON file holding the workload object")
      ->required();
  generate_command->add_option("-o,--output", generate_options->output_file, "CSV file to write")->required();
  generate_command->add_option("--seed", generate_options->seed, "random seed (default 1)");
  generate_command->callback([generate_options] { generate(*generate_options); });
}

}  // namespace moesim::cli
