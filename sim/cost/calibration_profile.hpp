#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

enum class Precision { bf16, fp8, fp4 };
inline constexpr int kPrecisionCount = 3;
const char* precision_name(Precision precision);
// Bytes of one weight element; activations are BF16 in every precision.
double precision_bytes(Precision precision);

// The functional forms these parameters belong to are documented in cost_model.hpp.
// Rates are absolute (B/s, FLOP/s) so a profile stands on its own; the cost model reports them
// as fractions of the GPU's datasheet figures.
struct MemoryParameters {
  double fixed_seconds = 0;  // per kernel: launch and ramp-up
  double bandwidth = 0;      // achieved B/s, bytes read plus bytes written
  double sharpness = 0;      // p of the smooth maximum, >= 1
};

struct GemmParameters {
  double fixed_seconds = 0;  // per GEMM call
  double flops = 0;          // achieved FLOP/s of a large GEMM
  double m_half = 0;         // tokens at which the compute efficiency is half of its maximum
  double bandwidth = 0;      // achieved B/s streaming weights and activations
  double sharpness = 0;      // p of the smooth maximum, >= 1
};

struct AttentionDecodeParameters {
  double fixed_seconds = 0;
  double bandwidth = 0;       // achieved B/s reading the KV cache, many sequences
  double sequences_half = 0;  // sequences at which the kernel reaches half that bandwidth
};

struct AttentionPrefillParameters {
  double fixed_seconds = 0;
  double flops = 0;  // achieved FLOP/s
};

// Median and worst |predicted / measured - 1| of one benchmark family.
struct FitResidual {
  int samples = 0;
  double median_relative_error = 0;
  double max_relative_error = 0;
};

// What `moesim calibrate fit` produces from one measurement file. Every parameter block is
// optional: a missing one keeps the cost model's default.
struct CalibrationProfile {
  std::string gpu;           // the measured GPU's name
  std::string measurements;  // the measurement file it was fitted on
  std::string measured_at;   // date of the measurements (ISO 8601)
  std::string fitted_at;     // date of the fit (ISO 8601)
  std::optional<MemoryParameters> memory;
  std::optional<GemmParameters> gemm[kPrecisionCount];
  std::optional<AttentionDecodeParameters> attention_decode;
  std::optional<AttentionPrefillParameters> attention_prefill;
  std::optional<double> launch_seconds;
  std::optional<double> sync_seconds;
  std::map<std::string, FitResidual> residuals;  // by benchmark family
};

// Schema (all times in seconds, rates in B/s or FLOP/s):
//   {"format": "moesim-calibration-profile", "version": 1, "gpu": str, "measurements": str,
//    "measured_at": str, "fitted_at": str,
//    "parameters": {"memory": {"fixed_seconds", "bandwidth", "sharpness"},
//                   "gemm": {"bf16"|"fp8"|"fp4": {"fixed_seconds", "flops", "m_half", "bandwidth",
//                   "sharpness"}}, "attention_decode": {"fixed_seconds", "bandwidth", "sequences_half"},
//                   "attention_prefill": {"fixed_seconds", "flops"},
//                   "launch_seconds": num, "sync_seconds": num},   (every member optional)
//    "residuals": {family: {"samples", "median_relative_error", "max_relative_error"}}}
CalibrationProfile parse_profile(const JsonReader& reader);
CalibrationProfile load_profile(const std::filesystem::path& file);
nlohmann::json to_json(const CalibrationProfile& profile);

}  // namespace moesim
