#include "sim/router/normal_quantile.hpp"

#include <array>
#include <cmath>
#include <numbers>

namespace moesim {

namespace {

constexpr int kCellCount = 4096;

// Phi^-1(i / kCells) for i = 1 .. kCells - 1; the outer entries are unused (tails are drawn exactly).
std::array<double, kCellCount + 1> make_cell_bounds() {
  std::array<double, kCellCount + 1> bounds{};
  for (int i = 1; i < kCellCount; ++i)
    bounds[i] = normal_quantile(static_cast<double>(i) / kCellCount);
  return bounds;
}

}  // namespace

double normal_quantile(double probability) {
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549671010115219e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  const auto tail = [&](double q) {
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  };
  double x;
  if (probability < kLow) {
    x = tail(std::sqrt(-2.0 * std::log(probability)));
  } else if (probability > 1.0 - kLow) {
    x = -tail(std::sqrt(-2.0 * std::log1p(-probability)));
  } else {
    const double q = probability - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  }
  // Halley step; the error of Phi is measured on the side of the smaller tail to keep its precision.
  const double error = x < 0 ? 0.5 * std::erfc(-x / std::numbers::sqrt2) - probability
                             : (1.0 - probability) - 0.5 * std::erfc(x / std::numbers::sqrt2);
  const double step = error * std::sqrt(2.0 * std::numbers::pi) * std::exp(0.5 * x * x);
  return x - step / (1.0 + 0.5 * x * step);
}

FastNormal::FastNormal() {
  static_assert(kCells == kCellCount);
  static const std::array<double, kCells + 1> bounds = make_cell_bounds();
  bounds_ = bounds.data();
}

double FastNormal::tail(bool lower, Rng& rng) {
  // A uniform point of the outer cell, 53 fresh bits deep.
  const double inner = rng.uniform_positive() / kCells;
  return lower ? normal_quantile(inner) : -normal_quantile(inner);
}

}  // namespace moesim
