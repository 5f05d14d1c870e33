#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "sim/moe/capacity.hpp"
#include "sim/moe/placement.hpp"

namespace moesim {

// What one MoE layer does with one micro-batch's routed counts. Loads are kept (post-capacity)
// assignments; means are over all experts or all ranks.
struct MoeLayerResult {
  std::int64_t tokens = 0;
  std::int64_t assignments = 0;  // routed token-expert assignments (sum of the counts)
  std::int64_t dropped_assignments = 0;
  // Assignments that met a full expert (or rank) and moved to another expert (reroute policy).
  std::int64_t rerouted_assignments = 0;
  // Expected number of tokens that lost all top_k assignments.
  // Assumption: a token's assignments are dropped independently, each with the micro-batch's drop
  // fraction, so this is tokens * (dropped / assignments)^top_k (moesim's own guess; routers that drop
  // by token position drop late tokens at every full expert, so real counts can be higher).
  double tokens_fully_dropped = 0;
  std::int64_t capacity = 0;  // per expert or per rank as the scope says; 0 when dropless

  std::int32_t expert_max_load = 0;
  double expert_mean_load = 0;
  std::int64_t rank_max_load = 0;
  double rank_mean_load = 0;

  std::vector<std::int32_t> kept_per_expert;  // experts
  // Per expert, its routed assignments beyond what it kept of them: over its capacity (per_expert
  // scope) or removed by its rank's capacity (per_rank scope), whether rerouted or dropped.
  std::vector<std::int32_t> overflow_per_expert;
  std::vector<std::int32_t> kept_per_slot;             // slots
  std::vector<std::int64_t> kept_per_rank;             // ranks
  std::vector<std::int32_t> active_experts_per_rank;   // slots with a non-zero kept load
  std::vector<std::int32_t> max_expert_load_per_rank;  // the largest kept load of a slot on the rank

  // The rank with the most kept assignments; ties go to the lowest rank (computed on request: the
  // simulator's straggler is the slowest rank, which the evaluator does not know).
  int straggler_rank() const {
    return static_cast<int>(std::find(kept_per_rank.begin(), kept_per_rank.end(), rank_max_load) -
                            kept_per_rank.begin());
  }
  // max / mean, 0 when nothing is kept.
  double expert_imbalance() const { return expert_mean_load > 0 ? expert_max_load / expert_mean_load : 0.0; }
  double rank_imbalance() const { return rank_mean_load > 0 ? rank_max_load / rank_mean_load : 0.0; }
};

// Applies the capacity policy to a layer's routed counts and sums the loads per slot and rank.
// All buffers are sized at construction; evaluate() allocates nothing.
//
// Assumption: an expert with several slots splits its kept assignments evenly over them, the first
// slots taking the remainder (moesim's own guess, the even split EPLB aims at).
// Assumption: with the per_rank scope a rank over capacity drops from its slots in proportion to their
// loads, rounding down and giving the leftover capacity to its lowest slots with load left (moesim's
// own guess: overflowing tokens arrive in random expert order).
// Assumption: reroute works on counts, not token ids: the overflow of the full experts (ranks) is
// spread over the experts (ranks) that still have room in proportion to their share of the layer's
// routing (the next-choice distribution), never beyond their room; what finds no room is dropped.
// A rerouted assignment may land on an expert its token already chose, which a per-token router
// would avoid (moesim's own guess; the counts stay within capacity and conserve assignments). Inside a
// receiving rank the extra assignments go to its slots in proportion to their share.
class MoeLayerEvaluator {
 public:
  MoeLayerEvaluator(const ExpertPlacement& placement, const CapacitySpec& capacity, int experts, int top_k);

  // counts: routed assignments per expert (Router::sample_counts) of a micro-batch of `tokens` tokens
  // at MoE layer `layer` (0-based among MoE layers; it picks the layer's layout of a per-layer
  // placement). `next_choice` is the layer's expected share per expert (Router::popularity), read only
  // by the reroute policy; empty means equal shares. The result stays valid until the next call; `counts`
  // must not be one of its vectors.
  const MoeLayerResult& evaluate(int layer, std::int64_t tokens, std::span<const std::int32_t> counts,
                                 std::span<const double> next_choice = {});
  // The same for a placement with one layout for every layer (InternalError for a per-layer one).
  const MoeLayerResult& evaluate(std::int64_t tokens, std::span<const std::int32_t> counts);

 private:
  void apply_rank_capacity();
  // Kept loads per rank, active slots and largest slot load from kept_per_slot; returns their sum and the
  // largest rank load.
  struct RankSums {
    std::int64_t total = 0;
    std::int64_t largest = 0;
  };
  template <int SlotsPerRank>
  RankSums sum_ranks(int ranks, int slots_per_rank);
  // Each expert keeps at most `cap` of its routed assignments; routed and kept do not overlap (so the
  // loop vectorises). Returns the routed sum, the overflow and the largest kept count.
  struct CappedSums {
    std::int64_t assignments = 0;
    std::int64_t overflow = 0;
    std::int32_t largest = 0;
  };
  static CappedSums keep_within(const std::int32_t* __restrict routed, std::int32_t* __restrict kept,
                                int experts, std::int32_t cap);
  // The sum and the largest of the counts (overflow 0), in a loop of their own that vectorises.
  static CappedSums sum_and_largest(const std::int32_t* counts, int experts);
  // per_slot[s] = per_expert[slot_expert[s]] for every slot (loads only: no stores to scattered places).
  static void gather_by_slot(const std::int32_t* __restrict per_expert, const int* __restrict slot_expert,
                             int slots, std::int32_t* __restrict per_slot);
  // An expert's kept assignments over its slots: even, the first slots taking the remainder.
  static void split_over_replicas(std::span<const int> slots, std::int32_t kept,
                                  std::int32_t* kept_per_slot) {
    // Two slots (the common case: EPLB's redundant experts) inline and without a division.
    if (slots.size() == 2) {
      kept_per_slot[slots[0]] = kept - kept / 2;
      kept_per_slot[slots[1]] = kept / 2;
      return;
    }
    split_over_many_replicas(slots, kept, kept_per_slot);
  }
  static void split_over_many_replicas(std::span<const int> slots, std::int32_t kept,
                                       std::int32_t* kept_per_slot);
  void reroute_to_experts(std::int64_t tokens, std::span<const double> next_choice);
  void reroute_to_ranks(int layer, std::span<const double> next_choice);

  const ExpertPlacement& placement_;
  CapacitySpec capacity_;
  int experts_;
  int top_k_;
  MoeLayerResult result_;
  std::vector<std::int32_t> routed_per_slot_;  // scratch of apply_rank_capacity
  // Scratch of the reroute policy: room and weight per expert, rank or slot, and what each received.
  std::vector<std::int64_t> room_;
  std::vector<double> weight_;
  std::vector<std::int64_t> received_;
  std::vector<double> rank_weight_;
  std::vector<std::int64_t> slot_room_;      // one rank's slots
  std::vector<std::int64_t> slot_received_;  // one rank's slots
  // The placement's tables as flat arrays for the per-slot loops, [layer][slot] and [layer][expert].
  std::vector<int> slot_expert_;
  std::vector<int> only_slot_;                // an expert's slot when it has exactly one, else -1
  std::vector<std::vector<int>> replicated_;  // per layer: the experts with more than one slot
  std::vector<std::uint8_t> identity_slots_;  // per layer: 1 when expert e owns exactly slot e
  bool all_single_slot_ = false;
};

}  // namespace moesim
