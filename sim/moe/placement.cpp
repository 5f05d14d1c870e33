#include "sim/moe/placement.hpp"

#include <cstdint>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/moe/eplb.hpp"
#include "sim/router/router.hpp"

namespace moesim {

PlacementSpec parse_placement(const JsonReader& reader) {
  PlacementSpec spec;
  const auto kind = reader.choice("kind", {"contiguous", "round_robin", "eplb"}, "contiguous");
  spec.kind = kind == "round_robin" ? PlacementKind::round_robin
              : kind == "eplb"      ? PlacementKind::eplb
                                    : PlacementKind::contiguous;
  if (spec.kind == PlacementKind::eplb) spec.hierarchical = reader.boolean("hierarchical", false);
  reader.finish();
  return spec;
}

nlohmann::json to_json(const PlacementSpec& spec) {
  switch (spec.kind) {
    case PlacementKind::contiguous:
      return {{"kind", "contiguous"}};
    case PlacementKind::round_robin:
      return {{"kind", "round_robin"}};
    case PlacementKind::eplb:
      return {{"kind", "eplb"}, {"hierarchical", spec.hierarchical}};
  }
  return {};
}

ExpertPlacement::ExpertPlacement(PlacementKind kind, int experts, int ranks)
    : experts_(experts), ranks_(ranks), slots_(experts) {
  if (kind == PlacementKind::eplb) {
    throw InternalError("ExpertPlacement: eplb placements are built from loads (make_placement)");
  }
  if (experts < 1 || ranks < 1 || experts % ranks != 0) {
    throw InputError("placement", "experts",
                     fmt::format("expected the {} experts to split evenly over {} EP ranks", experts, ranks));
  }
  const int per_rank = experts / ranks;
  slot_expert_.resize(static_cast<std::size_t>(experts));
  for (int slot = 0; slot < experts; ++slot) {
    const int rank = slot / per_rank;
    const int position = slot % per_rank;
    slot_expert_[slot] = kind == PlacementKind::contiguous ? slot : position * ranks + rank;
  }
  index_expert_slots();
}

ExpertPlacement::ExpertPlacement(int experts, int ranks, const std::vector<std::vector<int>>& slot_experts)
    : experts_(experts), ranks_(ranks), layers_(static_cast<int>(slot_experts.size())) {
  if (experts < 1 || ranks < 1 || slot_experts.empty()) {
    throw InternalError(
        fmt::format("ExpertPlacement: {} experts, {} ranks, {} layers", experts, ranks, slot_experts.size()));
  }
  slots_ = static_cast<int>(slot_experts.front().size());
  if (slots_ < experts || slots_ % ranks != 0) {
    throw InternalError(
        fmt::format("ExpertPlacement: {} slots for {} experts on {} ranks", slots_, experts, ranks));
  }
  for (const auto& layer : slot_experts) {
    if (static_cast<int>(layer.size()) != slots_) {
      throw InternalError("ExpertPlacement: every layer needs the same number of slots");
    }
    for (const int expert : layer) {
      if (expert < 0 || expert >= experts) {
        throw InternalError(fmt::format("ExpertPlacement: expert {} out of range", expert));
      }
    }
    slot_expert_.insert(slot_expert_.end(), layer.begin(), layer.end());
  }
  index_expert_slots();
}

void ExpertPlacement::index_expert_slots() {
  const auto row = static_cast<std::size_t>(experts_ + 1);
  expert_slot_begin_.assign(static_cast<std::size_t>(layers_) * row, 0);
  expert_slot_list_.resize(slot_expert_.size());
  std::vector<int> next(static_cast<std::size_t>(experts_));
  for (int layer = 0; layer < layers_; ++layer) {
    int* begin = expert_slot_begin_.data() + static_cast<std::size_t>(layer) * row;
    const int* experts = slot_expert_.data() + static_cast<std::size_t>(layer) * slots_;
    int* list = expert_slot_list_.data() + static_cast<std::size_t>(layer) * slots_;
    for (int slot = 0; slot < slots_; ++slot)
      ++begin[experts[slot] + 1];
    for (int e = 0; e < experts_; ++e) {
      if (begin[e + 1] == 0) {
        throw InternalError(fmt::format("ExpertPlacement: expert {} has no slot in layer {}", e, layer));
      }
      begin[e + 1] += begin[e];
    }
    std::copy(begin, begin + experts_, next.begin());
    for (int slot = 0; slot < slots_; ++slot)
      list[next[experts[slot]]++] = slot;
  }
}

ExpertPlacement make_placement(const PlacementSpec& spec, int experts, int ranks) {
  if (spec.kind == PlacementKind::eplb) {
    throw InputError("placement", "kind", "eplb placement needs the router's expected loads");
  }
  return ExpertPlacement(spec.kind, experts, ranks);
}

ExpertPlacement make_placement(const PlacementSpec& spec, const PlacementShape& shape, const Router& router) {
  if (shape.redundant_experts < 0) {
    throw InputError("placement", "redundant_experts",
                     fmt::format("expected an integer >= 0, got {}", shape.redundant_experts));
  }
  if (spec.kind != PlacementKind::eplb) {
    if (shape.redundant_experts > 0) {
      throw InputError(
          "placement", "kind",
          fmt::format("{} redundant expert slots need the eplb placement", shape.redundant_experts));
    }
    return ExpertPlacement(spec.kind, shape.experts, shape.ranks);
  }
  const std::int64_t most_redundant = std::int64_t{shape.experts} * (shape.ranks - 1);
  if (shape.redundant_experts > most_redundant) {
    throw InputError("placement", "redundant_experts",
                     fmt::format("expected at most {} redundant slots (one copy of each of the {} experts on "
                                 "each of the {} EP ranks), got {}",
                                 most_redundant, shape.experts, shape.ranks, shape.redundant_experts));
  }
  const int slots = shape.experts + shape.redundant_experts;
  if (shape.experts < 1 || shape.ranks < 1 || slots % shape.ranks != 0) {
    throw InputError(
        "placement", "redundant_experts",
        fmt::format("expected the {} slots ({} experts + {} redundant) to split evenly over {} EP ranks",
                    slots, shape.experts, shape.redundant_experts, shape.ranks));
  }
  if (router.experts() != shape.experts) {
    throw InternalError(
        fmt::format("make_placement: router of {} experts for {} experts", router.experts(), shape.experts));
  }
  std::vector<std::vector<int>> layers;
  for (int layer = 0; layer < router.moe_layers(); ++layer) {
    layers.push_back(eplb_slot_experts(router.popularity(layer), shape.ranks, shape.redundant_experts,
                                       shape.ranks_per_node, spec.hierarchical));
  }
  return ExpertPlacement(shape.experts, shape.ranks, layers);
}

}  // namespace moesim
