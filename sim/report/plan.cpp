#include "sim/report/plan.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/config/scenario.hpp"
#include "sim/report/parallel.hpp"
#include "sim/report/report.hpp"
#include "sim/report/sweep.hpp"

namespace moesim {

namespace {

constexpr std::string_view kSloSource = "--slo";
constexpr std::string_view kSloSyntax =
    "expected METRIC_STAT=VALUE with a unit, e.g. ttft_p99=2s or tpot_p99=100ms (METRIC ttft, tpot, e2e or "
    "queue; STAT mean, p50, p90, p99, p999 or max; unit s, ms or us)";

// A finite number that fills `text` exactly; std::nullopt otherwise (also for "nan" and "inf").
std::optional<double> parse_finite(std::string_view text) {
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::string value_text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// The point's --set overrides, after the plan's own.
std::vector<std::string> point_overrides(const PlanSpec& spec, const PlanPoint& point) {
  std::vector<std::string> overrides = spec.overrides;
  for (std::size_t d = 0; d < spec.dimensions.size(); ++d) {
    for (const auto& key : spec.dimensions[d].keys)
      overrides.push_back(key + "=" + point.values[d].dump());
  }
  return overrides;
}

double gpu_price(const PlanSpec& spec, const std::string& gpu_name) {
  if (const auto it = spec.price_per_gpu_hour.find(gpu_name); it != spec.price_per_gpu_hour.end()) {
    return it->second;
  }
  if (const auto it = spec.price_per_gpu_hour.find(""); it != spec.price_per_gpu_hour.end())
    return it->second;
  throw InputError(
      "--price-per-gpu-hour", gpu_name,
      fmt::format("no price for GPU \"{}\": give {}=PRICE or a default PRICE", gpu_name, gpu_name));
}

void check_spec(const PlanSpec& spec) {
  if (spec.dimensions.empty()) throw InputError("--search", "", "expected at least one --search key=values");
  std::set<std::string> keys;
  for (const auto& dimension : spec.dimensions) {
    for (const auto& key : dimension.keys) {
      if (!keys.insert(key).second) {
        throw InputError("--search", key, "the key is searched twice; give each key in one --search only");
      }
    }
  }
  if (spec.slos.empty() && !spec.max_drop_rate) {
    throw InputError("--slo", "", "expected at least one --slo or --max-drop-rate to plan for");
  }
  const auto check_rate = [](std::string_view option, double rate) {
    if (!(rate >= 0 && rate <= 1)) {
      throw InputError(option, fmt::format("{}", rate), "expected a fraction between 0 and 1");
    }
  };
  if (spec.max_drop_rate) check_rate("--max-drop-rate", *spec.max_drop_rate);
  check_rate("--max-incomplete-rate", spec.max_incomplete_rate);
}

std::vector<PlanPoint> expand_points(const PlanSpec& spec) {
  std::size_t count = 1;
  for (const auto& dimension : spec.dimensions) {
    if (count > kMaxPlanPoints / dimension.values.size()) {
      throw InputError("--search", "",
                       fmt::format("the grid has more than {} points; narrow the ranges", kMaxPlanPoints));
    }
    count *= dimension.values.size();
  }
  std::vector<PlanPoint> points(count);
  for (std::size_t index = 0; index < count; ++index) {
    PlanPoint& point = points[index];
    point.index = index;
    point.values.resize(spec.dimensions.size());
    std::size_t rest = index;
    for (std::size_t d = spec.dimensions.size(); d-- > 0;) {
      const std::size_t n = spec.dimensions[d].values.size();
      point.values[d] = spec.dimensions[d].values[rest % n];
      rest /= n;
    }
  }
  return points;
}

// Loads every point's scenario (no simulation): invalid points get their error, the
// others their GPU count and cost.
void check_points(const PlanSpec& spec, std::vector<PlanPoint>& points, std::size_t jobs) {
  run_in_parallel(points.size(), jobs, [&](std::size_t index) {
    PlanPoint& point = points[index];
    try {
      const Scenario scenario = load_scenario(spec.scenario_file, point_overrides(spec, point));
      point.gpus = scenario.deployment.instances * scenario.deployment.layout.gpus();
      // The catalogue name (topologies/gpus/NAME.json) when there is one, as scenarios write it.
      point.gpu_name = scenario.gpu_file.empty() ? scenario.gpu.name : scenario.gpu_file.stem().string();
    } catch (const InputError& error) {
      point.status = PointStatus::invalid;
      point.reason = error.what();
      return;
    }
    // Assumption (moesim's own): a deployment costs the GPUs its instances occupy, not the
    // rest of the cluster, at the price of its GPU per hour.
    point.cost = spec.price_per_gpu_hour.empty() ? point.gpus : point.gpus * gpu_price(spec, point.gpu_name);
  });
  const bool any_valid = std::any_of(points.begin(), points.end(), [](const PlanPoint& point) {
    return point.status != PointStatus::invalid;
  });
  if (!any_valid) {
    throw InputError(fmt::format("no point of the search grid is a valid scenario; point 0 ({}): {}",
                                 describe_plan_point(spec, points[0]), points[0].reason));
  }
}

double report_number(const nlohmann::json& report, const std::string& pointer) {
  const nlohmann::json::json_pointer where(pointer);
  if (!report.contains(where) || !report.at(where).is_number()) {
    throw InternalError("the report has no number at " + pointer);
  }
  return report.at(where).get<double>();
}

// Simulates one point and checks it against the objectives.
void simulate_point(const PlanSpec& spec, PlanPoint& point) {
  const Scenario scenario = load_scenario(spec.scenario_file, point_overrides(spec, point));
  const SimulationResult result = simulate(simulation_inputs(scenario));
  const nlohmann::json report = build_report(scenario, result, SimulatorCost{.reproducible = true});
  if (!spec.report_directory.empty()) {
    write_file_atomically(spec.report_directory / plan_report_name(point.index), render_report(report));
  }
  if (report.at("summary").at("gpus").get<int>() != point.gpus) {
    throw InternalError(fmt::format("point {}: the plan counted {} GPUs, the report {}", point.index,
                                    point.gpus, report.at("summary").at("gpus").dump()));
  }
  point.metrics = headline_metrics(report);
  point.checks.clear();
  const auto& requests = report.at("summary").at("requests");
  // Latency figures of a run that completed nothing are empty histograms (reported as 0): they meet
  // no SLO.
  const bool completed_any = requests.at("completed").get<double>() > 0;
  for (const auto& slo : spec.slos) {
    point.checks.push_back(
        {slo.name,
         completed_any ? report_number(report, slo.pointer) : std::numeric_limits<double>::infinity(),
         slo.limit_s});
  }
  if (spec.max_drop_rate) {
    const double drop_rate = report.at("moe").is_null() ? 0.0 : report_number(report, "/moe/drop_rate");
    point.checks.push_back({"drop_rate", drop_rate, *spec.max_drop_rate});
  }
  const double arrived = requests.at("arrived").get<double>();
  const double incomplete = requests.at("rejected").get<double>() + requests.at("unfinished").get<double>();
  point.checks.push_back(
      {"incomplete_rate", arrived > 0 ? incomplete / arrived : 0.0, spec.max_incomplete_rate});
  const bool met = std::all_of(point.checks.begin(), point.checks.end(),
                               [](const ObjectiveCheck& check) { return check.met(); });
  point.status = met ? PointStatus::passed : PointStatus::failed;
}

// The search state of one combination of the non-bisected dimensions: a bisection
// for the smallest passing candidate in [low, high).
struct Combination {
  std::vector<std::size_t> candidates;  // valid points, ascending in the bisected dimension
  std::size_t low = 0;
  std::size_t high = 0;
  std::optional<std::size_t> known_pass;  // candidate position of the smallest passing point seen
  std::optional<std::size_t> pending;     // candidate position simulated this round
  bool cut = false;                       // high was lowered because the values above cost too much
  bool done = false;
};

class Planner {
 public:
  Planner(const PlanSpec& spec, const PlanOptions& options) : spec_(spec), options_(options) {}

  PlanResult run() {
    check_spec(spec_);
    result_.points = expand_points(spec_);
    for (std::size_t d = 0; d < spec_.dimensions.size(); ++d) {
      if (spec_.dimensions[d].monotone) result_.bisected = d;
    }
    check_points(spec_, result_.points, options_.jobs);
    build_combinations();
    if (spec_.exhaustive) {
      std::vector<std::size_t> all;
      for (const auto& point : result_.points) {
        if (point.status != PointStatus::invalid) all.push_back(point.index);
      }
      simulate_round(all);
      for (auto& combination : combinations_)
        finish_exhaustive(combination);
    } else {
      search();
    }
    fill_frontier();
    choose();
    return std::move(result_);
  }

 private:
  // Points that differ only in the bisected dimension form one combination, in grid order.
  void build_combinations() {
    std::map<std::vector<nlohmann::json>, std::size_t> position;
    for (const auto& point : result_.points) {
      std::vector<nlohmann::json> others = point.values;
      if (result_.bisected) others.erase(others.begin() + static_cast<std::ptrdiff_t>(*result_.bisected));
      const auto [it, inserted] = position.try_emplace(std::move(others), combinations_.size());
      if (inserted) {
        combinations_.emplace_back();
        result_.frontier.emplace_back();
      }
      // Monotone values are sorted ascending, so grid order is ascending order.
      result_.frontier[it->second].points.push_back(point.index);
      if (point.status != PointStatus::invalid) combinations_[it->second].candidates.push_back(point.index);
    }
    for (auto& combination : combinations_) {
      combination.high = combination.candidates.size();
      combination.done = combination.candidates.empty();
    }
  }

  std::optional<double> best_cost() const {
    std::optional<double> best;
    for (const auto& point : result_.points) {
      if (point.status == PointStatus::passed && (!best || point.cost < *best)) best = point.cost;
    }
    return best;
  }

  void search() {
    for (;;) {
      const std::optional<double> best = best_cost();
      std::vector<std::size_t> round;
      for (auto& combination : combinations_) {
        if (combination.done) continue;
        if (best && !spec_.full_frontier) {
          while (combination.high > combination.low &&
                 candidate(combination, combination.high - 1).cost > *best) {
            --combination.high;
            combination.cut = true;
          }
        }
        if (auto next = next_candidate(combination)) round.push_back(*next);
      }
      // Without a bisected dimension every combination is one point: simulate the
      // cheapest first, so that costlier ones can be pruned once one passes.
      if (!result_.bisected && !round.empty()) {
        double cheapest = std::numeric_limits<double>::infinity();
        for (const std::size_t index : round)
          cheapest = std::min(cheapest, result_.points[index].cost);
        std::erase_if(round, [&](std::size_t index) { return result_.points[index].cost > cheapest; });
        for (auto& combination : combinations_) {
          if (combination.pending && std::find(round.begin(), round.end(),
                                               combination.candidates[*combination.pending]) == round.end()) {
            combination.pending.reset();
          }
        }
      }
      if (round.empty()) return;
      simulate_round(round);
      for (auto& combination : combinations_) {
        if (!combination.pending) continue;
        const std::size_t position = *combination.pending;
        combination.pending.reset();
        if (candidate(combination, position).status == PointStatus::passed) {
          combination.high = position;
          combination.known_pass = position;
        } else {
          combination.low = position + 1;
        }
      }
    }
  }

  // The next point the bisection of `combination` needs; marks the combination done
  // when the bisection has converged.
  // Assumption (the user's, declared with --monotone): a point that passes still passes
  // with a larger value of the monotone key, so the smallest passing value is found by
  // bisection. Queueing makes latency fall with capacity, but a simulation is one sample
  // of a random process: `--exhaustive` checks the assumption on a grid.
  std::optional<std::size_t> next_candidate(Combination& combination) {
    if (combination.low >= combination.high) {
      combination.done = true;
      return std::nullopt;
    }
    const std::size_t middle = combination.low + (combination.high - combination.low) / 2;
    combination.pending = middle;
    return combination.candidates[middle];
  }

  void simulate_round(const std::vector<std::size_t>& round) {
    ++result_.rounds;
    const std::size_t number = result_.rounds;
    const std::size_t simulated_before = result_.simulated;
    run_in_parallel(
        round.size(), options_.jobs,
        [&](std::size_t slot) {
          PlanPoint& point = result_.points[round[slot]];
          try {
            simulate_point(spec_, point);
          } catch (const InputError& error) {
            throw InputError(fmt::format("plan point {} ({}): {}", point.index,
                                         describe_plan_point(spec_, point), error.what()));
          }
          point.round = number;
        },
        [&](std::size_t done) {
          if (options_.progress) options_.progress(number, simulated_before + done, done, round.size());
        });
    result_.simulated += round.size();
  }

  void finish_exhaustive(Combination& combination) {
    for (std::size_t position = 0; position < combination.candidates.size(); ++position) {
      if (candidate(combination, position).status == PointStatus::passed) {
        combination.known_pass = position;
        combination.low = position;
        return;
      }
    }
    combination.low = combination.candidates.size();
  }

  void fill_frontier() {
    const std::optional<double> best = best_cost();
    for (std::size_t c = 0; c < combinations_.size(); ++c) {
      const Combination& combination = combinations_[c];
      FrontierEntry& entry = result_.frontier[c];
      if (combination.known_pass) entry.point = combination.candidates[*combination.known_pass];
      if (combination.candidates.empty()) {
        entry.status = FrontierStatus::no_valid_value;
      } else if (combination.known_pass && *combination.known_pass == combination.low) {
        entry.status = FrontierStatus::found;
      } else if (combination.cut) {
        entry.status = FrontierStatus::pruned;
      } else {
        entry.status = FrontierStatus::none_passes;
      }
      for (const std::size_t index : combination.candidates) {
        PlanPoint& point = result_.points[index];
        if (entry.status != FrontierStatus::pruned || point.status != PointStatus::not_needed ||
            point.cost <= *best) {
          continue;
        }
        point.status = PointStatus::pruned;
        point.reason = fmt::format("costs {:g}, more than the best passing point ({:g})", point.cost, *best);
      }
    }
  }

  void choose() {
    for (const auto& point : result_.points) {
      if (point.status != PointStatus::passed) continue;
      if (!result_.chosen || point.cost < result_.points[*result_.chosen].cost) result_.chosen = point.index;
    }
  }

  PlanPoint& candidate(const Combination& combination, std::size_t position) {
    return result_.points[combination.candidates[position]];
  }

  const PlanSpec& spec_;
  const PlanOptions& options_;
  PlanResult result_;
  std::vector<Combination> combinations_;
};

nlohmann::json point_json(const PlanSpec& spec, const PlanPoint& point) {
  nlohmann::json values = nlohmann::json::object();
  for (std::size_t d = 0; d < spec.dimensions.size(); ++d)
    values[spec.dimensions[d].label()] = point.values[d];
  nlohmann::json json = {{"index", point.index}, {"values", values}, {"status", status_name(point.status)}};
  if (!point.reason.empty()) json["reason"] = point.reason;
  if (point.status == PointStatus::invalid) return json;
  json["gpus"] = point.gpus;
  json["gpu"] = point.gpu_name;
  json["cost"] = point.cost;
  if (point.round == 0) return json;
  json["round"] = point.round;
  if (!spec.report_directory.empty()) json["report"] = plan_report_name(point.index);
  nlohmann::json checks = nlohmann::json::array();
  for (const auto& check : point.checks) {
    checks.push_back(
        {{"objective", check.name}, {"value", check.value}, {"limit", check.limit}, {"met", check.met()}});
  }
  json["checks"] = checks;
  json["metrics"] = point.metrics;
  return json;
}

}  // namespace

std::string plan_report_name(std::size_t index) {
  return fmt::format("point-{}.json", index);
}

std::string PlanDimension::label() const {
  std::string text;
  for (const auto& key : keys) {
    if (!text.empty()) text += '+';
    text += key;
  }
  return text;
}

Slo parse_slo(std::string_view option) {
  const auto equals = option.find('=');
  if (equals == std::string_view::npos) throw InputError(kSloSource, option, kSloSyntax);
  const std::string_view name = option.substr(0, equals);
  const auto underscore = name.rfind('_');
  const std::string_view metric = name.substr(0, std::min(underscore, name.size()));
  const std::string_view statistic =
      underscore == std::string_view::npos ? std::string_view() : name.substr(underscore + 1);
  constexpr std::string_view kMetrics[] = {"ttft", "tpot", "e2e", "queue"};
  constexpr std::string_view kStatistics[] = {"mean", "p50", "p90", "p99", "p999", "max"};
  if (std::find(std::begin(kMetrics), std::end(kMetrics), metric) == std::end(kMetrics) ||
      std::find(std::begin(kStatistics), std::end(kStatistics), statistic) == std::end(kStatistics)) {
    throw InputError(kSloSource, option, fmt::format("unknown objective \"{}\": {}", name, kSloSyntax));
  }
  const std::string_view text = option.substr(equals + 1);
  const auto unit_start = text.find_first_not_of("0123456789.+-eE");
  const std::string_view number = text.substr(0, std::min(unit_start, text.size()));
  const std::string_view unit =
      unit_start == std::string_view::npos ? std::string_view() : text.substr(unit_start);
  const double scale = unit == "s" ? 1.0 : unit == "ms" ? 1e-3 : unit == "us" ? 1e-6 : 0.0;
  const auto value = parse_finite(number);
  if (scale == 0 || !value || *value <= 0) {
    throw InputError(
        kSloSource, option,
        fmt::format("expected a positive time with a unit (s, ms or us), e.g. 2s or 100ms, got \"{}\"",
                    text));
  }
  return Slo{.name = std::string(name),
             .pointer = fmt::format("/summary/{}_s/{}", metric, statistic),
             .limit_s = *value * scale};
}

PlanDimension parse_search(std::string_view option) {
  const auto equals = option.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    throw InputError("--search", option, "expected key=v1,v2,..., key=start:stop:step or key1+key2=values");
  }
  PlanDimension dimension;
  const std::string_view keys = option.substr(0, equals);
  const std::string_view values = option.substr(equals);  // with its '='
  std::size_t start = 0;
  for (;;) {
    const auto plus = keys.find('+', start);
    const std::string_view key = keys.substr(start, plus == std::string_view::npos ? plus : plus - start);
    // Reads the values as --vary does, and checks the key's shape.
    SweepAxis axis;
    try {
      axis = parse_vary(std::string(key) + std::string(values));
    } catch (const InputError& error) {
      throw InputError("--search", option, error.what());
    }
    dimension.keys.push_back(axis.key);
    dimension.values = std::move(axis.values);
    if (plus == std::string_view::npos) break;
    start = plus + 1;
  }
  return dimension;
}

void mark_monotone(std::vector<PlanDimension>& dimensions, std::string_view label) {
  const auto it = std::find_if(dimensions.begin(), dimensions.end(), [&](const PlanDimension& dimension) {
    return dimension.label() == label ||
           std::find(dimension.keys.begin(), dimension.keys.end(), label) != dimension.keys.end();
  });
  if (it == dimensions.end()) throw InputError("--monotone", label, "expected a key named by a --search");
  const auto other = std::find_if(dimensions.begin(), dimensions.end(),
                                  [](const PlanDimension& dimension) { return dimension.monotone; });
  if (other != dimensions.end()) {
    throw InputError("--monotone", label,
                     fmt::format("only one dimension is bisected, and {} already is", other->label()));
  }
  for (const auto& value : it->values) {
    if (!value.is_number()) {
      throw InputError(
          "--monotone", label,
          fmt::format("a monotone dimension needs numbers, but it has {}", describe_json(value)));
    }
  }
  std::stable_sort(
      it->values.begin(), it->values.end(),
      [](const nlohmann::json& a, const nlohmann::json& b) { return a.get<double>() < b.get<double>(); });
  for (std::size_t i = 1; i < it->values.size(); ++i) {
    if (it->values[i].get<double>() == it->values[i - 1].get<double>()) {
      throw InputError("--monotone", label,
                       fmt::format("the value {} is listed twice", value_text(it->values[i])));
    }
  }
  it->monotone = true;
}

void add_gpu_price(std::map<std::string, double>& prices, std::string_view option) {
  const auto equals = option.find('=');
  const std::string name(equals == std::string_view::npos ? std::string_view() : option.substr(0, equals));
  const std::string_view text = equals == std::string_view::npos ? option : option.substr(equals + 1);
  const auto price = parse_finite(text);
  if (!price || *price <= 0) {
    throw InputError("--price-per-gpu-hour", option,
                     "expected a positive price per GPU-hour, alone or as GPU=PRICE (e.g. 2.5 or h100=2.5)");
  }
  if (!prices.emplace(name, *price).second) {
    throw InputError("--price-per-gpu-hour", option,
                     name.empty() ? std::string("the default price is given twice")
                                  : fmt::format("GPU \"{}\" is priced twice", name));
  }
}

std::string_view status_name(PointStatus status) {
  switch (status) {
    case PointStatus::passed:
      return "passed";
    case PointStatus::failed:
      return "failed";
    case PointStatus::invalid:
      return "invalid";
    case PointStatus::pruned:
      return "pruned";
    case PointStatus::not_needed:
      return "not_needed";
  }
  return "?";
}

std::string_view frontier_status_name(FrontierStatus status) {
  switch (status) {
    case FrontierStatus::found:
      return "found";
    case FrontierStatus::none_passes:
      return "none_passes";
    case FrontierStatus::pruned:
      return "pruned";
    case FrontierStatus::no_valid_value:
      return "no_valid_value";
  }
  return "?";
}

PlanResult run_plan(const PlanSpec& spec, const PlanOptions& options) {
  return Planner(spec, options).run();
}

std::string describe_plan_point(const PlanSpec& spec, const PlanPoint& point) {
  std::string text;
  for (std::size_t d = 0; d < spec.dimensions.size(); ++d) {
    if (d > 0) text += ", ";
    text += spec.dimensions[d].label() + "=" + value_text(point.values[d]);
  }
  return text;
}

nlohmann::json plan_json(const PlanSpec& spec, const PlanResult& result) {
  nlohmann::json dimensions = nlohmann::json::array();
  for (const auto& dimension : spec.dimensions) {
    dimensions.push_back({{"keys", dimension.keys},
                          {"label", dimension.label()},
                          {"values", dimension.values},
                          {"monotone", dimension.monotone}});
  }
  nlohmann::json objectives = nlohmann::json::array();
  for (const auto& slo : spec.slos)
    objectives.push_back({{"name", slo.name}, {"field", slo.pointer}, {"limit", slo.limit_s}});
  if (spec.max_drop_rate) {
    objectives.push_back(
        {{"name", "drop_rate"}, {"field", "/moe/drop_rate"}, {"limit", *spec.max_drop_rate}});
  }
  objectives.push_back({{"name", "incomplete_rate"},
                        {"field", "(rejected + unfinished) / arrived"},
                        {"limit", spec.max_incomplete_rate}});
  nlohmann::json prices = nlohmann::json::object();
  for (const auto& [gpu, price] : spec.price_per_gpu_hour)
    prices[gpu.empty() ? "default" : gpu] = price;

  std::size_t counts[kPointStatusCount] = {};
  nlohmann::json points = nlohmann::json::array();
  for (const auto& point : result.points) {
    ++counts[static_cast<std::size_t>(point.status)];
    points.push_back(point_json(spec, point));
  }
  nlohmann::json status_counts = nlohmann::json::object();
  for (std::size_t s = 0; s < kPointStatusCount; ++s)
    status_counts[std::string(status_name(static_cast<PointStatus>(s)))] = counts[s];

  nlohmann::json frontier = nlohmann::json::array();
  for (const auto& entry : result.frontier) {
    nlohmann::json values = nlohmann::json::object();
    const PlanPoint& first = result.points[entry.points.front()];
    for (std::size_t d = 0; d < spec.dimensions.size(); ++d) {
      if (d != result.bisected) values[spec.dimensions[d].label()] = first.values[d];
    }
    frontier.push_back({{"values", values},
                        {"status", frontier_status_name(entry.status)},
                        {"point", entry.point ? nlohmann::json(*entry.point) : nlohmann::json()}});
  }
  return {{"schema_version", kPlanSchemaVersion},
          {"scenario", spec.scenario_file.string()},
          {"overrides", spec.overrides},
          {"dimensions", dimensions},
          {"bisected",
           result.bisected ? nlohmann::json(spec.dimensions[*result.bisected].label()) : nlohmann::json()},
          {"search", spec.exhaustive ? "exhaustive" : "bisection"},
          {"full_frontier", spec.full_frontier},
          {"objectives", objectives},
          {"objective", spec.price_per_gpu_hour.empty() ? "gpus" : "cost_per_hour"},
          {"price_per_gpu_hour", prices},
          {"rounds", result.rounds},
          {"simulated", result.simulated},
          {"points_in_grid", result.points.size()},
          {"status_counts", status_counts},
          {"chosen", result.chosen ? point_json(spec, result.points[*result.chosen]) : nlohmann::json()},
          {"frontier", frontier},
          {"points", points}};
}

}  // namespace moesim
