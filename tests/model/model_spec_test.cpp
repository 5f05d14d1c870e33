#include <cmath>
#include <string>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/model/model_spec.hpp"

namespace {

using moesim::AttentionPhase;
using moesim::ModelSpec;

const std::string kModels = std::string(MOESIM_TEST_SOURCE_DIR) + "/models/";

ModelSpec shipped(const std::string& name) {
  return moesim::load_model(kModels + name + ".json");
}

// Parses `text` as a model file named "case.json"; returns the InputError message ("" if none).
std::string parse_error(const std::string& text) {
  try {
    const nlohmann::json document = moesim::JsonReader::parse_text(text, "case.json");
    moesim::parse_model(moesim::JsonReader(document, "case.json"));
  } catch (const moesim::InputError& error) {
    return error.what();
  }
  return "";
}

const char* const kValidModel = R"({
  "name": "tiny", "source": "test", "layers": 4, "dense_layers": 1, "hidden": 64, "vocab": 100,
  "dense_intermediate": 256,
  "attention": {"kind": "gqa", "q_heads": 8, "kv_heads": 2, "head_dim": 16,
                "sliding_window": {"tokens": 32, "period": 2, "offset": 1}},
  "moe": {"experts": 8, "top_k": 2, "expert_intermediate": 32, "shared_experts": 1,
          "shared_expert_intermediate": 48},
  "precision": {"weights": "bf16", "experts": "mxfp4", "kv_cache": "fp8"}
})";

