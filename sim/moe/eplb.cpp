#include "sim/moe/eplb.hpp"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// Replica count per expert for `slots` slots: each extra slot to the highest load per replica.
std::vector<int> replicate(std::span<const double> load, int slots) {
  std::vector<int> replicas(load.size(), 1);
  for (int extra = static_cast<int>(load.size()); extra < slots; ++extra) {
    std::size_t best = 0;
    for (std::size_t e = 1; e < load.size(); ++e) {
      if (load[e] / replicas[e] > load[best] / replicas[best]) best = e;
    }
    ++replicas[best];
  }
  return replicas;
}

// The pack of each item: heaviest first onto the least loaded pack with room, packs.size() / packs
// items per pack.
std::vector<int> balanced_packing(std::span<const double> weight, int packs) {
  const int per_pack = static_cast<int>(weight.size()) / packs;
  std::vector<int> order(weight.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return weight[a] > weight[b]; });
  std::vector<double> pack_load(static_cast<std::size_t>(packs), 0.0);
  std::vector<int> pack_items(static_cast<std::size_t>(packs), 0);
  std::vector<int> pack_of(weight.size(), 0);
  for (const int item : order) {
    int best = -1;
    for (int p = 0; p < packs; ++p) {
      if (pack_items[p] < per_pack && (best < 0 || pack_load[p] < pack_load[best])) best = p;
    }
    pack_of[item] = best;
    pack_load[best] += weight[item];
    ++pack_items[best];
  }
  return pack_of;
}

// Replicates `experts` (ids) to `slots` slots and packs them onto `ranks` ranks; appends each rank's
// experts, sorted, to `slot_experts` rank by rank.
void place_on_ranks(std::span<const int> experts, std::span<const double> load, int slots, int ranks,
                    std::vector<int>& slot_experts) {
  std::vector<double> local_load(experts.size());
  for (std::size_t i = 0; i < experts.size(); ++i)
    local_load[i] = load[experts[i]];
  const std::vector<int> replicas = replicate(local_load, slots);
  std::vector<int> slot_expert;
  std::vector<double> slot_weight;
  for (std::size_t i = 0; i < experts.size(); ++i) {
    for (int r = 0; r < replicas[i]; ++r) {
      slot_expert.push_back(experts[i]);
      slot_weight.push_back(local_load[i] / replicas[i]);
    }
  }
  const std::vector<int> rank_of = balanced_packing(slot_weight, ranks);
  for (int rank = 0; rank < ranks; ++rank) {
    const std::size_t first = slot_experts.size();
    for (std::size_t s = 0; s < slot_expert.size(); ++s) {
      if (rank_of[s] == rank) slot_experts.push_back(slot_expert[s]);
    }
    std::sort(slot_experts.begin() + static_cast<std::ptrdiff_t>(first), slot_experts.end());
  }
}

}  // namespace

std::vector<int> eplb_slot_experts(std::span<const double> expert_load, int ranks, int redundant,
                                   int ranks_per_node, bool hierarchical) {
  const int experts = static_cast<int>(expert_load.size());
  const int slots = experts + redundant;
  if (experts < 1 || ranks < 1 || redundant < 0 || slots % ranks != 0) {
    throw InternalError(fmt::format("eplb_slot_experts: {} experts + {} redundant slots on {} ranks", experts,
                                    redundant, ranks));
  }
  const int nodes = ranks_per_node > 0 && ranks_per_node < ranks && ranks % ranks_per_node == 0
                        ? ranks / ranks_per_node
                        : 1;
  const int groups = experts % ranks == 0 ? ranks : 0;
  std::vector<int> slot_experts;
  slot_experts.reserve(static_cast<std::size_t>(slots));
  if (!hierarchical || nodes == 1 || groups == 0 || groups % nodes != 0) {
    std::vector<int> all(static_cast<std::size_t>(experts));
    std::iota(all.begin(), all.end(), 0);
    place_on_ranks(all, expert_load, slots, ranks, slot_experts);
    return slot_experts;
  }
  const int group_size = experts / groups;
  std::vector<double> group_load(static_cast<std::size_t>(groups), 0.0);
  for (int e = 0; e < experts; ++e)
    group_load[e / group_size] += expert_load[e];
  const std::vector<int> node_of_group = balanced_packing(group_load, nodes);
  for (int node = 0; node < nodes; ++node) {
    std::vector<int> node_experts;
    for (int e = 0; e < experts; ++e) {
      if (node_of_group[e / group_size] == node) node_experts.push_back(e);
    }
    place_on_ranks(node_experts, expert_load, slots / nodes, ranks / nodes, slot_experts);
  }
  return slot_experts;
}

}  // namespace moesim
