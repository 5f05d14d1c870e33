#pragma once

#include <functional>
#include <string>

#include <Eigen/Dense>

#include "sim/calibration/measurements.hpp"
#include "sim/cost/calibration_profile.hpp"

namespace moesim {

// Fits the cost model's parameters (forms in sim/cost/cost_model.hpp) to measurements, family by
// family, minimising the squared log-ratio of predicted to measured median time (so every sample
// weighs by its relative error). Parameters are fitted in log space, so they stay positive:
//   launch:            launch_seconds = median of the "kernel" samples; sync_seconds = median of
//                      the "sync" samples minus launch_seconds
//   memory:            fixed_seconds, bandwidth, sharpness (read, write and copy samples)
//   gemm (per precision): fixed_seconds, flops, m_half, bandwidth, sharpness, on the gemm samples
//                      and the grouped_gemm samples (a sum of per-expert GEMMs) together
//   attention_decode:  fixed_seconds, bandwidth, sequences_half
//   attention_prefill: fixed_seconds, flops
// moe_layer samples are held out (see check.hpp); all_to_all samples are recorded, not fitted.
// A family with no more samples than parameters is left out of the profile (the cost model keeps
// its defaults for it).
// Residuals record, per family, the median and worst |predicted / measured - 1| after the fit.
CalibrationProfile fit_profile(const Measurements& measurements, const std::string& fitted_at);

// Levenberg-Marquardt with a forward-difference Jacobian. `residuals(theta, out)` fills `out`
// (its size is fixed by `residual_count`). Returns the parameters with the smallest sum of squares.
Eigen::VectorXd least_squares(const std::function<void(const Eigen::VectorXd&, Eigen::VectorXd&)>& residuals,
                              Eigen::VectorXd theta, int residual_count);

// The current UTC time as ISO 8601, for fitted_at.
std::string utc_timestamp();

}  // namespace moesim
