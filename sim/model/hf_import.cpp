#include <limits>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/model/model_spec.hpp"

namespace moesim {

namespace {

bool present(const JsonReader& reader, std::string_view key) {
  return reader.has(key) && !reader.json().at(std::string(key)).is_null();
}

int positive(const JsonReader& reader, std::string_view key) {
  const std::int64_t value = reader.positive_integer(key);
  if (value > std::numeric_limits<int>::max()) reader.fail(key, fmt::format("value {} is too large", value));
  return static_cast<int>(value);
}

int non_negative(const JsonReader& reader, std::string_view key, int fallback) {
  if (!present(reader, key)) return fallback;
  const std::int64_t value = reader.non_negative_integer(key);
  if (value > std::numeric_limits<int>::max()) reader.fail(key, fmt::format("value {} is too large", value));
  return static_cast<int>(value);
}

void require_value(const JsonReader& reader, std::string_view key, std::int64_t expected,
                   std::string_view why) {
  if (present(reader, key) && reader.integer(key) != expected) {
    reader.fail(key,
                fmt::format("moesim supports only {} here ({}), got {}", expected, why, reader.integer(key)));
  }
}

DataType activation_dtype(const JsonReader& reader) {
  // transformers writes "torch_dtype"; releases from 4.56 on write "dtype".
  const std::string_view key = present(reader, "torch_dtype") ? "torch_dtype" : "dtype";
  if (!present(reader, key)) return DataType::bf16;
  const std::string text = reader.choice(key, {"bfloat16", "float16", "float32"});
  if (text == "float16") return DataType::fp16;
  if (text == "float32") return DataType::fp32;
  return DataType::bf16;
}

// Finds a single sliding layer per repeating period in GPT-OSS style "layer_types".
void read_layer_types(const JsonReader& reader, ModelSpec& spec) {
  const std::vector<std::string> types = reader.string_array("layer_types");
  if (types.size() != static_cast<std::size_t>(spec.layers)) {
    reader.fail("layer_types",
                fmt::format("expected {} entries (num_hidden_layers), got {}", spec.layers, types.size()));
  }
  std::vector<int> sliding;
  for (int layer = 0; layer < spec.layers; ++layer) {
    const std::string& type = types[static_cast<std::size_t>(layer)];
    if (type == "sliding_attention") {
      sliding.push_back(layer);
    } else if (type != "full_attention") {
      throw InputError(reader.source(), fmt::format("{}[{}]", reader.place("layer_types"), layer),
                       fmt::format("expected \"sliding_attention\" or \"full_attention\", got \"{}\"", type));
    }
  }
  if (sliding.empty()) {
    spec.sliding_window = 0;
    return;
  }
  const int period = sliding.size() > 1 ? sliding[1] - sliding[0] : spec.layers;
  for (std::size_t i = 0; i < sliding.size(); ++i) {
    if (sliding[i] != sliding[0] + static_cast<int>(i) * period) {
      reader.fail("layer_types", "sliding layers must repeat with a fixed period (one per period)");
    }
  }
  spec.sliding_window_period = period;
  spec.sliding_window_offset = sliding[0];
  if (sliding[0] >= period || sliding.back() + period < spec.layers) {
    reader.fail("layer_types", "sliding layers must repeat with a fixed period (one per period)");
  }
}

// Mistral-style "sliding_window": a number applies a window to every layer, null to none.
void read_uniform_sliding_window(const JsonReader& reader, ModelSpec& spec) {
  if (present(reader, "use_sliding_window") && reader.boolean("use_sliding_window")) {
    reader.fail("use_sliding_window", "Qwen-style sliding windows over the top layers are not supported");
  }
  if (present(reader, "use_sliding_window") || !present(reader, "sliding_window")) return;
  spec.sliding_window = positive(reader, "sliding_window");
}

void read_gqa(const JsonReader& reader, ModelSpec& spec) {
  spec.attention = AttentionKind::gqa;
  spec.q_heads = positive(reader, "num_attention_heads");
  spec.kv_heads =
      present(reader, "num_key_value_heads") ? positive(reader, "num_key_value_heads") : spec.q_heads;
  if (present(reader, "head_dim")) {
    spec.head_dim = positive(reader, "head_dim");
  } else {
    if (spec.hidden % spec.q_heads != 0) {
      reader.fail("head_dim",
                  fmt::format("missing, and hidden_size {} is not a multiple of num_attention_heads {}",
                              spec.hidden, spec.q_heads));
    }
    spec.head_dim = spec.hidden / spec.q_heads;
  }
}

void read_deepseek(const JsonReader& reader, ModelSpec& spec) {
  spec.attention = AttentionKind::mla;
  spec.q_heads = positive(reader, "num_attention_heads");
  spec.q_lora_rank = non_negative(reader, "q_lora_rank", 0);
  spec.kv_lora_rank = positive(reader, "kv_lora_rank");
  spec.qk_nope_head_dim = positive(reader, "qk_nope_head_dim");
  spec.qk_rope_head_dim = positive(reader, "qk_rope_head_dim");
  spec.v_head_dim = positive(reader, "v_head_dim");
  require_value(reader, "moe_layer_freq", 1, "every layer after first_k_dense_replace is an MoE layer");
  spec.dense_layers = non_negative(reader, "first_k_dense_replace", 0);
  spec.dense_intermediate = positive(reader, "intermediate_size");
  spec.experts = positive(reader, "n_routed_experts");
  spec.top_k = positive(reader, "num_experts_per_tok");
  spec.expert_intermediate = positive(reader, "moe_intermediate_size");
  spec.shared_experts = non_negative(reader, "n_shared_experts", 0);
  if (present(reader, "n_group") && present(reader, "topk_group")) {
    spec.expert_groups = positive(reader, "n_group");
    spec.groups_per_token = positive(reader, "topk_group");
  }
  // DeepSeek runs its shared experts as one MLP of n_shared_experts * moe_intermediate_size;
  // per expert that is the routed experts' width.
  if (spec.shared_experts > 0) spec.shared_expert_intermediate = spec.expert_intermediate;
  // Assumption: the multi-token-prediction layers (num_nextn_predict_layers) are not served; the
  // published 671 B total excludes them (DeepSeek-V3 report §2.2).
}

void read_quantization(const JsonReader& reader, ModelSpec& spec) {
  if (!present(reader, "quantization_config")) return;
  const JsonReader quantization = reader.object("quantization_config");
  const std::string method = quantization.choice("quant_method", {"fp8", "mxfp4"});
  if (method == "fp8") {
    // DeepSeek-V3 stores its linear layers in FP8 and keeps embeddings and lm head in BF16.
    spec.weight_dtype = DataType::fp8;
    spec.expert_dtype = DataType::fp8;
  } else {
    // GPT-OSS quantizes only the routed experts' matrices (its modules_to_not_convert list the rest).
    spec.expert_dtype = DataType::mxfp4;
  }
}

}  // namespace

ModelSpec import_hf_config(const nlohmann::json& hf_config, std::string_view source_name) {
  // Assumption: a config.json carries many keys about training and tokenization that do not shape
  // serving; they are ignored (no finish()), while every key that shapes the model is read here.
  const JsonReader reader(hf_config, std::string(source_name));
  const std::string model_type =
      reader.choice("model_type", {"deepseek_v3", "deepseek_v2", "mixtral", "qwen3_moe", "olmoe", "gpt_oss",
                                   "llama", "mistral", "qwen2", "qwen3"});

  ModelSpec spec;
  spec.name = present(reader, "_name_or_path") ? reader.string("_name_or_path") : model_type;
  spec.source = fmt::format("imported from Hugging Face config {}", source_name);
  spec.layers = positive(reader, "num_hidden_layers");
  spec.hidden = positive(reader, "hidden_size");
  spec.vocab = positive(reader, "vocab_size");
  spec.tied_embeddings = present(reader, "tie_word_embeddings") && reader.boolean("tie_word_embeddings");
  spec.weight_dtype = activation_dtype(reader);
  spec.expert_dtype = spec.weight_dtype;
  spec.embedding_dtype = spec.weight_dtype;
  // Assumption: the KV cache is kept in the model's activation type unless the user says otherwise.
  spec.kv_cache_dtype = spec.weight_dtype;
  read_quantization(reader, spec);

  if (model_type == "deepseek_v3" || model_type == "deepseek_v2") {
    read_deepseek(reader, spec);
  } else if (model_type == "mixtral" || model_type == "olmoe" || model_type == "gpt_oss") {
    read_gqa(reader, spec);
    spec.experts = positive(reader, model_type == "olmoe" ? "num_experts" : "num_local_experts");
    spec.top_k = positive(reader, "num_experts_per_tok");
    spec.expert_intermediate = positive(reader, "intermediate_size");
    if (model_type == "gpt_oss") {
      spec.sliding_window = positive(reader, "sliding_window");
      read_layer_types(reader, spec);
    } else {
      read_uniform_sliding_window(reader, spec);
    }
  } else if (model_type == "qwen3_moe") {
    read_gqa(reader, spec);
    spec.experts = positive(reader, "num_experts");
    spec.top_k = positive(reader, "num_experts_per_tok");
    spec.expert_intermediate = positive(reader, "moe_intermediate_size");
    require_value(reader, "decoder_sparse_step", 1, "every layer is an MoE layer");
    if (present(reader, "mlp_only_layers") && !reader.integer_array("mlp_only_layers").empty()) {
      reader.fail("mlp_only_layers",
                  "expected an empty list (dense layers between MoE layers are not supported)");
    }
    read_uniform_sliding_window(reader, spec);
  } else {
    read_gqa(reader, spec);
    spec.dense_layers = spec.layers;
    spec.dense_intermediate = positive(reader, "intermediate_size");
    read_uniform_sliding_window(reader, spec);
  }
  derive_model_quantities(spec, source_name);
  return spec;
}

}  // namespace moesim
