#include <catch2/catch.hpp>

#include <fstream>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/serving/simulation.hpp"
#include "tests/serving/scenario_fixture.hpp"

using namespace moesim;
using namespace moesim::testing;
using Catch::Matchers::Contains;

namespace {

constexpr int kLayers = 16;  // OLMoE-1B-7B: MoE layers, experts, top-k
constexpr int kExperts = 64;
constexpr int kTopK = 8;

// 50 recorded tokens; at MoE layer l token t takes experts l*4 + (t mod 2) .. l*4 + (t mod 2) + 7 (mod 64),
// so odd and even tokens differ at the ends of the window.
int first_expert(int token, int layer) {
  return layer * 4 + token % 2;
}

std::filesystem::path write_routing_trace() {
  const auto file = std::filesystem::temp_directory_path() / "moesim_tests" / "replay_routing.csv";
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary);
  out << fmt::format("# moesim routing trace: form=tokens layers={} experts={} top_k={}\n", kLayers, kExperts,
                     kTopK)
      << "token,layer,experts\n";
  for (int token = 0; token < 50; ++token) {
    for (int layer = 0; layer < kLayers; ++layer) {
      out << token << ',' << layer << ',';
      for (int j = 0; j < kTopK; ++j)
        out << (j > 0 ? " " : "") << (first_expert(token, layer) + j) % kExperts;
      out << '\n';
    }
  }
  return file;
}

nlohmann::json replay_scenario(const std::filesystem::path& trace) {
  auto scenario = nlohmann::json::parse(R"({
    "name": "replay", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {"parallel": {"attention_tp": 1, "attention_dp": 8, "expert_ep": 8, "expert_tp": 1},
                   "scheduler": {"max_sequences": 16, "max_batched_tokens": 2048}},
    "workload": {"kind": "poisson", "rate": 20, "requests": 100,
                 "input": {"kind": "lognormal", "mean": 300, "sigma": 0.5, "max": 2000},
                 "output": {"kind": "lognormal", "mean": 40, "sigma": 0.5, "max": 200}},
    "capacity": {"capacity_factor": 1.0, "policy": "drop"},
    "seed": 3})");
  scenario["router"] = {{"kind", "replay"}, {"file", trace.string()}};
  return scenario;
}

}  // namespace

TEST_CASE("a replayed routing trace drives every count of a simulation", "[serving][replay]") {
  const auto trace = write_routing_trace();
  const Scenario scenario = load_test_scenario(replay_scenario(trace), "replay.json");
  const SimulationResult result = simulate(simulation_inputs(scenario));
  REQUIRE(result.moe);
  CHECK(result.completed == 100);
  const auto layers = result.moe->layers_json(true);
  // Experts 1..7 past l*4 take every token, expert l*4 the even ones, l*4+8 the odd ones, the rest none.
  const auto load_of = [&](int layer, int offset) {
    return layers[static_cast<std::size_t>(layer)]["expert_load"]
                 [static_cast<std::size_t>((layer * 4 + offset) % kExperts)]
                     .get<std::int64_t>();
  };
  const std::int64_t every_token = load_of(0, 1);
  const std::int64_t even = load_of(0, 0);
  const std::int64_t odd = load_of(0, 8);
  CHECK(every_token > 0);
  CHECK(even + odd == every_token);
  // The steps' token counts are not all even, so an odd/even split off by one shows that tokens are
  // taken one at a time in order, and the same tokens at every layer.
  CHECK(std::abs(even - odd) <= static_cast<std::int64_t>(result.steps));
  for (int layer = 0; layer < kLayers; ++layer) {
    INFO("layer " << layer);
    for (int offset = 1; offset < kTopK; ++offset)
      CHECK(load_of(layer, offset) == every_token);
    CHECK(load_of(layer, 0) == even);
    CHECK(load_of(layer, 8) == odd);
    const auto load = layers[static_cast<std::size_t>(layer)]["expert_load"].get<std::vector<std::int64_t>>();
    CHECK(std::accumulate(load.begin(), load.end(), std::int64_t{0}) == every_token * kTopK);
  }
  CHECK(every_token * kTopK * kLayers == result.moe->assignments());
  // Capacity factor 1 keeps ceil(tokens * 8 / 64) of each hot expert's tokens: at most 7/8 dropped, and
  // as many at every layer, since every layer sees the same steps and the same shape of routing.
  const double dropped =
      static_cast<double>(result.moe->dropped()) / static_cast<double>(result.moe->assignments());
  CHECK(dropped <= 7.0 / 8);
  CHECK(dropped > 0.75);
  for (int layer = 1; layer < kLayers; ++layer) {
    CHECK(layers[static_cast<std::size_t>(layer)]["drop_rate"] == layers[0]["drop_rate"]);
  }
}

TEST_CASE("a routing trace of another model shape is an input error naming the trace", "[serving][replay]") {
  const auto trace = write_routing_trace();
  auto scenario = replay_scenario(trace);
  scenario["model"] = "mixtral-8x7b";
  scenario["deployment"]["parallel"] = {
      {"attention_tp", 1}, {"attention_dp", 8}, {"expert_ep", 8}, {"expert_tp", 1}};
  const Scenario loaded = load_test_scenario(scenario, "replay_shape.json");
  CHECK_THROWS_WITH(simulate(simulation_inputs(loaded)),
                    Contains(trace.string()) && Contains("expected the simulated model's shape"));
  auto drifting = replay_scenario(trace);
  drifting["router"]["drift"] = {{"rotation", {{"period_s", 60}, {"experts_per_period", 1}}}};
  CHECK_THROWS_WITH(load_test_scenario(drifting, "replay_drift.json"),
                    Contains("router.drift: expected nothing: a replayed routing trace has no classes"));
}
