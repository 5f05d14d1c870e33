#include "sim/hardware/memory.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

int read_count(const JsonReader& reader, std::string_view key, std::int64_t fallback, bool allow_zero) {
  const std::int64_t value =
      allow_zero ? reader.non_negative_integer(key, fallback) : reader.positive_integer(key, fallback);
  if (value > std::numeric_limits<int>::max()) reader.fail(key, fmt::format("value {} is too large", value));
  return static_cast<int>(value);
}

}  // namespace

ParallelLayout parse_parallel_layout(const JsonReader& reader) {
  ParallelLayout layout;
  layout.attention_tp = read_count(reader, "attention_tp", 1, false);
  layout.attention_dp = read_count(reader, "attention_dp", 1, false);
  layout.expert_ep = read_count(reader, "expert_ep", 1, false);
  layout.expert_tp = read_count(reader, "expert_tp", 1, false);
  layout.redundant_experts = read_count(reader, "redundant_experts", 0, true);
  reader.finish();
  return layout;
}

nlohmann::json to_json(const ParallelLayout& layout) {
  return {{"attention_tp", layout.attention_tp},
          {"attention_dp", layout.attention_dp},
          {"expert_ep", layout.expert_ep},
          {"expert_tp", layout.expert_tp},
          {"redundant_experts", layout.redundant_experts}};
}

void validate_layout(const ParallelLayout& layout, const ModelSpec& model, std::string_view source) {
  const auto positive = [&](std::string_view key, int value) {
    if (value <= 0) throw InputError(source, key, fmt::format("expected a positive integer, got {}", value));
  };
  positive("attention_tp", layout.attention_tp);
  positive("attention_dp", layout.attention_dp);
  positive("expert_ep", layout.expert_ep);
  positive("expert_tp", layout.expert_tp);
  if (layout.redundant_experts < 0) {
    throw InputError(source, "redundant_experts",
                     fmt::format("expected an integer >= 0, got {}", layout.redundant_experts));
  }
  const std::int64_t attention_gpus = std::int64_t{layout.attention_tp} * layout.attention_dp;
  const std::int64_t expert_gpus = std::int64_t{layout.expert_ep} * layout.expert_tp;
  if (attention_gpus != expert_gpus) {
    throw InputError(
        source, "expert_ep",
        fmt::format("expert_ep * expert_tp = {} * {} = {} must equal attention_tp * attention_dp = "
                    "{} * {} = {} (both cover the instance's GPUs)",
                    layout.expert_ep, layout.expert_tp, expert_gpus, layout.attention_tp, layout.attention_dp,
                    attention_gpus));
  }
  if (model.q_heads % layout.attention_tp != 0) {
    throw InputError(source, "attention_tp",
                     fmt::format("{} does not divide the {} attention heads of {}", layout.attention_tp,
                                 model.q_heads, model.name));
  }
  if (model.attention == AttentionKind::gqa && model.kv_heads % layout.attention_tp != 0 &&
      layout.attention_tp % model.kv_heads != 0) {
    throw InputError(source, "attention_tp",
                     fmt::format("{} must divide, or be a multiple of, the {} KV heads of {}",
                                 layout.attention_tp, model.kv_heads, model.name));
  }
  if (!model.is_moe()) {
    if (layout.redundant_experts != 0) {
      throw InputError(source, "redundant_experts",
                       fmt::format("expected 0: {} has no routed experts", model.name));
    }
    return;
  }
  const int slots = model.experts + layout.redundant_experts;
  if (slots % layout.expert_ep != 0) {
    throw InputError(source, "expert_ep",
                     fmt::format("{} expert slots ({} experts + {} redundant) do not divide evenly over "
                                 "expert_ep = {}",
                                 slots, model.experts, layout.redundant_experts, layout.expert_ep));
  }
  if (model.expert_intermediate % layout.expert_tp != 0) {
    throw InputError(source, "expert_tp",
                     fmt::format("{} does not divide the expert FFN width {} of {}", layout.expert_tp,
                                 model.expert_intermediate, model.name));
  }
}

MemoryPlan plan_memory(const ModelSpec& model, const GpuSpec& gpu, const ParallelLayout& layout,
                       double gpu_memory_utilization, double activation_reserve_bytes,
                       std::string_view source) {
  validate_layout(layout, model, source);
  if (!(gpu_memory_utilization > 0 && gpu_memory_utilization <= 1)) {
    throw InputError(source, "gpu_memory_utilization",
                     fmt::format("expected a number in (0, 1], got {}", gpu_memory_utilization));
  }
  if (!(activation_reserve_bytes >= 0) || !std::isfinite(activation_reserve_bytes)) {
    throw InputError(source, "activation_reserve_bytes",
                     fmt::format("expected a finite number >= 0, got {}", activation_reserve_bytes));
  }
  const ModelDerived& d = model.derived;
  MemoryPlan plan;
  plan.hbm_bytes = gpu.hbm_bytes;
  plan.usable_bytes = gpu.hbm_bytes * gpu_memory_utilization;
  plan.activation_reserve_bytes = activation_reserve_bytes;

  // Assumption: the router gate and the embeddings split over attention_tp like the attention
  // matrices (vocabulary-parallel embeddings as in Megatron-LM and vLLM); moesim's own guess for the router.
  const double non_expert_bytes = d.total_attention_weight_bytes + d.total_dense_ffn_weight_bytes +
                                  d.total_shared_expert_weight_bytes + d.total_router_weight_bytes +
                                  d.embedding_weight_bytes;
  plan.non_expert_weight_bytes = non_expert_bytes / layout.attention_tp;
  if (model.is_moe()) {
    plan.expert_slots_per_gpu = (model.experts + layout.redundant_experts) / layout.expert_ep;
    plan.expert_weight_bytes = static_cast<double>(plan.expert_slots_per_gpu) * d.moe_layers *
                               d.expert_weight_bytes / layout.expert_tp;
  }
  plan.weight_bytes = plan.non_expert_weight_bytes + plan.expert_weight_bytes;

  if (model.attention == AttentionKind::gqa) {
    plan.kv_heads_per_gpu = std::max(1, model.kv_heads / layout.attention_tp);
    plan.kv_bytes_per_token = d.kv_bytes_per_token * plan.kv_heads_per_gpu / model.kv_heads;
  } else {
    plan.kv_bytes_per_token = d.kv_bytes_per_token;
  }

  plan.kv_cache_bytes = plan.usable_bytes - plan.weight_bytes - plan.activation_reserve_bytes;
  if (plan.kv_cache_bytes < plan.kv_bytes_per_token) {
    const double missing =
        plan.weight_bytes + plan.activation_reserve_bytes + plan.kv_bytes_per_token - plan.usable_bytes;
    throw InputError(
        source, "memory",
        fmt::format("{} does not fit on {}: per GPU {:.0f} bytes of weights + {:.0f} bytes of "
                    "activation reserve + one token of KV cache ({:.0f} bytes) exceed the usable "
                    "{:.0f} bytes ({} x {:.0f} bytes of HBM) by {:.0f} bytes",
                    model.name, gpu.name, plan.weight_bytes, plan.activation_reserve_bytes,
                    plan.kv_bytes_per_token, plan.usable_bytes, gpu_memory_utilization, gpu.hbm_bytes,
                    std::ceil(missing)));
  }
  plan.kv_token_capacity =
      static_cast<std::int64_t>(std::floor(plan.kv_cache_bytes / plan.kv_bytes_per_token));
  plan.instance_kv_token_capacity = plan.kv_token_capacity * layout.attention_dp;
  return plan;
}

}  // namespace moesim
