// Router: cross-layer correlation (router.hpp describes the model).
#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/router/router.hpp"

namespace moesim {

namespace {

// Sub-stream of RngStream::routing for the synthetic successors (router.cpp holds 0x100 .. 0x300).
constexpr std::uint64_t kSuccessorStream = 0x400;

}  // namespace

void Router::link_layers(const CorrelationSpec& correlation, std::uint64_t seed) {
  if (!correlation.active() || recorded_ != nullptr || moe_layers() < 2) return;
  auto links = std::make_unique<Links>();
  links->strength = correlation.strength;
  if (correlation.kind == CorrelationKind::synthetic && correlation.successors > experts_) {
    throw InputError(
        "router", "correlation.successors",
        fmt::format("expected at most the model's {} experts, got {}", experts_, correlation.successors));
  }
  const auto patterns = correlation.kind == CorrelationKind::fitted
                            ? transition_patterns(correlation, moe_layers(), experts_)
                            : std::vector<TransitionMatrix>{};
  // Assumption (moesim's own): a class's affinity groups share one matrix per layer pair, balanced
  // to the class's mean popularity (their own first choices still make the (1 - rho) part).
  std::vector<double> share_from(experts_), selection_to(experts_);
  Rng successor_rng = make_rng(seed, RngStream::routing, kSuccessorStream);
  for (int c = 0; c < classes(); ++c) {
    const int first = first_component_[c];
    const int last = c + 1 < classes() ? first_component_[c + 1] : components();
    auto& transitions = links->transitions.emplace_back();
    auto& rows = links->rows.emplace_back();
    for (int layer = 0; layer + 1 < moe_layers(); ++layer) {
      std::fill(share_from.begin(), share_from.end(), 0.0);
      std::fill(selection_to.begin(), selection_to.end(), 0.0);
      for (int k = first; k < last; ++k) {
        const auto& from = components_[k].layers[layer].share;
        const auto& to = components_[k].layers[layer + 1].selection;
        for (int e = 0; e < experts_; ++e) {
          share_from[e] += from[e] / (last - first);
          selection_to[e] += to[e] / (last - first);
        }
      }
      TransitionMatrix matrix = balance_transition(
          patterns.empty() ? synthetic_pattern(successor_rng, correlation.successors, selection_to)
                           : patterns[layer],
          share_from, selection_to);
      links->remainders.resize(static_cast<std::size_t>(c) + 1);
      links->remainders[c].push_back(matrix.remainder.empty() ? AliasTable() : AliasTable(matrix.remainder));
      auto& row_tables = rows.emplace_back();
      for (int from = 0; from < experts_; ++from)
        row_tables.emplace_back(matrix.probabilities(from));
      transitions.push_back(std::move(matrix));
    }
  }
  std::vector<double> ones(experts_, 1.0), approximate(experts_);
  for (const Component& component : components_) {
    ComponentLinks& link = links->components.emplace_back();
    link.counts.assign(experts_, 0);
    for (const Layer& layer : component.layers) {
      double time = 0;
      approximate_inclusion(layer.selection, top_k_, ones, time, approximate);
      auto& correction = link.correction.emplace_back(experts_, 1.0);
      for (int e = 0; e < experts_; ++e) {
        if (approximate[e] > 0) correction[e] = layer.inclusion[e] / approximate[e];
      }
      link.time.push_back(time);
    }
  }
  links->selection.assign(experts_, 0.0);
  links->inclusion.assign(experts_, 0.0);
  links_ = std::move(links);
}

double Router::top_successor_probability(int layer) const {
  if (links_ == nullptr || layer < 0 || layer + 1 >= moe_layers()) return 0.0;
  const double rho = links_->strength;
  std::vector<double> row(experts_);
  double total = 0;
  for (int c = 0; c < classes(); ++c) {
    const Component& component = components_[first_component_[c]];
    const TransitionMatrix& matrix = links_->transitions[c][layer];
    const auto& share = component.layers[layer].share;
    const auto& next = component.layers[layer + 1].selection;
    double weighted = 0;
    for (int from = 0; from < experts_; ++from) {
      for (int e = 0; e < experts_; ++e)
        row[e] = (1 - rho) * next[e] +
                 (matrix.remainder.empty() ? 0.0 : rho * (1 - matrix.kept) * matrix.remainder[e]);
      const auto columns = matrix.columns(from);
      const auto probabilities = matrix.probabilities(from);
      for (std::size_t j = 0; j < columns.size(); ++j)
        row[columns[j]] += rho * matrix.kept * probabilities[j];
      weighted += share[from] * *std::max_element(row.begin(), row.end());
    }
    total += weighted / classes();
  }
  return total;
}

void Router::sample_linked(int component, int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  if (links_ == nullptr) {
    sample_component(components_[component], layer, tokens, counts);
    return;
  }
  ComponentLinks& link = links_->components[component];
  if (layer > 0 && tokens > 0 && link.counts_layer == layer - 1 && link.counts_tokens == tokens) {
    sample_following(component, layer, tokens, counts);
  } else {
    sample_component(components_[component], layer, tokens, counts);
  }
  link.counts_layer = layer;
  link.counts_tokens = tokens;
  std::copy(counts.begin(), counts.end(), link.counts.begin());
}

void Router::sample_following(int component, int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  ComponentLinks& link = links_->components[component];
  const Layer& next = components_[component].layers[layer];
  const TransitionMatrix& matrix = links_->transitions[components_[component].traffic_class][layer - 1];
  const double rho = links_->strength;
  auto& selection = links_->selection;
  for (int e = 0; e < experts_; ++e)
    selection[e] = (1 - rho) * next.selection[e];
  if (!matrix.remainder.empty()) {
    for (int e = 0; e < experts_; ++e)
      selection[e] += rho * (1 - matrix.kept) * matrix.remainder[e];
  }
  const double per_assignment = rho * matrix.kept / (static_cast<double>(tokens) * top_k_);
  for (int from = 0; from < experts_; ++from) {
    if (link.counts[from] == 0) continue;
    const double weight = link.counts[from] * per_assignment;
    const auto columns = matrix.columns(from);
    const auto probabilities = matrix.probabilities(from);
    for (std::size_t j = 0; j < columns.size(); ++j)
      selection[columns[j]] += weight * probabilities[j];
  }
  approximate_inclusion(selection, top_k_, link.correction[layer], link.time[layer], links_->inclusion);
  links_->sampler.sample(rng_, tokens, top_k_, links_->inclusion, counts);
}

void Router::sample_linked_per_token(int component, int layer, std::int64_t tokens,
                                     std::span<std::int32_t> counts) {
  const Layer& next = components_[component].layers[layer];
  if (links_ == nullptr) {
    sample_per_token(next, tokens, counts);
    return;
  }
  ComponentLinks& link = links_->components[component];
  const bool follows = layer > 0 && link.experts_layer == layer - 1 && link.experts_tokens == tokens;
  const int traffic_class = components_[component].traffic_class;
  const double rho = links_->strength;
  link.next_experts.resize(static_cast<std::size_t>(tokens) * top_k_);
  std::fill(counts.begin(), counts.end(), 0);
  const auto taken = [&](int choice, int expert) {
    return std::find(chosen_.begin(), chosen_.begin() + choice, expert) != chosen_.begin() + choice;
  };
  for (std::int64_t token = 0; token < tokens; ++token) {
    const std::size_t base = static_cast<std::size_t>(token) * top_k_;
    for (int choice = 0; choice < top_k_; ++choice) {
      int expert = -1;
      if (follows) {
        const int before = link.experts[base + choice];
        const TransitionMatrix& matrix = links_->transitions[traffic_class][layer - 1];
        const auto columns = matrix.columns(before);
        const auto probabilities = matrix.probabilities(before);
        // The row's mixture: its successors (rho kept), the remainder (rho (1 - kept)), p (1 - rho).
        const double row_part = rho * matrix.kept;
        const double remainder_part = rho - row_part;
        const double branch = rng_.uniform();
        if (branch < row_part) {
          expert = columns[links_->rows[traffic_class][layer - 1][before].sample(rng_)];
        } else if (branch < rho) {
          expert = links_->remainders[traffic_class][layer - 1].sample(rng_);
        } else {
          expert = next.first_choice.sample(rng_);
        }
        if (taken(choice, expert)) {
          // Redrawn from the mixture restricted to the experts not taken: the row and remainder
          // parts by a scan (their untaken mass may be tiny), the p part by redrawing below.
          double row_left = 0, remainder_left = 0, p_left = 1.0;
          for (std::size_t j = 0; j < columns.size(); ++j)
            row_left += taken(choice, columns[j]) ? 0.0 : probabilities[j];
          for (int e = 0; e < experts_ && remainder_part > 0; ++e)
            remainder_left += taken(choice, e) ? 0.0 : matrix.remainder[e];
          for (int c = 0; c < choice; ++c)
            p_left -= next.selection[chosen_[c]];
          const double row_weight = row_part * row_left;
          const double remainder_weight = remainder_part * remainder_left;
          const double pick =
              rng_.uniform() * (row_weight + remainder_weight + (1 - rho) * std::max(p_left, 0.0));
          expert = -1;
          if (pick < row_weight) {
            double draw = rng_.uniform() * row_left;
            for (std::size_t j = 0; j < columns.size(); ++j) {
              if (taken(choice, columns[j])) continue;
              expert = columns[j];
              draw -= probabilities[j];
              if (draw < 0) break;
            }
          } else if (pick < row_weight + remainder_weight) {
            double draw = rng_.uniform() * remainder_left;
            for (int e = 0; e < experts_; ++e) {
              if (taken(choice, e) || matrix.remainder[e] == 0) continue;
              expert = e;
              draw -= matrix.remainder[e];
              if (draw < 0) break;
            }
          }
        }
      }
      while (expert < 0 || taken(choice, expert))
        expert = next.first_choice.sample(rng_);
      chosen_[choice] = expert;
      link.next_experts[base + choice] = expert;
      ++counts[expert];
    }
  }
  std::swap(link.experts, link.next_experts);
  link.experts_layer = layer;
  link.experts_tokens = tokens;
}

}  // namespace moesim
