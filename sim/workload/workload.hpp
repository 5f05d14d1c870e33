#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"
#include "sim/workload/request.hpp"

namespace moesim {

enum class TraceFormat { azure, mooncake, csv, jsonl };
// How a timestamp field is written: a decimal number in a unit, or a "YYYY-MM-DD HH:MM:SS[.f][+HH:MM]"
// date-time.
enum class TimestampUnit { seconds, milliseconds, microseconds, nanoseconds, datetime };
// What a trace row with zero output tokens becomes.
enum class ZeroOutputPolicy { one_token, skip, error };

// A trace file and how to read its rows (the columns are fixed for azure and mooncake).
struct TraceFileSpec {
  TraceFormat format = TraceFormat::csv;
  std::filesystem::path path;
  std::string timestamp_column;
  TimestampUnit timestamp_unit = TimestampUnit::seconds;
  std::string input_column;
  std::string output_column;
  std::string class_column;              // empty: every row gets the constant traffic_class
  std::vector<std::string> class_names;  // non-empty: class values are these names, mapped to their index
  std::string prefix_blocks_column;      // jsonl only; empty: no block ids
  std::int32_t prefix_block_tokens = 0;
  ZeroOutputPolicy zero_output = ZeroOutputPolicy::one_token;
};

struct TraceSpec {
  TraceFileSpec file;
  double rate_scale = 1.0;  // replay at rate_scale x speed
  double start_s = 0.0;     // window on the trace's own timeline (after bucket spreading)
  std::optional<double> duration_s;
  double spread_buckets_s = 0.0;  // 0: timestamps are used as written
  std::optional<std::uint64_t> max_requests;
};

// A token-length distribution for synthetic workloads.
struct LengthDistribution {
  enum class Kind { fixed, uniform, lognormal, empirical, geometric };
  Kind kind = Kind::fixed;
  std::int32_t tokens = 1;                  // fixed
  std::int32_t min = 1, max = 1;            // uniform bounds; lognormal clamp (max 0: none)
  double mean = 1.0, sigma = 0.0;           // lognormal: mean of the distribution itself and sigma of log;
                                            // geometric: mean (>= 1) of a distribution on 1, 2, 3, ...
  std::optional<TraceFileSpec> trace_file;  // empirical: the input or output column of this trace
};

struct SyntheticSpec {
  enum class Arrivals { poisson, gamma };
  Arrivals arrivals = Arrivals::poisson;
  double rate = 1.0;  // requests per second
  double cv = 1.0;    // inter-arrival coefficient of variation (gamma; 1 for poisson)
  std::optional<std::uint64_t> requests;
  std::optional<double> duration_s;
  LengthDistribution input, output;
};

struct ClosedLoopSpec {
  std::int64_t concurrency = 1;
  std::int32_t input_tokens = 1;
  std::int32_t output_tokens = 1;
  std::uint64_t requests = 1;
};

// Everything parsed from a scenario's "workload" object, paths resolved.
struct WorkloadSpec {
  std::variant<TraceSpec, SyntheticSpec, ClosedLoopSpec> source;
  // Limits and the constant class applied to every kind (0 = no cut).
  std::int32_t max_input_tokens = 0;
  std::int32_t max_output_tokens = 0;
  std::int32_t traffic_class = 0;
};

// Reads the "workload" object (and calls finish() on it and every nested object).
WorkloadSpec parse_workload(const JsonReader& workload, const std::filesystem::path& base_directory);
// The fully resolved spec, for the report; parse_workload(to_json(spec)) gives back the same spec.
nlohmann::json to_json(const WorkloadSpec& spec);
std::unique_ptr<RequestSource> make_request_source(const WorkloadSpec& spec, std::uint64_t seed);

// The columns, unit and options a format implies; for `inspect` and tests that read a file directly.
TraceFileSpec default_trace_file_spec(TraceFormat format, const std::filesystem::path& path);
// Azure if a .csv starts with the TIMESTAMP header, csv otherwise; mooncake for .jsonl with hash_ids, jsonl
// otherwise.
TraceFormat guess_trace_format(const std::filesystem::path& path);
TraceFormat parse_trace_format(std::string_view name, std::string_view source);
std::string_view trace_format_name(TraceFormat format);

}  // namespace moesim
