#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/common/rng.hpp"

namespace moesim {

// Walker's alias method: O(n) construction, O(1) draws of an index with probability
// proportional to its weight. Draws allocate nothing.
//
// A draw takes one 64-bit random word: the high 32 bits pick the bucket (multiply-shift), the low
// 32 bits decide between the bucket and its alias against a threshold kept in units of 2^-32.
// Both quantisations move an index's probability by at most n 2^-32 (below 1e-7 for the expert
// counts of real models), far under any sampling error a simulation can see.
class AliasTable {
 public:
  AliasTable() = default;
  // Weights must be finite, non-negative and not all zero (InternalError otherwise).
  explicit AliasTable(std::span<const double> weights);

  int size() const { return static_cast<int>(buckets_.size()); }

  int sample(Rng& rng) const {
    const std::uint64_t bits = rng.next_u64();
    const auto bucket = static_cast<std::size_t>(((bits >> 32) * buckets_.size()) >> 32);
    const Bucket& entry = buckets_[bucket];
    // A mask rather than a conditional: the comparison is a coin flip the branch predictor would
    // miss about as often as it hits.
    const auto keep = -static_cast<std::int32_t>(static_cast<std::uint32_t>(bits) < entry.threshold);
    return (static_cast<std::int32_t>(bucket) & keep) | (entry.alias & ~keep);
  }

 private:
  // Eight bytes, so that a table of 256 experts fits in 2 KB.
  struct Bucket {
    // 2^32 x P(the bucket keeps its own index), in [0, 2^32 - 1]. A bucket that always keeps (2^32) is
    // its own alias with threshold 2^32 - 1: both outcomes of its comparison give its index.
    std::uint32_t threshold;
    std::int32_t alias;
  };
  std::vector<Bucket> buckets_;
};

}  // namespace moesim
