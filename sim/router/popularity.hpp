#pragma once

#include <cstdint>
#include <span>
#include <vector>

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
// InputError (naming the counts file) when the empirical data do not fit: expert count, fewer than
// top_k experts with counts, or a share above 1 / top_k.
PopularityTable build_popularity(const RouterSpec& spec, int moe_layers, int experts, int top_k,
                                 std::uint64_t seed);

}  // namespace moesim
