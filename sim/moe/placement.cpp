#include "sim/moe/placement.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"
#include "sim/moe/eplb.hpp"
#include "sim/router/router.hpp"

namespace moesim {

namespace {

// Rebalancing periods and windows: a millisecond (below, a step outlasts the period) to 1e9 s (above,
// nanosecond times overflow).
constexpr double kMinRebalanceSeconds = 1e-3;
constexpr double kMaxRebalanceSeconds = 1e9;
// The most rebalancing window buckets (window_s / every_s).
constexpr double kMostWindowPeriods = 64;

std::vector<std::vector<int>> read_placement_file(const std::filesystem::path& file) {
  const nlohmann::json document = JsonReader::parse_file(file);
  const JsonReader reader(document, file.string());
  reader.string("description", "");
  const nlohmann::json& layers = reader.raw("layers");
  if (!layers.is_array() || layers.empty()) {
    reader.fail("layers",
                fmt::format("expected a non-empty array of slot lists, got {}", describe_json(layers)));
  }
  std::vector<std::vector<int>> result;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const nlohmann::json& layer = layers[l];
    if (!layer.is_array() || layer.empty()) {
      throw InputError(file.string(), fmt::format("layers[{}]", l),
                       fmt::format("expected a non-empty array of expert ids, got {}", describe_json(layer)));
    }
    std::vector<int>& slots = result.emplace_back();
    for (std::size_t s = 0; s < layer.size(); ++s) {
      const nlohmann::json& expert = layer[s];
      if (!(expert.is_number_integer() || expert.is_number_unsigned()) || expert.get<std::int64_t>() < 0 ||
          expert.get<std::int64_t>() > std::numeric_limits<int>::max()) {
        throw InputError(
            file.string(), fmt::format("layers[{}][{}]", l, s),
            fmt::format("expected an expert id (an integer >= 0), got {}", describe_json(expert)));
      }
      slots.push_back(expert.get<int>());
    }
  }
  reader.finish();
  return result;
}

RebalanceSpec parse_rebalance(const JsonReader& reader) {
  RebalanceSpec spec;
  spec.every_s = reader.positive_number("every_s");
  spec.window_s = reader.positive_number("window_s", spec.every_s);
  for (const auto& [key, value] :
       {std::pair{"every_s", spec.every_s}, std::pair{"window_s", spec.window_s}}) {
    if (value < kMinRebalanceSeconds || value > kMaxRebalanceSeconds) {
      reader.fail(key, fmt::format("expected seconds in [{}, {}], got {}", kMinRebalanceSeconds,
                                   kMaxRebalanceSeconds, value));
    }
  }
  spec.min_gain = reader.fraction("min_gain", 0.0);
  const double periods = spec.window_s / spec.every_s;
  if (periods > 1 && (std::abs(periods - std::round(periods)) > 1e-9 || periods > kMostWindowPeriods)) {
    reader.fail("window_s", fmt::format("expected at most every_s ({} s) or a whole multiple of it up to 64 "
                                        "times, got {} s",
                                        spec.every_s, spec.window_s));
  }
  reader.finish();
  return spec;
}

}  // namespace

PlacementSpec parse_placement(const JsonReader& reader, const std::filesystem::path& base_dir) {
  PlacementSpec spec;
  const auto kind = reader.choice("kind", {"contiguous", "round_robin", "eplb", "file"}, "contiguous");
  spec.kind = kind == "round_robin" ? PlacementKind::round_robin
              : kind == "eplb"      ? PlacementKind::eplb
              : kind == "file"      ? PlacementKind::file
                                    : PlacementKind::contiguous;
  if (spec.kind == PlacementKind::eplb) {
    spec.hierarchical = reader.boolean("hierarchical", false);
    if (auto rebalance = reader.optional_object("rebalance")) spec.rebalance = parse_rebalance(*rebalance);
  }
  if (spec.kind == PlacementKind::file) {
    spec.file = resolve_user_path(reader.string("file"), base_dir);
    spec.file_layers = read_placement_file(spec.file);
  }
  reader.finish();
  return spec;
}

