#include "sim/calibration/check.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

double predict_moe_layer(const CostModel& model, const MeasurementSample& layer, bool per_expert_counts) {
  const double tokens = layer.tokens, experts = layer.experts, top_k = layer.top_k, hidden = layer.hidden;
  const double assignments = tokens * top_k;
  double seconds = model.gemm_seconds(tokens, experts, hidden, Precision::bf16);
  seconds += model.memory_seconds(tokens * experts * 2.0 + assignments * 8.0);
  seconds += model.launch_seconds(3) + model.host_sync_seconds();
  seconds += model.memory_seconds(2.0 * assignments * hidden * 2.0);
  if (per_expert_counts) {
    seconds += model.expert_ffn_seconds(layer.tokens_per_expert, hidden, layer.ffn, layer.precision);
  } else {
    const auto active = std::count_if(layer.tokens_per_expert.begin(), layer.tokens_per_expert.end(),
                                      [](std::int32_t count) { return count > 0; });
    seconds += model.expert_ffn_seconds(assignments, static_cast<double>(active), hidden, layer.ffn,
                                        layer.precision);
  }
  seconds += model.memory_seconds(assignments * (hidden * 2.0 + 8.0) + tokens * hidden * 2.0);
  return seconds;
}

GpuSpec spec_from_profile(const CalibrationProfile& profile) {
  if (!profile.memory || !profile.gemm[static_cast<int>(Precision::bf16)]) {
    throw InputError(profile.gpu.empty() ? "profile" : profile.gpu, "parameters",
                     "the check needs the memory and gemm.bf16 blocks");
  }
  GpuSpec gpu;
  gpu.name = profile.gpu;
  gpu.hbm_bandwidth = profile.memory->bandwidth;
  gpu.bf16_flops = profile.gemm[static_cast<int>(Precision::bf16)]->flops;
  if (profile.gemm[static_cast<int>(Precision::fp8)])
    gpu.fp8_flops = profile.gemm[static_cast<int>(Precision::fp8)]->flops;
  if (profile.gemm[static_cast<int>(Precision::fp4)])
    gpu.fp4_flops = profile.gemm[static_cast<int>(Precision::fp4)]->flops;
  gpu.source = "calibration profile";
  return gpu;
}

CheckReport check_profile(const CalibrationProfile& profile, const Measurements& measurements,
                          const GpuSpec* datasheet) {
  const CostModel model(datasheet != nullptr ? *datasheet : spec_from_profile(profile), profile);
  CheckReport report;
  std::vector<double> errors;
  for (const MeasurementSample& sample : measurements.samples) {
    if (sample.family != SampleFamily::moe_layer) continue;
    HeldOutCase row;
    row.label = sample.label;
    row.tokens = sample.tokens;
    row.experts = sample.experts;
    row.top_k = sample.top_k;
    row.hidden = sample.hidden;
    row.ffn = sample.ffn;
    row.skew = sample.skew;
    row.active_experts =
        static_cast<int>(std::count_if(sample.tokens_per_expert.begin(), sample.tokens_per_expert.end(),
                                       [](std::int32_t count) { return count > 0; }));
    row.measured_seconds = sample.median_seconds;
    row.predicted_seconds = predict_moe_layer(model, sample, true);
    row.predicted_even_seconds = predict_moe_layer(model, sample, false);
    row.relative_error = row.predicted_seconds / row.measured_seconds - 1.0;
    errors.push_back(std::fabs(row.relative_error));
    report.cases.push_back(row);
  }
  if (errors.empty())
    throw InputError(measurements.source, "samples", "expected moe_layer samples to check against");
  std::vector<double> sorted = errors;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  report.median_abs_error = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  report.worst_abs_error = sorted.back();
  return report;
}

std::string format_check_report(const CheckReport& report) {
  std::string text =
      fmt::format("{:<40} {:>6} {:>5} {:>6} {:>12} {:>12} {:>8} {:>12}\n", "held-out MoE layer", "skew",
                  "exp", "active", "measured us", "predicted us", "error", "even-split us");
  for (const HeldOutCase& row : report.cases) {
    text += fmt::format("{:<40} {:>6.2f} {:>5} {:>6} {:>12.1f} {:>12.1f} {:>+7.1f}% {:>12.1f}\n", row.label,
                        row.skew, row.experts, row.active_experts, row.measured_seconds * 1e6,
                        row.predicted_seconds * 1e6, row.relative_error * 100.0,
                        row.predicted_even_seconds * 1e6);
  }
  text += fmt::format("{} cases: median |error| {:.1f}%, worst |error| {:.1f}%\n", report.cases.size(),
                      report.median_abs_error * 100.0, report.worst_abs_error * 100.0);
  return text;
}

}  // namespace moesim
