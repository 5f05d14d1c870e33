#include "sim/network/collectives.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr double kSecondsPerUs = 1e-6;

const GraphPath& route(const ClusterGraph& graph, int src_gpu, int dst_gpu, PathPolicy policy) {
  if (policy == PathPolicy::shortest) return graph.path(src_gpu, dst_gpu);
  const GraphPath* path = graph.scale_out_path(src_gpu, dst_gpu);
  if (path == nullptr) {
    throw InputError("network", "low_latency_over_nvlink",
                     fmt::format("false needs an RDMA route from gpu{} to gpu{}, and cluster \"{}\" has none",
                                 src_gpu, dst_gpu, graph.name()));
  }
  return *path;
}

// The slowest achieved rate along a path.
double achieved_rate(const ClusterGraph& graph, const GraphPath& path, const NetworkParams& params) {
  double rate = std::numeric_limits<double>::infinity();
  for (const auto link : path.links)
    rate = std::min(rate, graph.link_bandwidth(link) * params.efficiency(graph.link_class(link)));
  return rate;
}

}  // namespace

PathPolicy path_policy(EpTransport transport, const NetworkParams& params) {
  return transport == EpTransport::low_latency && !params.low_latency_over_nvlink ? PathPolicy::scale_out_only
                                                                                  : PathPolicy::shortest;
}

CollectiveCost all_to_all_cost(const ClusterGraph& graph, std::span<const int> gpus,
                               std::span<const double> bytes, const NetworkParams& params,
                               PathPolicy policy) {
  const std::size_t ranks = gpus.size();
  if (bytes.size() != ranks * ranks) {
    throw InternalError(fmt::format("all_to_all: {} ranks need a {}-entry matrix, got {}", ranks,
                                    ranks * ranks, bytes.size()));
  }
  std::vector<double> link_bytes(graph.link_count(), 0.0);
  CollectiveCost cost;
  int most_peers = 0;
  for (std::size_t src = 0; src < ranks; ++src) {
    int peers = 0;
    for (std::size_t dst = 0; dst < ranks; ++dst) {
      const double amount = bytes[src * ranks + dst];
      if (src == dst || amount <= 0) continue;
      ++peers;
      const GraphPath& path = route(graph, gpus[src], gpus[dst], policy);
      cost.latency_seconds = std::max(cost.latency_seconds, path.latency_s);
      for (const auto link : path.links)
        link_bytes[link] += amount;
    }
    most_peers = std::max(most_peers, peers);
  }
  if (most_peers == 0) return cost;
  for (int link = 0; link < graph.link_count(); ++link) {
    const double seconds =
        link_bytes[link] / (graph.link_bandwidth(link) * params.efficiency(graph.link_class(link)));
    if (seconds > cost.transfer_seconds) {
      cost.transfer_seconds = seconds;
      cost.bottleneck_link = link;
      cost.bottleneck_link_bytes = link_bytes[link];
    }
  }
  cost.overhead_seconds =
      (params.launch_overhead_us + params.per_peer_overhead_us * most_peers) * kSecondsPerUs;
  cost.seconds = cost.transfer_seconds + cost.latency_seconds + cost.overhead_seconds;
  return cost;
}

double all_to_all_time(const ClusterGraph& graph, std::span<const int> gpus, std::span<const double> bytes,
                       const NetworkParams& params, PathPolicy policy) {
  return all_to_all_cost(graph, gpus, bytes, params, policy).seconds;
}

std::vector<double> ep_dispatch_matrix(const EpLayout& layout, std::span<const int> token_source_rank,
                                       std::span<const int> token_expert_rank, int top_k,
                                       double bytes_per_token, EpTransport transport) {
  const int ranks = layout.rank_count();
  if (top_k <= 0 || token_expert_rank.size() != token_source_rank.size() * static_cast<std::size_t>(top_k)) {
    throw InternalError("ep_dispatch_matrix: expected top_k destination ranks per token");
  }
  std::vector<double> matrix(static_cast<std::size_t>(ranks) * ranks, 0.0);
  const auto add = [&](int src, int dst) {
    matrix[static_cast<std::size_t>(src) * ranks + dst] += bytes_per_token;
  };
  std::vector<int> destinations;
  std::vector<bool> node_reached(layout.node_count());
  for (std::size_t token = 0; token < token_source_rank.size(); ++token) {
    const int src = token_source_rank[token];
    const auto chosen = token_expert_rank.subspan(token * top_k, top_k);
    if (transport == EpTransport::low_latency) {
      for (const int dst : chosen)
        add(src, dst);
      continue;
    }
    destinations.assign(chosen.begin(), chosen.end());
    std::sort(destinations.begin(), destinations.end());
    destinations.erase(std::unique(destinations.begin(), destinations.end()), destinations.end());
    std::fill(node_reached.begin(), node_reached.end(), false);
    for (const int dst : destinations) {
      const int node = layout.node(dst);
      if (node == layout.node(src)) {
        if (dst != src) add(src, dst);
        continue;
      }
      const int relay = layout.forwarder(src, node);
      if (!node_reached[node]) add(src, relay);
      node_reached[node] = true;
      if (dst != relay) add(relay, dst);
    }
  }
  return matrix;
}

double point_to_point_time(const ClusterGraph& graph, int src_gpu, int dst_gpu, double bytes,
                           const NetworkParams& params) {
  if (src_gpu == dst_gpu || bytes <= 0) return 0;
  const GraphPath& path = graph.path(src_gpu, dst_gpu);
  return params.launch_overhead_us * kSecondsPerUs + path.latency_s +
         bytes / achieved_rate(graph, path, params);
}

double ring_all_reduce_time(const ClusterGraph& graph, std::span<const int> gpus, double bytes,
                            const NetworkParams& params) {
  const auto n = static_cast<double>(gpus.size());
  if (gpus.size() < 2 || bytes <= 0) return 0;
  double slowest_rate = std::numeric_limits<double>::infinity();
  double longest_hop = 0;
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    const GraphPath& hop = graph.path(gpus[i], gpus[(i + 1) % gpus.size()]);
    slowest_rate = std::min(slowest_rate, achieved_rate(graph, hop, params));
    longest_hop = std::max(longest_hop, hop.latency_s);
  }
  const double steps = 2 * (n - 1);
  return params.launch_overhead_us * kSecondsPerUs + steps / n * bytes / slowest_rate +
         steps * (longest_hop + params.per_peer_overhead_us * kSecondsPerUs);
}

}  // namespace moesim
