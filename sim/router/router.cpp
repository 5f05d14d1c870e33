#include "sim/router/router.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/router/inclusion.hpp"

namespace moesim {

namespace {

// Cost of one per-token choice relative to the per-expert path's cost per expert, measured by
// tests/router/router_benchmark.cpp (~4.6 ns against ~6 ns at 256 experts).
constexpr double kPerTokenChoiceCost = 0.8;
// Up to this many experts the grouped chain's experts * top_k draws are cheap, and it is exact for
// uniform routing, where the per-expert path's variance error (~1 / experts) would show.
constexpr int kGroupedChainMaxExperts = 32;

}  // namespace

Router::Router(const PopularityTable& table, int top_k, std::uint64_t seed)
    : experts_(table.experts()),
      top_k_(top_k),
      chosen_(top_k),
      choices_left_(top_k + 1),
      rng_(make_rng(seed, RngStream::routing)) {
  if (top_k < 1 || top_k > experts_) throw InternalError("Router: top_k outside [1, experts]");
  // Layers that are permutations of one another (Zipf, a recorded layer reused) share the costly
  // inclusion computation: it is done once per distinct sorted vector.
  std::vector<std::vector<double>> sorted_seen, sorted_inclusion;
  std::vector<int> order(experts_);
  std::vector<double> sorted(experts_);
  layers_.resize(table.layers());
  for (int index = 0; index < table.layers(); ++index) {
    Layer& layer = layers_[index];
    const auto selection = table.layer(index);
    layer.selection.assign(selection.begin(), selection.end());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return selection[a] > selection[b]; });
    for (int i = 0; i < experts_; ++i)
      sorted[i] = selection[order[i]];
    auto seen = std::find(sorted_seen.begin(), sorted_seen.end(), sorted);
    if (seen == sorted_seen.end()) {
      sorted_seen.push_back(sorted);
      auto inclusion = successive_inclusion_probabilities(sorted, top_k);
      // Quadrature leaves sum pi = top_k to ~1e-9; rescaling makes the means add up exactly.
      const double total = std::accumulate(inclusion.begin(), inclusion.end(), 0.0);
      for (double& pi : inclusion)
        pi = std::min(1.0, pi * top_k / total);
      sorted_inclusion.push_back(inclusion);
      samplers_.emplace_back(inclusion, top_k);
      seen = sorted_seen.end() - 1;
    }
    layer.sampler = static_cast<int>(seen - sorted_seen.begin());
    // Successive sampling's inclusion probabilities increase with the selection probability, so
    // `order` also sorts them.
    const auto& inclusion_sorted = sorted_inclusion[layer.sampler];
    layer.inclusion.resize(experts_);
    for (int i = 0; i < experts_; ++i)
      layer.inclusion[order[i]] = inclusion_sorted[i];
    for (int e = 0; e < experts_; ++e)
      layer.share.push_back(layer.inclusion[e] / top_k);
    layer.first_choice = AliasTable(layer.selection);
    layer.by_popularity = order;
    layer.mass_from.assign(experts_ + 1, 0.0);
    for (int position = experts_ - 1; position >= 0; --position)
      layer.mass_from[position] =
          layer.mass_from[position + 1] + layer.inclusion[layer.by_popularity[position]];
    const double taken = std::accumulate(sorted.begin(), sorted.begin() + (top_k - 1), 0.0);
    layer.rejection_factor = 1.0 / std::max(1.0 - taken, 1e-12);
  }
}

void Router::check(int layer, std::int64_t tokens, std::span<std::int32_t> counts) const {
  if (layer < 0 || layer >= moe_layers() || tokens < 0 || tokens > std::numeric_limits<std::int32_t>::max() ||
      static_cast<int>(counts.size()) != experts_) {
    throw InternalError(
        fmt::format("Router::sample_counts: layer {} of {}, {} tokens, {} counts for {} experts", layer,
                    moe_layers(), tokens, counts.size(), experts_));
  }
}

void Router::sample_counts(int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  check(layer, tokens, counts);
  const Layer& state = layers_[layer];
  const double per_token_cost =
      kPerTokenChoiceCost * static_cast<double>(tokens) * top_k_ * state.rejection_factor;
  if (per_token_cost < experts_) {
    sample_counts_per_token(layer, tokens, counts);
  } else if (experts_ <= kGroupedChainMaxExperts) {
    sample_grouped(state, tokens, counts);
  } else {
    samplers_[state.sampler].sample(rng_, tokens, state.by_popularity, counts);
  }
}

void Router::sample_counts_per_token(int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  check(layer, tokens, counts);
  const AliasTable& first_choice = layers_[layer].first_choice;
  std::fill(counts.begin(), counts.end(), 0);
  for (std::int64_t token = 0; token < tokens; ++token) {
    for (int choice = 0; choice < top_k_; ++choice) {
      int expert;
      // Redrawing until an expert not yet taken comes up draws from p restricted to the rest.
      do {
        expert = first_choice.sample(rng_);
      } while (std::find(chosen_.begin(), chosen_.begin() + choice, expert) != chosen_.begin() + choice);
      chosen_[choice] = expert;
      ++counts[expert];
    }
  }
}

void Router::sample_grouped(const Layer& layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  std::fill(choices_left_.begin(), choices_left_.end(), 0);
  choices_left_[top_k_] = tokens;
  for (int position = 0; position < experts_; ++position) {
    const int expert = layer.by_popularity[position];
    const int experts_left = experts_ - position;
    const double mass = layer.mass_from[position];
    std::int64_t taken = 0;
    // Ascending j: tokens that take this expert move to j - 1, which has had its draw already.
    for (int left = 1; left <= top_k_; ++left) {
      const std::int64_t group = choices_left_[left];
      if (group == 0) continue;
      double chance = 1.0;
      if (left < experts_left) chance = mass > 0 ? std::min(1.0, left * layer.inclusion[expert] / mass) : 0.0;
      const std::int64_t moving = sample_binomial(rng_, group, chance);
      choices_left_[left] -= moving;
      choices_left_[left - 1] += moving;
      taken += moving;
    }
    counts[expert] = static_cast<std::int32_t>(taken);
  }
}

std::unique_ptr<Router> make_router(const RouterSpec& spec, int moe_layers, int experts, int top_k,
                                    std::uint64_t seed) {
  return std::make_unique<Router>(build_popularity(spec, moe_layers, experts, top_k, seed), top_k, seed);
}

}  // namespace moesim
