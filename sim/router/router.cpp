#include "sim/router/router.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/top_k.hpp"
#include "sim/router/inclusion.hpp"

namespace moesim {

namespace {

// Cost of one per-token choice relative to the per-expert path's cost per expert, measured by
// tests/router/router_benchmark.cpp (~4.6 ns against ~6 ns at 256 experts).
constexpr double kPerTokenChoiceCost = 0.8;
// Up to this many experts the grouped chain's experts * top_k draws are cheap, and it is exact for
// uniform routing, where the per-expert path's variance error (~1 / experts) would show.
constexpr int kGroupedChainMaxExperts = 32;
// With several components, a component's per-expert sampler rarely has its tables ready for its
// token count (each component's count changes from step to step): rebuilding them costs about this
// many times the per-expert draw (measured on the DeepSeek-V3 replay with two classes), so the
// per-token path is taken up to that cost instead. The one-component router keeps the original
// rule, so its reports are unchanged. (Since new token counts get cumulative tables first, 1.5 and 2
// were measured too: no faster.)
constexpr double kUnpreparedSamplerCost = 4.0;
// Sub-streams of RngStream::routing: 1 builds synthetic tables (popularity.cpp); these follow.
constexpr std::uint64_t kAffinityStream = 0x100;    // + class: the affinity groups' Dirichlet draws
constexpr std::uint64_t kAssignmentStream = 0x200;  // a request's class and group
constexpr std::uint64_t kClassSeedStream = 0x300;   // + class: the seed of class c > 0's table
// Dirichlet parameters of experts the class never picks: their groups keep a negligible share.
constexpr double kSmallestAlpha = 1e-6;

// A uniform number in [0, 1) from (seed, id, salt), the same whenever it is asked for.
double unit_hash(std::uint64_t seed, std::uint64_t id, std::uint64_t salt) {
  std::uint64_t state = seed ^ (id * 0x9E3779B97F4A7C15ULL) ^ (salt * 0xD1B54A32D192ED03ULL);
  splitmix64(state);
  return static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
}

}  // namespace

Router::Component Router::build_component(const PopularityTable& table, int traffic_class) const {
  Component component;
  component.traffic_class = traffic_class;
  // Layers that are permutations of one another (Zipf, a recorded layer reused) share the costly
  // inclusion computation: it is done once per distinct sorted vector.
  std::vector<std::vector<double>> sorted_seen, sorted_inclusion;
  std::vector<int> order(experts_);
  std::vector<double> sorted(experts_);
  component.layers.resize(table.layers());
  for (int index = 0; index < table.layers(); ++index) {
    Layer& layer = component.layers[index];
    const auto selection = table.layer(index);
    layer.selection.assign(selection.begin(), selection.end());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return selection[a] > selection[b]; });
    for (int i = 0; i < experts_; ++i)
      sorted[i] = selection[order[i]];
    auto seen = std::find(sorted_seen.begin(), sorted_seen.end(), sorted);
    if (seen == sorted_seen.end()) {
      sorted_seen.push_back(sorted);
      auto inclusion = successive_inclusion_probabilities(sorted, top_k_);
      // Quadrature leaves sum pi = top_k to ~1e-9; rescaling makes the means add up exactly.
      const double total = std::accumulate(inclusion.begin(), inclusion.end(), 0.0);
      for (double& pi : inclusion)
        pi = std::min(1.0, pi * top_k_ / total);
      sorted_inclusion.push_back(inclusion);
      component.samplers.emplace_back(inclusion, top_k_);
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
      layer.share.push_back(layer.inclusion[e] / top_k_);
    layer.first_choice = AliasTable(layer.selection);
    layer.by_popularity = order;
    layer.mass_from.assign(experts_ + 1, 0.0);
    for (int position = experts_ - 1; position >= 0; --position)
      layer.mass_from[position] =
          layer.mass_from[position + 1] + layer.inclusion[layer.by_popularity[position]];
    const double taken = std::accumulate(sorted.begin(), sorted.begin() + (top_k_ - 1), 0.0);
    layer.rejection_factor = 1.0 / std::max(1.0 - taken, 1e-12);
  }
  return component;
}

