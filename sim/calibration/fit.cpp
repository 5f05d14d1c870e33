#include "sim/calibration/fit.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>

#include "sim/common/error.hpp"
#include "sim/cost/cost_model.hpp"

namespace moesim {

namespace {

using Samples = std::vector<const MeasurementSample*>;

Samples select(const Measurements& measurements, SampleFamily family) {
  Samples result;
  for (const MeasurementSample& sample : measurements.samples)
    if (sample.family == family) result.push_back(&sample);
  return result;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

FitResidual residual_of(const Samples& samples,
                        const std::function<double(const MeasurementSample&)>& predict) {
  std::vector<double> errors;
  for (const MeasurementSample* sample : samples)
    errors.push_back(std::fabs(predict(*sample) / sample->median_seconds - 1.0));
  FitResidual residual;
  residual.samples = static_cast<int>(errors.size());
  residual.median_relative_error = median(errors);
  residual.max_relative_error = *std::max_element(errors.begin(), errors.end());
  return residual;
}

// Fits `predict(theta, sample)` over `samples` from each starting point; keeps the best.
// `weights` (one per sample, or empty for all ones) scale each sample's log-ratio.
Eigen::VectorXd fit_family(
    const Samples& samples,
    const std::function<double(const Eigen::VectorXd&, const MeasurementSample&)>& predict,
    const std::vector<Eigen::VectorXd>& starts, const std::vector<double>& weights = {}) {
  const int count = static_cast<int>(samples.size());
  auto residuals = [&](const Eigen::VectorXd& theta, Eigen::VectorXd& out) {
    for (int i = 0; i < count; ++i) {
      const double weight = weights.empty() ? 1.0 : weights[i];
      out[i] = weight * std::log(predict(theta, *samples[i]) / samples[i]->median_seconds);
    }
  };
  Eigen::VectorXd best;
  double best_cost = std::numeric_limits<double>::infinity();
  Eigen::VectorXd out(count);
  for (const Eigen::VectorXd& start : starts) {
    const Eigen::VectorXd theta = least_squares(residuals, start, count);
    residuals(theta, out);
    const double cost = out.squaredNorm();
    if (cost < best_cost) {
      best_cost = cost;
      best = theta;
    }
  }
  return best;
}

// Sharpness p = 1 + 31 sigmoid(theta) keeps p in [1, 32]: past 32 the smooth maximum is the
// maximum to within 3.5 % (3^(1/32)), and the fit cannot run off to infinity.
constexpr double kMaxSharpness = 32.0;
double sharpness_of(double theta) {
  return 1.0 + (kMaxSharpness - 1.0) / (1.0 + std::exp(-theta));
}
double sharpness_theta(double p) {
  const double fraction = (p - 1.0) / (kMaxSharpness - 1.0);
  return std::log(fraction / (1.0 - fraction));
}

MemoryParameters memory_from(const Eigen::VectorXd& theta) {
  return {std::exp(theta[0]), std::exp(theta[1]), sharpness_of(theta[2])};
}

GemmParameters gemm_from(const Eigen::VectorXd& theta) {
  return {std::exp(theta[0]), std::exp(theta[1]), std::exp(theta[2]), std::exp(theta[3]),
          sharpness_of(theta[4])};
}

double grouped_seconds(const GemmParameters& gemm, const MeasurementSample& sample) {
  double seconds = 0;
  for (std::int32_t tokens : sample.tokens_per_expert) {
    seconds += roofline_gemm_seconds(gemm, tokens, 2.0 * sample.ffn, sample.hidden, sample.precision) +
               roofline_gemm_seconds(gemm, tokens, sample.hidden, sample.ffn, sample.precision);
  }
  return seconds;
}

double gemm_sample_seconds(const GemmParameters& gemm, const MeasurementSample& sample) {
  if (sample.family == SampleFamily::grouped_gemm) return grouped_seconds(gemm, sample);
  return roofline_gemm_seconds(gemm, sample.m, sample.n, sample.k, sample.precision);
}

}  // namespace

Eigen::VectorXd least_squares(const std::function<void(const Eigen::VectorXd&, Eigen::VectorXd&)>& residuals,
                              Eigen::VectorXd theta, int residual_count) {
  const int n = static_cast<int>(theta.size());
  Eigen::VectorXd r(residual_count), trial_r(residual_count), shifted(residual_count);
  Eigen::MatrixXd jacobian(residual_count, n);
  residuals(theta, r);
  double cost = r.squaredNorm();
  double lambda = 1e-3;
  for (int iteration = 0; iteration < 200 && lambda < 1e12; ++iteration) {
    for (int j = 0; j < n; ++j) {
      const double step = 1e-6 * std::max(1.0, std::fabs(theta[j]));
      Eigen::VectorXd moved = theta;
      moved[j] += step;
      residuals(moved, shifted);
      jacobian.col(j) = (shifted - r) / step;
    }
    const Eigen::MatrixXd normal = jacobian.transpose() * jacobian;
    const Eigen::VectorXd gradient = jacobian.transpose() * r;
    bool improved = false;
    while (lambda < 1e12) {
      Eigen::MatrixXd damped = normal;
      damped.diagonal() += lambda * (normal.diagonal().array() + 1e-12).matrix();
      const Eigen::VectorXd delta = damped.ldlt().solve(-gradient);
      const Eigen::VectorXd trial = theta + delta;
      residuals(trial, trial_r);
      const double trial_cost = trial_r.squaredNorm();
      if (std::isfinite(trial_cost) && trial_cost < cost) {
        const double gain = cost - trial_cost;
        theta = trial;
        r = trial_r;
        cost = trial_cost;
        lambda = std::max(lambda / 3.0, 1e-12);
        improved = true;
        if (gain < 1e-14 * std::max(cost, 1e-30)) return theta;
        break;
      }
      lambda *= 4.0;
    }
    if (!improved) break;
  }
  return theta;
}

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return buffer;
}

CalibrationProfile fit_profile(const Measurements& measurements, const std::string& fitted_at) {
  CalibrationProfile profile;
  profile.gpu = measurements.device.name;
  profile.measurements = measurements.source;
  profile.measured_at = measurements.date;
  profile.fitted_at = fitted_at;

  const Samples launches = select(measurements, SampleFamily::launch);
  std::vector<double> kernel, sync;
  for (const MeasurementSample* sample : launches)
    (sample->kind == "kernel" ? kernel : sync).push_back(sample->median_seconds);
  if (!kernel.empty()) profile.launch_seconds = median(kernel);
  if (!sync.empty())
    profile.sync_seconds = std::max(0.0, median(sync) - profile.launch_seconds.value_or(0.0));

  const Samples memory_samples = select(measurements, SampleFamily::memory);
  if (memory_samples.size() > 3) {
    double fastest = 0, shortest = std::numeric_limits<double>::infinity();
    for (const MeasurementSample* s : memory_samples) {
      fastest = std::max(fastest, (s->bytes_read + s->bytes_written) / s->median_seconds);
      shortest = std::min(shortest, s->median_seconds);
    }
    auto predict = [](const Eigen::VectorXd& theta, const MeasurementSample& s) {
      return roofline_memory_seconds(memory_from(theta), s.bytes_read + s.bytes_written);
    };
    std::vector<Eigen::VectorXd> starts;
    for (double p : {2.0, 4.0, 8.0})
      starts.push_back(Eigen::Vector3d(std::log(shortest), std::log(fastest), sharpness_theta(p)));
    const MemoryParameters memory = memory_from(fit_family(memory_samples, predict, starts));
    profile.memory = memory;
    profile.residuals["memory"] = residual_of(memory_samples, [&](const MeasurementSample& s) {
      return roofline_memory_seconds(memory, s.bytes_read + s.bytes_written);
    });
  }

  for (Precision precision : {Precision::bf16, Precision::fp8, Precision::fp4}) {
    Samples gemm_samples, grouped_samples, both;
    for (const MeasurementSample& sample : measurements.samples) {
      if (sample.precision != precision) continue;
      if (sample.family == SampleFamily::gemm) gemm_samples.push_back(&sample);
      if (sample.family == SampleFamily::grouped_gemm) grouped_samples.push_back(&sample);
    }
    both = gemm_samples;
    both.insert(both.end(), grouped_samples.begin(), grouped_samples.end());
    if (both.size() <= 5 || gemm_samples.empty()) continue;
    double fastest_flops = 0, fastest_bytes = 0, shortest = std::numeric_limits<double>::infinity();
    for (const MeasurementSample* s : gemm_samples) {
      fastest_flops = std::max(fastest_flops, 2.0 * s->m * s->n * s->k / s->median_seconds);
      fastest_bytes = std::max(fastest_bytes, s->n * s->k * precision_bytes(precision) / s->median_seconds);
      shortest = std::min(shortest, s->median_seconds);
    }
    auto predict = [](const Eigen::VectorXd& theta, const MeasurementSample& s) {
      return gemm_sample_seconds(gemm_from(theta), s);
    };
    std::vector<Eigen::VectorXd> starts;
    for (double p : {2.0, 4.0, 8.0}) {
      Eigen::VectorXd start(5);
      start << std::log(0.8 * shortest), std::log(fastest_flops), std::log(64.0), std::log(fastest_bytes),
          sharpness_theta(p);
      starts.push_back(start);
    }
    // The grouped samples (expert loops, the context the GEMM parameters serve in) weigh as much
    // in total as the many single-GEMM samples.
    std::vector<double> weights(gemm_samples.size(), 1.0);
    if (!grouped_samples.empty()) {
      weights.resize(both.size(), std::sqrt(double(gemm_samples.size()) / double(grouped_samples.size())));
    }
    const GemmParameters gemm = gemm_from(fit_family(both, predict, starts, weights));
    profile.gemm[static_cast<int>(precision)] = gemm;
    const std::string name = precision_name(precision);
    profile.residuals["gemm_" + name] =
        residual_of(gemm_samples, [&](const MeasurementSample& s) { return gemm_sample_seconds(gemm, s); });
    if (!grouped_samples.empty()) {
      profile.residuals["grouped_gemm_" + name] = residual_of(
          grouped_samples, [&](const MeasurementSample& s) { return gemm_sample_seconds(gemm, s); });
    }
  }

  const Samples decode_samples = select(measurements, SampleFamily::attention_decode);
  if (decode_samples.size() > 3) {
    const double compute_flops = profile.gemm[0] ? profile.gemm[0]->flops : 1e30;
    auto predict = [&](const Eigen::VectorXd& theta, const MeasurementSample& s) {
      return roofline_attention_decode_seconds({std::exp(theta[0]), std::exp(theta[1]), std::exp(theta[2])},
                                               compute_flops, s.sequences, s.kv_bytes, s.flops);
    };
    double fastest = 0, shortest = std::numeric_limits<double>::infinity();
    for (const MeasurementSample* s : decode_samples) {
      fastest = std::max(fastest, s->kv_bytes / s->median_seconds);
      shortest = std::min(shortest, s->median_seconds);
    }
    std::vector<Eigen::VectorXd> starts;
    for (double half : {0.1, 4.0, 64.0})
      starts.push_back(Eigen::Vector3d(std::log(0.5 * shortest), std::log(fastest), std::log(half)));
    const Eigen::VectorXd theta = fit_family(decode_samples, predict, starts);
    const AttentionDecodeParameters decode{std::exp(theta[0]), std::exp(theta[1]), std::exp(theta[2])};
    profile.attention_decode = decode;
    profile.residuals["attention_decode"] = residual_of(decode_samples, [&](const MeasurementSample& s) {
      return roofline_attention_decode_seconds(decode, compute_flops, s.sequences, s.kv_bytes, s.flops);
    });
  }

  const Samples prefill_samples = select(measurements, SampleFamily::attention_prefill);
  if (prefill_samples.size() > 2) {
    const double bandwidth = profile.memory ? profile.memory->bandwidth : 1e30;
    auto predict = [&](const Eigen::VectorXd& theta, const MeasurementSample& s) {
      return roofline_attention_prefill_seconds({std::exp(theta[0]), std::exp(theta[1])}, bandwidth, s.flops,
                                                s.bytes);
    };
    double fastest = 0, shortest = std::numeric_limits<double>::infinity();
    for (const MeasurementSample* s : prefill_samples) {
      fastest = std::max(fastest, s->flops / s->median_seconds);
      shortest = std::min(shortest, s->median_seconds);
    }
    const Eigen::VectorXd theta =
        fit_family(prefill_samples, predict, {Eigen::Vector2d(std::log(0.5 * shortest), std::log(fastest))});
    const AttentionPrefillParameters prefill{std::exp(theta[0]), std::exp(theta[1])};
    profile.attention_prefill = prefill;
    profile.residuals["attention_prefill"] = residual_of(prefill_samples, [&](const MeasurementSample& s) {
      return roofline_attention_prefill_seconds(prefill, bandwidth, s.flops, s.bytes);
    });
  }
  if (!profile.memory && !profile.gemm[0]) {
    throw InputError(measurements.source, "samples",
                     "expected memory or bf16 gemm samples to fit a profile on");
  }
  return profile;
}

}  // namespace moesim
