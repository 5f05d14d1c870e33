#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

// At most this many traffic classes, and (class, affinity group) routing components over all classes:
// each component keeps per-layer sampler tables and costs a sample per layer and step it has tokens in.
inline constexpr int kMaxTrafficClasses = 64;
inline constexpr int kMaxRoutingComponents = 256;

// Where the per-layer expert popularity comes from.
enum class PopularityKind { uniform, zipf, empirical, preset, dirichlet };

// Built-in per-layer popularity profiles matched to published load statistics (popularity.hpp).
enum class PopularityPreset { deepseek_v3 };

// Which counts of an empirical file to use: all top-k choices, or the first choice only.
enum class CountSelection { topk, top1 };

// Measured per-expert counts (a CSV with columns model,domain,selection,layer,expert,count, such
// as data/routing/olmoe-mixtral/expert_counts.csv); the counts of the chosen domains are pooled.
struct EmpiricalSource {
  std::filesystem::path file;
  std::string model;
  std::vector<std::string> domains;
  CountSelection selection = CountSelection::topk;
};

// One popularity source:
//   {"kind": "uniform"}
//   {"kind": "zipf", "exponent": 1.0}              exponent in [0, 5], default 1
//   {"kind": "dirichlet", "alpha": 1.0}            alpha in [0.01, 1000], default 1
//   {"kind": "empirical", "file": "${MOESIM_DATA}/routing/olmoe-mixtral/expert_counts.csv" (default),
//    "model": "OLMoE-1B-7B-0924", "domains": ["arxiv", ...], "selection": "topk" | "top1" (default topk)}
//   {"kind": "preset", "name": "deepseek-v3"}      name required
struct PopularitySpec {
  PopularityKind kind = PopularityKind::uniform;
  double zipf_exponent = 1.0;
  double dirichlet_alpha = 1.0;
  EmpiricalSource empirical;
  PopularityPreset preset = PopularityPreset::deepseek_v3;
};

// Cross-layer routing correlation (cross_layer.hpp): a token's experts at MoE layer l make some
// experts at layer l + 1 likelier. Fitted from measured transition counts (a CSV with columns
// model,domain,selection,layer_from,layer_to,expert_from,expert_to,count, such as
// data/routing/olmoe-mixtral/crosslayer_counts.csv; the counts of the chosen domains are pooled):
//   {"file": "${MOESIM_DATA}/routing/olmoe-mixtral/crosslayer_counts.csv" (default),
//    "model": "OLMoE-1B-7B-0924", "domains": ["arxiv", ...], "selection": "topk" | "top1" (default topk),
//    "strength": 1}
// or synthetic, for models without measurements: each expert at layer l has `successors` seeded
// random successor experts at l + 1:
//   {"successors": 4, "strength": 0.5}
// strength rho in [0, 1] (default 1) blends the transition matrix with independent routing:
// M = (1 - rho) 1 p^T + rho M_fit; 0 is no correlation.
enum class CorrelationKind { none, fitted, synthetic };

struct CorrelationSpec {
  CorrelationKind kind = CorrelationKind::none;
  EmpiricalSource counts;  // fitted: the transition counts file, model, domains and selection
  int successors = 0;      // synthetic
  double strength = 1.0;

  // Whether the layers are linked at all (a strength of 0 leaves them independent).
  bool active() const { return kind != CorrelationKind::none && strength > 0; }
};

// A traffic class: requests of one kind (code, chat, a tenant) that share a popularity vector.
// With a concentration c > 0 each request routes by its own vector, drawn around the class's
// (router.hpp: affinity groups); c = 0 routes every request of the class by the class's vector.
struct TrafficClassSpec {
  std::string name;
  PopularitySpec popularity;
  double concentration = 0;
  int affinity_groups = 1;
};

// How a request gets its class.
enum class ClassSource {
  mix,           // drawn from weights (per request, from its id and the seed), which may drift
  trace_column,  // the workload's class column: by name (class_names) or by index
  tenant_map,    // the workload's class values mapped to classes by name
};

// The class weights from a time on.
struct MixPoint {
  double at_s = 0;
  std::vector<double> weights;  // per class, sum 1
};

// Hot experts rotate: every period_s, every class's popularity moves experts_per_period experts
// on (expert e's load goes to expert e + offset mod experts).
struct RotationSpec {
  double period_s = 0;  // 0: no rotation
  int experts_per_period = 0;
};

// The "router" object of a scenario. Either one popularity source (the keys of PopularitySpec, the
// original format: one class that every request belongs to), or
//   {"classes": [{"name": "code", "popularity": {...source...}, "concentration": 50,
//                 "affinity_groups": 8}, ...],
//    "class_from": {"mix": {"code": 0.7, "chat": 0.3}} | {"trace_column": "class"}
//                | {"tenant_map": {"tenant-a": "code", "7": "chat"}},
//    "drift": {"schedule": [{"at_s": 1800, "mix": {...}}, ...], "interpolate": false,
//              "rotation": {"period_s": 600, "experts_per_period": 1}}}
// Both forms take "drift" (a schedule needs a mix) and "correlation" (CorrelationSpec). Or a recorded routing
// trace that drives every count (recorded_routing.hpp; no classes, mix or drift):
//   {"kind": "replay", "file": "routing.csv"}
struct RouterSpec : PopularitySpec {
  std::vector<TrafficClassSpec> classes;  // empty: one class from the PopularitySpec fields
  ClassSource class_source = ClassSource::mix;
  std::vector<MixPoint> mix;  // mix source: first point at 0 s (class_from), then the schedule
  bool interpolate = false;   // blend linearly between consecutive mix points instead of stepping
  std::string trace_column;
  // tenant_map: workload class value (a name of its class_names, or an index) -> class name.
  std::vector<std::pair<std::string, std::string>> tenant_map;
  // trace_column and tenant_map, after bind_traffic_classes: the class of each workload class index
  // (-1: none); empty with trace_column and no class_names means class = workload class index.
  std::vector<int> class_of_traffic_class;
  RotationSpec rotation;
  CorrelationSpec correlation;
  // "kind": "replay": the routing trace (resolved path); empty otherwise.
  std::filesystem::path replay_file;

  // The classes the router builds (one "default" class from the PopularitySpec fields when
  // `classes` is empty).
  std::vector<TrafficClassSpec> resolved_classes() const;
  bool hierarchical() const { return !classes.empty() || rotation.period_s > 0 || mix.size() > 1; }
};

// Relative file paths are resolved against `base_dir` (the folder of the file being read).
RouterSpec parse_router(const JsonReader& reader, const std::filesystem::path& base_dir);
PopularitySpec parse_popularity(const JsonReader& reader, const std::filesystem::path& base_dir);
CorrelationSpec parse_correlation(const JsonReader& reader, const std::filesystem::path& base_dir);
nlohmann::json to_json(const RouterSpec& spec);
nlohmann::json to_json(const PopularitySpec& spec);

// Ties trace_column and tenant_map to the workload's classes: `class_column` is the workload
// trace's class column ("" when it has none: every request has the workload's constant class) and
// `class_names` its names ("" when the column holds indices). InputError (naming `source` and
// router.class_from) when a name does not match.
void bind_traffic_classes(RouterSpec& spec, const std::string& class_column,
                          const std::vector<std::string>& class_names, const std::string& source);

}  // namespace moesim
