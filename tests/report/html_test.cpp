#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/config/scenario.hpp"
#include "sim/report/html.hpp"
#include "sim/report/report.hpp"
#include "sim/report/svg.hpp"
#include "sim/serving/simulation.hpp"

using namespace moesim;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t found = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
    ++found;
  return found;
}

// A short closed loop; `model` and `parallel` pick an MoE or a dense deployment.
nlohmann::json run_report(const std::string& name, const std::string& model, const std::string& parallel) {
  const auto file = fs::temp_directory_path() / "moesim_html_tests" / (name + ".json");
  write_file_atomically(file, fmt::format(R"({{
    "name": "{}", "model": "{}", "cluster": "h100-8x1",
    "deployment": {{"parallel": {}}},
    "workload": {{"kind": "closed_loop", "concurrency": 8, "input_tokens": 256, "output_tokens": 32, "requests": 64}},
    "router": {{"kind": "zipf", "exponent": 1.0}},
    "capacity": {{"policy": "drop", "capacity_factor": 1.0}},
    "outputs": {{"timeseries_window_s": 0.5}}}})",
                                          name, model, parallel));
  const Scenario scenario = load_scenario(file);
  const SimulationResult result = simulate(simulation_inputs(scenario));
  return build_report(scenario, result, SimulatorCost{.reproducible = true});
}

const nlohmann::json& moe_report() {
  static const nlohmann::json report =
      run_report("moe <b>&amp;</b>", "olmoe-1b-7b", R"({"attention_dp": 8, "expert_ep": 8})");
  return report;
}

void require_input_error(const nlohmann::json& document, const std::string& fragment) {
  try {
    (void)render_html(document, "in.json");
    FAIL("expected an InputError containing " << fragment);
  } catch (const InputError& error) {
    CHECK_THAT(error.what(), Contains("in.json") && Contains(fragment));
  }
}

nlohmann::json sweep_summary() {
  nlohmann::json points = nlohmann::json::array();
  std::size_t index = 0;
  for (const char* policy : {"drop", "dropless"}) {
    for (double factor : {2.0, 1.0, 1.5}) {
      const double drop_rate = std::string(policy) == "drop" ? 0.3 / factor : 0.0;
      points.push_back(
          {{"index", index++},
           {"report", fmt::format("points/{}.json", index)},
           {"values", {{"capacity.policy", policy}, {"capacity.capacity_factor", factor}}},
           {"metrics", {{"drop_rate", drop_rate}, {"tpot_p99_s", 0.05 + 0.01 * factor}, {"gpus", nullptr}}}});
    }
  }
  return {{"schema_version", 1},
          {"scenario", "s.json"},
          {"mode", "cross"},
          {"keys", {"capacity.policy", "capacity.capacity_factor"}},
          {"metrics", {"drop_rate", "tpot_p99_s", "gpus"}},
          {"points_in_grid", 6},
          {"points", points}};
}

}  // namespace

TEST_CASE("svg helpers: escaping, numbers, ticks, colours", "[html]") {
  CHECK(svg::escape(R"(<a href="x">&'</a>)") == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  CHECK(svg::format_number(0) == "0");
  CHECK(svg::format_number(0.30000000000000004) == "0.3");
  CHECK(svg::format_number(999.5) == "1000");
  CHECK(svg::format_number(25000) == "25k");
  CHECK(svg::format_number(3.2e6) == "3.2M");
  CHECK(svg::format_number(-1500) == "-1500");
  CHECK(svg::format_number(2e-5) == "2.00e-05");
  CHECK(svg::format_number(std::numeric_limits<double>::quiet_NaN()) == "n/a");
  CHECK(svg::nice_ticks(0, 1, 5) == std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1});
  const auto ticks = svg::nice_ticks(3.1, 47, 5);
  REQUIRE(ticks.size() == 6);
  CHECK(ticks.front() == 0);
  CHECK(ticks.back() == 50);
  CHECK(svg::viridis(0) == "#440154");
  CHECK(svg::viridis(1) == "#fde725");
  CHECK(svg::viridis(0.5) == "#21918c");
  CHECK(svg::viridis(-3) == "#440154");
  CHECK(svg::viridis(std::numeric_limits<double>::quiet_NaN()) == "#440154");
}

TEST_CASE("line charts drop what a log axis cannot show and break lines at gaps", "[html]") {
  svg::LineChart chart{.id = "t", .title = "T <1>"};
  chart.x.scale = svg::Scale::log10;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  chart.series.push_back({.name = "a", .x = {0, 0.01, 0.1, 1, 10}, .y = {1, 2, nan, 4, 5}});
  const std::string svg = svg::line_chart(chart);
  CHECK_THAT(svg, Contains("T &lt;1&gt;"));
  // x = 0 is off a log axis and the NaN breaks the line: two pieces, "M" twice.
  CHECK(count(svg, "<path d=\"M") == 1);
  CHECK(count(svg, " M") == 1);
  CHECK(count(svg, " L") == 1);
  for (const char* decade : {">0.01<", ">0.1<", ">1<", ">10<"})
    CHECK_THAT(svg, Contains(decade));
  CHECK_THAT(svg, !Contains("nan") && !Contains("inf"));
}

