#include <catch2/catch.hpp>

#include <cmath>

#include <fmt/format.h>

#include "sim/workload/closed_loop_source.hpp"
#include "sim/workload/trace_statistics.hpp"
#include "tests/workload/workload_test_support.hpp"

using namespace moesim;
using moesim::test::drain;
using moesim::test::parse_workload_text;

namespace {

struct GapMoments {
  double mean = 0.0;
  double cv = 0.0;
};

GapMoments gap_moments(const std::vector<Request>& requests) {
  double sum = 0.0, sum_squares = 0.0;
  SimTime previous = 0;  // the process starts at 0, so the first gap counts too
  for (const auto& request : requests) {
    const double gap = ns_to_seconds(request.arrival - previous);
    sum += gap;
    sum_squares += gap * gap;
    previous = request.arrival;
  }
  const double count = static_cast<double>(requests.size());
  const double mean = sum / count;
  return {mean, std::sqrt(sum_squares / count - mean * mean) / mean};
}

}  // namespace

TEST_CASE("Poisson arrivals have mean gap 1/rate and CV 1", "[workload][synthetic]") {
  const auto requests = drain(parse_workload_text(
      R"({"kind": "poisson", "rate": 20, "requests": 40000,
          "input": {"kind": "fixed", "tokens": 128}, "output": {"kind": "fixed", "tokens": 16}})"));
  REQUIRE(requests.size() == 40'000);
  const auto moments = gap_moments(requests);
  // Standard errors with n = 40000: mean 0.05 / 200 = 0.00025 s, CV about 1 / 200 = 0.005; 4 sigma bounds.
  CHECK(moments.mean == Approx(0.05).margin(0.001));
  CHECK(moments.cv == Approx(1.0).margin(0.02));
  CHECK(requests.front().arrival > 0);
  CHECK(requests[17].input_tokens == 128);
  CHECK(requests[17].output_tokens == 16);
}

TEST_CASE("Gamma arrivals hit the requested CV", "[workload][synthetic]") {
  for (const double cv : {0.5, 2.0, 4.0}) {
    const auto requests = drain(parse_workload_text(fmt::format(
        R"({{"kind": "gamma", "rate": 10, "cv": {}, "requests": 60000,
            "input": {{"kind": "fixed", "tokens": 1}}, "output": {{"kind": "fixed", "tokens": 1}}}})",
        cv)));
    const auto moments = gap_moments(requests);
    INFO("cv " << cv);
    // Gamma(1/cv^2) has excess kurtosis 6 cv^2, so the sample CV's relative standard error is about
    // sqrt((6 cv^2 + 2) / n) / 2: 2 % at cv 4; the mean's is cv / sqrt(n). Bounds are about 4 sigma.
    CHECK(moments.mean == Approx(0.1).epsilon(0.07));
    CHECK(moments.cv == Approx(cv).epsilon(0.08));
  }
}

TEST_CASE("a duration bounds synthetic arrivals", "[workload][synthetic]") {
  const auto requests = drain(parse_workload_text(
      R"({"kind": "poisson", "rate": 100, "duration_s": 30,
          "input": {"kind": "uniform", "min": 10, "max": 20}, "output": {"kind": "fixed", "tokens": 1}})"));
  CHECK(requests.size() == Approx(3000).margin(4 * std::sqrt(3000.0)));
  CHECK(requests.back().arrival < 30 * kNanosecondsPerSecond);
  int low = 0, high = 0;
  for (const auto& request : requests) {
    REQUIRE(request.input_tokens >= 10);
    REQUIRE(request.input_tokens <= 20);
    low += request.input_tokens == 10;
    high += request.input_tokens == 20;
  }
  CHECK(low > 0);
  CHECK(high > 0);
}

TEST_CASE("lognormal lengths have the requested mean and are clamped", "[workload][synthetic]") {
  const auto requests = drain(parse_workload_text(
      R"({"kind": "poisson", "rate": 1, "requests": 50000,
          "input": {"kind": "lognormal", "mean": 1000, "sigma": 0.5},
          "output": {"kind": "lognormal", "mean": 200, "sigma": 1.0, "min": 5, "max": 300}})"));
  double input_sum = 0.0;
  std::int32_t output_min = 1 << 30, output_max = 0;
  for (const auto& request : requests) {
    input_sum += request.input_tokens;
    output_min = std::min(output_min, request.output_tokens);
    output_max = std::max(output_max, request.output_tokens);
  }
  // sd = mean * sqrt(exp(sigma^2) - 1) = 533; standard error of the mean 2.4 tokens.
  CHECK(input_sum / 50000 == Approx(1000).margin(10));
  CHECK(output_min == 5);
  CHECK(output_max == 300);
}

