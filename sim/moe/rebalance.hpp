#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "sim/common/time.hpp"
#include "sim/moe/placement.hpp"

namespace moesim {

// One rebalance: the new placement and the expert weights it takes to get there.
struct RebalanceMove {
  ExpertPlacement placement;
  // ranks x ranks, row-major (source row, destination column): expert weight bytes sent.
  std::vector<double> bytes;
  std::int64_t slots_moved = 0;  // (layer, slot) pairs whose destination rank did not hold the expert
  int layers_kept = 0;           // layers whose layout stayed (gain below min_gain)
};

// Periodic EPLB rebalancing of one instance from the load it observed (DESIGN.md §3, Placement).
//
// Every every_s seconds of simulated time (at the first step that starts at or after the due time) the
// per-layer expert loads routed in the last window_s seconds are handed to EPLB (eplb.hpp), as
// DeepSeek's and SGLang's expert-distribution recorders feed their rebalancers. The window is kept in
// window_s / every_s buckets of every_s seconds (one bucket, filled only in the last window_s seconds
// before the due time, when window_s < every_s): memory is fixed by the model's shape.
//
// Assumption (moesim's own): the new layout's ranks are matched to the old ones (inside a node for the
// hierarchical policy), pack by pack in order, each to the free old rank that already holds most of its
// experts; EPLB's packs are interchangeable between equal GPUs, and the matching saves weight movement.
// With min_gain > 0 a layer keeps its layout unless the new one lowers the busiest rank's load on the
// window's loads by that fraction (moesim's own hysteresis: EPLB re-packs from scratch, and sampling
// noise alone reorders a flat tail).
// A slot whose rank held the same expert before needs no transfer; any other fetches the expert's
// weights of that layer from a rank that held it, on the same node when one did, else the one that has
// sent the fewest bytes so far (ties to the lowest rank).
class ExpertRebalancer {
 public:
  // `expert_bytes`: one expert's weights of one MoE layer on one GPU of an EP rank (at the
  // deployment's expert precision, split over expert TP).
  ExpertRebalancer(const RebalanceSpec& spec, const PlacementShape& shape, bool hierarchical, int moe_layers,
                   double expert_bytes);

  // Called before each step of the instance, `now` non-decreasing. A rebalance is due when the
  // period has passed.
  bool due(SimTime now) const { return now >= next_; }
  // The new placement from the window's loads; the schedule moves to the next period after `now` and
  // the window forgets the periods that passed. nullopt (no change) when the window saw no load.
  std::optional<RebalanceMove> rebalance(SimTime now, const ExpertPlacement& current);
  // Whether the coming step's counts belong to the window; call once per step after any rebalance.
  void begin_step(SimTime now) { observing_ = now >= next_ - gate_; }
  // Adds one MoE layer's routed counts of the current step to the window. Allocates nothing.
  void observe(int layer, std::span<const std::int32_t> counts);

  SimTime next_due() const { return next_; }

 private:
  std::int64_t* bucket(std::size_t index, int layer) {
    return loads_.data() + (index * static_cast<std::size_t>(layers_) + static_cast<std::size_t>(layer)) *
                               static_cast<std::size_t>(shape_.experts);
  }
  std::vector<int> match_ranks(const std::vector<int>& fresh, int layer,
                               const ExpertPlacement& current) const;
  // The busiest rank's expected load of a layout (slot experts, rank by rank) for per-expert `load`,
  // replicas sharing their expert's load evenly.
  double busiest_rank_load(std::span<const int> slot_experts, std::span<const double> load) const;

  PlacementShape shape_;
  bool hierarchical_;
  int layers_;
  double expert_bytes_;
  double min_gain_;
  SimTime every_;
  SimTime gate_;  // counts are observed from next_ - gate_ on
  SimTime next_;
  std::size_t buckets_;
  std::size_t current_ = 0;
  bool observing_ = false;
  std::vector<std::int64_t> loads_;  // buckets x layers x experts
};

}  // namespace moesim
