#include "sim/moe/layer_evaluator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

MoeLayerEvaluator::MoeLayerEvaluator(const ExpertPlacement& placement, const CapacitySpec& capacity,
                                     int experts, int top_k)
    : placement_(placement), capacity_(capacity), experts_(experts), top_k_(top_k) {
  if (experts != placement.experts() || top_k < 1 || top_k > experts) {
    throw InternalError(fmt::format("MoeLayerEvaluator: {} experts, top_k {}, placement of {} experts",
                                    experts, top_k, placement.experts()));
  }
  result_.kept_per_expert.resize(experts);
  result_.kept_per_slot.resize(placement.slots());
  result_.kept_per_rank.resize(placement.ranks());
  result_.active_experts_per_rank.resize(placement.ranks());
  result_.max_expert_load_per_rank.resize(placement.ranks());
  routed_per_slot_.resize(placement.slots());
  for (int layer = 0; layer < placement.layers(); ++layer) {
    for (int slot = 0; slot < placement.slots(); ++slot)
      slot_expert_.push_back(placement.slot_expert(layer, slot));
    for (int expert = 0; expert < experts; ++expert) {
      const auto slots = placement.expert_slots(layer, expert);
      only_slot_.push_back(slots.size() == 1 ? slots[0] : -1);
    }
  }
  all_single_slot_ = placement.slots() == experts;
}

const MoeLayerResult& MoeLayerEvaluator::evaluate(std::int64_t tokens, std::span<const std::int32_t> counts) {
  if (placement_.layers() != 1) {
    throw InternalError("MoeLayerEvaluator::evaluate: a per-layer placement needs the MoE layer");
  }
  return evaluate(0, tokens, counts);
}

