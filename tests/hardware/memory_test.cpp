#include <string>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/hardware/memory.hpp"

namespace {

const std::string kRoot = std::string(MOESIM_TEST_SOURCE_DIR);

moesim::ModelSpec model(const std::string& name) {
  return moesim::load_model(kRoot + "/models/" + name + ".json");
}
moesim::GpuSpec gpu(const std::string& name) {
  return moesim::load_gpu(kRoot + "/topologies/gpus/" + name + ".json");
}

constexpr double kGiB = 1024.0 * 1024 * 1024;

}  // namespace

TEST_CASE("Llama-2-70B with TP2 on A100-80GB, by hand", "[hardware][memory]") {
  moesim::ParallelLayout layout;
  layout.attention_tp = 2;
  layout.expert_ep = 2;
  const auto plan = moesim::plan_memory(model("llama-2-70b"), gpu("a100"), layout, 0.9, 2 * kGiB);
  // Per layer: q and o 8192x8192, k and v 8192x1024, FFN 3x8192x28672; embeddings 2x32000x8192.
  const double params =
      80 * (2 * 8192.0 * 8192 + 2 * 8192.0 * 1024 + 3 * 8192.0 * 28672) + 2 * 32000.0 * 8192;
  CHECK(params == 68975329280.0);
  CHECK(plan.weight_bytes == params * 2 / 2);  // BF16, split over 2 GPUs: ~69.0 GB each
  CHECK(plan.expert_weight_bytes == 0);
  CHECK(plan.usable_bytes == 0.9 * 80 * kGiB);
  CHECK(plan.kv_cache_bytes == 0.9 * 80 * kGiB - params - 2 * kGiB);
  // 8 KV heads x 128 x 2 (k, v) x 2 bytes x 80 layers, 4 heads per GPU.
  CHECK(plan.kv_heads_per_gpu == 4);
  CHECK(plan.kv_bytes_per_token == 163840.0);
  CHECK(plan.kv_token_capacity == 37760);  // 6186598400 / 163840, exactly
  CHECK(plan.instance_kv_token_capacity == 37760);

  // TP16 exceeds the 8 KV heads: each GPU keeps one head.
  layout.attention_tp = 16;
  layout.expert_ep = 16;
  const auto wide = moesim::plan_memory(model("llama-2-70b"), gpu("a100"), layout, 0.9, 0);
  CHECK(wide.kv_heads_per_gpu == 1);
  CHECK(wide.kv_bytes_per_token == 327680.0 / 8);
}

TEST_CASE("DeepSeek-V3 FP8 with EP32 and 32 redundant experts on H800, by hand", "[hardware][memory]") {
  moesim::ParallelLayout layout;
  layout.attention_dp = 32;
  layout.expert_ep = 32;
  layout.redundant_experts = 32;
  const auto plan = moesim::plan_memory(model("deepseek-v3"), gpu("h800"), layout, 0.9, 4e9);
  CHECK(plan.expert_slots_per_gpu == 9);
  const double expert_bytes = 3.0 * 7168 * 2048;             // FP8: one byte per parameter
  CHECK(plan.expert_weight_bytes == 9 * 58 * expert_bytes);  // ~23.0 GB
  const double attention = 61 * 187105280.0;
  const double dense = 3 * 3.0 * 7168 * 18432;
  const double shared = 58 * expert_bytes;
  const double router = 58 * 256.0 * 7168;
  const double embeddings = 2 * 129280.0 * 7168 * 2;  // BF16
  CHECK(plan.non_expert_weight_bytes ==
        Approx(attention + dense + shared + router + embeddings).epsilon(1e-12));
  CHECK(plan.weight_bytes / 1e9 == Approx(41.9595).epsilon(1e-4));
  // The MLA latent is replicated: 576 values x 2 bytes x 61 layers per token.
  CHECK(plan.kv_bytes_per_token == 70272.0);
  const double kv_bytes = 0.9 * 81559.0 * 1024 * 1024 - plan.weight_bytes - 4e9;
  CHECK(plan.kv_cache_bytes == Approx(kv_bytes).epsilon(1e-12));
  CHECK(plan.kv_token_capacity == static_cast<std::int64_t>(kv_bytes / 70272.0));
  CHECK(plan.instance_kv_token_capacity == 32 * plan.kv_token_capacity);

  // Expert TP halves each expert's share.
  layout.expert_ep = 16;
  layout.expert_tp = 2;
  layout.redundant_experts = 16;
  const auto split = moesim::plan_memory(model("deepseek-v3"), gpu("h800"), layout, 0.9, 4e9);
  CHECK(split.expert_slots_per_gpu == 17);
  CHECK(split.expert_weight_bytes == 17 * 58 * expert_bytes / 2);
}

