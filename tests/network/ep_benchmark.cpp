// Prints ns per ExpertParallelComm::dispatch_and_combine call for the decode instance of
// tools/scenarios/deepseek-v3-h800-disagg-azure-conv.json (EP144 on 18 H800 nodes, GPUs 32 to 175 of
// h800-8x22, high throughput, top-8 limited to 4 nodes, FP8 dispatch, BF16 combine) with decode-sized
// traffic: 19 ranks with one token each, every token's 8 assignments on ranks of 4 nodes. Each source
// vector is shared by 58 consecutive calls (the MoE layers of a step). Not a test: timings depend on the
// machine. The checksum (the results' sum, in hexadecimal) changes when any result does.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "sim/common/paths.hpp"
#include "sim/network/expert_parallel_comm.hpp"

int main() {
  using namespace moesim;
  constexpr int kRanks = 144, kNodes = 18, kPerNode = 8, kTopK = 8, kNodeLimit = 4, kLayers = 58;
  constexpr int kSourceVectors = 64, kAssignmentVectors = 4096, kSourcesPerStep = 19;
  constexpr int kCalls = 2'000'000, kRepetitions = 5;
  const ClusterGraph graph(load_cluster(home_directory() / "topologies/clusters/h800-8x22.json"));
  std::vector<int> gpus(kRanks);
  std::iota(gpus.begin(), gpus.end(), 32);
  const ExpertParallelComm comm(graph, gpus, NetworkParams{});

  std::mt19937_64 rng(1);
  std::vector<int> ranks(kRanks);
  std::iota(ranks.begin(), ranks.end(), 0);
  std::vector<std::vector<double>> tokens(kSourceVectors, std::vector<double>(kRanks, 0.0));
  for (auto& vector : tokens) {
    std::shuffle(ranks.begin(), ranks.end(), rng);
    for (int source = 0; source < kSourcesPerStep; ++source)
      vector[ranks[source]] = 1;
  }
  std::vector<std::vector<double>> assignments(kAssignmentVectors, std::vector<double>(kRanks, 0.0));
  std::vector<int> nodes(kNodes);
  std::iota(nodes.begin(), nodes.end(), 0);
  for (auto& vector : assignments) {
    for (int token = 0; token < kSourcesPerStep; ++token) {
      std::shuffle(nodes.begin(), nodes.end(), rng);
      for (int expert = 0; expert < kTopK; ++expert) {
        const int node = nodes[rng() % kNodeLimit];
        vector[node * kPerNode + static_cast<int>(rng() % kPerNode)] += 1;
      }
    }
  }

  const double dispatch_bytes = 7168, combine_bytes = 2 * 7168;
  double best_ns = 0;
  double checksum = 0;
  for (int repetition = 0; repetition < kRepetitions; ++repetition) {
    checksum = 0;
    const auto start = std::chrono::steady_clock::now();
    for (int call = 0; call < kCalls; ++call) {
      const EpTraffic traffic{tokens[(call / kLayers) % kSourceVectors],
                              assignments[call % kAssignmentVectors], kTopK, dispatch_bytes, kNodeLimit};
      const EpPhaseCosts costs = comm.dispatch_and_combine(traffic, combine_bytes);
      checksum += costs.dispatch_seconds + costs.combine_seconds + costs.dispatch_bytes + costs.combine_bytes;
    }
    const std::chrono::duration<double, std::nano> elapsed = std::chrono::steady_clock::now() - start;
    const double ns = elapsed.count() / kCalls;
    best_ns = repetition == 0 ? ns : std::min(best_ns, ns);
  }
  std::printf("EP144, 18 nodes, top-8 over 4 nodes: %.1f ns per call (best of %d), checksum %a\n", best_ns,
              kRepetitions, checksum);
}
