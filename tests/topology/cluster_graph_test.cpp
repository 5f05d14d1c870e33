#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include "sim/common/error.hpp"
#include "sim/topology/cluster_graph.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

const std::string kClusters = std::string(MOESIM_TEST_SOURCE_DIR) + "/topologies/clusters/";
const std::string kData = std::string(MOESIM_TEST_SOURCE_DIR) + "/tests/data/topology/";

ClusterSpec h800_cluster(int nodes) {
  auto spec = load_cluster(kClusters + "h800-8x4.json");
  spec.nodes = nodes;
  return spec;
}

}  // namespace

TEST_CASE("a hand-built two-GPU graph has the one link it was given", "[topology][graph]") {
  const ClusterGraph graph(load_cluster(kData + "two_gpu.json"));
  REQUIRE(graph.gpu_count() == 2);
  CHECK(graph.link_count() == 2);
  const auto& path = graph.path(0, 1);
  REQUIRE(path.links.size() == 1);
  CHECK(graph.link_name(path.links[0]) == "gpu0->gpu1");
  CHECK(path.latency_s == Approx(2e-6));
  CHECK(graph.bottleneck_bandwidth(0, 1) == 100e9);
  CHECK(graph.path(1, 0).links[0] != path.links[0]);
  CHECK(graph.path(0, 0).links.empty());
  CHECK(graph.path_latency(1, 1) == 0);
}

TEST_CASE("shipped clusters: NVLink inside a node, NIC between nodes", "[topology][graph]") {
  const ClusterGraph h800(load_cluster(kClusters + "h800-8x4.json"));
  CHECK(h800.gpu_count() == 32);
  CHECK(h800.node_of(8) == 1);
  CHECK(h800.gpus_per_node() == 8);
  const auto& nvlink = h800.path(0, 1);
  CHECK(nvlink.links.size() == 2);
  CHECK(nvlink.uses_scale_up);
  CHECK_FALSE(nvlink.uses_scale_out);
  CHECK(h800.bottleneck_bandwidth(0, 1) == 200e9);
  CHECK(h800.path_latency(0, 1) == Approx(1e-6));
  CHECK(h800.link_name(nvlink.links[0]) == "gpu0->nvswitch.node0");
  // Same rail: NIC, leaf 0, NIC. Latency 1 (NIC) + 0.5 (leaf) + 1 (NIC) us.
  const auto& same_rail = h800.path(0, 8);
  CHECK(same_rail.links.size() == 4);
  CHECK(h800.bottleneck_bandwidth(0, 8) == 50e9);
  CHECK(h800.path_latency(0, 8) == Approx(2.5e-6));
  CHECK(h800.link_name(same_rail.links[1]) == "nic.gpu0->leaf0");
  // Another rail: up through the spine, + two switch traversals.
  CHECK(h800.path(0, 9).links.size() == 6);
  CHECK(h800.path_latency(0, 9) == Approx(3.5e-6));
  CHECK(h800.scale_out_path(0, 9) == &h800.path(0, 9));
  const GraphPath* loopback = h800.scale_out_path(0, 1);
  REQUIRE(loopback != nullptr);
  CHECK_FALSE(loopback->uses_scale_up);
  CHECK(loopback->bottleneck_Bps == 50e9);
  CHECK(loopback->latency_s == Approx(3.5e-6));

  const ClusterGraph h100(load_cluster(kClusters + "h100-8x1.json"));
  CHECK(h100.bottleneck_bandwidth(0, 7) == 450e9);
  CHECK(h100.scale_out_path(0, 7)->bottleneck_Bps == 50e9);
  CHECK(h100.scale_out_path(0, 7)->latency_s == Approx(2.5e-6));
  const ClusterGraph h100_12(load_cluster(kClusters + "h100-8x12.json"));
  CHECK(h100_12.bottleneck_bandwidth(3, 4) == 450e9);
  CHECK(h100_12.bottleneck_bandwidth(3, 95) == 50e9);
  const ClusterGraph a100(load_cluster(kClusters + "a100-8x1.json"));
  CHECK(a100.bottleneck_bandwidth(2, 5) == 300e9);
  CHECK(a100.scale_out_path(2, 5)->bottleneck_Bps == 25e9);
  const ClusterGraph h800_18(load_cluster(kClusters + "h800-8x18.json"));
  CHECK(h800_18.node_of(143) == 17);
  CHECK(h800_18.bottleneck_bandwidth(0, 143) == 50e9);
}

TEST_CASE("oversubscription narrows the leaf uplinks only", "[topology][graph]") {
  auto spec = h800_cluster(4);
  spec.fabric->oversubscription = 8;
  const ClusterGraph graph(spec);
  // Leaf uplink: 4 nodes x 50 GB/s / 8.
  CHECK(graph.bottleneck_bandwidth(0, 9) == 25e9);
  CHECK(graph.bottleneck_bandwidth(0, 8) == 50e9);
}

TEST_CASE("mesh and PCIe scale-up", "[topology][graph]") {
  auto spec = h800_cluster(1);
  spec.scale_up->kind = ScaleUpKind::nvlink_mesh;
  spec.scale_up->bandwidth_GBps = 448;
  const ClusterGraph mesh(spec);
  CHECK(mesh.path(0, 5).links.size() == 1);
  CHECK(mesh.bottleneck_bandwidth(0, 5) == 64e9);
  spec.scale_up->kind = ScaleUpKind::pcie;
  const ClusterGraph pcie(spec);
  CHECK(pcie.link_name(pcie.path(0, 5).links[0]) == "gpu0->pcie_switch.node0");
}

TEST_CASE("explicit graphs: unknown GPUs and disconnected clusters are input errors", "[topology][graph]") {
  auto spec = load_cluster(kData + "two_gpu.json");
  spec.links[0].to = "gpu7";
  CHECK_THROWS_WITH(ClusterGraph(spec), Contains("two_gpu.json: links[0].to: \"gpu7\" names a GPU beyond"));
  spec.links[0].to = "switch";
  CHECK_THROWS_WITH(ClusterGraph(spec), Contains("links: gpu0 cannot reach gpu1"));
  spec = load_cluster(kData + "two_gpu.json");
  spec.links[0].duplex = false;
  CHECK_THROWS_WITH(ClusterGraph(spec), Contains("gpu1 cannot reach gpu0"));
}

TEST_CASE("paths of 256 GPUs build fast and deterministically", "[topology][graph][speed]") {
  const auto start = std::chrono::steady_clock::now();
  const ClusterGraph graph(h800_cluster(32));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("cluster graph, 256 GPUs, %d links, all pairs: built in %.1f ms\n", graph.link_count(),
              seconds * 1e3);
  CHECK(seconds < 5.0);
  const ClusterGraph again(h800_cluster(32));
  for (int src = 0; src < 256; src += 37) {
    for (int dst = 0; dst < 256; dst += 11) {
      const auto a = graph.path(src, dst).links;
      const auto b = again.path(src, dst).links;
      CHECK(std::vector<int>(a.begin(), a.end()) == std::vector<int>(b.begin(), b.end()));
    }
  }
  // Cross-rail traffic from every GPU of rail 0 shares leaf 0's one uplink.
  const int uplink = graph.path(0, 9).links[2];
  CHECK(graph.link_name(uplink) == "leaf0->spine");
  CHECK(graph.path(8 * 31, 3).links[2] == uplink);
}
