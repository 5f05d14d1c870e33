#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/config/scenario.hpp"
#include "sim/report/chrome_trace.hpp"
#include "sim/serving/simulation.hpp"

using namespace moesim;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  const auto directory = fs::temp_directory_path() / "moesim_chrome_trace_tests" / name;
  fs::remove_all(directory);
  fs::create_directories(directory);
  return directory;
}

// OLMoE on 8 GPUs; with `rebalance`, 8 redundant EPLB slots re-placed every 50 ms.
Scenario small_scenario(const fs::path& directory, bool overlap, bool rebalance = false) {
  const auto file = directory / "scenario.json";
  const std::string placement =
      rebalance ? R"(, "placement": {"kind": "eplb", "rebalance": {"every_s": 0.05, "window_s": 0.05}})" : "";
  write_file_atomically(file, fmt::format(R"({{
    "name": "trace-test", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {{"parallel": {{"attention_dp": 8, "expert_ep": 8, "redundant_experts": {}}},
                   "overlap_micro_batches": {}{}}},
    "workload": {{"kind": "closed_loop", "concurrency": 16, "input_tokens": 512, "output_tokens": 64, "requests": 64}},
    "router": {{"kind": "zipf", "exponent": 1.0}}}})",
                                          rebalance ? 8 : 0, overlap, placement));
  return load_scenario(file);
}

// Records the layers a step cost model reports, to compare with its step times.
class RecordingSink final : public StepTimelineSink {
 public:
  bool begin_step(std::size_t, SimTime) override {
    layer_sum_.push_back(0);
    return true;
  }
  void layer(const LayerTimeline& layer) override { layer_sum_.back() += layer.layer_s; }
  void end_step(SimTime duration, double stall_s) override {
    durations_.push_back(duration);
    stalls_.push_back(stall_s);
  }
  std::vector<double> layer_sum_;
  std::vector<SimTime> durations_;
  std::vector<double> stalls_;
};

struct TraceCheck {
  std::size_t steps = 0;
  std::size_t layer_events = 0;
  std::size_t stall_events = 0;
  // Events that are not complete ("X") events of positive length, outside the window, outside their step.
  std::size_t malformed = 0;
  std::size_t outside_window = 0;
  std::size_t outside_step = 0;
  std::size_t steps_not_summing = 0;
  std::size_t overlapping = 0;  // events that start before the previous one of their thread ended
};

// Parses the trace, checks that every event lies in [start, end] and inside its step, and
// (without overlap) that per step the layers' critical paths (the longest rank per layer)
// sum to the step's duration.
TraceCheck check_trace(const fs::path& file, double start_us, double end_us, bool overlap) {
  const nlohmann::json trace = JsonReader::parse_file(file);
  REQUIRE(trace["traceEvents"].is_array());
  TraceCheck check;
  struct Step {
    double ts, dur;
  };
  std::vector<Step> steps;
  // (step start, layer, thread) -> summed duration
  std::map<std::tuple<double, int, int>, double> rank_layer;
  std::map<std::pair<int, int>, double> thread_ends;  // (pid, tid) -> end of its last event
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "M") continue;
    if (event["ph"] != "X") ++check.malformed;
    const double ts = event["ts"].get<double>(), dur = event["dur"].get<double>();
    if (!(dur > 0)) ++check.malformed;
    if (ts < start_us - 1e-3 || ts + dur > end_us + 1e-3) ++check.outside_window;
    if (event["cat"] == "step") {
      steps.push_back({ts, dur});
      continue;
    }
    // A thread does one thing at a time.
    auto& thread_end = thread_ends[{event["pid"].get<int>(), event["tid"].get<int>()}];
    if (ts < thread_end - 1e-3) ++check.overlapping;
    thread_end = ts + dur;
    if (steps.empty()) {  // a layer event before any step
      ++check.malformed;
      continue;
    }
    const Step& step = steps.back();
    if (ts < step.ts - 1e-3 || ts + dur > step.ts + step.dur + 1e-3) ++check.outside_step;
    if (event["cat"] == "rebalance") {
      ++check.stall_events;
      rank_layer[{step.ts, -1, event["tid"].get<int>()}] += dur;
      continue;
    }
    ++check.layer_events;
    // All-to-all threads of overlapped micro-batches run beside the computation.
    if (event["tid"].get<int>() < 1000) {
      rank_layer[{step.ts, event["args"]["layer"].get<int>(), event["tid"].get<int>()}] += dur;
    }
  }
  std::map<std::pair<double, int>, double> layer_critical;
  for (const auto& [key, sum] : rank_layer) {
    auto& critical = layer_critical[{std::get<0>(key), std::get<1>(key)}];
    critical = std::max(critical, sum);
  }
  std::map<double, double> step_sum;
  for (const auto& [key, critical] : layer_critical)
    step_sum[key.first] += critical;
  for (const auto& step : steps) {
    if (overlap) break;
    // Event ends are rounded to the nanosecond; the step's length is its total rounded up.
    if (std::abs(step_sum[step.ts] - step.dur) > 2e-3) ++check.steps_not_summing;
  }
  check.steps = steps.size();
  CHECK(check.malformed == 0);
  CHECK(check.outside_window == 0);
  CHECK(check.outside_step == 0);
  CHECK(check.steps_not_summing == 0);
  CHECK(check.overlapping == 0);
  return check;
}

}  // namespace