namespace {

// Beyond this inclusion probability the selection probability that reaches it is numerically
// unbounded (as for empirical counts, popularity.cpp).
constexpr double kMaxReachableInclusion = 0.999;

// The first-choice table whose successive-sampling inclusion probabilities are top_k x each expert's
// share of a routing trace's assignments. Assumption (moesim's own): where no such table exists
// (a share too close to 1 / top_k), the shares themselves stand in. The table only describes the
// trace (selection and inclusion probabilities); popularity() holds the recorded shares exactly and the
// counts are replayed.
PopularityTable recorded_popularity(const RecordedRouting& recorded) {
  const RoutingTraceHeader& header = recorded.summary().header;
  PopularityTable table(header.layers, header.experts);
  std::vector<double> inclusion(static_cast<std::size_t>(header.experts));
  for (int layer = 0; layer < header.layers; ++layer) {
    const auto shares = recorded.popularity(layer);
    for (std::size_t e = 0; e < inclusion.size(); ++e)
      inclusion[e] = shares[e] * header.top_k;
    const bool reachable = *std::max_element(inclusion.begin(), inclusion.end()) < kMaxReachableInclusion;
    const auto selection =
        reachable ? selection_for_inclusion(inclusion, header.top_k) : std::vector<double>{};
    const auto source = selection.empty() ? shares : std::span<const double>(selection);
    std::copy(source.begin(), source.end(), table.layer(layer).begin());
  }
  return table;
}

}  // namespace

Router::Router(std::unique_ptr<RecordedRouting> recorded)
    : Router(recorded_popularity(*recorded), recorded->summary().header.top_k, 0) {
  for (int layer = 0; layer < moe_layers(); ++layer) {
    const auto shares = recorded->popularity(layer);
    mixture_[static_cast<std::size_t>(layer)].share.assign(shares.begin(), shares.end());
  }
  recorded_ = std::move(recorded);
}

Router::Router(const PopularityTable& table, int top_k, std::uint64_t seed)
    : experts_(table.experts()),
      top_k_(top_k),
      class_names_{"default"},
      first_component_{0},
      mix_{MixPoint{0, {1.0}}},
      assignment_seed_(make_rng(seed, RngStream::routing, kAssignmentStream).next_u64()),
      class_counts_(table.experts()),
      component_counts_(table.experts()),
      split_(1),
      split_remainders_(1),
      weights_(1),
      chosen_(top_k),
      taken_((static_cast<std::size_t>(experts_) + 63) / 64),
      choices_left_(top_k + 1),
      rng_(make_rng(seed, RngStream::routing)) {
  if (top_k < 1 || top_k > experts_) throw InternalError("Router: top_k outside [1, experts]");
  components_.push_back(build_component(table, 0));
  build_mixture();
}

Router::Router(const RouterSpec& spec, const std::vector<std::vector<PopularityTable>>& class_tables,
               int top_k, std::uint64_t seed)
    : experts_(class_tables.at(0).at(0).experts()),
      top_k_(top_k),
      class_source_(spec.class_source),
      mix_(spec.mix),
      interpolate_(spec.interpolate),
      class_of_workload_class_(spec.class_of_traffic_class),
      rotation_(spec.rotation),
      chosen_(top_k),
      taken_((static_cast<std::size_t>(experts_) + 63) / 64),
      choices_left_(top_k + 1),
      rng_(make_rng(seed, RngStream::routing)) {
  if (top_k < 1 || top_k > experts_) throw InternalError("Router: top_k outside [1, experts]");
  const auto classes = spec.resolved_classes();
  if (classes.size() != class_tables.size()) throw InternalError("Router: one table list per class expected");
  assignment_seed_ = make_rng(seed, RngStream::routing, kAssignmentStream).next_u64();
  for (std::size_t c = 0; c < classes.size(); ++c) {
    class_names_.push_back(classes[c].name);
    first_component_.push_back(static_cast<int>(components_.size()));
    for (const auto& table : class_tables[c]) {
      if (table.experts() != experts_ || table.layers() != class_tables[0][0].layers()) {
        throw InternalError("Router: class tables of different shapes");
      }
      components_.push_back(build_component(table, static_cast<int>(c)));
    }
  }
  if (mix_.empty()) mix_.push_back(MixPoint{0, std::vector<double>(classes.size(), 1.0 / classes.size())});
  class_counts_.assign(classes.size() * experts_, 0);
  component_counts_.assign(experts_, 0);
  split_.assign(components_.size(), 0);
  split_remainders_.assign(components_.size(), 0.0);
  weights_.assign(classes.size(), 0.0);
  build_mixture();
}

