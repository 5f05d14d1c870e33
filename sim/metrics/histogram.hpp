#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

namespace moesim {

// Fixed-memory distribution of non-negative values (HDR-histogram style): values
// are bucketed with a relative resolution of 1/kSubBuckets, so any quantile is
// within 0.4 % of the exact sample quantile whatever the number of samples.
// Count, mean and max are exact. Memory does not grow with the sample count,
// which keeps a week-long trace replay within the same footprint as a short one.
class Histogram {
 public:
  // `unit` is the smallest distinguishable value (e.g. 1e-9 for seconds recorded
  // at nanosecond resolution); values are stored as integer multiples of it.
  Histogram() : Histogram(1e-9) {}
  explicit Histogram(double unit);

  void record(double value);
  void merge(const Histogram& other);

  std::uint64_t count() const { return count_; }
  double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }
  double max() const { return count_ == 0 ? 0.0 : max_; }
  double min() const { return count_ == 0 ? 0.0 : min_; }
  // The q-quantile (q in [0, 1]) by the nearest-rank rule, at bucket resolution.
  double quantile(double q) const;

  // {"count", "mean", "p50", "p90", "p99", "p999", "max"}; zeros when empty.
  nlohmann::json summary() const;

  static constexpr int kSubBucketBits = 8;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;

 private:
  static std::size_t bucket_of(std::uint64_t scaled);
  static double bucket_midpoint(std::size_t bucket);

  double unit_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  double sum_ = 0.0;
  double max_ = 0.0;
  double min_ = 0.0;
};

}  // namespace moesim
