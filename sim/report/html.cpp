#include "sim/report/html.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sim/common/error.hpp"
#include "sim/report/report.hpp"
#include "sim/report/svg.hpp"
#include "sim/report/sweep.hpp"

namespace moesim {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Sweep charts draw one line per combination of the other keys; more would be unreadable.
constexpr std::size_t kMaxSweepSeries = 8;
constexpr std::size_t kStragglerRowsShown = 10;

// Checked access to the fields of a parsed document: a missing or mistyped field is an
// InputError naming the source and the field's dotted path.
class Fields {
 public:
  Fields(const nlohmann::json& node, const std::string& source, std::string path = "")
      : node_(&node), source_(&source), path_(std::move(path)) {}

  const nlohmann::json& json() const { return *node_; }
  const std::string& path() const { return path_; }

  bool has(std::string_view key) const {
    return node_->is_object() && node_->contains(key) && !(*node_)[std::string(key)].is_null();
  }

  Fields object(std::string_view key) const {
    const auto& value = member(key, "an object");
    if (!value.is_object()) fail(key, "expected an object");
    return Fields(value, *source_, place(key));
  }

  std::vector<Fields> objects(std::string_view key) const {
    const auto& value = member(key, "an array of objects");
    if (!value.is_array()) fail(key, "expected an array of objects");
    std::vector<Fields> items;
    for (std::size_t i = 0; i < value.size(); ++i) {
      const std::string item_path = fmt::format("{}[{}]", place(key), i);
      if (!value[i].is_object()) throw InputError(*source_, item_path, "expected an object");
      items.emplace_back(value[i], *source_, item_path);
    }
    return items;
  }

  double number(std::string_view key) const {
    const auto& value = member(key, "a number");
    if (!value.is_number() || !std::isfinite(value.get<double>())) fail(key, "expected a finite number");
    return value.get<double>();
  }

  double number(std::string_view key, double fallback) const { return has(key) ? number(key) : fallback; }

  std::string text(std::string_view key, std::string_view fallback) const {
    if (!has(key)) return std::string(fallback);
    const auto& value = (*node_)[std::string(key)];
    if (!value.is_string()) fail(key, "expected a string");
    return value.get<std::string>();
  }

  // An array of numbers (null entries become NaN: a metric a point did not report).
  std::vector<double> numbers(std::string_view key) const {
    const auto& value = member(key, "an array of numbers");
    if (!value.is_array()) fail(key, "expected an array of numbers");
    std::vector<double> result;
    result.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (value[i].is_null()) {
        result.push_back(kNaN);
      } else if (value[i].is_number() && std::isfinite(value[i].get<double>())) {
        result.push_back(value[i].get<double>());
      } else {
        throw InputError(*source_, fmt::format("{}[{}]", place(key), i), "expected a finite number");
      }
    }
    return result;
  }

  std::vector<std::string> strings(std::string_view key) const {
    const auto& value = member(key, "an array of strings");
    if (!value.is_array()) fail(key, "expected an array of strings");
    std::vector<std::string> result;
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_string()) {
        throw InputError(*source_, fmt::format("{}[{}]", place(key), i), "expected a string");
      }
      result.push_back(value[i].get<std::string>());
    }
    return result;
  }

  [[noreturn]] void fail(std::string_view key, std::string_view expected) const {
    throw InputError(*source_, place(key), expected);
  }

 private:
  std::string place(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }

  const nlohmann::json& member(std::string_view key, std::string_view what) const {
    if (!node_->is_object() || !node_->contains(key)) fail(key, fmt::format("missing, expected {}", what));
    return (*node_)[std::string(key)];
  }

  const nlohmann::json* node_;
  const std::string* source_;
  std::string path_;
};

void require_schema(const Fields& root, int version) {
  const double found = root.number("schema_version");
  if (found != version) root.fail("schema_version", fmt::format("expected {}, got {}", version, found));
}

