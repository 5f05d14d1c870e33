#include "sim/serving/simulation.hpp"

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/rng.hpp"
#include "sim/engine/engine.hpp"
#include "sim/moe/layer_evaluator.hpp"
#include "sim/moe/placement.hpp"
#include "sim/moe/rebalance.hpp"
#include "sim/network/collectives.hpp"
#include "sim/network/expert_parallel_comm.hpp"
#include "sim/serving/scheduler.hpp"
#include "sim/serving/step_cost.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

namespace {

enum EventKind : std::uint32_t { kArrival = 0, kStepEnd = 1 };

// How often (in steps) the run loop reports progress.
constexpr std::uint64_t kProgressEverySteps = 4096;

std::vector<SeriesColumn> series_columns() {
  return {{"arrivals", Aggregation::sum},
          {"completed", Aggregation::sum},
          {"rejected", Aggregation::sum},
          {"prompt_tokens", Aggregation::sum},
          {"output_tokens", Aggregation::sum},
          {"running", Aggregation::mean},
          {"waiting", Aggregation::mean},
          {"kv_utilization", Aggregation::mean},
          {"step_time_s", Aggregation::mean},
          {"moe_assignments", Aggregation::sum},
          {"moe_dropped", Aggregation::sum},
          {"expert_max_over_mean", Aggregation::mean},
          {"rank_max_over_mean", Aggregation::mean},
          {"preemptions", Aggregation::sum},
          {"moe_rerouted", Aggregation::sum},
          {"rebalance_stall_s", Aggregation::sum}};
}

struct Instance {
  std::vector<BatchScheduler> ranks;
  std::vector<BatchShape> shapes;
  std::unique_ptr<Router> router;
  std::unique_ptr<ExpertPlacement> placement;
  std::unique_ptr<ExpertRebalancer> rebalancer;
  std::vector<int> ep_gpus;  // GPU of each EP rank (its first expert-TP GPU)
  std::unique_ptr<ExpertParallelComm> expert_comm;
  std::unique_ptr<TensorParallelAllReduce> tp_allreduce;
  std::unique_ptr<StepCostModel> step_cost;
  bool busy = false;
};

class Simulation final : public EventHandler, public RequestObserver {
 public:
  explicit Simulation(const SimulationInputs& inputs)
      : inputs_(inputs),
        model_(*inputs.model),
        deployment_(*inputs.deployment),
        cost_(*inputs.gpu,
              inputs.profile == nullptr ? std::nullopt : std::optional<CalibrationProfile>(*inputs.profile)),
        result_() {
    result_.timeseries = TimeSeries(inputs.timeseries_window, series_columns());
    const ParallelLayout& layout = deployment_.layout;
    validate_layout(layout, model_, "deployment.parallel");
    result_.memory = plan_memory(model_, *inputs.gpu, layout, deployment_.gpu_memory_utilization,
                                 deployment_.activation_reserve_bytes, "deployment");
    result_.gpus_per_instance = layout.gpus();
    result_.cost_model = cost_.describe();
    graph_ = std::make_unique<ClusterGraph>(*inputs.cluster);
    const int needed = deployment_.instances * layout.gpus();
    if (needed > graph_->gpu_count()) {
      throw InputError(
          "deployment", "instances",
          fmt::format("{} instances x {} GPUs need {} GPUs, but cluster \"{}\" has {}", deployment_.instances,
                      layout.gpus(), needed, inputs.cluster->name, graph_->gpu_count()));
    }
    source_ = make_request_source(*inputs.workload, inputs.seed);
    if (model_.is_moe()) {
      result_.moe.emplace(model_.derived.moe_layers, model_.experts, layout.expert_ep);
    }
    build_instances();
  }

  SimulationResult run() {
    engine_.add_handler(*this);
    schedule_next_arrival();
    const auto summary = engine_.run(StopConditions{.until = inputs_.time_limit});
    result_.events = engine_.events_handled();
    result_.end_time = summary.end_time;
    result_.timeseries.extend_to(summary.end_time);
    return std::move(result_);
  }

  void handle(const Event& event, Engine&) override {
    if (event.kind == kArrival) {
      on_arrival();
    } else {
      on_step_end(static_cast<std::size_t>(event.payload));
    }
  }

  void on_first_token(const FinishedRequest& request) override {
    result_.ttft_s.record(ns_to_seconds(request.first_token - request.arrival));
  }

