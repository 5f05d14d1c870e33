#include <catch2/catch.hpp>

#include <vector>

#include "sim/metrics/moe_load.hpp"

using namespace moesim;

namespace {

MoeLayerSample sample(int layer, int straggler, const std::vector<std::int32_t>& demand,
                      const std::vector<std::int32_t>& overflow, const std::vector<std::int32_t>& kept,
                      const std::vector<double>& busy) {
  MoeLayerSample s;
  s.layer = layer;
  s.straggler_rank = straggler;
  s.expert_demand = demand;
  s.expert_overflow = overflow;
  s.rank_assignments = kept;
  s.rank_busy_s = busy;
  for (const auto d : demand)
    s.assignments += d;
  for (const auto o : overflow)
    s.dropped += o;
  return s;
}

}  // namespace

TEST_CASE("MoE load metrics attribute stragglers and overflow per layer", "[metrics][moe]") {
  MoeLoadMetrics metrics(2, 4, 2);
  const std::vector<std::int32_t> demand{6, 2, 0, 0}, overflow{2, 0, 0, 0}, kept{6, 0};
  const std::vector<double> busy{3.0, 1.0};
  const std::vector<std::int32_t> demand_b{1, 1, 1, 5}, none{0, 0, 0, 0}, kept_b{2, 6};
  const std::vector<double> busy_b{1.0, 2.0};
  auto first = sample(0, 0, demand, overflow, kept, busy);
  first.rerouted = 1;
  metrics.record(first);
  metrics.record(sample(0, 0, demand, overflow, kept, busy));
  metrics.record(sample(1, 1, demand_b, none, kept_b, busy_b));

  CHECK(metrics.assignments() == 24);
  CHECK(metrics.dropped() == 4);
  CHECK(metrics.rerouted() == 1);
  CHECK(metrics.straggler_count(0, 0) == 2);
  CHECK(metrics.straggler_count(0, 1) == 0);
  CHECK(metrics.straggler_count(1, 1) == 1);
  CHECK(metrics.expert_overflow(0, 0) == 4);
  CHECK(metrics.expert_overflow(1, 3) == 0);

  const auto layers = metrics.layers_json(true);
  CHECK(layers[0]["straggler_count"] == nlohmann::json::array({2, 0}));
  CHECK(layers[0]["expert_overflow"] == nlohmann::json::array({4, 0, 0, 0}));
  CHECK(layers[0]["expert_load"] == nlohmann::json::array({12, 4, 0, 0}));
  CHECK(layers[0]["overflow_events"] == 2);
  CHECK(layers[0]["rerouted_assignments"] == 1);
  CHECK(layers[0]["drop_rate"] == Approx(0.25));
  CHECK(layers[1]["drop_rate"] == 0.0);
  CHECK_FALSE(metrics.layers_json(false)[0].contains("expert_overflow"));

  const auto ranks = metrics.ranks_json();
  // Rank 0 was the straggler twice at 3 s against a mean of 2 s; rank 1 once at 2 s against 1.5 s.
  CHECK(ranks[0]["straggler_excess_s"] == Approx(2.0));
  CHECK(ranks[1]["straggler_excess_s"] == Approx(0.5));
  CHECK(ranks[0]["tokens"] == 14);
  CHECK(ranks[0]["tokens_over_mean"] == Approx(14.0 / 10.0));

  const auto stragglers = metrics.stragglers_json(5);
  CHECK(stragglers["layer_steps"] == 3);
  REQUIRE(stragglers["top"].size() == 2);
  CHECK(stragglers["top"][0]["moe_layer"] == 0);
  CHECK(stragglers["top"][0]["rank"] == 0);
  CHECK(stragglers["top"][0]["count"] == 2);
  CHECK(stragglers["top"][0]["share_of_layer"] == 1.0);
  CHECK(stragglers["top"][0]["share_of_all"] == Approx(2.0 / 3.0));
  CHECK(stragglers["top"][1]["moe_layer"] == 1);
  CHECK(metrics.stragglers_json(1)["top"].size() == 1);
}

TEST_CASE("MoE load metrics sum rebalances", "[metrics][moe]") {
  MoeLoadMetrics metrics(1, 4, 2);
  CHECK(metrics.rebalances() == 0);
  metrics.record(RebalanceSample{3, 3e9, 0.25, 2});
  metrics.record(RebalanceSample{1, 1e9, 0.5, 1});
  CHECK(metrics.rebalances() == 2);
  CHECK(metrics.rebalance_totals().slots_moved == 4);
  CHECK(metrics.rebalance_totals().bytes_moved == 4e9);
  CHECK(metrics.rebalance_totals().stall_s == 0.75);
  CHECK(metrics.rebalance_totals().layers_kept == 3);
}

TEST_CASE("MoE load metrics attribute an expert's drops to classes by their counts", "[metrics][moe]") {
  MoeLoadMetrics metrics(2, 4, 2);
  metrics.set_classes({"code", "chat"});
  const std::vector<std::int32_t> demand{6, 2, 0, 0}, overflow{2, 0, 0, 0}, kept{4, 2};
  const std::vector<double> busy{1.0, 1.0};
  const std::vector<std::int32_t> code{3, 2, 0, 0}, chat{3, 0, 0, 0};
  // Layer 0, drop: expert 0 drops 2 of its 6, a third of each class's assignments there.
  metrics.record(sample(0, 0, demand, overflow, kept, busy));
  metrics.record_class(0, code);
  metrics.record_class(1, chat);
  // Layer 1, reroute kept one of the two: half as many drops, attributed the same way.
  auto rerouted = sample(1, 0, demand, overflow, kept, busy);
  rerouted.dropped = 1;
  metrics.record(rerouted);
  metrics.record_class(0, code);
  metrics.record_class(1, chat);

  const auto classes = metrics.classes_json();
  REQUIRE(classes.size() == 2);
  CHECK(classes[0]["class"] == "code");
  CHECK(classes[0]["assignments"] == 10.0);
  CHECK(classes[0]["dropped_assignments"] == Approx(1.5));
  CHECK(classes[0]["layer_drop_rate"][0] == Approx(0.2));
  CHECK(classes[0]["layer_drop_rate"][1] == Approx(0.1));
  CHECK(classes[1]["dropped_assignments"] == Approx(1.5));
  CHECK(classes[1]["drop_rate"] == Approx(0.25));
  // The classes' drops add up to the layers' drops.
  CHECK(classes[0]["dropped_assignments"].get<double>() + classes[1]["dropped_assignments"].get<double>() ==
        Approx(static_cast<double>(metrics.dropped())));
  CHECK(MoeLoadMetrics(1, 4, 2).classes_json().empty());
}
