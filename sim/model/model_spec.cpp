#include "sim/model/model_spec.hpp"

#include <array>
#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

struct DataTypeInfo {
  DataType type;
  std::string_view name;
  double bytes;
};

// Assumption: block-scaled formats carry their scales in the stored bytes (OCP MX spec: one
// E8M0 scale per 32 values; NVIDIA NVFP4: one E4M3 scale per 16 values). FP8 block scales
// (DeepSeek-V3: one fp32 scale per 128x128 block, 0.02 % of the bytes) are ignored.
constexpr std::array<DataTypeInfo, 8> kDataTypes{{
    {DataType::fp32, "fp32", 4.0},
    {DataType::bf16, "bf16", 2.0},
    {DataType::fp16, "fp16", 2.0},
    {DataType::fp8, "fp8", 1.0},
    {DataType::int8, "int8", 1.0},
    {DataType::mxfp4, "mxfp4", (4.0 + 8.0 / 32.0) / 8.0},
    {DataType::nvfp4, "nvfp4", (4.0 + 8.0 / 16.0) / 8.0},
    {DataType::int4, "int4", 0.5},
}};

std::vector<std::string> data_type_names() {
  std::vector<std::string> names;
  for (const auto& info : kDataTypes)
    names.emplace_back(info.name);
  return names;
}

int to_int(std::int64_t value, const JsonReader& reader, std::string_view key) {
  if (value > std::numeric_limits<int>::max()) reader.fail(key, fmt::format("value {} is too large", value));
  return static_cast<int>(value);
}

int read_positive(const JsonReader& reader, std::string_view key) {
  return to_int(reader.positive_integer(key), reader, key);
}

int read_non_negative(const JsonReader& reader, std::string_view key, std::int64_t fallback) {
  return to_int(reader.non_negative_integer(key, fallback), reader, key);
}

DataType read_data_type(const JsonReader& reader, std::string_view key, DataType fallback) {
  if (!reader.has(key)) return fallback;
  return parse_data_type(reader.choice(key, data_type_names()), reader.source(), reader.place(key));
}

[[noreturn]] void shape_error(std::string_view source, std::string_view key, std::string_view expected) {
  throw InputError(source, key, expected);
}

void check_shape(const ModelSpec& spec, std::string_view source) {
  if (spec.layers <= 0) shape_error(source, "layers", "expected a positive integer");
  if (spec.hidden <= 0) shape_error(source, "hidden", "expected a positive integer");
  if (spec.vocab <= 0) shape_error(source, "vocab", "expected a positive integer");
  if (spec.dense_layers < 0 || spec.dense_layers > spec.layers) {
    shape_error(source, "dense_layers",
                fmt::format("expected 0..{} (layers), got {}", spec.layers, spec.dense_layers));
  }
  if (spec.q_heads <= 0) shape_error(source, "attention.q_heads", "expected a positive integer");
  if (spec.attention == AttentionKind::gqa) {
    if (spec.kv_heads <= 0 || spec.q_heads % spec.kv_heads != 0) {
      shape_error(
          source, "attention.kv_heads",
          fmt::format("expected a positive divisor of q_heads ({}), got {}", spec.q_heads, spec.kv_heads));
    }
    if (spec.head_dim <= 0) shape_error(source, "attention.head_dim", "expected a positive integer");
  } else {
    if (spec.kv_lora_rank <= 0) shape_error(source, "attention.kv_lora_rank", "expected a positive integer");
    if (spec.qk_nope_head_dim <= 0)
      shape_error(source, "attention.qk_nope_head_dim", "expected a positive integer");
    if (spec.qk_rope_head_dim <= 0)
      shape_error(source, "attention.qk_rope_head_dim", "expected a positive integer");
    if (spec.v_head_dim <= 0) shape_error(source, "attention.v_head_dim", "expected a positive integer");
    if (spec.q_lora_rank < 0) shape_error(source, "attention.q_lora_rank", "expected an integer >= 0");
  }
  if (spec.sliding_window < 0) shape_error(source, "attention.sliding_window.tokens", "expected >= 0");
  if (spec.sliding_window_period <= 0)
    shape_error(source, "attention.sliding_window.period", "expected a positive integer");
  if (spec.sliding_window_offset < 0 || spec.sliding_window_offset >= spec.sliding_window_period) {
    shape_error(source, "attention.sliding_window.offset",
                fmt::format("expected 0..{} (period - 1), got {}", spec.sliding_window_period - 1,
                            spec.sliding_window_offset));
  }
  if (spec.dense_layers > 0 && spec.dense_intermediate <= 0) {
    shape_error(
        source, "dense_intermediate",
        fmt::format("expected a positive integer (the model has {} dense layers)", spec.dense_layers));
  }
  if (spec.experts == 0) {
    if (spec.dense_layers != spec.layers) {
      shape_error(source, "moe",
                  fmt::format("missing: {} of {} layers are MoE layers", spec.layers - spec.dense_layers,
                              spec.layers));
    }
    return;
  }
  if (spec.experts < 0) shape_error(source, "moe.experts", "expected a positive integer");
  if (spec.top_k <= 0 || spec.top_k > spec.experts) {
    shape_error(source, "moe.top_k",
                fmt::format("expected 1..{} (experts), got {}", spec.experts, spec.top_k));
  }
  if (spec.expert_intermediate <= 0)
    shape_error(source, "moe.expert_intermediate", "expected a positive integer");
  if (spec.shared_experts < 0) shape_error(source, "moe.shared_experts", "expected an integer >= 0");
  if (spec.expert_groups < 0 || (spec.expert_groups > 0 && spec.experts % spec.expert_groups != 0)) {
    shape_error(
        source, "moe.expert_groups",
        fmt::format("expected a divisor of the {} experts, got {}", spec.experts, spec.expert_groups));
  }
  if (spec.expert_groups > 0 && (spec.groups_per_token < 1 || spec.groups_per_token > spec.expert_groups)) {
    shape_error(
        source, "moe.groups_per_token",
        fmt::format("expected 1..{} (expert_groups), got {}", spec.expert_groups, spec.groups_per_token));
  }
  if (spec.shared_experts > 0 && spec.shared_expert_intermediate <= 0) {
    shape_error(source, "moe.shared_expert_intermediate", "expected a positive integer");
  }
  if (spec.dense_layers == spec.layers) {
    shape_error(source, "dense_layers", "a model with experts needs at least one MoE layer");
  }
}

}  // namespace

