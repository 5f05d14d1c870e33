#include "sim/report/sweep.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/json_reader.hpp"
#include "sim/config/scenario.hpp"
#include "sim/report/parallel.hpp"
#include "sim/report/report.hpp"

namespace moesim {

namespace {

constexpr std::string_view kVarySource = "--vary";
constexpr std::string_view kVarySyntax = "expected key=v1,v2,..., key=start:stop:step or key=start:stop";
constexpr std::size_t kMaxSlugLength = 48;

void check_key(std::string_view key, std::string_view option) {
  if (key.empty()) throw InputError(kVarySource, option, kVarySyntax);
  std::size_t start = 0;
  for (;;) {
    const auto dot = key.find('.', start);
    const auto segment =
        key.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (segment.empty()) throw InputError(kVarySource, option, "empty key in the path");
    if (dot == std::string_view::npos) return;
    start = dot + 1;
  }
}

// Splits at the separator where it is outside quotes and brackets, so JSON values
// such as {"kind": "zipf", "exponent": 1} stay whole.
std::vector<std::string_view> split_top_level(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == separator && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  return parts;
}

// As a --set value: JSON when it parses, else the text as a string.
nlohmann::json parse_value(std::string_view text) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception&) {
    return std::string(text);
  }
}

nlohmann::json range_number(std::string_view text, std::string_view option, std::string_view what) {
  nlohmann::json value = parse_value(text);
  if (!value.is_number() || !std::isfinite(value.get<double>())) {
    throw InputError(kVarySource, option,
                     fmt::format("expected start:stop:step with numbers, but {} is {}", what,
                                 text.empty() ? std::string("empty") : describe_json(value)));
  }
  return value;
}

std::vector<nlohmann::json> expand_range(std::string_view text, std::string_view option) {
  const auto parts = split_top_level(text, ':');
  if (parts.size() != 2 && parts.size() != 3) {
    throw InputError(kVarySource, option, "expected start:stop:step or start:stop (step 1)");
  }
  const nlohmann::json start = range_number(parts[0], option, "start");
  const nlohmann::json stop = range_number(parts[1], option, "stop");
  const nlohmann::json step = parts.size() == 3 ? range_number(parts[2], option, "step") : nlohmann::json(1);
  const double start_value = start.get<double>();
  const double stop_value = stop.get<double>();
  const double step_value = step.get<double>();
  if (step_value <= 0) {
    throw InputError(kVarySource, option, fmt::format("expected a positive step, got {}", step.dump()));
  }
  if (stop_value < start_value) {
    throw InputError(kVarySource, option,
                     fmt::format("stop {} is below start {}: the range is empty", stop.dump(), start.dump()));
  }
  // The tolerance keeps stop on the grid when (stop - start) / step is an integer
  // up to rounding, as in 0:1:0.1.
  const double intervals = std::floor((stop_value - start_value) / step_value + 1e-9);
  if (intervals + 1 > static_cast<double>(kMaxSweepPoints)) {
    throw InputError(kVarySource, option,
                     fmt::format("the range has {:.0f} values; at most {}", intervals + 1, kMaxSweepPoints));
  }
  const auto count = static_cast<std::size_t>(intervals) + 1;
  std::vector<nlohmann::json> values;
  values.reserve(count);
  const bool integers = start.is_number_integer() && stop.is_number_integer() && step.is_number_integer();
  for (std::size_t i = 0; i < count; ++i) {
    if (integers) {
      values.emplace_back(start.get<std::int64_t>() +
                          static_cast<std::int64_t>(i) * step.get<std::int64_t>());
    } else {
      // start + i*step, rounded to 15 significant digits so 0.1*3 is written 0.3.
      const double value = start_value + static_cast<double>(i) * step_value;
      values.emplace_back(std::stod(fmt::format("{:.15g}", value)));
    }
  }
  return values;
}

std::string value_text(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string slug(const std::vector<SweepAxis>& axes, const std::vector<nlohmann::json>& values) {
  std::string text;
  for (std::size_t a = 0; a < axes.size(); ++a) {
    if (a > 0) text += '_';
    const auto dot = axes[a].key.rfind('.');
    text += dot == std::string::npos ? axes[a].key : axes[a].key.substr(dot + 1);
    text += '-';
    text += value_text(values[a]);
  }
  for (char& c : text) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_' || c == '+';
    if (!keep) c = '_';
  }
  if (text.size() > kMaxSlugLength) text.resize(kMaxSlugLength);
  return text;
}

