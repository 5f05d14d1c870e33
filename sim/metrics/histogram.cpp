#include "sim/metrics/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// Values below kSubBuckets units are exact; above, each power of two is split
// into kSubBuckets/2 equal parts.
constexpr int kMagnitudes = 64 - Histogram::kSubBucketBits + 1;
constexpr std::size_t kBucketCount =
    Histogram::kSubBuckets + (kMagnitudes - 1) * (Histogram::kSubBuckets / 2);

}  // namespace

Histogram::Histogram(double unit) : unit_(unit), counts_(kBucketCount, 0) {
  if (!(unit > 0)) throw InternalError("histogram unit must be positive");
}

std::size_t Histogram::bucket_of(std::uint64_t scaled) {
  if (scaled < static_cast<std::uint64_t>(kSubBuckets)) return static_cast<std::size_t>(scaled);
  const int top_bit = 63 - std::countl_zero(scaled);                // >= kSubBucketBits
  const int shift = top_bit - (kSubBucketBits - 1);                 // keeps kSubBucketBits significant bits
  const auto mantissa = static_cast<std::size_t>(scaled >> shift);  // in [kSubBuckets/2, kSubBuckets)
  return static_cast<std::size_t>(kSubBuckets) + static_cast<std::size_t>(shift - 1) * (kSubBuckets / 2) +
         (mantissa - kSubBuckets / 2);
}

double Histogram::bucket_midpoint(std::size_t bucket) {
  if (bucket < static_cast<std::size_t>(kSubBuckets)) return static_cast<double>(bucket);
  const std::size_t above = bucket - kSubBuckets;
  const int shift = static_cast<int>(above / (kSubBuckets / 2)) + 1;
  const double mantissa = static_cast<double>(above % (kSubBuckets / 2) + kSubBuckets / 2);
  return std::ldexp(mantissa + 0.5, shift) - 0.5;
}

void Histogram::record(double value) {
  if (!(value >= 0) || !std::isfinite(value)) {
    throw InternalError("histogram values must be finite and non-negative");
  }
  const double scaled_value = std::min(value / unit_, 1.8e19);
  counts_[bucket_of(static_cast<std::uint64_t>(std::llround(scaled_value)))] += 1;
  if (count_ == 0) {
    max_ = min_ = value;
  } else {
    max_ = std::max(max_, value);
    min_ = std::min(min_, value);
  }
  ++count_;
  sum_ += value;
}

void Histogram::merge(const Histogram& other) {
  if (other.unit_ != unit_) throw InternalError("merging histograms of different units");
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < counts_.size(); ++i)
    counts_[i] += other.counts_[i];
  max_ = count_ == 0 ? other.max_ : std::max(max_, other.max_);
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  count_ += other.count_;
  sum_ += other.sum_;
}

double Histogram::quantile(double q) const {
  if (count_ == 0) return 0.0;
  q = std::clamp(q, 0.0, 1.0);
  const auto rank =
      std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t bucket = 0; bucket < counts_.size(); ++bucket) {
    seen += counts_[bucket];
    if (seen >= rank) return std::clamp(bucket_midpoint(bucket) * unit_, min_, max_);
  }
  return max_;
}

nlohmann::json Histogram::summary() const {
  return nlohmann::json{{"count", count_},      {"mean", mean()},        {"p50", quantile(0.5)},
                        {"p90", quantile(0.9)}, {"p99", quantile(0.99)}, {"p999", quantile(0.999)},
                        {"max", max()}};
}

}  // namespace moesim
