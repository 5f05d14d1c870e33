#include "sim/router/alias_table.hpp"

#include <algorithm>
#include <cmath>

#include "sim/common/error.hpp"

namespace moesim {

AliasTable::AliasTable(std::span<const double> weights) {
  double total = 0.0;
  for (const double weight : weights) {
    if (!(weight >= 0.0) || !std::isfinite(weight)) throw InternalError("AliasTable: invalid weight");
    total += weight;
  }
  if (!(total > 0.0)) throw InternalError("AliasTable: all weights are zero");
  const auto n = static_cast<int>(weights.size());
  std::vector<double> threshold(weights.size(), 1.0);
  std::vector<int> alias(weights.size());
  std::vector<double> scaled(weights.size());
  std::vector<int> small, large;
  for (int i = 0; i < n; ++i) {
    alias[i] = i;
    scaled[i] = weights[i] * n / total;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const int low = small.back();
    small.pop_back();
    const int high = large.back();
    threshold[low] = scaled[low];
    alias[low] = high;
    scaled[high] -= 1.0 - scaled[low];
    if (scaled[high] < 1.0) {
      large.pop_back();
      small.push_back(high);
    }
  }
  // Whatever is left is 1 up to rounding: it keeps threshold 1 and never uses its alias.
  buckets_.resize(weights.size());
  constexpr std::uint64_t kAlwaysKeep = std::uint64_t{1} << 32;
  for (int i = 0; i < n; ++i) {
    const auto keep = static_cast<std::uint64_t>(std::llround(std::clamp(threshold[i], 0.0, 1.0) * 0x1.0p32));
    buckets_[i].threshold = static_cast<std::uint32_t>(std::min(keep, kAlwaysKeep - 1));
    buckets_[i].alias = keep == kAlwaysKeep ? i : alias[i];
  }
}

}  // namespace moesim
