#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "sim/calibration/check.hpp"
#include "sim/calibration/fit.hpp"
#include "sim/common/rng.hpp"
#include "sim/cost/cost_model.hpp"

using moesim::CalibrationProfile;
using moesim::Measurements;
using moesim::MeasurementSample;
using moesim::Precision;
using moesim::SampleFamily;

namespace {

// The parameters the synthetic measurements are generated from (roughly an H100's).
CalibrationProfile truth() {
  CalibrationProfile profile;
  profile.gpu = "synthetic";
  profile.memory = moesim::MemoryParameters{3e-6, 3e12, 6.0};
  profile.gemm[0] = moesim::GemmParameters{8e-6, 8e14, 20.0, 2.6e12, 2.0};
  profile.attention_decode = moesim::AttentionDecodeParameters{1e-5, 1.2e12, 2.0};
  profile.attention_prefill = moesim::AttentionPrefillParameters{2e-5, 1.2e14};
  profile.launch_seconds = 4e-6;
  profile.sync_seconds = 5e-6;
  return profile;
}

MeasurementSample timed(SampleFamily family, double seconds, moesim::Rng& rng, double noise) {
  MeasurementSample sample;
  sample.family = family;
  sample.median_seconds = seconds * std::exp(noise * rng.normal());
  sample.min_seconds = sample.max_seconds = sample.median_seconds;
  sample.repetitions = sample.calls_per_repetition = 1;
  return sample;
}

std::vector<std::int32_t> zipf_loads(int assignments, int experts, double exponent) {
  std::vector<double> weight(experts);
  double total = 0;
  for (int e = 0; e < experts; ++e)
    total += weight[e] = 1.0 / std::pow(e + 1.0, exponent);
  std::vector<std::int32_t> loads(experts);
  int given = 0;
  for (int e = 0; e < experts; ++e)
    given += loads[e] = static_cast<int>(assignments * weight[e] / total);
  for (int e = 0; given < assignments; e = (e + 1) % experts, ++given)
    ++loads[e];
  return loads;
}

Measurements synthetic(double noise) {
  const CalibrationProfile profile = truth();
  const moesim::CostModel model(moesim::spec_from_profile(profile), profile);
  moesim::Rng rng(42);
  Measurements measurements;
  measurements.source = "synthetic.json";
  measurements.device.name = "synthetic";
  measurements.samples.push_back(timed(SampleFamily::launch, 4e-6, rng, 0.0));
  measurements.samples.back().kind = "kernel";
  measurements.samples.push_back(timed(SampleFamily::launch, 9e-6, rng, 0.0));
  measurements.samples.back().kind = "sync";
  for (double bytes = 1 << 18; bytes <= 4e9; bytes *= 2) {
    auto sample = timed(SampleFamily::memory, model.memory_seconds(bytes), rng, noise);
    sample.kind = "read";
    sample.bytes_read = bytes;
    measurements.samples.push_back(sample);
  }
  const double shapes[][2] = {{4096, 7168}, {7168, 2048}, {28672, 4096}, {1536, 2048}, {8192, 8192}};
  for (const auto& shape : shapes) {
    for (double m : {1, 4, 16, 64, 128, 256, 512, 1024, 4096, 16384}) {
      auto sample =
          timed(SampleFamily::gemm, model.gemm_seconds(m, shape[0], shape[1], Precision::bf16), rng, noise);
      sample.m = m;
      sample.n = shape[0];
      sample.k = shape[1];
      measurements.samples.push_back(sample);
    }
  }
  for (int assignments : {8, 1024}) {
    auto sample = timed(SampleFamily::grouped_gemm, 0, rng, 0);
    sample.hidden = 2048;
    sample.ffn = 768;
    sample.tokens_per_expert = zipf_loads(assignments, 64, 1.0);
    double seconds = 0;
    for (auto tokens : sample.tokens_per_expert)
      seconds += model.expert_gemms_seconds(tokens, 2048, 768, Precision::bf16);
    sample.median_seconds = sample.min_seconds = sample.max_seconds =
        seconds * std::exp(noise * rng.normal());
    measurements.samples.push_back(sample);
  }
  for (double sequences : {1, 4, 16, 64, 256}) {
    for (double context : {1024, 8192}) {
      const double kv_bytes = sequences * context * 8 * 128 * 4, flops = sequences * context * 64 * 128 * 4;
      auto sample = timed(SampleFamily::attention_decode,
                          model.attention_decode_seconds(sequences, kv_bytes, flops), rng, noise);
      sample.sequences = sequences;
      sample.kv_bytes = kv_bytes;
      sample.flops = flops;
      measurements.samples.push_back(sample);
    }
  }
  for (double length : {512, 1024, 2048, 4096, 8192}) {
    const double flops = 4 * 32 * length * length * 128, bytes = 4 * 32 * length * length * 2;
    auto sample =
        timed(SampleFamily::attention_prefill, model.attention_prefill_seconds(flops, bytes), rng, noise);
    sample.flops = flops;
    sample.bytes = bytes;
    measurements.samples.push_back(sample);
  }
  for (double skew : {0.0, 1.0}) {
    for (double tokens : {1, 64, 4096}) {
      MeasurementSample layer;
      layer.family = SampleFamily::moe_layer;
      layer.label = "layer";
      layer.tokens = tokens;
      layer.hidden = 4096;
      layer.ffn = 1536;
      layer.experts = 128;
      layer.top_k = 8;
      layer.tokens_per_expert = zipf_loads(static_cast<int>(tokens * 8), 128, skew);
      layer.median_seconds = moesim::predict_moe_layer(model, layer, true) * std::exp(noise * rng.normal());
      layer.min_seconds = layer.max_seconds = layer.median_seconds;
      measurements.samples.push_back(layer);
    }
  }
  return measurements;
}

}  // namespace

