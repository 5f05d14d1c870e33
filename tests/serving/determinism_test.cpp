#include <catch2/catch.hpp>

#include "sim/report/report.hpp"
#include "sim/serving/simulation.hpp"
#include "tests/serving/scenario_fixture.hpp"

using namespace moesim;
using namespace moesim::testing;

namespace {

// A small MoE deployment: OLMoE on 8 H100 with EP8, Zipf routing, a capacity factor.
nlohmann::json moe_scenario() {
  return nlohmann::json::parse(R"({
    "name": "determinism", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {"parallel": {"attention_tp": 1, "attention_dp": 8, "expert_ep": 8, "expert_tp": 1},
                   "scheduler": {"max_sequences": 32, "max_batched_tokens": 2048}},
    "workload": {"kind": "gamma", "rate": 40, "cv": 2, "requests": 400,
                 "input": {"kind": "lognormal", "mean": 800, "sigma": 0.8, "max": 8000},
                 "output": {"kind": "lognormal", "mean": 120, "sigma": 0.7, "max": 1000}},
    "router": {"kind": "zipf", "exponent": 1.2},
    "capacity": {"capacity_factor": 1.25, "policy": "drop"},
    "seed": 11, "outputs": {"timeseries_window_s": 5}})");
}

std::string run_report(const Scenario& scenario) {
  const SimulationResult result = simulate(simulation_inputs(scenario));
  return render_report(build_report(scenario, result, SimulatorCost{.wall_s = 1, .reproducible = true}));
}

}  // namespace

TEST_CASE("the same scenario and seed give a byte-identical report", "[serving][determinism]") {
  const Scenario scenario = load_test_scenario(moe_scenario(), "determinism.json");
  const std::string first = run_report(scenario);
  const std::string second = run_report(scenario);
  CHECK(first == second);
  const auto report = nlohmann::json::parse(first);
  CHECK(report["summary"]["requests"]["completed"] == 400);
  CHECK(report["moe"]["dropped_assignments"].get<std::int64_t>() > 0);

  const Scenario reseeded = load_test_scenario(moe_scenario(), "determinism_seed.json", {"seed=12"});
  CHECK(run_report(reseeded) != first);
}

TEST_CASE("reports conserve requests and tokens", "[serving]") {
  const Scenario scenario = load_test_scenario(moe_scenario(), "conservation.json");
  const SimulationResult result = simulate(simulation_inputs(scenario));
  CHECK(result.arrived == 400);
  CHECK(result.completed + result.rejected == result.arrived);
  CHECK(result.ttft_s.count() == result.completed);
  CHECK(result.e2e_s.count() == result.completed);
  CHECK(result.moe->assignments() > 0);
  const auto& series = result.timeseries;
  double arrivals = 0, completed = 0;
  for (std::size_t w = 0; w < series.windows(); ++w) {
    arrivals += series.value(w, kSeriesArrivals);
    completed += series.value(w, kSeriesCompleted);
  }
  CHECK(arrivals == 400);
  CHECK(completed == static_cast<double>(result.completed));
}

namespace {

struct OverlapRuns {
  SimulationResult off, on;
};

OverlapRuns run_with_and_without_overlap(nlohmann::json scenario, const std::string& name) {
  scenario["workload"] = {{"kind", "closed_loop"},
                          {"concurrency", 64},
                          {"input_tokens", 256},
                          {"output_tokens", 32},
                          {"requests", 256}};
  nlohmann::json overlapped = scenario;
  overlapped["deployment"]["overlap_micro_batches"] = true;
  const Scenario off = load_test_scenario(scenario, name + "_off.json");
  const Scenario on = load_test_scenario(overlapped, name + "_on.json");
  return {simulate(simulation_inputs(off)), simulate(simulation_inputs(on))};
}

// The invariants of the overlap model, whichever side is longer.
void check_overlap_bounds(const OverlapRuns& runs) {
  REQUIRE(runs.off.completed == 256);
  REQUIRE(runs.on.completed == 256);
  const StepTiming& a = runs.off.busy;
  CHECK(a.overlap_hidden_s == 0.0);
  CHECK(a.total_s ==
        Approx(a.attention_s + a.expert_s + a.dispatch_s + a.combine_s + a.tp_allreduce_s + a.overhead_s));
  const StepTiming& b = runs.on.busy;
  const double compute = b.attention_s + b.expert_s + b.tp_allreduce_s + b.overhead_s;
  const double communication = b.dispatch_s + b.combine_s;
  CHECK(b.total_s == Approx(compute + communication - b.overlap_hidden_s));
  CHECK(b.total_s >= std::max(compute, communication));
  CHECK(b.overlap_hidden_s <= communication);
}

}  // namespace

TEST_CASE("overlap hides internode all-to-all behind computation", "[serving][overlap]") {
  // DeepSeek-V3 EP32 over 4 nodes: dispatch and combine cross RDMA and are a large share of a step.
  nlohmann::json scenario = nlohmann::json::parse(R"({
    "name": "overlap-deepseek", "model": "deepseek-v3", "cluster": "h800-8x4",
    "deployment": {"parallel": {"attention_dp": 32, "expert_ep": 32},
                   "precision": {"weights": "fp8", "experts": "fp8", "dispatch": "fp8"}},
    "router": {"kind": "zipf", "exponent": 0.7}})");
  const OverlapRuns runs = run_with_and_without_overlap(scenario, "overlap_deepseek");
  check_overlap_bounds(runs);
  CHECK(runs.on.busy.overlap_hidden_s > 0.0);
  CHECK(runs.on.e2e_s.mean() < runs.off.e2e_s.mean());
}

TEST_CASE("overlap cannot pay when communication is small: the second launches cost more",
          "[serving][overlap]") {
  // OLMoE EP8 inside one NVSwitch node: the all-to-all is short, the extra kernel launches are not.
  const OverlapRuns runs = run_with_and_without_overlap(moe_scenario(), "overlap_olmoe");
  check_overlap_bounds(runs);
  CHECK(runs.on.busy.overlap_hidden_s < 0.0);
}