std::size_t decimal_digits(std::size_t value) {
  std::size_t digits = 1;
  while (value >= 10) {
    value /= 10;
    ++digits;
  }
  return digits;
}

std::string mode_name(SweepMode mode) {
  return mode == SweepMode::zip ? "zip" : "cross";
}

nlohmann::json points_json(const std::vector<SweepPoint>& points) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& point : points) {
    list.push_back({{"index", point.index}, {"report", point.file}, {"values", point.values}});
  }
  return list;
}

std::optional<nlohmann::json> read_report(const std::filesystem::path& file) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) return std::nullopt;
  nlohmann::json report = nlohmann::json::parse(read_text_file(file), nullptr, false);
  if (!report.is_object()) return std::nullopt;
  return report;
}

std::filesystem::path manifest_file(const std::filesystem::path& sweep_directory) {
  return sweep_directory / "sweep.json";
}

// Checks the directory's manifest against this sweep, or writes it when there is none.
void prepare_directory(const SweepManifest& manifest, const std::filesystem::path& sweep_directory) {
  const auto file = manifest_file(sweep_directory);
  std::error_code error;
  if (std::filesystem::exists(file, error)) {
    require_same_sweep(read_manifest(sweep_directory), manifest, file.string());
    return;
  }
  write_file_atomically(file, manifest_json(manifest).dump(2) + "\n");
}

struct SummaryColumn {
  const char* name;
  const char* pointer;
};

const std::vector<SummaryColumn>& summary_columns() {
  static const std::vector<SummaryColumn> columns = {
      {"requests_per_s", "/summary/throughput/requests_per_s"},
      {"output_tokens_per_s", "/summary/throughput/output_tokens_per_s"},
      {"output_tokens_per_s_per_gpu", "/summary/output_tokens_per_s_per_gpu"},
      {"ttft_p50_s", "/summary/ttft_s/p50"},
      {"ttft_p99_s", "/summary/ttft_s/p99"},
      {"tpot_p50_s", "/summary/tpot_s/p50"},
      {"tpot_p99_s", "/summary/tpot_s/p99"},
      {"e2e_p50_s", "/summary/e2e_s/p50"},
      {"e2e_p99_s", "/summary/e2e_s/p99"},
      {"drop_rate", "/moe/drop_rate"},
      {"expert_max_over_mean", "/moe/imbalance/expert_max_over_mean/mean"},
      {"rank_max_over_mean", "/moe/imbalance/rank_max_over_mean/mean"},
      {"gpus", "/summary/gpus"},
      {"completed", "/summary/requests/completed"},
      {"arrived", "/summary/requests/arrived"},
  };
  return columns;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

std::string csv_value(const nlohmann::json& value) {
  return value.is_null() ? std::string() : csv_field(value_text(value));
}

// One point's work: everything it needs is its own, so points may run on any thread.
void run_point(const SweepManifest& manifest, const SweepPoint& point,
               const std::filesystem::path& sweep_directory, bool reproducible) {
  const Scenario scenario =
      load_scenario(manifest.scenario_file, point_overrides(manifest.overrides, manifest.axes, point));
  const auto start = std::chrono::steady_clock::now();
  const SimulationResult result = simulate(simulation_inputs(scenario));
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Peak memory is a process-wide figure shared by the concurrent points, so a
  // sweep does not attribute it to any one of them.
  const SimulatorCost cost{.wall_s = wall_s, .peak_rss_bytes = 0, .reproducible = reproducible};
  write_file_atomically(sweep_directory / point.file, render_report(build_report(scenario, result, cost)));
}

}  // namespace

SweepAxis parse_vary(std::string_view option) {
  const auto equals = option.find('=');
  if (equals == std::string_view::npos) throw InputError(kVarySource, option, kVarySyntax);
  SweepAxis axis;
  axis.key = std::string(option.substr(0, equals));
  check_key(axis.key, option);
  const std::string_view text = option.substr(equals + 1);
  if (text.empty()) throw InputError(kVarySource, option, "empty list of values");
  const auto items = split_top_level(text, ',');
  if (items.size() == 1 && split_top_level(text, ':').size() > 1) {
    axis.values = expand_range(text, option);
    return axis;
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty()) {
      throw InputError(kVarySource, option, fmt::format("value {} of the list is empty", i + 1));
    }
    axis.values.push_back(parse_value(items[i]));
  }
  if (axis.values.size() > kMaxSweepPoints) {
    throw InputError(kVarySource, option,
                     fmt::format("the list has {} values; at most {}", axis.values.size(), kMaxSweepPoints));
  }
  return axis;
}

