#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/calibration/check.hpp"
#include "sim/calibration/fit.hpp"
#include "sim/calibration/measurements.hpp"
#include "sim/common/files.hpp"
#include "sim/common/paths.hpp"
#include "sim/hardware/gpu_spec.hpp"
#include "tools/moesim/commands.hpp"

namespace moesim::cli {

namespace {

struct FitOptions {
  std::string measurements;
  std::string output;
  std::vector<std::string> keep_default;
};

// Parameter blocks a user can leave to the documented defaults, e.g. when the
// suite's own kernel for a family is known to be slower than production kernels.
const std::vector<std::string> kFamilies = {
    "memory", "gemm_bf16", "gemm_fp8", "attention_decode", "attention_prefill", "launch", "sync"};

void keep_default(CalibrationProfile& profile, const std::string& family) {
  if (family == "memory") profile.memory.reset();
  if (family == "gemm_bf16") profile.gemm[static_cast<int>(Precision::bf16)].reset();
  if (family == "gemm_fp8") profile.gemm[static_cast<int>(Precision::fp8)].reset();
  if (family == "attention_decode") profile.attention_decode.reset();
  if (family == "attention_prefill") profile.attention_prefill.reset();
  if (family == "launch") profile.launch_seconds.reset();
  if (family == "sync") profile.sync_seconds.reset();
  profile.residuals.erase(family);
}

struct CheckOptions {
  std::string profile;
  std::string measurements;
  std::string gpu;
};

void run_fit(const FitOptions& options) {
  const Measurements measurements = load_measurements(options.measurements);
  CalibrationProfile profile = fit_profile(measurements, utc_timestamp());
  for (const auto& family : options.keep_default)
    keep_default(profile, family);
  write_file_atomically(options.output, to_json(profile).dump(2) + "\n");
  fmt::print("fitted {} on {} samples of {} -> {}\n", profile.gpu, measurements.samples.size(),
             options.measurements, options.output);
  for (const auto& [family, residual] : profile.residuals) {
    fmt::print("  {:<22} {:>4} samples: median |error| {:5.1f}%, worst {:5.1f}%\n", family, residual.samples,
               residual.median_relative_error * 100.0, residual.max_relative_error * 100.0);
  }
}

void run_check(const CheckOptions& options) {
  const CalibrationProfile profile = load_profile(options.profile);
  const Measurements measurements = load_measurements(options.measurements);
  if (options.gpu.empty()) {
    fmt::print("{}", format_check_report(check_profile(profile, measurements)));
    return;
  }
  const GpuSpec gpu = load_gpu(resolve_catalogue_entry(options.gpu, "topologies/gpus", "."));
  fmt::print("{}", format_check_report(check_profile(profile, measurements, &gpu)));
}

}  // namespace

void add_calibrate_commands(CLI::App& app) {
  CLI::App* calibrate = app.add_subcommand("calibrate", "Fit and check the cost model on GPU measurements");
  calibrate->require_subcommand(1);

  auto fit_options = std::make_shared<FitOptions>();
  CLI::App* fit = calibrate->add_subcommand("fit", "Fit a calibration profile to a measurement file");
  fit->add_option("measurements", fit_options->measurements, "measurements.json from moesim_calibrate_gpu")
      ->required();
  fit->add_option("-o,--output", fit_options->output, "profile file to write")->required();
  fit->add_option("--keep-default", fit_options->keep_default,
                  "leave a parameter block at its documented default (repeatable)")
      ->check(CLI::IsMember(kFamilies));
  fit->callback([fit_options] { run_fit(*fit_options); });

  auto check_options = std::make_shared<CheckOptions>();
  CLI::App* check = calibrate->add_subcommand(
      "check", "Predict the held-out MoE-layer measurements from a profile and report the errors");
  check->add_option("profile", check_options->profile, "profile.json")->required();
  check->add_option("measurements", check_options->measurements, "measurements.json")->required();
  check->add_option("--gpu", check_options->gpu,
                    "start from this GPU's datasheet and the documented defaults (catalogue name or file)");
  check->callback([check_options] { run_check(*check_options); });
}

}  // namespace moesim::cli
