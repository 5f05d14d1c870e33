#include "sim/moe/layer_evaluator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// Hands `amount` out over the bins with room, in proportion to their weights (equal weights when
// those with room all weigh nothing), never beyond a bin's room; adds each bin's part to `received`
// and takes it from `room`. Returns what was placed (less than `amount` only when every bin is full).
// Each round rounds the cumulative shares down, so a round that fills no bin places everything; every
// other round fills at least one bin.
std::int64_t spread(std::int64_t amount, std::span<const double> weight, std::span<std::int64_t> room,
                    std::span<std::int64_t> received) {
  std::int64_t placed = 0;
  while (amount > 0) {
    double total = 0;
    std::size_t last = room.size();
    for (std::size_t b = 0; b < room.size(); ++b) {
      if (room[b] > 0) {
        total += weight[b];
        last = b;
      }
    }
    if (last == room.size()) break;
    const bool equal = !(total > 0);
    if (equal) {
      total = 0;
      for (const std::int64_t r : room)
        total += r > 0 ? 1.0 : 0.0;
    }
    double cumulative = 0;
    std::int64_t handed = 0, given = 0;
    for (std::size_t b = 0; b <= last; ++b) {
      if (room[b] <= 0) continue;
      cumulative += equal ? 1.0 : weight[b];
      const std::int64_t target =
          b == last ? amount : static_cast<std::int64_t>(static_cast<double>(amount) * (cumulative / total));
      const std::int64_t part = std::min(std::max<std::int64_t>(target - handed, 0), room[b]);
      handed = std::max(handed, target);
      room[b] -= part;
      received[b] += part;
      given += part;
    }
    amount -= given;
    placed += given;
  }
  return placed;
}

}  // namespace

MoeLayerEvaluator::MoeLayerEvaluator(const ExpertPlacement& placement, const CapacitySpec& capacity,
                                     int experts, int top_k)
    : placement_(placement), capacity_(capacity), experts_(experts), top_k_(top_k) {
  if (experts != placement.experts() || top_k < 1 || top_k > experts) {
    throw InternalError(fmt::format("MoeLayerEvaluator: {} experts, top_k {}, placement of {} experts",
                                    experts, top_k, placement.experts()));
  }
  result_.kept_per_expert.resize(experts);
  result_.overflow_per_expert.resize(experts);
  result_.kept_per_slot.resize(placement.slots());
  result_.kept_per_rank.resize(placement.ranks());
  result_.active_experts_per_rank.resize(placement.ranks());
  result_.max_expert_load_per_rank.resize(placement.ranks());
  routed_per_slot_.resize(placement.slots());
  const auto scratch = static_cast<std::size_t>(std::max(placement.slots(), experts));
  room_.resize(scratch);
  weight_.resize(scratch);
  received_.resize(scratch);
  rank_weight_.resize(static_cast<std::size_t>(placement.ranks()));
  slot_room_.resize(static_cast<std::size_t>(placement.slots_per_rank()));
  slot_received_.resize(static_cast<std::size_t>(placement.slots_per_rank()));
  std::vector<int> replicated;
  for (int layer = 0; layer < placement.layers(); ++layer) {
    for (int slot = 0; slot < placement.slots(); ++slot)
      slot_expert_.push_back(placement.slot_expert(layer, slot));
    for (int expert = 0; expert < experts; ++expert) {
      const auto slots = placement.expert_slots(layer, expert);
      only_slot_.push_back(slots.size() == 1 ? slots[0] : -1);
      if (slots.size() > 1) replicated.push_back(expert);
    }
    replicated_.push_back(replicated);
    replicated.clear();
    bool identity = placement.slots() == experts;
    for (int expert = 0; identity && expert < experts; ++expert)
      identity = only_slot_[static_cast<std::size_t>(layer * experts + expert)] == expert;
    identity_slots_.push_back(identity ? 1 : 0);
  }
  all_single_slot_ = placement.slots() == experts;
}

const MoeLayerResult& MoeLayerEvaluator::evaluate(std::int64_t tokens, std::span<const std::int32_t> counts) {
  if (placement_.layers() != 1) {
    throw InternalError("MoeLayerEvaluator::evaluate: a per-layer placement needs the MoE layer");
  }
  return evaluate(0, tokens, counts);
}

