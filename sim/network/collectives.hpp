#pragma once

#include <span>
#include <vector>

#include "sim/network/ep_layout.hpp"
#include "sim/network/network_params.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

// Which route a flow takes between two GPUs of the same node.
enum class PathPolicy {
  shortest,        // NVLink inside a node
  scale_out_only,  // RDMA loopback through the NICs even inside a node
};

// The policy a transport implies under `params` (low-latency kernels without NVLink use RDMA only).
PathPolicy path_policy(EpTransport transport, const NetworkParams& params);

// Time of one collective and where it was decided.
struct CollectiveCost {
  double seconds = 0;
  double transfer_seconds = 0;  // slowest link's bytes over its achieved rate
  double latency_seconds = 0;   // longest path latency among the flows
  double overhead_seconds = 0;  // launch plus per-peer overhead
  int bottleneck_link = -1;     // -1 when nothing crossed a link
  double bottleneck_link_bytes = 0;
};

// Exact all-to-all time from a traffic matrix. `gpus` maps rank -> GPU id; `bytes` is row-major
// ranks x ranks (source row, destination column); the diagonal stays on its GPU and costs nothing.
// Every flow is put on the links of its path; time = launch overhead + max over links of
// bytes / (bandwidth x efficiency) + the longest flow's path latency + per-peer overhead x the largest
// number of destinations of one source. No traffic at all costs zero.
CollectiveCost all_to_all_cost(const ClusterGraph& graph, std::span<const int> gpus,
                               std::span<const double> bytes, const NetworkParams& params,
                               PathPolicy policy = PathPolicy::shortest);
double all_to_all_time(const ClusterGraph& graph, std::span<const int> gpus, std::span<const double> bytes,
                       const NetworkParams& params, PathPolicy policy = PathPolicy::shortest);

// The dispatch traffic matrix (ranks x ranks, bytes) of routed tokens. Token t starts at rank
// `token_source_rank[t]` and chose the experts hosted on ranks token_expert_rank[t*top_k .. t*top_k+top_k).
// low_latency: one copy per (token, expert). high_throughput: one copy per destination node to the source's
// rail peer there (EpLayout::forwarder), which forwards one copy per distinct destination rank on its node;
// ranks on the source's own node get one copy each straight from the source. The combine matrix is the
// transpose.
std::vector<double> ep_dispatch_matrix(const EpLayout& layout, std::span<const int> token_source_rank,
                                       std::span<const int> token_expert_rank, int top_k,
                                       double bytes_per_token, EpTransport transport);

// One transfer (e.g. a KV cache from a prefill to a decode GPU): launch overhead + path latency +
// bytes over the path's slowest achieved link rate. Zero bytes or the same GPU costs zero.
double point_to_point_time(const ClusterGraph& graph, int src_gpu, int dst_gpu, double bytes,
                           const NetworkParams& params);

// Ring all-reduce of `bytes` per GPU over `gpus` in ring order (attention tensor parallelism):
// launch overhead + 2(n-1)/n x bytes over the slowest ring hop's achieved rate
// + 2(n-1) x (longest ring hop latency + per-peer overhead). One GPU costs zero.
double ring_all_reduce_time(const ClusterGraph& graph, std::span<const int> gpus, double bytes,
                            const NetworkParams& params);

}  // namespace moesim
