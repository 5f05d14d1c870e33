#include "sim/network/network_backend.hpp"

namespace moesim {

namespace {

class AnalyticalBackend final : public NetworkBackend {
 public:
  AnalyticalBackend(const ClusterGraph& graph, const NetworkParams& params)
      : graph_(graph), params_(params) {}

  CollectiveCost all_to_all(std::span<const int> gpus, std::span<const double> bytes,
                            PathPolicy policy) const override {
    return all_to_all_cost(graph_, gpus, bytes, params_, policy);
  }
  double point_to_point_seconds(int src_gpu, int dst_gpu, double bytes) const override {
    return point_to_point_time(graph_, src_gpu, dst_gpu, bytes, params_);
  }
  double all_reduce_seconds(std::span<const int> gpus, double bytes) const override {
    return ring_all_reduce_time(graph_, gpus, bytes, params_);
  }

 private:
  const ClusterGraph& graph_;
  NetworkParams params_;
};

}  // namespace

std::unique_ptr<NetworkBackend> make_network_backend(const ClusterGraph& graph, const NetworkParams& params) {
  return std::make_unique<AnalyticalBackend>(graph, params);
}

}  // namespace moesim