const MoeLayerResult& MoeLayerEvaluator::evaluate(int layer, std::int64_t tokens,
                                                  std::span<const std::int32_t> counts) {
  if (static_cast<int>(counts.size()) != experts_) {
    throw InternalError("MoeLayerEvaluator::evaluate: counts.size() differs from the expert count");
  }
  if (layer < 0 || (placement_.layers() > 1 && layer >= placement_.layers())) {
    throw InternalError(fmt::format("MoeLayerEvaluator::evaluate: MoE layer {} of a placement with {} layers",
                                    layer, placement_.layers()));
  }
  const std::size_t table = placement_.layers() == 1 ? 0 : static_cast<std::size_t>(layer);
  const int* only_slot = only_slot_.data() + table * static_cast<std::size_t>(experts_);
  const int* slot_expert = slot_expert_.data() + table * static_cast<std::size_t>(placement_.slots());
  MoeLayerResult& r = result_;
  r.tokens = tokens;
  r.assignments = 0;
  const bool drop = capacity_.policy == CapacityPolicy::drop;
  const bool per_expert = capacity_.scope == CapacityScope::per_expert;
  r.capacity = !drop        ? 0
               : per_expert ? expert_capacity(capacity_, tokens, top_k_, experts_)
                            // A rank's share of the assignments is 1 / ranks, also when redundant slots leave
                            // experts / ranks fractional.
                            : rank_capacity(capacity_, tokens, top_k_, placement_.ranks(), 1);
  // Without replicas and rank capacity, an expert's kept load is its slot's: fill both at once.
  const bool direct = all_single_slot_ && !(drop && !per_expert);
  std::int32_t expert_max = 0;
  if (direct) {
    // The common case, without branches in the loop: every expert owns one slot.
    const std::int64_t cap = drop ? r.capacity : std::numeric_limits<std::int32_t>::max();
    for (int e = 0; e < experts_; ++e) {
      r.assignments += counts[e];
      const auto kept = static_cast<std::int32_t>(std::min<std::int64_t>(counts[e], cap));
      r.kept_per_slot[only_slot[e]] = kept;
      r.kept_per_expert[e] = kept;
      expert_max = std::max(expert_max, kept);
    }
  }
  for (int e = 0; !direct && e < experts_; ++e) {
    r.assignments += counts[e];
    const std::int32_t kept = drop && per_expert
                                  ? static_cast<std::int32_t>(std::min<std::int64_t>(counts[e], r.capacity))
                                  : counts[e];
    if (only_slot[e] >= 0) {
      r.kept_per_slot[only_slot[e]] = kept;
      continue;
    }
    const auto slots = placement_.expert_slots(layer, e);
    const auto replicas = static_cast<std::int32_t>(slots.size());
    for (std::int32_t i = 0; i < replicas; ++i)
      r.kept_per_slot[slots[i]] = kept / replicas + (i < kept % replicas ? 1 : 0);
  }
  if (drop && !per_expert) apply_rank_capacity();

  if (!direct) std::fill(r.kept_per_expert.begin(), r.kept_per_expert.end(), 0);
  std::int64_t kept_total = 0;
  // Slots are numbered rank by rank, so each rank's sums stay in registers.
  const int slots_per_rank = placement_.slots_per_rank();
  for (int rank = 0, slot = 0; rank < placement_.ranks(); ++rank) {
    std::int64_t rank_load = 0;
    std::int32_t active = 0, largest = 0;
    for (const int end = slot + slots_per_rank; slot < end; ++slot) {
      const std::int32_t load = r.kept_per_slot[slot];
      if (!direct) r.kept_per_expert[slot_expert[slot]] += load;
      rank_load += load;
      active += load > 0 ? 1 : 0;
      largest = std::max(largest, load);
    }
    r.kept_per_rank[rank] = rank_load;
    r.active_experts_per_rank[rank] = active;
    r.max_expert_load_per_rank[rank] = largest;
    kept_total += rank_load;
  }
  r.dropped_assignments = r.assignments - kept_total;
  r.tokens_fully_dropped = 0.0;
  if (r.dropped_assignments > 0) {
    const double drop_fraction =
        static_cast<double>(r.dropped_assignments) / static_cast<double>(r.assignments);
    double all_lost = 1.0;
    for (int choice = 0; choice < top_k_; ++choice)
      all_lost *= drop_fraction;
    r.tokens_fully_dropped = static_cast<double>(tokens) * all_lost;
  }
  r.expert_max_load =
      direct ? expert_max : *std::max_element(r.kept_per_expert.begin(), r.kept_per_expert.end());
  r.expert_mean_load = static_cast<double>(kept_total) / experts_;
  const auto straggler = std::max_element(r.kept_per_rank.begin(), r.kept_per_rank.end());
  r.straggler_rank = static_cast<int>(straggler - r.kept_per_rank.begin());
  r.rank_max_load = *straggler;
  r.rank_mean_load = static_cast<double>(kept_total) / placement_.ranks();
  return r;
}

void MoeLayerEvaluator::apply_rank_capacity() {
  MoeLayerResult& r = result_;
  const int per_rank = placement_.slots_per_rank();
  for (int rank = 0; rank < placement_.ranks(); ++rank) {
    const std::size_t first = std::size_t(rank) * per_rank;
    const std::span<std::int32_t> slots(r.kept_per_slot.data() + first, per_rank);
    const std::span<std::int32_t> routed(routed_per_slot_.data() + first, per_rank);
    std::int64_t load = 0;
    for (const std::int32_t value : slots)
      load += value;
    if (load <= r.capacity) continue;
    std::int64_t kept = 0;
    for (int i = 0; i < per_rank; ++i) {
      routed[i] = slots[i];
      slots[i] = static_cast<std::int32_t>(routed[i] * r.capacity / load);
      kept += slots[i];
    }
    // Rounding down took less than one assignment from each slot it touched, so one pass over the
    // slots with routed load left hands the rest back.
    for (int i = 0; kept < r.capacity; ++i) {
      if (slots[i] < routed[i]) {
        ++slots[i];
        ++kept;
      }
    }
  }
}

}  // namespace moesim
