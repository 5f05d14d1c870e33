// Queueing closed forms (DESIGN.md §5.1): one GPU serving one sequence at a time
// is a single-server FIFO queue whose service time is the number of steps a
// request takes times the step time.
#include <cmath>

#include <catch2/catch.hpp>

#include "sim/serving/simulation.hpp"
#include "tests/serving/scenario_fixture.hpp"

using namespace moesim;
using namespace moesim::testing;

namespace {

// Service time of one request alone in the system.
double unloaded_e2e(nlohmann::json workload, const std::string& name) {
  workload["requests"] = 1;
  const Scenario scenario = load_test_scenario(single_gpu_scenario(workload), name);
  const SimulationResult result = simulate(simulation_inputs(scenario));
  REQUIRE(result.completed == 1);
  return result.e2e_s.mean();
}

// P(W_q <= t) of an M/D/1 queue (Erlang's formula, in the Crommelin form).
double md1_waiting_cdf(double t, double lambda, double service) {
  const double rho = lambda * service;
  double sum = 0;
  for (int k = 0; k <= static_cast<int>(std::floor(t / service)); ++k) {
    const double x = lambda * (k * service - t);
    sum += std::pow(x, k) / std::tgamma(k + 1.0) * std::exp(-x);
  }
  return (1 - rho) * sum;
}

// The alternating sum loses precision for t of many service times, so the quantile
// is bracketed by scanning up from 0 (it lies within a few service times at
// moderate load) and then refined by bisection.
double md1_waiting_quantile(double q, double lambda, double service) {
  double low = 0, high = service / 16;
  while (md1_waiting_cdf(high, lambda, service) < q) {
    low = high;
    high += service / 16;
    REQUIRE(high < 30 * service);
  }
  for (int i = 0; i < 60; ++i) {
    const double middle = (low + high) / 2;
    (md1_waiting_cdf(middle, lambda, service) < q ? low : high) = middle;
  }
  return (low + high) / 2;
}

}  // namespace

TEST_CASE("M/D/1: fixed lengths and Poisson arrivals match the closed forms", "[serving][queueing]") {
  const nlohmann::json lengths = {{"input", {{"kind", "fixed"}, {"tokens", 1}}},
                                  {"output", {{"kind", "fixed"}, {"tokens", 10}}}};
  nlohmann::json workload = lengths;
  workload["kind"] = "poisson";
  workload["rate"] = 1.0;
  const double service = unloaded_e2e(workload, "md1_unloaded.json");
  const double rho = 0.6;
  const double lambda = rho / service;
  workload["rate"] = lambda;
  workload["requests"] = 60000;
  const Scenario scenario = load_test_scenario(single_gpu_scenario(workload), "md1.json");
  const SimulationResult result = simulate(simulation_inputs(scenario));
  REQUIRE(result.completed == 60000);

  const double mean_sojourn = service + rho * service / (2 * (1 - rho));
  const double p99_sojourn = service + md1_waiting_quantile(0.99, lambda, service);
  // About three standard errors of 60,000 correlated samples at rho = 0.6.
  CHECK(result.e2e_s.mean() == Approx(mean_sojourn).epsilon(0.03));
  CHECK(result.e2e_s.quantile(0.99) == Approx(p99_sojourn).epsilon(0.05));
}

TEST_CASE("M/M/1: geometric output lengths make exponential service times", "[serving][queueing]") {
  // Each decode step costs the same delta, so a geometric number of steps with a
  // large mean is an exponential service time (CV^2 = 1 - 1/mean = 0.975).
  const double mean_steps = 40;
  nlohmann::json fixed_workload = {{"kind", "poisson"},
                                   {"rate", 1.0},
                                   {"input", {{"kind", "fixed"}, {"tokens", 1}}},
                                   {"output", {{"kind", "fixed"}, {"tokens", 100}}}};
  const double step = unloaded_e2e(fixed_workload, "mm1_unloaded.json") / 100;
  const double service = mean_steps * step;
  const double rho = 0.5;
  const double lambda = rho / service;
  nlohmann::json workload = {{"kind", "poisson"},
                             {"rate", lambda},
                             {"requests", 60000},
                             {"input", {{"kind", "fixed"}, {"tokens", 1}}},
                             {"output", {{"kind", "geometric"}, {"mean", mean_steps}}}};
  const Scenario scenario = load_test_scenario(single_gpu_scenario(workload), "mm1.json");
  const SimulationResult result = simulate(simulation_inputs(scenario));
  REQUIRE(result.completed == 60000);

  const double mu = 1 / service;
  CHECK(result.e2e_s.mean() == Approx(1 / (mu - lambda)).epsilon(0.04));
  CHECK(result.e2e_s.quantile(0.99) == Approx(std::log(100.0) / (mu - lambda)).epsilon(0.06));
}
