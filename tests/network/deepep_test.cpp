// The network model against DeepEP's published kernels (REFERENCE.md §2, H800 + ConnectX-7 400 Gb/s).
// Bandwidths are counted as DeepEP's test scripts count them: normal intranode kernels, bytes each rank
// receives (its own tokens included) over time; normal internode kernels, tokens x distinct destination
// nodes (the own node included) x bytes over time; low-latency kernels, tokens x top-k x bytes over time.
#include <catch2/catch.hpp>

#include <cstdio>
#include <numeric>
#include <string>

#include "sim/common/rng.hpp"
#include "sim/network/collectives.hpp"
#include "sim/network/expert_parallel_comm.hpp"

using namespace moesim;

namespace {

const std::string kClusters = std::string(MOESIM_TEST_SOURCE_DIR) + "/topologies/clusters/";
constexpr int kExperts = 256;
constexpr int kTopK = 8;
constexpr int kHidden = 7168;
// FP8 values plus one float scale per 128 values; BF16 for combine.
constexpr double kDispatchBytes = kHidden + kHidden / 128 * 4;
constexpr double kCombineBytes = 2.0 * kHidden;

ClusterGraph h800_cluster(int gpus) {
  auto spec = load_cluster(kClusters + "h800-8x4.json");
  spec.nodes = std::max(1, gpus / 8);
  return ClusterGraph(spec);
}

struct Routing {
  std::vector<int> source_rank;
  std::vector<int> expert_rank;  // tokens x top-k
};

// Uniform routing as DeepEP's tests draw it: random scores; internode kernels first keep the
// min(nodes, 4) best node groups, then the top-8 experts inside them.
Routing uniform_routing(int ranks, int tokens_per_rank, bool node_limited, std::uint64_t seed) {
  Rng rng(seed);
  const int experts_per_rank = kExperts / ranks;
  const int nodes = std::max(1, ranks / 8);
  const int experts_per_node = kExperts / nodes;
  const int groups = node_limited ? std::min(nodes, 4) : nodes;
  Routing routing;
  std::vector<int> node_order(nodes), pool;
  for (int rank = 0; rank < ranks; ++rank) {
    for (int token = 0; token < tokens_per_rank; ++token) {
      std::iota(node_order.begin(), node_order.end(), 0);
      pool.clear();
      for (int g = 0; g < groups; ++g) {
        std::swap(node_order[g], node_order[g + rng.below(nodes - g)]);
        for (int e = 0; e < experts_per_node; ++e)
          pool.push_back(node_order[g] * experts_per_node + e);
      }
      routing.source_rank.push_back(rank);
      for (int pick = 0; pick < kTopK; ++pick) {
        std::swap(pool[pick], pool[pick + rng.below(pool.size() - pick)]);
        routing.expert_rank.push_back(pool[pick] / experts_per_rank);
      }
    }
  }
  return routing;
}

std::vector<double> transposed_scaled(const std::vector<double>& matrix, int ranks, double scale) {
  std::vector<double> out(matrix.size());
  for (int s = 0; s < ranks; ++s) {
    for (int d = 0; d < ranks; ++d)
      out[static_cast<std::size_t>(d) * ranks + s] = scale * matrix[static_cast<std::size_t>(s) * ranks + d];
  }
  return out;
}

// Per-rank mean of the units DeepEP counts: distinct destination ranks (intranode) or nodes (internode).
double counted_copies_per_rank(const Routing& routing, int ranks, int ranks_per_unit) {
  double copies = 0;
  std::vector<int> units;
  for (std::size_t token = 0; token < routing.source_rank.size(); ++token) {
    units.clear();
    for (int pick = 0; pick < kTopK; ++pick)
      units.push_back(routing.expert_rank[token * kTopK + pick] / ranks_per_unit);
    std::sort(units.begin(), units.end());
    copies += static_cast<double>(std::unique(units.begin(), units.end()) - units.begin());
  }
  return copies / ranks;
}

void report(const char* label, double model, double reference) {
  std::printf("  %-34s model %7.1f   DeepEP %7.1f   (%+.0f %%)\n", label, model, reference,
              100 * (model / reference - 1));
}

}  // namespace