TEST_CASE("heat map cells span the colour scale, with a legend", "[html]") {
  svg::HeatMap map{
      .id = "h", .title = "h", .row_label = "layer", .column_label = "expert", .value_label = "load"};
  map.rows = 2;
  map.columns = 3;
  map.values = {0, 1, 2, 3, 4, 5};
  const std::string svg = svg::heat_map(map);
  CHECK(count(svg, "<rect x=") == 6);
  CHECK_THAT(svg, Contains("fill=\"#440154\"") && Contains("fill=\"#fde725\""));
  CHECK_THAT(svg, Contains("linearGradient") && Contains("class=\"colour-scale\"") && Contains(">load<"));
  CHECK_THAT(svg, Contains("<title>layer 1, expert 2: 5</title>"));
}

TEST_CASE("the HTML page of an MoE run has every chart and escapes the report's text", "[html]") {
  const nlohmann::json& report = moe_report();
  const std::string html = render_html(report, "run <1>.json");
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK(html.ends_with("</html>\n"));
  for (const char* chart : {"busy-time", "latency-cdf", "throughput", "requests", "queue", "step-time",
                            "drop-rate-time", "imbalance-time", "imbalance-layer", "drop-rate-layer",
                            "rank-load", "rank-straggler", "expert-heat-map"}) {
    INFO(chart);
    CHECK(count(html, fmt::format("data-chart=\"{}\"", chart)) == 1);
  }
  // The scenario's name and the file name are text, not markup.
  CHECK_THAT(html, Contains("moe &lt;b&gt;&amp;amp;&lt;/b&gt;") && !Contains("<b>"));
  CHECK_THAT(html, Contains("run &lt;1&gt;.json"));
  // Self-contained: no scripts, no external resources.
  CHECK_THAT(html, !Contains("<script") && !Contains("http://www.w3.org/1999") && !Contains("https://"));
  CHECK_THAT(html, !Contains("nan") && !Contains("NaN") && !Contains("inf\""));
  // 16 MoE layers x 64 experts of OLMoE.
  const auto map_start = html.find("data-chart=\"expert-heat-map\"");
  CHECK(count(html.substr(map_start), "<rect x=") == 16 * 64);
  // The page depends only on the report.
  CHECK(render_html(report, "run <1>.json") == html);
}

TEST_CASE("the page lists the top straggler (layer, rank) pairs when the report has them", "[html]") {
  nlohmann::json report = moe_report();
  REQUIRE(report["moe"].contains("stragglers"));
  const std::string html = render_html(report, "r.json");
  const auto rows = std::min<std::size_t>(10, report["moe"]["stragglers"]["top"].size());
  CHECK_THAT(html, Contains(fmt::format("top {} stragglers", rows)));
  const auto& first = report["moe"]["stragglers"]["top"][0];
  CHECK_THAT(html, Contains(fmt::format("<td>{}</td><td>{}</td><td>{}</td>", first["moe_layer"].get<int>(),
                                        first["rank"].get<int>(), first["count"].get<long>())));
  report["moe"].erase("stragglers");
  CHECK_THAT(render_html(report, "r.json"), !Contains("stragglers</th>"));
  report["moe"]["rebalance"] = {{"count", 3}, {"slots_moved", 12}, {"bytes_moved", 1.5e9}, {"stall_s", 0.25}};
  CHECK_THAT(render_html(report, "r.json"), Contains("3 rebalances moved 12 expert slots (1.5G bytes)"));
}

TEST_CASE("a dense model's page omits the MoE charts and says why", "[html]") {
  const nlohmann::json report = run_report("dense", "llama-2-70b", R"({"attention_tp": 8, "expert_tp": 8})");
  REQUIRE(report["moe"].is_null());
  const std::string html = render_html(report, "dense.json");
  CHECK_THAT(html, Contains("the model is dense"));
  CHECK_THAT(html, Contains("data-chart=\"latency-cdf\"") && Contains("data-chart=\"throughput\""));
  CHECK_THAT(html, !Contains("expert-heat-map") && !Contains("rank-load") && !Contains("drop-rate-time"));
}

TEST_CASE("a report without per-expert load has no heat map and says why", "[html]") {
  nlohmann::json report = moe_report();
  for (auto& layer : report["moe"]["layers"])
    layer.erase("expert_load");
  const std::string html = render_html(report, "r.json");
  CHECK_THAT(html, Contains("outputs.expert_load was false") && !Contains("data-chart=\"expert-heat-map\""));
  CHECK_THAT(html, Contains("data-chart=\"rank-load\""));
}