std::string page_open(const std::string& title, const std::string& subtitle) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{0}</title>\n"
      "<style>\n"
      "body {{ font-family: sans-serif; font-size: 14px; color: #222; background: #fff; margin: 16px auto; "
      "max-width: 1160px; }}\n"
      "h1 {{ font-size: 20px; margin: 0 0 4px 0; }} h2 {{ font-size: 16px; margin: 22px 0 6px 0; "
      "border-bottom: 1px solid #ddd; }}\n"
      ".subtitle {{ color: #555; margin-bottom: 10px; }} .note {{ color: #666; font-style: italic; }}\n"
      ".grid {{ display: flex; flex-wrap: wrap; gap: 8px; }} svg.chart {{ border: 1px solid #eee; }}\n"
      "table {{ border-collapse: collapse; margin: 6px 0; }} "
      "td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }} "
      "th {{ background: #f4f4f4; }} td.name, th.name {{ text-align: left; }}\n"
      "</style>\n</head>\n<body>\n<h1>{0}</h1>\n<div class=\"subtitle\">{1}</div>\n",
      svg::escape(title), svg::escape(subtitle));
}

std::string page_close() {
  return "<p class=\"note\">Written by moesim report; charts are inline SVG (hover for values).</p>\n"
         "</body>\n</html>\n";
}

std::string section(const std::string& title) {
  return fmt::format("<h2>{}</h2>\n", svg::escape(title));
}

std::string note(const std::string& text) {
  return fmt::format("<p class=\"note\">{}</p>\n", svg::escape(text));
}

std::string cell(double value, int digits = 4) {
  return fmt::format("<td>{}</td>", svg::escape(svg::format_number(value, digits)));
}

// Per-window rates: a window's sum over the window's length.
std::vector<double> per_second(const std::vector<double>& sums, double window_s) {
  std::vector<double> rates(sums.size());
  for (std::size_t i = 0; i < sums.size(); ++i)
    rates[i] = window_s > 0 ? sums[i] / window_s : kNaN;
  return rates;
}

svg::LineChart time_chart(std::string id, std::string title, std::string y_label) {
  svg::LineChart chart;
  chart.id = std::move(id);
  chart.title = std::move(title);
  chart.x.label = "simulated time (s)";
  chart.y.label = std::move(y_label);
  return chart;
}

// The latency percentiles as a CDF on a stretched probability axis: the height of
// quantile q is -log10(1 - q), so p50, p90, p99 and p99.9 are evenly spread, and the
// maximum sits half a step above p99.9.
std::string latency_cdf_chart(const Fields& summary) {
  struct Metric {
    const char* key;
    const char* name;
  };
  static constexpr Metric kMetrics[] = {
      {"ttft_s", "TTFT"}, {"tpot_s", "TPOT"}, {"e2e_s", "E2E"}, {"queue_s", "queue"}};
  static constexpr double kMaxHeight = 3.5;
  svg::LineChart chart;
  chart.id = "latency-cdf";
  chart.title = "Latency CDFs (through the report's percentiles)";
  chart.width = 1120;
  chart.height = 320;
  chart.x.label = "latency (s, log scale)";
  chart.x.scale = svg::Scale::log10;
  chart.y.label = "fraction of requests";
  chart.y.tick_values = {std::log10(2.0), 1, 2, 3, kMaxHeight};
  chart.y.tick_labels = {"50 %", "90 %", "99 %", "99.9 %", "max"};
  for (const auto& metric : kMetrics) {
    const Fields latency = summary.object(metric.key);
    svg::Series series{.name = metric.name, .markers = true};
    series.x = {latency.number("p50"), latency.number("p90"), latency.number("p99"), latency.number("p999"),
                latency.number("max")};
    series.y = chart.y.tick_values;
    chart.series.push_back(std::move(series));
  }
  return svg::line_chart(chart);
}

