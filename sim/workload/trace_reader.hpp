#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "sim/common/time.hpp"
#include "sim/workload/workload.hpp"

namespace moesim {

// One validated row of a trace file, on the file's own timeline.
struct TraceRow {
  SimTime timestamp = 0;  // ns, as written (not yet relative to the first row)
  std::int32_t input_tokens = 1;
  std::int32_t output_tokens = 1;
  std::int32_t traffic_class = -1;  // -1: the file has no class column
  std::vector<std::uint64_t> prefix_blocks;
  std::uint64_t line = 0;
};

// Streams the rows of one trace file. Each row is checked when it is reached: lengths are
// positive integers below 2^31, timestamps parse and never go backwards; a bad row throws
// InputError "<file>: line <n>, column <name>: expected ..., got \"...\"".
class TraceReader {
 public:
  virtual ~TraceReader() = default;
  // False at the end of the file.
  virtual bool read(TraceRow& row) = 0;
};

std::unique_ptr<TraceReader> make_trace_reader(const TraceFileSpec& spec);

// "YYYY-MM-DD HH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]" (or 'T' between date and time) as ns since
// 1970-01-01 UTC; a date-time without a zone counts as UTC. Fraction digits beyond 9 are truncated.
std::optional<SimTime> parse_datetime_ns(std::string_view text);
// A non-negative decimal number ("12", "0.25", ".5") in `unit`, as exact ns (finer digits truncated).
std::optional<SimTime> parse_decimal_ns(std::string_view text, TimestampUnit unit);

}  // namespace moesim
