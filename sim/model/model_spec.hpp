#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/json_reader.hpp"

namespace moesim {

// How attention keys and values are projected and cached.
// gqa covers multi-head (kv_heads == q_heads), grouped-query and multi-query attention;
// mla is DeepSeek's multi-head latent attention (a compressed latent is cached).
enum class AttentionKind { gqa, mla };

// Whether attention runs as a prefill (many new tokens, MLA with keys and values expanded per head)
// or as a decode step (MLA with the up-projections absorbed, attending over the cached latent).
enum class AttentionPhase { prefill, decode };

// Storage formats of weights and KV cache.
enum class DataType { fp32, bf16, fp16, fp8, int8, mxfp4, nvfp4, int4 };

// Bytes per stored element, block scales included (mxfp4: 4 bits + one 8-bit scale per 32 values;
// nvfp4: 4 bits + one 8-bit scale per 16 values; int4: scales not counted).
double bytes_per_element(DataType type);
std::string_view data_type_name(DataType type);
// Parses "bf16", "fp8", ...; throws InputError naming `source` and `place` otherwise.
DataType parse_data_type(std::string_view text, std::string_view source, std::string_view place);

// Quantities that follow from the shape, computed once by derive_model_quantities().
// Counts are parameters (elements); bytes use the spec's data types; FLOPs count a
// multiply-add as 2. "Per layer" figures are for one layer of the kind named.
struct ModelDerived {
  // Parameters.
  double attention_params_per_layer = 0;  // projections (q, k, v / MLA down+up, o), biases and norms ignored
  double dense_ffn_params_per_layer = 0;  // gated FFN: 3 * hidden * dense_intermediate
  double expert_params = 0;               // one routed expert of one layer: 3 * hidden * expert_intermediate
  double shared_expert_params = 0;  // one shared expert of one layer: 3 * hidden * shared_expert_intermediate
  double router_params_per_layer = 0;  // gate: hidden * experts
  double embedding_params = 0;         // input embedding table: vocab * hidden
  double lm_head_params = 0;           // vocab * hidden; 0 when tied to the embedding table
  double total_params = 0;
  // Parameters one token touches: all but the routed experts it is not sent to
  // (top_k of `experts` per MoE layer). Model cards mostly count it this way.
  double active_params_per_token = 0;
  // The same without the input embedding table, which is a lookup and costs no FLOPs
  // (OpenAI's convention for GPT-OSS).
  double active_params_per_token_without_embedding = 0;

  // Weight bytes.
  double attention_weight_bytes_per_layer = 0;
  double dense_ffn_weight_bytes_per_layer = 0;
  double expert_weight_bytes = 0;         // one routed expert of one layer
  double shared_expert_weight_bytes = 0;  // one shared expert of one layer
  double router_weight_bytes_per_layer = 0;
  double embedding_weight_bytes = 0;  // input embedding plus an untied lm head
  double total_attention_weight_bytes = 0;
  double total_dense_ffn_weight_bytes = 0;
  double total_routed_expert_weight_bytes = 0;
  double total_shared_expert_weight_bytes = 0;
  double total_router_weight_bytes = 0;
  double total_weight_bytes = 0;

  // KV cache. MLA caches kv_lora_rank + qk_rope_head_dim values per token and layer (one latent
  // shared by all heads); GQA caches 2 * kv_heads * head_dim.
  double kv_elements_per_token_per_layer = 0;
  double kv_bytes_per_token_per_layer = 0;
  double kv_bytes_per_token = 0;  // all layers, sliding-window layers included at full length

  // FLOPs per token of one layer (2 * parameters of the matrices applied).
  double attention_projection_flops_per_layer = 0;
  double dense_ffn_flops_per_layer = 0;
  double expert_flops = 0;  // one routed expert
  double shared_expert_flops = 0;
  double router_flops_per_layer = 0;
  double lm_head_flops = 0;  // 2 * vocab * hidden, also when tied
  // Attention core FLOPs per query token and attended key, one layer.
  double attention_core_flops_per_key_prefill = 0;
  double attention_core_flops_per_key_decode = 0;

