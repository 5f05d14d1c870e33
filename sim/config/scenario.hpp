#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/cost/cost_model.hpp"
#include "sim/hardware/gpu_spec.hpp"
#include "sim/model/model_spec.hpp"
#include "sim/moe/capacity.hpp"
#include "sim/network/network_params.hpp"
#include "sim/router/router.hpp"
#include "sim/serving/deployment.hpp"
#include "sim/serving/simulation.hpp"
#include "sim/topology/cluster_spec.hpp"
#include "sim/workload/workload.hpp"

namespace moesim {

struct OutputSpec {
  std::filesystem::path report;  // empty: the CLI decides
  double timeseries_window_s = 60;
  bool expert_load = true;  // per layer x expert load in the report
};

// A fully resolved scenario: every referenced file loaded, every default filled in.
struct Scenario {
  std::filesystem::path file;
  nlohmann::json document;  // the scenario file after --set overrides
  std::string name;
  std::string description;
  ModelSpec model;
  GpuSpec gpu;
  ClusterSpec cluster;
  // The unified deployment; with prefill/decode disaggregation, the decode group (the layout that
  // single-layout tools such as routing inspect look at).
  DeploymentSpec deployment;
  std::optional<DisaggregationSpec> disaggregation;  // set when the deployment is disaggregated
  WorkloadSpec workload;
  RouterSpec router;
  CapacitySpec capacity;
  NetworkParams network;
  std::optional<CalibrationProfile> profile;
  std::uint64_t seed = 1;
  std::optional<double> time_limit_s;
  OutputSpec outputs;
  std::filesystem::path model_file, gpu_file, cluster_file, profile_file;
};

// Applies one "--set path.to.key=value" override to a scenario document. The
// value is read as JSON when it parses (numbers, true, {"a": 1}) and as a string
// otherwise. Intermediate objects are created as needed; a path through a
// non-object is an InputError naming the option.
void apply_override(nlohmann::json& document, std::string_view assignment);

// Loads a scenario file, applies the overrides in order, resolves references
// (model, cluster, GPU, calibration profile, trace paths) and checks everything,
// including the deployment against the model and the GPU memory. Errors name the
// file and the key. `seed` replaces the scenario's seed when given.
Scenario load_scenario(const std::filesystem::path& file, const std::vector<std::string>& overrides = {},
                       std::optional<std::uint64_t> seed = std::nullopt);

// The resolved scenario as JSON (the document plus the loaded model, GPU and cluster
// specs), so a report carries everything needed to reproduce its run.
nlohmann::json resolved_json(const Scenario& scenario);

// Inputs for simulate() that point into `scenario`.
SimulationInputs simulation_inputs(const Scenario& scenario);

}  // namespace moesim
