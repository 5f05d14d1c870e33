#include "sim/config/scenario.hpp"

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/paths.hpp"

namespace moesim {

namespace {

constexpr std::string_view kOverrideSource = "--set";
// Simulated time is int64 nanoseconds (292 years); durations in a scenario stay well inside.
constexpr double kLongestRunSeconds = 1e9;

// The cost model's precision for a stored data type: 8-bit types run FP8 GEMMs,
// 4-bit ones FP4; wider ones BF16.
Precision precision_of(DataType type) {
  switch (type) {
    case DataType::fp8:
    case DataType::int8:
      return Precision::fp8;
    case DataType::mxfp4:
    case DataType::nvfp4:
    case DataType::int4:
      return Precision::fp4;
    default:
      return Precision::bf16;
  }
}

DataType data_type_of(Precision precision) {
  switch (precision) {
    case Precision::fp8:
      return DataType::fp8;
    case Precision::fp4:
      return DataType::mxfp4;
    default:
      return DataType::bf16;
  }
}

// A catalogue entry given by name, by path, or inline as an object.
template <typename Spec, typename ParseFn>
Spec load_entry(const JsonReader& scenario, std::string_view key, std::string_view catalogue,
                const std::filesystem::path& base, std::filesystem::path& resolved_file, ParseFn parse) {
  const nlohmann::json& value = scenario.raw(key);
  if (value.is_object()) return parse(JsonReader(value, scenario.source(), scenario.place(key)));
  if (!value.is_string()) {
    scenario.fail(key, fmt::format("expected a {} name, a path to a .json file or an object, got {}",
                                   catalogue, describe_json(value)));
  }
  resolved_file = resolve_catalogue_entry(value.get<std::string>(), catalogue, base);
  if (!std::filesystem::exists(resolved_file)) {
    scenario.fail(key, fmt::format("no {} file {}", catalogue, resolved_file.string()));
  }
  const nlohmann::json document = JsonReader::parse_file(resolved_file);
  return parse(JsonReader(document, resolved_file.string()));
}

}  // namespace

void apply_override(nlohmann::json& document, std::string_view assignment) {
  const auto equals = assignment.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    throw InputError(kOverrideSource, assignment, "expected path.to.key=value");
  }
  const std::string_view path = assignment.substr(0, equals);
  const std::string_view text = assignment.substr(equals + 1);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception&) {
    value = std::string(text);
  }
  nlohmann::json* node = &document;
  std::size_t start = 0;
  for (;;) {
    const auto dot = path.find('.', start);
    const std::string key(
        path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (key.empty()) throw InputError(kOverrideSource, path, "empty key in the path");
    if (!node->is_object()) {
      throw InputError(
          kOverrideSource, path,
          fmt::format("cannot set \"{}\" inside {}, which is not an object", key, describe_json(*node)));
    }
    if (dot == std::string_view::npos) {
      (*node)[key] = std::move(value);
      return;
    }
    node = &(*node)[key];
    if (node->is_null()) *node = nlohmann::json::object();
    start = dot + 1;
  }
}

