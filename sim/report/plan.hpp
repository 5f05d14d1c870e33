#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

// Planning: the cheapest deployment of a scenario that meets service-level
// objectives on its workload. The search space is the cross product of named
// dimensions (any scenario keys); the dimension declared monotone ("more of it never
// makes the SLO metrics worse", e.g. instances) is bisected per combination of the
// others instead of enumerated, and combinations that can only cost more than the
// best deployment found so far are dropped. Without a monotone dimension the points
// are simulated cheapest first.
//
// The search runs in rounds: every active combination proposes its next point, the
// round's points are simulated in parallel, then the bounds move. What a round holds
// depends only on earlier rounds, so the plan is the same whatever the job count.
namespace moesim {

inline constexpr int kPlanSchemaVersion = 1;
// Each grid point is checked by loading its scenario; larger grids are a typo.
inline constexpr std::size_t kMaxPlanPoints = 10'000;

// One latency objective: a statistic of the report at most `limit_s`.
struct Slo {
  std::string name;     // e.g. "ttft_p99"
  std::string pointer;  // the report field, e.g. "/summary/ttft_s/p99"
  double limit_s = 0;
};

// Parses "METRIC_STAT=VALUE UNIT" such as "ttft_p99=2s" or "tpot_p99=100ms":
// METRIC ttft|tpot|e2e|queue, STAT mean|p50|p90|p99|p999|max, UNIT s|ms|us; the limit
// must be positive and finite. Errors name the option and what was expected.
Slo parse_slo(std::string_view option);

// One searched dimension: one or more scenario keys that take the same value at each
// point ("a+b=..." sets both, e.g. attention_dp and expert_ep together).
struct PlanDimension {
  std::vector<std::string> keys;
  std::vector<nlohmann::json> values;  // ascending numbers once marked monotone
  bool monotone = false;

  std::string label() const;  // the keys joined with '+'
};

// Parses "key=values" or "key1+key2=values"; values as for sweep --vary
// (v1,v2,... or start:stop:step). Errors name the option.
PlanDimension parse_search(std::string_view option);

// Marks the dimension whose label (or one of whose keys) is `label` monotone and sorts
// its values; its values must be distinct numbers, and only one dimension may be
// monotone. Errors name the option.
void mark_monotone(std::vector<PlanDimension>& dimensions, std::string_view label);

// Parses "--price-per-gpu-hour" values: "PRICE" (every GPU) or "GPU=PRICE" (GPUs of
// that catalogue name, topologies/gpus/GPU.json); prices positive and finite. "" keys the default.
void add_gpu_price(std::map<std::string, double>& prices, std::string_view option);

struct PlanSpec {
  std::filesystem::path scenario_file;
  std::vector<std::string> overrides;  // applied to every point before its values
  std::vector<PlanDimension> dimensions;
  std::vector<Slo> slos;
  std::optional<double> max_drop_rate;
  // Requests rejected or unfinished, over those that arrived.
  double max_incomplete_rate = 0;
  // Price per GPU-hour by GPU name ("" for any other GPU). Empty: the objective is the GPU count.
  std::map<std::string, double> price_per_gpu_hour;
  // Simulate every valid point (brute force) instead of bisecting and pruning.
  bool exhaustive = false;
  // Keep searching combinations that can only cost more than the best point found,
  // so the frontier is complete.
  bool full_frontier = false;
  // When set, each simulated point's report is written there as point-<index>.json
  // (wall-clock figures 0, as with run --reproducible).
  std::filesystem::path report_directory;
};

// The report file of a point inside PlanSpec::report_directory.
std::string plan_report_name(std::size_t index);

enum class PointStatus {
  passed,      // simulated, meets every objective
  failed,      // simulated, misses at least one
  invalid,     // the scenario does not load (memory, layout, cluster size): `reason`
  pruned,      // not simulated: its combination could only cost more than the best point
  not_needed,  // not simulated: the bisection did not need it
};
inline constexpr std::size_t kPointStatusCount = 5;
std::string_view status_name(PointStatus status);

// One objective checked against one simulated point.
struct ObjectiveCheck {
  std::string name;  // an SLO name, "drop_rate" or "incomplete_rate"
  double value = 0;
  double limit = 0;
  bool met() const { return value <= limit; }
};

struct PlanPoint {
  std::size_t index = 0;
  std::vector<nlohmann::json> values;  // one per dimension
  PointStatus status = PointStatus::not_needed;
  std::string reason;  // why it is invalid or pruned
  int gpus = 0;
  std::string gpu_name;
  double cost = 0;        // the objective: GPUs, or price per hour
  std::size_t round = 0;  // the round that simulated it (1-based), 0 if none did
  std::vector<ObjectiveCheck> checks;
  nlohmann::json metrics;  // headline metrics of its report (sweep summary columns)
};

enum class FrontierStatus {
  found,          // `point` is the smallest passing value of the bisected dimension
  none_passes,    // no valid value passes
  pruned,         // the search stopped: every remaining value costs more than the best point
  no_valid_value  // no value of the combination loads
};
std::string_view frontier_status_name(FrontierStatus status);

// One combination of the dimensions other than the bisected one.
struct FrontierEntry {
  std::vector<std::size_t> points;  // its grid points, ascending in the bisected dimension
  FrontierStatus status = FrontierStatus::none_passes;
  // found: the smallest passing point; pruned: the smallest passing point seen, if any.
  std::optional<std::size_t> point;
};

struct PlanResult {
  std::vector<PlanPoint> points;        // the whole grid, in cross-product order (last dimension fastest)
  std::optional<std::size_t> bisected;  // the monotone dimension
  std::vector<FrontierEntry> frontier;
  std::optional<std::size_t> chosen;  // cheapest passing point; ties go to the lower index
  std::size_t rounds = 0;
  std::size_t simulated = 0;
};

struct PlanOptions {
  std::size_t jobs = 1;
  // Called on the calling thread about twice a second and after each round.
  std::function<void(std::size_t round, std::size_t simulated, std::size_t round_done,
                     std::size_t round_size)>
      progress;
};

// Runs the search. A grid in which no point loads is an InputError naming the first
// point and its error; so is a simulation that fails (e.g. a bad trace row).
PlanResult run_plan(const PlanSpec& spec, const PlanOptions& options);

// The plan as JSON (documented in README.md, "Planning"); it depends only on the spec
// and the simulations, never on wall time or the job count.
nlohmann::json plan_json(const PlanSpec& spec, const PlanResult& result);

// "key=value, key=value" for a point.
std::string describe_plan_point(const PlanSpec& spec, const PlanPoint& point);

}  // namespace moesim