  void on_finished(const FinishedRequest& request) override {
    const SimTime now = engine_.now();
    ++result_.completed;
    result_.completed_input_tokens += static_cast<std::uint64_t>(request.input_tokens);
    result_.completed_output_tokens += static_cast<std::uint64_t>(request.output_tokens);
    result_.cached_prompt_tokens += static_cast<std::uint64_t>(request.cached_prompt_tokens);
    result_.last_completion = std::max(result_.last_completion, now);
    result_.e2e_s.record(ns_to_seconds(now - request.arrival));
    result_.queue_s.record(ns_to_seconds(request.first_scheduled - request.arrival));
    if (request.output_tokens > 1) {
      result_.tpot_s.record(ns_to_seconds(now - request.first_token) / (request.output_tokens - 1));
    }
    result_.timeseries.record(now, kSeriesCompleted, 1);
    source_->on_completion(now);
    completions_pending_ = true;
  }

  void on_rejected(const Request&, SimTime now) override {
    ++result_.rejected;
    result_.timeseries.record(now, kSeriesRejected, 1);
    source_->on_completion(now);
    completions_pending_ = true;
  }

  void on_preempted(SimTime now) override {
    ++result_.preemptions;
    result_.timeseries.record(now, kSeriesPreemptions, 1);
  }

 private:
  void build_instances() {
    const ParallelLayout& layout = deployment_.layout;
    const auto prefix_tokens = source_->prefix_block_tokens();
    const std::int32_t window = model_.sliding_window;
    instances_.resize(static_cast<std::size_t>(deployment_.instances));
    for (std::size_t i = 0; i < instances_.size(); ++i) {
      Instance& instance = instances_[i];
      std::vector<int> gpus(static_cast<std::size_t>(layout.gpus()));
      for (std::size_t g = 0; g < gpus.size(); ++g)
        gpus[g] = static_cast<int>(i * gpus.size() + g);
      if (layout.attention_tp > 1) {
        std::vector<int> tp_group(gpus.begin(), gpus.begin() + layout.attention_tp);
        instance.tp_allreduce =
            std::make_unique<TensorParallelAllReduce>(*graph_, tp_group, *inputs_.network);
      }
      if (model_.is_moe()) {
        std::uint64_t seed_mix = inputs_.seed + i;
        instance.router = make_router(*inputs_.router, model_.derived.moe_layers, model_.experts,
                                      model_.top_k, splitmix64(seed_mix));
        instance.placement = std::make_unique<ExpertPlacement>(
            make_placement(deployment_.placement,
                           {model_.experts, layout.expert_ep, layout.redundant_experts,
                            graph_->gpus_per_node() / layout.expert_tp},
                           *instance.router));
        for (int r = 0; r < layout.expert_ep; ++r)
          instance.ep_gpus.push_back(gpus[static_cast<std::size_t>(r * layout.expert_tp)]);
        if (layout.expert_ep > 1) {
          instance.expert_comm =
              std::make_unique<ExpertParallelComm>(*graph_, instance.ep_gpus, *inputs_.network);
        }
        if (deployment_.placement.kind == PlacementKind::eplb && deployment_.placement.rebalance) {
          instance.rebalancer = std::make_unique<ExpertRebalancer>(
              *deployment_.placement.rebalance,
              PlacementShape{model_.experts, layout.expert_ep, layout.redundant_experts,
                             graph_->gpus_per_node() / layout.expert_tp},
              deployment_.placement.hierarchical, model_.derived.moe_layers,
              model_.derived.expert_weight_bytes / layout.expert_tp);
        }
      }
      const int routing_components = instance.router ? instance.router->components() : 1;
      for (int d = 0; d < layout.attention_dp; ++d) {
        instance.ranks.emplace_back(deployment_.scheduler, result_.memory.kv_token_capacity, prefix_tokens,
                                    window, routing_components);
      }
      instance.shapes.resize(instance.ranks.size());
      StepCostOptions options = deployment_.step;
      options.max_step_tokens = deployment_.scheduler.max_batched_tokens * layout.attention_dp;
      instance.step_cost = std::make_unique<StepCostModel>(
          model_, layout, cost_, instance.router.get(), instance.placement.get(), *inputs_.capacity,
          instance.expert_comm.get(), instance.tp_allreduce.get(), options,
          result_.moe ? &*result_.moe : nullptr);
      instance.step_cost->observe_loads(instance.rebalancer.get());
    }
  }

