#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"
#include "sim/hardware/memory.hpp"
#include "sim/moe/placement.hpp"
#include "sim/serving/scheduler.hpp"
#include "sim/serving/step_cost.hpp"

namespace moesim {

enum class LoadBalancerPolicy { least_outstanding, round_robin };

// How the model is deployed on the cluster: identical instances side by side,
// each on its own consecutive GPUs.
struct DeploymentSpec {
  int instances = 1;
  ParallelLayout layout;
  SchedulerSpec scheduler;
  // Assumption: vLLM's default share of HBM; the activation reserve is moesim's own guess for
  // activations, CUDA graphs and communication buffers (set it per deployment).
  double gpu_memory_utilization = 0.9;
  double activation_reserve_bytes = 4e9;
  // Assumption (moesim's own): a request goes to the DP rank with the fewest outstanding requests.
  LoadBalancerPolicy load_balancer = LoadBalancerPolicy::least_outstanding;
  PlacementSpec placement;
  StepCostOptions step;
};

// Prefill/decode disaggregation: prefill instances compute prompts and first tokens, then each request's
// KV cache moves over the cluster to a decode instance, which generates the rest. Prefill instances take
// the first GPUs, decode instances the next ones. Each group's load_balancer picks its DP rank: the
// prefill group's for an arriving request, the decode group's (among ranks with room for the KV cache)
// when a prefill finishes.
struct DisaggregationSpec {
  DeploymentSpec prefill;
  DeploymentSpec decode;
};

// Reads the scenario's "deployment" object:
// {"instances", "parallel": {attention_tp, attention_dp, expert_ep, expert_tp, redundant_experts},
//  "scheduler": {max_sequences, max_batched_tokens, chunked_prefill, kv_block_tokens, prefix_caching},
//  "gpu_memory_utilization", "activation_reserve_GB", "load_balancer", "placement": {kind, ...}
//  (placement.hpp), "precision": {weights, experts, dispatch, combine}, "kernels_per_layer",
//  "overlap_micro_batches", "expert_kernel": "grouped" | "per_expert"}
// Relative paths inside (a placement file) are resolved against `base_dir`.
DeploymentSpec parse_deployment(const JsonReader& reader, const std::filesystem::path& base_dir = ".");
nlohmann::json to_json(const DeploymentSpec& spec);

// A disaggregated "deployment" object has "prefill" and "decode" groups (each a deployment object
// without "precision") and an optional "precision" that both share.
bool is_disaggregated(const JsonReader& reader);
DisaggregationSpec parse_disaggregation(const JsonReader& reader,
                                        const std::filesystem::path& base_dir = ".");
nlohmann::json to_json(const DisaggregationSpec& spec);

}  // namespace moesim
