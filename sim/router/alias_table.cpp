#include "sim/router/alias_table.hpp"

#include <cmath>

#include "sim/common/error.hpp"

namespace moesim {

AliasTable::AliasTable(std::span<const double> weights)
    : threshold_(weights.size(), 1.0), alias_(weights.size()) {
  double total = 0.0;
  for (const double weight : weights) {
    if (!(weight >= 0.0) || !std::isfinite(weight)) throw InternalError("AliasTable: invalid weight");
    total += weight;
  }
  if (!(total > 0.0)) throw InternalError("AliasTable: all weights are zero");
  const auto n = static_cast<int>(weights.size());
  std::vector<double> scaled(weights.size());
  std::vector<int> small, large;
  for (int i = 0; i < n; ++i) {
    alias_[i] = i;
    scaled[i] = weights[i] * n / total;
    (scaled[i] < 1.0 ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    const int low = small.back();
    small.pop_back();
    const int high = large.back();
    threshold_[low] = scaled[low];
    alias_[low] = high;
    scaled[high] -= 1.0 - scaled[low];
    if (scaled[high] < 1.0) {
      large.pop_back();
      small.push_back(high);
    }
  }
  // Whatever is left is 1 up to rounding: it keeps threshold 1 and never uses its alias.
}

}  // namespace moesim