void Router::build_mixture() {
  // Expected routing of the whole traffic (EPLB placement, reroute weights, inspect): the class
  // weights at time 0, each class's groups equally likely. Assumption (moesim's own): when classes come
  // from the workload (trace column, tenant map) they weigh equally, since the trace's class frequencies
  // are not known before it is replayed.
  std::vector<double> class_weight(classes(), 1.0 / classes());
  if (class_source_ == ClassSource::mix) class_weight = mix_.front().weights;
  mixture_.assign(components_.front().layers.size(), Mixture{});
  for (std::size_t layer = 0; layer < mixture_.size(); ++layer) {
    Mixture& mixture = mixture_[layer];
    mixture.selection.assign(experts_, 0.0);
    mixture.inclusion.assign(experts_, 0.0);
    mixture.share.assign(experts_, 0.0);
    for (int c = 0; c < classes(); ++c) {
      const int first = first_component_[c];
      const int last = c + 1 < classes() ? first_component_[c + 1] : components();
      const double weight = class_weight[c] / (last - first);
      for (int k = first; k < last; ++k) {
        const Layer& source = components_[k].layers[layer];
        for (int e = 0; e < experts_; ++e) {
          mixture.selection[e] += weight * source.selection[e];
          mixture.inclusion[e] += weight * source.inclusion[e];
          mixture.share[e] += weight * source.share[e];
        }
      }
    }
    if (components() == 1) {
      // Exactly the component's own values (no rounding through the weights).
      const Layer& source = components_.front().layers[layer];
      mixture.selection = source.selection;
      mixture.inclusion = source.inclusion;
      mixture.share = source.share;
    }
  }
}

void Router::class_weights(SimTime time, std::span<double> weights) const {
  if (class_source_ != ClassSource::mix) {
    std::fill(weights.begin(), weights.end(), 1.0 / classes());
    return;
  }
  const double seconds = ns_to_seconds(time);
  std::size_t point = 0;
  while (point + 1 < mix_.size() && mix_[point + 1].at_s <= seconds)
    ++point;
  const auto& from = mix_[point].weights;
  if (!interpolate_ || point + 1 == mix_.size()) {
    std::copy(from.begin(), from.end(), weights.begin());
    return;
  }
  const auto& to = mix_[point + 1].weights;
  const double blend = (seconds - mix_[point].at_s) / (mix_[point + 1].at_s - mix_[point].at_s);
  for (std::size_t c = 0; c < from.size(); ++c)
    weights[c] = from[c] + blend * (to[c] - from[c]);
}

int Router::component_for(std::uint64_t request_id, std::int32_t workload_class, SimTime arrival) const {
  if (components() == 1) return 0;
  int traffic_class = -1;
  if (class_source_ == ClassSource::mix) {
    // On the stack: this runs per request.
    std::array<double, kMaxTrafficClasses> weights{};
    class_weights(arrival, std::span<double>(weights.data(), static_cast<std::size_t>(classes())));
    const double draw = unit_hash(assignment_seed_, request_id, 0);
    double cumulative = 0;
    traffic_class = classes() - 1;
    for (int c = 0; c < classes(); ++c) {
      cumulative += weights[static_cast<std::size_t>(c)];
      if (draw < cumulative) {
        traffic_class = c;
        break;
      }
    }
    // Rounding can leave the last classes' cumulative short of 1: fall back to the last with weight.
    while (traffic_class > 0 && weights[static_cast<std::size_t>(traffic_class)] == 0)
      --traffic_class;
  } else if (class_source_ == ClassSource::trace_column && class_of_workload_class_.empty()) {
    traffic_class = workload_class;
  } else if (workload_class >= 0 &&
             static_cast<std::size_t>(workload_class) < class_of_workload_class_.size()) {
    traffic_class = class_of_workload_class_[static_cast<std::size_t>(workload_class)];
  }
  if (traffic_class < 0 || traffic_class >= classes()) {
    throw InputError(
        "router", "class_from",
        fmt::format("request {} has workload class {}, which maps to none of the {} router classes",
                    request_id, workload_class, classes()));
  }
  const int first = first_component_[traffic_class];
  const int groups =
      (traffic_class + 1 < classes() ? first_component_[traffic_class + 1] : components()) - first;
  if (groups == 1) return first;
  return first + static_cast<int>(unit_hash(assignment_seed_, request_id, 1) * groups);
}

