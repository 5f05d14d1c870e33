#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/common/rng.hpp"
#include "sim/router/router_spec.hpp"

namespace moesim {

// Per-MoE-layer selection probabilities of one traffic mix: for each layer, the distribution of a
// token's first-choice expert (sum 1), stored flat [layer][expert]. Its further choices follow by
// successive sampling (inclusion.hpp). Traffic classes will each own one table and the router mixes them.
class PopularityTable {
 public:
  PopularityTable(int layers, int experts);

  int layers() const { return layers_; }
  int experts() const { return experts_; }
  std::span<double> layer(int index) {
    return {values_.data() + std::size_t(index) * experts_, std::size_t(experts_)};
  }
  std::span<const double> layer(int index) const {
    return {values_.data() + std::size_t(index) * experts_, std::size_t(experts_)};
  }

 private:
  int layers_;
  int experts_;
  std::vector<double> values_;
};

// Builds the table a spec describes.
//   uniform: 1 / experts.
//   zipf: the expert of popularity rank r (0-based) has weight 1 / (r + 1)^exponent; the expert that
//     holds rank r is a seeded random permutation per layer (make_rng(seed, RngStream::routing, 1)).
//     Assumption: Zipf first-choice popularity with independent hot experts per layer (moesim's own
//     guess, a common synthetic stand-in; REFERENCE.md §3: the hot experts differ per layer).
//   empirical: measured counts (expert_counts.hpp) mapped to layers by recorded_layer_for. top1 counts
//     are the first-choice distribution itself. topk counts give each expert's share of assignments;
//     the table holds the selection probabilities whose successive-sampling inclusion probabilities
//     are top_k * share.
//     Assumption: topk shares carry over unchanged when the simulated top_k differs from the
//     recorded model's (moesim's own guess).
//   dirichlet: each layer's first-choice vector is a draw of the symmetric Dirichlet(alpha)
//     (make_rng(seed, RngStream::routing, 1)); small alpha gives few hot experts, large alpha nearly
//     uniform routing.
//   preset "deepseek-v3": per layer, one hot expert takes a share h of the first choices and the other
//     experts split the rest as a Zipf tail of exponent 0.2 (popularity rank r >= 1 weighs
//     (r + 1)^-0.2); the hot expert and the tail order are a seeded random permutation per layer
//     (make_rng(seed, RngStream::routing, 1)). h follows the relative depth d = layer / (layers - 1):
//     0.02 at d = 0 rising linearly to 0.07 at d = 0.25 and staying there, except the layers nearest
//     d = 33/57 and 55/57 (DeepSeek layers 36 and 58) with 0.125. At EP32, 256 tokens per rank and
//     contiguous placement this gives a per-rank (max - mean) / mean of about 1.5 averaged over layers
//     (about 0.45 in the first layers, 2.4 at the peaks) and a per-slot one of about 12.2, against
//     1.564, 0.46 .. 2.46 and 10.95 in REFERENCE.md §3. Constants and their origin: popularity.cpp.
// InputError (naming the counts file) when the empirical data do not fit: expert count, fewer than
// top_k experts with counts, or a share above 1 / top_k.
PopularityTable build_popularity(const PopularitySpec& spec, int moe_layers, int experts, int top_k,
                                 std::uint64_t seed);

// A draw of Dirichlet(alpha) into `out` (sum 1; every entry at least 1e-12 of the largest).
void draw_dirichlet(Rng& rng, std::span<const double> alpha, std::span<double> out);

}  // namespace moesim