Scenario load_scenario(const std::filesystem::path& file, const std::vector<std::string>& overrides,
                       std::optional<std::uint64_t> seed) {
  Scenario scenario;
  scenario.file = file;
  scenario.document = JsonReader::parse_file(file);
  for (const auto& assignment : overrides)
    apply_override(scenario.document, assignment);
  const std::filesystem::path base = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  const JsonReader reader(scenario.document, file.string());

  if (reader.has("schema_version") && reader.integer("schema_version") != 1) {
    reader.fail("schema_version", "this moesim reads scenario schema version 1");
  }
  scenario.name = reader.string("name", file.stem().string());
  scenario.description = reader.string("description", "");
  scenario.model = load_entry<ModelSpec>(reader, "model", "models", base, scenario.model_file,
                                         [](const JsonReader& r) { return parse_model(r); });
  scenario.cluster =
      load_entry<ClusterSpec>(reader, "cluster", "topologies/clusters", base, scenario.cluster_file,
                              [](const JsonReader& r) { return parse_cluster(r.json(), r.source()); });
  if (reader.has("gpu")) {
    scenario.gpu = load_entry<GpuSpec>(reader, "gpu", "topologies/gpus", base, scenario.gpu_file,
                                       [](const JsonReader& r) { return parse_gpu(r); });
  } else {
    scenario.gpu_file = resolve_catalogue_entry(scenario.cluster.gpu, "topologies/gpus", base);
    scenario.gpu = load_gpu(scenario.gpu_file);
  }
  if (const JsonReader deployment = reader.object("deployment"); is_disaggregated(deployment)) {
    scenario.disaggregation = parse_disaggregation(deployment, base);
    scenario.deployment = scenario.disaggregation->decode;
  } else {
    scenario.deployment = parse_deployment(deployment, base);
  }
  scenario.workload = parse_workload(reader.object("workload"), base);
  if (auto router = reader.optional_object("router")) {
    scenario.router = parse_router(*router, base);
    // Classes from the workload: the trace's class column and names (none for synthetic workloads,
    // whose requests all have the workload's constant class).
    const auto* trace = std::get_if<TraceSpec>(&scenario.workload.source);
    bind_traffic_classes(scenario.router, trace != nullptr ? trace->file.class_column : std::string(),
                         trace != nullptr ? trace->file.class_names : std::vector<std::string>(),
                         file.string());
  } else if (scenario.model.is_moe()) {
    reader.fail("router", "an MoE model needs a router object, e.g. {\"kind\": \"uniform\"}");
  }
  if (auto capacity = reader.optional_object("capacity")) scenario.capacity = parse_capacity(*capacity);
  if (auto network = reader.optional_object("network")) {
    scenario.network = parse_network_params(*network);
  } else {
    const nlohmann::json empty = nlohmann::json::object();
    scenario.network = parse_network_params(JsonReader(empty, file.string(), "network"));
  }
  if (auto cost = reader.optional_object("cost")) {
    if (cost->has("profile")) {
      scenario.profile_file = resolve_user_path(cost->string("profile"), base);
      scenario.profile = load_profile(scenario.profile_file);
    }
    cost->finish();
  }
  const auto seed_value = reader.non_negative_integer("seed", 1);
  scenario.seed = seed.value_or(static_cast<std::uint64_t>(seed_value));
  if (auto stop = reader.optional_object("stop")) {
    if (stop->has("time_limit_s")) {
      scenario.time_limit_s = stop->positive_number("time_limit_s");
      if (*scenario.time_limit_s > kLongestRunSeconds) {
        stop->fail("time_limit_s",
                   fmt::format("expected at most {:g} s (about 30 years)", kLongestRunSeconds));
      }
    }
    stop->finish();
  }
  if (auto outputs = reader.optional_object("outputs")) {
    if (outputs->has("report")) scenario.outputs.report = resolve_user_path(outputs->string("report"), base);
    scenario.outputs.timeseries_window_s = outputs->positive_number("timeseries_window_s", 60);
    if (scenario.outputs.timeseries_window_s < 1e-3 ||
        scenario.outputs.timeseries_window_s > kLongestRunSeconds) {
      outputs->fail("timeseries_window_s",
                    fmt::format("expected a window between 0.001 s and {:g} s, got {}", kLongestRunSeconds,
                                scenario.outputs.timeseries_window_s));
    }
    scenario.outputs.expert_load = outputs->boolean("expert_load", true);
    outputs->finish();
  }
  reader.finish();

  // deployment.precision.{weights,experts}, when given, says how this deployment stores the
  // weights (e.g. FP8 serving of a BF16 checkpoint): it replaces the model's data types, so the
  // memory plan and the cost model agree. Otherwise the model's own types are used.
  const nlohmann::json* precision = nullptr;
  if (const auto& deployment = scenario.document["deployment"]; deployment.contains("precision")) {
    precision = &deployment["precision"];
  }
  bool retyped = false;
  if (precision != nullptr && precision->contains("weights")) {
    scenario.model.weight_dtype = data_type_of(scenario.deployment.step.weight_precision);
    retyped = true;
  }
  if (precision != nullptr && precision->contains("experts")) {
    scenario.model.expert_dtype = data_type_of(scenario.deployment.step.expert_precision);
    retyped = true;
  }
  if (retyped) derive_model_quantities(scenario.model, file.string() + ": deployment.precision");
  std::vector<std::pair<DeploymentSpec*, std::string>> groups;
  if (scenario.disaggregation) {
    groups = {{&scenario.disaggregation->prefill, "deployment.prefill"},
              {&scenario.disaggregation->decode, "deployment.decode"}};
  } else {
    groups = {{&scenario.deployment, "deployment"}};
  }
  if (scenario.model.is_moe())
    check_capacity_layers(scenario.capacity, scenario.model.derived.moe_layers, file.string());
  int gpus_needed = 0;
  for (const auto& [group, key] : groups) {
    group->step.weight_precision = precision_of(scenario.model.weight_dtype);
    group->step.expert_precision = precision_of(scenario.model.expert_dtype);
    group->step.lm_head_precision = precision_of(scenario.model.embedding_dtype);
    validate_layout(group->layout, scenario.model, file.string() + ": " + key + ".parallel");
    if (scenario.model.is_moe() && group->layout.redundant_experts > 0 &&
        group->placement.kind != PlacementKind::eplb && group->placement.kind != PlacementKind::file) {
      throw InputError(
          file.string(), key + ".parallel.redundant_experts",
          "redundant expert slots need \"placement\": {\"kind\": \"eplb\"} or a placement file; use "
          "0 or one of those");
    }
    if (scenario.model.is_moe()) {
      const ParallelLayout& layout = group->layout;
      check_placement_file(group->placement,
                           {scenario.model.experts, layout.expert_ep, layout.redundant_experts, 0},
                           scenario.model.derived.moe_layers);
    }
    // Fails early, naming the deployment, when the weights do not fit.
    plan_memory(scenario.model, scenario.gpu, group->layout, group->gpu_memory_utilization,
                group->activation_reserve_bytes, file.string() + ": " + key);
    gpus_needed += group->instances * group->layout.gpus();
  }
  if (scenario.disaggregation) scenario.deployment = scenario.disaggregation->decode;
  if (gpus_needed > scenario.cluster.gpu_count()) {
    const std::string key = scenario.disaggregation ? "deployment" : "deployment.instances";
    const std::string needs = scenario.disaggregation
                                  ? fmt::format("{} prefill x {} GPUs + {} decode x {} GPUs",
                                                scenario.disaggregation->prefill.instances,
                                                scenario.disaggregation->prefill.layout.gpus(),
                                                scenario.disaggregation->decode.instances,
                                                scenario.disaggregation->decode.layout.gpus())
                                  : fmt::format("{} instances x {} GPUs", scenario.deployment.instances,
                                                scenario.deployment.layout.gpus());
    throw InputError(file.string(), key,
                     fmt::format("{} need {} GPUs, but cluster \"{}\" has {}", needs, gpus_needed,
                                 scenario.cluster.name, scenario.cluster.gpu_count()));
  }
  return scenario;
}