std::string summary_tables(const Fields& report) {
  const Fields summary = report.object("summary");
  const Fields requests = summary.object("requests");
  const Fields throughput = summary.object("throughput");
  std::string out =
      "<table>\n<tr><th class=\"name\">requests</th><th>arrived</th><th>completed</th>"
      "<th>rejected</th><th>unfinished</th><th>preemptions</th></tr>\n<tr><td class=\"name\"></td>";
  for (const char* key : {"arrived", "completed", "rejected", "unfinished", "preemptions"})
    out += cell(requests.number(key), 6);
  out += "</tr>\n</table>\n";
  out +=
      "<table>\n<tr><th class=\"name\">throughput</th><th>requests/s</th><th>input tokens/s</th>"
      "<th>output tokens/s</th><th>output tokens/s per GPU</th><th>GPUs</th><th>makespan (s)</th></tr>\n"
      "<tr><td class=\"name\"></td>";
  out += cell(throughput.number("requests_per_s"));
  out += cell(throughput.number("input_tokens_per_s"));
  out += cell(throughput.number("output_tokens_per_s"));
  out += cell(summary.number("output_tokens_per_s_per_gpu"));
  out += cell(summary.number("gpus"));
  out += cell(throughput.number("makespan_s"));
  out += "</tr>\n</table>\n";
  out +=
      "<table>\n<tr><th class=\"name\">latency (s)</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th>"
      "<th>p99.9</th><th>max</th></tr>\n";
  for (const char* key : {"ttft_s", "tpot_s", "e2e_s", "queue_s"}) {
    const Fields latency = summary.object(key);
    out += fmt::format("<tr><td class=\"name\">{}</td>", key);
    for (const char* statistic : {"mean", "p50", "p90", "p99", "p999", "max"})
      out += cell(latency.number(statistic));
    out += "</tr>\n";
  }
  out += "</table>\n";
  if (report.has("moe")) {
    const Fields moe = report.object("moe");
    const Fields imbalance = moe.object("imbalance");
    out +=
        "<table>\n<tr><th class=\"name\">MoE</th><th>drop rate</th><th>tokens fully dropped</th>"
        "<th>expert max/mean (mean, p99)</th><th>rank max/mean (mean, p99)</th></tr>\n<tr><td "
        "class=\"name\"></td>";
    out += cell(moe.number("drop_rate"));
    out += cell(moe.number("tokens_fully_dropped"));
    for (const char* key : {"expert_max_over_mean", "rank_max_over_mean"}) {
      const Fields statistic = imbalance.object(key);
      out += fmt::format("<td>{}, {}</td>", svg::format_number(statistic.number("mean")),
                         svg::format_number(statistic.number("p99")));
    }
    out += "</tr>\n</table>\n";
  }
  return out;
}

std::string busy_time_chart(const Fields& steps) {
  const Fields busy = steps.object("busy_s");
  svg::StackedBar chart{
      .id = "busy-time", .title = "Where the busy time went (critical path of all steps)", .unit = "s"};
  static constexpr std::pair<const char*, const char*> kParts[] = {
      {"attention_and_dense", "attention and dense"},
      {"experts", "experts (straggler rank)"},
      {"dispatch", "dispatch"},
      {"combine", "combine"},
      {"tp_allreduce", "TP all-reduce"},
      {"overhead", "launches and permute"}};
  for (const auto& [key, name] : kParts) {
    chart.names.emplace_back(name);
    chart.values.push_back(busy.number(key));
  }
  std::string out = svg::stacked_bar(chart);
  const double hidden = busy.number("overlap_hidden", 0.0);
  if (hidden != 0) {
    out += note(fmt::format("Overlapped micro-batches hid {} s of these parts (busy total {} s).",
                            svg::format_number(hidden, 4), svg::format_number(busy.number("total"), 4)));
  }
  return out;
}

