#pragma once

#include <span>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

enum class PlacementKind {
  contiguous,   // expert e on rank e / (experts / ranks)
  round_robin,  // expert e on rank e % ranks
};

// The "placement" object of a scenario: {"kind": "contiguous" | "round_robin"} (default contiguous).
struct PlacementSpec {
  PlacementKind kind = PlacementKind::contiguous;
};

PlacementSpec parse_placement(const JsonReader& reader);
nlohmann::json to_json(const PlacementSpec& spec);

// Experts mapped to the weight slots of EP ranks. Slots are numbered rank by rank (rank r holds slots
// [r * slots_per_rank, (r + 1) * slots_per_rank)); each slot holds one expert and an expert may own
// several slots (room for redundant experts), listed by expert_slots().
class ExpertPlacement {
 public:
  // InputError (source "placement") unless experts is a positive multiple of ranks.
  ExpertPlacement(PlacementKind kind, int experts, int ranks);

  int experts() const { return experts_; }
  int ranks() const { return ranks_; }
  int slots() const { return static_cast<int>(slot_expert_.size()); }
  int slots_per_rank() const { return slots() / ranks_; }

  int slot_rank(int slot) const { return slot / slots_per_rank(); }
  int slot_expert(int slot) const { return slot_expert_[slot]; }
  std::span<const int> expert_slots(int expert) const {
    return {expert_slot_list_.data() + expert_slot_begin_[expert],
            static_cast<std::size_t>(expert_slot_begin_[expert + 1] - expert_slot_begin_[expert])};
  }

 private:
  int experts_;
  int ranks_;
  std::vector<int> slot_expert_;
  // Compressed rows: the slots of expert e are expert_slot_list_[expert_slot_begin_[e] .. [e + 1]).
  std::vector<int> expert_slot_begin_;
  std::vector<int> expert_slot_list_;
};

ExpertPlacement make_placement(const PlacementSpec& spec, int experts, int ranks);

}  // namespace moesim
