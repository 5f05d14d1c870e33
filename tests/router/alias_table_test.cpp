#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "sim/common/error.hpp"
#include "sim/router/alias_table.hpp"

using namespace moesim;

namespace {

// Frequencies of `draws` draws from a table of `weights`, each within five standard deviations of its
// probability; returns the frequencies.
std::vector<double> check_frequencies(const std::vector<double>& weights, int draws, std::uint64_t seed) {
  const AliasTable table(weights);
  REQUIRE(table.size() == static_cast<int>(weights.size()));
  double total = 0;
  for (const double weight : weights)
    total += weight;
  std::vector<double> frequency(weights.size(), 0.0);
  Rng rng(seed);
  int outside = 0;
  for (int i = 0; i < draws; ++i) {
    const int index = table.sample(rng);
    if (index < 0 || index >= table.size()) {
      ++outside;
      continue;
    }
    frequency[static_cast<std::size_t>(index)] += 1.0 / draws;
  }
  REQUIRE(outside == 0);
  for (std::size_t i = 0; i < weights.size(); ++i) {
    CAPTURE(i);
    const double p = weights[i] / total;
    CHECK(std::abs(frequency[i] - p) <= 5.0 * std::sqrt(p * (1 - p) / draws) + 1e-12);
  }
  return frequency;
}

}  // namespace

TEST_CASE("alias table draws follow the weights", "[router][alias]") {
  SECTION("uneven weights with zeros: a zero weight is never drawn") {
    const auto frequency = check_frequencies({5, 0, 1, 3, 0.5, 0, 8, 2.5}, 400000, 7);
    CHECK(frequency[1] == 0.0);
    CHECK(frequency[5] == 0.0);
  }
  SECTION("equal weights: every bucket keeps its own index") {
    check_frequencies(std::vector<double>(256, 1.0), 512000, 8);
  }
  SECTION("one weight: always its index") {
    const auto frequency = check_frequencies({0, 0, 4, 0}, 10000, 9);
    CHECK(frequency[2] == Approx(1.0));
  }
  SECTION("Zipf over 256 experts, as the per-token router uses it") {
    std::vector<double> weights;
    for (int e = 1; e <= 256; ++e)
      weights.push_back(std::pow(e, -1.0));
    check_frequencies(weights, 1000000, 10);
  }
}

TEST_CASE("alias table rejects weights it cannot draw from", "[router][alias]") {
  CHECK_THROWS_AS(AliasTable(std::vector<double>{0, 0}), InternalError);
  CHECK_THROWS_AS(AliasTable(std::vector<double>{1, -1}), InternalError);
  CHECK_THROWS_AS(AliasTable(std::vector<double>{1, std::nan("")}), InternalError);
  CHECK_THROWS_AS(AliasTable(std::vector<double>{1, INFINITY}), InternalError);
}
