#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/metrics/histogram.hpp"

namespace moesim {

// One MoE layer of one step, as the metrics see it.
struct MoeLayerSample {
  int layer = 0;                 // among MoE layers
  std::int64_t assignments = 0;  // (token, expert) pairs the router produced
  std::int64_t dropped = 0;      // pairs removed by the capacity policy
  double tokens_fully_dropped = 0;
  double expert_max_over_mean = 0;
  double rank_max_over_mean = 0;
  int straggler_rank = 0;                          // the rank whose expert compute set the layer time
  std::span<const std::int32_t> expert_demand;     // per expert, before capacity
  std::span<const std::int32_t> rank_assignments;  // per rank, after capacity
  std::span<const double> rank_busy_s;             // per rank expert compute time
};

// Per layer, expert and rank load of a whole run, in memory fixed by the model's
// shape (layers x experts), never by the number of steps.
class MoeLoadMetrics {
 public:
  MoeLoadMetrics(int moe_layers, int experts, int ranks);

  void record(const MoeLayerSample& sample);

  std::int64_t assignments() const { return assignments_; }
  std::int64_t dropped() const { return dropped_; }
  double tokens_fully_dropped() const { return tokens_fully_dropped_; }
  const Histogram& expert_imbalance() const { return expert_imbalance_; }
  const Histogram& rank_imbalance() const { return rank_imbalance_; }

  // {"layers": [...], "ranks": [...]}: per-layer drop rate, imbalance and expert load;
  // per-rank tokens, busy time and straggler counts.
  nlohmann::json layers_json(bool include_expert_load) const;
  nlohmann::json ranks_json() const;

 private:
  struct LayerTotals {
    std::int64_t assignments = 0;
    std::int64_t dropped = 0;
    double tokens_fully_dropped = 0;
    std::int64_t samples = 0;
    double expert_imbalance_sum = 0;
    double rank_imbalance_sum = 0;
    double rank_imbalance_max = 0;
  };

  int experts_;
  int ranks_;
  std::vector<LayerTotals> layers_;
  std::vector<std::int64_t> expert_load_;  // layer-major: layers x experts
  std::vector<std::int64_t> rank_tokens_;
  std::vector<double> rank_busy_s_;
  std::vector<std::int64_t> rank_straggler_count_;
  std::int64_t assignments_ = 0;
  std::int64_t dropped_ = 0;
  double tokens_fully_dropped_ = 0;
  Histogram expert_imbalance_{1e-6};
  Histogram rank_imbalance_{1e-6};
};

}  // namespace moesim
