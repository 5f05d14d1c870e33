#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "sim/common/error.hpp"
#include "sim/cost/cost_model.hpp"

using moesim::CalibrationProfile;
using moesim::CostModel;
using moesim::ExpertKernel;
using moesim::GpuSpec;
using moesim::Precision;

namespace {

// REFERENCE.md §1, H100 SXM.
GpuSpec h100() {
  GpuSpec gpu;
  gpu.name = "H100 SXM";
  gpu.hbm_bytes = 80e9;
  gpu.hbm_bandwidth = 3.35e12;
  gpu.bf16_flops = 989e12;
  gpu.fp8_flops = 1979e12;
  gpu.sm_count = 132;
  gpu.l2_bytes = 50e6;
  gpu.scale_up_bandwidth = 450e9;
  return gpu;
}

double p_norm(double p, double a, double b, double c = 0.0) {
  return std::pow(std::pow(a, p) + std::pow(b, p) + std::pow(c, p), 1.0 / p);
}

}  // namespace

TEST_CASE("default roofline matches the documented arithmetic", "[cost]") {
  const CostModel model(h100(), std::nullopt);
  SECTION("a large BF16 GEMM is compute-bound at 80 % of 989 TFLOP/s") {
    const double n = 8192, k = 8192, m = 8192;
    const double compute = 2 * n * k * (m + 64) / (0.8 * 989e12);
    const double memory = (n * k * 2 + 2 * m * k + 2 * m * n) / (0.8 * 3.35e12);
    CHECK(model.gemm_seconds(m, n, k, Precision::bf16) ==
          Approx(p_norm(4, 9e-6, compute, memory)).epsilon(1e-12));
    CHECK(model.gemm_seconds(m, n, k, Precision::bf16) == Approx(compute).epsilon(1e-3));
  }
  SECTION("a one-token FP8 GEMM is bound by reading its weights once") {
    const double n = 4096, k = 7168;
    const double memory = (n * k * 1 + 2 * k + 2 * n) / (0.8 * 3.35e12);
    const double compute = 2 * n * k * (1 + 64) / (0.7 * 1979e12);
    CHECK(model.gemm_seconds(1, n, k, Precision::fp8) ==
          Approx(p_norm(4, 9e-6, compute, memory)).epsilon(1e-12));
    CHECK(model.gemm_seconds(1, n, k, Precision::fp8) < 0.55 * model.gemm_seconds(1, n, k, Precision::bf16));
  }
  SECTION("memory traffic at 90 % of 3.35 TB/s plus a smooth launch cost") {
    CHECK(model.memory_seconds(1e9) == Approx(p_norm(4, 4e-6, 1e9 / (0.9 * 3.35e12))).epsilon(1e-12));
    CHECK(model.memory_seconds(0) == 0.0);
  }
  SECTION("attention, launches, sync") {
    CHECK(model.attention_decode_seconds(64, 2e9, 1e9) ==
          Approx(4e-6 + 2e9 / (0.8 * 3.35e12)).epsilon(1e-12));
    CHECK(model.attention_prefill_seconds(1e15, 1e9) == Approx(4e-6 + 1e15 / (0.6 * 989e12)).epsilon(1e-12));
    CHECK(model.launch_seconds(3) == Approx(12e-6));
    CHECK(model.launch_seconds(0) == 0.0);
    CHECK(model.host_sync_seconds() == Approx(10e-6));
  }
  SECTION("no work costs nothing") {
    CHECK(model.gemm_seconds(0, 4096, 4096, Precision::bf16) == 0.0);
    CHECK(model.expert_ffn_seconds(0, 8, 4096, 1536, Precision::bf16) == 0.0);
    CHECK(model.attention_decode_seconds(0, 0, 0) == 0.0);
  }
}

TEST_CASE("expert FFN: more active experts are slower at equal tokens in decode", "[cost]") {
  const CostModel model(h100(), std::nullopt);
  const double hidden = 7168, ffn = 2048;
  double previous = 0;
  for (double experts : {1.0, 2.0, 8.0, 32.0, 64.0}) {
    const double seconds = model.expert_ffn_seconds(64, experts, hidden, ffn, Precision::bf16);
    CHECK(seconds > previous);
    previous = seconds;
  }
  // 64 assignments on 8 experts: each expert's 3 x 7168 x 2048 BF16 weights read once.
  const double weights = 8 * 3 * hidden * ffn * 2.0;
  CHECK(model.expert_ffn_seconds(64, 8, hidden, ffn, Precision::bf16) > weights / (0.8 * 3.35e12));
  CHECK(model.expert_ffn_seconds(64, 8, hidden, ffn, Precision::bf16) < 1.5 * weights / (0.8 * 3.35e12));
}