TEST_CASE("a sweep summary gives one curve per combination of the other keys", "[html]") {
  const std::string html = render_html(sweep_summary(), "summary.json");
  for (const char* chart : {"sweep-drop_rate", "sweep-tpot_p99_s", "sweep-gpus"})
    CHECK(count(html, fmt::format("data-chart=\"{}\"", chart)) == 1);
  CHECK_THAT(html, Contains("Metrics against capacity.capacity_factor"));
  CHECK_THAT(html, Contains(">capacity.policy=drop<") && Contains(">capacity.policy=dropless<"));
  // Points are drawn in order of the x value, whatever the summary's order: 1.0, 1.5, 2.0.
  const auto chart = html.substr(html.find("data-chart=\"sweep-drop_rate\""));
  const auto first = chart.find("capacity.policy=drop: 1,");
  const auto second = chart.find("capacity.policy=drop: 1.5,");
  const auto third = chart.find("capacity.policy=drop: 2,");
  CHECK((first != std::string::npos && first < second && second < third && third != std::string::npos));
  // A metric no point has is an empty chart, and the table shows n/a.
  CHECK_THAT(html, Contains("<td>n/a</td>"));
  CHECK(count(html, "<tr><td>") == 6);
}

TEST_CASE("a sweep over a string key uses a categorical axis", "[html]") {
  nlohmann::json summary = sweep_summary();
  summary["keys"] = {"capacity.capacity_factor", "capacity.policy"};
  const std::string html = render_html(summary, "summary.json");
  CHECK_THAT(html, Contains("Metrics against capacity.policy"));
  CHECK_THAT(html, Contains(">dropless<") && Contains(">capacity.capacity_factor=1.5<"));
}

TEST_CASE("bad documents are input errors naming the file and the field", "[html]") {
  require_input_error(nlohmann::json::array(), "expected a moesim report");
  require_input_error(nlohmann::json::object(), "expected a moesim report");
  require_input_error(42, "expected a moesim report");
  require_input_error({{"summary", 1}, {"simulator", 1}, {"timeseries", 1}}, "schema_version: missing");

  nlohmann::json report = moe_report();
  report["schema_version"] = 7;
  require_input_error(report, "schema_version: expected 1, got 7");

  report = moe_report();
  report["summary"]["ttft_s"]["p99"] = "slow";
  require_input_error(report, "summary.ttft_s.p99: expected a finite number");

  report = moe_report();
  report["summary"]["e2e_s"]["max"] = std::numeric_limits<double>::quiet_NaN();
  require_input_error(report, "summary.e2e_s.max: expected a finite number");

  report = moe_report();
  report["summary"]["tpot_s"].erase("p50");
  require_input_error(report, "summary.tpot_s.p50: missing");

  report = moe_report();
  report["timeseries"]["running"].push_back(1);
  require_input_error(report, "timeseries.running: expected");

  report = moe_report();
  report["timeseries"]["waiting"] = {{"a", 1}};
  require_input_error(report, "timeseries.waiting: expected an array of numbers");

  report = moe_report();
  report["moe"]["layers"][3]["expert_load"].push_back(5);
  require_input_error(report, "moe.layers[3].expert_load: expected 64 experts");

  report = moe_report();
  report["moe"]["ranks"][2] = -1;
  require_input_error(report, "moe.ranks[2]: expected an object");

  report = moe_report();
  report.erase("moe");
  require_input_error(report, "moe: missing");

  nlohmann::json summary = sweep_summary();
  summary["points"][4]["values"].erase("capacity.policy");
  require_input_error(summary, "points[4].values.capacity.policy: missing");
  summary = sweep_summary();
  summary["keys"] = {"a", 3};
  require_input_error(summary, "keys[1]: expected a string");
  summary = sweep_summary();
  summary["points"][0]["metrics"]["drop_rate"] = {1, 2};
  require_input_error(summary, "points[0].metrics.drop_rate: expected a finite number");
}

TEST_CASE("unknown fields in a report are ignored (reports gain fields over time)", "[html]") {
  nlohmann::json report = moe_report();
  report["summary"]["future_metric"] = {1, 2, 3};
  report["extra"] = "x";
  CHECK_NOTHROW(render_html(report, "r.json"));
}

TEST_CASE("a huge time series renders without blowing up", "[html]") {
  nlohmann::json report = moe_report();
  const std::size_t windows = 20000;
  auto& series = report["timeseries"];
  std::vector<double> start(windows), values(windows);
  for (std::size_t i = 0; i < windows; ++i) {
    start[i] = static_cast<double>(i);
    values[i] = static_cast<double>(i % 97);
  }
  for (auto it = series.begin(); it != series.end(); ++it) {
    if (it.value().is_array()) it.value() = values;
  }
  series["start_s"] = start;
  const std::string html = render_html(report, "r.json");
  CHECK(html.size() < 8'000'000);
  CHECK_THAT(html, Contains("data-chart=\"throughput\""));
}
