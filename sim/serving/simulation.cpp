#include "sim/serving/simulation.hpp"

#include <algorithm>
#include <deque>
#include <memory>
#include <unordered_map>
#include <unordered_set>
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
#include "sim/network/shared_transfers.hpp"
#include "sim/serving/scheduler.hpp"
#include "sim/serving/step_cost.hpp"
#include "sim/topology/cluster_graph.hpp"

namespace moesim {

namespace {

enum EventKind : std::uint32_t { kArrival = 0, kStepEnd = 1, kTransferProgress = 2 };

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
  InstanceRole role = InstanceRole::unified;
  const DeploymentSpec* spec = nullptr;
  int first_gpu = 0;
  InstanceKindResult* kind = nullptr;  // disaggregated runs: the per-kind figures
  MoeLoadMetrics* moe = nullptr;
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

// Instances [first, first + count) that share a deployment spec and a load balancer.
struct InstanceGroup {
  std::size_t first = 0;
  std::size_t count = 0;
  std::size_t ranks_per_instance = 0;
  LoadBalancerPolicy policy = LoadBalancerPolicy::least_outstanding;
  std::size_t round_robin_next = 0;
  std::size_t total_ranks() const { return count * ranks_per_instance; }
};

// A DP rank of an instance.
struct RankRef {
  std::size_t instance = 0;
  std::size_t rank = 0;
};

// A request between its prefill and its decode.
struct HandOff {
  FinishedRequest request;  // the prefill's milestones
  RankRef prefill;
  RankRef decode;
  SimTime started = 0;
  double bytes = 0;
};

class Simulation final : public EventHandler, public RequestObserver {
 public:
  explicit Simulation(const SimulationInputs& inputs)
      : inputs_(inputs),
        model_(*inputs.model),
        cost_(*inputs.gpu,
              inputs.profile == nullptr ? std::nullopt : std::optional<CalibrationProfile>(*inputs.profile)),
        result_() {
    result_.timeseries = TimeSeries(inputs.timeseries_window, series_columns());
    result_.cost_model = cost_.describe();
    graph_ = std::make_unique<ClusterGraph>(*inputs.cluster);
    source_ = make_request_source(*inputs.workload, inputs.seed);
    if (inputs.disaggregation == nullptr) {
      const DeploymentSpec& deployment = *inputs.deployment;
      result_.memory = plan_group(deployment, "deployment");
      result_.gpus_per_instance = deployment.layout.gpus();
      check_gpus(deployment.instances * deployment.layout.gpus(),
                 fmt::format("{} instances x {} GPUs", deployment.instances, deployment.layout.gpus()),
                 "instances");
      if (model_.is_moe())
        result_.moe.emplace(model_.derived.moe_layers, model_.experts, deployment.layout.expert_ep);
      unified_ = build_group(deployment, InstanceRole::unified, 0, result_.memory, nullptr,
                             result_.moe ? &*result_.moe : nullptr);
      result_.gpus = deployment.instances * deployment.layout.gpus();
      return;
    }
    const DisaggregationSpec& split = *inputs.disaggregation;
    DisaggregationResult& kinds = result_.disaggregation.emplace();
    kinds.prefill.memory = plan_group(split.prefill, "deployment.prefill");
    kinds.decode.memory = plan_group(split.decode, "deployment.decode");
    result_.memory = kinds.decode.memory;
    result_.gpus_per_instance = split.decode.layout.gpus();
    const int prefill_gpus = split.prefill.instances * split.prefill.layout.gpus();
    const int decode_gpus = split.decode.instances * split.decode.layout.gpus();
    check_gpus(prefill_gpus + decode_gpus,
               fmt::format("{} prefill x {} GPUs + {} decode x {} GPUs", split.prefill.instances,
                           split.prefill.layout.gpus(), split.decode.instances, split.decode.layout.gpus()),
               "");
    if (model_.is_moe()) {
      kinds.prefill_moe.emplace(model_.derived.moe_layers, model_.experts, split.prefill.layout.expert_ep);
      result_.moe.emplace(model_.derived.moe_layers, model_.experts, split.decode.layout.expert_ep);
    }
    kinds.prefill.instances = split.prefill.instances;
    kinds.prefill.gpus = prefill_gpus;
    kinds.decode.instances = split.decode.instances;
    kinds.decode.gpus = decode_gpus;
    prefill_ = build_group(split.prefill, InstanceRole::prefill, 0, kinds.prefill.memory, &kinds.prefill,
                           kinds.prefill_moe ? &*kinds.prefill_moe : nullptr);
    decode_ = build_group(split.decode, InstanceRole::decode, prefill_gpus, kinds.decode.memory,
                          &kinds.decode, result_.moe ? &*result_.moe : nullptr);
    result_.gpus = prefill_gpus + decode_gpus;
    transfers_ = std::make_unique<SharedLinkTransfers>(*graph_, *inputs.network);
    // Assumption (moesim's own, as in Mooncake and DistServe): decode GPU j of the chosen DP rank pulls
    // its share of the prompt's KV cache (its memory plan's bytes per token, all layers) from GPU
    // j mod attention_tp of the prefill rank, after the whole prefill (no layer-by-layer overlap).
    kv_bytes_per_token_per_decode_gpu_ = kinds.decode.memory.kv_bytes_per_token;
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
    } else if (event.kind == kStepEnd) {
      on_step_end(static_cast<std::size_t>(event.payload));
    } else if (event.payload == transfer_generation_) {
      on_transfer_progress();
    }
  }