double bytes_per_element(DataType type) {
  for (const auto& info : kDataTypes) {
    if (info.type == type) return info.bytes;
  }
  throw InternalError("bytes_per_element: unknown data type");
}

std::string_view data_type_name(DataType type) {
  for (const auto& info : kDataTypes) {
    if (info.type == type) return info.name;
  }
  throw InternalError("data_type_name: unknown data type");
}

DataType parse_data_type(std::string_view text, std::string_view source, std::string_view place) {
  for (const auto& info : kDataTypes) {
    if (info.name == text) return info.type;
  }
  throw InputError(source, place,
                   fmt::format("expected one of [{}], got \"{}\"", fmt::join(data_type_names(), ", "), text));
}

double causal_attended_keys(std::int64_t cached_tokens, std::int64_t new_tokens, std::int64_t window) {
  const double cached = static_cast<double>(cached_tokens);
  const double fresh = static_cast<double>(new_tokens);
  // Query i (0-based) sees cached + i + 1 keys; summed: fresh*cached + fresh*(fresh+1)/2.
  if (window <= 0 || window >= cached_tokens + new_tokens)
    return fresh * cached + fresh * (fresh + 1.0) / 2.0;
  const double limit = static_cast<double>(window);
  if (window <= cached_tokens + 1) return fresh * limit;
  // Queries before the window fills see cached+1 .. window-1 keys; the rest see `window` keys.
  const double uncapped = limit - 1.0 - cached;
  return uncapped * (cached + 1.0 + limit - 1.0) / 2.0 + (fresh - uncapped) * limit;
}

double ModelSpec::attention_core_flops(int layer, std::int64_t cached_tokens, std::int64_t new_tokens,
                                       AttentionPhase phase) const {
  const std::int64_t window = layer_uses_sliding_window[static_cast<std::size_t>(layer)] ? sliding_window : 0;
  const double per_key = phase == AttentionPhase::prefill ? derived.attention_core_flops_per_key_prefill
                                                          : derived.attention_core_flops_per_key_decode;
  return per_key * causal_attended_keys(cached_tokens, new_tokens, window);
}

double ModelSpec::attention_core_flops_all_layers(std::int64_t cached_tokens, std::int64_t new_tokens,
                                                  AttentionPhase phase) const {
  const double per_key = phase == AttentionPhase::prefill ? derived.attention_core_flops_per_key_prefill
                                                          : derived.attention_core_flops_per_key_decode;
  const int sliding_layers = derived.sliding_window_layer_count;
  const double full = causal_attended_keys(cached_tokens, new_tokens, 0) * (layers - sliding_layers);
  const double windowed =
      sliding_layers > 0 ? causal_attended_keys(cached_tokens, new_tokens, sliding_window) * sliding_layers
                         : 0.0;
  return per_key * (full + windowed);
}

