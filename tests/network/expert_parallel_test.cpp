#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "sim/common/error.hpp"
#include "sim/common/rng.hpp"
#include "sim/network/collectives.hpp"
#include "sim/network/expert_parallel_comm.hpp"

using namespace moesim;

namespace {

const std::string kClusters = std::string(MOESIM_TEST_SOURCE_DIR) + "/topologies/clusters/";

std::vector<int> first_gpus(int count) {
  std::vector<int> gpus(count);
  std::iota(gpus.begin(), gpus.end(), 0);
  return gpus;
}

// The traffic matrix the proportional assumption describes, pair by pair (O(ranks^2)), written
// independently of ExpertParallelComm's O(ranks) aggregation.
std::vector<double> proportional_matrix(const EpLayout& layout, const std::vector<double>& tokens,
                                        const std::vector<double>& assignments, int top_k, double payload,
                                        EpTransport transport) {
  const int ranks = layout.rank_count();
  const double total = std::accumulate(assignments.begin(), assignments.end(), 0.0);
  std::vector<double> share(ranks), reach(ranks), node_share(layout.node_count(), 0.0);
  for (int d = 0; d < ranks; ++d) {
    share[d] = assignments[d] / total;
    reach[d] = 1 - std::pow(1 - share[d], top_k);
    node_share[layout.node(d)] += share[d];
  }
  std::vector<double> matrix(static_cast<std::size_t>(ranks) * ranks, 0.0);
  for (int s = 0; s < ranks; ++s) {
    for (int d = 0; d < ranks; ++d) {
      double& cell = matrix[static_cast<std::size_t>(s) * ranks + d];
      if (transport == EpTransport::low_latency) {
        cell = top_k * tokens[s] * share[d] * payload;
        continue;
      }
      if (layout.node(s) != layout.node(d)) {
        if (layout.forwarder(s, layout.node(d)) == d) {
          cell = tokens[s] * (1 - std::pow(1 - node_share[layout.node(d)], top_k)) * payload;
        }
        continue;
      }
      double handled = tokens[s];  // its own tokens plus those it relays for its rail peers
      for (int other = 0; other < ranks; ++other) {
        if (layout.node(other) != layout.node(s) && layout.forwarder(other, layout.node(s)) == s)
          handled += tokens[other];
      }
      cell = handled * reach[d] * payload;
    }
  }
  return matrix;
}

std::vector<double> transposed(const std::vector<double>& matrix, int ranks) {
  std::vector<double> out(matrix.size());
  for (int s = 0; s < ranks; ++s) {
    for (int d = 0; d < ranks; ++d)
      out[static_cast<std::size_t>(d) * ranks + s] = matrix[static_cast<std::size_t>(s) * ranks + d];
  }
  return out;
}

// Uneven sources and destinations over the group's ranks, one hot destination, top-8 routing.
struct UnevenTraffic {
  std::vector<double> tokens, assignments;

  explicit UnevenTraffic(int ranks) : tokens(ranks), assignments(ranks) {
    for (int r = 0; r < ranks; ++r) {
      tokens[r] = 100 + 37 * (r % 5);
      assignments[r] = 50 + 13 * ((r * 7) % 11) + (r == 9 ? 900 : 0);
    }
    const double total_tokens = std::accumulate(tokens.begin(), tokens.end(), 0.0);
    const double total_assignments = std::accumulate(assignments.begin(), assignments.end(), 0.0);
    for (auto& a : assignments)
      a *= 8 * total_tokens / total_assignments;
  }
};

// The fast estimate against all_to_all_time on the proportional matrix of UnevenTraffic.
void check_against_matrix(const ClusterGraph& graph, const std::vector<int>& gpus, EpTransport transport,
                          bool over_nvlink) {
  const int ranks = static_cast<int>(gpus.size());
  const UnevenTraffic uneven(ranks);
  const EpTraffic traffic{uneven.tokens, uneven.assignments, 8, 7392};
  NetworkParams params;
  params.ep_transport = transport;
  params.low_latency_over_nvlink = over_nvlink;
  const ExpertParallelComm comm(graph, gpus, params);
  const auto matrix =
      proportional_matrix(comm.layout(), uneven.tokens, uneven.assignments, 8, 7392, transport);
  const auto policy = path_policy(transport, params);
  const double exact_dispatch = all_to_all_time(graph, gpus, matrix, params, policy);
  const double exact_combine = all_to_all_time(graph, gpus, transposed(matrix, ranks), params, policy);
  CHECK(comm.dispatch_seconds(traffic) == Approx(exact_dispatch).epsilon(1e-9));
  CHECK(comm.combine_seconds(traffic) == Approx(exact_combine).epsilon(1e-9));
  double off_diagonal = 0;
  for (int s = 0; s < ranks; ++s) {
    for (int d = 0; d < ranks; ++d)
      off_diagonal += s == d ? 0 : matrix[s * ranks + d];
  }
  CHECK(comm.bytes(traffic) == Approx(off_diagonal).epsilon(1e-9));
}

}  // namespace

