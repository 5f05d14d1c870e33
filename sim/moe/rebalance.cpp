#include "sim/moe/rebalance.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/moe/eplb.hpp"

namespace moesim {

ExpertRebalancer::ExpertRebalancer(const RebalanceSpec& spec, const PlacementShape& shape, bool hierarchical,
                                   int moe_layers, double expert_bytes)
    : shape_(shape),
      hierarchical_(hierarchical),
      layers_(moe_layers),
      expert_bytes_(expert_bytes),
      min_gain_(spec.min_gain),
      every_(seconds_to_ns(spec.every_s)),
      gate_(std::min(seconds_to_ns(spec.window_s), every_)),
      next_(every_),
      buckets_(static_cast<std::size_t>(std::max(1L, std::lround(spec.window_s / spec.every_s)))) {
  if (every_ <= 0 || moe_layers < 1 || shape.experts < 1 || shape.ranks < 1) {
    throw InternalError(fmt::format("ExpertRebalancer: every {} ns, {} layers, {} experts, {} ranks", every_,
                                    moe_layers, shape.experts, shape.ranks));
  }
  loads_.assign(buckets_ * static_cast<std::size_t>(layers_) * static_cast<std::size_t>(shape.experts), 0);
}

void ExpertRebalancer::observe(int layer, std::span<const std::int32_t> counts) {
  if (!observing_) return;
  std::int64_t* load = bucket(current_, layer);
  for (std::size_t e = 0; e < counts.size(); ++e)
    load[e] += counts[e];
}

std::vector<int> ExpertRebalancer::match_ranks(const std::vector<int>& fresh, int layer,
                                               const ExpertPlacement& current) const {
  const int ranks = shape_.ranks;
  const int per_rank = current.slots_per_rank();
  const int per_node = hierarchical_ && shape_.ranks_per_node > 0 && shape_.ranks_per_node < ranks &&
                               ranks % shape_.ranks_per_node == 0
                           ? shape_.ranks_per_node
                           : ranks;
  std::vector<int> old_rank_of(static_cast<std::size_t>(ranks), -1);
  std::vector<char> taken(static_cast<std::size_t>(ranks), 0);
  std::vector<int> wanted(static_cast<std::size_t>(shape_.experts), 0);
  for (int pack = 0; pack < ranks; ++pack) {
    const int* pack_experts = fresh.data() + static_cast<std::size_t>(pack) * per_rank;
    int best = -1, best_overlap = -1;
    const int node_first = pack / per_node * per_node;
    for (int rank = node_first; rank < node_first + per_node; ++rank) {
      if (taken[static_cast<std::size_t>(rank)]) continue;
      for (int i = 0; i < per_rank; ++i)
        ++wanted[static_cast<std::size_t>(pack_experts[i])];
      int overlap = 0;
      for (int slot = rank * per_rank; slot < (rank + 1) * per_rank; ++slot) {
        int& left = wanted[static_cast<std::size_t>(current.slot_expert(layer, slot))];
        if (left > 0) {
          --left;
          ++overlap;
        }
      }
      for (int i = 0; i < per_rank; ++i)
        wanted[static_cast<std::size_t>(pack_experts[i])] = 0;
      if (overlap > best_overlap) {
        best = rank;
        best_overlap = overlap;
      }
    }
    taken[static_cast<std::size_t>(best)] = 1;
    old_rank_of[static_cast<std::size_t>(pack)] = best;
  }
  return old_rank_of;
}

double ExpertRebalancer::busiest_rank_load(std::span<const int> slot_experts,
                                           std::span<const double> load) const {
  std::vector<int> replicas(load.size(), 0);
  for (const int expert : slot_experts)
    ++replicas[static_cast<std::size_t>(expert)];
  const std::size_t per_rank = slot_experts.size() / static_cast<std::size_t>(shape_.ranks);
  double busiest = 0;
  for (std::size_t first = 0; first < slot_experts.size(); first += per_rank) {
    double rank_load = 0;
    for (std::size_t slot = first; slot < first + per_rank; ++slot) {
      const auto expert = static_cast<std::size_t>(slot_experts[slot]);
      rank_load += load[expert] / replicas[expert];
    }
    busiest = std::max(busiest, rank_load);
  }
  return busiest;
}

std::optional<RebalanceMove> ExpertRebalancer::rebalance(SimTime now, const ExpertPlacement& current) {
  if (current.slots() != shape_.experts + shape_.redundant_experts || current.ranks() != shape_.ranks) {
    throw InternalError("ExpertRebalancer::rebalance: the placement does not match the rebalancer's shape");
  }
  const auto experts = static_cast<std::size_t>(shape_.experts);
  std::vector<double> load(experts);
  std::vector<std::vector<int>> layouts;
  bool observed = false;
  int layers_kept = 0;
  for (int layer = 0; layer < layers_; ++layer) {
    std::fill(load.begin(), load.end(), 0.0);
    for (std::size_t b = 0; b < buckets_; ++b) {
      const std::int64_t* counts = bucket(b, layer);
      for (std::size_t e = 0; e < experts; ++e)
        load[e] += static_cast<double>(counts[e]);
    }
    observed = observed || std::any_of(load.begin(), load.end(), [](double value) { return value > 0; });
    std::vector<int> fresh =
        eplb_slot_experts(load, shape_.ranks, shape_.redundant_experts, shape_.ranks_per_node, hierarchical_);
    if (min_gain_ > 0) {
      std::vector<int> old_layout(static_cast<std::size_t>(current.slots()));
      for (int slot = 0; slot < current.slots(); ++slot)
        old_layout[static_cast<std::size_t>(slot)] = current.slot_expert(layer, slot);
      if (busiest_rank_load(fresh, load) > (1 - min_gain_) * busiest_rank_load(old_layout, load)) {
        fresh = std::move(old_layout);
        ++layers_kept;
      }
    }
    layouts.push_back(std::move(fresh));
  }
  // Forget the periods that passed and schedule the next rebalance after `now`.
  const SimTime periods = (now - next_) / every_ + 1;
  for (SimTime p = 0; p < std::min<SimTime>(periods, static_cast<SimTime>(buckets_)); ++p) {
    current_ = (current_ + 1) % buckets_;
    std::fill(bucket(current_, 0),
              bucket(current_, 0) + static_cast<std::ptrdiff_t>(layers_) * shape_.experts, std::int64_t{0});
  }
  next_ += periods * every_;
  if (!observed) return std::nullopt;

  const auto ranks = static_cast<std::size_t>(shape_.ranks);
  const int per_rank = current.slots_per_rank();
  const int per_node = shape_.ranks_per_node > 0 && shape_.ranks_per_node < shape_.ranks
                           ? shape_.ranks_per_node
                           : shape_.ranks;
  std::vector<double> bytes(ranks * ranks, 0.0);
  std::vector<double> sent(ranks, 0.0);
  std::vector<int> held(experts, 0);
  std::int64_t slots_moved = 0;
  for (int layer = 0; layer < layers_; ++layer) {
    const std::vector<int> old_rank_of =
        match_ranks(layouts[static_cast<std::size_t>(layer)], layer, current);
    std::vector<int> matched(layouts[static_cast<std::size_t>(layer)].size());
    for (std::size_t pack = 0; pack < ranks; ++pack) {
      const auto rank = static_cast<std::size_t>(old_rank_of[pack]);
      std::copy_n(
          layouts[static_cast<std::size_t>(layer)].begin() + static_cast<std::ptrdiff_t>(pack * per_rank),
          per_rank, matched.begin() + static_cast<std::ptrdiff_t>(rank * per_rank));
    }
    for (std::size_t rank = 0; rank < ranks; ++rank) {
      for (std::size_t slot = rank * per_rank; slot < (rank + 1) * per_rank; ++slot)
        ++held[static_cast<std::size_t>(current.slot_expert(layer, static_cast<int>(slot)))];
      for (std::size_t slot = rank * per_rank; slot < (rank + 1) * per_rank; ++slot) {
        const int expert = matched[slot];
        if (held[static_cast<std::size_t>(expert)] > 0) {
          --held[static_cast<std::size_t>(expert)];
          continue;
        }
        int source = -1;
        bool source_near = false;
        for (const int old_slot : current.expert_slots(layer, expert)) {
          const int candidate = current.slot_rank(old_slot);
          if (candidate == static_cast<int>(rank)) {
            source = candidate;  // a second copy of a local expert: copied in HBM, not over the network
            break;
          }
          const bool near = candidate / per_node == static_cast<int>(rank) / per_node;
          if (source < 0 || (near && !source_near) ||
              (near == source_near &&
               sent[static_cast<std::size_t>(candidate)] < sent[static_cast<std::size_t>(source)])) {
            source = candidate;
            source_near = near;
          }
        }
        if (source == static_cast<int>(rank)) continue;
        bytes[static_cast<std::size_t>(source) * ranks + rank] += expert_bytes_;
        sent[static_cast<std::size_t>(source)] += expert_bytes_;
        ++slots_moved;
      }
      for (std::size_t slot = rank * per_rank; slot < (rank + 1) * per_rank; ++slot)
        held[static_cast<std::size_t>(current.slot_expert(layer, static_cast<int>(slot)))] = 0;
    }
    layouts[static_cast<std::size_t>(layer)] = std::move(matched);
  }
  return RebalanceMove{ExpertPlacement(shape_.experts, shape_.ranks, layouts), std::move(bytes), slots_moved,
                       layers_kept};
}

}  // namespace moesim