double ModelSpec::matrix_flops_per_token() const {
  const ModelDerived& d = derived;
  const double moe_layer_flops =
      d.router_flops_per_layer + top_k * d.expert_flops + shared_experts * d.shared_expert_flops;
  return layers * d.attention_projection_flops_per_layer + dense_layers * d.dense_ffn_flops_per_layer +
         d.moe_layers * moe_layer_flops + d.lm_head_flops;
}

void derive_model_quantities(ModelSpec& spec, std::string_view source) {
  if (spec.attention == AttentionKind::mla) {
    spec.kv_heads = spec.q_heads;
    spec.head_dim = spec.qk_nope_head_dim + spec.qk_rope_head_dim;
  } else {
    spec.v_head_dim = spec.head_dim;
  }
  check_shape(spec, source);

  spec.layer_uses_sliding_window.assign(static_cast<std::size_t>(spec.layers), 0);
  ModelDerived d;
  for (int layer = 0; layer < spec.layers; ++layer) {
    if (spec.sliding_window > 0 && layer % spec.sliding_window_period == spec.sliding_window_offset) {
      spec.layer_uses_sliding_window[static_cast<std::size_t>(layer)] = 1;
      ++d.sliding_window_layer_count;
    }
  }
  d.moe_layers = spec.is_moe() ? spec.layers - spec.dense_layers : 0;

  // Assumption: biases, norms and GPT-OSS's attention sinks are left out (under 0.1 % of the
  // parameters of every shipped model; moesim's own guess that they do not matter for cost or memory).
  const double hidden = spec.hidden;
  const double heads = spec.q_heads;
  if (spec.attention == AttentionKind::gqa) {
    const double q_width = heads * spec.head_dim;
    const double kv_width = static_cast<double>(spec.kv_heads) * spec.head_dim;
    // q, k, v, o projections.
    d.attention_params_per_layer = hidden * q_width + 2.0 * hidden * kv_width + q_width * hidden;
    d.kv_elements_per_token_per_layer = 2.0 * kv_width;
    // QK^T and softmax(.)V: 2 FLOPs per multiply-add over head_dim, for each of the two products.
    d.attention_core_flops_per_key_prefill = 4.0 * heads * spec.head_dim;
    d.attention_core_flops_per_key_decode = d.attention_core_flops_per_key_prefill;
  } else {
    const double qk_dim = spec.qk_nope_head_dim + spec.qk_rope_head_dim;
    const double q_params = spec.q_lora_rank > 0 ? hidden * spec.q_lora_rank +
                                                       static_cast<double>(spec.q_lora_rank) * heads * qk_dim
                                                 : hidden * heads * qk_dim;
    const double kv_down = hidden * (spec.kv_lora_rank + spec.qk_rope_head_dim);
    const double kv_up =
        static_cast<double>(spec.kv_lora_rank) * heads * (spec.qk_nope_head_dim + spec.v_head_dim);
    const double out = heads * spec.v_head_dim * hidden;
    d.attention_params_per_layer = q_params + kv_down + kv_up + out;
    d.kv_elements_per_token_per_layer = spec.kv_lora_rank + spec.qk_rope_head_dim;
    // Assumption: prefill expands keys and values per head (scores over qk_nope+qk_rope, values over
    // v_head_dim); decode absorbs the up-projections and attends over the cached latent (scores over
    // kv_lora_rank+qk_rope, values over kv_lora_rank), as DeepSeek-V2 §2.1.2 and FlashMLA do. The
    // absorbed matrices cost the same per token as applying kv_up, so projections stay 2 * params.
    d.attention_core_flops_per_key_prefill = 2.0 * heads * qk_dim + 2.0 * heads * spec.v_head_dim;
    d.attention_core_flops_per_key_decode =
        2.0 * heads * (spec.kv_lora_rank + spec.qk_rope_head_dim) + 2.0 * heads * spec.kv_lora_rank;
  }
  // Assumption: every FFN is gated (SwiGLU: gate, up and down matrices), as in all supported models.
  d.dense_ffn_params_per_layer = spec.dense_layers > 0 ? 3.0 * hidden * spec.dense_intermediate : 0.0;
  d.expert_params = spec.is_moe() ? 3.0 * hidden * spec.expert_intermediate : 0.0;
  d.shared_expert_params = spec.shared_experts > 0 ? 3.0 * hidden * spec.shared_expert_intermediate : 0.0;
  d.router_params_per_layer = hidden * spec.experts;
  d.embedding_params = hidden * spec.vocab;
  d.lm_head_params = spec.tied_embeddings ? 0.0 : hidden * spec.vocab;

  const double moe_layers = d.moe_layers;
  const double non_expert_params =
      spec.layers * d.attention_params_per_layer + spec.dense_layers * d.dense_ffn_params_per_layer +
      moe_layers * (d.router_params_per_layer + spec.shared_experts * d.shared_expert_params) +
      d.embedding_params + d.lm_head_params;
  d.total_params = non_expert_params + moe_layers * spec.experts * d.expert_params;
  d.active_params_per_token = non_expert_params + moe_layers * spec.top_k * d.expert_params;
  d.active_params_per_token_without_embedding = d.active_params_per_token - d.embedding_params;

  const double weight_bytes = bytes_per_element(spec.weight_dtype);
  d.attention_weight_bytes_per_layer = d.attention_params_per_layer * weight_bytes;
  d.dense_ffn_weight_bytes_per_layer = d.dense_ffn_params_per_layer * weight_bytes;
  d.expert_weight_bytes = d.expert_params * bytes_per_element(spec.expert_dtype);
  d.shared_expert_weight_bytes = d.shared_expert_params * weight_bytes;
  // Assumption: the router gate is stored like the other non-expert matrices (DeepSeek-V3 keeps it in
  // BF16 while its other matrices are FP8; 0.1 GB of 671 GB, moesim's own guess that it does not matter).
  d.router_weight_bytes_per_layer = d.router_params_per_layer * weight_bytes;
  d.embedding_weight_bytes =
      (d.embedding_params + d.lm_head_params) * bytes_per_element(spec.embedding_dtype);
  d.total_attention_weight_bytes = spec.layers * d.attention_weight_bytes_per_layer;
  d.total_dense_ffn_weight_bytes = spec.dense_layers * d.dense_ffn_weight_bytes_per_layer;
  d.total_routed_expert_weight_bytes = moe_layers * spec.experts * d.expert_weight_bytes;
  d.total_shared_expert_weight_bytes = moe_layers * spec.shared_experts * d.shared_expert_weight_bytes;
  d.total_router_weight_bytes = moe_layers * d.router_weight_bytes_per_layer;
  d.total_weight_bytes = d.total_attention_weight_bytes + d.total_dense_ffn_weight_bytes +
                         d.total_routed_expert_weight_bytes + d.total_shared_expert_weight_bytes +
                         d.total_router_weight_bytes + d.embedding_weight_bytes;

  d.kv_bytes_per_token_per_layer = d.kv_elements_per_token_per_layer * bytes_per_element(spec.kv_cache_dtype);
  // Assumption: the KV cache reserves full-length entries on sliding-window layers too (vLLM's
  // allocator without the hybrid manager); moesim's own guess, conservative for GPT-OSS.
  d.kv_bytes_per_token = spec.layers * d.kv_bytes_per_token_per_layer;

  d.attention_projection_flops_per_layer = 2.0 * d.attention_params_per_layer;
  d.dense_ffn_flops_per_layer = 2.0 * d.dense_ffn_params_per_layer;
  d.expert_flops = 2.0 * d.expert_params;
  d.shared_expert_flops = 2.0 * d.shared_expert_params;
  d.router_flops_per_layer = 2.0 * d.router_params_per_layer;
  d.lm_head_flops = 2.0 * hidden * spec.vocab;
  spec.derived = d;
}

