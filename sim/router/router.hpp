#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sim/common/rng.hpp"
#include "sim/router/alias_table.hpp"
#include "sim/router/binomial.hpp"
#include "sim/router/count_sampler.hpp"
#include "sim/router/popularity.hpp"
#include "sim/router/router_spec.hpp"

namespace moesim {

// Samples how many tokens each expert receives at each MoE layer of each forward pass.
//
// Model: every token draws top_k distinct experts by successive sampling from its layer's selection
// probabilities (inclusion.hpp), independently of the other tokens. The per-expert count c_e of T
// tokens is then exactly Binomial(T, pi_e) in its marginal, with sum c = T * top_k and c_e <= T.
//
// sample_counts() takes one of three paths:
//  - per token (cost ~ T * top_k), when that is cheapest: draws each token's experts exactly as the
//    model says;
//  - grouped chain (cost ~ experts * top_k binomial draws), for up to 32 experts: walks the experts
//    from the most to the least popular, keeping how many tokens have j = 0..top_k choices left; of the
//    n_j tokens with j left, Binomial(n_j, min(1, j pi_e / R_e)) take expert e, R_e being the inclusion
//    mass of e and the experts after it (all of them when j equals the experts left). Exact in
//    distribution for uniform popularity (each token then takes a uniform random top_k-subset).
//    Assumption: for skewed popularity a token's chance of taking e depends only on its choices left
//    (moesim's own guess; means stay T pi_e, the fast-vs-exact test bounds the rest);
//  - per expert (cost ~ experts, about 6 ns each), above 32 experts: CountSampler
//    (count_sampler.hpp) draws each count from its binomial law (exact tables for small variances,
//    Cornish-Fisher above) and corrects the sum in one O(experts) pass; the joint law is that of
//    independent binomials conditioned on their sum (Hajek), with each count's variance restored
//    to T pi_e (1 - pi_e). A test compares it with the per-token path: per-expert variance, mean
//    and p99 of max/mean load and capacity drops agree within plain sampling error.
// Neither path allocates.
class Router {
 public:
  Router(const PopularityTable& table, int top_k, std::uint64_t seed);

  int moe_layers() const { return static_cast<int>(layers_.size()); }
  int experts() const { return experts_; }
  int top_k() const { return top_k_; }

  // Per-expert assignment counts of `tokens` tokens at MoE layer `layer` (0-based among MoE layers).
  // counts.size() == experts(); sum == tokens * top_k; each count <= tokens.
  void sample_counts(int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // The same by the per-token path whatever it costs: the reference the fast path is tested against.
  void sample_counts_per_token(int layer, std::int64_t tokens, std::span<std::int32_t> counts);

  // Expected share of a layer's assignments per expert (sum 1): pi_e / top_k.
  std::span<const double> popularity(int layer) const { return layers_[layer].share; }
  // A token's first-choice distribution (sum 1).
  std::span<const double> selection_probabilities(int layer) const { return layers_[layer].selection; }
  // P(expert e is among a token's top_k) (sum top_k, each <= 1).
  std::span<const double> inclusion_probabilities(int layer) const { return layers_[layer].inclusion; }

 private:
  struct Layer {
    std::vector<double> selection;
    std::vector<double> inclusion;
    std::vector<double> share;
    AliasTable first_choice;
    int sampler = 0;  // into samplers_
    // Experts by decreasing inclusion probability, and the inclusion mass from each position on.
    std::vector<int> by_popularity;
    std::vector<double> mass_from;
    // Expected first-choice draws per accepted choice in the worst case (top_k - 1 experts taken).
    double rejection_factor = 1.0;
  };

  void sample_grouped(const Layer& layer, std::int64_t tokens, std::span<std::int32_t> counts);
  void check(int layer, std::int64_t tokens, std::span<std::int32_t> counts) const;

  int experts_;
  int top_k_;
  std::vector<Layer> layers_;
  // One per distinct sorted inclusion vector, shared by the layers that permute it.
  std::vector<CountSampler> samplers_;
  std::vector<int> chosen_;                 // one token's experts on the per-token path
  std::vector<std::int64_t> choices_left_;  // tokens by choices left (0 .. top_k) on the grouped chain
  Rng rng_;
};

// The router of a spec for a model shape; all randomness from make_rng(seed, RngStream::routing).
std::unique_ptr<Router> make_router(const RouterSpec& spec, int moe_layers, int experts, int top_k,
                                    std::uint64_t seed);

}  // namespace moesim
