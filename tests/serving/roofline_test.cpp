// An unloaded request's TTFT is one prefill step: its time is worked out here by
// hand from the model's shape and the H100's datasheet figures with the cost
// model's documented default efficiencies (sim/cost/cost_model.cpp).
#include <cmath>

#include <catch2/catch.hpp>

#include "sim/serving/simulation.hpp"
#include "tests/serving/scenario_fixture.hpp"

using namespace moesim;
using namespace moesim::testing;

namespace {

constexpr double kPeakBf16 = 989e12;      // H100 SXM dense BF16, REFERENCE.md §1
constexpr double kHbmBandwidth = 3350e9;  // H100 SXM HBM3
constexpr double kGemmFlops = 0.8 * kPeakBf16;
constexpr double kGemmBandwidth = 0.8 * kHbmBandwidth;
constexpr double kGemmFixed = 9e-6;
constexpr double kMHalf = 64;
constexpr double kPrefillFlops = 0.6 * kPeakBf16;
constexpr double kMemoryBandwidth = 0.9 * kHbmBandwidth;
constexpr double kKernelFixed = 4e-6;

// The documented GEMM form: smooth maximum (p = 4) of the call overhead, the
// compute time at efficiency m / (m + m_half), and the bytes moved.
double gemm(double m, double n, double k) {
  const double compute = 2 * n * k * (m + kMHalf) / kGemmFlops;
  const double memory = (2 * n * k + 2 * m * k + 2 * m * n) / kGemmBandwidth;
  return std::pow(std::pow(kGemmFixed, 4) + std::pow(compute, 4) + std::pow(memory, 4), 0.25);
}

}  // namespace

TEST_CASE("an unloaded request's TTFT is the prefill roofline done by hand", "[serving][roofline]") {
  const double prompt = 2048;
  nlohmann::json workload = {{"kind", "poisson"},
                             {"rate", 1.0},
                             {"requests", 1},
                             {"input", {{"kind", "fixed"}, {"tokens", 2048}}},
                             {"output", {{"kind", "fixed"}, {"tokens", 1}}}};
  const Scenario scenario = load_test_scenario(single_gpu_scenario(workload), "roofline.json");
  const SimulationResult result = simulate(simulation_inputs(scenario));
  REQUIRE(result.completed == 1);

  // tiny-dense: hidden 1024, 8 heads of 128 (MHA), FFN 4096, vocab 1000, 2 layers, BF16.
  const double hidden = 1024;
  const double attention_params = 4 * hidden * 8 * 128;  // q, k, v, o
  const double ffn_params = 3 * hidden * 4096;           // gate, up, down
  const double pairs = prompt * (prompt + 1) / 2;        // causal (query, key) pairs
  const double core_flops = pairs * 4 * 8 * 128;         // QK^T and PV, 2 FLOPs per multiply-add
  const double kv_bytes = prompt * 2 * 8 * 128 * 2;      // K and V of every prompt token, BF16
  const double attention_core =
      kKernelFixed + std::max(core_flops / kPrefillFlops, kv_bytes / kMemoryBandwidth);
  const double per_layer = gemm(prompt, attention_params / hidden, hidden) + attention_core +
                           gemm(prompt, ffn_params / hidden, hidden) + 12 * kKernelFixed;
  const double lm_head = gemm(1, 1000, hidden);  // logits of the last prompt token only
  const double expected = 2 * per_layer + lm_head;

  CHECK(scenario.model.derived.attention_core_flops_per_key_prefill == 4 * 8 * 128);
  // The step is rounded up to whole nanoseconds.
  CHECK(result.ttft_s.max() == Approx(expected).epsilon(0).margin(1e-9));
  CHECK(result.e2e_s.max() == Approx(expected).epsilon(0).margin(1e-9));
}