ModelSpec parse_model(const JsonReader& reader) {
  ModelSpec spec;
  spec.name = reader.string("name");
  if (spec.name.empty()) reader.fail("name", "expected a non-empty string");
  spec.source = reader.string("source");
  spec.layers = read_positive(reader, "layers");
  spec.hidden = read_positive(reader, "hidden");
  spec.vocab = read_positive(reader, "vocab");
  spec.tied_embeddings = reader.boolean("tied_embeddings", false);

  const JsonReader attention = reader.object("attention");
  spec.attention =
      attention.choice("kind", {"gqa", "mla"}) == "mla" ? AttentionKind::mla : AttentionKind::gqa;
  spec.q_heads = read_positive(attention, "q_heads");
  if (spec.attention == AttentionKind::gqa) {
    spec.kv_heads = read_positive(attention, "kv_heads");
    spec.head_dim = read_positive(attention, "head_dim");
  } else {
    spec.q_lora_rank = read_non_negative(attention, "q_lora_rank", 0);
    spec.kv_lora_rank = read_positive(attention, "kv_lora_rank");
    spec.qk_nope_head_dim = read_positive(attention, "qk_nope_head_dim");
    spec.qk_rope_head_dim = read_positive(attention, "qk_rope_head_dim");
    spec.v_head_dim = read_positive(attention, "v_head_dim");
  }
  if (const auto window = attention.optional_object("sliding_window")) {
    spec.sliding_window = read_positive(*window, "tokens");
    spec.sliding_window_period = to_int(window->positive_integer("period", 1), *window, "period");
    spec.sliding_window_offset = read_non_negative(*window, "offset", 0);
    window->finish();
  }
  attention.finish();

  if (const auto moe = reader.optional_object("moe")) {
    spec.experts = read_positive(*moe, "experts");
    spec.top_k = read_positive(*moe, "top_k");
    spec.expert_intermediate = read_positive(*moe, "expert_intermediate");
    spec.shared_experts = read_non_negative(*moe, "shared_experts", 0);
    if (spec.shared_experts > 0)
      spec.shared_expert_intermediate = read_positive(*moe, "shared_expert_intermediate");
    if (moe->has("expert_groups") || moe->has("groups_per_token")) {
      spec.expert_groups = read_positive(*moe, "expert_groups");
      spec.groups_per_token = read_positive(*moe, "groups_per_token");
    }
    moe->finish();
    spec.dense_layers = read_non_negative(reader, "dense_layers", 0);
  } else {
    spec.dense_layers = to_int(reader.positive_integer("dense_layers", spec.layers), reader, "dense_layers");
  }
  if (spec.dense_layers > 0) spec.dense_intermediate = read_positive(reader, "dense_intermediate");

  const JsonReader precision = reader.object("precision");
  spec.weight_dtype = read_data_type(precision, "weights", DataType::bf16);
  spec.expert_dtype = read_data_type(precision, "experts", spec.weight_dtype);
  spec.embedding_dtype = read_data_type(precision, "embeddings", spec.weight_dtype);
  // Assumption: without a stated format the KV cache is BF16, the serving engines' default.
  spec.kv_cache_dtype = read_data_type(precision, "kv_cache", DataType::bf16);
  precision.finish();
  reader.finish();

  derive_model_quantities(spec, reader.source());
  return spec;
}