std::vector<SweepPoint> expand_grid(const std::vector<SweepAxis>& axes, SweepMode mode) {
  if (axes.empty()) throw InputError(kVarySource, "", "a sweep needs at least one --vary");
  for (std::size_t a = 0; a < axes.size(); ++a) {
    if (axes[a].values.empty()) throw InputError(kVarySource, axes[a].key, "empty list of values");
    for (std::size_t b = 0; b < a; ++b) {
      if (axes[a].key == axes[b].key) throw InputError(kVarySource, axes[a].key, "the key is varied twice");
    }
  }
  std::size_t count = 1;
  if (mode == SweepMode::zip) {
    count = axes[0].values.size();
    for (const auto& axis : axes) {
      if (axis.values.size() != count) {
        throw InputError("--zip", "",
                         fmt::format("zipped --vary lists need equal lengths: {} has {} values but {} has {}",
                                     axes[0].key, count, axis.key, axis.values.size()));
      }
    }
  } else {
    for (const auto& axis : axes) {
      if (count > kMaxSweepPoints / axis.values.size()) {
        throw InputError(kVarySource, "",
                         fmt::format("the cross product has more than {} points", kMaxSweepPoints));
      }
      count *= axis.values.size();
    }
  }
  const std::size_t width = decimal_digits(count - 1);
  std::vector<SweepPoint> points(count);
  for (std::size_t index = 0; index < count; ++index) {
    SweepPoint& point = points[index];
    point.index = index;
    point.values.resize(axes.size());
    std::size_t rest = index;
    for (std::size_t a = axes.size(); a-- > 0;) {
      const std::size_t n = axes[a].values.size();
      point.values[a] = axes[a].values[mode == SweepMode::zip ? index : rest % n];
      rest /= n;
    }
    point.file = fmt::format("points/{:0{}}-{}.json", index, width, slug(axes, point.values));
  }
  return points;
}

std::vector<std::string> point_overrides(const std::vector<std::string>& base_overrides,
                                         const std::vector<SweepAxis>& axes, const SweepPoint& point) {
  std::vector<std::string> overrides = base_overrides;
  for (std::size_t a = 0; a < axes.size(); ++a)
    overrides.push_back(axes[a].key + "=" + point.values[a].dump());
  return overrides;
}

std::string describe_point(const std::vector<SweepAxis>& axes, const SweepPoint& point) {
  std::string text;
  for (std::size_t a = 0; a < axes.size(); ++a) {
    if (a > 0) text += ", ";
    text += axes[a].key + "=" + point.values[a].dump();
  }
  return text;
}

SweepShard parse_shard(std::string_view text) {
  constexpr std::string_view kExpected =
      "expected i/N with 0 <= i < N (shards are numbered from 0), e.g. 0/4";
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) throw InputError("--shard", text, kExpected);
  const auto parse_count = [&](std::string_view digits) {
    if (digits.empty() || digits.size() > 9 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos) {
      throw InputError("--shard", text, kExpected);
    }
    return static_cast<std::size_t>(std::stoul(std::string(digits)));
  };
  const SweepShard shard{.index = parse_count(text.substr(0, slash)),
                         .count = parse_count(text.substr(slash + 1))};
  if (shard.count == 0 || shard.index >= shard.count) throw InputError("--shard", text, kExpected);
  return shard;
}

SweepManifest make_manifest(const std::filesystem::path& scenario_file,
                            const std::vector<std::string>& overrides, SweepMode mode,
                            const std::vector<SweepAxis>& axes) {
  return SweepManifest{.scenario_file = scenario_file.string(),
                       .scenario_document = JsonReader::parse_file(scenario_file),
                       .overrides = overrides,
                       .mode = mode,
                       .axes = axes};
}

nlohmann::json manifest_json(const SweepManifest& manifest) {
  nlohmann::json axes = nlohmann::json::array();
  for (const auto& axis : manifest.axes)
    axes.push_back({{"key", axis.key}, {"values", axis.values}});
  return {{"schema_version", kSweepSchemaVersion},
          {"scenario", {{"file", manifest.scenario_file}, {"document", manifest.scenario_document}}},
          {"overrides", manifest.overrides},
          {"mode", mode_name(manifest.mode)},
          {"axes", axes},
          {"points", points_json(expand_grid(manifest.axes, manifest.mode))}};
}

