#include "sim/workload/trace_statistics.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_set>
#include <vector>

namespace moesim {

namespace {

// Counts of each length: a flat array for ordinary lengths, a map for the rare huge ones.
class LengthHistogram {
 public:
  void add(std::int32_t value) {
    ++count_;
    sum_ += static_cast<double>(value);
    if (value < kDenseLimit) {
      if (static_cast<std::size_t>(value) >= dense_.size())
        dense_.resize(static_cast<std::size_t>(value) * 2 + 1);
      ++dense_[static_cast<std::size_t>(value)];
    } else {
      ++sparse_[value];
    }
  }

  LengthSummary summary() const {
    LengthSummary result;
    if (count_ == 0) return result;
    std::vector<std::pair<std::int64_t, std::uint64_t>> sorted;
    for (std::size_t value = 0; value < dense_.size(); ++value) {
      if (dense_[value] > 0) sorted.emplace_back(static_cast<std::int64_t>(value), dense_[value]);
    }
    for (const auto& [value, count] : sparse_)
      sorted.emplace_back(value, count);
    result.mean = sum_ / static_cast<double>(count_);
    result.p50 = percentile(sorted, 0.50);
    result.p99 = percentile(sorted, 0.99);
    result.max = sorted.back().first;
    return result;
  }

 private:
  static constexpr std::int32_t kDenseLimit = 1 << 22;

  double percentile(const std::vector<std::pair<std::int64_t, std::uint64_t>>& sorted,
                    double quantile) const {
    const double position = static_cast<double>(count_ - 1) * quantile;
    const auto lower_rank = static_cast<std::uint64_t>(std::floor(position));
    const double lower = order_statistic(sorted, lower_rank);
    const double upper = order_statistic(sorted, std::min(lower_rank + 1, count_ - 1));
    return lower + (position - static_cast<double>(lower_rank)) * (upper - lower);
  }

  static double order_statistic(const std::vector<std::pair<std::int64_t, std::uint64_t>>& sorted,
                                std::uint64_t rank) {
    std::uint64_t seen = 0;
    for (const auto& [value, count] : sorted) {
      seen += count;
      if (rank < seen) return static_cast<double>(value);
    }
    return static_cast<double>(sorted.back().first);
  }

  std::vector<std::uint64_t> dense_;
  std::map<std::int64_t, std::uint64_t> sparse_;
  std::uint64_t count_ = 0;
  double sum_ = 0.0;
};

}  // namespace

TraceStatistics compute_trace_statistics(RequestSource& source) {
  TraceStatistics statistics;
  LengthHistogram input, output;
  std::unordered_set<std::uint64_t> seen_blocks;
  std::uint64_t repeated_blocks = 0;
  SimTime first = 0, previous = 0;
  // Welford's running mean and variance of the gaps, in seconds.
  double gap_mean = 0.0, gap_m2 = 0.0;
  while (auto request = source.next()) {
    if (statistics.rows == 0) {
      first = request->arrival;
    } else {
      const double gap = ns_to_seconds(request->arrival - previous);
      const double count = static_cast<double>(statistics.rows);
      const double delta = gap - gap_mean;
      gap_mean += delta / count;
      gap_m2 += delta * (gap - gap_mean);
    }
    previous = request->arrival;
    ++statistics.rows;
    input.add(request->input_tokens);
    output.add(request->output_tokens);
    for (const std::uint64_t block : request->prefix_blocks) {
      if (!seen_blocks.insert(block).second) ++repeated_blocks;
    }
    statistics.prefix_blocks += request->prefix_blocks.size();
  }
  statistics.span_s = ns_to_seconds(previous - first);
  if (statistics.span_s > 0)
    statistics.mean_rate_per_s = static_cast<double>(statistics.rows) / statistics.span_s;
  if (statistics.rows > 1 && gap_mean > 0) {
    statistics.interarrival_cv = std::sqrt(gap_m2 / static_cast<double>(statistics.rows - 1)) / gap_mean;
  }
  statistics.input = input.summary();
  statistics.output = output.summary();
  if (statistics.prefix_blocks > 0) {
    statistics.repeated_block_fraction =
        static_cast<double>(repeated_blocks) / static_cast<double>(statistics.prefix_blocks);
  }
  return statistics;
}

nlohmann::json to_json(const TraceStatistics& statistics) {
  const auto lengths = [](const LengthSummary& summary) {
    return nlohmann::json{
        {"mean", summary.mean}, {"p50", summary.p50}, {"p99", summary.p99}, {"max", summary.max}};
  };
  return {{"rows", statistics.rows},
          {"span_s", statistics.span_s},
          {"mean_rate_per_s", statistics.mean_rate_per_s},
          {"interarrival_cv", statistics.interarrival_cv},
          {"input_tokens", lengths(statistics.input)},
          {"output_tokens", lengths(statistics.output)},
          {"prefix_blocks", statistics.prefix_blocks},
          {"repeated_block_fraction", statistics.repeated_block_fraction}};
}

}  // namespace moesim
