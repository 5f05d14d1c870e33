#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "sim/router/router.hpp"

using namespace moesim;

namespace {

RouterSpec zipf(double exponent) {
  RouterSpec spec;
  spec.kind = PopularityKind::zipf;
  spec.zipf_exponent = exponent;
  return spec;
}

// Capacity ceil(cf * T * k / E), as moe/capacity.hpp defines it.
std::int64_t dropped(std::span<const std::int32_t> counts, std::int64_t capacity) {
  std::int64_t total = 0;
  for (const auto c : counts)
    total += std::max<std::int64_t>(0, c - capacity);
  return total;
}

struct Summary {
  double mean_ratio = 0, mean_drops = 0, drops_variance = 0, ratio_variance = 0;
  std::vector<double> ratios;
  double quantile(double q) const { return ratios[static_cast<std::size_t>(q * (ratios.size() - 1))]; }
};

template <typename Sample>
Summary summarise(Sample&& sample, int calls, int experts, std::int64_t tokens, int top_k,
                  double capacity_factor) {
  Summary summary;
  std::vector<std::int32_t> counts(experts);
  const double mean = double(tokens) * top_k / experts;
  const auto capacity = static_cast<std::int64_t>(std::ceil(capacity_factor * mean));
  std::vector<double> drops;
  for (int i = 0; i < calls; ++i) {
    sample(counts);
    summary.ratios.push_back(*std::max_element(counts.begin(), counts.end()) / mean);
    drops.push_back(static_cast<double>(dropped(counts, capacity)));
  }
  const auto moments = [&](const std::vector<double>& values, double& average, double& variance) {
    average = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
    variance = 0;
    for (const double v : values)
      variance += (v - average) * (v - average);
    variance /= values.size() - 1;
  };
  moments(summary.ratios, summary.mean_ratio, summary.ratio_variance);
  moments(drops, summary.mean_drops, summary.drops_variance);
  std::sort(summary.ratios.begin(), summary.ratios.end());
  return summary;
}

}  // namespace

TEST_CASE("sample_counts keeps its invariants on every path", "[router]") {
  for (const int experts : {8, 64, 256}) {
    for (const double exponent : {0.0, 1.2}) {
      const int top_k = experts == 8 ? 2 : 8;
      auto router = make_router(zipf(exponent), 3, experts, top_k, 11);
      std::vector<std::int32_t> counts(experts);
      for (const std::int64_t tokens : {0, 1, 3, 17, 256, 8192, 100000}) {
        for (int call = 0; call < 50; ++call) {
          router->sample_counts(call % 3, tokens, counts);
          CAPTURE(experts, exponent, tokens);
          REQUIRE(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}) == tokens * top_k);
          REQUIRE(*std::max_element(counts.begin(), counts.end()) <= tokens);
          REQUIRE(*std::min_element(counts.begin(), counts.end()) >= 0);
        }
      }
    }
  }
}

TEST_CASE("a seed fixes the counts; another seed changes them", "[router]") {
  auto first = make_router(zipf(1.0), 4, 256, 8, 5);
  auto second = make_router(zipf(1.0), 4, 256, 8, 5);
  auto other = make_router(zipf(1.0), 4, 256, 8, 6);
  std::vector<std::int32_t> a(256), b(256), c(256);
  bool any_difference = false;
  for (int call = 0; call < 100; ++call) {
    first->sample_counts(call % 4, 512, a);
    second->sample_counts(call % 4, 512, b);
    other->sample_counts(call % 4, 512, c);
    REQUIRE(a == b);
    any_difference = any_difference || a != c;
  }
  CHECK(any_difference);
  for (int layer = 0; layer < 4; ++layer) {
    const auto p = first->selection_probabilities(layer);
    const auto q = other->selection_probabilities(layer);
    CHECK(!std::equal(p.begin(), p.end(), q.begin()));
  }
}