TEST_CASE("geometric lengths have the requested mean and variance", "[workload][synthetic]") {
  const auto requests = drain(parse_workload_text(
      R"({"kind": "poisson", "rate": 1, "requests": 50000,
          "input": {"kind": "fixed", "tokens": 1},
          "output": {"kind": "geometric", "mean": 40}})"));
  double sum = 0.0, sum_squares = 0.0;
  std::int32_t smallest = 1 << 30;
  for (const auto& request : requests) {
    sum += request.output_tokens;
    sum_squares += static_cast<double>(request.output_tokens) * request.output_tokens;
    smallest = std::min(smallest, request.output_tokens);
  }
  const double mean = sum / 50000;
  // Geometric on 1, 2, ... with p = 1/40: variance (1 - p) / p^2 = 1560; standard error 0.18.
  CHECK(mean == Approx(40).margin(1));
  CHECK(sum_squares / 50000 - mean * mean == Approx(1560).epsilon(0.05));
  CHECK(smallest == 1);
  CHECK_THROWS_WITH(parse_workload_text(R"({"kind": "poisson", "rate": 1, "requests": 1,
      "input": {"kind": "fixed", "tokens": 1}, "output": {"kind": "geometric", "mean": 0.5}})"),
                    Catch::Matchers::Contains("output.mean: expected a mean >= 1"));
}

TEST_CASE("empirical lengths reproduce the trace's distribution", "[workload][synthetic][data]") {
  const auto requests = drain(parse_workload_text(
      R"({"kind": "poisson", "rate": 1, "requests": 30000,
          "input": {"kind": "empirical", "format": "azure",
                    "path": "${MOESIM_DATA}/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv"},
          "output": {"kind": "empirical", "format": "azure",
                     "path": "${MOESIM_DATA}/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv"}})"));
  double input_sum = 0.0, output_sum = 0.0;
  for (const auto& request : requests) {
    input_sum += request.input_tokens;
    output_sum += request.output_tokens;
    REQUIRE(request.input_tokens <= 14'050);
    REQUIRE(request.output_tokens <= 1'000);
  }
  // SOURCE.md: means 1,155 and 211; standard errors about 5 and 1.3 tokens at n = 30000.
  CHECK(input_sum / 30000 == Approx(1155).margin(25));
  CHECK(output_sum / 30000 == Approx(211).margin(6));
}

TEST_CASE("synthetic workloads are deterministic by seed", "[workload][synthetic]") {
  const auto spec = parse_workload_text(
      R"({"kind": "gamma", "rate": 5, "cv": 3, "requests": 500,
          "input": {"kind": "lognormal", "mean": 800, "sigma": 1}, "output": {"kind": "uniform", "min": 1, "max": 99}})");
  const auto first = drain(spec, 42);
  const auto again = drain(spec, 42);
  const auto other = drain(spec, 43);
  REQUIRE(first.size() == again.size());
  bool all_equal = true, any_difference = false;
  for (std::size_t i = 0; i < first.size(); ++i) {
    all_equal = all_equal && first[i].arrival == again[i].arrival &&
                first[i].input_tokens == again[i].input_tokens &&
                first[i].output_tokens == again[i].output_tokens;
    any_difference = any_difference || first[i].arrival != other[i].arrival;
  }
  CHECK(all_equal);
  CHECK(any_difference);
}

TEST_CASE("closed loop: N at t=0, one more per completion, bounded by requests", "[workload][closed_loop]") {
  const auto spec = parse_workload_text(
      R"({"kind": "closed_loop", "concurrency": 3, "input_tokens": 1024, "output_tokens": 256, "requests": 5,
          "traffic_class": 2})");
  const auto source = make_request_source(spec, 1);
  std::vector<Request> taken;
  while (auto request = source->next())
    taken.push_back(*request);
  REQUIRE(taken.size() == 3);
  for (const auto& request : taken) {
    CHECK(request.arrival == 0);
    CHECK(request.input_tokens == 1024);
    CHECK(request.output_tokens == 256);
    CHECK(request.traffic_class == 2);
  }
  CHECK_FALSE(source->exhausted());
  source->on_completion(700);
  source->on_completion(900);
  CHECK(source->exhausted() == false);
  const auto fourth = source->next();
  const auto fifth = source->next();
  REQUIRE(fourth);
  REQUIRE(fifth);
  CHECK(fourth->arrival == 700);
  CHECK(fifth->arrival == 900);
  CHECK(fifth->id == 4);
  CHECK_FALSE(source->next());
  CHECK(source->exhausted());
  source->on_completion(1000);
  CHECK_FALSE(source->next());
}

TEST_CASE("closed loop with fewer requests than sequences releases only the requests",
          "[workload][closed_loop]") {
  const auto requests = drain(parse_workload_text(
      R"({"kind": "closed_loop", "concurrency": 64, "input_tokens": 8, "output_tokens": 8, "requests": 10})"));
  CHECK(requests.size() == 10);
}
