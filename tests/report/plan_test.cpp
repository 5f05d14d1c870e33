#include <algorithm>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/config/scenario.hpp"
#include "sim/report/plan.hpp"
#include "sim/report/report.hpp"

using namespace moesim;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// OLMoE on one 8-GPU node under Poisson arrivals that one GPU cannot keep up with:
// the TTFT tail falls as instances are added. A point takes milliseconds.
fs::path plan_scenario() {
  const auto file = fs::temp_directory_path() / "moesim_plan_tests" / "scenario.json";
  write_file_atomically(file, R"({
    "name": "plan-test", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {"instances": 1, "parallel": {"attention_tp": 1, "attention_dp": 1, "expert_ep": 1},
                   "scheduler": {"max_sequences": 8, "max_batched_tokens": 2048}},
    "workload": {"kind": "poisson", "rate": 60, "requests": 300,
                 "input": {"kind": "uniform", "min": 200, "max": 1200},
                 "output": {"kind": "uniform", "min": 16, "max": 64}},
    "router": {"kind": "zipf", "exponent": 1.0},
    "capacity": {"policy": "drop", "capacity_factor": 1.0},
    "seed": 3,
    "outputs": {"expert_load": false}})");
  return file;
}

const char* const kInstances = "deployment.instances=1:8";
const char* const kLayout = "deployment.parallel.attention_dp+deployment.parallel.expert_ep=1,2,4";

PlanSpec small_plan(const std::vector<std::string>& searches, const std::vector<std::string>& monotone,
                    const std::vector<std::string>& slos) {
  PlanSpec spec;
  spec.scenario_file = plan_scenario();
  for (const auto& option : searches)
    spec.dimensions.push_back(parse_search(option));
  for (const auto& label : monotone)
    mark_monotone(spec.dimensions, label);
  for (const auto& option : slos)
    spec.slos.push_back(parse_slo(option));
  return spec;
}

PlanOptions jobs(std::size_t count) {
  PlanOptions options;
  options.jobs = count;
  return options;
}

// The exhaustive answer, computed without the planner: every point of the grid run
// as `moesim run` would, checked against the limits by reading the report.
struct BruteForcePoint {
  std::vector<nlohmann::json> values;
  bool valid = false;
  bool passes = false;
  int gpus = 0;
};

std::vector<BruteForcePoint> brute_force(const PlanSpec& spec, const std::vector<double>& ttft_p99_limit_s) {
  std::vector<BruteForcePoint> grid(1);
  for (const auto& dimension : spec.dimensions) {
    std::vector<BruteForcePoint> next;
    for (const auto& point : grid) {
      for (const auto& value : dimension.values) {
        BruteForcePoint extended = point;
        extended.values.push_back(value);
        next.push_back(extended);
      }
    }
    grid = std::move(next);
  }
  for (auto& point : grid) {
    std::vector<std::string> overrides;
    for (std::size_t d = 0; d < spec.dimensions.size(); ++d) {
      for (const auto& key : spec.dimensions[d].keys)
        overrides.push_back(key + "=" + point.values[d].dump());
    }
    std::optional<Scenario> scenario;
    try {
      scenario.emplace(load_scenario(spec.scenario_file, overrides));
    } catch (const InputError&) {
      continue;
    }
    point.valid = true;
    const nlohmann::json report =
        build_report(*scenario, simulate(simulation_inputs(*scenario)), SimulatorCost{.reproducible = true});
    point.gpus = report["summary"]["gpus"].get<int>();
    const auto& requests = report["summary"]["requests"];
    point.passes = report["summary"]["ttft_s"]["p99"].get<double>() <= ttft_p99_limit_s[0] &&
                   requests["rejected"] == 0 && requests["unfinished"] == 0;
  }
  return grid;
}

std::optional<std::size_t> cheapest_passing(const std::vector<BruteForcePoint>& grid) {
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < grid.size(); ++i) {
    if (grid[i].passes && (!best || grid[i].gpus < grid[*best].gpus)) best = i;
  }
  return best;
}