  void schedule_next_arrival() {
    if (arrival_pending_) return;
    std::optional<Request> request = source_->next();
    if (!request) return;
    const SimTime at = std::max(request->arrival, engine_.now());
    if (at > inputs_.time_limit) return;
    request->arrival = at;
    pending_request_ = std::move(*request);
    arrival_pending_ = true;
    engine_.schedule(at, 0, kArrival);
  }

  // The DP rank (over all instances) that receives the next request.
  std::pair<std::size_t, std::size_t> choose_rank() {
    const std::size_t ranks_per_instance = instances_.front().ranks.size();
    const std::size_t total = instances_.size() * ranks_per_instance;
    if (deployment_.load_balancer == LoadBalancerPolicy::round_robin) {
      const std::size_t flat = round_robin_next_++ % total;
      return {flat / ranks_per_instance, flat % ranks_per_instance};
    }
    std::size_t best = 0;
    std::size_t best_load = SIZE_MAX;
    for (std::size_t flat = 0; flat < total; ++flat) {
      const std::size_t load =
          instances_[flat / ranks_per_instance].ranks[flat % ranks_per_instance].outstanding();
      if (load < best_load) {
        best_load = load;
        best = flat;
      }
    }
    return {best / ranks_per_instance, best % ranks_per_instance};
  }

  void on_arrival() {
    arrival_pending_ = false;
    Request request = std::move(pending_request_);
    const SimTime now = engine_.now();
    if (result_.arrived == 0) result_.first_arrival = now;
    ++result_.arrived;
    result_.timeseries.record(now, kSeriesArrivals, 1);
    const auto [instance_index, rank] = choose_rank();
    Instance& instance = instances_[instance_index];
    if (instance.router) {
      request.routing_component = instance.router->component_for(request.id, request.traffic_class, now);
    }
    instance.ranks[rank].enqueue(std::move(request), now, *this);
    start_step_if_idle(instance_index);
    schedule_next_arrival();
  }

  void start_step_if_idle(std::size_t instance_index) {
    if (!instances_[instance_index].busy) start_step(instance_index);
  }

  void start_step(std::size_t instance_index) {
    Instance& instance = instances_[instance_index];
    const SimTime now = engine_.now();
    bool any_work = false;
    std::int64_t running = 0, waiting = 0;
    double kv_utilization = 0;
    for (std::size_t d = 0; d < instance.ranks.size(); ++d) {
      instance.shapes[d] = instance.ranks[d].plan_step(now, *this);
      any_work = any_work || !instance.shapes[d].empty();
      running += static_cast<std::int64_t>(instance.ranks[d].running());
      waiting += static_cast<std::int64_t>(instance.ranks[d].waiting());
      kv_utilization += instance.ranks[d].kv_utilization();
    }
    if (!any_work) {
      instance.busy = false;
      return;
    }
    const std::int64_t assignments_before = result_.moe ? result_.moe->assignments() : 0;
    const std::int64_t dropped_before = result_.moe ? result_.moe->dropped() : 0;
    const std::int64_t rerouted_before = result_.moe ? result_.moe->rerouted() : 0;
    const double expert_sum_before = result_.moe ? moe_imbalance_sum(result_.moe->expert_imbalance()) : 0;
    const double rank_sum_before = result_.moe ? moe_imbalance_sum(result_.moe->rank_imbalance()) : 0;
    const std::uint64_t layers_before = result_.moe ? result_.moe->expert_imbalance().count() : 0;

    const double stall_s = instance.rebalancer ? rebalance(instance, now) : 0.0;
    const bool traced = inputs_.timeline != nullptr && inputs_.timeline->begin_step(instance_index, now);
    instance.step_cost->set_timeline(traced ? inputs_.timeline : nullptr);
    const StepTiming timing = instance.step_cost->price(instance.shapes, now);
    const SimTime duration = std::max<SimTime>(1, seconds_to_ns_ceil(timing.total_s + stall_s));
    if (traced) inputs_.timeline->end_step(duration, stall_s);
    accumulate(timing);
    ++result_.steps;
    result_.step_s.record(ns_to_seconds(duration));

    auto& series = result_.timeseries;
    std::int64_t prompt_tokens = 0, output_tokens = 0;
    for (const auto& shape : instance.shapes) {
      prompt_tokens += shape.prefill_tokens;
      output_tokens += shape.logits;
    }
    series.record(now, kSeriesPromptTokens, static_cast<double>(prompt_tokens));
    series.record(now, kSeriesOutputTokens, static_cast<double>(output_tokens));
    series.record(now, kSeriesRunning, static_cast<double>(running));
    series.record(now, kSeriesWaiting, static_cast<double>(waiting));
    series.record(now, kSeriesKvUtilization, kv_utilization / static_cast<double>(instance.ranks.size()));
    series.record(now, kSeriesStepTime, ns_to_seconds(duration));
    if (result_.moe) {
      const auto layers = static_cast<double>(result_.moe->expert_imbalance().count() - layers_before);
      series.record(now, kSeriesMoeAssignments,
                    static_cast<double>(result_.moe->assignments() - assignments_before));
      series.record(now, kSeriesMoeDropped, static_cast<double>(result_.moe->dropped() - dropped_before));
      series.record(now, kSeriesMoeRerouted, static_cast<double>(result_.moe->rerouted() - rerouted_before));
      if (layers > 0) {
        series.record(now, kSeriesExpertImbalance,
                      (moe_imbalance_sum(result_.moe->expert_imbalance()) - expert_sum_before) / layers);
        series.record(now, kSeriesRankImbalance,
                      (moe_imbalance_sum(result_.moe->rank_imbalance()) - rank_sum_before) / layers);
      }
    }
    instance.busy = true;
    engine_.schedule(now + duration, 0, kStepEnd, instance_index);
    report_progress();
  }

