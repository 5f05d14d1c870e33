#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/paths.hpp"
#include "sim/config/scenario.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

namespace {

const std::filesystem::path kScenarios =
    std::filesystem::path(MOESIM_TEST_SOURCE_DIR) / "tools" / "scenarios";

std::filesystem::path write_scenario(const std::string& name, const std::string& text) {
  const auto file = std::filesystem::temp_directory_path() / "moesim_config_tests" / name;
  write_file_atomically(file, text);
  return file;
}

// A valid scenario as text, so tests can break it in one place at a time.
nlohmann::json valid_document() {
  return nlohmann::json::parse(R"({
    "name": "t", "model": "mixtral-8x7b", "cluster": "h100-8x1",
    "deployment": {"parallel": {"attention_tp": 8, "expert_ep": 8}},
    "workload": {"kind": "closed_loop", "concurrency": 4, "input_tokens": 100, "output_tokens": 10, "requests": 8},
    "router": {"kind": "uniform"}, "capacity": {"policy": "dropless"}})");
}

void check_rejected(const nlohmann::json& document, const std::string& name, const std::string& expected) {
  const auto file = write_scenario(name, document.dump());
  CHECK_THROWS_WITH(load_scenario(file), Contains(file.string()) && Contains(expected));
}

}  // namespace

TEST_CASE("every shipped scenario loads and resolves", "[config]") {
  for (const auto& entry : std::filesystem::directory_iterator(kScenarios)) {
    INFO(entry.path());
    const Scenario scenario = load_scenario(entry.path());
    CHECK(!scenario.name.empty());
    CHECK(resolved_json(scenario)["model"]["name"] == scenario.model.name);
  }
}

TEST_CASE("--set overrides edit the document before it is read", "[config]") {
  nlohmann::json document = valid_document();
  apply_override(document, "deployment.scheduler.max_sequences=64");
  apply_override(document, "router={\"kind\": \"zipf\", \"exponent\": 1.5}");
  apply_override(document, "name=renamed");
  CHECK(document["deployment"]["scheduler"]["max_sequences"] == 64);
  CHECK(document["router"]["exponent"] == 1.5);
  CHECK(document["name"] == "renamed");
  CHECK_THROWS_WITH(apply_override(document, "no_equals_sign"),
                    Contains("--set: no_equals_sign: expected path.to.key=value"));
  CHECK_THROWS_WITH(apply_override(document, "name.inner=1"),
                    Contains("--set: name.inner: cannot set \"inner\""));
  CHECK_THROWS_WITH(apply_override(document, "a..b=1"), Contains("empty key"));

  const auto file = write_scenario("override.json", valid_document().dump());
  const Scenario scenario =
      load_scenario(file, {"seed=99", "capacity.capacity_factor=1.5", "capacity.policy=drop"});
  CHECK(scenario.seed == 99);
  CHECK(scenario.capacity.capacity_factor == 1.5);
  CHECK(load_scenario(file, {}, 5).seed == 5);
  // Grouped expert kernels unless the deployment asks for the per-expert loop.
  CHECK(load_scenario(file).deployment.step.expert_kernel == ExpertKernel::grouped);
  const Scenario per_expert = load_scenario(file, {"deployment.expert_kernel=per_expert"});
  CHECK(per_expert.deployment.step.expert_kernel == ExpertKernel::per_expert);
  CHECK(resolved_json(per_expert)["deployment"]["expert_kernel"] == "per_expert");
  CHECK_THROWS_WITH(load_scenario(file, {"deployment.paralel.attention_tp=2"}),
                    Contains("deployment: unknown key \"paralel\""));
}

