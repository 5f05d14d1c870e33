#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

// Sweeps: many points of one scenario, each a set of --set overrides, run in
// parallel into one directory with a manifest, per-point reports and a summary.
//
// Directory layout:
//   DIR/sweep.json              manifest (the scenario, base overrides, axes and point list)
//   DIR/points/<index>-<slug>.json   one report per point, written atomically
//   DIR/summary.csv, summary.json    headline metrics of every point present
namespace moesim {

inline constexpr int kSweepSchemaVersion = 1;
// Larger grids are almost certainly a typo in a range step.
inline constexpr std::size_t kMaxSweepPoints = 100'000;

// One --vary option: a scenario key and the values it takes.
struct SweepAxis {
  std::string key;  // dotted path, as for --set
  std::vector<nlohmann::json> values;
  bool operator==(const SweepAxis&) const = default;
};

// Parses "key=v1,v2,..." (each value read like a --set value: JSON when it parses,
// else a string; commas inside brackets or quotes do not split) or
// "key=start:stop:step" (a value with colons and no top-level comma; numbers, step
// > 0, stop >= start; stop is included when it lands on the grid start + i*step);
// "key=start:stop" takes step 1.
// Integer start, stop and step give integer values. Errors name the option.
SweepAxis parse_vary(std::string_view option);

enum class SweepMode { cross, zip };

struct SweepPoint {
  std::size_t index = 0;
  std::vector<nlohmann::json> values;  // one per axis, in axis order
  std::string file;                    // report path relative to the sweep directory
};

// The cross product of the axes (the last axis varies fastest) or, with zip, the
// i-th value of every axis (equal lengths required). Errors name the axes.
std::vector<SweepPoint> expand_grid(const std::vector<SweepAxis>& axes, SweepMode mode);

// The --set overrides of a point, after the base overrides.
std::vector<std::string> point_overrides(const std::vector<std::string>& base_overrides,
                                         const std::vector<SweepAxis>& axes, const SweepPoint& point);

// "key=value, key=value" for messages.
std::string describe_point(const std::vector<SweepAxis>& axes, const SweepPoint& point);

// --shard i/N: this process runs the points whose index % count == index.
// Shard indices are 0-based: 0/2 and 1/2 cover a sweep.
struct SweepShard {
  std::size_t index = 0;
  std::size_t count = 1;
};
SweepShard parse_shard(std::string_view text);

// What identifies a sweep. Two runs into one directory must agree on all of it
// except scenario_file (the same scenario may be reached by another path).
struct SweepManifest {
  std::string scenario_file;           // as given on the command line
  nlohmann::json scenario_document;    // the scenario file's content, before overrides
  std::vector<std::string> overrides;  // --set, applied before each point's values
  SweepMode mode = SweepMode::cross;
  std::vector<SweepAxis> axes;
};

// Reads the scenario file (its content is part of the sweep's identity).
SweepManifest make_manifest(const std::filesystem::path& scenario_file,
                            const std::vector<std::string>& overrides, SweepMode mode,
                            const std::vector<SweepAxis>& axes);

nlohmann::json manifest_json(const SweepManifest& manifest);
// Strict reader of DIR/sweep.json; errors name the file and the key. The stored
// point list must match the one the axes expand to.
SweepManifest parse_manifest(const nlohmann::json& document, const std::string& source);
SweepManifest read_manifest(const std::filesystem::path& sweep_directory);

// Throws an InputError naming `existing_source` and the first field in which the
// two sweeps differ.
void require_same_sweep(const SweepManifest& existing, const SweepManifest& wanted,
                        const std::string& existing_source);

// Whether a point's report exists and parses as JSON (a resumed sweep skips it).
bool point_report_complete(const std::filesystem::path& report_file);

struct SweepOptions {
  std::size_t jobs = 1;
  SweepShard shard;
  // Wall-clock figures written as 0, so reruns give byte-identical reports.
  bool reproducible = false;
  // Called on the calling thread about twice a second and once at the end.
  std::function<void(std::size_t done, std::size_t total)> progress;
};

struct SweepOutcome {
  std::size_t points = 0;  // in the whole grid
  std::size_t in_shard = 0;
  std::size_t skipped = 0;  // reports already present
  std::size_t ran = 0;      // simulated by this call
  std::size_t summarised = 0;
};

// Runs the points of the shard that have no complete report, `jobs` at a time, then
// writes the summary of every point present in the directory. Each point is
// load_scenario + simulate on its own, so its report does not depend on the job
// count. A point that fails with an InputError stops the sweep (running points
// finish, their reports stay) and is rethrown naming the point and its values.
SweepOutcome run_sweep(const SweepManifest& manifest, const std::filesystem::path& sweep_directory,
                       const SweepOptions& options);

// Headline metrics, in column order after "index", "report" and the varied keys.
const std::vector<std::string>& summary_metric_names();

// The headline metrics of a report by name (null where the report has no such field).
nlohmann::json headline_metrics(const nlohmann::json& report);

// Writes DIR/summary.csv and DIR/summary.json from the reports present; returns
// how many points they hold.
std::size_t write_sweep_summary(const SweepManifest& manifest, const std::filesystem::path& sweep_directory);

struct MergeOutcome {
  std::size_t points = 0;
  std::size_t present = 0;
  std::vector<std::size_t> missing;  // point indices no input directory had
};

// Joins sweep directories (shards) into `output`: their manifests must agree (and
// agree with output's, if it has one); complete reports are copied, then the
// summary is written. `output` may be one of the inputs.
MergeOutcome merge_sweeps(const std::vector<std::filesystem::path>& inputs,
                          const std::filesystem::path& output);

}  // namespace moesim
