#pragma once

#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"
#include "sim/hardware/gpu_spec.hpp"
#include "sim/model/model_spec.hpp"

namespace moesim {

// How one instance splits the model over its GPUs. Attention (with the dense FFNs, shared
// experts, router and embeddings) runs on attention_dp ranks of attention_tp GPUs each; routed
// experts are spread over expert_ep groups of expert_tp GPUs each; both cover the same GPUs.
// redundant_experts extra expert slots per MoE layer hold replicas of hot experts.
// JSON keys are the field names; every one is optional (defaults below).
struct ParallelLayout {
  int attention_tp = 1;
  int attention_dp = 1;
  int expert_ep = 1;
  int expert_tp = 1;
  int redundant_experts = 0;

  int gpus() const { return attention_tp * attention_dp; }
};

ParallelLayout parse_parallel_layout(const JsonReader& reader);
nlohmann::json to_json(const ParallelLayout& layout);
// Throws InputError naming `source` and the offending key when the layout does not fit the model:
// unequal GPU counts, heads or experts that do not divide evenly.
void validate_layout(const ParallelLayout& layout, const ModelSpec& model, std::string_view source);

// Memory of one GPU of an instance. Byte figures are per GPU.
struct MemoryPlan {
  double hbm_bytes = 0;
  double usable_bytes = 0;  // hbm_bytes * gpu_memory_utilization
  double non_expert_weight_bytes = 0;
  double expert_weight_bytes = 0;
  double weight_bytes = 0;  // non-expert + expert
  double activation_reserve_bytes = 0;
  double kv_cache_bytes = 0;      // usable - weights - activation reserve
  double kv_bytes_per_token = 0;  // this GPU's share of one token's cache, all layers
  int expert_slots_per_gpu = 0;   // routed-expert slots per MoE layer on this GPU
  int kv_heads_per_gpu = 0;       // gqa: cached KV heads per GPU; mla: 0 (the latent is replicated)
  // Tokens of KV cache one attention rank holds (each of its attention_tp GPUs keeps its share).
  std::int64_t kv_token_capacity = 0;
  // The same for the whole instance: attention_dp ranks hold different sequences.
  std::int64_t instance_kv_token_capacity = 0;
};

// Weights per GPU: attention, dense FFN, shared experts, router and embeddings split over
// attention_tp (replicated over attention_dp); routed experts: (experts + redundant_experts) /
// expert_ep slots per MoE layer, each split over expert_tp. KV per token per GPU: GQA KV heads split
// over attention_tp (one head per GPU, replicated, when attention_tp > kv_heads); the MLA latent is
// replicated on every GPU of the rank. Throws InputError naming `source` when the layout is invalid,
// the parameters are out of range, or the GPU lacks memory (saying how many bytes are missing).
MemoryPlan plan_memory(const ModelSpec& model, const GpuSpec& gpu, const ParallelLayout& layout,
                       double gpu_memory_utilization, double activation_reserve_bytes,
                       std::string_view source = "deployment");

}  // namespace moesim
