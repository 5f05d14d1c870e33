#include "sim/router/binomial.hpp"

#include <cmath>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

// log(k!) minus its Stirling approximation (k + 1/2) log(k + 1) - (k + 1) + log(2 pi) / 2.
double stirling_correction(std::int64_t k) {
  static constexpr double kTable[10] = {0.08106146679532726, 0.04134069595540929, 0.02767792568499834,
                                        0.02079067210376509, 0.01664469118982119, 0.01387612882307075,
                                        0.01189670994589177, 0.01041126526197209, 0.009255462182712733,
                                        0.008330563433362871};
  if (k < 10) return kTable[k];
  const double inverse = 1.0 / static_cast<double>(k + 1);
  const double inverse_squared = inverse * inverse;
  return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260) * inverse_squared) * inverse_squared) * inverse;
}

std::int64_t invert(Rng& rng, std::int64_t trials, double log_q, double odds) {
  const double a = static_cast<double>(trials + 1) * odds;
  for (;;) {
    double mass = std::exp(static_cast<double>(trials) * log_q);
    double u = rng.uniform();
    std::int64_t x = 0;
    while (u >= mass) {
      u -= mass;
      ++x;
      // Rounding can leave u above the remaining mass; restart rather than return a value > trials.
      if (x > trials) break;
      mass *= a / static_cast<double>(x) - odds;
    }
    if (x <= trials) return x;
  }
}

std::int64_t btrd(Rng& rng, std::int64_t n, double p, double odds) {
  const double nd = static_cast<double>(n);
  const auto mode = static_cast<std::int64_t>(static_cast<double>(n + 1) * p);
  const double npq = nd * p * (1.0 - p);
  const double sqrt_npq = std::sqrt(npq);
  const double b = 1.15 + 2.53 * sqrt_npq;
  const double a = -0.0873 + 0.0248 * b + 0.01 * p;
  const double c = nd * p + 0.5;
  const double alpha = (2.83 + 5.1 / b) * sqrt_npq;
  const double v_r = 0.92 - 4.2 / b;
  const double u_r_v_r = 0.86 * v_r;
  const double n_r = static_cast<double>(n + 1) * odds;
  for (;;) {
    double v = rng.uniform();
    double u;
    if (v <= u_r_v_r) {
      u = v / v_r - 0.43;
      return static_cast<std::int64_t>(std::floor((2.0 * a / (0.5 - std::abs(u)) + b) * u + c));
    }
    if (v >= v_r) {
      u = rng.uniform() - 0.5;
    } else {
      u = v / v_r - 0.93;
      u = (u < 0 ? -0.5 : 0.5) - u;
      v = rng.uniform() * v_r;
    }
    const double us = 0.5 - std::abs(u);
    const double kd = std::floor((2.0 * a / us + b) * u + c);
    if (kd < 0 || kd > nd) continue;
    const auto k = static_cast<std::int64_t>(kd);
    v = v * alpha / (a / (us * us) + b);
    const auto distance = static_cast<double>(k > mode ? k - mode : mode - k);
    if (distance <= 15) {
      // Recursive evaluation of f(k) / f(mode).
      double f = 1.0;
      if (mode < k) {
        for (std::int64_t i = mode + 1; i <= k; ++i)
          f *= n_r / static_cast<double>(i) - odds;
      } else {
        for (std::int64_t i = k + 1; i <= mode; ++i)
          v *= n_r / static_cast<double>(i) - odds;
      }
      if (v <= f) return k;
      continue;
    }
    v = std::log(v);
    const double rho = (distance / npq) * (((distance / 3.0 + 0.625) * distance + 1.0 / 6) / npq + 0.5);
    const double t = -distance * distance / (2.0 * npq);
    if (v < t - rho) return k;
    if (v > t + rho) continue;
    const double nm = static_cast<double>(n - mode + 1);
    const double h =
        (static_cast<double>(mode) + 0.5) * std::log((static_cast<double>(mode) + 1) / (odds * nm)) +
        stirling_correction(mode) + stirling_correction(n - mode);
    const double nk = static_cast<double>(n - k + 1);
    if (v <= h + (nd + 1) * std::log(nm / nk) + (kd + 0.5) * std::log(nk * odds / (kd + 1)) -
                 stirling_correction(k) - stirling_correction(n - k)) {
      return k;
    }
  }
}

}  // namespace

BinomialChance::BinomialChance(double probability) {
  if (!(probability >= 0.0 && probability <= 1.0)) {
    throw InternalError("BinomialChance: probability outside [0, 1]");
  }
  complement_ = probability > 0.5;
  small_ = complement_ ? 1.0 - probability : probability;
  log_q_ = std::log1p(-small_);
  odds_ = small_ / (1.0 - small_);
}

std::int64_t sample_binomial(Rng& rng, std::int64_t trials, const BinomialChance& chance) {
  if (trials <= 0 || chance.small_ == 0.0) return chance.complement_ ? trials : 0;
  const double p = chance.small_;
  // BTRD's rejection constants are valid for a mode (n + 1) p >= 11 only (Hormann 1993).
  const bool small_mean = static_cast<double>(trials + 1) * p < 11.0;
  const std::int64_t successes =
      small_mean ? invert(rng, trials, chance.log_q_, chance.odds_) : btrd(rng, trials, p, chance.odds_);
  return chance.complement_ ? trials - successes : successes;
}

std::int64_t sample_binomial(Rng& rng, std::int64_t trials, double probability) {
  return sample_binomial(rng, trials, BinomialChance(probability));
}

}  // namespace moesim
