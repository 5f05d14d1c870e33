#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/common/rng.hpp"

namespace moesim {

// The router's per-expert sampler of one layer's counts, for a set of inclusion probabilities shared by
// every layer whose probabilities are a permutation of it (Zipf layers, a recorded layer reused).
//
// Model: the joint law of independent counts c_e ~ Binomial(T, pi_e) conditioned on sum c = T * top_k
// (Hajek's approximation of a fixed-size sampling design), corrected so that each count keeps the
// variance T pi_e (1 - pi_e) of the exact per-token model.
//  1. Each count is drawn independently:
//     - when T pi (1 - pi) < kNormalMinVariance, exactly by table inversion from a distribution of
//       the binomial family with mean T pi and variance v / (1 - w), v = T pi (1 - pi), w = v / sum v
//       (the conditioning of step 2 takes a share w of the variance away again);
//     - above, as the Cornish-Fisher expansion (skewness and kurtosis terms) of the binomial
//       quantile, continuous, with variance (v - 1/6) / (1 - w) (step 3's rounding adds 1/6).
//       Assumption: this approximates the binomial law to a few 1e-4 in the distribution function
//       and to within ~2% in the upper tail probability at 1e-3 (measured against the exact binomial
//       for v >= 20, p in [1/32, 0.8]); moesim's own bound, below what moves load or drop statistics.
//  2. The sum's difference D = T * top_k - sum c is spread over the experts in proportion to
//     (T - c_e) pi_e (D > 0) or c_e (1 - pi_e) (D < 0): for uniform routing that is adding or removing
//     |D| uniformly chosen tokens-slots, which turns independent binomials into exactly their law
//     conditioned on the sum; in general it shifts the means by D v_e / sum v, as conditioning does.
//  3. Systematic rounding with a random start turns the shifted values into integers with the exact
//     sum, unbiased per expert; counts are kept in [0, T] (a rare overflow goes, one unit per expert,
//     to experts with room from a random position).
// The per-T tables are rebuilt only when T changes (every layer of a forward pass shares them).
// sample() does not allocate.
class CountSampler {
 public:
  // `sorted_inclusion`: the inclusion probabilities in decreasing order, each in [0, 1].
  CountSampler(std::span<const double> sorted_inclusion, int top_k);

  int experts() const { return static_cast<int>(level_of_position_.size()); }

  // counts[by_popularity[i]] receives the count of the i-th most popular expert.
  void sample(Rng& rng, std::int64_t tokens, std::span<const int> by_popularity,
              std::span<std::int32_t> counts);

  // Below this count variance the counts come from exact tables, above from Cornish-Fisher.
  static constexpr double kNormalMinVariance = 24.0;

 private:
  struct LevelDraw {
    bool tabulated = false;
    bool complement = false;  // the table holds T - c (pi > 1/2)
    std::int32_t table = 0;   // first threshold in thresholds_
    std::int32_t guide = 0;   // first entry in guides_
    double mean = 0;          // Cornish-Fisher: c = mean + z (linear + z (quadratic + z cubic))
    double linear = 0;
    double quadratic = 0;
    double cubic = 0;
  };

  void prepare(std::int64_t tokens);
  void tabulate(int level, std::int64_t tokens, double small_probability);

  int top_k_;
  std::vector<double> inclusion_;       // per level: distinct values, decreasing
  std::vector<double> variance_share_;  // per level: pi (1 - pi) / sum over experts
  std::vector<int> level_of_position_;  // per expert position in decreasing popularity
  std::int64_t prepared_tokens_ = -1;
  std::vector<LevelDraw> draws_;           // per level, for prepared_tokens_
  std::vector<std::uint64_t> thresholds_;  // tables: 2^32 * P(c <= x), last entry 2^32
  std::vector<std::uint16_t> guides_;      // per table, kGuideSize starting indices
  std::int32_t thresholds_used_ = 0;
  std::vector<double> values_;      // per position, one call's draws
  std::vector<double> cumulative_;  // one table's cumulative masses while it is built
};

}  // namespace moesim