ModelSpec load_model(const std::filesystem::path& file) {
  const nlohmann::json document = JsonReader::parse_file(file);
  return parse_model(JsonReader(document, file.string()));
}

nlohmann::json to_json(const ModelSpec& spec) {
  nlohmann::json attention;
  attention["kind"] = spec.attention == AttentionKind::mla ? "mla" : "gqa";
  attention["q_heads"] = spec.q_heads;
  if (spec.attention == AttentionKind::gqa) {
    attention["kv_heads"] = spec.kv_heads;
    attention["head_dim"] = spec.head_dim;
  } else {
    attention["q_lora_rank"] = spec.q_lora_rank;
    attention["kv_lora_rank"] = spec.kv_lora_rank;
    attention["qk_nope_head_dim"] = spec.qk_nope_head_dim;
    attention["qk_rope_head_dim"] = spec.qk_rope_head_dim;
    attention["v_head_dim"] = spec.v_head_dim;
  }
  if (spec.sliding_window > 0) {
    attention["sliding_window"] = {{"tokens", spec.sliding_window},
                                   {"period", spec.sliding_window_period},
                                   {"offset", spec.sliding_window_offset}};
  }

  nlohmann::json result;
  result["name"] = spec.name;
  result["source"] = spec.source;
  result["layers"] = spec.layers;
  result["dense_layers"] = spec.dense_layers;
  result["hidden"] = spec.hidden;
  result["vocab"] = spec.vocab;
  result["tied_embeddings"] = spec.tied_embeddings;
  result["attention"] = attention;
  if (spec.dense_layers > 0) result["dense_intermediate"] = spec.dense_intermediate;
  if (spec.is_moe()) {
    nlohmann::json moe = {{"experts", spec.experts},
                          {"top_k", spec.top_k},
                          {"expert_intermediate", spec.expert_intermediate},
                          {"shared_experts", spec.shared_experts}};
    if (spec.shared_experts > 0) moe["shared_expert_intermediate"] = spec.shared_expert_intermediate;
    if (spec.expert_groups > 0) {
      moe["expert_groups"] = spec.expert_groups;
      moe["groups_per_token"] = spec.groups_per_token;
    }
    result["moe"] = moe;
  }
  result["precision"] = {{"weights", data_type_name(spec.weight_dtype)},
                         {"experts", data_type_name(spec.expert_dtype)},
                         {"embeddings", data_type_name(spec.embedding_dtype)},
                         {"kv_cache", data_type_name(spec.kv_cache_dtype)}};
  return result;
}

}  // namespace moesim