void Router::set_time(SimTime now) {
  now_ = now;
  if (rotation_.period_s <= 0) return;
  const auto periods = static_cast<std::int64_t>(std::floor(ns_to_seconds(now) / rotation_.period_s));
  rotation_offset_ =
      static_cast<int>((periods % experts_) * (rotation_.experts_per_period % experts_) % experts_);
}

void Router::check(int layer, std::span<const std::int64_t> component_tokens,
                   std::span<std::int32_t> counts) const {
  bool valid = layer >= 0 && layer < moe_layers() && static_cast<int>(counts.size()) == experts_ &&
               static_cast<int>(component_tokens.size()) == components();
  std::int64_t total = 0;
  for (const std::int64_t tokens : component_tokens) {
    valid = valid && tokens >= 0;
    total += tokens;
  }
  if (!valid || total > std::numeric_limits<std::int32_t>::max()) {
    throw InternalError(fmt::format(
        "Router::sample_counts: layer {} of {}, {} tokens in {} components of {}, {} "
        "counts for {} experts",
        layer, moe_layers(), total, component_tokens.size(), components(), counts.size(), experts_));
  }
}

void Router::split_tokens(std::int64_t tokens) {
  if (tokens < 0) throw InternalError("Router::sample_counts: negative token count");
  if (components() == 1) {
    split_[0] = tokens;
    return;
  }
  class_weights(now_, weights_);
  // Largest remainders over components (ties to the lower component): each class's weight spread
  // over its groups.
  std::int64_t given = 0;
  for (int k = 0; k < components(); ++k) {
    const int c = components_[k].traffic_class;
    const int groups = (c + 1 < classes() ? first_component_[c + 1] : components()) - first_component_[c];
    const double exact = static_cast<double>(tokens) * weights_[c] / groups;
    split_[k] = static_cast<std::int64_t>(std::floor(exact));
    split_remainders_[k] = weights_[c] > 0 ? exact - static_cast<double>(split_[k]) : -1.0;
    given += split_[k];
  }
  for (; given < tokens; ++given) {
    auto largest = std::max_element(split_remainders_.begin(), split_remainders_.end());
    if (*largest < 0) {
      // Rounding left more tokens than remainders: another round over the classes with weight.
      for (int k = 0; k < components(); ++k)
        split_remainders_[k] = weights_[components_[k].traffic_class] > 0 ? 0.0 : -1.0;
      largest = std::max_element(split_remainders_.begin(), split_remainders_.end());
    }
    ++split_[static_cast<std::size_t>(largest - split_remainders_.begin())];
    *largest = -1.0;
  }
}

void Router::sample_counts(int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  split_tokens(tokens);
  sample_counts(layer, split_, counts);
}

void Router::sample_counts_per_token(int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  split_tokens(tokens);
  sample_counts_per_token(layer, split_, counts);
}

void Router::sample_counts(int layer, std::span<const std::int64_t> component_tokens,
                           std::span<std::int32_t> counts) {
  check(layer, component_tokens, counts);
  if (recorded_ != nullptr) {
    replay(layer, component_tokens, counts);
    return;
  }
  if (components() == 1 && rotation_offset_ == 0) {
    sample_linked(0, layer, component_tokens[0], counts);
    std::copy(counts.begin(), counts.end(), class_counts_.begin());
    return;
  }
  std::fill(class_counts_.begin(), class_counts_.end(), 0);
  for (int k = 0; k < components(); ++k) {
    if (component_tokens[k] == 0) continue;
    if (links_ == nullptr && per_token_is_cheaper(components_[k], layer, component_tokens[k])) {
      add_per_token(components_[k].layers[layer], component_tokens[k], components_[k].traffic_class);
      continue;
    }
    sample_linked(k, layer, component_tokens[k], component_counts_);
    accumulate(components_[k].traffic_class);
  }
  sum_classes(counts);
}

