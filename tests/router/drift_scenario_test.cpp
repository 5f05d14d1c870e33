#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

#include "sim/config/scenario.hpp"
#include "sim/serving/simulation.hpp"

using namespace moesim;

namespace {

struct Halves {
  double before = 0, after = 0;
};

// Means of a per-step time-series column over the windows that had steps, before and after `shift_s`.
Halves around_shift(const SimulationResult& result, int column, double shift_s, bool as_drop_rate) {
  const auto& series = result.timeseries;
  Halves halves;
  int before = 0, after = 0;
  for (std::size_t w = 0; w < series.windows(); ++w) {
    const double assignments = series.value(w, kSeriesMoeAssignments);
    if (assignments == 0) continue;
    const double value =
        as_drop_rate ? series.value(w, kSeriesMoeDropped) / assignments : series.value(w, column);
    if (static_cast<double>(w) * ns_to_seconds(series.window()) < shift_s) {
      halves.before += value;
      ++before;
    } else {
      halves.after += value;
      ++after;
    }
  }
  REQUIRE(before > 3);
  REQUIRE(after > 3);
  halves.before /= before;
  halves.after /= after;
  return halves;
}

SimulationResult run(const std::vector<std::string>& overrides) {
  const auto scenario = load_scenario(
      std::filesystem::path(MOESIM_TEST_SOURCE_DIR) / "tools/scenarios/olmoe-two-domain-shift.json",
      overrides);
  return simulate(simulation_inputs(scenario));
}

}  // namespace

TEST_CASE("a shift from OLMoE's c4 to its arxiv routing shows in the time series at the shift",
          "[router][drift][scenario]") {
  // The shipped scenario's first 40 minutes of trace (20 simulated minutes), the shift at 600 s.
  const std::vector<std::string> shorter = {"workload.duration_s=2400",
                                            R"(router.drift.schedule=[{"at_s": 600, "mix": {"arxiv": 1}}])"};
  // arxiv is the more skewed domain (its hottest expert takes 7.2 / 64 of a layer's assignments
  // against 2.7 / 64 for c4, averaged over the recorded layers): with a capacity factor of 1.25 the
  // drop rate more than doubles at the shift.
  const auto dropping = run(shorter);
  const Halves drops = around_shift(dropping, kSeriesMoeDropped, 600, true);
  CAPTURE(drops.before, drops.after);
  CHECK(drops.after > 2 * drops.before);
  // Dropless: the busiest expert's load over the mean rises instead.
  auto dropless = shorter;
  dropless.push_back("capacity.policy=dropless");
  const Halves imbalance = around_shift(run(dropless), kSeriesExpertImbalance, 600, false);
  CAPTURE(imbalance.before, imbalance.after);
  CHECK(imbalance.after > 1.1 * imbalance.before);
  // Without the shift nothing changes: the c4 halves agree.
  auto steady = shorter;
  steady[1] = R"(router.drift.schedule=[])";
  const Halves same = around_shift(run(steady), kSeriesMoeDropped, 600, true);
  CHECK(same.after == Approx(same.before).epsilon(0.1));
}
