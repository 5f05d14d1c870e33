#pragma once

#include <span>
#include <vector>

#include "sim/network/ep_layout.hpp"
#include "sim/network/network_params.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

// One MoE layer's routed traffic in an expert-parallel group, as the router and placement see it.
struct EpTraffic {
  std::span<const double> tokens_from_rank;     // tokens originating at each EP rank
  std::span<const double> assignments_to_rank;  // routed (token, expert) pairs landing on each rank
  int top_k = 1;
  double bytes_per_token = 0;   // one token's payload in this phase (e.g. FP8 + scales for dispatch)
  int max_nodes_per_token = 0;  // node-limited routing (DeepSeek-V3: 4); 0 or >= the nodes: no limit
};

// Fast estimate of dispatch and combine time, O(ranks) per call, for the per-layer, per-step hot path.
//
// Assumption: each source spreads its assignments over destinations in proportion to the destinations'
// load (sources independent of destinations): rank s sends top_k x tokens(s) x p_d assignments to rank d,
// p_d = assignments(d) / all assignments. In high-throughput mode a token reaches rank d at least once with
// probability u_d = 1 - (1 - p_d)^top_k and node N with U_N = 1 - (1 - P_N)^top_k (P_N: the node's share),
// so the expected distinct destination nodes per token are sum_N U_N (draws with replacement; moesim's own
// approximation of DeepEP's per-node de-duplication, REFERENCE.md §2). From these, each GPU's egress and
// ingress bytes on its scale-up port and its NIC follow in closed form; the slowest port decides, plus the
// longest path latency, the launch overhead and the per-peer overhead of the busiest sender.
// Node-limited routing (at most M nodes per token, fewer than the group spans) changes the high-throughput
// reaches: assumption (moesim's own) that a token first selects M nodes, node N with probability
// s_N = min(1, M P_N), then places its top_k inside them in proportion to load, so it reaches node N with
// probability s_N (1 - (1 - P_N / s_N)^top_k) and rank d of N with s_N (1 - (1 - p_d / s_N)^top_k) (exact for
// uniform routing over equal nodes; the independent form overestimates DeepSeek-V3's RDMA traffic by up to
// ~40 %). Low-latency kernels send every (token, expert) pair, so the limit does not change them. For traffic
// that really is proportional this equals all_to_all_cost on the matching matrix whenever links above the
// GPUs' first hop are not the bottleneck (true for a non-oversubscribed fabric).
//
// Not thread-safe: calls reuse internal scratch arrays so that no call allocates.
// Both phases of one MoE layer's all-to-all.
struct EpPhaseCosts {
  double dispatch_seconds = 0;
  double combine_seconds = 0;
  double dispatch_bytes = 0;
  double combine_bytes = 0;
};

class ExpertParallelComm {
 public:
  ExpertParallelComm(const ClusterGraph& graph, std::vector<int> ep_gpus, NetworkParams params);

  double dispatch_seconds(const EpTraffic& traffic) const;
  // Combine sends the dispatch traffic back (the transpose): each port carries the dispatch load of its
  // opposite direction.
  double combine_seconds(const EpTraffic& traffic) const;
  // Bytes leaving GPUs in one phase (relayed copies counted again at the relay); self-traffic excluded.
  double bytes(const EpTraffic& traffic) const;
  // dispatch_seconds, combine_seconds and bytes of both phases from one pass over the ranks;
  // `traffic.bytes_per_token` is the dispatch payload, `combine_bytes_per_token` the combine one.
  EpPhaseCosts dispatch_and_combine(const EpTraffic& traffic, double combine_bytes_per_token) const;

  const EpLayout& layout() const { return layout_; }
  const NetworkParams& params() const { return params_; }

 private:
  // Tests compare high_throughput_uniform_nodes with the general path by switching it off.
  friend struct ExpertParallelCommTestAccess;