TEST_CASE("least squares recovers an exponential decay exactly", "[calibration][fit]") {
  const std::vector<double> x = {0, 1, 2, 3, 4, 5};
  auto residuals = [&](const Eigen::VectorXd& theta, Eigen::VectorXd& out) {
    for (std::size_t i = 0; i < x.size(); ++i)
      out[i] = theta[0] * std::exp(-theta[1] * x[i]) - 3.0 * std::exp(-0.7 * x[i]);
  };
  const Eigen::VectorXd theta = moesim::least_squares(residuals, Eigen::Vector2d(1.0, 0.1), 6);
  CHECK(theta[0] == Approx(3.0).epsilon(1e-6));
  CHECK(theta[1] == Approx(0.7).epsilon(1e-6));
}

TEST_CASE("the fit recovers known parameters from noiseless synthetic measurements", "[calibration][fit]") {
  const CalibrationProfile fitted = moesim::fit_profile(synthetic(0.0), "now");
  const CalibrationProfile expected = truth();
  CHECK(fitted.memory->bandwidth == Approx(expected.memory->bandwidth).epsilon(1e-3));
  CHECK(fitted.memory->fixed_seconds == Approx(expected.memory->fixed_seconds).epsilon(1e-3));
  CHECK(fitted.memory->sharpness == Approx(expected.memory->sharpness).epsilon(1e-2));
  CHECK(fitted.gemm[0]->flops == Approx(expected.gemm[0]->flops).epsilon(1e-3));
  CHECK(fitted.gemm[0]->bandwidth == Approx(expected.gemm[0]->bandwidth).epsilon(1e-3));
  CHECK(fitted.gemm[0]->fixed_seconds == Approx(expected.gemm[0]->fixed_seconds).epsilon(1e-3));
  CHECK(fitted.attention_decode->bandwidth == Approx(expected.attention_decode->bandwidth).epsilon(1e-3));
  CHECK(fitted.attention_prefill->flops == Approx(expected.attention_prefill->flops).epsilon(1e-3));
  CHECK(*fitted.launch_seconds == Approx(4e-6));
  CHECK(*fitted.sync_seconds == Approx(5e-6));
  CHECK(fitted.residuals.at("gemm_bf16").max_relative_error < 1e-3);
  CHECK(fitted.residuals.at("memory").max_relative_error < 1e-3);
  CHECK_FALSE(fitted.gemm[1]);
}

