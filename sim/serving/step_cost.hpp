#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "sim/common/time.hpp"
#include "sim/cost/cost_model.hpp"
#include "sim/hardware/memory.hpp"
#include "sim/metrics/moe_load.hpp"
#include "sim/model/model_spec.hpp"
#include "sim/moe/capacity.hpp"
#include "sim/moe/layer_evaluator.hpp"
#include "sim/moe/placement.hpp"
#include "sim/moe/rebalance.hpp"
#include "sim/network/expert_parallel_comm.hpp"
#include "sim/network/network_params.hpp"
#include "sim/router/router.hpp"
#include "sim/serving/scheduler.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

// Where one step's time went, summed over layers (seconds of the step's critical path).
struct StepTiming {
  double total_s = 0;
  double attention_s = 0;     // projections, attention core, dense FFN, shared experts, lm head
  double expert_s = 0;        // routed experts on the straggler rank
  double dispatch_s = 0;      // all-to-all towards the experts
  double combine_s = 0;       // all-to-all back
  double tp_allreduce_s = 0;  // tensor-parallel reductions
  double overhead_s = 0;      // kernel launches, permute/unpermute traffic
  double network_bytes = 0;   // all-to-all bytes put on the wire (dispatch + combine)
  // With overlapped micro-batches: the sum of the parts above minus total_s (communication
  // hidden behind computation, less the second micro-batch's kernel launches).
  double overlap_hidden_s = 0;
};

// One layer of a priced step, for timelines (the Chrome trace). Parts are seconds of the
// layer's critical path; `layer_s` is the layer's length in the step: the sum of the parts,
// or with overlapped micro-batches max(computation, communication) plus the second set of
// launches. The lm head comes last as its own entry; the entries' layer_s sum to the step's
// total_s.
struct LayerTimeline {
  enum class Kind { dense, moe, lm_head };
  Kind kind = Kind::dense;
  int layer = 0;           // model layer (the lm head: the layer count)
  double attention_s = 0;  // slowest DP rank: attention and the dense FFN or the MoE layer's dense part
  double tp_allreduce_s = 0;
  double dispatch_s = 0;
  double expert_s = 0;  // the straggler rank's routed experts
  double combine_s = 0;
  double overhead_s = 0;  // kernel launches, permute
  double layer_s = 0;
  bool overlapped = false;                // dispatch and combine overlap the computation
  std::span<const double> rank_expert_s;  // per EP rank; empty for dense layers and the lm head
};

// Receives the layers of the steps it chooses to record (observer of StepCostModel).
class StepTimelineSink {
 public:
  virtual ~StepTimelineSink() = default;
  // Whether to record the step of `instance` that starts at `start`.
  virtual bool begin_step(std::size_t instance, SimTime start) = 0;
  virtual void layer(const LayerTimeline& layer) = 0;
  // The step's length as simulated: `stall_s` (waiting for expert weights moved by a
  // rebalance, before the layers) plus its total_s, rounded up to a nanosecond.
  virtual void end_step(SimTime duration, double stall_s) = 0;
};

// Ring all-reduce of one tensor-parallel group on the cluster graph.
class TensorParallelAllReduce {
 public:
  TensorParallelAllReduce(const ClusterGraph& graph, std::vector<int> gpus, const NetworkParams& params)
      : graph_(graph), gpus_(std::move(gpus)), params_(params) {}
  double seconds(double bytes) const;

 private:
  const ClusterGraph& graph_;
  std::vector<int> gpus_;
  NetworkParams params_;
};

// Data-type choices of the deployment that the cost of a step depends on.
struct StepCostOptions {
  Precision weight_precision = Precision::bf16;
  Precision expert_precision = Precision::bf16;
  Precision lm_head_precision = Precision::bf16;
  Precision dispatch_precision = Precision::bf16;  // activations sent to the experts
  Precision combine_precision = Precision::bf16;   // expert outputs returned
  // Assumption: activations (permute traffic, TP all-reduce) are BF16, as in the serving engines moesim
  // models.
  double activation_bytes_per_element = 2;
  // Assumption (moesim's own guess): about 12 kernels per layer (norms, projections, attention,
  // router, permute, expert GEMMs, activation, combine) whose launches are not hidden.
  int kernels_per_layer = 12;
  // Assumption: the routed experts run as grouped kernels, one per projection over a GPU's experts,
  // as in every production engine (cost_model.hpp, ExpertKernel).
  ExpertKernel expert_kernel = ExpertKernel::grouped;
  std::int32_t max_step_tokens = 8192;
  // Two micro-batches per step, one's all-to-all overlapping the other's computation (DeepSeek's
  // dual micro-batch overlap). Assumption (moesim's own): the halves cost half of the whole batch
  // each, so a layer takes max(computation, communication) plus a second set of kernel launches,
  // and the pipeline fills and drains once per step (the shorter side of the last layer).
  bool overlap_micro_batches = false;  // tokens of the largest step (sizes the expert cost table)
};

