#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "sim/common/files.hpp"
#include "sim/config/scenario.hpp"

namespace moesim::testing {

// A small dense model whose decode steps cost almost the same whatever the
// context (tiny KV cache, weights dominate), so service times are set by the
// number of steps.
inline nlohmann::json tiny_dense_model() {
  return nlohmann::json::parse(R"({
    "name": "tiny-dense", "source": "test fixture", "layers": 2, "dense_layers": 2, "hidden": 1024,
    "vocab": 1000, "dense_intermediate": 4096,
    "attention": {"kind": "gqa", "q_heads": 8, "kv_heads": 8, "head_dim": 128},
    "precision": {"weights": "bf16", "kv_cache": "bf16"}})");
}

// A scenario on one H100 with one sequence at a time unless overridden.
inline nlohmann::json single_gpu_scenario(const nlohmann::json& workload) {
  nlohmann::json scenario;
  scenario["name"] = "test";
  scenario["model"] = tiny_dense_model();
  scenario["cluster"] = "h100-8x1";
  scenario["deployment"] = nlohmann::json::parse(R"({
    "parallel": {"attention_tp": 1, "attention_dp": 1, "expert_ep": 1, "expert_tp": 1},
    "scheduler": {"max_sequences": 1, "max_batched_tokens": 100000, "chunked_prefill": false}})");
  scenario["workload"] = workload;
  scenario["seed"] = 7;
  return scenario;
}

// Writes `scenario` to a file of its own and loads it.
inline Scenario load_test_scenario(const nlohmann::json& scenario, const std::string& file_name,
                                   const std::vector<std::string>& overrides = {}) {
  const auto file = std::filesystem::temp_directory_path() / "moesim_tests" / file_name;
  write_file_atomically(file, scenario.dump(2));
  return load_scenario(file, overrides);
}

}  // namespace moesim::testing
