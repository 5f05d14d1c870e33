#include <algorithm>
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/common/rng.hpp"
#include "sim/metrics/histogram.hpp"
#include "sim/metrics/time_series.hpp"

using namespace moesim;

TEST_CASE("histogram quantiles are within its resolution of the exact sample quantiles", "[metrics]") {
  Rng rng(3);
  Histogram histogram(1e-9);
  std::vector<double> samples;
  for (int i = 0; i < 100000; ++i) {
    const double value = rng.exponential(2.0) + (i % 97 == 0 ? 50.0 : 0.0);
    samples.push_back(value);
    histogram.record(value);
  }
  std::sort(samples.begin(), samples.end());
  for (double q : {0.01, 0.5, 0.9, 0.99, 0.999}) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * samples.size())) - 1;
    CHECK(histogram.quantile(q) == Approx(samples[rank]).epsilon(2.0 / Histogram::kSubBuckets));
  }
  double sum = 0;
  for (double value : samples)
    sum += value;
  CHECK(histogram.mean() == Approx(sum / samples.size()).epsilon(1e-12));
  CHECK(histogram.max() == samples.back());
  CHECK(histogram.count() == samples.size());
}

TEST_CASE("small integers are exact and merging equals recording together", "[metrics]") {
  Histogram a(1.0), b(1.0), both(1.0);
  for (int i = 0; i < 100; ++i) {
    a.record(i);
    both.record(i);
  }
  for (int i = 100; i < 250; ++i) {
    b.record(i);
    both.record(i);
  }
  a.merge(b);
  CHECK(a.quantile(0.5) == both.quantile(0.5));
  CHECK(a.quantile(0.5) == 124.0);
  CHECK(a.quantile(1.0) == 249.0);
  CHECK(a.summary() == both.summary());
  CHECK(Histogram().summary()["p99"] == 0.0);
}

TEST_CASE("time series windows aggregate by sum, mean and max", "[metrics]") {
  TimeSeries series(kNanosecondsPerSecond,
                    {{"count", Aggregation::sum}, {"level", Aggregation::mean}, {"peak", Aggregation::max}});
  series.record(100, 0, 1);
  series.record(900'000'000, 0, 2);
  series.record(100, 1, 4);
  series.record(200, 1, 8);
  series.record(2'500'000'000, 2, 7);
  series.record(2'600'000'000, 2, 3);
  series.extend_to(4'000'000'000);
  CHECK(series.windows() == 5);
  CHECK(series.value(0, 0) == 3);
  CHECK(series.value(0, 1) == 6);
  CHECK(series.value(1, 1) == 0);
  CHECK(series.value(2, 2) == 7);
  const auto json = series.to_json();
  CHECK(json["start_s"][4] == 4.0);
  CHECK(json["count"].size() == 5);
}
