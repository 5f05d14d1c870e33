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

Scenario small_scenario(const fs::path& directory, bool overlap) {
  const auto file = directory / "scenario.json";
  write_file_atomically(file, fmt::format(R"({{
    "name": "trace-test", "model": "olmoe-1b-7b", "cluster": "h100-8x1",
    "deployment": {{"parallel": {{"attention_dp": 8, "expert_ep": 8}}, "overlap_micro_batches": {}}},
    "workload": {{"kind": "closed_loop", "concurrency": 16, "input_tokens": 512, "output_tokens": 64, "requests": 64}},
    "router": {{"kind": "zipf", "exponent": 1.0}}}})",
                                          overlap));
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
  void end_step(SimTime duration) override { durations_.push_back(duration); }
  std::vector<double> layer_sum_;
  std::vector<SimTime> durations_;
};

struct TraceCheck {
  std::size_t steps = 0;
  std::size_t layer_events = 0;
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
  for (const auto& event : trace["traceEvents"]) {
    if (event["ph"] == "M") continue;
    REQUIRE(event["ph"] == "X");
    const double ts = event["ts"].get<double>(), dur = event["dur"].get<double>();
    CHECK(dur > 0);
    CHECK(ts >= start_us - 1e-3);
    CHECK(ts + dur <= end_us + 1e-3);
    if (event["cat"] == "step") {
      steps.push_back({ts, dur});
      continue;
    }
    ++check.layer_events;
    REQUIRE(!steps.empty());
    const Step& step = steps.back();
    CHECK(ts >= step.ts - 1e-3);
    CHECK(ts + dur <= step.ts + step.dur + 1e-3);
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
  std::map<double, int> step_layers;
  for (const auto& [key, critical] : layer_critical) {
    step_sum[key.first] += critical;
    ++step_layers[key.first];
  }
  for (const auto& step : steps) {
    if (overlap) break;
    INFO("step at " << step.ts << " us");
    // Durations are written to the nanosecond; the step's is its total rounded up.
    CHECK(step_sum[step.ts] == Approx(step.dur).margin(1e-3 * (8 * 6 * step_layers[step.ts] + 2)));
  }
  check.steps = steps.size();
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
    for (std::size_t s = 0; s < sink.durations_.size(); ++s) {
      const auto rounded = std::max<SimTime>(1, seconds_to_ns_ceil(sink.layer_sum_[s]));
      CHECK(std::abs(rounded - sink.durations_[s]) <= 1);
    }
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