MoeLayerEvaluator::CappedSums MoeLayerEvaluator::keep_within(const std::int32_t* __restrict routed,
                                                             std::int32_t* __restrict kept, int experts,
                                                             std::int32_t cap) {
  CappedSums sums;
  for (int e = 0; e < experts; ++e) {
    const std::int32_t expert_kept = std::min(routed[e], cap);
    kept[e] = expert_kept;
    sums.assignments += routed[e];
    sums.overflow += routed[e] - expert_kept;
    sums.largest = std::max(sums.largest, expert_kept);
  }
  return sums;
}

MoeLayerEvaluator::CappedSums MoeLayerEvaluator::sum_and_largest(const std::int32_t* counts, int experts) {
  std::int64_t assignments = 0;
  std::int32_t largest = 0;
  for (int e = 0; e < experts; ++e) {
    assignments += counts[e];
    largest = std::max(largest, counts[e]);
  }
  return {assignments, 0, largest};
}

void MoeLayerEvaluator::gather_by_slot(const std::int32_t* __restrict per_expert,
                                       const int* __restrict slot_expert, int slots,
                                       std::int32_t* __restrict per_slot) {
  for (int slot = 0; slot < slots; ++slot)
    per_slot[slot] = per_expert[slot_expert[slot]];
}

void MoeLayerEvaluator::split_over_many_replicas(std::span<const int> slots, std::int32_t kept,
                                                 std::int32_t* kept_per_slot) {
  const auto replicas = static_cast<std::int32_t>(slots.size());
  const std::int32_t share = kept / replicas;
  const std::int32_t remainder = kept % replicas;
  for (std::int32_t i = 0; i < replicas; ++i)
    kept_per_slot[slots[i]] = share + (i < remainder ? 1 : 0);
}

template <int SlotsPerRank>
MoeLayerEvaluator::RankSums MoeLayerEvaluator::sum_ranks(int ranks, int slots_per_rank) {
  // A compile-time slot count (SlotsPerRank > 0) unrolls the inner loop, and the ranks' loop vectorises.
  const int slots = SlotsPerRank > 0 ? SlotsPerRank : slots_per_rank;
  const std::int32_t* kept_per_slot = result_.kept_per_slot.data();
  std::int64_t* kept_per_rank = result_.kept_per_rank.data();
  std::int32_t* active_per_rank = result_.active_experts_per_rank.data();
  std::int32_t* largest_per_rank = result_.max_expert_load_per_rank.data();
  std::int64_t kept_total = 0, largest_rank_load = 0;
  for (int rank = 0; rank < ranks; ++rank) {
    const std::int32_t* loads = kept_per_slot + static_cast<std::ptrdiff_t>(rank) * slots;
    std::int64_t rank_load = 0;
    std::int32_t active = 0, largest = 0;
    for (int slot = 0; slot < slots; ++slot) {
      rank_load += loads[slot];
      active += static_cast<std::int32_t>(loads[slot] > 0);
      largest = std::max(largest, loads[slot]);
    }
    kept_per_rank[rank] = rank_load;
    active_per_rank[rank] = active;
    largest_per_rank[rank] = largest;
    kept_total += rank_load;
    largest_rank_load = std::max(largest_rank_load, rank_load);
  }
  return {kept_total, largest_rank_load};
}