  void on_first_token(const FinishedRequest& request) override {
    result_.ttft_s.record(ns_to_seconds(request.first_token - request.arrival));
  }

  void on_prefilled(const FinishedRequest& request) override {
    awaiting_room_.push_back(HandOff{request, current_, {}, 0, 0});
  }

  void on_finished(const FinishedRequest& request) override {
    const SimTime now = engine_.now();
    if (result_.disaggregation) {
      if (instances_[current_.instance].role == InstanceRole::prefill) {
        ++result_.disaggregation->finished_at_prefill;
      } else if (decoding_.erase(request.id) == 1) {
        ++result_.disaggregation->decoded;
      } else {
        throw InternalError(fmt::format("request {} finished decoding without one KV transfer", request.id));
      }
    }
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
    if (InstanceKindResult* kind = instances_[current_.instance].kind) ++kind->preemptions;
    result_.timeseries.record(now, kSeriesPreemptions, 1);
  }

 private:
  MemoryPlan plan_group(const DeploymentSpec& deployment, const std::string& key) const {
    validate_layout(deployment.layout, model_, key + ".parallel");
    return plan_memory(model_, *inputs_.gpu, deployment.layout, deployment.gpu_memory_utilization,
                       deployment.activation_reserve_bytes, key);
  }

  void check_gpus(int needed, const std::string& what, const std::string& key) const {
    if (needed > graph_->gpu_count()) {
      throw InputError("deployment", key,
                       fmt::format("{} need {} GPUs, but cluster \"{}\" has {}", what, needed,
                                   inputs_.cluster->name, graph_->gpu_count()));
    }
  }

