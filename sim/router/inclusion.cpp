#include "sim/router/inclusion.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// Probabilities (0 .. top_k) of how many of the experts in [0, n) except `skipped` have arrived by a
// time at which expert j has arrived with probability arrived[j].
void count_distribution(std::span<const double> arrived, int skipped, std::span<double> counts) {
  std::fill(counts.begin(), counts.end(), 0.0);
  counts[0] = 1.0;
  const auto last = static_cast<int>(counts.size()) - 1;
  for (int j = 0; j < static_cast<int>(arrived.size()); ++j) {
    if (j == skipped) continue;
    const double q = arrived[j];
    for (int i = last; i > 0; --i)
      counts[i] = counts[i] * (1.0 - q) + counts[i - 1] * q;
    counts[0] *= 1.0 - q;
  }
}

}  // namespace

std::vector<double> successive_inclusion_probabilities(std::span<const double> selection, int top_k) {
  const auto experts = static_cast<int>(selection.size());
  const double total = std::accumulate(selection.begin(), selection.end(), 0.0);
  const auto positive = std::count_if(selection.begin(), selection.end(), [](double p) { return p > 0; });
  if (top_k < 1 || positive < top_k || !std::isfinite(total)) {
    throw InternalError("successive_inclusion_probabilities: need top_k >= 1 positive probabilities");
  }
  std::vector<double> p(selection.begin(), selection.end());
  for (double& value : p)
    value /= total;
  const double smallest_positive = *std::min_element(
      p.begin(), p.end(), [](double a, double b) { return (a > 0 ? a : 2.0) < (b > 0 ? b : 2.0); });

  // Trapezoidal rule in y = log t, exponentially convergent for this smooth, fast-decaying integrand.
  // Below t_start every integrand is p_e t to first order and nobody else has arrived to zeroth order,
  // so that piece is 1 - exp(-p_e t_start) with a relative error below t_start.
  constexpr double kStep = 0.04;
  constexpr double kStart = 1e-7;
  std::vector<double> inclusion(experts);
  for (int e = 0; e < experts; ++e)
    inclusion[e] = -std::expm1(-p[e] * kStart);

  std::vector<double> arrived(experts);
  std::vector<double> all(top_k + 1), others(top_k);
  for (double y = std::log(kStart) + kStep / 2;; y += kStep) {
    const double t = std::exp(y);
    for (int e = 0; e < experts; ++e)
      arrived[e] = -std::expm1(-p[e] * t);
    count_distribution(arrived, -1, all);
    for (int e = 0; e < experts; ++e) {
      if (p[e] == 0.0) continue;
      const double q = arrived[e];
      if (q <= 0.5) {
        // Remove expert e from the convolution; stable because q / (1 - q) <= 1.
        others[0] = all[0] / (1.0 - q);
        for (int i = 1; i < top_k; ++i)
          others[i] = (all[i] - q * others[i - 1]) / (1.0 - q);
      } else {
        count_distribution(arrived, e, others);
      }
      const double fewer_than_k = std::accumulate(others.begin(), others.end(), 0.0);
      inclusion[e] += kStep * t * p[e] * (1.0 - q) * fewer_than_k;
    }
    const double at_most_k = std::accumulate(all.begin(), all.end(), 0.0);
    if (at_most_k < 1e-17 || smallest_positive * t > 45.0) break;
  }
  for (double& value : inclusion)
    value = std::clamp(value, 0.0, 1.0);
  return inclusion;
}

std::vector<double> selection_for_inclusion(std::span<const double> inclusion, int top_k, double tolerance) {
  std::vector<double> selection(inclusion.begin(), inclusion.end());
  for (double& value : selection)
    value /= top_k;
  // Multiplicative updates on the odds: successive sampling's inclusion odds grow monotonically with
  // an expert's selection probability, and the odds scale keeps steps useful near pi = 1.
  for (int iteration = 0; iteration < 500; ++iteration) {
    const auto current = successive_inclusion_probabilities(selection, top_k);
    double worst = 0.0;
    for (std::size_t e = 0; e < selection.size(); ++e)
      worst = std::max(worst, std::abs(current[e] - inclusion[e]));
    if (worst <= tolerance) return selection;
    for (std::size_t e = 0; e < selection.size(); ++e) {
      if (inclusion[e] == 0.0) continue;
      const double wanted_odds = inclusion[e] / (1.0 - inclusion[e]);
      const double current_odds = current[e] / std::max(1.0 - current[e], 1e-300);
      // Square root: the full odds step overshoots and oscillates near pi = 1; half a step in the
      // log-odds converges in a few dozen iterations.
      selection[e] *= std::sqrt(wanted_odds / current_odds);
    }
    const double total = std::accumulate(selection.begin(), selection.end(), 0.0);
    for (double& value : selection)
      value /= total;
  }
  return {};
}

}  // namespace moesim