TEST_CASE("the timeline's layers sum to the step times", "[chrome_trace]") {
  for (bool overlap : {false, true}) {
    INFO("overlap " << overlap);
    const auto directory = scratch(overlap ? "sum-overlap" : "sum");
    const Scenario scenario = small_scenario(directory, overlap);
    RecordingSink sink;
    SimulationInputs inputs = simulation_inputs(scenario);
    inputs.timeline = &sink;
    const SimulationResult result = simulate(inputs);
    REQUIRE(sink.durations_.size() == result.steps);
    REQUIRE(result.steps > 10);
    std::size_t mismatches = 0;
    for (std::size_t s = 0; s < sink.durations_.size(); ++s) {
      const auto rounded = std::max<SimTime>(1, seconds_to_ns_ceil(sink.stalls_[s] + sink.layer_sum_[s]));
      if (std::abs(rounded - sink.durations_[s]) > 1) ++mismatches;
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("the Chrome trace holds the window's steps, per EP rank and layer", "[chrome_trace]") {
  for (bool overlap : {false, true}) {
    INFO("overlap " << overlap);
    const auto directory = scratch(overlap ? "window-overlap" : "window");
    const Scenario scenario = small_scenario(directory, overlap);
    const auto file = directory / "trace.json";
    const ChromeTraceOptions options{.start = 50'000'000, .duration = 200'000'000, .max_events = 1'000'000};
    ChromeTraceWriter writer(file, options);
    SimulationInputs inputs = simulation_inputs(scenario);
    inputs.timeline = &writer;
    (void)simulate(inputs);
    writer.finish();
    CHECK(!writer.truncated());
    const TraceCheck check = check_trace(file, 50'000, 250'000, overlap);
    CHECK(check.steps == writer.steps());
    CHECK(check.steps > 3);
    // OLMoE: 16 layers, all MoE, on 8 EP ranks: attention, experts, launches, and the
    // all-to-alls per rank and layer, plus the lm head.
    CHECK(check.layer_events >= check.steps * 16 * 8 * 5);
    const nlohmann::json trace = JsonReader::parse_file(file);
    CHECK(trace["otherData"]["steps"] == writer.steps());
    CHECK(trace["otherData"]["truncated"] == false);
    const std::string text = read_text_file(file);
    CHECK_THAT(text,
               Contains(R"("args":{"name":"EP rank 7"})") && Contains(R"("args":{"name":"instance 0"})"));
    CHECK_THAT(text, Contains(R"("name":"experts")") && Contains(R"("name":"dispatch")") &&
                         Contains(R"("name":"lm_head")"));
    CHECK((text.find("all-to-all") != std::string::npos) == overlap);
  }
}

TEST_CASE("a rebalance's stall opens its step in the Chrome trace", "[chrome_trace]") {
  const auto directory = scratch("rebalance");
  const Scenario scenario = small_scenario(directory, false, true);
  const auto file = directory / "trace.json";
  ChromeTraceWriter writer(
      file, ChromeTraceOptions{.start = 0, .duration = 3600'000'000'000, .max_events = 10'000'000});
  SimulationInputs inputs = simulation_inputs(scenario);
  inputs.timeline = &writer;
  const SimulationResult result = simulate(inputs);
  writer.finish();
  REQUIRE(result.moe->rebalances() > 0);
  const TraceCheck check = check_trace(file, 0, 3600e6, false);
  CHECK(check.steps == result.steps);
  // One stall event per EP rank for each rebalance that moved weights.
  CHECK(check.stall_events > 0);
  CHECK(check.stall_events % 8 == 0);
}

TEST_CASE("the Chrome trace stops at its event budget and says so", "[chrome_trace]") {
  const auto directory = scratch("budget");
  const Scenario scenario = small_scenario(directory, false);
  const auto file = directory / "trace.json";
  ChromeTraceWriter writer(file,
                           ChromeTraceOptions{.start = 0, .duration = 3600'000'000'000, .max_events = 3000});
  SimulationInputs inputs = simulation_inputs(scenario);
  inputs.timeline = &writer;
  (void)simulate(inputs);
  writer.finish();
  CHECK(writer.truncated());
  CHECK(writer.events() <= 3000);
  CHECK(writer.steps() >= 1);
  const TraceCheck check = check_trace(file, 0, 3600e6, false);
  CHECK(check.steps == writer.steps());
  CHECK(JsonReader::parse_file(file)["otherData"]["truncated"] == true);
}

TEST_CASE("an unfinished Chrome trace leaves no file behind", "[chrome_trace]") {
  const auto directory = scratch("unfinished");
  {
    ChromeTraceWriter writer(directory / "trace.json", ChromeTraceOptions{});
    CHECK(writer.begin_step(0, 0));
  }
  CHECK(fs::is_empty(directory));
}

TEST_CASE("Chrome trace options are checked", "[chrome_trace]") {
  const auto directory = scratch("options");
  CHECK_THROWS_WITH(ChromeTraceWriter(directory / "t.json", ChromeTraceOptions{.start = -1}),
                    Contains("--chrome-trace-start"));
  CHECK_THROWS_WITH(ChromeTraceWriter(directory / "t.json", ChromeTraceOptions{.duration = 0}),
                    Contains("--chrome-trace-duration"));
  CHECK_THROWS_WITH(ChromeTraceWriter(directory / "t.json", ChromeTraceOptions{.max_events = 0}),
                    Contains("--chrome-trace-max-events"));
  CHECK(fs::is_empty(directory));
}