std::string with(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("shipped models match their published parameter counts", "[model]") {
  struct Published {
    const char* name;
    double total;
    double active;
  };
  // Totals and activated parameters from the model cards; active counts include the embedding
  // tables (as those cards count them), except GPT-OSS below.
  const Published models[] = {{"deepseek-v3", 671e9, 37e9},     {"mixtral-8x7b", 46.7e9, 12.9e9},
                              {"qwen3-235b-a22b", 235e9, 22e9}, {"qwen3-30b-a3b", 30.5e9, 3.3e9},
                              {"olmoe-1b-7b", 6.9e9, 1.3e9},    {"llama-2-70b", 69e9, 69e9}};
  for (const auto& model : models) {
    INFO(model.name);
    const ModelSpec spec = shipped(model.name);
    CHECK(spec.derived.total_params == Approx(model.total).epsilon(0.02));
    CHECK(spec.derived.active_params_per_token == Approx(model.active).epsilon(0.03));
  }
  // OpenAI's card: 116.83 B total, 5.13 B active without the embedding table.
  const ModelSpec gpt_oss = shipped("gpt-oss-120b");
  CHECK(gpt_oss.derived.total_params == Approx(116.83e9).epsilon(0.01));
  CHECK(gpt_oss.derived.active_params_per_token_without_embedding == Approx(5.13e9).epsilon(0.01));
}

TEST_CASE("DeepSeek-V3 figures by hand", "[model]") {
  const ModelSpec spec = shipped("deepseek-v3");
  const auto& d = spec.derived;
  // q_a 7168x1536, q_b 1536x(128x192), kv_a 7168x(512+64), kv_b 512x(128x(128+128)), o (128x128)x7168.
  CHECK(d.attention_params_per_layer ==
        7168.0 * 1536 + 1536.0 * 128 * 192 + 7168.0 * 576 + 512.0 * 128 * 256 + 128.0 * 128 * 7168);
  CHECK(d.attention_params_per_layer == 187105280.0);
  CHECK(d.expert_params == 3.0 * 7168 * 2048);
  CHECK(d.shared_expert_params == 3.0 * 7168 * 2048);
  CHECK(d.dense_ffn_params_per_layer == 3.0 * 7168 * 18432);
  CHECK(d.moe_layers == 58);
  CHECK(spec.is_moe_layer(3));
  CHECK_FALSE(spec.is_moe_layer(2));
  // Latent 512 + rope 64 per token and layer, BF16 cache: 576 x 2 x 61.
  CHECK(d.kv_bytes_per_token_per_layer == 1152.0);
  CHECK(d.kv_bytes_per_token == 70272.0);
  ModelSpec fp8_cache = spec;
  fp8_cache.kv_cache_dtype = moesim::DataType::fp8;
  moesim::derive_model_quantities(fp8_cache, "test");
  CHECK(fp8_cache.derived.kv_bytes_per_token == 35136.0);
  // FP8 matrices, BF16 embeddings and lm head.
  CHECK(d.expert_weight_bytes == 3.0 * 7168 * 2048);
  CHECK(d.embedding_weight_bytes == 2.0 * 129280 * 7168 * 2);
  // Attention core per key: prefill 2x128x192 + 2x128x128; decode (absorbed) 2x128x576 + 2x128x512.
  CHECK(d.attention_core_flops_per_key_prefill == 81920.0);
  CHECK(d.attention_core_flops_per_key_decode == 278528.0);
  CHECK(spec.attention_core_flops(10, 99, 1, AttentionPhase::decode) == 278528.0 * 100);
}

TEST_CASE("GQA KV bytes and sliding-window layers by hand", "[model]") {
  CHECK(shipped("llama-2-70b").derived.kv_bytes_per_token == 2.0 * 8 * 128 * 2 * 80);
  CHECK(shipped("mixtral-8x7b").derived.kv_bytes_per_token == 2.0 * 8 * 128 * 2 * 32);
  CHECK(shipped("qwen3-235b-a22b").derived.kv_bytes_per_token == 2.0 * 4 * 128 * 2 * 94);
  CHECK(shipped("olmoe-1b-7b").derived.kv_bytes_per_token == 2.0 * 16 * 128 * 2 * 16);

  const ModelSpec gpt_oss = shipped("gpt-oss-120b");
  CHECK(gpt_oss.derived.kv_bytes_per_token == 2.0 * 8 * 64 * 2 * 36);
  CHECK(gpt_oss.derived.sliding_window_layer_count == 18);
  CHECK(gpt_oss.layer_uses_sliding_window[0] == 1);
  CHECK(gpt_oss.layer_uses_sliding_window[1] == 0);
  // MXFP4 experts: 4.25 bits per parameter.
  CHECK(gpt_oss.derived.expert_weight_bytes == 3.0 * 2880 * 2880 * 4.25 / 8);
  // Decode at 1000 cached tokens: full layers see 1001 keys, sliding layers 128.
  const double per_key = 4.0 * 64 * 64;
  CHECK(gpt_oss.derived.attention_core_flops_per_key_decode == per_key);
  CHECK(gpt_oss.attention_core_flops_all_layers(1000, 1, AttentionPhase::decode) ==
        per_key * (18 * 1001.0 + 18 * 128.0));
  CHECK(gpt_oss.attention_core_flops(1, 1000, 1, AttentionPhase::decode) == per_key * 1001);
  CHECK(gpt_oss.attention_core_flops(0, 1000, 1, AttentionPhase::decode) == per_key * 128);
}

TEST_CASE("causal attended keys match a direct count", "[model]") {
  for (std::int64_t cached : {0, 1, 5, 127, 128, 300}) {
    for (std::int64_t fresh : {1, 2, 7, 128, 500}) {
      for (std::int64_t window : {0, 1, 3, 128, 129, 1000}) {
        double direct = 0;
        for (std::int64_t i = 0; i < fresh; ++i) {
          const std::int64_t keys = cached + i + 1;
          direct += static_cast<double>(window > 0 ? std::min(keys, window) : keys);
        }
        INFO(cached << " cached, " << fresh << " new, window " << window);
        CHECK(moesim::causal_attended_keys(cached, fresh, window) == direct);
      }
    }
  }
}

TEST_CASE("matrix FLOPs per token are twice the parameters a token uses", "[model]") {
  // Every listed model has an untied lm head, so its FLOPs are 2 x its parameters.
  for (const char* name : {"deepseek-v3", "mixtral-8x7b", "qwen3-30b-a3b", "gpt-oss-120b", "llama-2-70b"}) {
    INFO(name);
    const ModelSpec spec = shipped(name);
    CHECK(spec.matrix_flops_per_token() ==
          Approx(2.0 * spec.derived.active_params_per_token_without_embedding).epsilon(1e-12));
  }
  const ModelSpec llama = shipped("llama-2-70b");
  // Prefill of 2048 tokens from an empty cache: 2048 x 2049 / 2 keys per layer, 4 x 64 x 128 FLOPs each.
  CHECK(llama.attention_core_flops_all_layers(0, 2048, AttentionPhase::prefill) ==
        80.0 * 4 * 64 * 128 * (2048.0 * 2049 / 2));
}

TEST_CASE("model files survive a round trip through to_json", "[model]") {
  for (const char* name : {"deepseek-v3", "mixtral-8x7b", "qwen3-235b-a22b", "qwen3-30b-a3b", "olmoe-1b-7b",
                           "gpt-oss-120b", "llama-2-70b"}) {
    INFO(name);
    const ModelSpec spec = shipped(name);
    CHECK(spec.name == name);
    const nlohmann::json written = moesim::to_json(spec);
    const ModelSpec again = moesim::parse_model(moesim::JsonReader(written, "round trip"));
    CHECK(moesim::to_json(again) == written);
    CHECK(again.derived.total_weight_bytes == spec.derived.total_weight_bytes);
    // The shipped file is exactly what to_json writes.
    CHECK(moesim::JsonReader::parse_file(kModels + name + ".json") == written);
  }
}

TEST_CASE("a small model file parses with its defaults and derived figures", "[model]") {
  REQUIRE(parse_error(kValidModel).empty());
  const nlohmann::json document = moesim::JsonReader::parse_text(kValidModel, "case.json");
  const ModelSpec spec = moesim::parse_model(moesim::JsonReader(document, "case.json"));
  CHECK(spec.embedding_dtype == moesim::DataType::bf16);
  CHECK_FALSE(spec.tied_embeddings);
  CHECK(spec.layer_uses_sliding_window == std::vector<std::uint8_t>{0, 1, 0, 1});
  const auto& d = spec.derived;
  CHECK(d.attention_params_per_layer == 64.0 * 128 + 2 * 64.0 * 32 + 128.0 * 64);
  CHECK(d.total_params == 4 * d.attention_params_per_layer + 3 * 64.0 * 256 +
                              3 * (8 * 3 * 64.0 * 32 + 3 * 64.0 * 48 + 64.0 * 8) + 2 * 100.0 * 64);
  CHECK(d.active_params_per_token == d.total_params - 3 * 6 * 3 * 64.0 * 32);
  CHECK(d.kv_bytes_per_token == 4 * 2 * 2 * 16.0);
  CHECK(d.expert_weight_bytes == 3 * 64.0 * 32 * 4.25 / 8);
}

TEST_CASE("bad model files name the file, the key and what was expected", "[model][fuzz]") {
  const std::string valid = kValidModel;
  struct Case {
    std::string text;
    const char* expected;
  };
  const Case cases[] = {
      {"", "case.json: file is empty"},
      {valid.substr(0, valid.size() / 2), "case.json: line"},
      {with(valid, "\"layers\": 4", "\"layers\": NaN"), "invalid JSON"},
      {with(valid, "\"layers\": 4,", ""), "case.json: layers: missing required key"},
      {with(valid, "\"layers\": 4", "\"layers\": -4"),
       "case.json: layers: expected a positive integer, got -4"},
      {with(valid, "\"layers\": 4", "\"layers\": \"4\""), "case.json: layers: expected an integer"},
      {with(valid, "\"layers\": 4", "\"layers\": 4.5"), "case.json: layers: expected an integer"},
      {with(valid, "\"layers\": 4", "\"layers\": 1e300"), "case.json: layers: expected an integer"},
      {with(valid, "\"layers\": 4", "\"layers\": 99999999999"),
       "case.json: layers: value 99999999999 is too large"},
      {with(valid, "\"vocab\": 100", "\"vocab\": 100, \"vocabulary\": 5"),
       "case.json: top level: unknown key \"vocabulary\""},
      {with(valid, "\"kind\": \"gqa\"", "\"kind\": \"mqa\""),
       "case.json: attention.kind: expected one of [gqa, mla]"},
      {with(valid, "\"kv_heads\": 2", "\"kv_heads\": 3"),
       "case.json: attention.kv_heads: expected a positive divisor of q_heads (8), got 3"},
      {with(valid, "\"head_dim\": 16", "\"head_dim\": 16, \"kv_lora_rank\": 4"),
       "case.json: attention: unknown key \"kv_lora_rank\""},
      {with(valid, "\"offset\": 1", "\"offset\": 2"),
       "case.json: attention.sliding_window.offset: expected 0..1"},
      {with(valid, "\"tokens\": 32", "\"tokens\": 0"),
       "case.json: attention.sliding_window.tokens: expected a positive integer"},
      {with(valid, "\"top_k\": 2", "\"top_k\": 9"), "case.json: moe.top_k: expected 1..8 (experts), got 9"},
      {with(valid, "\"top_k\": 2", "\"top_k\": null"), "case.json: moe.top_k: expected an integer, got null"},
      {with(valid, "\"shared_expert_intermediate\": 48", "\"shared_width\": 48"),
       "case.json: moe.shared_expert_intermediate: missing required key"},
      {with(valid, "\"dense_intermediate\": 256,", ""),
       "case.json: dense_intermediate: missing required key"},
      {with(valid, "\"dense_layers\": 1", "\"dense_layers\": 5"),
       "case.json: dense_layers: expected 0..4 (layers), got 5"},
      {with(valid, "\"dense_layers\": 1", "\"dense_layers\": 4"),
       "case.json: dense_layers: a model with experts needs at least one MoE layer"},
      {with(valid, "\"experts\": \"mxfp4\"", "\"experts\": \"fp6\""),
       "case.json: precision.experts: expected one of [fp32, bf16"},
      {with(valid, "\"precision\"", "\"precisions\""), "case.json: precision: missing required key"},
      {with(valid, "\"moe\": {", "\"moe\": 3, \"x\": {"),
       "case.json: moe: expected an object, got the number 3"},
      {with(valid, "\"name\": \"tiny\"", "\"name\": \"\""), "case.json: name: expected a non-empty string"},
      {"[1, 2]", "case.json: top level: expected an object, got an array"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK_THAT(parse_error(c.text), Catch::Contains(c.expected));
  }
  // A dense model may leave out "moe", but then every layer must be dense.
  std::string dense = with(valid,
                           "\"moe\": {\"experts\": 8, \"top_k\": 2, \"expert_intermediate\": 32, "
                           "\"shared_experts\": 1,\n          \"shared_expert_intermediate\": 48},",
                           "");
  CHECK_THAT(parse_error(dense), Catch::Contains("case.json: moe: missing: 3 of 4 layers are MoE layers"));
  CHECK(parse_error(with(dense, "\"dense_layers\": 1", "\"dense_layers\": 4")).empty());
  CHECK_THROWS_WITH(moesim::parse_data_type("fp6", "--weight-dtype", ""),
                    Catch::StartsWith("--weight-dtype: expected one of [fp32, bf16, fp16, fp8"));
}

TEST_CASE("a missing model file is an input error naming it", "[model][fuzz]") {
  CHECK_THROWS_WITH(moesim::load_model(kModels + "no-such-model.json"),
                    Catch::Contains("no-such-model.json"));
}
