#include <catch2/catch.hpp>

#include <numeric>

#include "sim/report/report.hpp"
#include "sim/serving/simulation.hpp"
#include "tests/serving/scenario_fixture.hpp"

using namespace moesim;
using namespace moesim::testing;

namespace {

// OLMoE on 8 H100 with EP8 and skewed routing, so that capacity binds.
nlohmann::json olmoe_scenario() {
  return nlohmann::json::parse(R"({
    "name": "moe-capacity", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {"parallel": {"attention_tp": 1, "attention_dp": 8, "expert_ep": 8, "expert_tp": 1},
                   "scheduler": {"max_sequences": 32, "max_batched_tokens": 2048}},
    "workload": {"kind": "poisson", "rate": 40, "requests": 300,
                 "input": {"kind": "lognormal", "mean": 600, "sigma": 0.8, "max": 4000},
                 "output": {"kind": "lognormal", "mean": 80, "sigma": 0.7, "max": 500}},
    "router": {"kind": "zipf", "exponent": 1.2},
    "capacity": {"capacity_factor": 1.25, "policy": "drop"},
    "seed": 5, "outputs": {"timeseries_window_s": 2}})");
}

nlohmann::json run(const std::string& name, const std::vector<std::string>& overrides) {
  const Scenario scenario = load_test_scenario(olmoe_scenario(), name, overrides);
  const SimulationResult result = simulate(simulation_inputs(scenario));
  return build_report(scenario, result, SimulatorCost{.wall_s = 1, .reproducible = true});
}

double sum(const nlohmann::json& values) {
  double total = 0;
  for (const auto& value : values)
    total += value.get<double>();
  return total;
}

}  // namespace

TEST_CASE("reroute keeps what drop loses, and the report's MoE figures add up", "[serving][moe][capacity]") {
  const auto drop = run("capacity_drop.json", {});
  const auto reroute = run("capacity_reroute.json", {"capacity.policy=reroute"});
  const auto per_rank = run("capacity_per_rank.json", {"capacity.policy=reroute", "capacity.scope=per_rank"});
  for (const auto* report : {&drop, &reroute, &per_rank}) {
    const auto& moe = (*report)["moe"];
    CAPTURE(moe["policy"], moe["scope"]);
    double assignments = 0, dropped = 0, rerouted = 0, overflow = 0;
    std::int64_t straggler_rows = 0;
    for (const auto& layer : moe["layers"]) {
      assignments += layer["assignments"].get<double>();
      dropped += layer["dropped_assignments"].get<double>();
      rerouted += layer["rerouted_assignments"].get<double>();
      overflow += sum(layer["expert_overflow"]);
      straggler_rows += static_cast<std::int64_t>(sum(layer["straggler_count"]));
    }
    CHECK(assignments == moe["total_assignments"].get<double>());
    CHECK(dropped == moe["dropped_assignments"].get<double>());
    CHECK(rerouted == moe["rerouted_assignments"].get<double>());
    // Per expert, the overflow is what moved plus what was dropped (per-expert scope).
    if (moe["scope"] == "per_expert") CHECK(overflow == dropped + rerouted);
    // Every layer evaluation has one straggler, counted by layer and by rank.
    CHECK(straggler_rows == moe["stragglers"]["layer_steps"].get<std::int64_t>());
    std::int64_t by_rank = 0;
    for (const auto& rank : moe["ranks"])
      by_rank += rank["straggler_count"].get<std::int64_t>();
    CHECK(by_rank == straggler_rows);
    const auto& series = (*report)["timeseries"];
    CHECK(sum(series["moe_dropped"]) == dropped);
    CHECK(sum(series["moe_rerouted"]) == rerouted);
    CHECK(series["moe_drop_rate"].size() == series["start_s"].size());
  }
  CHECK(drop["moe"]["dropped_assignments"].get<double>() > 0);
  CHECK(drop["moe"]["rerouted_assignments"] == 0);
  CHECK(reroute["moe"]["rerouted_assignments"].get<double>() > 0);
  CHECK(reroute["moe"]["dropped_assignments"].get<double>() <
        0.5 * drop["moe"]["dropped_assignments"].get<double>());
  CHECK(per_rank["moe"]["rerouted_assignments"].get<double>() > 0);
}

