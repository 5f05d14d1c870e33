// Prefill/decode disaggregation: conservation of requests, TTFT = prefill + KV transfer on an
// unloaded request (by hand), back-pressure from full decode ranks, bad deployments.
#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/network/collectives.hpp"
#include "sim/report/report.hpp"
#include "sim/serving/simulation.hpp"
#include "tests/serving/scenario_fixture.hpp"

using namespace moesim;
using namespace moesim::testing;
using Catch::Matchers::Contains;

namespace {

nlohmann::json one_request(int prompt, int output) {
  return {{"kind", "poisson"},
          {"rate", 1.0},
          {"requests", 1},
          {"input", {{"kind", "fixed"}, {"tokens", prompt}}},
          {"output", {{"kind", "fixed"}, {"tokens", output}}}};
}

// tiny-dense split into prefill (GPU 0) and decode (GPU 1) of one H100 node, one sequence each.
nlohmann::json split_scenario(const nlohmann::json& workload) {
  nlohmann::json scenario = single_gpu_scenario(workload);
  const nlohmann::json group = scenario["deployment"];
  scenario["deployment"] = {{"prefill", group}, {"decode", group}};
  return scenario;
}

SimulationResult run(const Scenario& scenario) {
  return simulate(simulation_inputs(scenario));
}

}  // namespace

TEST_CASE("an unloaded request's TTFT is its prefill step plus the KV transfer, by hand",
          "[serving][disagg]") {
  const int prompt = 2048;
  // The prefill step alone: the unified deployment's TTFT of the same prompt.
  const SimulationResult unified =
      run(load_test_scenario(single_gpu_scenario(one_request(prompt, 4)), "disagg_unified.json"));
  REQUIRE(unified.completed == 1);
  const Scenario scenario = load_test_scenario(split_scenario(one_request(prompt, 4)), "disagg_one.json");
  REQUIRE(scenario.disaggregation);
  const SimulationResult split = run(scenario);
  REQUIRE(split.completed == 1);
  REQUIRE(split.disaggregation);

  // tiny-dense: 2 layers x K and V x 8 heads x 128 x BF16 = 8,192 bytes per token, all on one GPU.
  const double kv_bytes = prompt * 2.0 * 2 * 8 * 128 * 2;
  CHECK(split.disaggregation->kv_transfer.bytes == kv_bytes);
  // GPU 0 -> NVSwitch -> GPU 1: 450 GB/s at 69 %, 1 us GPU to GPU, 15 us launch.
  const double transfer_s = kv_bytes / (450e9 * 0.69) + 1e-6 + 15e-6;
  const ClusterGraph graph(scenario.cluster);
  CHECK(point_to_point_time(graph, 0, 1, kv_bytes, scenario.network) == Approx(transfer_s).epsilon(1e-12));
  const SimTime transfer_ns =
      static_cast<SimTime>(std::ceil(kv_bytes * 1e9 / (450e9 * 0.69) - 1e-6)) + seconds_to_ns(1e-6 + 15e-6);
  CHECK(split.disaggregation->kv_transfer.transfer_s.max() == Approx(ns_to_seconds(transfer_ns)));
  CHECK(split.ttft_s.max() == Approx(unified.ttft_s.max() + ns_to_seconds(transfer_ns)).epsilon(1e-9));
  CHECK(split.disaggregation->kv_transfer.wait_s.max() == 0);
  // The decode instance produces the other three tokens, one step each, as the unified one does.
  CHECK(split.disaggregation->prefill.steps == 1);
  CHECK(split.disaggregation->decode.steps == 3);
  CHECK(split.e2e_s.max() > split.ttft_s.max());
  CHECK(split.gpus == 2);
}