  int moe_layers = 0;
  int sliding_window_layer_count = 0;
};

struct ModelSpec {
  std::string name;
  std::string source;  // the published config this spec follows

  int layers = 0;
  int dense_layers = 0;  // the leading layers use a dense FFN; the rest are MoE layers
  int hidden = 0;
  int vocab = 0;
  bool tied_embeddings = false;

  AttentionKind attention = AttentionKind::gqa;
  int q_heads = 0;
  int kv_heads = 0;  // MLA: equal to q_heads
  int head_dim = 0;  // MLA: qk_nope_head_dim + qk_rope_head_dim
  // MLA only (0 for gqa). q_lora_rank 0 means queries are projected without compression.
  int q_lora_rank = 0;
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;  // gqa: equal to head_dim

  // Sliding-window attention: layer l attends to at most sliding_window keys when
  // sliding_window > 0 and l % sliding_window_period == sliding_window_offset.
  int sliding_window = 0;
  int sliding_window_period = 1;
  int sliding_window_offset = 0;

  int dense_intermediate = 0;  // 0 when there are no dense layers
  int experts = 0;             // routed experts per MoE layer; 0 for a dense model
  int top_k = 0;
  int shared_experts = 0;
  // Group-limited routing (DeepSeek-V3's n_group, topk_group): the routed experts form expert_groups
  // equal groups of consecutive experts and a token's top_k lie in at most groups_per_token of them.
  // 0: no limit.
  int expert_groups = 0;
  int groups_per_token = 0;
  int expert_intermediate = 0;
  int shared_expert_intermediate = 0;

  DataType weight_dtype = DataType::bf16;     // attention, dense FFN, shared experts, router
  DataType expert_dtype = DataType::bf16;     // routed experts
  DataType embedding_dtype = DataType::bf16;  // input embedding and lm head
  DataType kv_cache_dtype = DataType::bf16;

  // One flag per layer, so hot paths index arrays instead of testing the pattern.
  std::vector<std::uint8_t> layer_uses_sliding_window;
  ModelDerived derived;

  bool is_moe_layer(int layer) const { return layer >= dense_layers; }
  bool is_moe() const { return experts > 0; }

  // FLOPs of the attention core (scores and weighted values) of one layer for `new_tokens`
  // causal queries that follow `cached_tokens` keys already in the cache; a sliding-window layer
  // attends to at most sliding_window keys per query.
  double attention_core_flops(int layer, std::int64_t cached_tokens, std::int64_t new_tokens,
                              AttentionPhase phase) const;
  // The same summed over all layers.
  double attention_core_flops_all_layers(std::int64_t cached_tokens, std::int64_t new_tokens,
                                         AttentionPhase phase) const;
  // FLOPs of one token's pass through the matrices (attention projections, dense FFNs, router,
  // top_k routed and all shared experts, lm head), attention core excluded.
  double matrix_flops_per_token() const;
};

// Number of keys that `new_tokens` causal queries following `cached_tokens` attend to in total,
// each query seeing at most `window` keys (window 0: unlimited).
double causal_attended_keys(std::int64_t cached_tokens, std::int64_t new_tokens, std::int64_t window);

// Checks the shape (names the offending key in `source`) and fills layer flags and `derived`.
// parse_model, load_model and import_hf_config call it; code that edits a spec calls it again.
void derive_model_quantities(ModelSpec& spec, std::string_view source);

ModelSpec parse_model(const JsonReader& reader);
ModelSpec load_model(const std::filesystem::path& file);
nlohmann::json to_json(const ModelSpec& spec);

// Builds a spec from a Hugging Face config.json (model_type deepseek_v3, mixtral, qwen3_moe,
// olmoe, gpt_oss, or dense llama, mistral, qwen2, qwen3). The name is the config's
// "_name_or_path" when present, else its model_type; `source_name` names it in errors and
// in the spec's source field. Fields the spec cannot represent are InputErrors naming them.
ModelSpec import_hf_config(const nlohmann::json& hf_config, std::string_view source_name);

}  // namespace moesim
