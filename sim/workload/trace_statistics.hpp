#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "sim/workload/request.hpp"

namespace moesim {

struct LengthSummary {
  double mean = 0.0;
  double p50 = 0.0;  // percentiles interpolate linearly between order statistics (numpy's default)
  double p99 = 0.0;
  std::int64_t max = 0;
};

// The figures the SOURCE.md tables of the shipped traces give.
struct TraceStatistics {
  std::uint64_t rows = 0;
  double span_s = 0.0;           // last arrival - first arrival
  double mean_rate_per_s = 0.0;  // rows / span
  double interarrival_cv = 0.0;  // population standard deviation / mean of the gaps
  LengthSummary input, output;
  std::uint64_t prefix_blocks = 0;       // block ids over all rows
  double repeated_block_fraction = 0.0;  // share of block ids already seen in an earlier row
};

// Drains `source`. Memory grows with distinct lengths and distinct block ids, not with rows.
TraceStatistics compute_trace_statistics(RequestSource& source);
nlohmann::json to_json(const TraceStatistics& statistics);

}  // namespace moesim
