#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

// What happens to assignments beyond an expert's (or a rank's) capacity.
enum class CapacityPolicy {
  drop,      // overflow is dropped (the token's expert output is missing from the combine)
  dropless,  // everything is kept; the straggler grows instead
};

// Where the capacity applies.
enum class CapacityScope {
  per_expert,  // each expert (all its slots together) takes at most its capacity
  per_rank,    // each EP rank takes at most experts-per-rank times the per-expert capacity
};

// The "capacity" object of a scenario:
//   {"capacity_factor": 1.0 (positive, at most 1000), "policy": "dropless" | "drop" (default dropless),
//    "scope": "per_expert" | "per_rank" (default per_expert)}
// Assumption: dropless is the default because the serving engines moesim models (vLLM, SGLang,
// TensorRT-LLM) run MoE layers without token dropping (moesim's own reading of their defaults).
struct CapacitySpec {
  double capacity_factor = 1.0;
  CapacityPolicy policy = CapacityPolicy::dropless;
  CapacityScope scope = CapacityScope::per_expert;
};

CapacitySpec parse_capacity(const JsonReader& reader);
nlohmann::json to_json(const CapacitySpec& spec);

// ceil(capacity_factor * tokens * top_k / experts): the most assignments one expert keeps in a
// micro-batch of `tokens` tokens. A relative 1e-12 is taken off before rounding up so that exact
// products (1.25 * 2048 / 256 = 10) are not pushed up by floating-point error.
std::int64_t expert_capacity(const CapacitySpec& spec, std::int64_t tokens, int top_k, int experts);
// The per-rank capacity: ceil(capacity_factor * tokens * top_k * experts_per_rank / experts).
std::int64_t rank_capacity(const CapacitySpec& spec, std::int64_t tokens, int top_k, int experts,
                           int experts_per_rank);

}  // namespace moesim
