#include "sim/network/ep_layout.hpp"

#include <map>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr const char* kSource = "expert-parallel group";

}  // namespace

EpLayout::EpLayout(const ClusterGraph& graph, std::vector<int> ep_gpus)
    : graph_(&graph), gpus_(std::move(ep_gpus)) {
  if (gpus_.empty()) throw InputError(kSource, "gpus", "expected at least one GPU");
  std::vector<bool> seen(graph.gpu_count(), false);
  std::map<int, int> compact_node;
  std::vector<int> ranks_on_node;
  node_of_rank_.resize(gpus_.size());
  position_of_rank_.resize(gpus_.size());
  for (std::size_t rank = 0; rank < gpus_.size(); ++rank) {
    const int gpu = gpus_[rank];
    if (gpu < 0 || gpu >= graph.gpu_count()) {
      throw InputError(
          kSource, fmt::format("gpus[{}]", rank),
          fmt::format("GPU {} is not in cluster \"{}\" of {} GPUs", gpu, graph.name(), graph.gpu_count()));
    }
    if (seen[gpu])
      throw InputError(kSource, fmt::format("gpus[{}]", rank), fmt::format("GPU {} appears twice", gpu));
    seen[gpu] = true;
    const auto [entry, added] =
        compact_node.emplace(graph.node_of(gpu), static_cast<int>(compact_node.size()));
    if (added) ranks_on_node.push_back(0);
    node_of_rank_[rank] = entry->second;
    position_of_rank_[rank] = ranks_on_node[entry->second]++;
  }
  node_count_ = static_cast<int>(ranks_on_node.size());
  ranks_per_node_ = ranks_on_node.front();
  for (int node = 0; node < node_count_; ++node) {
    if (ranks_on_node[node] != ranks_per_node_) {
      throw InputError(kSource, "gpus",
                       fmt::format("expected the same number of GPUs on every node, got {} and {}",
                                   ranks_per_node_, ranks_on_node[node]));
    }
  }
  rank_at_.resize(gpus_.size());
  for (int rank = 0; rank < rank_count(); ++rank)
    rank_at_[node_of_rank_[rank] * ranks_per_node_ + position_of_rank_[rank]] = rank;
}

}  // namespace moesim
