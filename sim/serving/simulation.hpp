#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "sim/common/time.hpp"
#include "sim/cost/cost_model.hpp"
#include "sim/hardware/gpu_spec.hpp"
#include "sim/hardware/memory.hpp"
#include "sim/metrics/histogram.hpp"
#include "sim/metrics/moe_load.hpp"
#include "sim/metrics/time_series.hpp"
#include "sim/model/model_spec.hpp"
#include "sim/moe/capacity.hpp"
#include "sim/network/network_params.hpp"
#include "sim/router/router.hpp"
#include "sim/serving/deployment.hpp"
#include "sim/topology/cluster_graph.hpp"
#include "sim/topology/cluster_spec.hpp"
#include "sim/workload/workload.hpp"

namespace moesim {

class StepTimelineSink;

struct SimulationProgress {
  SimTime now = 0;
  std::uint64_t arrived = 0;
  std::uint64_t completed = 0;
  std::uint64_t steps = 0;
};

// Everything a run needs, already parsed and resolved. The pointers must stay
// valid for the duration of simulate().
struct SimulationInputs {
  const ModelSpec* model = nullptr;
  const GpuSpec* gpu = nullptr;
  const ClusterSpec* cluster = nullptr;
  const DeploymentSpec* deployment = nullptr;          // ignored when disaggregation is set
  const DisaggregationSpec* disaggregation = nullptr;  // null: unified instances
  const WorkloadSpec* workload = nullptr;
  const RouterSpec* router = nullptr;
  const CapacitySpec* capacity = nullptr;
  const NetworkParams* network = nullptr;
  const CalibrationProfile* profile = nullptr;  // null: the cost model's documented defaults
  std::uint64_t seed = 1;
  SimTime timeseries_window = 60 * kNanosecondsPerSecond;
  SimTime time_limit = kTimeInfinity;  // arrivals after it are not injected; the run stops there
  // Receives the layers of the steps it chooses to record (the Chrome trace); may be null.
  StepTimelineSink* timeline = nullptr;
  // Called from the run loop every few thousand steps; may be empty.
  std::function<void(const SimulationProgress&)> progress;
};

// Columns of SimulationResult::timeseries, in order.
enum SeriesColumnId : int {
  kSeriesArrivals,
  kSeriesCompleted,
  kSeriesRejected,
  kSeriesPromptTokens,
  kSeriesOutputTokens,
  kSeriesRunning,
  kSeriesWaiting,
  kSeriesKvUtilization,
  kSeriesStepTime,
  kSeriesMoeAssignments,
  kSeriesMoeDropped,
  kSeriesExpertImbalance,
  kSeriesRankImbalance,
  kSeriesPreemptions,
  kSeriesMoeRerouted,
  kSeriesRebalanceStall,
  kSeriesColumnCount
};

// One kind of instance of a disaggregated run (summed over its instances).
struct InstanceKindResult {
  int instances = 0;
  int gpus = 0;
  std::uint64_t steps = 0;
  Histogram step_s;
  StepTiming busy;
  std::uint64_t preemptions = 0;
  MemoryPlan memory;
};

// KV caches moved from prefill to decode instances.
struct KvTransferResult {
  std::uint64_t started = 0;
  std::uint64_t completed = 0;
  double bytes = 0;
  Histogram wait_s;      // prefill's first token -> transfer start (no decode rank had room: back-pressure)
  Histogram transfer_s;  // transfer start -> KV cache present at the decode rank (links shared)
};

struct DisaggregationResult {
  InstanceKindResult prefill;
  InstanceKindResult decode;
  std::optional<MoeLoadMetrics> prefill_moe;  // the decode instances' are SimulationResult::moe
  KvTransferResult kv_transfer;
  std::uint64_t finished_at_prefill = 0;  // one output token: done at the prefill instance, no transfer
  std::uint64_t decoded = 0;              // finished at a decode instance (each after one transfer)
};

struct SimulationResult {
  std::uint64_t arrived = 0;
  std::uint64_t completed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t preemptions = 0;
  std::uint64_t completed_input_tokens = 0;
  std::uint64_t completed_output_tokens = 0;
  std::uint64_t cached_prompt_tokens = 0;
  SimTime first_arrival = 0;
  SimTime last_completion = 0;

  Histogram ttft_s;
  Histogram tpot_s;
  Histogram e2e_s;
  Histogram queue_s;

  std::uint64_t steps = 0;
  Histogram step_s;
  StepTiming busy;                    // summed over all steps of all instances
  std::optional<MoeLoadMetrics> moe;  // with disaggregation: the decode instances'

  MemoryPlan memory;  // with disaggregation: a decode GPU's
  int gpus_per_instance = 0;
  int gpus = 0;  // all instances
  std::optional<DisaggregationResult> disaggregation;
  TimeSeries timeseries{60 * kNanosecondsPerSecond, {}};
  nlohmann::json cost_model;

  std::uint64_t events = 0;
  SimTime end_time = 0;
};

// Replays the workload through the deployment. Throws InputError for inputs that
// cannot be simulated (a layout that does not fit the cluster, a bad trace row...).
SimulationResult simulate(const SimulationInputs& inputs);

}  // namespace moesim