TEST_CASE("the fast EP estimate equals the exact matrix form for proportional traffic", "[network][ep]") {
  const ClusterGraph graph(load_cluster(kClusters + "h800-8x4.json"));
  // 32 ranks on 4 nodes.
  SECTION("low latency, NVLink inside nodes") {
    check_against_matrix(graph, first_gpus(32), EpTransport::low_latency, true);
  }
  SECTION("low latency, RDMA only") {
    check_against_matrix(graph, first_gpus(32), EpTransport::low_latency, false);
  }
  SECTION("high throughput") {
    check_against_matrix(graph, first_gpus(32), EpTransport::high_throughput, true);
  }
  // Per-node sums go four nodes at a time; 3 and 7 nodes leave a remainder.
  const ClusterGraph wide(load_cluster(kClusters + "h800-8x18.json"));
  for (const int nodes : {3, 7}) {
    for (const auto transport : {EpTransport::low_latency, EpTransport::high_throughput}) {
      INFO(nodes << " nodes, "
                 << (transport == EpTransport::low_latency ? "low latency" : "high throughput"));
      check_against_matrix(wide, first_gpus(8 * nodes), transport, true);
    }
  }
}

TEST_CASE("a hot rank slows dispatch while the bytes stay the same", "[network][ep]") {
  const ClusterGraph graph(load_cluster(kClusters + "h800-8x4.json"));
  NetworkParams params;
  params.ep_transport = EpTransport::low_latency;
  const ExpertParallelComm comm(graph, first_gpus(32), params);
  const std::vector<double> tokens(32, 128);
  const std::vector<double> uniform(32, 128 * 8);
  std::vector<double> one_hot(32, 128 * 8 * 0.5);
  one_hot[5] += 128 * 8 * 16;  // rank 5 takes 16896 of the 32768 assignments
  const EpTraffic balanced{tokens, uniform, 8, 7392};
  const EpTraffic skewed{tokens, one_hot, 8, 7392};
  CHECK(comm.bytes(skewed) == Approx(comm.bytes(balanced)).epsilon(1e-12));
  const double balanced_time = comm.dispatch_seconds(balanced);
  const double skewed_time = comm.dispatch_seconds(skewed);
  // The hot rank's NIC receives its share of everything the 24 ranks of other nodes send, at 46 GB/s
  // (50 GB/s x 0.92); balanced, every NIC carries 1/32 of it. Latency and overheads are the same.
  CHECK(skewed_time > 10 * (balanced_time - 20e-6));
  const double hot_share = 16896.0 / 32768.0;
  CHECK(skewed_time - balanced_time ==
        Approx(24 * 128 * 8 * 7392 * (hot_share - 1.0 / 32) / 46e9).epsilon(1e-9));
  // More skew, same bytes, longer dispatch.
  double previous = 0;
  for (const double hot : {0.0, 2.0, 4.0, 8.0, 16.0}) {
    std::vector<double> loads(32, 128 * 8 * (1 - hot / 32));
    loads[5] += 128 * 8 * hot;
    const EpTraffic traffic{tokens, loads, 8, 7392};
    CHECK(comm.bytes(traffic) == Approx(comm.bytes(balanced)).epsilon(1e-12));
    CHECK(comm.dispatch_seconds(traffic) > previous);
    previous = comm.dispatch_seconds(traffic);
  }
  CHECK(comm.dispatch_seconds(EpTraffic{tokens, std::vector<double>(32, 0.0), 8, 7392}) == 0);
  CHECK_THROWS_AS(
      comm.dispatch_seconds(EpTraffic{std::span<const double>(tokens).first(3), uniform, 8, 7392}),
      InternalError);
}

TEST_CASE("node-limited routing: the estimate follows per-token sampling of at most 4 nodes",
          "[network][ep]") {
  // EP64 on 8 H800 nodes, 4 experts per rank, 32 per node; each token picks 4 of the 8 nodes, then its
  // 8 distinct experts among those nodes' 128 (DeepSeek-V3's top-4 groups with one group per node).
  const ClusterGraph graph(load_cluster(kClusters + "h800-8x18.json"));
  const std::vector<int> gpus = first_gpus(64);
  const NetworkParams params;  // high throughput: one RDMA copy per destination node
  const ExpertParallelComm comm(graph, gpus, params);
  const int tokens_per_rank = 512;
  Rng rng(5);
  std::vector<int> source, expert_rank;
  std::vector<double> assignments(64, 0.0);
  for (int rank = 0; rank < 64; ++rank) {
    for (int t = 0; t < tokens_per_rank; ++t) {
      source.push_back(rank);
      std::vector<int> nodes{0, 1, 2, 3, 4, 5, 6, 7};
      for (int i = 0; i < 4; ++i)
        std::swap(nodes[i], nodes[i + rng.below(8 - i)]);
      std::vector<int> experts;
      for (int node = 0; node < 4; ++node) {
        for (int e = 0; e < 32; ++e)
          experts.push_back(nodes[node] * 32 + e);
      }
      for (int i = 0; i < 8; ++i) {
        std::swap(experts[i], experts[i + rng.below(experts.size() - i)]);
        expert_rank.push_back(experts[i] / 4);
        assignments[experts[i] / 4] += 1;
      }
    }
  }
  const double payload = 7392;
  const auto matrix = ep_dispatch_matrix(comm.layout(), source, expert_rank, 8, payload, params.ep_transport);
  const double exact = all_to_all_time(graph, gpus, matrix, params);
  const std::vector<double> tokens(64, tokens_per_rank);
  EpTraffic limited{tokens, assignments, 8, payload, 4};
  EpTraffic independent{tokens, assignments, 8, payload};
  // Per-token sampling gives 294 us; the node-limited estimate 281 us, the independent one 399 us (+36 %).
  CHECK(comm.dispatch_seconds(limited) == Approx(exact).epsilon(0.05));
  CHECK(comm.dispatch_seconds(independent) > 1.3 * exact);
  double exact_bytes = 0;
  for (int s = 0; s < 64; ++s) {
    for (int d = 0; d < 64; ++d)
      exact_bytes += s == d ? 0 : matrix[static_cast<std::size_t>(s) * 64 + d];
  }
  CHECK(comm.bytes(limited) == Approx(exact_bytes).epsilon(0.05));
  // A limit that every token meets anyway changes nothing.
  EpTraffic loose{tokens, assignments, 8, payload, 8};
  CHECK(comm.dispatch_seconds(loose) == comm.dispatch_seconds(independent));
}