TEST_CASE("zipf popularity has its closed-form shares, a different hot expert per layer", "[router][zipf]") {
  constexpr int kExperts = 64, kTopK = 8;
  auto router = make_router(zipf(1.0), 8, kExperts, kTopK, 3);
  double harmonic = 0;
  for (int r = 1; r <= kExperts; ++r)
    harmonic += 1.0 / r;
  std::vector<int> hottest;
  for (int layer = 0; layer < 8; ++layer) {
    std::vector<double> p(router->selection_probabilities(layer).begin(),
                          router->selection_probabilities(layer).end());
    hottest.push_back(static_cast<int>(std::max_element(p.begin(), p.end()) - p.begin()));
    std::sort(p.rbegin(), p.rend());
    for (int r = 0; r < kExperts; ++r)
      REQUIRE(p[r] == Approx(1.0 / (r + 1) / harmonic).epsilon(1e-12));
    const auto share = router->popularity(layer);
    CHECK(std::accumulate(share.begin(), share.end(), 0.0) == Approx(1.0).epsilon(1e-12));
  }
  std::sort(hottest.begin(), hottest.end());
  CHECK(std::unique(hottest.begin(), hottest.end()) - hottest.begin() >= 6);

  // Sampled shares reproduce the expected shares pi_e / k within 5 standard errors.
  constexpr std::int64_t kTokens = 4096;
  constexpr int kCalls = 400;
  std::vector<double> total(kExperts, 0);
  std::vector<std::int32_t> counts(kExperts);
  for (int call = 0; call < kCalls; ++call) {
    router->sample_counts(2, kTokens, counts);
    for (int e = 0; e < kExperts; ++e)
      total[e] += counts[e];
  }
  const auto pi = router->inclusion_probabilities(2);
  for (int e = 0; e < kExperts; ++e) {
    const double expected = pi[e] * kTokens * kCalls;
    const double standard_error = std::sqrt(kTokens * kCalls * pi[e] * (1 - pi[e]));
    CAPTURE(e, pi[e]);
    CHECK(std::abs(total[e] - expected) < 5 * standard_error + 1e-9);
  }
}

TEST_CASE("the fast sampler matches exact per-token top-k sampling", "[router][fast]") {
  struct Case {
    int experts, top_k;
    double exponent, capacity_factor;
    std::int64_t tokens;
  };
  // Uniform and skewed (the hottest Zipf-1.2 expert of 64 has pi ~ 0.9), each path of sample_counts:
  // per expert with tables (256 experts, 256 tokens; 64 experts, 64 tokens), with Cornish-Fisher
  // draws (1024 tokens; 64 experts, 512 tokens), both (Zipf), and the grouped chain (8 experts).
  const Case cases[] = {{256, 8, 0.0, 1.0, 256}, {256, 8, 1.0, 1.25, 256}, {256, 8, 0.0, 1.0, 1024},
                        {64, 8, 1.2, 2.0, 256},  {64, 8, 0.0, 1.0, 512},   {64, 8, 0.0, 1.0, 64},
                        {8, 2, 0.0, 1.0, 64},    {8, 2, 1.0, 1.5, 64}};
  constexpr int kCalls = 3000;
  for (const auto& c : cases) {
    CAPTURE(c.experts, c.top_k, c.exponent, c.capacity_factor, c.tokens);
    auto router = make_router(zipf(c.exponent), 1, c.experts, c.top_k, 99);
    const auto fast =
        summarise([&](std::span<std::int32_t> counts) { router->sample_counts(0, c.tokens, counts); }, kCalls,
                  c.experts, c.tokens, c.top_k, c.capacity_factor);
    const auto exact = summarise(
        [&](std::span<std::int32_t> counts) { router->sample_counts_per_token(0, c.tokens, counts); }, kCalls,
        c.experts, c.tokens, c.top_k, c.capacity_factor);
    // Plain sampling error: 4 standard errors of the difference of two independent means.
    const double ratio_error = std::sqrt((fast.ratio_variance + exact.ratio_variance) / kCalls);
    CHECK(std::abs(fast.mean_ratio - exact.mean_ratio) < 4 * ratio_error);
    const double drops_error = std::sqrt((fast.drops_variance + exact.drops_variance) / kCalls);
    CHECK(std::abs(fast.mean_drops - exact.mean_drops) < 4 * drops_error + 1e-9);
    // p99: each sample's p99 lies within the other's order-statistic band (+-0.5% in rank: 3 sigma).
    CHECK(fast.quantile(0.99) >= exact.quantile(0.985));
    CHECK(fast.quantile(0.99) <= exact.quantile(0.995));
    CHECK(exact.quantile(0.99) >= fast.quantile(0.985));
    CHECK(exact.quantile(0.99) <= fast.quantile(0.995));
  }
}

