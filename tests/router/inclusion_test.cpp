#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <vector>

#include "sim/router/inclusion.hpp"

using namespace moesim;

TEST_CASE("inclusion probabilities match closed forms", "[router][inclusion]") {
  SECTION("top-1 is the selection itself") {
    const std::vector<double> p = {0.5, 0.3, 0.15, 0.05};
    const auto pi = successive_inclusion_probabilities(p, 1);
    for (std::size_t e = 0; e < p.size(); ++e)
      CHECK(pi[e] == Approx(p[e]).margin(1e-10));
  }
  SECTION("top-2: pi_e = p_e (1 + sum_{j != e} p_j / (1 - p_j))") {
    const std::vector<double> p = {0.4, 0.25, 0.2, 0.1, 0.05};
    const auto pi = successive_inclusion_probabilities(p, 2);
    for (std::size_t e = 0; e < p.size(); ++e) {
      double expected = p[e];
      for (std::size_t j = 0; j < p.size(); ++j)
        if (j != e) expected += p[j] * p[e] / (1 - p[j]);
      CHECK(pi[e] == Approx(expected).margin(1e-10));
    }
  }
  SECTION("uniform selection gives top_k / experts") {
    const std::vector<double> p(256, 1.0);
    const auto pi = successive_inclusion_probabilities(p, 8);
    for (const double value : pi)
      CHECK(value == Approx(8.0 / 256).margin(1e-10));
  }
  SECTION("exactly top_k experts with weight are always chosen, the others never") {
    const std::vector<double> p = {0.7, 0.0, 0.3, 0.0};
    const auto pi = successive_inclusion_probabilities(p, 2);
    CHECK(pi[0] == Approx(1.0).margin(1e-9));
    CHECK(pi[1] == 0.0);
    CHECK(pi[2] == Approx(1.0).margin(1e-9));
  }
}

TEST_CASE("inclusion probabilities of skewed selections sum to top_k and stay below 1",
          "[router][inclusion]") {
  for (const double exponent : {0.5, 1.2, 3.0}) {
    std::vector<double> p(64);
    for (int r = 0; r < 64; ++r)
      p[r] = std::pow(r + 1.0, -exponent);
    const auto pi = successive_inclusion_probabilities(p, 8);
    CHECK(std::accumulate(pi.begin(), pi.end(), 0.0) == Approx(8.0).margin(1e-8));
    for (std::size_t e = 1; e < pi.size(); ++e) {
      CHECK(pi[e] <= pi[e - 1]);
      CHECK(pi[e] < 1.0);
    }
  }
}

TEST_CASE("selection_for_inclusion inverts successive sampling", "[router][inclusion]") {
  const std::vector<double> target = {0.97, 0.6, 0.5, 0.3, 0.25, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0};
  const double top_k = std::accumulate(target.begin(), target.end(), 0.0);
  REQUIRE(top_k == Approx(3.0));
  const auto selection = selection_for_inclusion(target, 3);
  REQUIRE(selection.size() == target.size());
  CHECK(std::accumulate(selection.begin(), selection.end(), 0.0) == Approx(1.0));
  CHECK(selection.back() == 0.0);
  const auto round_trip = successive_inclusion_probabilities(selection, 3);
  for (std::size_t e = 0; e < target.size(); ++e)
    CHECK(round_trip[e] == Approx(target[e]).margin(1e-8));
}