const MoeLayerResult& MoeLayerEvaluator::evaluate(int layer, std::int64_t tokens,
                                                  std::span<const std::int32_t> counts,
                                                  std::span<const double> next_choice) {
  if (static_cast<int>(counts.size()) != experts_) {
    throw InternalError("MoeLayerEvaluator::evaluate: counts.size() differs from the expert count");
  }
  if (layer < 0 || (placement_.layers() > 1 && layer >= placement_.layers())) {
    throw InternalError(fmt::format("MoeLayerEvaluator::evaluate: MoE layer {} of a placement with {} layers",
                                    layer, placement_.layers()));
  }
  if (!next_choice.empty() && static_cast<int>(next_choice.size()) != experts_) {
    throw InternalError("MoeLayerEvaluator::evaluate: next_choice.size() differs from the expert count");
  }
  const std::size_t table = placement_.layers() == 1 ? 0 : static_cast<std::size_t>(layer);
  const int* only_slot = only_slot_.data() + table * static_cast<std::size_t>(experts_);
  const int* slot_expert = slot_expert_.data() + table * static_cast<std::size_t>(placement_.slots());
  MoeLayerResult& r = result_;
  r.tokens = tokens;
  r.assignments = 0;
  r.rerouted_assignments = 0;
  const bool capped = capacity_.policy != CapacityPolicy::dropless;
  const bool reroute = capacity_.policy == CapacityPolicy::reroute;
  const bool per_expert = capacity_.scope == CapacityScope::per_expert;
  const double factor = capped ? capacity_.factor(layer) : 0.0;
  r.capacity = !capped      ? 0
               : per_expert ? expert_capacity(factor, tokens, top_k_, experts_)
                            // A rank's share of the assignments is 1 / ranks, also when redundant slots leave
                            // experts / ranks fractional.
                            : rank_capacity(factor, tokens, top_k_, placement_.ranks(), 1);
  const bool expert_cap = capped && per_expert;
  const bool rank_cap = capped && !per_expert;
  // Without replicas and rank capacity, an expert's kept load is its slot's: fill both at once.
  const bool direct = all_single_slot_ && !rank_cap;
  const std::int64_t cap = expert_cap ? r.capacity : std::numeric_limits<std::int32_t>::max();
  // Locals, not members, in the loops: the int32 stores below could otherwise alias them.
  const int experts = experts_;
  const std::int32_t* routed = counts.data();
  std::int32_t* kept_per_expert = r.kept_per_expert.data();
  std::int32_t* kept_per_slot = r.kept_per_slot.data();
  std::int32_t expert_max = 0;
  std::int64_t overflow = 0, assignments = 0;
  if (direct && !capped) {
    // Dropless with one slot per expert: every count is kept as it is.
    std::copy_n(routed, experts, kept_per_expert);
    if (identity_slots_[table] != 0) {
      std::copy_n(routed, experts, kept_per_slot);
    } else {
      for (int e = 0; e < experts; ++e)
        kept_per_slot[only_slot[e]] = routed[e];
    }
    const auto sums = sum_and_largest(routed, experts);
    assignments = sums.assignments;
    expert_max = sums.largest;
  } else if (!capped && !rank_cap) {
    // Dropless with replicas: every slot takes its expert's count, then the replicated experts split
    // theirs over their slots.
    std::copy_n(routed, experts, kept_per_expert);
    gather_by_slot(routed, slot_expert, placement_.slots(), kept_per_slot);
    const auto sums = sum_and_largest(routed, experts);
    assignments = sums.assignments;
    expert_max = sums.largest;
    for (const int e : replicated_[table])
      split_over_replicas(placement_.expert_slots(layer, e), routed[e], kept_per_slot);
  } else {
    const auto capped_sums = keep_within(
        routed, kept_per_expert, experts,
        static_cast<std::int32_t>(std::min<std::int64_t>(cap, std::numeric_limits<std::int32_t>::max())));
    assignments = capped_sums.assignments;
    overflow = capped_sums.overflow;
    expert_max = capped_sums.largest;
    if (direct) {
      // Every expert owns one slot.
      if (identity_slots_[table] != 0) {
        std::copy_n(kept_per_expert, experts, kept_per_slot);
      } else {
        for (int e = 0; e < experts; ++e)
          kept_per_slot[only_slot[e]] = kept_per_expert[e];
      }
    }
  }
  r.assignments = assignments;
  // Dropless keeps the zeros the overflow vector was built with.
  if (expert_cap) {
    for (int e = 0; e < experts; ++e)
      r.overflow_per_expert[e] = routed[e] - kept_per_expert[e];
  }
  if (reroute && expert_cap && overflow > 0) {
    reroute_to_experts(tokens, next_choice);
    expert_max = *std::max_element(r.kept_per_expert.begin(), r.kept_per_expert.end());
    for (int e = 0; direct && e < experts; ++e)
      kept_per_slot[only_slot[e]] = kept_per_expert[e];
  }
  for (int e = 0; !direct && capped && e < experts; ++e) {
    const std::int32_t kept = kept_per_expert[e];
    if (only_slot[e] >= 0) {
      kept_per_slot[only_slot[e]] = kept;
      continue;
    }
    split_over_replicas(placement_.expert_slots(layer, e), kept, kept_per_slot);
  }
  if (rank_cap) {
    apply_rank_capacity();
    if (reroute) reroute_to_ranks(layer, next_choice);
  }

  // Only a rank capacity changes the slots after kept_per_expert was set: then it is summed back.
  const bool resum_experts = rank_cap;
  if (resum_experts) std::fill(r.kept_per_expert.begin(), r.kept_per_expert.end(), 0);
  // Slots are numbered rank by rank.
  const int slots_per_rank = placement_.slots_per_rank();
  const int ranks = placement_.ranks();
  RankSums rank_sums;
  switch (slots_per_rank) {
    case 1:
      rank_sums = sum_ranks<1>(ranks, slots_per_rank);
      break;
    case 2:
      rank_sums = sum_ranks<2>(ranks, slots_per_rank);
      break;
    case 3:
      rank_sums = sum_ranks<3>(ranks, slots_per_rank);
      break;
    case 4:
      rank_sums = sum_ranks<4>(ranks, slots_per_rank);
      break;
    default:
      rank_sums = sum_ranks<0>(ranks, slots_per_rank);
      break;
  }
  const std::int64_t kept_total = rank_sums.total;
  if (resum_experts) {
    for (int slot = 0; slot < placement_.slots(); ++slot)
      kept_per_expert[slot_expert[slot]] += kept_per_slot[slot];
  }
  if (rank_cap) {
    for (int e = 0; e < experts_; ++e)
      r.overflow_per_expert[e] = std::max(0, counts[e] - r.kept_per_expert[e]);
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
      resum_experts ? *std::max_element(r.kept_per_expert.begin(), r.kept_per_expert.end()) : expert_max;
  r.expert_mean_load = static_cast<double>(kept_total) / experts_;
  r.rank_max_load = rank_sums.largest;
  r.rank_mean_load = static_cast<double>(kept_total) / placement_.ranks();
  return r;
}

void MoeLayerEvaluator::reroute_to_experts(std::int64_t tokens, std::span<const double> next_choice) {
  MoeLayerResult& r = result_;
  const auto experts = static_cast<std::size_t>(experts_);
  // An expert holds at most one assignment per token.
  const std::int64_t limit = std::min(r.capacity, tokens);
  std::int64_t overflow = 0;
  for (std::size_t e = 0; e < experts; ++e) {
    overflow += r.overflow_per_expert[e];
    room_[e] = std::max<std::int64_t>(0, limit - r.kept_per_expert[e]);
    weight_[e] = next_choice.empty() ? 1.0 : next_choice[e];
    received_[e] = 0;
  }
  r.rerouted_assignments = spread(overflow, std::span(weight_).first(experts),
                                  std::span(room_).first(experts), std::span(received_).first(experts));
  for (std::size_t e = 0; e < experts; ++e)
    r.kept_per_expert[e] += static_cast<std::int32_t>(received_[e]);
}

void MoeLayerEvaluator::reroute_to_ranks(int layer, std::span<const double> next_choice) {
  MoeLayerResult& r = result_;
  const auto ranks = static_cast<std::size_t>(placement_.ranks());
  const int per_rank = placement_.slots_per_rank();
  // Slot weights: the expert's share split over its replicas; rank weights: their sums.
  std::span<double> slot_weight(weight_.data(), static_cast<std::size_t>(placement_.slots()));
  for (int slot = 0; slot < placement_.slots(); ++slot) {
    const int expert = placement_.slot_expert(layer, slot);
    const double share = next_choice.empty() ? 1.0 : next_choice[static_cast<std::size_t>(expert)];
    slot_weight[static_cast<std::size_t>(slot)] =
        share / static_cast<double>(placement_.expert_slots(layer, expert).size());
  }
  // Before the rank capacity every slot held all its expert's assignments, so what the slots lack now
  // is what the full ranks dropped.
  std::int64_t dropped = r.assignments;
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    std::int64_t load = 0;
    rank_weight_[rank] = 0;
    for (std::size_t s = rank * per_rank; s < (rank + 1) * per_rank; ++s) {
      load += r.kept_per_slot[s];
      rank_weight_[rank] += slot_weight[s];
    }
    dropped -= load;
    room_[rank] = std::max<std::int64_t>(0, r.capacity - load);
    received_[rank] = 0;
  }
  if (dropped == 0) return;
  r.rerouted_assignments =
      spread(dropped, rank_weight_, std::span(room_).first(ranks), std::span(received_).first(ranks));
  for (std::size_t rank = 0; rank < ranks; ++rank) {
    const std::int64_t extra = received_[rank];
    if (extra == 0) continue;
    const std::size_t first = rank * static_cast<std::size_t>(per_rank);
    // Inside the rank only the rank's capacity binds.
    std::fill(slot_room_.begin(), slot_room_.end(), extra);
    std::fill(slot_received_.begin(), slot_received_.end(), 0);
    spread(extra, slot_weight.subspan(first, per_rank), slot_room_, slot_received_);
    for (std::size_t i = 0; i < static_cast<std::size_t>(per_rank); ++i)
      r.kept_per_slot[first + i] += static_cast<std::int32_t>(slot_received_[i]);
  }
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