std::size_t count_status(const PlanResult& result, PointStatus status) {
  return static_cast<std::size_t>(
      std::count_if(result.points.begin(), result.points.end(),
                    [&](const PlanPoint& point) { return point.status == status; }));
}

}  // namespace

TEST_CASE("SLOs are read with their unit", "[plan]") {
  const Slo ttft = parse_slo("ttft_p99=2s");
  CHECK(ttft.name == "ttft_p99");
  CHECK(ttft.pointer == "/summary/ttft_s/p99");
  CHECK(ttft.limit_s == 2.0);
  CHECK(parse_slo("tpot_p99=100ms").limit_s == Approx(0.1));
  CHECK(parse_slo("e2e_mean=250us").limit_s == Approx(250e-6));
  CHECK(parse_slo("queue_p999=1.5e-1s").pointer == "/summary/queue_s/p999");
}

TEST_CASE("bad SLOs name the option and what was expected", "[plan]") {
  for (const char* bad :
       {"ttft_p99", "ttfb_p99=2s", "ttft_p98=2s", "ttft=2s", "ttft_p99=2", "ttft_p99=2h", "ttft_p99=-1s",
        "ttft_p99=0s", "ttft_p99=nans", "ttft_p99=nan", "ttft_p99=infs", "ttft_p99=1e400s", "ttft_p99=s",
        "ttft_p99=", "=2s", "ttft_p99=2 s", "ttft_p99=1.2.3s"}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_slo(bad), Contains("--slo") && Contains(bad));
  }
  CHECK_THROWS_WITH(parse_slo("ttfb_p99=2s"), Contains("unknown objective"));
  CHECK_THROWS_WITH(parse_slo("ttft_p99=2h"), Contains("unit"));
}

TEST_CASE("search dimensions take --vary values and may join keys", "[plan]") {
  const PlanDimension joined = parse_search(kLayout);
  CHECK(joined.keys ==
        std::vector<std::string>{"deployment.parallel.attention_dp", "deployment.parallel.expert_ep"});
  CHECK(joined.label() == "deployment.parallel.attention_dp+deployment.parallel.expert_ep");
  CHECK(joined.values == std::vector<nlohmann::json>{1, 2, 4});
  CHECK(parse_search("capacity.capacity_factor=1.0:2.0:0.5").values.size() == 3);

  for (const char* bad : {"deployment.instances", "=1,2", "a+=1,2", "a..b=1", "a=1:2:0", "a="}) {
    INFO(bad);
    CHECK_THROWS_WITH(parse_search(bad), Contains("--search"));
  }
}

TEST_CASE("monotone dimensions are sorted numbers without repeats", "[plan]") {
  std::vector<PlanDimension> dimensions = {parse_search("deployment.instances=4,1,2"), parse_search(kLayout)};
  mark_monotone(dimensions, "deployment.instances");
  CHECK(dimensions[0].monotone);
  CHECK(dimensions[0].values == std::vector<nlohmann::json>{1, 2, 4});
  CHECK_THROWS_WITH(mark_monotone(dimensions, "deployment.parallel.expert_ep"),
                    Contains("only one dimension is bisected"));
  std::vector<PlanDimension> joined = {parse_search(kLayout)};
  mark_monotone(joined, "deployment.parallel.expert_ep");  // one key of a joined dimension
  CHECK(joined[0].monotone);

  std::vector<PlanDimension> strings = {parse_search("capacity.policy=drop,dropless")};
  CHECK_THROWS_WITH(mark_monotone(strings, "capacity.policy"), Contains("needs numbers"));
  std::vector<PlanDimension> repeated = {parse_search("deployment.instances=1,2,1")};
  CHECK_THROWS_WITH(mark_monotone(repeated, "deployment.instances"), Contains("listed twice"));
  CHECK_THROWS_WITH(mark_monotone(repeated, "deployment.other"), Contains("--monotone"));
}