  // Appends the group's instances, on consecutive GPUs from `first_gpu`.
  InstanceGroup build_group(const DeploymentSpec& deployment, InstanceRole role, int first_gpu,
                            const MemoryPlan& memory, InstanceKindResult* kind, MoeLoadMetrics* moe) {
    const ParallelLayout& layout = deployment.layout;
    // Decode instances hold no prefix cache: their prompts arrive already computed.
    const auto prefix_tokens = role == InstanceRole::decode ? 0 : source_->prefix_block_tokens();
    const std::int32_t window = model_.sliding_window;
    InstanceGroup group;
    group.first = instances_.size();
    group.count = static_cast<std::size_t>(deployment.instances);
    group.ranks_per_instance = static_cast<std::size_t>(layout.attention_dp);
    group.policy = deployment.load_balancer;
    instances_.resize(group.first + group.count);
    for (std::size_t i = group.first; i < instances_.size(); ++i) {
      Instance& instance = instances_[i];
      instance.role = role;
      instance.spec = &deployment;
      instance.kind = kind;
      instance.moe = moe;
      instance.first_gpu = first_gpu + static_cast<int>(i - group.first) * layout.gpus();
      std::vector<int> gpus(static_cast<std::size_t>(layout.gpus()));
      for (std::size_t g = 0; g < gpus.size(); ++g)
        gpus[g] = instance.first_gpu + static_cast<int>(g);
      if (layout.attention_tp > 1) {
        std::vector<int> tp_group(gpus.begin(), gpus.begin() + layout.attention_tp);
        instance.tp_allreduce =
            std::make_unique<TensorParallelAllReduce>(*graph_, tp_group, *inputs_.network);
      }
      if (model_.is_moe()) {
        std::uint64_t seed_mix = inputs_.seed + i;
        instance.router = make_router(*inputs_.router, model_.derived.moe_layers, model_.experts,
                                      model_.top_k, splitmix64(seed_mix));
        if (i == group.first && moe != nullptr && instance.router->classes() > 1) {
          std::vector<std::string> names;
          for (int c = 0; c < instance.router->classes(); ++c)
            names.push_back(instance.router->class_name(c));
          moe->set_classes(std::move(names));
        }
        instance.placement = std::make_unique<ExpertPlacement>(
            make_placement(deployment.placement,
                           {model_.experts, layout.expert_ep, layout.redundant_experts,
                            graph_->gpus_per_node() / layout.expert_tp},
                           *instance.router));
        for (int r = 0; r < layout.expert_ep; ++r)
          instance.ep_gpus.push_back(gpus[static_cast<std::size_t>(r * layout.expert_tp)]);
        if (layout.expert_ep > 1) {
          instance.expert_comm =
              std::make_unique<ExpertParallelComm>(*graph_, instance.ep_gpus, *inputs_.network);
        }
        if (deployment.placement.kind == PlacementKind::eplb && deployment.placement.rebalance) {
          instance.rebalancer = std::make_unique<ExpertRebalancer>(
              *deployment.placement.rebalance,
              PlacementShape{model_.experts, layout.expert_ep, layout.redundant_experts,
                             graph_->gpus_per_node() / layout.expert_tp},
              deployment.placement.hierarchical, model_.derived.moe_layers,
              model_.derived.expert_weight_bytes / layout.expert_tp);
        }
      }
      const int routing_components = instance.router ? instance.router->components() : 1;
      for (int d = 0; d < layout.attention_dp; ++d) {
        instance.ranks.emplace_back(deployment.scheduler, memory.kv_token_capacity, prefix_tokens, window,
                                    routing_components, role);
      }
      instance.shapes.resize(instance.ranks.size());
      StepCostOptions options = deployment.step;
      options.max_step_tokens = deployment.scheduler.max_batched_tokens * layout.attention_dp;
      instance.step_cost = std::make_unique<StepCostModel>(
          model_, layout, cost_, instance.router.get(), instance.placement.get(), *inputs_.capacity,
          instance.expert_comm.get(), instance.tp_allreduce.get(), options, moe);
      instance.step_cost->observe_loads(instance.rebalancer.get());
    }
    return group;
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

  BatchScheduler& scheduler(RankRef at) { return instances_[at.instance].ranks[at.rank]; }

  RankRef rank_at(const InstanceGroup& group, std::size_t flat) const {
    return {group.first + flat / group.ranks_per_instance, flat % group.ranks_per_instance};
  }

  // The group's DP rank that receives the next request, among those `eligible` accepts; none: nullopt.
  template <typename Eligible>
  std::optional<RankRef> choose_rank(InstanceGroup& group, Eligible eligible) {
    const std::size_t total = group.total_ranks();
    if (group.policy == LoadBalancerPolicy::round_robin) {
      for (std::size_t tried = 0; tried < total; ++tried) {
        const std::size_t flat = group.round_robin_next++ % total;
        if (eligible(scheduler(rank_at(group, flat)))) return rank_at(group, flat);
      }
      return std::nullopt;
    }
    std::optional<RankRef> best;
    std::size_t best_load = SIZE_MAX;
    for (std::size_t flat = 0; flat < total; ++flat) {
      const BatchScheduler& candidate = scheduler(rank_at(group, flat));
      const std::size_t load = candidate.outstanding();
      if (load < best_load && eligible(candidate)) {
        best_load = load;
        best = rank_at(group, flat);
      }
    }
    return best;
  }

  void on_arrival() {
    arrival_pending_ = false;
    Request request = std::move(pending_request_);
    const SimTime now = engine_.now();
    if (result_.arrived == 0) result_.first_arrival = now;
    ++result_.arrived;
    result_.timeseries.record(now, kSeriesArrivals, 1);
    if (result_.disaggregation && !instances_[decode_.first].ranks.front().could_ever_hold(
                                      std::int64_t{request.input_tokens} + request.output_tokens)) {
      on_rejected(request, now);  // no decode rank could ever hold it: not worth a prefill
      schedule_next_arrival();
      return;
    }
    InstanceGroup& entry = result_.disaggregation ? prefill_ : unified_;
    const RankRef at = *choose_rank(entry, [](const BatchScheduler&) { return true; });
    current_ = at;
    Instance& instance = instances_[at.instance];
    if (instance.router) {
      request.routing_component = instance.router->component_for(request.id, request.traffic_class, now);
    }
    scheduler(at).enqueue(std::move(request), now, *this);
    start_step_if_idle(at.instance);
    schedule_next_arrival();
  }

  // Starts the KV transfers of finished prefills, oldest first, while a decode rank has room for the
  // next one (back-pressure: a transfer waits until its KV cache can be reserved at the destination).
  void start_waiting_transfers() {
    const SimTime now = engine_.now();
    while (!awaiting_room_.empty()) {
      HandOff& next = awaiting_room_.front();
      const std::int32_t prompt = next.request.input_tokens;
      const auto destination = choose_rank(decode_, [prompt](const BatchScheduler& candidate) {
        return candidate.can_reserve_transfer(prompt);
      });
      if (!destination) break;
      scheduler(*destination).reserve_transfer(prompt);
      next.decode = *destination;
      next.started = now;
      const Instance& source = instances_[next.prefill.instance];
      const Instance& target = instances_[destination->instance];
      const int source_tp = source.spec->layout.attention_tp;
      const int target_tp = target.spec->layout.attention_tp;
      flows_.clear();
      const double bytes_per_gpu = kv_bytes_per_token_per_decode_gpu_ * prompt;
      for (int j = 0; j < target_tp; ++j) {
        flows_.push_back({source.first_gpu + static_cast<int>(next.prefill.rank) * source_tp + j % source_tp,
                          target.first_gpu + static_cast<int>(destination->rank) * target_tp + j,
                          bytes_per_gpu});
      }
      next.bytes = bytes_per_gpu * target_tp;
      KvTransferResult& kv = result_.disaggregation->kv_transfer;
      ++kv.started;
      kv.bytes += next.bytes;
      kv.wait_s.record(ns_to_seconds(now - next.request.first_token));
      transfers_->start(next.request.id, flows_, now);
      in_transfer_.emplace(next.request.id, next);
      awaiting_room_.pop_front();
    }
    schedule_transfer_progress();
  }

  // Keeps one live event at the transfers' next change; older ones are ignored by generation.
  void schedule_transfer_progress() {
    const SimTime next = transfers_->next_completion();
    if (next == transfer_wakeup_at_) return;
    transfer_wakeup_at_ = next;
    ++transfer_generation_;
    if (next != kTimeInfinity)
      engine_.schedule(std::max(next, engine_.now()), 0, kTransferProgress, transfer_generation_);
  }

  void on_transfer_progress() {
    const SimTime now = engine_.now();
    transfer_wakeup_at_ = kTimeInfinity;
    finished_transfers_.clear();
    transfers_->finish_until(now, finished_transfers_);
    KvTransferResult& kv = result_.disaggregation->kv_transfer;
    for (const std::uint64_t id : finished_transfers_) {
      const auto found = in_transfer_.find(id);
      const HandOff done = found->second;
      in_transfer_.erase(found);
      ++kv.completed;
      kv.transfer_s.record(ns_to_seconds(now - done.started));
      scheduler(done.prefill).release_handed_off(id);
      // Assumption (moesim's own; DistServe and Mooncake measure TTFT at the prefill instance): the
      // first token reaches the user with the KV cache at the decode instance, so TTFT includes the
      // transfer and any wait for decode room.
      result_.ttft_s.record(ns_to_seconds(now - done.request.arrival));
      decoding_.insert(id);
      scheduler(done.decode).enqueue_transferred(done.request, now);
      start_step_if_idle(done.prefill.instance);
      start_step_if_idle(done.decode.instance);
    }
    schedule_transfer_progress();
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
      current_ = {instance_index, d};
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
    const MoeLoadMetrics* moe = instance.moe;
    const std::int64_t assignments_before = moe ? moe->assignments() : 0;
    const std::int64_t dropped_before = moe ? moe->dropped() : 0;
    const std::int64_t rerouted_before = moe ? moe->rerouted() : 0;
    const double expert_sum_before = moe ? moe_imbalance_sum(moe->expert_imbalance()) : 0;
    const double rank_sum_before = moe ? moe_imbalance_sum(moe->rank_imbalance()) : 0;
    const std::uint64_t layers_before = moe ? moe->expert_imbalance().count() : 0;

    const double stall_s = instance.rebalancer ? rebalance(instance, now) : 0.0;
    const bool traced = inputs_.timeline != nullptr && inputs_.timeline->begin_step(instance_index, now);
    instance.step_cost->set_timeline(traced ? inputs_.timeline : nullptr);
    const StepTiming timing = instance.step_cost->price(instance.shapes, now);
    const SimTime duration = std::max<SimTime>(1, seconds_to_ns_ceil(timing.total_s + stall_s));
    if (traced) inputs_.timeline->end_step(duration, stall_s);
    accumulate(timing, result_.busy);
    ++result_.steps;
    result_.step_s.record(ns_to_seconds(duration));
    if (instance.kind != nullptr) {
      accumulate(timing, instance.kind->busy);
      ++instance.kind->steps;
      instance.kind->step_s.record(ns_to_seconds(duration));
    }

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
    if (moe) {
      const auto layers = static_cast<double>(moe->expert_imbalance().count() - layers_before);
      series.record(now, kSeriesMoeAssignments, static_cast<double>(moe->assignments() - assignments_before));
      series.record(now, kSeriesMoeDropped, static_cast<double>(moe->dropped() - dropped_before));
      series.record(now, kSeriesMoeRerouted, static_cast<double>(moe->rerouted() - rerouted_before));
      if (layers > 0) {
        series.record(now, kSeriesExpertImbalance,
                      (moe_imbalance_sum(moe->expert_imbalance()) - expert_sum_before) / layers);
        series.record(now, kSeriesRankImbalance,
                      (moe_imbalance_sum(moe->rank_imbalance()) - rank_sum_before) / layers);
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
        instance.moe->record(RebalanceSample{move->slots_moved, bytes, stall_s, move->layers_kept});
        result_.timeseries.record(now, kSeriesRebalanceStall, stall_s);
      }
    }
    rebalancer.begin_step(now);
    return stall_s;
  }

  static double moe_imbalance_sum(const Histogram& histogram) {
    return histogram.mean() * static_cast<double>(histogram.count());
  }

  static void accumulate(const StepTiming& timing, StepTiming& busy) {
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
    for (std::size_t d = 0; d < instance.ranks.size(); ++d) {
      current_ = {instance_index, d};
      instance.ranks[d].complete_step(now, *this);
    }
    if (completions_pending_) {
      // Closed-loop sources release new requests on completions.
      completions_pending_ = false;
      schedule_next_arrival();
    }
    start_step(instance_index);
    // New hand-offs after a prefill step, freed KV blocks after a decode step.
    if (instance.role != InstanceRole::unified) start_waiting_transfers();
  }

  void report_progress() {
    if (!inputs_.progress || result_.steps % kProgressEverySteps != 0) return;
    inputs_.progress(SimulationProgress{engine_.now(), result_.arrived, result_.completed, result_.steps});
  }

  const SimulationInputs& inputs_;
  const ModelSpec& model_;
  CostModel cost_;
  SimulationResult result_;
  std::unique_ptr<ClusterGraph> graph_;
  std::unique_ptr<RequestSource> source_;
  std::vector<Instance> instances_;
  InstanceGroup unified_;  // unified runs
  InstanceGroup prefill_;  // disaggregated runs
  InstanceGroup decode_;
  RankRef current_;  // the rank whose scheduler is calling back
  // Disaggregation: prefills waiting for room on a decode rank, transfers in flight, requests decoding.
  std::deque<HandOff> awaiting_room_;
  std::unordered_map<std::uint64_t, HandOff> in_transfer_;
  std::unordered_set<std::uint64_t> decoding_;
  std::unique_ptr<SharedLinkTransfers> transfers_;
  double kv_bytes_per_token_per_decode_gpu_ = 0;
  std::vector<TransferFlow> flows_;
  std::vector<std::uint64_t> finished_transfers_;
  SimTime transfer_wakeup_at_ = kTimeInfinity;
  std::uint64_t transfer_generation_ = 0;
  Engine engine_;
  Request pending_request_;
  bool arrival_pending_ = false;
  bool completions_pending_ = false;
};

}  // namespace

SimulationResult simulate(const SimulationInputs& inputs) {
  Simulation simulation(inputs);
  return simulation.run();
}

}  // namespace moesim