SweepManifest parse_manifest(const nlohmann::json& document, const std::string& source) {
  const JsonReader reader(document, source);
  if (reader.integer("schema_version") != kSweepSchemaVersion) {
    reader.fail("schema_version",
                fmt::format("this moesim reads sweep schema version {}", kSweepSchemaVersion));
  }
  SweepManifest manifest;
  const JsonReader scenario = reader.object("scenario");
  manifest.scenario_file = scenario.string("file");
  manifest.scenario_document = scenario.raw("document");
  if (!manifest.scenario_document.is_object()) scenario.fail("document", "expected an object");
  scenario.finish();
  manifest.overrides = reader.string_array("overrides");
  manifest.mode = reader.choice("mode", {"cross", "zip"}) == "zip" ? SweepMode::zip : SweepMode::cross;
  for (const JsonReader& axis_reader : reader.object_array("axes")) {
    SweepAxis axis;
    axis.key = axis_reader.string("key");
    check_key(axis.key, axis_reader.place("key"));
    const nlohmann::json& values = axis_reader.raw("values");
    if (!values.is_array() || values.empty()) axis_reader.fail("values", "expected a non-empty array");
    axis.values.assign(values.begin(), values.end());
    axis_reader.finish();
    manifest.axes.push_back(std::move(axis));
  }
  std::vector<SweepPoint> points;
  try {
    points = expand_grid(manifest.axes, manifest.mode);
  } catch (const InputError& error) {
    reader.fail("axes", error.what());
  }
  if (reader.raw("points") != points_json(points)) {
    reader.fail("points", "the point list does not match the axes (was the file edited?)");
  }
  reader.finish();
  return manifest;
}

SweepManifest read_manifest(const std::filesystem::path& sweep_directory) {
  const auto file = manifest_file(sweep_directory);
  std::error_code error;
  if (!std::filesystem::exists(file, error)) {
    throw InputError(sweep_directory.string(), "", "not a sweep directory (it has no sweep.json)");
  }
  return parse_manifest(JsonReader::parse_file(file), file.string());
}

void require_same_sweep(const SweepManifest& existing, const SweepManifest& wanted,
                        const std::string& existing_source) {
  const auto differ = [&](std::string_view place, const nlohmann::json& has, const nlohmann::json& wants) {
    throw InputError(existing_source, place,
                     fmt::format("the directory holds another sweep: it has {} where this one has {} (use "
                                 "another output directory, or the same scenario and grid)",
                                 has.dump(), wants.dump()));
  };
  if (existing.scenario_document != wanted.scenario_document) {
    throw InputError(existing_source, "scenario.document",
                     fmt::format("the directory holds a sweep of another scenario content ({} differs from "
                                 "the one recorded there)",
                                 wanted.scenario_file));
  }
  if (existing.overrides != wanted.overrides) differ("overrides", existing.overrides, wanted.overrides);
  if (existing.mode != wanted.mode) differ("mode", mode_name(existing.mode), mode_name(wanted.mode));
  if (existing.axes.size() != wanted.axes.size()) {
    differ("axes", static_cast<int>(existing.axes.size()), static_cast<int>(wanted.axes.size()));
  }
  for (std::size_t a = 0; a < existing.axes.size(); ++a) {
    if (existing.axes[a].key != wanted.axes[a].key) {
      differ(fmt::format("axes[{}].key", a), existing.axes[a].key, wanted.axes[a].key);
    }
    if (existing.axes[a].values != wanted.axes[a].values) {
      differ(fmt::format("axes[{}].values ({})", a, existing.axes[a].key), existing.axes[a].values,
             wanted.axes[a].values);
    }
  }
}

bool point_report_complete(const std::filesystem::path& report_file) {
  return read_report(report_file).has_value();
}