std::string timeline_charts(const Fields& series, bool moe) {
  const double window_s = series.number("window_s");
  const std::vector<double> start = series.numbers("start_s");
  auto column = [&](const char* key) {
    std::vector<double> values = series.numbers(key);
    if (values.size() != start.size()) {
      series.fail(key, fmt::format("expected {} values (one per window of start_s), got {}", start.size(),
                                   values.size()));
    }
    return values;
  };
  if (start.empty()) return note("No time series: the run simulated no time.");

  std::string out = "<div class=\"grid\">\n";
  auto tokens = time_chart("throughput", "Throughput", "tokens/s");
  tokens.series.push_back(
      {.name = "output tokens/s", .x = start, .y = per_second(column("output_tokens"), window_s)});
  tokens.series.push_back(
      {.name = "prompt tokens/s", .x = start, .y = per_second(column("prompt_tokens"), window_s)});
  out += svg::line_chart(tokens);

  auto requests = time_chart("requests", "Requests", "requests/s");
  requests.series.push_back({.name = "arrivals", .x = start, .y = per_second(column("arrivals"), window_s)});
  requests.series.push_back(
      {.name = "completed", .x = start, .y = per_second(column("completed"), window_s)});
  requests.series.push_back({.name = "rejected", .x = start, .y = per_second(column("rejected"), window_s)});
  out += svg::line_chart(requests);

  auto queue = time_chart("queue", "Queue (mean over the window's steps)", "sequences");
  queue.series.push_back({.name = "running", .x = start, .y = column("running")});
  queue.series.push_back({.name = "waiting", .x = start, .y = column("waiting")});
  out += svg::line_chart(queue);

  auto steps = time_chart("step-time", "Step time and KV-cache use", "step time (ms) / KV use (%)");
  std::vector<double> step_ms = column("step_time_s");
  for (double& value : step_ms)
    value *= 1e3;
  std::vector<double> kv_percent = column("kv_utilization");
  for (double& value : kv_percent)
    value *= 100;
  steps.series.push_back({.name = "mean step time (ms)", .x = start, .y = step_ms});
  steps.series.push_back({.name = "KV-cache utilisation (%)", .x = start, .y = kv_percent});
  out += svg::line_chart(steps);

  if (moe) {
    const std::vector<double> assignments = column("moe_assignments");
    const std::vector<double> dropped = column("moe_dropped");
    std::vector<double> drop_rate(start.size(), kNaN);
    for (std::size_t i = 0; i < start.size(); ++i)
      if (assignments[i] > 0) drop_rate[i] = 100 * dropped[i] / assignments[i];
    auto drops = time_chart("drop-rate-time", "Drop rate over time", "assignments (%)");
    drops.series.push_back({.name = "dropped", .x = start, .y = drop_rate});
    // Reports from before the reroute policy have no rerouted column.
    if (series.has("moe_rerouted")) {
      const std::vector<double> rerouted = column("moe_rerouted");
      std::vector<double> reroute_rate(start.size(), kNaN);
      for (std::size_t i = 0; i < start.size(); ++i)
        if (assignments[i] > 0) reroute_rate[i] = 100 * rerouted[i] / assignments[i];
      drops.series.push_back({.name = "rerouted", .x = start, .y = reroute_rate});
    }
    out += svg::line_chart(drops);

    auto imbalance = time_chart(
        "imbalance-time", "Load imbalance over time (mean over the window's layer-steps)", "max / mean");
    imbalance.y.from_zero = false;
    std::vector<double> expert = column("expert_max_over_mean");
    std::vector<double> rank = column("rank_max_over_mean");
    // A window without steps has no imbalance to show (the report writes 0 there).
    for (std::size_t i = 0; i < start.size(); ++i) {
      if (assignments[i] <= 0) expert[i] = rank[i] = kNaN;
    }
    imbalance.series.push_back({.name = "expert max/mean", .x = start, .y = expert});
    imbalance.series.push_back({.name = "rank max/mean", .x = start, .y = rank});
    out += svg::line_chart(imbalance);
  }
  out += "</div>\n";
  return out;
}

// The (layer, rank) pairs that most often set a layer's time, and the rebalances, from the
// fields reports carry since straggler attribution (older reports have neither).
std::string straggler_table(const Fields& moe) {
  std::string out;
  if (moe.has("stragglers")) {
    const std::vector<Fields> top = moe.object("stragglers").objects("top");
    const std::size_t shown = std::min(top.size(), kStragglerRowsShown);
    if (shown > 0) {
      out += fmt::format(
          "<table>\n<tr><th class=\"name\">top {} stragglers</th><th>MoE layer</th><th>EP rank</th>"
          "<th>layer-steps as straggler</th><th>share of the layer's steps</th><th>share of all "
          "layer-steps</th>"
          "</tr>\n",
          shown);
      for (std::size_t i = 0; i < shown; ++i) {
        out += "<tr><td class=\"name\"></td>";
        out += cell(top[i].number("moe_layer"), 9);
        out += cell(top[i].number("rank"), 9);
        out += cell(top[i].number("count"), 9);
        out += cell(top[i].number("share_of_layer"));
        out += cell(top[i].number("share_of_all"));
        out += "</tr>\n";
      }
      out += "</table>\n";
    }
  }
  if (moe.has("rebalance")) {
    const Fields rebalance = moe.object("rebalance");
    if (rebalance.number("count") > 0) {
      out += note(fmt::format("{} rebalances moved {} expert slots ({} bytes) and stalled serving for {} s.",
                              svg::format_number(rebalance.number("count"), 6),
                              svg::format_number(rebalance.number("slots_moved"), 6),
                              svg::format_number(rebalance.number("bytes_moved")),
                              svg::format_number(rebalance.number("stall_s"), 4)));
    }
  }
  return out;
}