TEST_CASE("periodic rebalancing is deterministic and charges its moves", "[serving][moe][rebalance]") {
  const std::vector<std::string> rebalancing = {
      R"(deployment.placement={"kind": "eplb", "rebalance": {"every_s": 2, "window_s": 2}})",
      "deployment.parallel.redundant_experts=8", "capacity.scope=per_rank"};
  const auto first = run("rebalance_a.json", rebalancing);
  const auto second = run("rebalance_b.json", rebalancing);
  auto strip = [](nlohmann::json report) {
    report.erase("scenario");
    return report.dump();
  };
  CHECK(strip(first) == strip(second));
  const auto& moved = first["moe"]["rebalance"];
  const double makespan = first["summary"]["throughput"]["makespan_s"].get<double>();
  CAPTURE(moved, makespan);
  // One rebalance every 2 s while steps run (none before the first period).
  CHECK(moved["count"].get<double>() >= std::floor(makespan / 2) - 1);
  CHECK(moved["count"].get<double>() <= std::ceil(makespan / 2) + 1);
  CHECK(moved["slots_moved"].get<double>() > 0);
  // Each moved slot carries one OLMoE expert's layer weights (3 x 2048 x 1024 BF16 values).
  CHECK(moved["bytes_moved"].get<double>() == moved["slots_moved"].get<double>() * 3 * 2048 * 1024 * 2);
  CHECK(moved["stall_s"].get<double>() > 0);
  CHECK(sum(first["timeseries"]["rebalance_stall_s"]) == Approx(moved["stall_s"].get<double>()));

  // Without the rebalance key nothing moves.
  const auto fixed =
      run("rebalance_off.json", {R"(deployment.placement={"kind": "eplb"})",
                                 "deployment.parallel.redundant_experts=8", "capacity.scope=per_rank"});
  CHECK(fixed["moe"]["rebalance"]["count"] == 0);
}

namespace {

// OLMoE on EP8 with per-rank capacity; the traffic is arxiv until 40 s, then github (the measured
// OLMoE counts of each domain); EPLB rebalanced every 20 s from the last 20 s; 10 s windows.
nlohmann::json domain_shift_scenario() {
  return nlohmann::json::parse(R"({
    "name": "olmoe-domain-shift", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {"parallel": {"attention_tp": 1, "attention_dp": 8, "expert_ep": 8, "expert_tp": 1},
                   "scheduler": {"max_sequences": 64, "max_batched_tokens": 2048},
                   "placement": {"kind": "eplb", "rebalance": {"every_s": 20}}},
    "workload": {"kind": "poisson", "rate": 80, "duration_s": 80,
                 "input": {"kind": "lognormal", "mean": 200, "sigma": 0.5, "max": 2000},
                 "output": {"kind": "lognormal", "mean": 60, "sigma": 0.5, "max": 400}},
    "router": {"classes": [
        {"name": "arxiv", "popularity": {"kind": "empirical", "model": "OLMoE-1B-7B-0924", "domains": ["arxiv"]}},
        {"name": "github", "popularity": {"kind": "empirical", "model": "OLMoE-1B-7B-0924", "domains": ["github"]}}],
      "class_from": {"mix": {"arxiv": 1, "github": 0}},
      "drift": {"schedule": [{"at_s": 40, "mix": {"arxiv": 0, "github": 1}}]}},
    "capacity": {"capacity_factor": 1.25, "policy": "drop", "scope": "per_rank"},
    "seed": 3, "outputs": {"timeseries_window_s": 10}})");
}