  // Rebalances the instance's expert placement when due; returns the stall it costs. The moved
  // weights are priced as one all-to-all of their bytes between the EP ranks' GPUs.
  // Assumption (moesim's choice, the pessimistic case): the instance stops serving while the weights
  // move, as a rebalance that swaps weights in place between forward passes does; engines that stage
  // the new weights in spare memory could hide most of it.
  double rebalance(Instance& instance, SimTime now) {
    ExpertRebalancer& rebalancer = *instance.rebalancer;
    double stall_s = 0;
    if (rebalancer.due(now)) {
      if (auto move = rebalancer.rebalance(now, *instance.placement)) {
        auto placement = std::make_unique<ExpertPlacement>(std::move(move->placement));
        instance.step_cost->set_placement(*placement);
        instance.placement = std::move(placement);
        stall_s = all_to_all_time(*graph_, instance.ep_gpus, move->bytes, *inputs_.network);
        double bytes = 0;
        for (const double value : move->bytes)
          bytes += value;
        result_.moe->record(RebalanceSample{move->slots_moved, bytes, stall_s});
        result_.timeseries.record(now, kSeriesRebalanceStall, stall_s);
      }
    }
    rebalancer.begin_step(now);
    return stall_s;
  }

  static double moe_imbalance_sum(const Histogram& histogram) {
    return histogram.mean() * static_cast<double>(histogram.count());
  }

  void accumulate(const StepTiming& timing) {
    StepTiming& busy = result_.busy;
    busy.total_s += timing.total_s;
    busy.attention_s += timing.attention_s;
    busy.expert_s += timing.expert_s;
    busy.dispatch_s += timing.dispatch_s;
    busy.combine_s += timing.combine_s;
    busy.tp_allreduce_s += timing.tp_allreduce_s;
    busy.overhead_s += timing.overhead_s;
    busy.network_bytes += timing.network_bytes;
    busy.overlap_hidden_s += timing.overlap_hidden_s;
  }

  void on_step_end(std::size_t instance_index) {
    Instance& instance = instances_[instance_index];
    const SimTime now = engine_.now();
    for (auto& rank : instance.ranks)
      rank.complete_step(now, *this);
    if (completions_pending_) {
      // Closed-loop sources release new requests on completions.
      completions_pending_ = false;
      schedule_next_arrival();
    }
    start_step(instance_index);
  }

  void report_progress() {
    if (!inputs_.progress || result_.steps % kProgressEverySteps != 0) return;
    inputs_.progress(SimulationProgress{engine_.now(), result_.arrived, result_.completed, result_.steps});
  }

  const SimulationInputs& inputs_;
  const ModelSpec& model_;
  const DeploymentSpec& deployment_;
  CostModel cost_;
  SimulationResult result_;
  std::unique_ptr<ClusterGraph> graph_;
  std::unique_ptr<RequestSource> source_;
  std::vector<Instance> instances_;
  Engine engine_;
  Request pending_request_;
  bool arrival_pending_ = false;
  bool completions_pending_ = false;
  std::size_t round_robin_next_ = 0;
};

}  // namespace

SimulationResult simulate(const SimulationInputs& inputs) {
  Simulation simulation(inputs);
  return simulation.run();
}

}  // namespace moesim