TEST_CASE("memory plans reject layouts and sizes that do not fit", "[hardware][memory][fuzz]") {
  const auto error = [](const moesim::ModelSpec& m, const moesim::GpuSpec& g,
                        const moesim::ParallelLayout& layout, double utilization = 0.9) {
    try {
      moesim::plan_memory(m, g, layout, utilization, 0, "scenario.json");
    } catch (const moesim::InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const auto llama = model("llama-2-70b");
  const auto deepseek = model("deepseek-v3");
  const auto a100 = gpu("a100");
  moesim::ParallelLayout one;
  // 137.95 GB of BF16 weights on one 80 GiB GPU at 90 %: 137950658560 + 327680 - 77309411328 missing.
  CHECK_THAT(error(llama, a100, one),
             Catch::Contains("scenario.json: memory: llama-2-70b does not fit on A100") &&
                 Catch::Contains("by 60641574912 bytes"));
  moesim::ParallelLayout layout;
  layout.attention_tp = 2;
  CHECK_THAT(error(llama, a100, layout),
             Catch::Contains("scenario.json: expert_ep: expert_ep * expert_tp = 1 * 1 = 1 "
                             "must equal attention_tp * attention_dp = 2 * 1 = 2"));
  layout.attention_tp = 3;
  layout.expert_ep = 3;
  CHECK_THAT(error(llama, a100, layout),
             Catch::Contains("scenario.json: attention_tp: 3 does not divide the 64"));
  layout.attention_tp = 2;
  layout.expert_ep = 2;
  CHECK_THAT(error(llama, a100, layout, 1.5),
             Catch::Contains("scenario.json: gpu_memory_utilization: expected a "
                             "number in (0, 1], got 1.5"));
  layout.redundant_experts = 2;
  CHECK_THAT(error(llama, a100, layout), Catch::Contains("scenario.json: redundant_experts: expected 0"));
  moesim::ParallelLayout ep;
  ep.attention_dp = 32;
  ep.expert_ep = 32;
  ep.redundant_experts = 3;
  CHECK_THAT(
      error(deepseek, gpu("h800"), ep),
      Catch::Contains("scenario.json: expert_ep: 259 expert slots (256 experts + 3 redundant) do not divide "
                      "evenly over expert_ep = 32"));
  CHECK_THAT(error(model("mixtral-8x7b"), gpu("h100"),
                   [] {
                     moesim::ParallelLayout l;
                     l.attention_tp = 8;
                     l.expert_ep = 1;
                     l.expert_tp = 8;
                     l.redundant_experts = -1;
                     return l;
                   }()),
             Catch::Contains("scenario.json: redundant_experts: expected an integer >= 0, got -1"));
  CHECK_THAT(error(model("mixtral-8x7b"), gpu("h100"),
                   [] {
                     moesim::ParallelLayout l;
                     l.attention_tp = 8;
                     l.expert_ep = 8;
                     l.attention_tp = 0;
                     return l;
                   }()),
             Catch::Contains("scenario.json: attention_tp: expected a positive integer, got 0"));
}

TEST_CASE("parallel layouts parse with defaults and reject bad keys", "[hardware][fuzz]") {
  const auto parse = [](const std::string& text) {
    const nlohmann::json document = moesim::JsonReader::parse_text(text, "layout.json");
    return moesim::parse_parallel_layout(moesim::JsonReader(document, "layout.json"));
  };
  const auto layout = parse(R"({"attention_dp": 4, "expert_ep": 4})");
  CHECK(layout.attention_tp == 1);
  CHECK(layout.gpus() == 4);
  CHECK(moesim::to_json(layout) == nlohmann::json{{"attention_tp", 1},
                                                  {"attention_dp", 4},
                                                  {"expert_ep", 4},
                                                  {"expert_tp", 1},
                                                  {"redundant_experts", 0}});
  CHECK_THROWS_WITH(parse(R"({"expert_ep": -4})"),
                    "layout.json: expert_ep: expected a positive integer, got -4");
  CHECK_THROWS_WITH(parse(R"({"expert_ep": "4"})"),
                    "layout.json: expert_ep: expected an integer, got the string \"4\"");
  CHECK_THROWS_WITH(parse(R"({"ep": 4})"), "layout.json: top level: unknown key \"ep\"");
  CHECK_THROWS_WITH(parse(R"({"redundant_experts": -1})"),
                    "layout.json: redundant_experts: expected an integer >= 0, got -1");
  CHECK_THROWS_WITH(parse(R"({"attention_tp": 1e10})"),
                    "layout.json: attention_tp: value 10000000000 is too large");
}
