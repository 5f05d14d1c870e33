#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/common/rng.hpp"

using namespace moesim;

TEST_CASE("streams are reproducible and independent", "[common][rng]") {
  Rng a(1, 2), b(1, 2), c(1, 3);
  int equal_to_other_stream = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto x = a.next_u64();
    CHECK(x == b.next_u64());
    if (x == c.next_u64()) ++equal_to_other_stream;
  }
  CHECK(equal_to_other_stream == 0);
}

TEST_CASE("distribution moments match their closed forms", "[common][rng]") {
  Rng rng(123);
  const int n = 200000;
  double sum_u = 0, sum_e = 0, sum_n = 0, sum_n2 = 0, sum_g = 0, sum_g2 = 0, sum_small_g = 0;
  std::vector<int> buckets(10, 0);
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum_u += u;
    sum_e += rng.exponential(4.0);
    const double z = rng.normal();
    sum_n += z;
    sum_n2 += z * z;
    const double g = rng.gamma(3.0);
    sum_g += g;
    sum_g2 += g * g;
    sum_small_g += rng.gamma(0.4);
    ++buckets[rng.below(10)];
  }
  // Tolerances are about five standard errors of each mean.
  CHECK(sum_u / n == Approx(0.5).margin(5 * std::sqrt(1.0 / 12 / n)));
  CHECK(sum_e / n == Approx(0.25).margin(5 * 0.25 / std::sqrt(n)));
  CHECK(sum_n / n == Approx(0.0).margin(5 / std::sqrt(n)));
  CHECK(sum_n2 / n == Approx(1.0).margin(5 * std::sqrt(2.0 / n)));
  CHECK(sum_g / n == Approx(3.0).margin(5 * std::sqrt(3.0 / n)));
  CHECK(sum_g2 / n - std::pow(sum_g / n, 2) == Approx(3.0).epsilon(0.03));
  CHECK(sum_small_g / n == Approx(0.4).margin(5 * std::sqrt(0.4 / n)));
  for (int count : buckets)
    CHECK(count == Approx(n / 10).margin(5 * std::sqrt(n * 0.09)));
}