void Router::sample_counts_per_token(int layer, std::span<const std::int64_t> component_tokens,
                                     std::span<std::int32_t> counts) {
  check(layer, component_tokens, counts);
  if (recorded_ != nullptr) {
    replay(layer, component_tokens, counts);
    return;
  }
  std::fill(class_counts_.begin(), class_counts_.end(), 0);
  for (int k = 0; k < components(); ++k) {
    if (component_tokens[k] == 0) continue;
    sample_linked_per_token(k, layer, component_tokens[k], component_counts_);
    accumulate(components_[k].traffic_class);
  }
  sum_classes(counts);
}

void Router::replay(int layer, std::span<const std::int64_t> component_tokens,
                    std::span<std::int32_t> counts) {
  const std::int64_t tokens =
      std::accumulate(component_tokens.begin(), component_tokens.end(), std::int64_t{0});
  recorded_->sample_counts(layer, tokens, counts);
  std::copy(counts.begin(), counts.end(), class_counts_.begin());
}

void Router::accumulate(int traffic_class) {
  std::int32_t* own = class_counts_.data() + std::size_t(traffic_class) * experts_;
  int target = rotation_offset_;
  for (int e = 0; e < experts_; ++e) {
    own[target] += component_counts_[e];
    if (++target == experts_) target = 0;
  }
}

void Router::sum_classes(std::span<std::int32_t> counts) const {
  std::copy_n(class_counts_.begin(), experts_, counts.begin());
  std::int32_t* total = counts.data();
  for (int c = 1; c < classes(); ++c) {
    const std::int32_t* own = class_counts_.data() + std::size_t(c) * experts_;
    for (int e = 0; e < experts_; ++e)
      total[e] += own[e];
  }
}

bool Router::per_token_is_cheaper(const Component& component, int layer, std::int64_t tokens) const {
  const Layer& state = component.layers[layer];
  const double per_token_cost =
      kPerTokenChoiceCost * static_cast<double>(tokens) * top_k_ * state.rejection_factor;
  double per_expert_cost = experts_;
  if (components() > 1 && experts_ > kGroupedChainMaxExperts &&
      !component.samplers[state.sampler].prepared_for(tokens)) {
    per_expert_cost *= kUnpreparedSamplerCost;
  }
  return per_token_cost < per_expert_cost;
}

void Router::sample_component(Component& component, int layer, std::int64_t tokens,
                              std::span<std::int32_t> counts) {
  const Layer& state = component.layers[layer];
  if (per_token_is_cheaper(component, layer, tokens)) {
    sample_per_token(state, tokens, counts);
  } else if (experts_ <= kGroupedChainMaxExperts) {
    sample_grouped(state, tokens, counts);
  } else {
    component.samplers[state.sampler].sample(rng_, tokens, state.by_popularity, counts);
  }
}