// Prices one forward step of an instance: all attention DP ranks run their own
// batches, then every MoE layer waits for its slowest expert-parallel rank.
// Attention costs are the same for every layer of a kind (the batch is the same),
// so they are computed once per step; routing is sampled per MoE layer.
class StepCostModel {
 public:
  StepCostModel(const ModelSpec& model, const ParallelLayout& layout, const CostModel& cost, Router* router,
                const ExpertPlacement* placement, const CapacitySpec& capacity,
                const ExpertParallelComm* expert_comm, const TensorParallelAllReduce* tp_allreduce,
                const StepCostOptions& options, MoeLoadMetrics* moe_metrics);

  // `shapes` has one entry per attention DP rank; `now` is the simulated time the step starts
  // (routing drift).
  StepTiming price(std::span<const BatchShape> shapes, SimTime now);

  // The sink that receives the layers of the following price() calls; null (the
  // default) records nothing and costs one branch per layer.
  void set_timeline(StepTimelineSink* timeline) { timeline_ = timeline; }
  // Evaluates the following steps with `placement` (same slot count; it must outlive its use).
  void set_placement(const ExpertPlacement& placement);
  // Hands every MoE layer's routed counts to `rebalancer` (null: nobody).
  void observe_loads(ExpertRebalancer* rebalancer) { rebalancer_ = rebalancer; }

 private:
  // The parts of a DP rank's step time that depend on its token and logit counts alone (-1: none yet).
  struct TokenCosts {
    std::int64_t tokens = -1;
    std::int64_t logits = -1;
    double projections = 0;  // attention's projections, per layer
    double dense_ffn = 0;    // per dense layer
    double moe_dense = 0;    // the MoE layer's router and shared experts, per MoE layer
    double lm_head = 0;
  };
  TokenCosts token_costs(const BatchShape& shape) const;
  // `projections_seconds`: token_costs(shape).projections.
  double attention_rank_seconds(const BatchShape& shape, bool sliding_window_layer,
                                double projections_seconds) const;
  double dense_ffn_rank_seconds(const BatchShape& shape) const;
  double moe_dense_part_rank_seconds(const BatchShape& shape) const;
  double lm_head_rank_seconds(const BatchShape& shape) const;
  double allreduce_seconds(std::int64_t tokens) const;
  static double compute_seconds(const StepTiming& timing);

  const ModelSpec& model_;
  ParallelLayout layout_;
  const CostModel& cost_;
  Router* router_;
  const ExpertParallelComm* expert_comm_;
  const TensorParallelAllReduce* tp_allreduce_;
  StepCostOptions options_;
  MoeLoadMetrics* moe_metrics_;
  StepTimelineSink* timeline_ = nullptr;
  CapacitySpec capacity_;
  ExpertRebalancer* rebalancer_ = nullptr;
  std::unique_ptr<MoeLayerEvaluator> evaluator_;
  // A rank's routed-expert GEMM time from its slots' token counts, tabulated up to the largest step.
  std::optional<ExpertCostTable> expert_cost_;
  int slots_per_rank_ = 0;
  // Per MoE layer (one entry: all layers), the most nodes a token reaches under group-limited routing
  // (ModelSpec::expert_groups); empty when the model does not limit it.
  std::vector<int> node_limits_;
  double silu_seconds_per_assignment_ = 0;

  double expert_hidden_ = 0;
  double expert_ffn_per_gpu_ = 0;
  double kv_bytes_per_token_per_layer_per_gpu_ = 0;

  // Scratch buffers reused every step.
  std::vector<std::int32_t> expert_counts_;
  std::vector<std::int64_t> component_tokens_;  // the step's tokens per routing component
  std::vector<double> tokens_from_rank_;
  std::vector<double> assignments_to_rank_;
  std::vector<double> rank_busy_s_;
  std::vector<std::int32_t> rank_kept_;
};

}  // namespace moesim