TEST_CASE("normal kernels: bottleneck bandwidth within 20 % of DeepEP", "[network][deepep]") {
  struct Row {
    int ranks;
    double dispatch_GBps, combine_GBps;
  };
  std::printf("DeepEP normal kernels, 4096 tokens per rank, uniform routing (GB/s)\n");
  for (const Row row : {Row{8, 153, 158}, Row{16, 43, 43}, Row{32, 58, 57}, Row{64, 51, 50}}) {
    const ClusterGraph graph = h800_cluster(row.ranks);
    std::vector<int> gpus(row.ranks);
    std::iota(gpus.begin(), gpus.end(), 0);
    const NetworkParams params;
    const EpLayout layout(graph, gpus);
    const bool internode = row.ranks > 8;
    const auto routing = uniform_routing(row.ranks, 4096, internode, 17);
    const auto matrix = ep_dispatch_matrix(layout, routing.source_rank, routing.expert_rank, kTopK,
                                           kDispatchBytes, EpTransport::high_throughput);
    const auto dispatch = all_to_all_cost(graph, gpus, matrix, params);
    const auto combine = all_to_all_cost(
        graph, gpus, transposed_scaled(matrix, row.ranks, kCombineBytes / kDispatchBytes), params);
    const double copies = counted_copies_per_rank(routing, row.ranks, internode ? 8 : 1);
    const double dispatch_GBps = copies * kDispatchBytes / dispatch.seconds / 1e9;
    const double combine_GBps = copies * kCombineBytes / combine.seconds / 1e9;
    std::printf(" EP%d (bottleneck %s, %.0f us dispatch, link at %.1f GB/s)\n", row.ranks,
                graph.link_name(dispatch.bottleneck_link).c_str(), dispatch.seconds * 1e6,
                dispatch.bottleneck_link_bytes / dispatch.seconds / 1e9);
    report("dispatch", dispatch_GBps, row.dispatch_GBps);
    report("combine", combine_GBps, row.combine_GBps);
    CHECK(dispatch_GBps == Approx(row.dispatch_GBps).epsilon(0.2));
    CHECK(combine_GBps == Approx(row.combine_GBps).epsilon(0.2));

    // The fast estimate from per-rank totals stays close to the exact sampled matrix, except where routing
    // is node-limited (EP64: 4 of 8 nodes per token), which its independence assumption does not know:
    // it expects 5.3 distinct nodes per token instead of 3.6 and overestimates by ~40 %.
    std::vector<double> tokens(row.ranks, 4096), assignments(row.ranks, 0);
    for (const int rank : routing.expert_rank)
      assignments[rank] += 1;
    const ExpertParallelComm comm(graph, gpus, params);
    const double fast = comm.dispatch_seconds(EpTraffic{tokens, assignments, kTopK, kDispatchBytes});
    std::printf("  fast estimate %.0f us vs exact %.0f us\n", fast * 1e6, dispatch.seconds * 1e6);
    if (row.ranks != 64) CHECK(fast == Approx(dispatch.seconds).epsilon(0.1));
  }
}

TEST_CASE("low-latency kernels: latency and bandwidth within 20 % of DeepEP", "[network][deepep]") {
  struct Row {
    int ranks;
    double dispatch_us, dispatch_GBps, combine_us, combine_GBps;
  };
  std::printf("DeepEP low-latency kernels, pure RDMA, 128 tokens per rank (us, GB/s)\n");
  NetworkParams params;
  params.ep_transport = EpTransport::low_latency;
  params.low_latency_over_nvlink = false;
  for (const Row row : {Row{8, 163, 46, 318, 46}, Row{16, 173, 43, 329, 44}, Row{32, 182, 41, 350, 41},
                        Row{64, 186, 40, 353, 41}, Row{128, 192, 39, 369, 39}, Row{256, 194, 39, 360, 40}}) {
    const ClusterGraph graph = h800_cluster(row.ranks);
    std::vector<int> gpus(row.ranks);
    std::iota(gpus.begin(), gpus.end(), 0);
    const EpLayout layout(graph, gpus);
    const auto routing = uniform_routing(row.ranks, 128, false, 29);
    const auto matrix = ep_dispatch_matrix(layout, routing.source_rank, routing.expert_rank, kTopK,
                                           kDispatchBytes, EpTransport::low_latency);
    const auto policy = path_policy(EpTransport::low_latency, params);
    const double dispatch = all_to_all_time(graph, gpus, matrix, params, policy);
    const double combine = all_to_all_time(
        graph, gpus, transposed_scaled(matrix, row.ranks, kCombineBytes / kDispatchBytes), params, policy);
    std::printf(" EP%d\n", row.ranks);
    report("dispatch latency (us)", dispatch * 1e6, row.dispatch_us);
    report("dispatch bandwidth", 128 * kTopK * kDispatchBytes / dispatch / 1e9, row.dispatch_GBps);
    report("combine latency (us)", combine * 1e6, row.combine_us);
    report("combine bandwidth", 128 * kTopK * kCombineBytes / combine / 1e9, row.combine_GBps);
    CHECK(dispatch * 1e6 == Approx(row.dispatch_us).epsilon(0.2));
    CHECK(combine * 1e6 == Approx(row.combine_us).epsilon(0.2));
    CHECK(128 * kTopK * kDispatchBytes / dispatch / 1e9 == Approx(row.dispatch_GBps).epsilon(0.2));
    CHECK(128 * kTopK * kCombineBytes / combine / 1e9 == Approx(row.combine_GBps).epsilon(0.2));
  }
}

TEST_CASE("low-latency kernels over NVLink inside a node (DeepEP's later version)", "[network][deepep]") {
  NetworkParams params;
  params.ep_transport = EpTransport::low_latency;
  std::printf("DeepEP low-latency kernels with NVLink inside nodes (us)\n");
  for (const auto& [ranks, dispatch_us, combine_us] :
       {std::tuple{8, 77.0, 114.0}, std::tuple{32, 155.0, 273.0}}) {
    const ClusterGraph graph = h800_cluster(ranks);
    std::vector<int> gpus(ranks);
    std::iota(gpus.begin(), gpus.end(), 0);
    const auto routing = uniform_routing(ranks, 128, false, 31);
    const auto matrix = ep_dispatch_matrix(EpLayout(graph, gpus), routing.source_rank, routing.expert_rank,
                                           kTopK, kDispatchBytes, EpTransport::low_latency);
    const double dispatch = all_to_all_time(graph, gpus, matrix, params);
    const double combine = all_to_all_time(
        graph, gpus, transposed_scaled(matrix, ranks, kCombineBytes / kDispatchBytes), params);
    std::printf(" EP%d\n", ranks);
    report("dispatch latency (us)", dispatch * 1e6, dispatch_us);
    report("combine latency (us)", combine * 1e6, combine_us);
    // EP8 dispatch comes out 14 % short: the model's fixed overhead was fitted to the RDMA version.
    CHECK(dispatch * 1e6 == Approx(dispatch_us).epsilon(0.2));
    CHECK(combine * 1e6 == Approx(combine_us).epsilon(0.2));
  }
}
