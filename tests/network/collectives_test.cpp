#include <catch2/catch.hpp>

#include <numeric>
#include <string>

#include "sim/common/error.hpp"
#include "sim/network/collectives.hpp"
#include "sim/network/network_backend.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

const std::string kClusters = std::string(MOESIM_TEST_SOURCE_DIR) + "/topologies/clusters/";
const std::string kData = std::string(MOESIM_TEST_SOURCE_DIR) + "/tests/data/topology/";

}  // namespace

TEST_CASE("one transfer on a hand-built two-GPU link costs exactly its pinned time", "[network][p2p]") {
  const ClusterGraph graph(load_cluster(kData + "two_gpu.json"));
  NetworkParams bare;
  bare.scale_out_efficiency = 1;
  bare.launch_overhead_us = 0;
  bare.per_peer_overhead_us = 0;
  // 1 MB over 100 GB/s = 10 us, plus the link's 2 us.
  CHECK(point_to_point_time(graph, 0, 1, 1e6, bare) == Approx(12e-6).epsilon(1e-12));
  NetworkParams params;
  params.scale_out_efficiency = 0.8;
  params.launch_overhead_us = 5;
  CHECK(point_to_point_time(graph, 0, 1, 1e6, params) == Approx(1e6 / 80e9 + 2e-6 + 5e-6).epsilon(1e-12));
  CHECK(point_to_point_time(graph, 0, 0, 1e6, params) == 0);
  CHECK(point_to_point_time(graph, 0, 1, 0, params) == 0);
  CHECK(make_network_backend(graph, params)->point_to_point_seconds(1, 0, 1e6) ==
        point_to_point_time(graph, 1, 0, 1e6, params));

  // All-to-all: the two directions are separate links, the heavier one decides.
  const std::vector<int> gpus{0, 1};
  const std::vector<double> bytes{7e9, 1e6, 3e6, 0};
  const auto cost = all_to_all_cost(graph, gpus, bytes, params);
  CHECK(cost.transfer_seconds == Approx(3e6 / 80e9));
  CHECK(graph.link_name(cost.bottleneck_link) == "gpu1->gpu0");
  CHECK(cost.bottleneck_link_bytes == 3e6);
  CHECK(cost.latency_seconds == Approx(2e-6));
  CHECK(cost.seconds == Approx(3e6 / 80e9 + 2e-6 + 5e-6 + params.per_peer_overhead_us * 1e-6));
  CHECK(all_to_all_time(graph, gpus, std::vector<double>{5, 0, 0, 5}, params) == 0);
  CHECK_THROWS_AS(all_to_all_time(graph, gpus, std::vector<double>{1, 2, 3}, params), InternalError);
}

TEST_CASE("ring all-reduce follows 2(n-1)/n bytes over the slowest hop", "[network][allreduce]") {
  const ClusterGraph graph(load_cluster(kClusters + "h800-8x4.json"));
  const NetworkParams params;
  const double bytes = 64e6;
  std::vector<int> node0(8);
  std::iota(node0.begin(), node0.end(), 0);
  const double hop_overhead = 1e-6 + params.per_peer_overhead_us * 1e-6;
  CHECK(ring_all_reduce_time(graph, node0, bytes, params) ==
        Approx(params.launch_overhead_us * 1e-6 + 14.0 / 8 * bytes / (200e9 * 0.69) + 14 * hop_overhead));
  // Across two nodes the NIC hop (3.5 us cross-rail path) decides.
  const std::vector<int> two_nodes{0, 9};
  CHECK(ring_all_reduce_time(graph, two_nodes, bytes, params) ==
        Approx(params.launch_overhead_us * 1e-6 + 1.0 * bytes / (50e9 * 0.92) +
               2 * (3.5e-6 + params.per_peer_overhead_us * 1e-6)));
  CHECK(ring_all_reduce_time(graph, std::vector<int>{3}, bytes, params) == 0);
}

TEST_CASE("dispatch matrices: per-pair copies for low latency, per-node copies for high throughput",
          "[network][matrix]") {
  const ClusterGraph graph(load_cluster(kClusters + "h800-8x4.json"));
  const EpLayout layout(graph, {0, 1, 8, 9});  // two nodes, two ranks each
  CHECK(layout.node_count() == 2);
  CHECK(layout.forwarder(0, 1) == 2);
  CHECK(layout.forwarder(1, 1) == 3);
  // One token from rank 0 choosing ranks 2, 3, 3, 1.
  const std::vector<int> sources{0};
  const std::vector<int> experts{2, 3, 3, 1};
  const auto low = ep_dispatch_matrix(layout, sources, experts, 4, 10.0, EpTransport::low_latency);
  CHECK(low == std::vector<double>{0, 10, 10, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const auto high = ep_dispatch_matrix(layout, sources, experts, 4, 10.0, EpTransport::high_throughput);
  // Rank 0 -> rank 1 (own node), rank 0 -> rank 2 (RDMA once to its rail peer), rank 2 -> rank 3 (NVLink).
  CHECK(high == std::vector<double>{0, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0});
}

TEST_CASE("expert-parallel groups: bad GPU lists are input errors", "[network][layout][fuzz]") {
  const ClusterGraph graph(load_cluster(kClusters + "h800-8x4.json"));
  CHECK_THROWS_WITH(EpLayout(graph, {}), Contains("expert-parallel group: gpus: expected at least one GPU"));
  CHECK_THROWS_WITH(EpLayout(graph, {0, 40}), Contains("gpus[1]: GPU 40 is not in cluster \"h800-8x4\""));
  CHECK_THROWS_WITH(EpLayout(graph, {0, -1}), Contains("gpus[1]: GPU -1 is not in cluster"));
  CHECK_THROWS_WITH(EpLayout(graph, {0, 1, 0}), Contains("gpus[2]: GPU 0 appears twice"));
  CHECK_THROWS_WITH(EpLayout(graph, {0, 1, 8}),
                    Contains("expected the same number of GPUs on every node, got 2 and 1"));
}

TEST_CASE("RDMA-only transport needs NICs", "[network][p2p]") {
  auto spec = load_cluster(kClusters + "h100-8x1.json");
  spec.nic.reset();
  spec.fabric.reset();
  const ClusterGraph graph(spec);
  NetworkParams params;
  params.low_latency_over_nvlink = false;
  const std::vector<int> gpus{0, 1};
  const std::vector<double> bytes{0, 1, 1, 0};
  CHECK_THROWS_WITH(
      all_to_all_time(graph, gpus, bytes, params, path_policy(EpTransport::low_latency, params)),
      Contains("network: low_latency_over_nvlink: false needs an RDMA route from gpu0 to gpu1"));
  CHECK(all_to_all_time(graph, gpus, bytes, params, path_policy(EpTransport::high_throughput, params)) > 0);
}
