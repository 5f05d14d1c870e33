#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/common/rng.hpp"

namespace moesim {

// Walker's alias method: O(n) construction, O(1) draws of an index with probability
// proportional to its weight. Draws allocate nothing.
class AliasTable {
 public:
  AliasTable() = default;
  // Weights must be finite, non-negative and not all zero (InternalError otherwise).
  explicit AliasTable(std::span<const double> weights);

  int size() const { return static_cast<int>(threshold_.size()); }

  int sample(Rng& rng) const {
    const auto bucket = static_cast<int>(rng.below(threshold_.size()));
    return rng.uniform() < threshold_[bucket] ? bucket : alias_[bucket];
  }

 private:
  std::vector<double> threshold_;
  std::vector<int> alias_;
};

}  // namespace moesim