nlohmann::json to_json(const PlacementSpec& spec) {
  switch (spec.kind) {
    case PlacementKind::contiguous:
      return {{"kind", "contiguous"}};
    case PlacementKind::round_robin:
      return {{"kind", "round_robin"}};
    case PlacementKind::eplb: {
      nlohmann::json json{{"kind", "eplb"}, {"hierarchical", spec.hierarchical}};
      if (spec.rebalance) {
        json["rebalance"] = {{"every_s", spec.rebalance->every_s},
                             {"window_s", spec.rebalance->window_s},
                             {"min_gain", spec.rebalance->min_gain}};
      }
      return json;
    }
    case PlacementKind::file:
      return {{"kind", "file"}, {"file", spec.file.string()}};
  }
  return {};
}

void check_placement_file(const PlacementSpec& spec, const PlacementShape& shape, int moe_layers) {
  if (spec.kind != PlacementKind::file) return;
  const std::string source = spec.file.string();
  const auto& layers = spec.file_layers;
  if (static_cast<int>(layers.size()) != 1 && static_cast<int>(layers.size()) != moe_layers) {
    throw InputError(source, "layers",
                     fmt::format("expected one layout for every MoE layer or one per MoE layer ({}), got {}",
                                 moe_layers, layers.size()));
  }
  const std::int64_t slots = std::int64_t{shape.experts} + shape.redundant_experts;
  std::vector<char> seen(static_cast<std::size_t>(shape.experts));
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::string place = fmt::format("layers[{}]", l);
    if (static_cast<std::int64_t>(layers[l].size()) != slots) {
      throw InputError(source, place,
                       fmt::format("expected {} slots ({} experts + {} redundant, "
                                   "deployment.parallel.redundant_experts), got {}",
                                   slots, shape.experts, shape.redundant_experts, layers[l].size()));
    }
    if (shape.ranks < 1 || slots % shape.ranks != 0) {
      throw InputError(
          source, place,
          fmt::format("expected the {} slots to split evenly over {} EP ranks", slots, shape.ranks));
    }
    std::fill(seen.begin(), seen.end(), 0);
    for (std::size_t s = 0; s < layers[l].size(); ++s) {
      const int expert = layers[l][s];
      if (expert >= shape.experts) {
        throw InputError(source, fmt::format("{}[{}]", place, s),
                         fmt::format("expected an expert id below {}, got {}", shape.experts, expert));
      }
      seen[static_cast<std::size_t>(expert)] = 1;
    }
    const auto missing = std::find(seen.begin(), seen.end(), 0);
    if (missing != seen.end()) {
      throw InputError(source, place,
                       fmt::format("expected every expert in at least one slot; expert {} has none",
                                   missing - seen.begin()));
    }
  }
}

ExpertPlacement::ExpertPlacement(PlacementKind kind, int experts, int ranks)
    : experts_(experts), ranks_(ranks), slots_(experts) {
  if (kind == PlacementKind::eplb || kind == PlacementKind::file) {
    throw InternalError("ExpertPlacement: eplb and file placements are built by make_placement");
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
  if (spec.kind == PlacementKind::file) {
    throw InputError("placement", "kind", "a file placement needs the deployment's shape");
  }
  return ExpertPlacement(spec.kind, experts, ranks);
}

ExpertPlacement make_placement(const PlacementSpec& spec, const PlacementShape& shape, const Router& router) {
  if (shape.redundant_experts < 0) {
    throw InputError("placement", "redundant_experts",
                     fmt::format("expected an integer >= 0, got {}", shape.redundant_experts));
  }
  if (spec.kind == PlacementKind::file) {
    check_placement_file(spec, shape, router.moe_layers());
    return ExpertPlacement(shape.experts, shape.ranks, spec.file_layers);
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
