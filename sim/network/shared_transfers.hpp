#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "sim/common/time.hpp"
#include "sim/network/network_params.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

// One GPU-to-GPU flow of a transfer.
struct TransferFlow {
  int src_gpu = 0;
  int dst_gpu = 0;
  double bytes = 0;
};

// Point-to-point transfers (KV caches from prefill to decode instances) that share the links of the
// cluster graph while they run. A transfer is a set of flows and finishes when its last flow does.
//
// A flow's bytes drain along its path (ClusterGraph::path) at a rate set by max-min fair sharing of
// every link it crosses (progressive filling over the links' achieved rates), recomputed whenever a
// flow starts or drains; once drained, it still waits the launch overhead plus its path latency.
// Alone on its path a flow therefore takes exactly point_to_point_time() (rounded up to whole ns for
// the drain and for the overhead plus latency). A flow between a GPU and itself, or of zero bytes,
// finishes at once.
//
// Assumption (moesim's own simplification): transfers share links only with each other, not with the
// instances' all-to-all and all-reduce traffic, whose costs are priced per step alone.
class SharedLinkTransfers {
 public:
  SharedLinkTransfers(const ClusterGraph& graph, const NetworkParams& params);

  // Starts a transfer named `tag` (unique among those in flight) at `now`, which must not precede the
  // last call's time.
  void start(std::uint64_t tag, std::span<const TransferFlow> flows, SimTime now);
  // The time at which the next transfer finishes; kTimeInfinity when none is in flight.
  SimTime next_completion() const;
  // Advances to `now` (>= the last call's time) and appends the tags of the transfers finished by then,
  // in order of their finishing time (ties by tag).
  void finish_until(SimTime now, std::vector<std::uint64_t>& finished);

  std::size_t in_flight() const { return flows_left_.size(); }

 private:
  struct Flow {
    std::uint64_t tag = 0;
    std::span<const std::int32_t> links;
    double remaining_bytes = 0;
    double rate = 0;        // bytes per second under the current sharing
    SimTime drains_at = 0;  // when its bytes are through at that rate
    SimTime tail_ns = 0;    // launch overhead plus path latency, after the bytes
  };
  struct Tail {
    SimTime finishes_at = 0;
    std::uint64_t tag = 0;
  };

  void advance_to(SimTime now);
  void share_links(SimTime now);
  void flow_done(std::uint64_t tag, SimTime at);

  const ClusterGraph& graph_;
  NetworkParams params_;
  std::vector<double> link_rate_;  // achieved bytes per second per link id
  std::vector<Flow> flowing_;
  std::vector<Tail> tails_;  // drained flows waiting out their overhead and latency
  std::unordered_map<std::uint64_t, int> flows_left_;
  std::vector<Tail> finished_;  // transfers complete, not yet handed out
  SimTime now_ = 0;
  // Scratch of share_links(), indexed by link id.
  std::vector<double> capacity_left_;
  std::vector<int> unfrozen_on_link_;
  std::vector<std::int32_t> touched_links_;
  std::vector<char> frozen_;
};

}  // namespace moesim
