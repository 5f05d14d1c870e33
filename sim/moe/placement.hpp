#pragma once

#include <filesystem>
#include <optional>
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
  file,         // per MoE layer (or one for all) as a file lists them
};

// Periodic rebalancing of an eplb placement from observed load (rebalance.hpp).
struct RebalanceSpec {
  double every_s = 600;   // time between rebalances
  double window_s = 600;  // observed load of the last window_s seconds before each rebalance
  // A layer keeps its layout unless the new one lowers its busiest rank's load (on the window's loads)
  // by at least this fraction; 0 re-places every layer, as EPLB does.
  double min_gain = 0;
};

// The "placement" object of a scenario:
//   {"kind": "contiguous" | "round_robin"}      (default contiguous)
//   {"kind": "eplb", "hierarchical": false,     deployment.parallel.redundant_experts extra slots;
//    "rebalance": {"every_s": 600,              hierarchical packs expert groups onto nodes first;
//                  "window_s": 600,             rebalance (optional) re-places from observed load
//                  "min_gain": 0}}
//   {"kind": "file", "file": "placement.json"}  a placement file (format below), relative to the scenario
// window_s (default every_s) must be at most every_s or a whole multiple of it, at most 64 times.
//
// A placement file: {"description": "..." (optional), "layers": [[expert of slot 0, expert of slot 1,
// ...], ...]}: one layout for every MoE layer or one per MoE layer; slots numbered rank by rank.
struct PlacementSpec {
  PlacementKind kind = PlacementKind::contiguous;
  bool hierarchical = false;
  std::optional<RebalanceSpec> rebalance;
  std::filesystem::path file;
  std::vector<std::vector<int>> file_layers;  // as read from `file`
};

// Relative placement files are resolved against `base_dir` (the scenario's folder); the file is read
// here (InputError naming the file and the entry for a malformed one).
PlacementSpec parse_placement(const JsonReader& reader, const std::filesystem::path& base_dir = ".");
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

// Checks a file placement against the deployment: one layout or one per MoE layer, each with
// experts + redundant_experts slots (a multiple of the ranks), expert ids below experts, every expert
// at least once. InputError naming the file and the layer (and slot). No-op for other kinds.
void check_placement_file(const PlacementSpec& spec, const PlacementShape& shape, int moe_layers);

// The static kinds (no redundant slots).
// InputError (source "placement") for eplb, or when redundant_experts > 0.
ExpertPlacement make_placement(const PlacementSpec& spec, int experts, int ranks);
// Any kind; eplb places each MoE layer from the router's expected loads (Router::popularity), file
// takes the file's layouts (check_placement_file).
// InputError (source "placement") when the slots do not fit: redundant slots without eplb or file,
// redundant_experts < 0 or above experts * (ranks - 1), experts + redundant_experts not a multiple of
// ranks.
ExpertPlacement make_placement(const PlacementSpec& spec, const PlacementShape& shape, const Router& router);

}  // namespace moesim
