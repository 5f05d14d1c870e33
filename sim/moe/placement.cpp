#include "sim/moe/placement.hpp"

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

PlacementSpec parse_placement(const JsonReader& reader) {
  PlacementSpec spec;
  spec.kind = reader.choice("kind", {"contiguous", "round_robin"}, "contiguous") == "round_robin"
                  ? PlacementKind::round_robin
                  : PlacementKind::contiguous;
  reader.finish();
  return spec;
}

nlohmann::json to_json(const PlacementSpec& spec) {
  return {{"kind", spec.kind == PlacementKind::round_robin ? "round_robin" : "contiguous"}};
}

ExpertPlacement::ExpertPlacement(PlacementKind kind, int experts, int ranks)
    : experts_(experts), ranks_(ranks) {
  if (experts < 1 || ranks < 1 || experts % ranks != 0) {
    throw InputError("placement", "experts",
                     fmt::format("expected the {} experts to split evenly over {} EP ranks", experts, ranks));
  }
  const int per_rank = experts / ranks;
  slot_expert_.resize(experts);
  for (int slot = 0; slot < experts; ++slot) {
    const int rank = slot / per_rank;
    const int position = slot % per_rank;
    slot_expert_[slot] = kind == PlacementKind::contiguous ? slot : position * ranks + rank;
  }
  expert_slot_begin_.assign(experts + 1, 0);
  for (const int expert : slot_expert_)
    ++expert_slot_begin_[expert + 1];
  for (int e = 0; e < experts; ++e)
    expert_slot_begin_[e + 1] += expert_slot_begin_[e];
  expert_slot_list_.resize(slot_expert_.size());
  std::vector<int> next(expert_slot_begin_.begin(), expert_slot_begin_.end() - 1);
  for (int slot = 0; slot < slots(); ++slot)
    expert_slot_list_[next[slot_expert_[slot]]++] = slot;
}

ExpertPlacement make_placement(const PlacementSpec& spec, int experts, int ranks) {
  return ExpertPlacement(spec.kind, experts, ranks);
}

}  // namespace moesim