// Mean of a time series column over windows [first, last].
double windows_mean(const nlohmann::json& series, const char* column, std::size_t first, std::size_t last) {
  double total = 0;
  for (std::size_t w = first; w <= last; ++w)
    total += series.at(column).at(w).get<double>();
  return total / static_cast<double>(last - first + 1);
}

}  // namespace

TEST_CASE(
    "a shift between OLMoE domains shows in the imbalance and drop rate, and rebalancing recovers "
    "them after one window",
    "[serving][moe][rebalance][olmoe]") {
  const auto load = [](const std::string& name, const std::vector<std::string>& overrides) {
    const Scenario scenario = load_test_scenario(domain_shift_scenario(), name, overrides);
    const SimulationResult result = simulate(simulation_inputs(scenario));
    return build_report(scenario, result, SimulatorCost{.wall_s = 1, .reproducible = true});
  };
  const auto rebalanced = load("shift_rebalanced.json", {});
  const auto fixed = load("shift_fixed.json", {R"(deployment.placement={"kind": "eplb"})"});
  struct Phases {
    double rank_excess[3];  // rank max/mean - 1 in 20-40 s, 40-60 s, 60-80 s
    double drop_rate[3];
  };
  const auto phases = [](const nlohmann::json& report) {
    const auto& series = report["timeseries"];
    Phases p{};
    for (std::size_t i = 0; i < 3; ++i) {
      p.rank_excess[i] = windows_mean(series, "rank_max_over_mean", 2 + 2 * i, 3 + 2 * i) - 1;
      p.drop_rate[i] = windows_mean(series, "moe_drop_rate", 2 + 2 * i, 3 + 2 * i);
    }
    return p;
  };
  const Phases on = phases(rebalanced), off = phases(fixed);
  INFO("rank excess (on) " << on.rank_excess[0] << " " << on.rank_excess[1] << " " << on.rank_excess[2]
                           << ", drop rate (on) " << on.drop_rate[0] << " " << on.drop_rate[1] << " "
                           << on.drop_rate[2] << "; (off) " << off.rank_excess[2] << " " << off.drop_rate[2]);
  for (const Phases* p : {&on, &off}) {
    // At the shift the placement built for arxiv meets github's hot experts: the excess grows by about
    // a quarter (1.27 and 1.249 times in two realisations of the routing), the drop rate sevenfold.
    CHECK(p->rank_excess[1] > 1.2 * p->rank_excess[0]);
    CHECK(p->drop_rate[1] > 4 * p->drop_rate[0]);
  }
  // The rebalance at 60 s, from the 40-60 s window, brings both back; without it they stay.
  CHECK(on.rank_excess[2] < 1.1 * on.rank_excess[0]);
  CHECK(on.drop_rate[2] < 1.5 * on.drop_rate[0]);
  // 1.2 rather than the 1.25 above: with grouped expert kernels (the default) steps got shorter and
  // batches smaller, and without rebalancing the 60-80 s excess came out 1.245 times the 20-40 s one.
  CHECK(off.rank_excess[2] > 1.2 * off.rank_excess[0]);
  CHECK(off.drop_rate[2] > 4 * off.drop_rate[0]);
  CHECK(rebalanced["moe"]["rebalance"]["count"].get<int>() >= 3);  // 20, 40, 60 s (and 80 s while draining)
  CHECK(rebalanced["moe"]["rebalance"]["slots_moved"].get<double>() > 0);

  // Drops per class: github, whose hot experts the arxiv layout packs together, loses more.
  const auto& classes = fixed["moe"]["classes"];
  REQUIRE(classes.size() == 2);
  CHECK(classes[0]["class"] == "arxiv");
  CHECK(classes[1]["drop_rate"].get<double>() > 2 * classes[0]["drop_rate"].get<double>());
  CHECK(classes[0]["dropped_assignments"].get<double>() + classes[1]["dropped_assignments"].get<double>() ==
        Approx(fixed["moe"]["dropped_assignments"].get<double>()));
}
