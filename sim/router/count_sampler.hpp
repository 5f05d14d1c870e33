#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/common/rng.hpp"
#include "sim/router/normal_quantile.hpp"

namespace moesim {

// The router's per-expert sampler of one layer's counts, for a set of inclusion probabilities shared by
// every layer whose probabilities are a permutation of it (Zipf layers, a recorded layer reused).
//
// Model: the joint law of independent counts c_e ~ Binomial(T, pi_e) conditioned on sum c = T * top_k
// (Hajek's approximation of a fixed-size sampling design), corrected so that each count keeps the
// variance T pi_e (1 - pi_e) of the exact per-token model.
//  1. Each count is drawn independently:
//     - when v = T pi (1 - pi) < kNormalMinVariance, exactly (Walker alias table) from a distribution of
//       the binomial family (real trial count) with mean T pi and variance v / (1 - w)^2, w = v / sum v.
//       Assumption: the inflation (1 - w)^-2 makes up for what steps 2 and 3 take away, so that the
//       final variance is v to within 0.1% (measured against the per-token path for 64 and 256
//       experts, uniform and Zipf; moesim's own calibration);
//     - above, as the Cornish-Fisher expansion (skewness and kurtosis terms) of the binomial
//       quantile, continuous, with variance (v - 1/6) / (1 - w) (step 2 takes a share w of the
//       variance away exactly as Gaussian conditioning does, step 3's rounding adds 1/6).
//       Assumption: this approximates the binomial law to a few 1e-4 in the distribution function
//       and to within ~2% in the upper tail probability at 1e-3, ~5% at 1e-5 (measured against the
//       exact binomial for v >= 20, p in [1/32, 0.8]); moesim's own bound, below what moves load or
//       drop statistics.
//  2. The sum's difference D = T * top_k - sum c is spread over the experts in proportion to v_e for
//     Cornish-Fisher draws (Gaussian conditioning), and to (T - c_e) pi_e (D > 0) or c_e (1 - pi_e)
//     (D < 0) for tabulated ones: for uniform routing that adds or removes uniformly chosen token
//     slots, which turns independent binomials into their law conditioned on the sum; both shift
//     the means by D v_e / sum v on average, as conditioning does.
//  3. Systematic rounding with a random start turns the shifted values into integers with the exact
//     sum, unbiased per expert; counts are kept in [0, T] (a rare overflow goes, one unit per expert,
//     to experts with room from a random position).
// The per-T tables are rebuilt only when T changes (every layer of a forward pass shares them), as
// cumulative tables; the third call at the same T turns them into alias tables (faster draws).
// sample() does not allocate.
class CountSampler {
 public:
  // `sorted_inclusion`: the inclusion probabilities in decreasing order, each in [0, 1].
  CountSampler(std::span<const double> sorted_inclusion, int top_k);

  int experts() const { return static_cast<int>(level_of_position_.size()); }
  // Whether the per-T tables are those of `tokens` (a sample of another T rebuilds them first).
  bool prepared_for(std::int64_t tokens) const { return tokens == prepared_tokens_; }

  // counts[by_popularity[i]] receives the count of the i-th most popular expert.
  void sample(Rng& rng, std::int64_t tokens, std::span<const int> by_popularity,
              std::span<std::int32_t> counts);

  // Below this count variance the counts come from exact tables, above from Cornish-Fisher.
  static constexpr double kNormalMinVariance = 24.0;

 private:
  // The fields every draw reads, kept small so that the per-level array stays in L1.
  struct LevelDraw {
    double inclusion = 0;    // pi
    double weight = 0;       // T pi (1 - pi): its share of the sum correction when not tabulated
    std::int32_t table = 0;  // first threshold in thresholds_
    std::int32_t size = 0;   // entries of the table (counts 0 .. size - 1)
    std::int32_t level = 0;  // into normal_draws_
    bool tabulated = false;
    bool complement = false;  // the table holds T - c (pi > 1/2)
  };
  // Cornish-Fisher: c = mean + z (linear + z (quadratic + z cubic)).
  struct NormalDraw {
    double mean = 0;
    double linear = 0;
    double quadratic = 0;
    double cubic = 0;
  };

  void prepare(std::int64_t tokens);
  void tabulate(int level, std::int64_t tokens, double small_probability);
  void build_alias_tables();

  int top_k_;
  std::vector<double> inclusion_;  // per level: distinct values, decreasing
  // Per level, the binomial its tabulated counts follow, but for the trial count (which scales with T).
  struct BinomialShape {
    double probability;  // p
    double odds;         // p / (1 - p)
    double log_failure;  // log(1 - p)
  };
  std::vector<BinomialShape> shapes_;
  std::vector<double> variance_share_;  // per level: pi (1 - pi) / sum over experts
  double variance_total_ = 0;           // sum over experts of pi (1 - pi)
  std::vector<int> level_of_position_;  // per expert position in decreasing popularity
  std::int64_t prepared_tokens_ = -1;
  // The weight of a count's share in the sum correction, a + b x its value.
  struct Linear {
    double constant;
    double slope;
  };

  std::vector<LevelDraw> draws_;           // per level, for prepared_tokens_
  std::vector<LevelDraw> position_draws_;  // the same per expert position: one load less per draw
  std::vector<Linear> add_weight_;         // per position, when the correction adds units
  std::vector<Linear> remove_weight_;      // per position, when it removes them
  std::vector<NormalDraw> normal_draws_;   // per level, used where not tabulated
  // Per tabulated level: 2^32 x P(count <= i) for i < n - 1 (cumulative tables), or 2^32 x P(a bucket
  // keeps its own count) (alias tables).
  std::vector<std::uint32_t> thresholds_;
  std::vector<std::uint8_t> aliases_;  // alias tables: the count a bucket gives otherwise
  bool alias_tables_ = false;          // which of the two the tables are
  int calls_at_prepared_tokens_ = 0;
  static constexpr int kCallsBeforeAliasTables = 3;
  std::int32_t thresholds_used_ = 0;
  double normal_weight_total_ = 0;        // sum of the weights of the experts not tabulated
  double tabulated_inclusion_total_ = 0;  // sum of pi over the tabulated experts
  FastNormal normal_;
  std::vector<std::uint64_t> bits_;           // one call's random bits, two experts per word
  std::vector<double> values_;                // per position, one call's draws
  std::vector<double> cumulative_;            // one table's cumulative masses while it is built
  std::vector<std::uint64_t> scaled_masses_;  // one alias table's masses while it is built
};

}  // namespace moesim