SweepOutcome run_sweep(const SweepManifest& manifest, const std::filesystem::path& sweep_directory,
                       const SweepOptions& options) {
  const std::vector<SweepPoint> points = expand_grid(manifest.axes, manifest.mode);
  if (options.shard.count == 0 || options.shard.index >= options.shard.count) {
    throw InputError("--shard", fmt::format("{}/{}", options.shard.index, options.shard.count),
                     "expected i/N with 0 <= i < N");
  }
  prepare_directory(manifest, sweep_directory);

  SweepOutcome outcome;
  outcome.points = points.size();
  std::vector<const SweepPoint*> pending;
  for (const auto& point : points) {
    if (point.index % options.shard.count != options.shard.index) continue;
    ++outcome.in_shard;
    if (point_report_complete(sweep_directory / point.file)) {
      ++outcome.skipped;
    } else {
      pending.push_back(&point);
    }
  }

  run_in_parallel(
      pending.size(), options.jobs,
      [&](std::size_t slot) {
        const SweepPoint& point = *pending[slot];
        try {
          run_point(manifest, point, sweep_directory, options.reproducible);
        } catch (const InputError& error) {
          throw InputError(fmt::format("sweep point {} ({}): {}", point.index,
                                       describe_point(manifest.axes, point), error.what()));
        }
      },
      [&](std::size_t finished) {
        if (options.progress) options.progress(finished, pending.size());
      });
  outcome.ran = pending.size();
  outcome.summarised = write_sweep_summary(manifest, sweep_directory);
  return outcome;
}

const std::vector<std::string>& summary_metric_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> list;
    for (const auto& column : summary_columns())
      list.emplace_back(column.name);
    return list;
  }();
  return names;
}

nlohmann::json headline_metrics(const nlohmann::json& report) {
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& column : summary_columns()) {
    const nlohmann::json::json_pointer pointer(column.pointer);
    metrics[column.name] = report.contains(pointer) ? report.at(pointer) : nlohmann::json();
  }
  return metrics;
}

std::size_t write_sweep_summary(const SweepManifest& manifest, const std::filesystem::path& sweep_directory) {
  const std::vector<SweepPoint> points = expand_grid(manifest.axes, manifest.mode);
  std::string csv = "index,report";
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& axis : manifest.axes) {
    csv += ',';
    csv += csv_field(axis.key);
    keys.push_back(axis.key);
  }
  for (const auto& column : summary_columns()) {
    csv += ',';
    csv += column.name;
  }
  csv += "\n";

  nlohmann::json rows = nlohmann::json::array();
  for (const auto& point : points) {
    const auto report = read_report(sweep_directory / point.file);
    if (!report) continue;
    csv += fmt::format("{},{}", point.index, csv_field(point.file));
    nlohmann::json values = nlohmann::json::object();
    for (std::size_t a = 0; a < manifest.axes.size(); ++a) {
      csv += ',';
      csv += csv_value(point.values[a]);
      values[manifest.axes[a].key] = point.values[a];
    }
    const nlohmann::json metrics = headline_metrics(*report);
    for (const auto& column : summary_columns()) {
      csv += ',';
      csv += csv_value(metrics.at(column.name));
    }
    csv += "\n";
    rows.push_back(
        {{"index", point.index}, {"report", point.file}, {"values", values}, {"metrics", metrics}});
  }
  const nlohmann::json summary = {{"schema_version", kSweepSchemaVersion},
                                  {"scenario", manifest.scenario_file},
                                  {"mode", mode_name(manifest.mode)},
                                  {"keys", keys},
                                  {"metrics", summary_metric_names()},
                                  {"points_in_grid", points.size()},
                                  {"points", rows}};
  write_file_atomically(sweep_directory / "summary.csv", csv);
  write_file_atomically(sweep_directory / "summary.json", summary.dump(2) + "\n");
  return rows.size();
}

MergeOutcome merge_sweeps(const std::vector<std::filesystem::path>& inputs,
                          const std::filesystem::path& output) {
  if (inputs.empty()) throw InputError("merge", "", "expected at least one sweep directory");
  const SweepManifest manifest = read_manifest(inputs[0]);
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    require_same_sweep(read_manifest(inputs[i]), manifest, manifest_file(inputs[i]).string());
  }
  prepare_directory(manifest, output);

  MergeOutcome outcome;
  const std::vector<SweepPoint> points = expand_grid(manifest.axes, manifest.mode);
  outcome.points = points.size();
  for (const auto& point : points) {
    const auto target = output / point.file;
    bool present = point_report_complete(target);
    for (std::size_t i = 0; i < inputs.size() && !present; ++i) {
      const auto source = inputs[i] / point.file;
      if (!point_report_complete(source)) continue;
      write_file_atomically(target, read_text_file(source));
      present = true;
    }
    if (present) {
      ++outcome.present;
    } else {
      outcome.missing.push_back(point.index);
    }
  }
  write_sweep_summary(manifest, output);
  return outcome;
}

}  // namespace moesim
