#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

// Where the per-layer expert popularity comes from.
enum class PopularityKind { uniform, zipf, empirical, preset };

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

// The "router" object of a scenario:
//   {"kind": "uniform"}
//   {"kind": "zipf", "exponent": 1.0}              exponent in [0, 5], default 1
//   {"kind": "empirical", "file": "${MOESIM_DATA}/routing/olmoe-mixtral/expert_counts.csv" (default),
//    "model": "OLMoE-1B-7B-0924", "domains": ["arxiv", ...], "selection": "topk" | "top1" (default topk)}
//   {"kind": "preset", "name": "deepseek-v3"}      name required
struct RouterSpec {
  PopularityKind kind = PopularityKind::uniform;
  double zipf_exponent = 1.0;
  EmpiricalSource empirical;
  PopularityPreset preset = PopularityPreset::deepseek_v3;
};

// Relative file paths are resolved against `base_dir` (the folder of the file being read).
RouterSpec parse_router(const JsonReader& reader, const std::filesystem::path& base_dir);
nlohmann::json to_json(const RouterSpec& spec);

}  // namespace moesim