std::string moe_charts(const Fields& moe) {
  const std::vector<Fields> layers = moe.objects("layers");
  const std::vector<Fields> ranks = moe.objects("ranks");
  std::string out;
  if (layers.empty()) return note("No MoE layer figures in the report.");

  out += "<div class=\"grid\">\n";
  std::vector<double> layer_index, drop_rate, expert_mean, rank_mean, rank_max;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    layer_index.push_back(static_cast<double>(l));
    drop_rate.push_back(100 * layers[l].number("drop_rate"));
    expert_mean.push_back(layers[l].number("expert_max_over_mean_mean"));
    rank_mean.push_back(layers[l].number("rank_max_over_mean_mean"));
    rank_max.push_back(layers[l].number("rank_max_over_mean_max"));
  }
  svg::LineChart per_layer{.id = "imbalance-layer", .title = "Load imbalance per MoE layer"};
  per_layer.x.label = "MoE layer";
  per_layer.y.label = "max / mean";
  per_layer.y.from_zero = false;
  per_layer.series.push_back({.name = "expert (mean)", .x = layer_index, .y = expert_mean});
  per_layer.series.push_back({.name = "rank (mean)", .x = layer_index, .y = rank_mean});
  per_layer.series.push_back({.name = "rank (max)", .x = layer_index, .y = rank_max});
  out += svg::line_chart(per_layer);

  svg::LineChart drops{.id = "drop-rate-layer", .title = "Drop rate per MoE layer"};
  drops.x.label = "MoE layer";
  drops.y.label = "dropped assignments (%)";
  drops.series.push_back({.name = "drop rate", .x = layer_index, .y = drop_rate});
  out += svg::line_chart(drops);

  if (!ranks.empty()) {
    svg::BarChart tokens{.id = "rank-load",
                         .title = "Kept assignments per EP rank",
                         .x_label = "EP rank",
                         .y_label = "assignments"};
    svg::BarChart stragglers{.id = "rank-straggler",
                             .title = "Layer-steps each EP rank set the time",
                             .x_label = "EP rank",
                             .y_label = "layer-steps as straggler"};
    double sum = 0;
    for (std::size_t r = 0; r < ranks.size(); ++r) {
      tokens.labels.push_back(std::to_string(r));
      stragglers.labels.push_back(std::to_string(r));
      tokens.values.push_back(ranks[r].number("tokens"));
      stragglers.values.push_back(ranks[r].number("straggler_count"));
      sum += tokens.values.back();
    }
    tokens.reference = sum / static_cast<double>(ranks.size());
    tokens.reference_label = "mean";
    stragglers.reference = kNaN;
    out += svg::bar_chart(tokens);
    out += svg::bar_chart(stragglers);
  }
  out += "</div>\n";
  out += straggler_table(moe);

  if (!layers.front().has("expert_load")) {
    out += note(
        "No layer x expert heat map: the report has no per-expert load (outputs.expert_load was false).");
    return out;
  }
  svg::HeatMap map{
      .id = "expert-heat-map",
      .title = "Routed load per MoE layer and expert (before capacity), relative to the layer's mean",
      .row_label = "MoE layer",
      .column_label = "expert",
      .value_label = "assignments / layer mean"};
  map.rows = layers.size();
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::vector<double> load = layers[l].numbers("expert_load");
    if (l == 0) map.columns = load.size();
    if (load.size() != map.columns) {
      layers[l].fail("expert_load",
                     fmt::format("expected {} experts, as in layer 0, got {}", map.columns, load.size()));
    }
    double total = 0;
    for (double value : load)
      total += value;
    const double mean = total / std::max<double>(1, static_cast<double>(load.size()));
    for (double value : load)
      map.values.push_back(mean > 0 ? value / mean : 0.0);
  }
  out += svg::heat_map(map);
  return out;
}