TEST_CASE("per-expert counts: even loads equal the even split, skew costs more", "[cost]") {
  const CostModel model(h100(), std::nullopt);
  const std::vector<std::int32_t> even(16, 256),
      skewed = {2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1, 1, 1, 1, 1};
  const double hidden = 4096, ffn = 1536;
  CHECK(model.expert_ffn_seconds(even, hidden, ffn, Precision::bf16) ==
        Approx(model.expert_ffn_seconds(16 * 256, 16, hidden, ffn, Precision::bf16)).epsilon(1e-12));
  double sum = 0;
  for (auto count : skewed)
    sum += count;
  CHECK(model.expert_ffn_seconds(skewed, hidden, ffn, Precision::bf16) >
        model.expert_ffn_seconds(sum, 16, hidden, ffn, Precision::bf16));
  const auto table = model.expert_cost_table(hidden, ffn, Precision::bf16, ExpertKernel::per_expert, 512);
  for (std::int32_t tokens : {0, 1, 7, 512, 4096}) {
    const std::vector<std::int32_t> slot = {tokens};
    CHECK(table.rank_seconds(slot) ==
          Approx(model.expert_gemms_seconds(static_cast<double>(tokens), hidden, ffn, Precision::bf16))
              .margin(0));
  }
}

TEST_CASE("grouped experts: the fixed cost once per projection kernel, each expert's roofline work added",
          "[cost][grouped]") {
  const CostModel model(h100(), std::nullopt);
  // Qwen3-235B-A22B's expert slice on one GPU of TP8 (hidden 4,096, expert FFN 1,536 / 8 = 192), a
  // decode step's loads: two experts with 4 tokens, one with 1, one idle.
  const double hidden = 4096, ffn = 192;
  const std::vector<std::int32_t> loads = {4, 0, 4, 1};
  // The documented form by hand: each projection's work is the smooth maximum of its compute and
  // its bytes (weights, activations in and out) with no fixed term, summed over the active experts;
  // the kernel's 9 us fixed cost is then blended in once.
  const double flops = 0.8 * 989e12, bandwidth = 0.8 * 3.35e12;
  auto work = [&](double m, double n, double k) {
    return p_norm(4, 2 * n * k * (m + 64) / flops, (n * k * 2 + 2 * m * k + 2 * m * n) / bandwidth);
  };
  const double gate_up = 2 * work(4, 2 * ffn, hidden) + work(1, 2 * ffn, hidden);
  const double down = 2 * work(4, hidden, ffn) + work(1, hidden, ffn);
  const double expected = p_norm(4, 9e-6, gate_up) + p_norm(4, 9e-6, down);
  CHECK(model.grouped_expert_seconds(loads, hidden, ffn, Precision::bf16) == Approx(expected).epsilon(1e-12));
  // Memory-bound: the gate+up weights (384 x 4,096 BF16, 3.1 MB) take 1.17 us at 2.68 TB/s.
  CHECK(work(4, 2 * ffn, hidden) == Approx(2 * ffn * hidden * 2 / bandwidth).epsilon(0.02));
  CHECK(model.gemm_work_seconds(4, 2 * ffn, hidden, Precision::bf16) ==
        Approx(work(4, 2 * ffn, hidden)).epsilon(1e-12));
  // The per-expert loop pays 9 us per call: 6 calls, about 55 us, against about 19 us grouped.
  double per_expert = 0;
  for (std::int32_t tokens : loads)
    per_expert += model.expert_gemms_seconds(tokens, hidden, ffn, Precision::bf16);
  CHECK(per_expert > 50e-6);
  CHECK(model.grouped_expert_seconds(loads, hidden, ffn, Precision::bf16) < 20e-6);
  CHECK(model.grouped_expert_seconds(std::vector<std::int32_t>{0, 0}, hidden, ffn, Precision::bf16) == 0.0);
}

TEST_CASE("grouped experts never cost more than the per-expert loop, and the same for one expert",
          "[cost][grouped]") {
  const CostModel model(h100(), std::nullopt);
  for (Precision precision : {Precision::bf16, Precision::fp8}) {
    // Small slices (decode-bound by the fixed cost) and DeepSeek-V3's whole experts (bound by their work).
    for (const auto& [hidden, ffn] : {std::pair{4096.0, 192.0}, std::pair{7168.0, 2048.0}}) {
      for (std::int32_t tokens : {1, 16, 300, 5000}) {
        const std::vector<std::int32_t> one = {0, tokens, 0};
        INFO("tokens " << tokens << ", ffn " << ffn);
        CHECK(model.grouped_expert_seconds(one, hidden, ffn, precision) ==
              Approx(model.expert_gemms_seconds(tokens, hidden, ffn, precision)).epsilon(1e-12));
      }
      std::uint64_t state = 12345;
      for (int trial = 0; trial < 50; ++trial) {
        std::vector<std::int32_t> loads(16);
        double per_expert = 0;
        for (auto& load : loads) {
          state = state * 6364136223846793005ULL + 1442695040888963407ULL;
          load = static_cast<std::int32_t>((state >> 33) % 600) - 200;  // a third idle
          load = std::max(load, 0);
          per_expert += model.expert_gemms_seconds(load, hidden, ffn, precision);
        }
        CHECK(model.grouped_expert_seconds(loads, hidden, ffn, precision) <= per_expert * (1 + 1e-12));
      }
    }
  }
}