TEST_CASE("per-expert counts keep the binomial variance of the exact model", "[router][fast]") {
  // Tables (256 tokens), Cornish-Fisher draws (4096 tokens) and both at once (Zipf).
  for (const double exponent : {0.0, 1.0}) {
    for (const std::int64_t tokens : {256, 4096}) {
      constexpr int kExperts = 256, kCalls = 4000;
      auto router = make_router(zipf(exponent), 1, kExperts, 8, 17);
      std::vector<double> sum(kExperts), sum_squares(kExperts);
      std::vector<std::int32_t> counts(kExperts);
      for (int call = 0; call < kCalls; ++call) {
        router->sample_counts(0, tokens, counts);
        for (int e = 0; e < kExperts; ++e) {
          sum[e] += counts[e];
          sum_squares[e] += double(counts[e]) * counts[e];
        }
      }
      const auto pi = router->inclusion_probabilities(0);
      double ratio = 0;
      for (int e = 0; e < kExperts; ++e) {
        const double mean = sum[e] / kCalls;
        ratio += (sum_squares[e] / kCalls - mean * mean) / (tokens * pi[e] * (1 - pi[e])) / kExperts;
      }
      // The average of 256 nearly independent variance ratios, each with standard error
      // sqrt(2 / kCalls): 4 standard errors are 0.56%.
      CAPTURE(exponent, tokens);
      CHECK(ratio == Approx(1.0).margin(4 * std::sqrt(2.0 / kCalls / kExperts)));
    }
  }
}

TEST_CASE("tables used once per token count draw the same law as tables reused", "[router][fast]") {
  // A different token count on every call keeps the sampler on its cumulative tables (inversion); the
  // same count on every call moves it to alias tables from the second call on. Both must give each
  // expert the mean T pi and the variance T pi (1 - pi) of the exact model. Zipf 1.0 over 256 experts
  // at ~256 tokens: every expert's count is tabulated.
  constexpr int kExperts = 256, kCalls = 4000;
  for (const bool alternate : {true, false}) {
    auto router = make_router(zipf(1.0), 1, kExperts, 8, 23);
    const auto pi = router->inclusion_probabilities(0);
    std::vector<double> deviation(kExperts), squares(kExperts);
    std::vector<std::int32_t> counts(kExperts);
    for (int call = 0; call < kCalls; ++call) {
      const std::int64_t tokens = alternate ? 256 + call % 2 : 256;
      router->sample_counts(0, tokens, counts);
      for (int e = 0; e < kExperts; ++e) {
        const double off = counts[e] - tokens * pi[e];
        deviation[e] += off;
        squares[e] += off * off / (tokens * pi[e] * (1 - pi[e]));
      }
    }
    double variance_ratio = 0, worst_mean = 0;
    for (int e = 0; e < kExperts; ++e) {
      variance_ratio += squares[e] / kCalls / kExperts;
      // The mean's deviation in standard errors of the mean.
      worst_mean = std::max(worst_mean,
                            std::abs(deviation[e] / kCalls) / std::sqrt(256 * pi[e] * (1 - pi[e]) / kCalls));
    }
    CAPTURE(alternate);
    CHECK(variance_ratio == Approx(1.0).margin(4 * std::sqrt(2.0 / kCalls / kExperts)));
    // The largest of 256 deviations of a standard normal stays below 4.5 (probability ~0.1 %).
    CHECK(worst_mean < 4.5);
  }
}
