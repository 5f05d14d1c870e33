#pragma once

#include <vector>

#include "sim/topology/cluster_graph.hpp"

namespace moesim {

// The GPUs of one expert-parallel group: rank -> GPU, the nodes the group spans (numbered 0.. in order of
// first appearance) and each rank's position among its node's ranks. Every spanned node must hold the
// same number of ranks, so position p of one node pairs with position p of every other (its rail peer).
class EpLayout {
 public:
  EpLayout(const ClusterGraph& graph, std::vector<int> ep_gpus);

  const ClusterGraph& graph() const { return *graph_; }
  int rank_count() const { return static_cast<int>(gpus_.size()); }
  int gpu(int rank) const { return gpus_[rank]; }
  const std::vector<int>& gpus() const { return gpus_; }
  int node_count() const { return node_count_; }
  int ranks_per_node() const { return ranks_per_node_; }
  int node(int rank) const { return node_of_rank_[rank]; }
  int position(int rank) const { return position_of_rank_[rank]; }
  int rank_at(int node, int position) const { return rank_at_[node * ranks_per_node_ + position]; }
  // The rank on `node` that receives `source_rank`'s RDMA traffic in high-throughput mode.
  int forwarder(int source_rank, int node) const { return rank_at(node, position(source_rank)); }

 private:
  const ClusterGraph* graph_;
  std::vector<int> gpus_;
  int node_count_ = 0;
  int ranks_per_node_ = 0;
  std::vector<int> node_of_rank_;
  std::vector<int> position_of_rank_;
  std::vector<int> rank_at_;
};

}  // namespace moesim
