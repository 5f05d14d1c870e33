#include <string>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/model/model_spec.hpp"

namespace {

const std::string kFixtures = std::string(MOESIM_TEST_SOURCE_DIR) + "/tests/data/model/";
const std::string kModels = std::string(MOESIM_TEST_SOURCE_DIR) + "/models/";

nlohmann::json fixture(const std::string& name) {
  return moesim::JsonReader::parse_file(kFixtures + name + ".config.json");
}

std::string import_error(const nlohmann::json& config) {
  try {
    moesim::import_hf_config(config, "config.json");
  } catch (const moesim::InputError& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("importing a Hugging Face config reproduces the shipped model file", "[model][hf]") {
  for (const char* name :
       {"deepseek-v3", "mixtral-8x7b", "qwen3-235b-a22b", "qwen3-30b-a3b", "olmoe-1b-7b", "gpt-oss-120b"}) {
    INFO(name);
    moesim::ModelSpec imported = moesim::import_hf_config(fixture(name), name);
    const moesim::ModelSpec shipped = moesim::load_model(kModels + std::string(name) + ".json");
    imported.name = shipped.name;
    imported.source = shipped.source;
    CHECK(moesim::to_json(imported) == moesim::to_json(shipped));
    CHECK(imported.derived.total_weight_bytes == shipped.derived.total_weight_bytes);
  }
}

TEST_CASE("import reads data types, names and dense models", "[model][hf]") {
  const moesim::ModelSpec deepseek = moesim::import_hf_config(fixture("deepseek-v3"), "ds/config.json");
  CHECK(deepseek.name == "deepseek_v3");
  CHECK(deepseek.source == "imported from Hugging Face config ds/config.json");
  CHECK(deepseek.weight_dtype == moesim::DataType::fp8);
  CHECK(deepseek.expert_dtype == moesim::DataType::fp8);
  CHECK(deepseek.embedding_dtype == moesim::DataType::bf16);

  const moesim::ModelSpec gpt_oss = moesim::import_hf_config(fixture("gpt-oss-120b"), "config.json");
  CHECK(gpt_oss.weight_dtype == moesim::DataType::bf16);
  CHECK(gpt_oss.expert_dtype == moesim::DataType::mxfp4);
  CHECK(gpt_oss.sliding_window == 128);
  CHECK(gpt_oss.sliding_window_period == 2);
  CHECK(gpt_oss.sliding_window_offset == 0);

  // Llama-2-70B's config says float16; the shipped file stores BF16 (same bytes).
  nlohmann::json llama_config = fixture("llama-2-70b");
  llama_config["_name_or_path"] = "meta-llama/Llama-2-70b-hf";
  moesim::ModelSpec llama = moesim::import_hf_config(llama_config, "config.json");
  CHECK(llama.name == "meta-llama/Llama-2-70b-hf");
  CHECK(llama.weight_dtype == moesim::DataType::fp16);
  CHECK_FALSE(llama.is_moe());
  CHECK(llama.dense_layers == 80);
  const moesim::ModelSpec shipped = moesim::load_model(kModels + "llama-2-70b.json");
  CHECK(llama.derived.total_weight_bytes == shipped.derived.total_weight_bytes);
  CHECK(llama.derived.kv_bytes_per_token == shipped.derived.kv_bytes_per_token);

  // Mixtral without head_dim derives it as hidden / heads; a number in sliding_window applies to all layers.
  nlohmann::json mixtral = fixture("mixtral-8x7b");
  mixtral["sliding_window"] = 4096;
  const moesim::ModelSpec windowed = moesim::import_hf_config(mixtral, "config.json");
  CHECK(windowed.head_dim == 128);
  CHECK(windowed.derived.sliding_window_layer_count == 32);
}

TEST_CASE("bad Hugging Face configs name the field", "[model][hf][fuzz]") {
  const auto changed = [](const char* name, const char* key, const nlohmann::json& value) {
    nlohmann::json config = fixture(name);
    config[key] = value;
    return config;
  };
  const auto removed = [](const char* name, const char* key) {
    nlohmann::json config = fixture(name);
    config.erase(key);
    return config;
  };
  CHECK_THAT(import_error(changed("mixtral-8x7b", "model_type", "jamba")),
             Catch::Contains("config.json: model_type: expected one of [deepseek_v3"));
  CHECK_THAT(import_error(removed("mixtral-8x7b", "model_type")),
             Catch::Contains("config.json: model_type: missing required key"));
  CHECK_THAT(import_error(removed("deepseek-v3", "kv_lora_rank")),
             Catch::Contains("config.json: kv_lora_rank: missing required key"));
  CHECK_THAT(import_error(removed("qwen3-30b-a3b", "moe_intermediate_size")),
             Catch::Contains("config.json: moe_intermediate_size: missing required key"));
  CHECK_THAT(import_error(changed("olmoe-1b-7b", "hidden_size", -2048)),
             Catch::Contains("config.json: hidden_size: expected a positive integer, got -2048"));
  CHECK_THAT(import_error(changed("olmoe-1b-7b", "num_experts", "64")),
             Catch::Contains("config.json: num_experts: expected an integer"));
  CHECK_THAT(import_error(changed("olmoe-1b-7b", "vocab_size", 5e20)),
             Catch::Contains("config.json: vocab_size: expected an integer"));
  CHECK_THAT(import_error(changed("deepseek-v3", "moe_layer_freq", 2)),
             Catch::Contains("config.json: moe_layer_freq: moesim supports only 1 here"));
  CHECK_THAT(import_error(changed("qwen3-30b-a3b", "mlp_only_layers", {0, 5})),
             Catch::Contains("config.json: mlp_only_layers: expected an empty list"));
  CHECK_THAT(import_error(changed("qwen3-30b-a3b", "use_sliding_window", true)),
             Catch::Contains("config.json: use_sliding_window:"));
  CHECK_THAT(import_error(changed("mixtral-8x7b", "torch_dtype", "int3")),
             Catch::Contains("config.json: torch_dtype: expected one of [bfloat16, float16, float32]"));
  CHECK_THAT(import_error(changed("deepseek-v3", "quantization_config", {{"quant_method", "awq"}})),
             Catch::Contains("config.json: quantization_config.quant_method: expected one of [fp8, mxfp4]"));
  CHECK_THAT(
      import_error(changed("mixtral-8x7b", "num_key_value_heads", 5)),
      Catch::Contains("config.json: attention.kv_heads: expected a positive divisor of q_heads (32), got 5"));
  CHECK_THAT(import_error(changed("mixtral-8x7b", "num_experts_per_tok", 9)),
             Catch::Contains("config.json: moe.top_k: expected 1..8 (experts), got 9"));

  nlohmann::json irregular = fixture("gpt-oss-120b");
  irregular["layer_types"][3] = "sliding_attention";
  CHECK_THAT(import_error(irregular),
             Catch::Contains("config.json: layer_types: sliding layers must repeat"));
  irregular["layer_types"][3] = "linear_attention";
  CHECK_THAT(import_error(irregular),
             Catch::Contains("config.json: layer_types[3]: expected \"sliding_attention\""));
  nlohmann::json short_types = fixture("gpt-oss-120b");
  short_types["layer_types"].erase(0);
  CHECK_THAT(import_error(short_types), Catch::Contains("config.json: layer_types: expected 36 entries"));
  CHECK_THAT(import_error(nlohmann::json::array()),
             Catch::Contains("config.json: top level: expected an object"));
}