TEST_CASE("GPU prices: a default and per GPU name", "[plan]") {
  std::map<std::string, double> prices;
  add_gpu_price(prices, "2.5");
  add_gpu_price(prices, "h100=3");
  CHECK(prices.at("") == 2.5);
  CHECK(prices.at("h100") == 3.0);
  for (const char* bad : {"0", "-1", "nan", "inf", "h100=", "h100=abc", "2.5", "h100=4"}) {
    INFO(bad);
    CHECK_THROWS_WITH(add_gpu_price(prices, bad), Contains("--price-per-gpu-hour"));
  }
}

TEST_CASE("the plan finds the brute-force optimum with fewer simulations", "[plan]") {
  PlanSpec spec = small_plan({kLayout, kInstances}, {"deployment.instances"}, {"ttft_p99=250ms"});
  const auto truth = brute_force(spec, {0.25});
  const auto optimum = cheapest_passing(truth);
  REQUIRE(optimum);
  // The grid must make the search non-trivial: the optimum is not the smallest point, and
  // failures exist above one GPU.
  CHECK(truth[*optimum].gpus > 1);
  // The ground truth is monotone in instances (else bisection could not be checked against it).
  for (std::size_t i = 0; i + 1 < truth.size(); ++i) {
    if (truth[i].values[0] == truth[i + 1].values[0] && truth[i].passes && truth[i + 1].valid) {
      CHECK(truth[i + 1].passes);
    }
  }

  const PlanResult planned = run_plan(spec, jobs(2));
  REQUIRE(planned.chosen);
  CHECK(*planned.chosen == *optimum);
  CHECK(planned.points[*planned.chosen].gpus == truth[*optimum].gpus);
  const std::size_t valid = static_cast<std::size_t>(
      std::count_if(truth.begin(), truth.end(), [](const BruteForcePoint& point) { return point.valid; }));
  CHECK(planned.simulated < valid);
  CHECK(count_status(planned, PointStatus::invalid) == truth.size() - valid);

  // Every simulated verdict agrees with the brute force, and the frontier of each layout
  // is its smallest passing instance count (or the search stopped because it costs more).
  for (const auto& point : planned.points) {
    INFO("point " << point.index);
    if (point.status == PointStatus::passed) CHECK(truth[point.index].passes);
    if (point.status == PointStatus::failed) CHECK_FALSE(truth[point.index].passes);
  }
  for (const auto& entry : planned.frontier) {
    std::optional<std::size_t> smallest;
    for (const std::size_t index : entry.points) {
      if (truth[index].passes) {
        smallest = index;
        break;
      }
    }
    if (entry.status == FrontierStatus::found) {
      CHECK(entry.point == smallest);
    } else if (entry.status == FrontierStatus::none_passes) {
      CHECK_FALSE(smallest);
    } else if (entry.status == FrontierStatus::pruned) {
      REQUIRE(smallest);
      CHECK(truth[*smallest].gpus > truth[*optimum].gpus);
    }
  }

  spec.exhaustive = true;
  const PlanResult exhaustive = run_plan(spec, jobs(2));
  CHECK(exhaustive.chosen == optimum);
  CHECK(exhaustive.simulated == valid);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    CHECK((exhaustive.points[i].status == PointStatus::passed) == truth[i].passes);
  }
}

TEST_CASE("the plan does not depend on the job count", "[plan]") {
  const PlanSpec spec = small_plan({kLayout, kInstances}, {"deployment.instances"}, {"ttft_p99=250ms"});
  CHECK(plan_json(spec, run_plan(spec, jobs(1))).dump() == plan_json(spec, run_plan(spec, jobs(3))).dump());
}

