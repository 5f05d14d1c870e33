#include "sim/serving/step_cost.hpp"

#include <algorithm>

#include "sim/common/error.hpp"
#include "sim/network/collectives.hpp"

namespace moesim {

namespace {

// The most nodes one token's experts can reach in each MoE layer under group-limited routing: groups per
// token times the most nodes any group's expert slots sit on (0: no limit). One entry when the placement
// is shared by all layers.
std::vector<int> node_limits(const ModelSpec& model, const ExpertPlacement& placement,
                             const EpLayout& layout) {
  if (model.expert_groups <= 0 || model.groups_per_token >= model.expert_groups) return {};
  const int group_size = model.experts / model.expert_groups;
  const auto nodes = static_cast<std::size_t>(layout.node_count());
  std::vector<int> limits;
  std::vector<char> group_on_node(static_cast<std::size_t>(model.expert_groups) * nodes);
  for (int layer = 0; layer < placement.layers(); ++layer) {
    std::fill(group_on_node.begin(), group_on_node.end(), 0);
    for (int slot = 0; slot < placement.slots(); ++slot) {
      const auto group = static_cast<std::size_t>(placement.slot_expert(layer, slot) / group_size);
      group_on_node[group * nodes + static_cast<std::size_t>(layout.node(placement.slot_rank(slot)))] = 1;
    }
    long widest = 0;
    for (std::size_t group = 0; group < static_cast<std::size_t>(model.expert_groups); ++group) {
      const auto begin = group_on_node.begin() + static_cast<std::ptrdiff_t>(group * nodes);
      widest = std::max<long>(widest, std::count(begin, begin + static_cast<std::ptrdiff_t>(nodes), 1));
    }
    const long limit = widest * model.groups_per_token;
    limits.push_back(limit < static_cast<long>(nodes) ? static_cast<int>(limit) : 0);
  }
  return limits;
}

// Adds each rank's SiLU time (its kept assignments times `silu_per_assignment`) to its busy time and
// copies its kept assignments as int32 and as double; returns the largest busy time. The counts go to
// double through int32 (a rank's kept load fits), so the loop vectorises; the maximum follows in four
// lanes (its value does not depend on the order), so no chain of dependent maxima sets the pace.
double add_rank_loads(const std::int64_t* __restrict kept_per_rank, double silu_per_assignment,
                      std::size_t ranks, double* __restrict rank_busy, std::int32_t* __restrict rank_kept,
                      double* __restrict assignments_to_rank) {
  for (std::size_t r = 0; r < ranks; ++r) {
    const auto kept = static_cast<std::int32_t>(kept_per_rank[r]);
    rank_busy[r] += static_cast<double>(kept) * silu_per_assignment;
    rank_kept[r] = kept;
    assignments_to_rank[r] = static_cast<double>(kept);
  }
  double slowest[4] = {0, 0, 0, 0};
  std::size_t r = 0;
  for (; r + 4 <= ranks; r += 4) {
    for (std::size_t lane = 0; lane < 4; ++lane)
      slowest[lane] = std::max(slowest[lane], rank_busy[r + lane]);
  }
  for (; r < ranks; ++r)
    slowest[0] = std::max(slowest[0], rank_busy[r]);
  return std::max(std::max(slowest[0], slowest[1]), std::max(slowest[2], slowest[3]));
}

}  // namespace

double TensorParallelAllReduce::seconds(double bytes) const {
  return ring_all_reduce_time(graph_, gpus_, bytes, params_);
}

StepCostModel::StepCostModel(const ModelSpec& model, const ParallelLayout& layout, const CostModel& cost,
                             Router* router, const ExpertPlacement* placement, const CapacitySpec& capacity,
                             const ExpertParallelComm* expert_comm,
                             const TensorParallelAllReduce* tp_allreduce, const StepCostOptions& options,
                             MoeLoadMetrics* moe_metrics)
    : model_(model),
      layout_(layout),
      cost_(cost),
      router_(router),
      expert_comm_(expert_comm),
      tp_allreduce_(tp_allreduce),
      options_(options),
      moe_metrics_(moe_metrics),
      capacity_(capacity) {
  const int tp = layout_.attention_tp;
  if (model_.attention == AttentionKind::mla) {
    // The MLA latent is replicated on every GPU of an attention rank.
    kv_bytes_per_token_per_layer_per_gpu_ = model_.derived.kv_bytes_per_token_per_layer;
  } else {
    const int heads_per_gpu = std::max(1, model_.kv_heads / tp);
    kv_bytes_per_token_per_layer_per_gpu_ =
        model_.derived.kv_bytes_per_token_per_layer * heads_per_gpu / static_cast<double>(model_.kv_heads);
  }
  if (model_.is_moe()) {
    if (router_ == nullptr || placement == nullptr || moe_metrics_ == nullptr) {
      throw InternalError("an MoE model needs a router, a placement and MoE metrics");
    }
    evaluator_ = std::make_unique<MoeLayerEvaluator>(*placement, capacity, model_.experts, model_.top_k);
    expert_hidden_ = model_.hidden;
    expert_ffn_per_gpu_ = static_cast<double>(model_.expert_intermediate) / layout_.expert_tp;
    expert_counts_.assign(static_cast<std::size_t>(model_.experts), 0);
    component_tokens_.assign(static_cast<std::size_t>(router_->components()), 0);
    tokens_from_rank_.assign(static_cast<std::size_t>(layout_.expert_ep), 0.0);
    assignments_to_rank_.assign(static_cast<std::size_t>(layout_.expert_ep), 0.0);
    rank_busy_s_.assign(static_cast<std::size_t>(layout_.expert_ep), 0.0);
    rank_kept_.assign(static_cast<std::size_t>(layout_.expert_ep), 0);
    slots_per_rank_ = placement->slots_per_rank();
    if (expert_comm_ != nullptr) node_limits_ = node_limits(model_, *placement, expert_comm_->layout());
    // Per-expert GEMM times by token count, up to the largest step of one instance.
    const std::int64_t max_step_tokens = std::int64_t{options_.max_step_tokens};
    expert_cost_.emplace(cost_.expert_cost_table(expert_hidden_, expert_ffn_per_gpu_,
                                                 options_.expert_precision, options_.expert_kernel,
                                                 max_step_tokens));
    // Assumption (moesim's simplification for speed): the SiLU-and-multiply kernel of a
    // rank costs its large-size bandwidth rate per assignment, without a per-kernel floor.
    constexpr double kReferenceAssignments = 1e6;
    silu_seconds_per_assignment_ =
        cost_.memory_seconds(kReferenceAssignments * 6.0 * expert_ffn_per_gpu_) / kReferenceAssignments;
  }
}

void StepCostModel::set_placement(const ExpertPlacement& placement) {
  if (placement.slots_per_rank() != slots_per_rank_) {
    throw InternalError("StepCostModel::set_placement: a placement with another slot count per rank");
  }
  evaluator_ = std::make_unique<MoeLayerEvaluator>(placement, capacity_, model_.experts, model_.top_k);
  if (expert_comm_ != nullptr) node_limits_ = node_limits(model_, placement, expert_comm_->layout());
}

StepCostModel::TokenCosts StepCostModel::token_costs(const BatchShape& shape) const {
  TokenCosts costs;
  costs.tokens = shape.tokens();
  costs.logits = shape.logits;
  costs.lm_head = lm_head_rank_seconds(shape);
  if (shape.empty()) return costs;
  costs.projections =
      cost_.gemm_seconds(static_cast<double>(costs.tokens),
                         model_.derived.attention_params_per_layer / model_.hidden / layout_.attention_tp,
                         model_.hidden, options_.weight_precision);
  costs.dense_ffn = dense_ffn_rank_seconds(shape);
  costs.moe_dense = model_.is_moe() ? moe_dense_part_rank_seconds(shape) : 0.0;
  return costs;
}

double StepCostModel::attention_rank_seconds(const BatchShape& shape, bool sliding_window_layer,
                                             double projections_seconds) const {
  if (shape.empty()) return 0.0;
  const double tp = layout_.attention_tp;
  const auto& derived = model_.derived;
  double seconds = projections_seconds;
  if (shape.decode_sequences > 0) {
    const double keys =
        static_cast<double>(sliding_window_layer ? shape.decode_windowed_context : shape.decode_context);
    seconds += cost_.attention_decode_seconds(static_cast<double>(shape.decode_sequences),
                                              keys * kv_bytes_per_token_per_layer_per_gpu_,
                                              keys * derived.attention_core_flops_per_key_decode / tp);
  }
  if (shape.prefill_tokens > 0) {
    const double pairs = sliding_window_layer ? shape.prefill_windowed_pairs : shape.prefill_pairs;
    const double kv_bytes = static_cast<double>(shape.prefill_context_read + shape.prefill_tokens) *
                            kv_bytes_per_token_per_layer_per_gpu_;
    seconds +=
        cost_.attention_prefill_seconds(pairs * derived.attention_core_flops_per_key_prefill / tp, kv_bytes);
  }
  return seconds;
}

double StepCostModel::dense_ffn_rank_seconds(const BatchShape& shape) const {
  if (shape.empty() || model_.dense_intermediate == 0) return 0.0;
  return cost_.gemm_seconds(static_cast<double>(shape.tokens()),
                            model_.derived.dense_ffn_params_per_layer / model_.hidden / layout_.attention_tp,
                            model_.hidden, options_.weight_precision);
}

double StepCostModel::moe_dense_part_rank_seconds(const BatchShape& shape) const {
  if (shape.empty()) return 0.0;
  const double tokens = static_cast<double>(shape.tokens());
  double seconds = cost_.gemm_seconds(tokens, model_.experts, model_.hidden, options_.weight_precision);
  if (model_.shared_experts > 0) {
    seconds += cost_.gemm_seconds(
        tokens,
        model_.derived.shared_expert_params * model_.shared_experts / model_.hidden / layout_.attention_tp,
        model_.hidden, options_.weight_precision);
  }
  return seconds;
}

double StepCostModel::lm_head_rank_seconds(const BatchShape& shape) const {
  if (shape.logits == 0) return 0.0;
  return cost_.gemm_seconds(static_cast<double>(shape.logits),
                            static_cast<double>(model_.vocab) / layout_.attention_tp, model_.hidden,
                            options_.lm_head_precision);
}

double StepCostModel::allreduce_seconds(std::int64_t tokens) const {
  if (tp_allreduce_ == nullptr || layout_.attention_tp == 1 || tokens == 0) return 0.0;
  return tp_allreduce_->seconds(static_cast<double>(tokens) * model_.hidden *
                                options_.activation_bytes_per_element);
}

StepTiming StepCostModel::price(std::span<const BatchShape> shapes, SimTime now) {
  StepTiming timing;
  double attention_full = 0, attention_window = 0;  // slowest DP rank, per layer kind
  double with_dense_ffn_full = 0, with_dense_ffn_window = 0;
  double with_moe_dense_full = 0, with_moe_dense_window = 0;
  double lm_head = 0;
  std::int64_t total_tokens = 0, largest_rank_tokens = 0;
  const bool has_window_layers = model_.derived.sliding_window_layer_count > 0;
  // Decode steps give most DP ranks the same token count: its costs are computed once per run of equal
  // counts.
  TokenCosts same_tokens;
  for (std::size_t d = 0; d < shapes.size(); ++d) {
    const BatchShape& shape = shapes[d];
    if (shape.tokens() != same_tokens.tokens || shape.logits != same_tokens.logits)
      same_tokens = token_costs(shape);
    const double full = attention_rank_seconds(shape, false, same_tokens.projections);
    const double window =
        has_window_layers ? attention_rank_seconds(shape, true, same_tokens.projections) : full;
    const double dense_ffn = same_tokens.dense_ffn;
    const double moe_dense = same_tokens.moe_dense;
    attention_full = std::max(attention_full, full);
    attention_window = std::max(attention_window, window);
    with_dense_ffn_full = std::max(with_dense_ffn_full, full + dense_ffn);
    with_dense_ffn_window = std::max(with_dense_ffn_window, window + dense_ffn);
    with_moe_dense_full = std::max(with_moe_dense_full, full + moe_dense);
    with_moe_dense_window = std::max(with_moe_dense_window, window + moe_dense);
    lm_head = std::max(lm_head, same_tokens.lm_head);
    total_tokens += shape.tokens();
    largest_rank_tokens = std::max(largest_rank_tokens, shape.tokens());
  }
  if (total_tokens == 0) return timing;
  const bool by_component = model_.is_moe() && router_->components() > 1;
  if (model_.is_moe()) {
    router_->set_time(now);
    if (by_component) {
      std::fill(component_tokens_.begin(), component_tokens_.end(), 0);
      for (const BatchShape& shape : shapes) {
        for (std::size_t k = 0; k < component_tokens_.size(); ++k)
          component_tokens_[k] += shape.routing_tokens[k];
      }
    }
  }

  if (model_.is_moe() && layout_.expert_ep > 1) {
    std::fill(tokens_from_rank_.begin(), tokens_from_rank_.end(), 0.0);
    // Assumption (as in vLLM's and SGLang's expert parallelism with attention TP): each
    // GPU of an attention rank dispatches an equal share of the rank's tokens.
    const auto tp = static_cast<std::size_t>(layout_.attention_tp);
    for (std::size_t d = 0; d < shapes.size(); ++d) {
      const double share = static_cast<double>(shapes[d].tokens()) / static_cast<double>(tp);
      for (std::size_t g = d * tp; g < (d + 1) * tp; ++g) {
        tokens_from_rank_[g / static_cast<std::size_t>(layout_.expert_tp)] += share;
      }
    }
  }

  const double allreduce = allreduce_seconds(largest_rank_tokens);
  const double launches = cost_.launch_seconds(options_.kernels_per_layer);
  int moe_layer = 0;
  // With two overlapped micro-batches each layer takes the longer of its computation and its
  // communication (plus a second set of kernel launches); the pipeline drains once per step.
  double overlapped_s = 0;
  double last_hidden_s = 0;
  // Returns the layer's length with overlap (0 without).
  auto close_layer = [&](double compute_before, double communication_before) {
    if (!options_.overlap_micro_batches) return 0.0;
    const double compute = compute_seconds(timing) - compute_before;
    const double communication = timing.dispatch_s + timing.combine_s - communication_before;
    const double layer_s = std::max(compute, communication) + launches;
    overlapped_s += layer_s;
    last_hidden_s = std::min(compute, communication);
    return layer_s;
  };
  // Hands the layer's parts (timing minus `before`) to the timeline sink.
  auto report_layer = [&](const StepTiming& before, LayerTimeline::Kind kind, int layer,
                          double overlapped_layer_s) {
    LayerTimeline entry;
    entry.kind = kind;
    entry.layer = layer;
    entry.attention_s = timing.attention_s - before.attention_s;
    entry.tp_allreduce_s = timing.tp_allreduce_s - before.tp_allreduce_s;
    entry.dispatch_s = timing.dispatch_s - before.dispatch_s;
    entry.expert_s = timing.expert_s - before.expert_s;
    entry.combine_s = timing.combine_s - before.combine_s;
    entry.overhead_s = timing.overhead_s - before.overhead_s;
    entry.overlapped = options_.overlap_micro_batches;
    entry.layer_s = entry.overlapped ? overlapped_layer_s
                                     : entry.attention_s + entry.tp_allreduce_s + entry.dispatch_s +
                                           entry.expert_s + entry.combine_s + entry.overhead_s;
    if (kind == LayerTimeline::Kind::moe) entry.rank_expert_s = rank_busy_s_;
    timeline_->layer(entry);
  };
  for (int layer = 0; layer < model_.layers; ++layer) {
    const StepTiming before = timing;
    const double compute_before = compute_seconds(timing);
    const double communication_before = timing.dispatch_s + timing.combine_s;
    const bool window =
        has_window_layers && model_.layer_uses_sliding_window[static_cast<std::size_t>(layer)] != 0;
    timing.overhead_s += launches;
    timing.tp_allreduce_s += 2 * allreduce;
    if (!model_.is_moe() || !model_.is_moe_layer(layer)) {
      timing.attention_s += window ? with_dense_ffn_window : with_dense_ffn_full;
      const double overlapped_layer_s = close_layer(compute_before, communication_before);
      if (timeline_ != nullptr) report_layer(before, LayerTimeline::Kind::dense, layer, overlapped_layer_s);
      continue;
    }
    timing.attention_s += window ? with_moe_dense_window : with_moe_dense_full;

    if (by_component) {
      router_->sample_counts(moe_layer, component_tokens_, expert_counts_);
    } else {
      router_->sample_counts(moe_layer, total_tokens, expert_counts_);
    }
    if (rebalancer_ != nullptr) rebalancer_->observe(moe_layer, expert_counts_);
    const MoeLayerResult& result =
        evaluator_->evaluate(moe_layer, total_tokens, expert_counts_, router_->popularity(moe_layer));
    // Each active expert slot reads its weights once (in its own GEMMs or its share of the grouped
    // kernels), so a rank with more active experts is slower at the same token count.
    expert_cost_->ranks_seconds(result.kept_per_slot, static_cast<std::size_t>(slots_per_rank_),
                                rank_busy_s_);
    const std::size_t ranks = rank_busy_s_.size();
    double* rank_busy = rank_busy_s_.data();
    const double slowest = add_rank_loads(result.kept_per_rank.data(), silu_seconds_per_assignment_, ranks,
                                          rank_busy, rank_kept_.data(), assignments_to_rank_.data());
    // The straggler: the first rank at the slowest time (rank 0 when every rank idles).
    const auto straggler =
        slowest > 0 ? static_cast<int>(std::find(rank_busy, rank_busy + ranks, slowest) - rank_busy) : 0;
    timing.expert_s += slowest;
    // Permute before and un-permute after the experts: each kept pair's activations are read and written.
    timing.overhead_s +=
        cost_.memory_seconds(4.0 * static_cast<double>(rank_kept_[static_cast<std::size_t>(straggler)]) *
                             expert_hidden_ * options_.activation_bytes_per_element);
    if (expert_comm_ != nullptr && layout_.expert_ep > 1) {
      EpTraffic traffic;
      traffic.tokens_from_rank = tokens_from_rank_;
      traffic.assignments_to_rank = assignments_to_rank_;
      traffic.top_k = model_.top_k;
      traffic.bytes_per_token = expert_hidden_ * precision_bytes(options_.dispatch_precision);
      if (!node_limits_.empty())
        traffic.max_nodes_per_token =
            node_limits_[node_limits_.size() == 1 ? 0 : static_cast<std::size_t>(moe_layer)];
      const EpPhaseCosts phases = expert_comm_->dispatch_and_combine(
          traffic, expert_hidden_ * precision_bytes(options_.combine_precision));
      timing.dispatch_s += phases.dispatch_seconds;
      timing.combine_s += phases.combine_seconds;
      timing.network_bytes += phases.dispatch_bytes + phases.combine_bytes;
    }

    MoeLayerSample sample;
    sample.layer = moe_layer;
    sample.assignments = result.assignments;
    sample.dropped = result.dropped_assignments;
    sample.rerouted = result.rerouted_assignments;
    sample.tokens_fully_dropped = result.tokens_fully_dropped;
    sample.expert_max_over_mean = result.expert_imbalance();
    sample.rank_max_over_mean = result.rank_imbalance();
    sample.straggler_rank = straggler;
    sample.expert_demand = expert_counts_;
    if (capacity_.policy != CapacityPolicy::dropless) sample.expert_overflow = result.overflow_per_expert;
    sample.rank_assignments = rank_kept_;
    sample.rank_busy_s = rank_busy_s_;
    moe_metrics_->record(sample);
    if (router_->classes() > 1) {
      for (int c = 0; c < router_->classes(); ++c)
        moe_metrics_->record_class(c, router_->class_counts(c));
    }
    ++moe_layer;
    const double overlapped_layer_s = close_layer(compute_before, communication_before);
    if (timeline_ != nullptr) report_layer(before, LayerTimeline::Kind::moe, layer, overlapped_layer_s);
  }
  const StepTiming before_lm_head = timing;
  timing.attention_s += lm_head;
  if (timeline_ != nullptr) {
    report_layer(before_lm_head, LayerTimeline::Kind::lm_head, model_.layers, last_hidden_s + lm_head);
  }
  timing.total_s = timing.attention_s + timing.expert_s + timing.dispatch_s + timing.combine_s +
                   timing.tp_allreduce_s + timing.overhead_s;
  if (options_.overlap_micro_batches) {
    const double overlapped_total = overlapped_s + last_hidden_s + lm_head;
    timing.overlap_hidden_s = timing.total_s - overlapped_total;
    timing.total_s = overlapped_total;
  }
  return timing;
}

double StepCostModel::compute_seconds(const StepTiming& timing) {
  return timing.attention_s + timing.expert_s + timing.tp_allreduce_s + timing.overhead_s;
}

}  // namespace moesim