std::string sweep_metric_title(const std::string& metric) {
  static const std::map<std::string, std::string, std::less<>> kTitles = {
      {"requests_per_s", "requests/s"},
      {"output_tokens_per_s", "output tokens/s"},
      {"output_tokens_per_s_per_gpu", "output tokens/s per GPU"},
      {"ttft_p50_s", "TTFT p50 (s)"},
      {"ttft_p99_s", "TTFT p99 (s)"},
      {"tpot_p50_s", "TPOT p50 (s)"},
      {"tpot_p99_s", "TPOT p99 (s)"},
      {"e2e_p50_s", "E2E p50 (s)"},
      {"e2e_p99_s", "E2E p99 (s)"},
      {"drop_rate", "drop rate (fraction)"},
      {"expert_max_over_mean", "expert max/mean"},
      {"rank_max_over_mean", "rank max/mean"},
      {"gpus", "GPUs"},
      {"completed", "completed requests"},
      {"arrived", "arrived requests"}};
  const auto found = kTitles.find(metric);
  return found == kTitles.end() ? metric : found->second;
}

std::string json_value_text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

ReportDocumentKind classify_report_document(const nlohmann::json& document, const std::string& source) {
  const bool object = document.is_object();
  if (object && document.contains("summary") && document.contains("simulator") &&
      document.contains("timeseries")) {
    return ReportDocumentKind::run_report;
  }
  if (object && document.contains("points") && document.contains("keys") && document.contains("metrics")) {
    return ReportDocumentKind::sweep_summary;
  }
  throw InputError(
      source, "",
      "expected a moesim report (written by moesim run: an object with \"summary\", \"timeseries\" "
      "and \"simulator\") or a sweep summary (DIR/summary.json of moesim sweep: an object with "
      "\"keys\", \"metrics\" and \"points\")");
}

std::string render_run_html(const nlohmann::json& document, const std::string& source) {
  const Fields report(document, source);
  require_schema(report, kReportSchemaVersion);
  const Fields summary = report.object("summary");
  std::string name = source;
  std::string subtitle = fmt::format("report {}", source);
  if (report.has("scenario")) {
    const Fields scenario = report.object("scenario");
    name = scenario.text("name", source);
    std::vector<std::string> parts;
    for (const char* key : {"model", "gpu", "cluster"}) {
      if (scenario.has(key) && scenario.json()[key].is_object()) {
        parts.push_back(fmt::format("{} {}", key, scenario.object(key).text("name", "?")));
      }
    }
    parts.push_back(fmt::format("{} GPUs", svg::format_number(summary.number("gpus"))));
    parts.push_back(fmt::format("report {}", source));
    subtitle.clear();
    for (const auto& part : parts)
      subtitle += (subtitle.empty() ? "" : " | ") + part;
  }
  if (!document.contains("moe")) report.fail("moe", "missing, expected an object or null (dense model)");
  const bool moe = report.has("moe");

  std::string out = page_open(fmt::format("moesim report: {}", name), subtitle);
  out += section("Summary");
  out += summary_tables(report);
  out += busy_time_chart(report.object("steps"));
  out += section("Latency");
  out += latency_cdf_chart(summary);
  out += section("Over time");
  out += timeline_charts(report.object("timeseries"), moe);
  out += section("Mixture of experts");
  if (moe) {
    out += moe_charts(report.object("moe"));
  } else {
    out +=
        note("No MoE charts (drop rate, imbalance, layer x expert load, per-rank load): the model is dense.");
  }
  out += page_close();
  return out;
}

