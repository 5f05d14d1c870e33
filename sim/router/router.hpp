#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sim/common/rng.hpp"
#include "sim/common/time.hpp"
#include "sim/router/alias_table.hpp"
#include "sim/router/binomial.hpp"
#include "sim/router/count_sampler.hpp"
#include "sim/router/cross_layer.hpp"
#include "sim/router/popularity.hpp"
#include "sim/router/recorded_routing.hpp"
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
//
// Traffic classes (DESIGN.md §3): each class has its own per-layer popularity; with a concentration
// c each request routes by its own vector around its class's p. Assumption (moesim's own, to keep
// the O(experts) cost): a class's requests fall into a fixed number of affinity groups, each with
// one per-layer first-choice vector drawn once from Dirichlet(c p) (mean p; larger c, closer to p),
// and a request keeps its group (drawn from its id) for its whole life. A step's counts are the sum
// over the (class, group) components present in the batch of each one's sample of its own tokens,
// so a batch's routing is the mix of the requests in it. With one class and no concentration this is
// exactly the router above (same draws). Drift: the class mix follows a schedule by arrival time
// (stepwise or interpolated), and the hot experts of every class rotate by a fixed offset per period
// of simulated time (set_time).
//
// Cross-layer correlation (spec.correlation, link_layers): a token's experts at MoE layer l make some
// experts at l + 1 likelier. Each class has a row-stochastic matrix M_l per consecutive layer pair,
// M_l = (1 - rho) 1 p_{l+1}^T + rho F_l: F_l fitted from measured transition counts or synthetic
// successors (cross_layer.hpp), balanced so that its rows, weighted by layer l's assignment shares,
// average to p_{l+1} (each layer keeps its popularity in expectation). The layers of a step must be
// sampled in order, each with the same component tokens as the one before (as a forward pass does);
// otherwise (layer 0, a skipped layer, other token counts) a layer is sampled independently.
//  - per token (sample_counts_per_token, the reference): each token carries its experts from l to
//    l + 1: its i-th choice at l + 1 is drawn from row M_l[e_i] of its i-th choice e_i at l, redrawn
//    until distinct (a row whose successors are all taken already falls back to p_{l+1}).
//  - counts (sample_counts, O(nonzeros of F_l + experts) per layer and component): the step's tokens
//    at l + 1 all route by successive sampling from the average of their rows,
//    q = (c_l / (T top_k)) M_l, c_l being the counts the same component just drew at l; q's inclusion
//    probabilities come from approximate_inclusion, the counts from InclusionCountSampler.
//    Assumption (moesim's own): replacing each token's own rows by the step's average keeps the
//    step-to-step load of the exact chain; the fast-vs-exact test bounds the difference (mean and p99
//    of max/mean load at a late layer, drops at capacity factor 1.25).
class Router {
 public:
  // One traffic class that every request belongs to, routed by `table`.
  Router(const PopularityTable& table, int top_k, std::uint64_t seed);
  // One class whose counts all come from a routing trace (RecordedRouting): every sample_counts
  // replays it, whatever the component split; popularity() is the whole trace's shares.
  explicit Router(std::unique_ptr<RecordedRouting> recorded);
  // Classes and affinity groups: `class_tables[c]` holds one table per affinity group of class c
  // (one when the class has no concentration); `spec` says how requests get their class and how
  // the mix and the hot experts drift.
  Router(const RouterSpec& spec, const std::vector<std::vector<PopularityTable>>& class_tables, int top_k,
         std::uint64_t seed);

  int moe_layers() const { return static_cast<int>(mixture_.size()); }
  int experts() const { return experts_; }
  int top_k() const { return top_k_; }

  // Traffic classes, in the order of the spec ("default" for the one-source format).
  int classes() const { return static_cast<int>(class_names_.size()); }
  const std::string& class_name(int traffic_class) const { return class_names_[traffic_class]; }
  // Routing components: one per (class, affinity group); the unit whose tokens a step counts.
  int components() const { return static_cast<int>(components_.size()); }
  int component_class(int component) const { return components_[component].traffic_class; }
  // The component of a request, fixed at its arrival: its class (drawn from the mix at `arrival`
  // with the request's id and the seed, or from its workload class) and its affinity group (drawn
  // from its id and the seed). InputError when its workload class maps to no class.
  int component_for(std::uint64_t request_id, std::int32_t workload_class, SimTime arrival) const;
  // Class weights of the mix at `time` (equal weights when classes come from the workload).
  void class_weights(SimTime time, std::span<double> weights) const;