TEST_CASE("without a monotone dimension the cheapest points go first and the rest are pruned", "[plan]") {
  PlanSpec spec = small_plan({"deployment.instances=1,2,3,4,6,8"}, {}, {"ttft_p99=250ms"});
  const auto truth = brute_force(spec, {0.25});
  const auto optimum = cheapest_passing(truth);
  REQUIRE(optimum);
  const PlanResult planned = run_plan(spec, jobs(2));
  CHECK(planned.chosen == optimum);
  // One point per round up to the optimum; everything costlier is pruned unsimulated.
  CHECK(planned.simulated == *optimum + 1);
  for (const auto& point : planned.points) {
    CHECK((point.status == PointStatus::pruned) == (point.index > *optimum));
  }
  spec.full_frontier = true;
  const PlanResult full = run_plan(spec, jobs(2));
  CHECK(full.chosen == optimum);
  CHECK(full.simulated == truth.size());
}

TEST_CASE("the drop-rate objective reads the report's drop rate", "[plan]") {
  PlanSpec spec = small_plan({"capacity.capacity_factor=1.0,8.0"}, {}, {});
  spec.max_drop_rate = 0.01;
  spec.full_frontier = true;
  const PlanResult planned = run_plan(spec, jobs(1));
  REQUIRE(planned.chosen);
  CHECK(*planned.chosen == 1);
  const auto& low = planned.points[0];
  CHECK(low.status == PointStatus::failed);
  REQUIRE(low.checks.size() == 2);
  CHECK(low.checks[0].name == "drop_rate");
  CHECK(low.checks[0].value == low.metrics["drop_rate"].get<double>());
  CHECK_FALSE(low.checks[0].met());
  CHECK(low.checks[1].name == "incomplete_rate");
}

TEST_CASE("the cost objective uses the price of each point's GPU", "[plan]") {
  PlanSpec spec = small_plan({"gpu=h100,a100", kInstances}, {"deployment.instances"}, {"ttft_p99=250ms"});
  add_gpu_price(spec.price_per_gpu_hour, "h100=4");
  add_gpu_price(spec.price_per_gpu_hour, "a100=1");
  const PlanResult planned = run_plan(spec, jobs(2));
  REQUIRE(planned.chosen);
  const PlanPoint& chosen = planned.points[*planned.chosen];
  CHECK(chosen.cost == Approx(chosen.gpus * (chosen.gpu_name == "h100" ? 4.0 : 1.0)));
  for (const auto& point : planned.points) {
    if (point.status == PointStatus::passed) CHECK(point.cost >= chosen.cost);
  }
  const nlohmann::json json = plan_json(spec, planned);
  CHECK(json["objective"] == "cost_per_hour");
  CHECK(json["chosen"]["index"] == *planned.chosen);

  PlanSpec unpriced = spec;
  unpriced.price_per_gpu_hour = {{"h100", 4.0}};
  CHECK_THROWS_WITH(run_plan(unpriced, jobs(1)), Contains("no price for GPU \"a100\""));
}

TEST_CASE("plans with nothing to run or nothing to meet are rejected", "[plan]") {
  const PlanSpec no_valid = small_plan({"deployment.instances=9,10"}, {}, {"ttft_p99=1s"});
  CHECK_THROWS_WITH(
      run_plan(no_valid, jobs(1)),
      Contains("no point of the search grid is a valid scenario") && Contains("deployment.instances"));
  const PlanSpec no_objective = small_plan({kInstances}, {}, {});
  CHECK_THROWS_WITH(run_plan(no_objective, jobs(1)), Contains("--slo"));
  const PlanSpec twice = small_plan({kInstances, "deployment.instances=1,2"}, {}, {"ttft_p99=1s"});
  CHECK_THROWS_WITH(run_plan(twice, jobs(1)), Contains("searched twice"));
  const PlanSpec huge =
      small_plan({"deployment.instances=1:200", "capacity.capacity_factor=1:100"}, {}, {"ttft_p99=1s"});
  CHECK_THROWS_WITH(run_plan(huge, jobs(1)), Contains("more than 10000 points"));
  PlanSpec bad_rate = small_plan({kInstances}, {}, {"ttft_p99=1s"});
  bad_rate.max_drop_rate = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(run_plan(bad_rate, jobs(1)), Contains("--max-drop-rate"));
}