std::string render_sweep_html(const nlohmann::json& document, const std::string& source) {
  const Fields summary(document, source);
  require_schema(summary, kSweepSchemaVersion);
  const std::vector<std::string> keys = summary.strings("keys");
  const std::vector<std::string> metrics = summary.strings("metrics");
  const std::vector<Fields> points = summary.objects("points");

  // Each point's values (as JSON) and metrics (NaN where absent or null).
  std::vector<std::vector<nlohmann::json>> values(points.size());
  std::vector<std::vector<double>> figures(points.size());
  for (std::size_t p = 0; p < points.size(); ++p) {
    const Fields point_values = points[p].object("values");
    const Fields point_metrics = points[p].object("metrics");
    for (const auto& key : keys) {
      if (!point_values.json().contains(key)) point_values.fail(key, "missing, expected the point's value");
      values[p].push_back(point_values.json()[key]);
    }
    for (const auto& metric : metrics)
      figures[p].push_back(point_metrics.number(metric, kNaN));
  }

  std::string out = page_open(
      fmt::format("moesim sweep: {}", summary.text("scenario", source)),
      fmt::format("{} points of {} in the grid | varied: {} | summary {}", points.size(),
                  svg::format_number(summary.number("points_in_grid", kNaN)),
                  keys.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(keys, ", ")), source));
  if (keys.empty() || points.empty()) {
    out += note("No curves: the summary has no varied key or no point.");
  } else {
    // x: the last varied key (it varies fastest); one line per combination of the others.
    const std::size_t x_key = keys.size() - 1;
    bool numeric = true;
    std::vector<std::string> categories;
    for (const auto& point : values) {
      numeric = numeric && point[x_key].is_number();
      const std::string text = json_value_text(point[x_key]);
      if (std::find(categories.begin(), categories.end(), text) == categories.end())
        categories.push_back(text);
    }
    std::vector<std::string> group_names;
    std::vector<std::size_t> group_of(points.size());
    for (std::size_t p = 0; p < points.size(); ++p) {
      std::string name;
      for (std::size_t k = 0; k < x_key; ++k)
        name += fmt::format("{}{}={}", name.empty() ? "" : ", ", keys[k], json_value_text(values[p][k]));
      const auto found = std::find(group_names.begin(), group_names.end(), name);
      group_of[p] = static_cast<std::size_t>(found - group_names.begin());
      if (found == group_names.end()) group_names.push_back(name);
    }
    out += section(fmt::format("Metrics against {}", keys[x_key]));
    if (group_names.size() > kMaxSweepSeries) {
      out += note(fmt::format("{} combinations of the other keys; the charts show the first {}.",
                              group_names.size(), kMaxSweepSeries));
    }
    out += "<div class=\"grid\">\n";
    for (std::size_t m = 0; m < metrics.size(); ++m) {
      svg::LineChart chart{.id = "sweep-" + metrics[m], .title = sweep_metric_title(metrics[m])};
      chart.x.label = keys[x_key];
      chart.x.from_zero = false;
      if (!numeric) chart.x.categories = categories;
      chart.y.label = sweep_metric_title(metrics[m]);
      for (std::size_t g = 0; g < std::min(group_names.size(), kMaxSweepSeries); ++g) {
        std::vector<std::pair<double, double>> curve;
        for (std::size_t p = 0; p < points.size(); ++p) {
          if (group_of[p] != g) continue;
          const double x = numeric ? values[p][x_key].get<double>()
                                   : static_cast<double>(std::find(categories.begin(), categories.end(),
                                                                   json_value_text(values[p][x_key])) -
                                                         categories.begin());
          curve.emplace_back(x, figures[p][m]);
        }
        std::stable_sort(curve.begin(), curve.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        svg::Series series{.name = group_names[g].empty() ? sweep_metric_title(metrics[m]) : group_names[g],
                           .markers = true};
        for (const auto& [x, y] : curve) {
          series.x.push_back(x);
          series.y.push_back(y);
        }
        chart.series.push_back(std::move(series));
      }
      out += svg::line_chart(chart);
    }
    out += "</div>\n";
  }

  out += section("Points");
  out += "<table>\n<tr><th>index</th>";
  for (const auto& key : keys)
    out += fmt::format("<th>{}</th>", svg::escape(key));
  for (const auto& metric : metrics)
    out += fmt::format("<th>{}</th>", svg::escape(metric));
  out += "<th class=\"name\">report</th></tr>\n";
  for (std::size_t p = 0; p < points.size(); ++p) {
    out += "<tr>";
    out += cell(points[p].number("index"), 9);
    for (const auto& value : values[p])
      out += fmt::format("<td>{}</td>", svg::escape(json_value_text(value)));
    for (double figure : figures[p])
      out += cell(figure);
    out += fmt::format("<td class=\"name\">{}</td></tr>\n", svg::escape(points[p].text("report", "")));
  }
  out += "</table>\n";
  out += page_close();
  return out;
}

std::string render_html(const nlohmann::json& document, const std::string& source) {
  return classify_report_document(document, source) == ReportDocumentKind::run_report
             ? render_run_html(document, source)
             : render_sweep_html(document, source);
}

}  // namespace moesim
