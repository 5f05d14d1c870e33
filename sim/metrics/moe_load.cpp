#include "sim/metrics/moe_load.hpp"

#include <algorithm>

namespace moesim {

MoeLoadMetrics::MoeLoadMetrics(int moe_layers, int experts, int ranks)
    : experts_(experts),
      ranks_(ranks),
      layers_(static_cast<std::size_t>(moe_layers)),
      expert_load_(static_cast<std::size_t>(moe_layers) * static_cast<std::size_t>(experts), 0),
      rank_tokens_(static_cast<std::size_t>(ranks), 0),
      rank_busy_s_(static_cast<std::size_t>(ranks), 0.0),
      rank_straggler_count_(static_cast<std::size_t>(ranks), 0) {}

void MoeLoadMetrics::record(const MoeLayerSample& sample) {
  auto& layer = layers_[static_cast<std::size_t>(sample.layer)];
  layer.assignments += sample.assignments;
  layer.dropped += sample.dropped;
  layer.tokens_fully_dropped += sample.tokens_fully_dropped;
  ++layer.samples;
  layer.expert_imbalance_sum += sample.expert_max_over_mean;
  layer.rank_imbalance_sum += sample.rank_max_over_mean;
  layer.rank_imbalance_max = std::max(layer.rank_imbalance_max, sample.rank_max_over_mean);
  assignments_ += sample.assignments;
  dropped_ += sample.dropped;
  tokens_fully_dropped_ += sample.tokens_fully_dropped;
  expert_imbalance_.record(sample.expert_max_over_mean);
  rank_imbalance_.record(sample.rank_max_over_mean);

  std::int64_t* load =
      expert_load_.data() + static_cast<std::size_t>(sample.layer) * static_cast<std::size_t>(experts_);
  for (std::size_t e = 0; e < sample.expert_demand.size(); ++e)
    load[e] += sample.expert_demand[e];
  for (std::size_t r = 0; r < sample.rank_assignments.size(); ++r) {
    rank_tokens_[r] += sample.rank_assignments[r];
    rank_busy_s_[r] += sample.rank_busy_s[r];
  }
  ++rank_straggler_count_[static_cast<std::size_t>(sample.straggler_rank)];
}

nlohmann::json MoeLoadMetrics::layers_json(bool include_expert_load) const {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const auto& layer = layers_[l];
    const double samples = static_cast<double>(std::max<std::int64_t>(layer.samples, 1));
    nlohmann::json entry{
        {"moe_layer", l},
        {"assignments", layer.assignments},
        {"dropped_assignments", layer.dropped},
        {"drop_rate", layer.assignments == 0
                          ? 0.0
                          : static_cast<double>(layer.dropped) / static_cast<double>(layer.assignments)},
        {"tokens_fully_dropped", layer.tokens_fully_dropped},
        {"expert_max_over_mean_mean", layer.expert_imbalance_sum / samples},
        {"rank_max_over_mean_mean", layer.rank_imbalance_sum / samples},
        {"rank_max_over_mean_max", layer.rank_imbalance_max},
    };
    if (include_expert_load) {
      const auto begin =
          expert_load_.begin() + static_cast<std::ptrdiff_t>(l * static_cast<std::size_t>(experts_));
      entry["expert_load"] = std::vector<std::int64_t>(begin, begin + experts_);
    }
    layers.push_back(std::move(entry));
  }
  return layers;
}

nlohmann::json MoeLoadMetrics::ranks_json() const {
  nlohmann::json ranks = nlohmann::json::array();
  for (int r = 0; r < ranks_; ++r) {
    const auto index = static_cast<std::size_t>(r);
    ranks.push_back({{"rank", r},
                     {"tokens", rank_tokens_[index]},
                     {"busy_s", rank_busy_s_[index]},
                     {"straggler_count", rank_straggler_count_[index]}});
  }
  return ranks;
}

}  // namespace moesim