TEST_CASE("the fit recovers known parameters through 3 % noise, and the held-out check passes",
          "[calibration][fit]") {
  const Measurements measurements = synthetic(0.03);
  const CalibrationProfile fitted = moesim::fit_profile(measurements, "now");
  const CalibrationProfile expected = truth();
  CHECK(fitted.memory->bandwidth == Approx(expected.memory->bandwidth).epsilon(0.05));
  CHECK(fitted.gemm[0]->flops == Approx(expected.gemm[0]->flops).epsilon(0.05));
  CHECK(fitted.gemm[0]->bandwidth == Approx(expected.gemm[0]->bandwidth).epsilon(0.05));
  CHECK(fitted.gemm[0]->fixed_seconds == Approx(expected.gemm[0]->fixed_seconds).epsilon(0.15));
  CHECK(fitted.attention_decode->bandwidth == Approx(expected.attention_decode->bandwidth).epsilon(0.05));
  CHECK(fitted.attention_prefill->flops == Approx(expected.attention_prefill->flops).epsilon(0.05));
  CHECK(fitted.residuals.at("gemm_bf16").median_relative_error < 0.04);

  const moesim::CheckReport report = moesim::check_profile(fitted, measurements);
  REQUIRE(report.cases.size() == 6);
  CHECK(report.median_abs_error < 0.05);
  CHECK(report.worst_abs_error < 0.12);
  const std::string table = moesim::format_check_report(report);
  CHECK(table.find("6 cases: median |error|") != std::string::npos);
}

TEST_CASE("the fit needs memory or GEMM samples", "[calibration][fit]") {
  Measurements measurements;
  measurements.source = "only-launch.json";
  MeasurementSample launch;
  launch.family = SampleFamily::launch;
  launch.kind = "kernel";
  launch.median_seconds = launch.min_seconds = launch.max_seconds = 4e-6;
  measurements.samples.push_back(launch);
  CHECK_THROWS_WITH(moesim::fit_profile(measurements, "now"), Catch::Matchers::Contains("only-launch.json"));
}

TEST_CASE("the recorded H100 measurements: fit, and the held-out MoE layers meet the target",
          "[calibration][h100]") {
  const std::string folder = MOESIM_TEST_SOURCE_DIR "/cuda_calibration/profiles/";
  const Measurements measurements = moesim::load_measurements(folder + "h100-sxm.measurements.json");
  const CalibrationProfile fitted = moesim::fit_profile(measurements, "now");
  // Fitting is deterministic: the committed profile is what this fit gives.
  const CalibrationProfile recorded = moesim::load_profile(folder + "h100-sxm.json");
  CHECK(fitted.gemm[0]->flops == Approx(recorded.gemm[0]->flops).epsilon(1e-6));
  CHECK(fitted.memory->bandwidth == Approx(recorded.memory->bandwidth).epsilon(1e-6));
  // REFERENCE.md §1: an H100 copies at ~3.0 TB/s and multiplies BF16 at ~798 TFLOP/s.
  CHECK(fitted.memory->bandwidth == Approx(3.0e12).epsilon(0.1));
  CHECK(fitted.gemm[0]->flops == Approx(798e12).epsilon(0.1));
  const moesim::CheckReport report = moesim::check_profile(fitted, measurements);
  CHECK(report.cases.size() == 42);
  CHECK(report.median_abs_error < 0.10);
  CHECK(report.worst_abs_error < 0.25);
}

TEST_CASE("a family with too few samples keeps the cost model's defaults", "[calibration][fit]") {
  const Measurements measurements =
      moesim::load_measurements(MOESIM_TEST_SOURCE_DIR "/tests/data/calibration/measurements_small.json");
  const CalibrationProfile fitted = moesim::fit_profile(measurements, "now");
  CHECK(fitted.memory);
  CHECK(fitted.gemm[0]);
  CHECK_FALSE(fitted.gemm[1]);  // one FP8 sample for five parameters
  CHECK_FALSE(fitted.attention_decode);
  CHECK_FALSE(fitted.attention_prefill);
  CHECK(fitted.residuals.count("gemm_fp8") == 0);
}