namespace moesim {

// Switches off the path for nodes of 4 or 8 consecutive ranks, so that the general path prices the
// same layout.
struct ExpertParallelCommTestAccess {
  static bool uses_uniform_nodes(const ExpertParallelComm& comm) { return comm.uniform_node_ranks_ != 0; }
  static void use_general_path(ExpertParallelComm& comm) { comm.uniform_node_ranks_ = 0; }
};

}  // namespace moesim

namespace {

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Sparse whole counts, with some fractional ones and some layers without traffic.
std::vector<double> random_counts(Rng& rng, int ranks, double zero_chance) {
  std::vector<double> counts(ranks, 0.0);
  for (auto& count : counts) {
    if (rng.uniform() < zero_chance) continue;
    count = rng.uniform() < 0.8 ? static_cast<double>(1 + rng.below(40)) : 100 * rng.uniform_positive();
  }
  return counts;
}

}  // namespace

TEST_CASE("nodes of 4 or 8 consecutive ranks: the high-throughput estimate is bit for bit the general one",
          "[network][ep]") {
  struct Group {
    std::string cluster;
    std::vector<int> gpus;
  };
  std::vector<Group> groups{{"h800-8x22.json", {}},
                            {"h800-8x4.json", first_gpus(32)},
                            {"h800-8x18.json", first_gpus(24)},
                            {"h800-8x18.json", first_gpus(56)},
                            {"h100-8x1.json", first_gpus(8)},
                            {"h800-8x18.json", {}}};
  // The disaggregated decode instance: EP144 on GPUs 32 to 175.
  for (int gpu = 32; gpu < 176; ++gpu)
    groups[0].gpus.push_back(gpu);
  // Four ranks on each of 5 nodes.
  for (int node = 0; node < 5; ++node) {
    for (int gpu = 0; gpu < 4; ++gpu)
      groups[5].gpus.push_back(8 * node + gpu);
  }
  Rng rng(11);
  for (const Group& group : groups) {
    const ClusterGraph graph(load_cluster(kClusters + group.cluster));
    const int ranks = static_cast<int>(group.gpus.size());
    const NetworkParams params;  // high throughput
    const ExpertParallelComm uniform(graph, group.gpus, params);
    ExpertParallelComm general(graph, group.gpus, params);
    ExpertParallelCommTestAccess::use_general_path(general);
    REQUIRE(ExpertParallelCommTestAccess::uses_uniform_nodes(uniform));
    const int nodes = uniform.layout().node_count();
    for (int step = 0; step < 60; ++step) {
      const std::vector<double> tokens = random_counts(rng, ranks, 0.85);
      for (const int top_k : {1, 2, 3, 4, 6, 8, 9}) {
        for (const int limit : {0, 1, 2, 4, nodes, nodes + 1}) {
          const std::vector<double> assignments = random_counts(rng, ranks, rng.uniform());
          const EpTraffic traffic{tokens, assignments, top_k, 7168, limit};
          INFO(group.cluster << ", " << ranks << " ranks, top-" << top_k << ", at most " << limit
                             << " nodes");
          const EpPhaseCosts fast = uniform.dispatch_and_combine(traffic, 14336);
          const EpPhaseCosts reference = general.dispatch_and_combine(traffic, 14336);
          CHECK(same_bits(fast.dispatch_seconds, reference.dispatch_seconds));
          CHECK(same_bits(fast.combine_seconds, reference.combine_seconds));
          CHECK(same_bits(fast.dispatch_bytes, reference.dispatch_bytes));
          CHECK(same_bits(fast.combine_bytes, reference.combine_bytes));
          CHECK(same_bits(uniform.bytes(traffic), general.bytes(traffic)));
        }
      }
    }
  }
}