TEST_CASE("disaggregated runs conserve requests: each prefilled request is decoded once",
          "[serving][disagg]") {
  nlohmann::json scenario =
      split_scenario({{"kind", "gamma"},
                      {"rate", 2000},
                      {"cv", 2},
                      {"requests", 600},
                      {"input", {{"kind", "lognormal"}, {"mean", 1500}, {"sigma", 0.8}, {"max", 6000}}},
                      {"output", {{"kind", "geometric"}, {"mean", 200}}}});
  for (const char* group : {"prefill", "decode"}) {
    scenario["deployment"][group]["parallel"]["attention_dp"] = 2;
    scenario["deployment"][group]["parallel"]["expert_ep"] = 2;
    scenario["deployment"][group]["scheduler"] = {{"max_sequences", 16}, {"max_batched_tokens", 8192}};
  }
  // Decode ranks with room for only a few contexts (about 170 MB of HBM, 70 MB of weights, KV of
  // 8 kB per token), so that finished prefills wait for them.
  scenario["deployment"]["decode"]["gpu_memory_utilization"] = 0.002;
  scenario["deployment"]["decode"]["activation_reserve_GB"] = 0;
  const Scenario loaded = load_test_scenario(scenario, "disagg_load.json");
  const SimulationResult result = run(loaded);
  REQUIRE(result.disaggregation);
  const DisaggregationResult& split = *result.disaggregation;
  INFO("decode KV tokens per rank " << split.decode.memory.kv_token_capacity);
  CHECK(split.decode.memory.kv_token_capacity < 20000);
  CHECK(result.arrived == 600);
  CHECK(result.completed + result.rejected == result.arrived);
  CHECK(result.completed == split.finished_at_prefill + split.decoded);
  CHECK(split.kv_transfer.started == split.decoded);
  CHECK(split.kv_transfer.completed == split.decoded);
  CHECK(split.finished_at_prefill > 0);  // some requests have one output token
  CHECK(split.decoded > 500);
  CHECK(split.kv_transfer.wait_s.max() > 0);  // back-pressure happened
  CHECK(split.prefill.steps + split.decode.steps == result.steps);
  CHECK(result.ttft_s.count() == result.completed);
  CHECK(split.decode.gpus == 2);
  CHECK(split.prefill.memory.kv_token_capacity > split.decode.memory.kv_token_capacity);

  // Same scenario, same seed: the same report, byte for byte.
  const SimulatorCost cost{.wall_s = 1, .reproducible = true};
  const std::string first = render_report(build_report(loaded, result, cost));
  CHECK(first == render_report(build_report(loaded, run(loaded), cost)));
  const auto report = nlohmann::json::parse(first);
  CHECK(report["disaggregation"]["requests"]["decoded"] == split.decoded);
  CHECK(report["disaggregation"]["decode"]["utilization"].get<double>() > 0);
  CHECK(report["disaggregation"]["decode"]["utilization"].get<double>() <= 1);
  CHECK(report["summary"]["gpus"] == 4);
}

TEST_CASE("disaggregated deployments: bad input names the key", "[serving][disagg][fuzz]") {
  const nlohmann::json good = split_scenario(one_request(100, 4));
  auto rejected = [](nlohmann::json scenario, const std::string& name, const std::string& message) {
    CHECK_THROWS_WITH(load_test_scenario(scenario, name), Contains(message));
  };
  nlohmann::json missing = good;
  missing["deployment"].erase("decode");
  rejected(missing, "no_decode.json", "deployment");
  rejected(missing, "no_decode.json", "decode");
  nlohmann::json unknown = good;
  unknown["deployment"]["decode"]["precision"] = {{"weights", "fp8"}};
  rejected(unknown, "group_precision.json", "deployment.decode: unknown key \"precision\"");
  nlohmann::json mixed = good;
  mixed["deployment"]["instances"] = 2;
  rejected(mixed, "mixed.json", "deployment: unknown key \"instances\"");
  nlohmann::json negative = good;
  negative["deployment"]["prefill"]["instances"] = -1;
  rejected(negative, "negative.json", "deployment.prefill.instances");
  nlohmann::json wrong_type = good;
  wrong_type["deployment"]["decode"] = "fast";
  rejected(wrong_type, "wrong_type.json", "deployment.decode");
  nlohmann::json too_big = good;
  too_big["deployment"]["decode"]["instances"] = 8;
  rejected(too_big, "too_big.json",
           "1 prefill x 1 GPUs + 8 decode x 1 GPUs need 9 GPUs, but cluster \"h100-8x1\" has 8");
  nlohmann::json layout = good;
  layout["deployment"]["prefill"]["parallel"]["attention_tp"] = 3;
  rejected(layout, "layout.json", "deployment.prefill.parallel");

  // A shared precision applies to both groups.
  nlohmann::json shared = good;
  shared["deployment"]["precision"] = {{"weights", "fp8"}};
  const Scenario loaded = load_test_scenario(shared, "shared_precision.json");
  CHECK(loaded.disaggregation->prefill.step.weight_precision == Precision::fp8);
  CHECK(loaded.disaggregation->decode.step.weight_precision == Precision::fp8);
  CHECK(loaded.deployment.step.weight_precision == Precision::fp8);
}

TEST_CASE("a request that no decode rank could hold is rejected before its prefill", "[serving][disagg]") {
  nlohmann::json scenario = split_scenario(one_request(2000, 30000));
  scenario["deployment"]["decode"]["gpu_memory_utilization"] = 0.002;
  scenario["deployment"]["decode"]["activation_reserve_GB"] = 0;
  const Scenario loaded = load_test_scenario(scenario, "disagg_reject.json");
  REQUIRE(loaded.disaggregation);
  const SimulationResult result = run(loaded);
  CHECK(result.disaggregation->decode.memory.kv_token_capacity < 32000);
  CHECK(result.rejected == 1);
  CHECK(result.disaggregation->prefill.steps == 0);
  CHECK(result.disaggregation->kv_transfer.started == 0);
}
