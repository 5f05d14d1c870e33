#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "sim/router/binomial.hpp"

using namespace moesim;

namespace {

double binomial_pmf(std::int64_t n, double p, std::int64_t k) {
  return std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) + k * std::log(p) +
                  (n - k) * std::log1p(-p));
}

}  // namespace

TEST_CASE("binomial draws follow the binomial law in both algorithms", "[router][binomial]") {
  // (n, p): inversion, inversion with large n, BTRD, BTRD at p = 1/2, complement of each.
  const std::vector<std::pair<std::int64_t, double>> cases = {
      {20, 0.1}, {100000, 0.00005}, {1000, 0.3}, {5000, 0.5}, {50, 0.9}, {8192, 0.97}, {256, 0.03125}};
  for (const auto& [n, p] : cases) {
    CAPTURE(n, p);
    Rng rng(42, n);
    const BinomialChance chance(p);
    constexpr int kDraws = 200000;
    std::vector<std::int64_t> histogram(n + 1, 0);
    double sum = 0, sum_squares = 0;
    for (int i = 0; i < kDraws; ++i) {
      const std::int64_t x = sample_binomial(rng, n, chance);
      REQUIRE(x >= 0);
      REQUIRE(x <= n);
      ++histogram[x];
      sum += x;
      sum_squares += double(x) * x;
    }
    const double mean = sum / kDraws;
    const double variance = sum_squares / kDraws - mean * mean;
    const double exact_variance = n * p * (1 - p);
    CHECK(std::abs(mean - n * p) < 5 * std::sqrt(exact_variance / kDraws));
    // The sample variance's standard error is about variance * sqrt(2 / draws).
    CHECK(std::abs(variance / exact_variance - 1) < 5 * std::sqrt(2.0 / kDraws));
    // Chi-square over cells with an expected count of at least 20 (and one cell for the rest).
    double chi_square = 0, rest_expected = kDraws, rest_observed = kDraws;
    int cells = 0;
    for (std::int64_t k = 0; k <= n; ++k) {
      const double expected = kDraws * binomial_pmf(n, p, k);
      if (expected < 20) continue;
      chi_square += (histogram[k] - expected) * (histogram[k] - expected) / expected;
      rest_expected -= expected;
      rest_observed -= histogram[k];
      ++cells;
    }
    if (rest_expected > 20) {
      chi_square += (rest_observed - rest_expected) * (rest_observed - rest_expected) / rest_expected;
      ++cells;
    }
    const double freedom = cells - 1;
    CHECK(chi_square < freedom + 5 * std::sqrt(2 * freedom));
  }
}

TEST_CASE("binomial edge cases", "[router][binomial]") {
  Rng rng(1);
  CHECK(sample_binomial(rng, 0, 0.5) == 0);
  CHECK(sample_binomial(rng, 100, 0.0) == 0);
  CHECK(sample_binomial(rng, 100, 1.0) == 100);
  CHECK(sample_binomial(rng, 1'000'000'000, 1.0) == 1'000'000'000);
  CHECK_THROWS(BinomialChance(-0.1));
  CHECK_THROWS(BinomialChance(std::nan("")));
}

TEST_CASE("binomial draws are deterministic for a seed", "[router][binomial]") {
  Rng first(7), second(7);
  for (int i = 0; i < 1000; ++i)
    REQUIRE(sample_binomial(first, 1000 + i, 0.2) == sample_binomial(second, 1000 + i, 0.2));
}
