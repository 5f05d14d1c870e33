#pragma once

#include <cstdint>

#include "sim/common/rng.hpp"

namespace moesim {

// A success probability prepared once for many binomial draws with varying trial counts:
// the router draws Binomial(tokens, p_e) for the same p_e at every step.
class BinomialChance {
 public:
  explicit BinomialChance(double probability);

  double probability() const { return complement_ ? 1.0 - small_ : small_; }

 private:
  friend std::int64_t sample_binomial(Rng& rng, std::int64_t trials, const BinomialChance& chance);

  double small_;     // min(p, 1 - p): both algorithms below need p <= 1/2
  double log_q_;     // log(1 - small_)
  double odds_;      // small_ / (1 - small_)
  bool complement_;  // p > 1/2: draw the failures and return trials - failures
};

// Exact Binomial(trials, p) variates, deterministic for a given Rng state.
// Below a mean of 10 (for min(p, 1-p)) by sequential inversion (Kachitvichyanukul and Schmeiser's
// BINV), above by Hormann's BTRD transformed rejection ("The generation of binomial random
// variates", J. Statist. Comput. Simul. 46, 1993), the algorithm Boost.Random uses. Both are exact
// in distribution; neither allocates.
std::int64_t sample_binomial(Rng& rng, std::int64_t trials, const BinomialChance& chance);
std::int64_t sample_binomial(Rng& rng, std::int64_t trials, double probability);

}  // namespace moesim