nlohmann::json resolved_json(const Scenario& scenario) {
  nlohmann::json resolved;
  resolved["file"] = scenario.file.string();
  resolved["document"] = scenario.document;
  resolved["name"] = scenario.name;
  resolved["model"] = to_json(scenario.model);
  resolved["gpu"] = to_json(scenario.gpu);
  resolved["cluster"] = to_json(scenario.cluster);
  resolved["deployment"] =
      scenario.disaggregation ? to_json(*scenario.disaggregation) : to_json(scenario.deployment);
  resolved["workload"] = to_json(scenario.workload);
  if (scenario.model.is_moe()) {
    resolved["router"] = to_json(scenario.router);
    resolved["capacity"] = to_json(scenario.capacity);
  }
  resolved["network"] = to_json(scenario.network);
  resolved["calibration_profile"] = scenario.profile ? to_json(*scenario.profile) : nlohmann::json(nullptr);
  resolved["seed"] = scenario.seed;
  return resolved;
}

SimulationInputs simulation_inputs(const Scenario& scenario) {
  SimulationInputs inputs;
  inputs.model = &scenario.model;
  inputs.gpu = &scenario.gpu;
  inputs.cluster = &scenario.cluster;
  inputs.deployment = &scenario.deployment;
  inputs.disaggregation = scenario.disaggregation ? &*scenario.disaggregation : nullptr;
  inputs.workload = &scenario.workload;
  inputs.router = &scenario.router;
  inputs.capacity = &scenario.capacity;
  inputs.network = &scenario.network;
  inputs.profile = scenario.profile ? &*scenario.profile : nullptr;
  inputs.seed = scenario.seed;
  inputs.timeseries_window = seconds_to_ns(scenario.outputs.timeseries_window_s);
  if (scenario.time_limit_s) inputs.time_limit = seconds_to_ns(*scenario.time_limit_s);
  return inputs;
}

}  // namespace moesim
