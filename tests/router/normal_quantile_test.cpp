#include <catch2/catch.hpp>

#include <cmath>

#include "sim/router/normal_quantile.hpp"

using namespace moesim;

TEST_CASE("normal_quantile inverts Phi in the centre and far tails", "[router][normal]") {
  CHECK(normal_quantile(0.5) == Approx(0.0).margin(1e-15));
  CHECK(normal_quantile(0.975) == Approx(1.959963984540054).epsilon(1e-14));
  CHECK(normal_quantile(0.025) == Approx(-1.959963984540054).epsilon(1e-14));
  CHECK(normal_quantile(1e-10) == Approx(-6.361340902404056).epsilon(1e-12));
  CHECK(normal_quantile(1.0 - 1e-6) == Approx(4.753424308822899).epsilon(1e-9));
}

TEST_CASE("FastNormal has the standard normal's moments and tails", "[router][normal]") {
  Rng rng(5);
  const FastNormal normal;
  constexpr int kDraws = 2'000'000;
  double sum = 0, squares = 0, fourth = 0;
  int beyond_three = 0, beyond_four = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double z = normal(static_cast<std::uint32_t>(rng.next_u64()), rng);
    sum += z;
    squares += z * z;
    fourth += z * z * z * z;
    beyond_three += z > 3.0;
    beyond_four += z < -4.0;
  }
  CHECK(std::abs(sum / kDraws) < 4 * std::sqrt(1.0 / kDraws));
  CHECK(squares / kDraws == Approx(1.0).margin(4 * std::sqrt(2.0 / kDraws)));
  CHECK(fourth / kDraws == Approx(3.0).margin(4 * std::sqrt(96.0 / kDraws)));
  // P(Z > 3) = 1.3499e-3 and P(Z < -4) = 3.167e-5: Poisson counts within 4 standard errors, so the
  // tails beyond the table's last cell (|z| > 3.49) are there.
  CHECK(std::abs(beyond_three - 2699.8) < 4 * std::sqrt(2699.8));
  CHECK(std::abs(beyond_four - 63.34) < 4 * std::sqrt(63.34));
}