  struct PortRates {
    double scale_up_out = 0;  // achieved bytes per second of the GPU's first-hop links
    double scale_up_in = 0;
    double scale_out_out = 0;
    double scale_out_in = 0;
  };
  // Seconds per byte of each port by rank (the reciprocals of PortRates; the largest double for a missing
  // port), one array per port so that the per-rank loops vectorise.
  struct PortCosts {
    std::vector<double> scale_up_out;
    std::vector<double> scale_up_in;
    std::vector<double> scale_out_out;
    std::vector<double> scale_out_in;
  };
  // Fills both phases' busiest port, the bytes and the most peers from the per-rank port loads; returns
  // false when nothing moves.
  bool compute_loads(const EpTraffic& traffic) const;
  // The facts that depend only on where tokens come from: every MoE layer of a step shares them, so
  // they are recomputed only when tokens_from_rank changes.
  void update_sources(std::span<const double> tokens_from_rank) const;
  // The high-throughput loads when every node's ranks are PerNode consecutive ranks (uniform_node_ranks_):
  // every result bit as the general path (the same operations on the same values, sums in the same order),
  // in vectors of four ranks or four nodes, passes over independent nodes instead of one long chain per
  // node, and summarise_ranks' maxima and byte lanes kept in registers. N = top_k, or 0 for any.
  template <int PerNode, int N>
  void high_throughput_uniform_nodes(const EpTraffic& traffic, double inverse_assignments) const;
  // Adds each rank's value to its node's entry of node_sums, every node's ranks in rank order.
  void add_by_node(const double* values, double* node_sums) const;
  // rank_reach_[r] = s (1 - (1 - rank_share_[r] / s)^top_k), s the rank's node_selected_ (1 without a
  // node limit), and their sums into node_unique_ (zeroed by the caller); N = top_k, or 0 for any.
  template <int N>
  void compute_rank_reach(int top_k, bool node_limited) const;
  // The busiest port of each phase, the bytes and the most peers over the ranks recorded.
  void summarise_ranks() const;
  double phase_seconds(const EpTraffic& traffic, bool reverse) const;
  double phase_from_loads(bool reverse, double payload_scale) const;
  // The phase's time from its busiest port's seconds at payload scale 1.
  double phase_total(double transfer, double payload_scale) const;

  EpLayout layout_;
  NetworkParams params_;
  EpTransport transport_;
  bool rdma_only_;
  std::vector<PortRates> rates_;
  PortCosts costs_;
  double same_node_latency_ = 0;   // longest path latency between two ranks of one node
  double cross_node_latency_ = 0;  // longest between ranks of different nodes
  double rail_latency_ = 0;        // longest from a rank to its forwarder on another node

  // Maximal runs of consecutive ranks on one node (one run per node when ranks are numbered node by
  // node): per-node values stay in registers over a run, and its loops vectorise.
  struct NodeRun {
    int node;
    int first;
    int end;
  };
  std::vector<NodeRun> runs_;
  // Ranks per node when each node's ranks are consecutive (node N's are N x it to N x it + it - 1) and
  // they number 4 or 8 (whole vectors of doubles), else 0: high_throughput_uniform_nodes applies.
  int uniform_node_ranks_ = 0;
  std::vector<int> node_of_rank_;      // layout_.node(r)
  std::vector<int> position_of_rank_;  // layout_.position(r)

  // Source facts of the last tokens_from_rank (update_sources).
  mutable std::vector<double> source_tokens_;  // tokens_from_rank as last seen (NaN before the first)
  mutable double all_tokens_ = 0;
  mutable std::vector<double> node_tokens_;     // tokens originating on node N
  mutable std::vector<double> rail_tokens_;     // per rank: tokens originating at its position on every node
  mutable std::vector<double> relayed_tokens_;  // per rank: rail_tokens_ minus its own
  mutable std::vector<double> sends_;           // per rank: 1 when it has tokens of its own, else 0
  mutable std::vector<double> forwards_;        // per rank: 1 when it has tokens or relays some, else 0

  // Scratch, sized at construction; node_share_, node_reach_ and node_selected_ padded to whole quads of
  // nodes (high_throughput_uniform_nodes handles four nodes at a time).
  mutable std::vector<double> rank_share_;         // p_d
  mutable std::vector<double> node_share_;         // P_N
  mutable std::vector<double> node_reach_;         // U_N
  mutable std::vector<double> node_selected_;      // s_N under node-limited routing (1 without a limit)
  mutable std::vector<double> node_unique_;        // sum of u_d over the node's ranks
  mutable std::vector<double> rank_reach_;         // u_d: a token reaches rank d at least once
  mutable std::vector<double> node_active_ranks_;  // ranks of the node with p_d > 0
  mutable std::vector<double> rank_active_;        // 1 where p_d > 0, else 0
  mutable std::vector<double> position_tokens_;    // Rt_q: tokens originating at position q over all nodes
  mutable std::vector<double> rank_dispatch_;      // per rank: seconds of its busiest port in the dispatch
  mutable std::vector<double> rank_combine_;       // the same with its ports' directions swapped
  mutable std::vector<double> rank_bytes_;         // bytes leaving it
  mutable std::vector<double> rank_peers_;         // peers it sends to
  mutable double dispatch_transfer_ = 0;           // seconds of the busiest port at the dispatch payload
  mutable double combine_transfer_ = 0;            // the same with every port's directions swapped
  mutable double load_bytes_ = 0;                  // bytes leaving GPUs in one phase at the dispatch payload
  mutable int most_peers_ = 0;
  mutable bool any_same_node_ = false;
  mutable bool any_cross_node_ = false;
};

}  // namespace moesim
