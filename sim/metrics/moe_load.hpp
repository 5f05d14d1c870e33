#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/metrics/histogram.hpp"

namespace moesim {

// One MoE layer of one step, as the metrics see it.
struct MoeLayerSample {
  int layer = 0;                 // among MoE layers
  std::int64_t assignments = 0;  // (token, expert) pairs the router produced
  std::int64_t dropped = 0;      // pairs removed by the capacity policy
  std::int64_t rerouted = 0;     // pairs moved to another expert by the reroute policy
  double tokens_fully_dropped = 0;
  double expert_max_over_mean = 0;
  double rank_max_over_mean = 0;
  int straggler_rank = 0;                          // the rank whose expert compute set the layer time
  std::span<const std::int32_t> expert_demand;     // per expert, before capacity
  std::span<const std::int32_t> expert_overflow;   // per expert, demand beyond its capacity (may be empty)
  std::span<const std::int32_t> rank_assignments;  // per rank, after capacity
  std::span<const double> rank_busy_s;             // per rank expert compute time
};

// A change of expert placement while serving (periodic rebalancing).
struct RebalanceSample {
  std::int64_t slots_moved = 0;  // (layer, slot) pairs whose expert weights had to be fetched
  double bytes_moved = 0;        // expert weight bytes sent between GPUs
  double stall_s = 0;            // time the instance stopped serving for the move
  std::int64_t layers_kept = 0;  // MoE layers whose layout stayed (too little gain)
};

// Per layer, expert and rank load of a whole run, in memory fixed by the model's
// shape (layers x experts, layers x ranks), never by the number of steps.
class MoeLoadMetrics {
 public:
  MoeLoadMetrics(int moe_layers, int experts, int ranks);

  void record(const MoeLayerSample& sample);
  void record(const RebalanceSample& sample);

  // Traffic classes whose drops are reported apart (names in the router's order); none by default.
  void set_classes(std::vector<std::string> names);
  // One class's routed counts per expert in the layer of the last record(MoeLayerSample). An expert's
  // dropped assignments are its overflow, scaled to the layer's drops when rerouting kept part of it.
  // Assumption (moesim's own): they hit the classes in proportion to their counts at that expert
  // (overflowing tokens arrive in no particular class order).
  void record_class(int traffic_class, std::span<const std::int32_t> class_counts);

  std::int64_t assignments() const { return assignments_; }
  std::int64_t dropped() const { return dropped_; }
  std::int64_t rerouted() const { return rerouted_; }
  double tokens_fully_dropped() const { return tokens_fully_dropped_; }
  const Histogram& expert_imbalance() const { return expert_imbalance_; }
  const Histogram& rank_imbalance() const { return rank_imbalance_; }
  const RebalanceSample& rebalance_totals() const { return rebalance_; }
  std::int64_t rebalances() const { return rebalances_; }
  // How often rank `rank` set the expert time of MoE layer `layer`.
  std::int64_t straggler_count(int layer, int rank) const {
    return straggler_counts_[static_cast<std::size_t>(layer) * static_cast<std::size_t>(ranks_) +
                             static_cast<std::size_t>(rank)];
  }
  std::int64_t expert_overflow(int layer, int expert) const {
    return expert_overflow_[static_cast<std::size_t>(layer) * static_cast<std::size_t>(experts_) +
                            static_cast<std::size_t>(expert)];
  }

  // Per MoE layer: drop rate, reroutes, overflow, imbalance, straggler counts per rank and (with
  // include_expert_load) the routed and overflowing assignments per expert.
  nlohmann::json layers_json(bool include_expert_load) const;
  // Per rank: kept assignments, their share over the mean, busy time, straggler count and the
  // time it added over the mean rank as the straggler.
  nlohmann::json ranks_json() const;
  // Straggler attribution: the (layer, rank) pairs that set the expert time most often.
  nlohmann::json stragglers_json(std::size_t top) const;
  // Per traffic class: assignments, attributed drops, drop rate, and the drop rate per MoE layer.
  nlohmann::json classes_json() const;

 private:
  struct LayerTotals {
    std::int64_t assignments = 0;
    std::int64_t dropped = 0;
    std::int64_t rerouted = 0;
    std::int64_t overflow_events = 0;  // (step, expert) pairs over capacity
    double tokens_fully_dropped = 0;
    std::int64_t samples = 0;
    double expert_imbalance_sum = 0;
    double rank_imbalance_sum = 0;
    double rank_imbalance_max = 0;
  };

  int experts_;
  int ranks_;
  std::vector<LayerTotals> layers_;
  std::vector<std::int64_t> expert_load_;       // layer-major: layers x experts
  std::vector<std::int64_t> expert_overflow_;   // layer-major: layers x experts
  std::vector<std::int64_t> straggler_counts_;  // layer-major: layers x ranks
  std::vector<std::int64_t> rank_tokens_;
  std::vector<double> rank_busy_s_;
  std::vector<double> rank_straggler_excess_s_;
  std::vector<std::int64_t> rank_straggler_count_;
  std::int64_t assignments_ = 0;
  std::int64_t dropped_ = 0;
  std::int64_t rerouted_ = 0;
  double tokens_fully_dropped_ = 0;
  std::int64_t rebalances_ = 0;
  std::vector<std::string> class_names_;
  std::vector<double> class_assignments_;  // layer-major: layers x classes
  std::vector<double> class_dropped_;      // layer-major: layers x classes
  int last_layer_ = 0;
  bool last_layer_dropped_ = false;    // drop_fraction_ is read (and kept up to date) only when set
  std::vector<double> drop_fraction_;  // per expert, of the last recorded layer
  RebalanceSample rebalance_;
  Histogram expert_imbalance_{1e-6};
  Histogram rank_imbalance_{1e-6};
};

}  // namespace moesim
