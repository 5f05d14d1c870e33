#pragma once

#include <string>
#include <vector>

#include "sim/calibration/measurements.hpp"
#include "sim/cost/calibration_profile.hpp"
#include "sim/cost/cost_model.hpp"

namespace moesim {

// The held-out check: each measured end-to-end MoE layer (never used by the fit) predicted from
// the profile with the CostModel calls the simulator makes for that layer.
struct HeldOutCase {
  std::string label;
  double tokens = 0, experts = 0, top_k = 0, hidden = 0, ffn = 0, skew = 0;
  int active_experts = 0;
  double measured_seconds = 0;
  double predicted_seconds = 0;       // with each expert's own token count
  double predicted_even_seconds = 0;  // with the tokens spread evenly over the active experts
  double relative_error = 0;          // predicted / measured - 1
};

struct CheckReport {
  std::vector<HeldOutCase> cases;
  double median_abs_error = 0;
  double worst_abs_error = 0;
};

// The layer as moesim_calibrate_gpu runs it: router GEMM, top-k (reads the logits, writes ids and
// weights), three small kernels (count reset, scan, device-to-host copy) and one host sync, the
// permute (reads and writes each assigned row), the expert FFN, the weighted combine (reads the
// assigned rows, writes one row per token).
double predict_moe_layer(const CostModel& model, const MeasurementSample& layer, bool per_expert_counts);

// A GPU spec whose peaks are the profile's achieved rates: the check needs no datasheet, and the
// profile must hold the memory and bf16 GEMM blocks.
GpuSpec spec_from_profile(const CalibrationProfile& profile);

// With `datasheet`, the cost model starts from that GPU's datasheet figures and the documented
// defaults, and the profile's blocks replace them where present (an empty profile checks the
// defaults alone); without it, the profile must hold the memory and bf16 GEMM blocks.
CheckReport check_profile(const CalibrationProfile& profile, const Measurements& measurements,
                          const GpuSpec* datasheet = nullptr);
std::string format_check_report(const CheckReport& report);

}  // namespace moesim
