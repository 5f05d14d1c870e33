#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

// What happens to assignments beyond an expert's (or a rank's) capacity.
enum class CapacityPolicy {
  drop,      // overflow is dropped (the token's expert output is missing from the combine)
  reroute,   // overflow moves to the tokens' next choices that have room; what finds none is dropped
  dropless,  // everything is kept; the straggler grows instead
};

// Where the capacity applies.
enum class CapacityScope {
  per_expert,  // each expert (all its slots together) takes at most its capacity
  per_rank,    // each EP rank takes at most experts-per-rank times the per-expert capacity
};

// The "capacity" object of a scenario:
//   {"capacity_factor": 1.0 (positive, at most 1000) or [one factor per MoE layer],
//    "policy": "dropless" | "drop" | "reroute" (default dropless),
//    "scope": "per_expert" | "per_rank" (default per_expert)}
// Assumption: dropless is the default because the serving engines moesim models (vLLM, SGLang,
// TensorRT-LLM) run MoE layers without token dropping (moesim's own reading of their defaults).
struct CapacitySpec {
  double capacity_factor = 1.0;       // every layer's factor unless layer_factors is given
  std::vector<double> layer_factors;  // one per MoE layer, or empty
  CapacityPolicy policy = CapacityPolicy::dropless;
  CapacityScope scope = CapacityScope::per_expert;

  // The capacity factor of MoE layer `layer` (InternalError outside the per-layer list).
  double factor(int layer) const;
};

CapacitySpec parse_capacity(const JsonReader& reader);
nlohmann::json to_json(const CapacitySpec& spec);
const char* capacity_policy_name(CapacityPolicy policy);
// InputError (source, "capacity.capacity_factor") unless a per-layer list has one factor per MoE layer.
void check_capacity_layers(const CapacitySpec& spec, int moe_layers, const std::string& source);

// ceil(capacity_factor * tokens * top_k / experts): the most assignments one expert keeps in a
// micro-batch of `tokens` tokens. A relative 1e-12 is taken off before rounding up so that exact
// products (1.25 * 2048 / 256 = 10) are not pushed up by floating-point error.
std::int64_t expert_capacity(double capacity_factor, std::int64_t tokens, int top_k, int experts);
// The per-rank capacity: ceil(capacity_factor * tokens * top_k * experts_per_rank / experts).
std::int64_t rank_capacity(double capacity_factor, std::int64_t tokens, int top_k, int experts,
                           int experts_per_rank);

}  // namespace moesim
