#pragma once

#include <memory>
#include <span>

#include "sim/network/collectives.hpp"
#include "sim/network/network_params.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

// The narrow interface between the serving layer and a network model (ASTRA-sim's system/network split):
// the analytical model behind it today, a finer one (link sharing between concurrent collectives,
// packet-level) can replace it without touching callers. ExpertParallelComm is the analytical model's
// fast path for per-layer expert traffic.
class NetworkBackend {
 public:
  virtual ~NetworkBackend() = default;
  virtual CollectiveCost all_to_all(std::span<const int> gpus, std::span<const double> bytes,
                                    PathPolicy policy) const = 0;
  virtual double point_to_point_seconds(int src_gpu, int dst_gpu, double bytes) const = 0;
  virtual double all_reduce_seconds(std::span<const int> gpus, double bytes) const = 0;
};

// The backend `params` names ("analytical"); it keeps a reference to `graph`, which must outlive it.
std::unique_ptr<NetworkBackend> make_network_backend(const ClusterGraph& graph, const NetworkParams& params);

}  // namespace moesim