TEST_CASE("expert cost tables sum a rank's slots as the cost model does, past the table too",
          "[cost][grouped]") {
  const CostModel model(h100(), std::nullopt);
  const double hidden = 4096, ffn = 192;
  const std::vector<std::int32_t> slots = {0, 3, 64, 0, 1, 700, 20};  // 700 is past the table
  const auto grouped = model.expert_cost_table(hidden, ffn, Precision::bf16, ExpertKernel::grouped, 512);
  const auto per_expert =
      model.expert_cost_table(hidden, ffn, Precision::bf16, ExpertKernel::per_expert, 512);
  CHECK(grouped.rank_seconds(slots) ==
        Approx(model.grouped_expert_seconds(slots, hidden, ffn, Precision::bf16)).epsilon(1e-12));
  double sum = 0;
  for (std::int32_t tokens : slots)
    sum += model.expert_gemms_seconds(tokens, hidden, ffn, Precision::bf16);
  CHECK(per_expert.rank_seconds(slots) == sum);  // the same additions in the same order
  const std::vector<std::int32_t> idle(8, 0);
  CHECK(grouped.rank_seconds(idle) == 0.0);
  CHECK(per_expert.rank_seconds(idle) == 0.0);
}

TEST_CASE("all ranks at once give each rank's own time exactly, few or many slots per rank",
          "[cost][grouped]") {
  CalibrationProfile blunt;  // a GEMM form whose smooth maximum is not the inlined sharpness 4
  blunt.gemm[static_cast<int>(Precision::bf16)] = moesim::GemmParameters{8e-6, 700e12, 64, 2.5e12, 1.5};
  const CostModel sharp_model(h100(), std::nullopt);
  const CostModel blunt_model(h100(), blunt);
  std::uint64_t state = 99;
  const auto next_count = [&state](std::int32_t largest) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const auto draw = static_cast<std::int32_t>((state >> 33) % static_cast<std::uint64_t>(largest + 1));
    return (state >> 20) % 3 == 0 ? 0 : draw;  // a third of the slots idle
  };
  for (const CostModel* model : {&sharp_model, &blunt_model}) {
    for (const ExpertKernel kernel : {ExpertKernel::grouped, ExpertKernel::per_expert}) {
      const auto table = model->expert_cost_table(7168, 2048, Precision::bf16, kernel, 512);
      // 1 to 3 slots take the table of combinations (counts past its range and the table's too), 4 and
      // 9 the four-rank sums; 13 ranks leave a remainder after the groups of four.
      for (const std::size_t slots_per_rank : {1, 2, 3, 4, 9}) {
        for (const std::int32_t largest : {5, 70, 5000}) {
          const std::size_t ranks = 13;
          std::vector<std::int32_t> slots(ranks * slots_per_rank);
          for (auto& tokens : slots)
            tokens = next_count(largest);
          std::vector<double> seconds(ranks, -1.0);
          table.ranks_seconds(slots, slots_per_rank, seconds);
          for (std::size_t r = 0; r < ranks; ++r) {
            INFO("kernel " << expert_kernel_name(kernel) << ", " << slots_per_rank << " slots per rank, rank "
                           << r << ", counts up to " << largest);
            CHECK(seconds[r] ==
                  table.rank_seconds(std::span(slots).subspan(r * slots_per_rank, slots_per_rank)));
          }
        }
      }
    }
  }
}

TEST_CASE("a profile replaces the defaults it holds and keeps the rest", "[cost]") {
  CalibrationProfile profile;
  profile.gpu = "test GPU";
  profile.memory = moesim::MemoryParameters{2e-6, 2e12, 1.0};
  profile.launch_seconds = 1e-6;
  const CostModel model(h100(), profile);
  CHECK(model.memory_seconds(1e9) == Approx(2e-6 + 1e9 / 2e12).epsilon(1e-12));
  CHECK(model.launch_seconds(2) == Approx(2e-6));
  CHECK(model.gemm(Precision::bf16).flops == Approx(0.8 * 989e12));
  CHECK(model.describe()["memory"]["memory_efficiency"].get<double>() == Approx(2e12 / 3.35e12));
  CHECK(model.describe()["source"]["gpu"] == "test GPU");
}

TEST_CASE("a GPU without FP8 computes FP8 weights at its BF16 rate", "[cost]") {
  GpuSpec a100 = h100();
  a100.bf16_flops = 312e12;
  a100.fp8_flops = 0;
  const CostModel model(a100, std::nullopt);
  CHECK(model.gemm(Precision::fp8).flops == Approx(0.8 * 312e12));
  CHECK(model.describe()["gemm"]["fp8"]["compute_efficiency"].is_null());
}

TEST_CASE("the cost model rejects a GPU spec without rates", "[cost]") {
  GpuSpec empty;
  empty.name = "empty";
  CHECK_THROWS_AS(CostModel(empty, std::nullopt), moesim::InputError);
}
