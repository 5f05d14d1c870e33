#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sim/common/error.hpp"
#include "sim/network/collectives.hpp"
#include "sim/network/shared_transfers.hpp"

using namespace moesim;

namespace {

const std::string kData = std::string(MOESIM_TEST_SOURCE_DIR) + "/tests/data/topology/";

NetworkParams bare_params() {
  NetworkParams params;
  params.scale_out_efficiency = 1;
  params.launch_overhead_us = 0;
  return params;
}

constexpr SimTime kMs = 1'000'000;

// Runs the transfers to completion; returns (tag, finishing time) in finishing order.
std::vector<std::pair<std::uint64_t, SimTime>> drain(SharedLinkTransfers& transfers) {
  std::vector<std::pair<std::uint64_t, SimTime>> done;
  std::vector<std::uint64_t> finished;
  while (transfers.next_completion() != kTimeInfinity) {
    const SimTime at = transfers.next_completion();
    finished.clear();
    transfers.finish_until(at, finished);
    for (const auto tag : finished)
      done.emplace_back(tag, at);
  }
  return done;
}

}  // namespace

TEST_CASE("a single KV transfer on a two-GPU graph takes exactly its pinned time", "[network][transfer]") {
  const ClusterGraph graph(load_cluster(kData + "two_gpu.json"));
  // 1 MB over 100 GB/s = 10 us, plus the link's 2 us and a 5 us launch.
  NetworkParams params = bare_params();
  params.launch_overhead_us = 5;
  SharedLinkTransfers transfers(graph, params);
  const std::vector<TransferFlow> flow{{0, 1, 1e6}};
  transfers.start(7, flow, 1000);
  CHECK(transfers.in_flight() == 1);
  CHECK(transfers.next_completion() == 1000 + 10'000);  // the bytes drain first
  const auto done = drain(transfers);
  REQUIRE(done.size() == 1);
  CHECK(done[0].first == 7);
  CHECK(done[0].second == 1000 + 17'000);
  CHECK(done[0].second - 1000 == seconds_to_ns(point_to_point_time(graph, 0, 1, 1e6, params)));
  CHECK(transfers.in_flight() == 0);
}

TEST_CASE("concurrent transfers share links max-min fairly, re-shared when one drains",
          "[network][transfer]") {
  // gpu0 -> switch 100 GB/s, gpu1 -> switch 20 GB/s, switch -> gpu2 100 GB/s, 1 us per link.
  const ClusterGraph graph(load_cluster(kData + "star_three_gpu.json"));
  const SimTime latency = 2'000;
  SECTION("alone, a transfer runs at its path's slowest link") {
    SharedLinkTransfers transfers(graph, bare_params());
    transfers.start(1, std::vector<TransferFlow>{{0, 2, 1e9}}, 0);
    CHECK(drain(transfers) == std::vector<std::pair<std::uint64_t, SimTime>>{{1, 10 * kMs + latency}});
  }
  SECTION("started together: the slow source keeps 20 GB/s, the other gets the rest of the shared link") {
    SharedLinkTransfers transfers(graph, bare_params());
    transfers.start(1, std::vector<TransferFlow>{{0, 2, 1e9}}, 0);
    transfers.start(2, std::vector<TransferFlow>{{1, 2, 1e8}}, 0);
    // Transfer 2: 0.1 GB at 20 GB/s = 5 ms. Transfer 1: 0.4 GB at 80 GB/s by then, 0.6 GB at 100 GB/s
    // after: 11 ms, the shared link busy throughout (1.1 GB at 100 GB/s).
    CHECK(drain(transfers) ==
          std::vector<std::pair<std::uint64_t, SimTime>>{{2, 5 * kMs + latency}, {1, 11 * kMs + latency}});
  }
  SECTION("a flow held back elsewhere leaves its share of a link to the others") {
    SharedLinkTransfers transfers(graph, bare_params());
    transfers.start(1, std::vector<TransferFlow>{{0, 2, 1e8}}, 0);
    transfers.start(2, std::vector<TransferFlow>{{0, 1, 1e8}}, 0);  // switch -> gpu1 is 20 GB/s
    transfers.start(3, std::vector<TransferFlow>{{0, 2, 1e8}}, 0);
    // gpu0 -> switch carries all three: transfer 2 gets its 20 GB/s, 1 and 3 split the other 80 (0.1 GB
    // in 2.5 ms); transfer 2 has 0.05 GB left then, at 20 GB/s: 2.5 ms more.
    CHECK(drain(transfers) == std::vector<std::pair<std::uint64_t, SimTime>>{{1, 2'500'000 + latency},
                                                                             {3, 2'500'000 + latency},
                                                                             {2, 5 * kMs + latency}});
  }
  SECTION("a late start slows the running transfer from then on") {
    SharedLinkTransfers transfers(graph, bare_params());
    transfers.start(1, std::vector<TransferFlow>{{0, 2, 1e9}}, 0);
    std::vector<std::uint64_t> finished;
    transfers.finish_until(5 * kMs, finished);
    CHECK(finished.empty());
    transfers.start(2, std::vector<TransferFlow>{{1, 2, 1e8}}, 5 * kMs);
    // At 5 ms transfer 1 has 0.5 GB left: 80 GB/s for 5 ms while transfer 2 runs, then 0.1 GB alone.
    CHECK(drain(transfers) ==
          std::vector<std::pair<std::uint64_t, SimTime>>{{2, 10 * kMs + latency}, {1, 11 * kMs + latency}});
  }
  SECTION("a transfer of several flows ends with its last flow; local or empty flows cost nothing") {
    SharedLinkTransfers transfers(graph, bare_params());
    transfers.start(1, std::vector<TransferFlow>{{0, 2, 1e8}, {1, 2, 1e8}, {2, 2, 5e9}}, 0);
    transfers.start(2, std::vector<TransferFlow>{{1, 1, 1e9}, {0, 2, 0}}, 0);
    CHECK(transfers.in_flight() == 1);
    // gpu1's flow: 20 GB/s, 5 ms; gpu0's: 80 GB/s, then alone: drains at 1.25 ms.
    CHECK(drain(transfers) == std::vector<std::pair<std::uint64_t, SimTime>>{{2, 0}, {1, 5 * kMs + latency}});
  }
  SECTION("misuse is an internal error") {
    SharedLinkTransfers transfers(graph, bare_params());
    transfers.start(1, std::vector<TransferFlow>{{0, 2, 1e9}}, 10);
    CHECK_THROWS_AS(transfers.start(1, std::vector<TransferFlow>{{1, 2, 1e9}}, 10), InternalError);
    std::vector<std::uint64_t> finished;
    CHECK_THROWS_AS(transfers.finish_until(5, finished), InternalError);
  }
}