TEST_CASE("bad scenarios are rejected with the file and the key named", "[config][fuzz]") {
  auto broken = [](auto edit) {
    nlohmann::json document = valid_document();
    edit(document);
    return document;
  };
  check_rejected(broken([](auto& d) { d["unknown_key"] = 1; }), "unknown.json",
                 "unknown key \"unknown_key\"");
  check_rejected(broken([](auto& d) { d.erase("workload"); }), "missing.json",
                 "workload: missing required key");
  check_rejected(broken([](auto& d) { d["seed"] = -1; }), "negative.json",
                 "seed: expected an integer >= 0, got -1");
  check_rejected(broken([](auto& d) { d["seed"] = "one"; }), "type.json", "seed: expected an integer");
  check_rejected(broken([](auto& d) { d["model"] = 5; }), "model_type.json", "model: expected a models name");
  check_rejected(broken([](auto& d) { d["model"] = "no-such-model"; }), "model_missing.json",
                 "model: no models file");
  check_rejected(broken([](auto& d) { d["deployment"]["parallel"]["attention_tp"] = 3; }), "layout.json",
                 "deployment.parallel");
  check_rejected(broken([](auto& d) { d["deployment"]["instances"] = 2; }), "too_many.json",
                 "deployment.instances: 2 instances x 8 GPUs need 16 GPUs, but cluster \"h100-8x1\" has 8");
  check_rejected(broken([](auto& d) { d["deployment"]["gpu_memory_utilization"] = 1.5; }), "util.json",
                 "deployment.gpu_memory_utilization: expected a number in (0, 1]");
  check_rejected(broken([](auto& d) { d["deployment"]["scheduler"]["max_sequences"] = 0; }), "zero.json",
                 "deployment.scheduler.max_sequences: expected a positive integer, got 0");
  check_rejected(broken([](auto& d) { d["deployment"]["scheduler"]["max_batched_tokens"] = 1e300; }),
                 "huge.json", "deployment.scheduler.max_batched_tokens");
  check_rejected(broken([](auto& d) { d["deployment"]["expert_kernel"] = "fused"; }), "kernel.json",
                 "deployment.expert_kernel: expected one of [grouped, per_expert], got \"fused\"");
  check_rejected(broken([](auto& d) { d["deployment"]["expert_kernel"] = 1; }), "kernel_type.json",
                 "deployment.expert_kernel: expected a string");
  check_rejected(broken([](auto& d) { d["router"]["kind"] = "magic"; }), "router.json",
                 "router.kind: expected one of");
  check_rejected(broken([](auto& d) { d.erase("router"); }), "no_router.json",
                 "router: an MoE model needs a router");
  check_rejected(broken([](auto& d) {
                   d["outputs"] = {{"timeseries_window_s", -1}};
                 }),
                 "window.json", "outputs.timeseries_window_s: expected a positive number");
  check_rejected(broken([](auto& d) { d["schema_version"] = 2; }), "version.json", "schema_version");
  check_rejected(broken([](auto& d) {
                   d["stop"] = {{"time_limit_s", 1e10}};
                 }),
                 "limit.json", "stop.time_limit_s: expected at most");
  check_rejected(broken([](auto& d) {
                   d["outputs"] = {{"timeseries_window_s", 1e-10}};
                 }),
                 "tiny_window.json", "outputs.timeseries_window_s: expected a window between");

  check_rejected(broken([](auto& d) {
                   d["model"] = "llama-2-70b";
                   d["deployment"]["parallel"] = {{"attention_tp", 1}};
                 }),
                 "memory.json", "exceed the usable");
}

TEST_CASE("empty, truncated and NaN scenario files are rejected", "[config][fuzz]") {
  const auto empty = write_scenario("empty.json", "");
  CHECK_THROWS_WITH(load_scenario(empty), Contains("empty.json: file is empty"));
  const std::string text = valid_document().dump();
  const auto truncated = write_scenario("truncated.json", text.substr(0, text.size() / 2));
  CHECK_THROWS_WITH(load_scenario(truncated), Contains("truncated.json: line 1, column"));
  const auto nan = write_scenario("nan.json", R"({"name": "t", "seed": NaN})");
  CHECK_THROWS_AS(load_scenario(nan), InputError);
  CHECK_THROWS_WITH(load_scenario("/nonexistent/scenario.json"),
                    Contains("/nonexistent/scenario.json: cannot open"));
}
