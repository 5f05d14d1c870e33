#pragma once

#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

class Router;

enum class PlacementKind {
  contiguous,   // expert e on rank e / (experts / ranks)
  round_robin,  // expert e on rank e % ranks
  eplb,         // per MoE layer from the expected loads, with redundant slots (eplb.hpp)
};

// The "placement" object of a scenario:
//   {"kind": "contiguous" | "round_robin"}      (default contiguous)
//   {"kind": "eplb", "hierarchical": false}     deployment.parallel.redundant_experts extra slots;
//                                               hierarchical packs expert groups onto nodes first
struct PlacementSpec {
  PlacementKind kind = PlacementKind::contiguous;
  bool hierarchical = false;
};

PlacementSpec parse_placement(const JsonReader& reader);
nlohmann::json to_json(const PlacementSpec& spec);

// Experts mapped to the weight slots of EP ranks, one layout shared by every MoE layer or one per MoE
// layer (every layer with the same slot count). Slots are numbered rank by rank (rank r holds slots
// [r * slots_per_rank, (r + 1) * slots_per_rank)); each slot holds one expert and an expert may own
// several slots (redundant experts), listed by expert_slots().
class ExpertPlacement {
 public:
  // One static layout for every layer; `kind` is contiguous or round_robin.
  // InputError (source "placement") unless experts is a positive multiple of ranks.
  ExpertPlacement(PlacementKind kind, int experts, int ranks);
  // One layout per layer: slot_experts[layer][slot] is the expert in that slot (a single layer serves
  // every layer). InternalError unless every layer has the same number of slots, a positive multiple of
  // ranks, and gives each expert at least one slot.
  ExpertPlacement(int experts, int ranks, const std::vector<std::vector<int>>& slot_experts);

  int experts() const { return experts_; }
  int ranks() const { return ranks_; }
  int slots() const { return slots_; }
  int slots_per_rank() const { return slots_ / ranks_; }
  // 1 when one layout serves every MoE layer.
  int layers() const { return layers_; }

  int slot_rank(int slot) const { return slot / slots_per_rank(); }
  // `layer` is a MoE layer index; any index reads the shared layout when layers() == 1.
  int slot_expert(int layer, int slot) const { return slot_expert_[offset(layer) * slots_ + slot]; }
  std::span<const int> expert_slots(int layer, int expert) const {
    const int* begin = expert_slot_begin_.data() + offset(layer) * (experts_ + 1);
    return {expert_slot_list_.data() + offset(layer) * slots_ + begin[expert],
            static_cast<std::size_t>(begin[expert + 1] - begin[expert])};
  }

 private:
  std::size_t offset(int layer) const { return layers_ == 1 ? 0 : static_cast<std::size_t>(layer); }
  void index_expert_slots();

  int experts_;
  int ranks_;
  int slots_ = 0;
  int layers_ = 1;
  std::vector<int> slot_expert_;  // [layer][slot]
  // Compressed rows per layer: the slots of expert e in layer l are
  // expert_slot_list_[l * slots + begin[e] .. l * slots + begin[e + 1]), begin = expert_slot_begin_ + l *
  // (experts + 1).
  std::vector<int> expert_slot_begin_;
  std::vector<int> expert_slot_list_;
};

// The shape a placement is built for. EP rank r sits on node r / ranks_per_node; ranks_per_node <= 0
// or >= ranks means a single node.
struct PlacementShape {
  int experts = 0;
  int ranks = 1;
  int redundant_experts = 0;
  int ranks_per_node = 0;
};

// The static kinds (no redundant slots).
// InputError (source "placement") for eplb, or when redundant_experts > 0.
ExpertPlacement make_placement(const PlacementSpec& spec, int experts, int ranks);
// Any kind; eplb places each MoE layer from the router's expected loads (Router::popularity).
// InputError (source "placement") when the slots do not fit: redundant slots without eplb,
// redundant_experts < 0 or above experts * (ranks - 1), experts + redundant_experts not a multiple of
// ranks.
ExpertPlacement make_placement(const PlacementSpec& spec, const PlacementShape& shape, const Router& router);

}  // namespace moesim