namespace {

// Top-k without replacement per token from the first-choice table, top_k a compile-time constant: the
// unrolled choices keep a token's experts in registers and compare each draw with all of them, with no
// memory between a choice and the next draw's check.
template <int TopK, typename OnChoice>
void draw_fixed_top_k(const AliasTable& first_choice, Rng& rng, std::int64_t tokens, OnChoice on_choice) {
  for (std::int64_t token = 0; token < tokens; ++token) {
    std::array<int, TopK> chosen;
#pragma GCC unroll 8
    for (int choice = 0; choice < TopK; ++choice) {
      int expert;
      bool repeated;
      // Redrawing until an expert not yet taken comes up draws from p restricted to the rest.
      do {
        expert = first_choice.sample(rng);
        repeated = false;
#pragma GCC unroll 8
        for (int before = 0; before < choice; ++before)
          repeated |= chosen[before] == expert;
      } while (repeated);
      chosen[choice] = expert;
      on_choice(expert);
    }
  }
}

// The same draws for any top_k, with a bit set over the experts (`taken`, zeroed, zeroed again on return)
// and `chosen` of top_k entries.
template <typename OnChoice>
void draw_any_top_k(const AliasTable& first_choice, Rng& rng, std::uint64_t* taken, int* chosen, int top_k,
                    std::int64_t tokens, OnChoice on_choice) {
  for (std::int64_t token = 0; token < tokens; ++token) {
    for (int choice = 0; choice < top_k; ++choice) {
      int expert;
      do {
        expert = first_choice.sample(rng);
      } while ((taken[expert >> 6] >> (expert & 63)) & 1);
      taken[expert >> 6] |= std::uint64_t{1} << (expert & 63);
      chosen[choice] = expert;
      on_choice(expert);
    }
    for (int choice = 0; choice < top_k; ++choice)
      taken[chosen[choice] >> 6] = 0;
  }
}

// `tokens` tokens' top_k choices from the first-choice table; `on_choice(expert)` for each choice, in
// draw order.
template <typename OnChoice>
void draw_tokens(const AliasTable& first_choice, Rng& generator, std::uint64_t* taken, int* chosen, int top_k,
                 std::int64_t tokens, OnChoice on_choice) {
  // A local copy keeps the generator's state in registers across the stores to the counts.
  Rng rng = generator;
  with_top_k(top_k, [&](auto fixed) {
    if constexpr (decltype(fixed)::value > 0) {
      draw_fixed_top_k<decltype(fixed)::value>(first_choice, rng, tokens, on_choice);
    } else {
      draw_any_top_k(first_choice, rng, taken, chosen, top_k, tokens, on_choice);
    }
  });
  generator = rng;
}

}  // namespace

void Router::sample_per_token(const Layer& layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  std::fill(counts.begin(), counts.end(), 0);
  std::int32_t* count = counts.data();
  draw_tokens(layer.first_choice, rng_, taken_.data(), chosen_.data(), top_k_, tokens,
              [count](int expert) { ++count[expert]; });
}

void Router::add_per_token(const Layer& layer, std::int64_t tokens, int traffic_class) {
  std::int32_t* own = class_counts_.data() + std::size_t(traffic_class) * experts_;
  const int offset = rotation_offset_;
  const int experts = experts_;
  draw_tokens(layer.first_choice, rng_, taken_.data(), chosen_.data(), top_k_, tokens,
              [own, offset, experts](int expert) {
                int target = expert + offset;
                if (target >= experts) target -= experts;
                ++own[target];
              });
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
  if (!spec.replay_file.empty()) {
    return std::make_unique<Router>(
        std::make_unique<RecordedRouting>(spec.replay_file, moe_layers, experts, top_k, seed));
  }
  const auto classes = spec.resolved_classes();
  if (classes.size() == 1 && classes[0].concentration == 0 && !spec.hierarchical()) {
    auto router = std::make_unique<Router>(
        build_popularity(classes[0].popularity, moe_layers, experts, top_k, seed), top_k, seed);
    router->link_layers(spec.correlation, seed);
    return router;
  }
  std::vector<std::vector<PopularityTable>> tables;
  std::vector<double> alpha(experts);
  for (std::size_t c = 0; c < classes.size(); ++c) {
    std::uint64_t class_seed = seed;
    if (c > 0) class_seed = make_rng(seed, RngStream::routing, kClassSeedStream + c).next_u64();
    PopularityTable base = build_popularity(classes[c].popularity, moe_layers, experts, top_k, class_seed);
    std::vector<PopularityTable> groups;
    if (classes[c].concentration == 0) {
      groups.push_back(std::move(base));
    } else {
      Rng rng = make_rng(seed, RngStream::routing, kAffinityStream + c);
      for (int g = 0; g < classes[c].affinity_groups; ++g) {
        PopularityTable group(moe_layers, experts);
        for (int layer = 0; layer < moe_layers; ++layer) {
          const auto mean = base.layer(layer);
          for (int e = 0; e < experts; ++e)
            alpha[e] = std::max(classes[c].concentration * mean[e], kSmallestAlpha);
          draw_dirichlet(rng, alpha, group.layer(layer));
        }
        groups.push_back(std::move(group));
      }
    }
    tables.push_back(std::move(groups));
  }
  auto router = std::make_unique<Router>(spec, tables, top_k, seed);
  router->link_layers(spec.correlation, seed);
  return router;
}

}  // namespace moesim
