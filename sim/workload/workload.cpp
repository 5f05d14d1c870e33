#include "sim/workload/workload.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"
#include "sim/workload/closed_loop_source.hpp"
#include "sim/common/line_reader.hpp"
#include "sim/workload/synthetic_source.hpp"
#include "sim/workload/trace_source.hpp"

namespace moesim {

namespace {

constexpr std::int64_t kMaxTokens = 2147483647;
// Assumption: Mooncake's conversation trace quantises arrivals to ~3 s (SOURCE.md of mooncake-fast25:
// 1,180 distinct values about 3 s apart), so by default a bucket's requests are spread over 3 s.
constexpr double kMooncakeBucketSeconds = 3.0;
constexpr std::int32_t kMooncakeBlockTokens = 512;

const std::vector<std::string> kFormatNames = {"azure", "mooncake", "csv", "jsonl"};
const std::vector<std::string> kUnitNames = {"s", "ms", "us", "ns", "datetime"};
const std::vector<std::string> kZeroOutputNames = {"one_token", "skip", "error"};
const std::vector<std::string> kLengthKindNames = {"fixed", "uniform", "lognormal", "empirical", "geometric"};

template <typename Enum>
Enum from_index(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<Enum>(std::find(names.begin(), names.end(), name) - names.begin());
}

template <typename Enum>
const std::string& to_name(const std::vector<std::string>& names, Enum value) {
  return names[static_cast<std::size_t>(value)];
}

std::int32_t token_count(const JsonReader& reader, std::string_view key, std::int64_t fallback) {
  const std::int64_t value = reader.non_negative_integer(key, fallback);
  if (value > kMaxTokens) reader.fail(key, fmt::format("expected at most 2^31 - 1 tokens, got {}", value));
  return static_cast<std::int32_t>(value);
}

std::int32_t positive_token_count(const JsonReader& reader, std::string_view key) {
  const std::int64_t value = reader.positive_integer(key);
  if (value > kMaxTokens) reader.fail(key, fmt::format("expected at most 2^31 - 1 tokens, got {}", value));
  return static_cast<std::int32_t>(value);
}

// Reads the file keys of a trace; `rows_keys` adds the per-row extras (classes, block ids).
TraceFileSpec parse_trace_file(const JsonReader& reader, const std::filesystem::path& base_directory,
                               bool rows_keys) {
  const auto format = from_index<TraceFormat>(kFormatNames, reader.choice("format", kFormatNames));
  TraceFileSpec spec =
      default_trace_file_spec(format, resolve_user_path(reader.string("path"), base_directory));
  if (format == TraceFormat::csv || format == TraceFormat::jsonl) {
    spec.timestamp_column = reader.string("timestamp_column", spec.timestamp_column);
    spec.timestamp_unit =
        from_index<TimestampUnit>(kUnitNames, reader.choice("timestamp_unit", kUnitNames, "s"));
    spec.input_column = reader.string("input_column", spec.input_column);
    spec.output_column = reader.string("output_column", spec.output_column);
    if (rows_keys) {
      spec.class_column = reader.string("class_column", "");
      if (reader.has("class_names")) {
        if (spec.class_column.empty()) reader.fail("class_names", "needs a class_column");
        spec.class_names = reader.string_array("class_names");
      }
      if (format == TraceFormat::jsonl) {
        spec.prefix_blocks_column = reader.string("prefix_blocks_column", "");
        if (!spec.prefix_blocks_column.empty()) {
          spec.prefix_block_tokens = positive_token_count(reader, "prefix_block_tokens");
        }
      }
    }
  }
  spec.zero_output = from_index<ZeroOutputPolicy>(
      kZeroOutputNames, reader.choice("zero_output", kZeroOutputNames, "one_token"));
  return spec;
}

nlohmann::json trace_file_json(const TraceFileSpec& spec) {
  nlohmann::json json = {{"format", trace_format_name(spec.format)},
                         {"path", spec.path.string()},
                         {"zero_output", to_name(kZeroOutputNames, spec.zero_output)}};
  if (spec.format == TraceFormat::csv || spec.format == TraceFormat::jsonl) {
    json["timestamp_column"] = spec.timestamp_column;
    json["timestamp_unit"] = to_name(kUnitNames, spec.timestamp_unit);
    json["input_column"] = spec.input_column;
    json["output_column"] = spec.output_column;
    if (!spec.class_column.empty()) json["class_column"] = spec.class_column;
    if (!spec.class_names.empty()) json["class_names"] = spec.class_names;
    if (!spec.prefix_blocks_column.empty()) {
      json["prefix_blocks_column"] = spec.prefix_blocks_column;
      json["prefix_block_tokens"] = spec.prefix_block_tokens;
    }
  }
  return json;
}

TraceSpec parse_trace(const JsonReader& reader, const std::filesystem::path& base_directory) {
  TraceSpec spec;
  spec.file = parse_trace_file(reader, base_directory, true);
  spec.rate_scale = reader.positive_number("rate_scale", 1.0);
  spec.start_s = reader.non_negative_number("start_s", 0.0);
  if (reader.has("duration_s")) spec.duration_s = reader.positive_number("duration_s");
  spec.spread_buckets_s = reader.non_negative_number(
      "spread_buckets_s", spec.file.format == TraceFormat::mooncake ? kMooncakeBucketSeconds : 0.0);
  if (reader.has("max_requests")) spec.max_requests = reader.positive_integer("max_requests");
  return spec;
}

LengthDistribution parse_length(const JsonReader& reader, const std::filesystem::path& base_directory) {
  using Kind = LengthDistribution::Kind;
  LengthDistribution distribution;
  distribution.kind = from_index<Kind>(kLengthKindNames, reader.choice("kind", kLengthKindNames));
  switch (distribution.kind) {
    case Kind::fixed:
      distribution.tokens = positive_token_count(reader, "tokens");
      break;
    case Kind::uniform:
      distribution.min = positive_token_count(reader, "min");
      distribution.max = positive_token_count(reader, "max");
      if (distribution.max < distribution.min) {
        reader.fail("max",
                    fmt::format("expected max >= min ({}), got {}", distribution.min, distribution.max));
      }
      break;
    case Kind::lognormal:
      distribution.mean = reader.positive_number("mean");
      distribution.sigma = reader.non_negative_number("sigma");
      distribution.min = reader.has("min") ? positive_token_count(reader, "min") : 1;
      distribution.max = token_count(reader, "max", 0);
      if (distribution.max != 0 && distribution.max < distribution.min) {
        reader.fail("max", fmt::format("expected 0 (no cap) or max >= min ({}), got {}", distribution.min,
                                       distribution.max));
      }
      break;
    case Kind::empirical:
      distribution.trace_file = parse_trace_file(reader, base_directory, false);
      break;
    case Kind::geometric:
      distribution.mean = reader.number("mean");
      if (!(distribution.mean >= 1))
        reader.fail("mean", fmt::format("expected a mean >= 1, got {}", distribution.mean));
      break;
  }
  reader.finish();
  return distribution;
}

nlohmann::json length_json(const LengthDistribution& distribution) {
  using Kind = LengthDistribution::Kind;
  nlohmann::json json;
  switch (distribution.kind) {
    case Kind::fixed:
      json = {{"tokens", distribution.tokens}};
      break;
    case Kind::uniform:
      json = {{"min", distribution.min}, {"max", distribution.max}};
      break;
    case Kind::lognormal:
      json = {{"mean", distribution.mean},
              {"sigma", distribution.sigma},
              {"min", distribution.min},
              {"max", distribution.max}};
      break;
    case Kind::empirical:
      json = trace_file_json(*distribution.trace_file);
      break;
    case Kind::geometric:
      json = {{"mean", distribution.mean}};
      break;
  }
  json["kind"] = to_name(kLengthKindNames, distribution.kind);
  return json;
}

SyntheticSpec parse_synthetic(const JsonReader& reader, const std::filesystem::path& base_directory,
                              SyntheticSpec::Arrivals arrivals) {
  SyntheticSpec spec;
  spec.arrivals = arrivals;
  spec.rate = reader.positive_number("rate");
  if (arrivals == SyntheticSpec::Arrivals::gamma) spec.cv = reader.positive_number("cv");
  if (reader.has("requests")) spec.requests = reader.positive_integer("requests");
  if (reader.has("duration_s")) spec.duration_s = reader.positive_number("duration_s");
  if (!spec.requests && !spec.duration_s)
    reader.fail("requests", "expected \"requests\" or \"duration_s\" (or both)");
  spec.input = parse_length(reader.object("input"), base_directory);
  spec.output = parse_length(reader.object("output"), base_directory);
  return spec;
}

ClosedLoopSpec parse_closed_loop(const JsonReader& reader) {
  ClosedLoopSpec spec;
  spec.concurrency = reader.positive_integer("concurrency");
  if (spec.concurrency > 100'000'000) reader.fail("concurrency", "expected at most 10^8 sequences");
  spec.input_tokens = positive_token_count(reader, "input_tokens");
  spec.output_tokens = positive_token_count(reader, "output_tokens");
  spec.requests = static_cast<std::uint64_t>(reader.positive_integer("requests"));
  return spec;
}

}  // namespace

std::string_view trace_format_name(TraceFormat format) {
  return to_name(kFormatNames, format);
}

TraceFormat parse_trace_format(std::string_view name, std::string_view source) {
  for (std::size_t i = 0; i < kFormatNames.size(); ++i) {
    if (kFormatNames[i] == name) return static_cast<TraceFormat>(i);
  }
  throw InputError(source, "format",
                   fmt::format("expected one of [{}], got \"{}\"", fmt::join(kFormatNames, ", "), name));
}

TraceFileSpec default_trace_file_spec(TraceFormat format, const std::filesystem::path& path) {
  TraceFileSpec spec;
  spec.format = format;
  spec.path = path;
  switch (format) {
    case TraceFormat::azure:
      spec.timestamp_column = "TIMESTAMP";
      spec.timestamp_unit = TimestampUnit::datetime;
      spec.input_column = "ContextTokens";
      spec.output_column = "GeneratedTokens";
      break;
    case TraceFormat::mooncake:
      spec.timestamp_column = "timestamp";
      spec.timestamp_unit = TimestampUnit::milliseconds;
      spec.input_column = "input_length";
      spec.output_column = "output_length";
      spec.prefix_blocks_column = "hash_ids";
      spec.prefix_block_tokens = kMooncakeBlockTokens;
      break;
    case TraceFormat::csv:
    case TraceFormat::jsonl:
      spec.timestamp_column = "timestamp";
      spec.timestamp_unit = TimestampUnit::seconds;
      spec.input_column = "input_tokens";
      spec.output_column = "output_tokens";
      break;
  }
  return spec;
}

TraceFormat guess_trace_format(const std::filesystem::path& path) {
  LineReader lines(path);
  std::string_view first;
  const bool has_line = lines.next(first);
  if (path.extension() == ".jsonl") {
    return has_line && first.find("\"hash_ids\"") != std::string_view::npos ? TraceFormat::mooncake
                                                                            : TraceFormat::jsonl;
  }
  return has_line && first.starts_with("TIMESTAMP,") ? TraceFormat::azure : TraceFormat::csv;
}

WorkloadSpec parse_workload(const JsonReader& workload, const std::filesystem::path& base_directory) {
  WorkloadSpec spec;
  const std::string kind = workload.choice("kind", {"trace", "poisson", "gamma", "closed_loop"});
  if (kind == "trace") {
    spec.source = parse_trace(workload, base_directory);
  } else if (kind == "closed_loop") {
    spec.source = parse_closed_loop(workload);
  } else {
    spec.source = parse_synthetic(
        workload, base_directory,
        kind == "poisson" ? SyntheticSpec::Arrivals::poisson : SyntheticSpec::Arrivals::gamma);
  }
  spec.max_input_tokens = token_count(workload, "max_input_tokens", 0);
  spec.max_output_tokens = token_count(workload, "max_output_tokens", 0);
  spec.traffic_class = token_count(workload, "traffic_class", 0);
  workload.finish();
  return spec;
}

nlohmann::json to_json(const WorkloadSpec& spec) {
  nlohmann::json json;
  if (const auto* trace = std::get_if<TraceSpec>(&spec.source)) {
    json = trace_file_json(trace->file);
    json["kind"] = "trace";
    json["rate_scale"] = trace->rate_scale;
    json["start_s"] = trace->start_s;
    if (trace->duration_s) json["duration_s"] = *trace->duration_s;
    json["spread_buckets_s"] = trace->spread_buckets_s;
    if (trace->max_requests) json["max_requests"] = *trace->max_requests;
  } else if (const auto* synthetic = std::get_if<SyntheticSpec>(&spec.source)) {
    const bool gamma = synthetic->arrivals == SyntheticSpec::Arrivals::gamma;
    json = {{"kind", gamma ? "gamma" : "poisson"}, {"rate", synthetic->rate}};
    if (gamma) json["cv"] = synthetic->cv;
    if (synthetic->requests) json["requests"] = *synthetic->requests;
    if (synthetic->duration_s) json["duration_s"] = *synthetic->duration_s;
    json["input"] = length_json(synthetic->input);
    json["output"] = length_json(synthetic->output);
  } else {
    const auto& closed = std::get<ClosedLoopSpec>(spec.source);
    json = {{"kind", "closed_loop"},
            {"concurrency", closed.concurrency},
            {"input_tokens", closed.input_tokens},
            {"output_tokens", closed.output_tokens},
            {"requests", closed.requests}};
  }
  json["max_input_tokens"] = spec.max_input_tokens;
  json["max_output_tokens"] = spec.max_output_tokens;
  json["traffic_class"] = spec.traffic_class;
  return json;
}

std::unique_ptr<RequestSource> make_request_source(const WorkloadSpec& spec, std::uint64_t seed) {
  if (const auto* trace = std::get_if<TraceSpec>(&spec.source))
    return std::make_unique<TraceSource>(*trace, spec);
  if (const auto* synthetic = std::get_if<SyntheticSpec>(&spec.source)) {
    return std::make_unique<SyntheticSource>(*synthetic, spec, seed);
  }
  return std::make_unique<ClosedLoopSource>(std::get<ClosedLoopSpec>(spec.source), spec);
}

}  // namespace moesim