  // Links each MoE layer's counts to the previous layer's of the same step (see above); make_router
  // calls it with the spec's correlation, which does nothing when inactive. InputError when the
  // correlation does not fit the model (expert count, successors).
  void link_layers(const CorrelationSpec& correlation, std::uint64_t seed);
  bool layers_linked() const { return links_ != nullptr; }
  // With linked layers: how likely a token's most likely successor at layer + 1 is, given one of its
  // experts at `layer` (rows of M_layer weighted by the layer's shares, averaged over classes).
  double top_successor_probability(int layer) const;

  // Simulated time of the next samples: sets the rotation of the hot experts.
  void set_time(SimTime now);

  // Per-expert assignment counts at MoE layer `layer` (0-based among MoE layers) of a step whose
  // tokens belong to the components as `component_tokens` says (size components()).
  // counts.size() == experts(); sum == tokens * top_k; each count <= tokens. Cost: each component
  // with tokens costs the smaller of its per-token and its per-expert sampling (see above).
  void sample_counts(int layer, std::span<const std::int64_t> component_tokens,
                     std::span<std::int32_t> counts);
  // The same for `tokens` tokens split over the components by the mix's expected shares at the
  // current time (largest remainders); with one component, exactly the original router.
  void sample_counts(int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // The same by the per-token path whatever it costs: the reference the fast path is tested against.
  void sample_counts_per_token(int layer, std::span<const std::int64_t> component_tokens,
                               std::span<std::int32_t> counts);
  void sample_counts_per_token(int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // After a sample: the per-expert counts of one class's tokens (they add up to the sample's counts).
  std::span<const std::int32_t> class_counts(int traffic_class) const {
    return {class_counts_.data() + std::size_t(traffic_class) * experts_, std::size_t(experts_)};
  }

  // Expected share of a layer's assignments per expert (sum 1): pi_e / top_k, for the mix at time 0
  // (equal class weights when classes come from the workload), before rotation.
  std::span<const double> popularity(int layer) const { return mixture_[layer].share; }
  // The first-choice distribution of one component's tokens.
  std::span<const double> component_selection(int component, int layer) const {
    return components_[component].layers[layer].selection;
  }
  // A token's first-choice distribution (sum 1), of the same mix.
  std::span<const double> selection_probabilities(int layer) const { return mixture_[layer].selection; }
  // P(expert e is among a token's top_k) (sum top_k, each <= 1), of the same mix.
  std::span<const double> inclusion_probabilities(int layer) const { return mixture_[layer].inclusion; }

 private:
  struct Layer {
    std::vector<double> selection;
    std::vector<double> inclusion;
    std::vector<double> share;
    AliasTable first_choice;
    int sampler = 0;  // into the component's samplers
    // Experts by decreasing inclusion probability, and the inclusion mass from each position on.
    std::vector<int> by_popularity;
    std::vector<double> mass_from;
    // Expected first-choice draws per accepted choice in the worst case (top_k - 1 experts taken).
    double rejection_factor = 1.0;
  };
  // The routing of the tokens of one (class, affinity group).
  struct Component {
    int traffic_class = 0;
    std::vector<Layer> layers;
    // One per distinct sorted inclusion vector, shared by the layers that permute it.
    std::vector<CountSampler> samplers;
  };
  struct Mixture {
    std::vector<double> selection;
    std::vector<double> inclusion;
    std::vector<double> share;
  };
  // What a component's linked layers remember (router_links.cpp).
  struct ComponentLinks {
    std::vector<std::vector<double>> correction;  // per layer: exact over approximate inclusion of p
    std::vector<double> time;                     // per layer: approximate_inclusion's last solution
    int counts_layer = -1;                        // the layer and tokens of `counts` (-1: none)
    std::int64_t counts_tokens = -1;
    std::vector<std::int32_t> counts;
    int experts_layer = -1;  // the same for `experts` (the per-token path)
    std::int64_t experts_tokens = -1;
    std::vector<int> experts;       // [token * top_k + choice] at experts_layer
    std::vector<int> next_experts;  // the layer being drawn
  };
  struct Links {
    double strength = 1;
    std::vector<std::vector<TransitionMatrix>> transitions;  // [class][layer pair]: M's F part
    std::vector<std::vector<std::vector<AliasTable>>> rows;  // [class][layer pair][expert]: its rows
    std::vector<std::vector<AliasTable>> remainders;         // [class][layer pair] (TransitionMatrix)
    std::vector<ComponentLinks> components;
    std::vector<double> selection;  // one call's q
    std::vector<double> inclusion;  // and its inclusion probabilities
    InclusionCountSampler sampler;
  };

  Component build_component(const PopularityTable& table, int traffic_class) const;
  void build_mixture();
  void sample_component(Component& component, int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // Whether sample_component takes the per-token path (its cost estimate).
  bool per_token_is_cheaper(const Component& component, int layer, std::int64_t tokens) const;
  void sample_per_token(const Layer& layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // The per-token path of one component of a mixture: each choice adds 1 to its class's counts, rotated,
  // without the scratch counts and accumulate() (the same draws as sample_per_token).
  void add_per_token(const Layer& layer, std::int64_t tokens, int traffic_class);
  void sample_grouped(const Layer& layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // sample_component and sample_per_token, linked to the component's previous layer when the layers
  // are linked (router_links.cpp).
  void sample_linked(int component, int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  void sample_linked_per_token(int component, int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  void sample_following(int component, int layer, std::int64_t tokens, std::span<std::int32_t> counts);
  // Adds the scratch counts of one component to its class's counts, rotated.
  void accumulate(int traffic_class);
  // counts = the sum of the classes' counts: components add into their class's counts only, so that a
  // choice costs one increment, not two.
  void sum_classes(std::span<std::int32_t> counts) const;
  void split_tokens(std::int64_t tokens);
  void replay(int layer, std::span<const std::int64_t> component_tokens, std::span<std::int32_t> counts);
  void check(int layer, std::span<const std::int64_t> component_tokens, std::span<std::int32_t> counts) const;

  int experts_;
  int top_k_;
  std::vector<std::string> class_names_;
  std::vector<int> first_component_;  // per class; its groups follow
  std::vector<Component> components_;
  std::vector<Mixture> mixture_;  // per layer
  ClassSource class_source_ = ClassSource::mix;
  std::vector<MixPoint> mix_;
  bool interpolate_ = false;
  std::vector<int> class_of_workload_class_;
  RotationSpec rotation_;
  std::uint64_t assignment_seed_ = 0;
  int rotation_offset_ = 0;
  std::unique_ptr<RecordedRouting> recorded_;
  SimTime now_ = 0;
  std::unique_ptr<Links> links_;  // null: layers independent

  std::vector<std::int32_t> class_counts_;      // [class][expert] of the last sample
  std::vector<std::int32_t> component_counts_;  // one component's counts while they are added up
  std::vector<std::int64_t> split_;             // tokens per component of sample_counts(layer, tokens)
  std::vector<double> split_remainders_;        // their fractional parts while tokens are split
  std::vector<double> weights_;                 // class weights while tokens are split
  std::vector<int> chosen_;                     // one token's experts on the per-token path
  std::vector<std::uint64_t> taken_;            // the same as a bit set over experts (zero between tokens)
  std::vector<std::int64_t> choices_left_;      // tokens by choices left (0 .. top_k) on the grouped chain
  Rng rng_;
};

// The router of a spec for a model shape; all randomness from make_rng(seed, RngStream::routing, ...).
// Class c's popularity is built with the seed itself for c = 0 and a seed derived from (seed, c)
// otherwise, so that two classes of one synthetic kind have different hot experts. A replayed trace
// starts at a recorded position drawn from the seed (RecordedRouting).
std::unique_ptr<Router> make_router(const RouterSpec& spec, int moe_layers, int experts, int top_k,
                                    std::uint64_t seed);

}  // namespace moesim
