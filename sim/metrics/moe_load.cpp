#include "sim/metrics/moe_load.hpp"

#include <algorithm>
#include <numeric>

namespace moesim {

namespace {

double ratio(double numerator, double denominator) {
  return denominator > 0 ? numerator / denominator : 0.0;
}

// Adds each rank's busy time to its total; returns their sum, in four lanes (rank r in lane r % 4) so
// that no chain of dependent additions over the ranks sets the pace.
double add_busy(const double* __restrict busy, double* __restrict totals, std::size_t ranks) {
  double sums[4] = {0, 0, 0, 0};
  std::size_t r = 0;
  for (; r + 4 <= ranks; r += 4) {
    for (std::size_t lane = 0; lane < 4; ++lane) {
      totals[r + lane] += busy[r + lane];
      sums[lane] += busy[r + lane];
    }
  }
  for (; r < ranks; ++r) {
    totals[r] += busy[r];
    sums[0] += busy[r];
  }
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

}  // namespace

MoeLoadMetrics::MoeLoadMetrics(int moe_layers, int experts, int ranks)
    : experts_(experts),
      ranks_(ranks),
      layers_(static_cast<std::size_t>(moe_layers)),
      expert_load_(static_cast<std::size_t>(moe_layers) * static_cast<std::size_t>(experts), 0),
      expert_overflow_(expert_load_.size(), 0),
      straggler_counts_(static_cast<std::size_t>(moe_layers) * static_cast<std::size_t>(ranks), 0),
      rank_tokens_(static_cast<std::size_t>(ranks), 0),
      rank_busy_s_(static_cast<std::size_t>(ranks), 0.0),
      rank_straggler_excess_s_(static_cast<std::size_t>(ranks), 0.0),
      rank_straggler_count_(static_cast<std::size_t>(ranks), 0),
      drop_fraction_(static_cast<std::size_t>(experts), 0.0) {}

void MoeLoadMetrics::set_classes(std::vector<std::string> names) {
  class_names_ = std::move(names);
  class_assignments_.assign(layers_.size() * class_names_.size(), 0.0);
  class_dropped_.assign(class_assignments_.size(), 0.0);
}

void MoeLoadMetrics::record_class(int traffic_class, std::span<const std::int32_t> class_counts) {
  const std::size_t cell =
      static_cast<std::size_t>(last_layer_) * class_names_.size() + static_cast<std::size_t>(traffic_class);
  if (!last_layer_dropped_) {
    // Every drop fraction is 0: only the assignments add up (whole numbers, exact in any order).
    std::int64_t assignments = 0;
    for (const std::int32_t count : class_counts)
      assignments += count;
    class_assignments_[cell] += static_cast<double>(assignments);
    return;
  }
  double assignments = 0, dropped = 0;
  for (std::size_t e = 0; e < class_counts.size(); ++e) {
    assignments += class_counts[e];
    dropped += class_counts[e] * drop_fraction_[e];
  }
  class_assignments_[cell] += assignments;
  class_dropped_[cell] += dropped;
}

void MoeLoadMetrics::record(const MoeLayerSample& sample) {
  const auto layer_index = static_cast<std::size_t>(sample.layer);
  auto& layer = layers_[layer_index];
  layer.assignments += sample.assignments;
  layer.dropped += sample.dropped;
  layer.rerouted += sample.rerouted;
  layer.tokens_fully_dropped += sample.tokens_fully_dropped;
  ++layer.samples;
  layer.expert_imbalance_sum += sample.expert_max_over_mean;
  layer.rank_imbalance_sum += sample.rank_max_over_mean;
  layer.rank_imbalance_max = std::max(layer.rank_imbalance_max, sample.rank_max_over_mean);
  assignments_ += sample.assignments;
  dropped_ += sample.dropped;
  rerouted_ += sample.rerouted;
  tokens_fully_dropped_ += sample.tokens_fully_dropped;
  expert_imbalance_.record(sample.expert_max_over_mean);
  rank_imbalance_.record(sample.rank_max_over_mean);

  const std::size_t expert_row = layer_index * static_cast<std::size_t>(experts_);
  std::int64_t* load = expert_load_.data() + expert_row;
  // Local bounds and pointers: the int64 stores could otherwise alias the span's size.
  const std::size_t experts = sample.expert_demand.size();
  const std::int32_t* demand = sample.expert_demand.data();
  for (std::size_t e = 0; e < experts; ++e)
    load[e] += demand[e];
  std::int64_t* overflow = expert_overflow_.data() + expert_row;
  const std::int32_t* expert_overflow = sample.expert_overflow.data();
  const std::size_t overflow_experts = sample.expert_overflow.size();
  std::int64_t overflow_sum = 0, overflow_events = 0;
  for (std::size_t e = 0; e < overflow_experts; ++e) {
    overflow[e] += expert_overflow[e];
    overflow_sum += expert_overflow[e];
    overflow_events += expert_overflow[e] > 0 ? 1 : 0;
  }
  layer.overflow_events += overflow_events;
  if (!class_names_.empty()) {
    // Each expert's share of the layer's drops, over its routed assignments.
    last_layer_ = sample.layer;
    last_layer_dropped_ = sample.dropped > 0;
    const double kept_back = overflow_sum > 0 ? static_cast<double>(sample.dropped) / overflow_sum : 0.0;
    for (std::size_t e = 0; last_layer_dropped_ && e < sample.expert_overflow.size(); ++e) {
      drop_fraction_[e] =
          sample.expert_demand[e] > 0 ? sample.expert_overflow[e] * kept_back / sample.expert_demand[e] : 0.0;
    }
  }
  const std::size_t ranks = sample.rank_assignments.size();
  std::int64_t* rank_tokens = rank_tokens_.data();
  const std::int32_t* assignments = sample.rank_assignments.data();
  for (std::size_t r = 0; r < ranks; ++r)
    rank_tokens[r] += assignments[r];
  const double busy_sum = add_busy(sample.rank_busy_s.data(), rank_busy_s_.data(), sample.rank_busy_s.size());
  const auto straggler = static_cast<std::size_t>(sample.straggler_rank);
  ++rank_straggler_count_[straggler];
  ++straggler_counts_[layer_index * static_cast<std::size_t>(ranks_) + straggler];
  if (!sample.rank_busy_s.empty()) {
    rank_straggler_excess_s_[straggler] +=
        sample.rank_busy_s[straggler] - busy_sum / static_cast<double>(sample.rank_busy_s.size());
  }
}

void MoeLoadMetrics::record(const RebalanceSample& sample) {
  ++rebalances_;
  rebalance_.slots_moved += sample.slots_moved;
  rebalance_.bytes_moved += sample.bytes_moved;
  rebalance_.stall_s += sample.stall_s;
  rebalance_.layers_kept += sample.layers_kept;
}

nlohmann::json MoeLoadMetrics::layers_json(bool include_expert_load) const {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& layer = layers_[l];
    const double samples = static_cast<double>(std::max<std::int64_t>(layer.samples, 1));
    const auto ranks_begin =
        straggler_counts_.begin() + static_cast<std::ptrdiff_t>(l * static_cast<std::size_t>(ranks_));
    nlohmann::json entry{
        {"moe_layer", l},
        {"assignments", layer.assignments},
        {"dropped_assignments", layer.dropped},
        {"rerouted_assignments", layer.rerouted},
        {"drop_rate", ratio(static_cast<double>(layer.dropped), static_cast<double>(layer.assignments))},
        {"overflow_events", layer.overflow_events},
        {"tokens_fully_dropped", layer.tokens_fully_dropped},
        {"expert_max_over_mean_mean", layer.expert_imbalance_sum / samples},
        {"rank_max_over_mean_mean", layer.rank_imbalance_sum / samples},
        {"rank_max_over_mean_max", layer.rank_imbalance_max},
        {"straggler_count", std::vector<std::int64_t>(ranks_begin, ranks_begin + ranks_)},
    };
    if (include_expert_load) {
      const auto offset = static_cast<std::ptrdiff_t>(l * static_cast<std::size_t>(experts_));
      entry["expert_load"] =
          std::vector<std::int64_t>(expert_load_.begin() + offset, expert_load_.begin() + offset + experts_);
      entry["expert_overflow"] = std::vector<std::int64_t>(expert_overflow_.begin() + offset,
                                                           expert_overflow_.begin() + offset + experts_);
    }
    layers.push_back(std::move(entry));
  }
  return layers;
}

nlohmann::json MoeLoadMetrics::ranks_json() const {
  nlohmann::json ranks = nlohmann::json::array();
  const double mean_tokens =
      static_cast<double>(std::accumulate(rank_tokens_.begin(), rank_tokens_.end(), std::int64_t{0})) /
      ranks_;
  for (int r = 0; r < ranks_; ++r) {
    const auto index = static_cast<std::size_t>(r);
    ranks.push_back({{"rank", r},
                     {"tokens", rank_tokens_[index]},
                     {"tokens_over_mean", ratio(static_cast<double>(rank_tokens_[index]), mean_tokens)},
                     {"busy_s", rank_busy_s_[index]},
                     {"straggler_count", rank_straggler_count_[index]},
                     {"straggler_excess_s", rank_straggler_excess_s_[index]}});
  }
  return ranks;
}

nlohmann::json MoeLoadMetrics::stragglers_json(std::size_t top) const {
  std::vector<std::size_t> order(straggler_counts_.size());
  std::iota(order.begin(), order.end(), 0);
  // Most frequent first; ties to the lower layer, then the lower rank.
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return straggler_counts_[a] > straggler_counts_[b]; });
  const double layer_steps = static_cast<double>(rank_imbalance_.count());
  nlohmann::json pairs = nlohmann::json::array();
  for (std::size_t i = 0; i < std::min(top, order.size()) && straggler_counts_[order[i]] > 0; ++i) {
    const std::size_t cell = order[i];
    const auto ranks = static_cast<std::size_t>(ranks_);
    const auto& layer = layers_[cell / ranks];
    pairs.push_back({{"moe_layer", cell / ranks},
                     {"rank", cell % ranks},
                     {"count", straggler_counts_[cell]},
                     {"share_of_layer", ratio(static_cast<double>(straggler_counts_[cell]),
                                              static_cast<double>(layer.samples))},
                     {"share_of_all", ratio(static_cast<double>(straggler_counts_[cell]), layer_steps)}});
  }
  return {{"layer_steps", rank_imbalance_.count()}, {"top", std::move(pairs)}};
}

nlohmann::json MoeLoadMetrics::classes_json() const {
  nlohmann::json classes = nlohmann::json::array();
  const std::size_t count = class_names_.size();
  for (std::size_t c = 0; c < count; ++c) {
    double assignments = 0, dropped = 0;
    std::vector<double> layer_rate;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      assignments += class_assignments_[l * count + c];
      dropped += class_dropped_[l * count + c];
      layer_rate.push_back(ratio(class_dropped_[l * count + c], class_assignments_[l * count + c]));
    }
    classes.push_back({{"class", class_names_[c]},
                       {"assignments", assignments},
                       {"dropped_assignments", dropped},
                       {"drop_rate", ratio(dropped, assignments)},
                       {"layer_drop_rate", std::move(layer_rate)}});
  }
  return classes;
}

}  // namespace moesim
