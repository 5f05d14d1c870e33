#include "sim/report/report.hpp"

#include <algorithm>

namespace moesim {

namespace {

double ratio(double numerator, double denominator) {
  return denominator > 0 ? numerator / denominator : 0.0;
}

nlohmann::json latency(const Histogram& histogram) {
  nlohmann::json summary = histogram.summary();
  summary.erase("count");
  return summary;
}

nlohmann::json imbalance(const Histogram& histogram) {
  return {{"mean", histogram.mean()}, {"p99", histogram.quantile(0.99)}, {"max", histogram.max()}};
}

// The (layer, rank) straggler pairs listed in moe.stragglers.top.
constexpr std::size_t kStragglerPairsReported = 20;

// moe_drop_rate[w] = moe_dropped[w] / moe_assignments[w] (0 in windows without MoE work).
void add_drop_rate_series(nlohmann::json& series) {
  const auto& dropped = series.at("moe_dropped");
  const auto& assignments = series.at("moe_assignments");
  nlohmann::json rate = nlohmann::json::array();
  for (std::size_t w = 0; w < dropped.size(); ++w)
    rate.push_back(ratio(dropped[w].get<double>(), assignments[w].get<double>()));
  series["moe_drop_rate"] = std::move(rate);
}

nlohmann::json busy_json(const StepTiming& busy) {
  return {{"total", busy.total_s},       {"attention_and_dense", busy.attention_s},
          {"experts", busy.expert_s},    {"dispatch", busy.dispatch_s},
          {"combine", busy.combine_s},   {"tp_allreduce", busy.tp_allreduce_s},
          {"overhead", busy.overhead_s}, {"overlap_hidden", busy.overlap_hidden_s}};
}

nlohmann::json memory_json(const MemoryPlan& memory) {
  return {{"per_gpu_bytes",
           {{"hbm", memory.hbm_bytes},
            {"weights", memory.weight_bytes},
            {"expert_weights", memory.expert_weight_bytes},
            {"activation_reserve", memory.activation_reserve_bytes},
            {"kv_cache", memory.kv_cache_bytes}}},
          {"kv_bytes_per_token_per_gpu", memory.kv_bytes_per_token},
          {"kv_token_capacity_per_attention_rank", memory.kv_token_capacity}};
}

nlohmann::json moe_summary(const std::optional<MoeLoadMetrics>& load) {
  if (!load) return nullptr;
  return {
      {"total_assignments", load->assignments()},
      {"dropped_assignments", load->dropped()},
      {"drop_rate", ratio(static_cast<double>(load->dropped()), static_cast<double>(load->assignments()))},
      {"imbalance",
       {{"expert_max_over_mean", imbalance(load->expert_imbalance())},
        {"rank_max_over_mean", imbalance(load->rank_imbalance())}}}};
}

nlohmann::json instance_kind_json(const InstanceKindResult& kind, const std::optional<MoeLoadMetrics>& moe,
                                  double sim_time_s) {
  return {{"instances", kind.instances},
          {"gpus", kind.gpus},
          {"steps", kind.steps},
          {"step_duration_s", latency(kind.step_s)},
          {"busy_s", busy_json(kind.busy)},
          {"utilization", ratio(kind.busy.total_s, kind.instances * sim_time_s)},
          {"preemptions", kind.preemptions},
          {"memory", memory_json(kind.memory)},
          {"moe", moe_summary(moe)}};
}

nlohmann::json disaggregation_json(const SimulationResult& result) {
  const DisaggregationResult& split = *result.disaggregation;
  const double sim_time_s = ns_to_seconds(result.end_time);
  const KvTransferResult& kv = split.kv_transfer;
  return {{"prefill", instance_kind_json(split.prefill, split.prefill_moe, sim_time_s)},
          {"decode", instance_kind_json(split.decode, result.moe, sim_time_s)},
          {"requests",
           {{"finished_at_prefill", split.finished_at_prefill},
            {"handed_off", kv.started},
            {"decoded", split.decoded}}},
          {"kv_transfer",
           {{"started", kv.started},
            {"completed", kv.completed},
            {"bytes", kv.bytes},
            {"mean_bytes", ratio(kv.bytes, static_cast<double>(kv.started))},
            {"wait_s", latency(kv.wait_s)},
            {"transfer_s", latency(kv.transfer_s)}}}};
}

}  // namespace

nlohmann::json build_report(const Scenario& scenario, const SimulationResult& result,
                            const SimulatorCost& cost) {
  nlohmann::json report;
  report["schema_version"] = kReportSchemaVersion;
  report["scenario"] = resolved_json(scenario);

  const double makespan_s =
      ns_to_seconds(std::max<SimTime>(0, result.last_completion - result.first_arrival));
  nlohmann::json summary;
  summary["requests"] = {{"arrived", result.arrived},
                         {"completed", result.completed},
                         {"rejected", result.rejected},
                         {"unfinished", result.arrived - result.completed - result.rejected},
                         {"preemptions", result.preemptions}};
  summary["throughput"] = {
      {"input_tokens_per_s", ratio(static_cast<double>(result.completed_input_tokens), makespan_s)},
      {"output_tokens_per_s", ratio(static_cast<double>(result.completed_output_tokens), makespan_s)},
      {"requests_per_s", ratio(static_cast<double>(result.completed), makespan_s)},
      {"makespan_s", makespan_s},
      {"cached_prompt_tokens", result.cached_prompt_tokens}};
  summary["ttft_s"] = latency(result.ttft_s);
  summary["tpot_s"] = latency(result.tpot_s);
  summary["e2e_s"] = latency(result.e2e_s);
  summary["queue_s"] = latency(result.queue_s);
  const auto gpus = result.gpus;
  summary["gpus"] = gpus;
  summary["output_tokens_per_s_per_gpu"] =
      ratio(static_cast<double>(result.completed_output_tokens), makespan_s) / std::max(1, gpus);
  report["summary"] = std::move(summary);

  report["steps"] = {
      {"count", result.steps}, {"duration_s", latency(result.step_s)}, {"busy_s", busy_json(result.busy)}};
  if (result.disaggregation) report["disaggregation"] = disaggregation_json(result);

  nlohmann::json moe;
  if (result.moe) {
    const MoeLoadMetrics& load = *result.moe;
    moe["capacity_factor"] = to_json(scenario.capacity)["capacity_factor"];
    moe["policy"] = to_json(scenario.capacity)["policy"];
    moe["scope"] = to_json(scenario.capacity)["scope"];
    moe["total_assignments"] = load.assignments();
    moe["dropped_assignments"] = load.dropped();
    moe["rerouted_assignments"] = load.rerouted();
    moe["drop_rate"] = ratio(static_cast<double>(load.dropped()), static_cast<double>(load.assignments()));
    moe["tokens_fully_dropped"] = load.tokens_fully_dropped();
    moe["imbalance"] = {{"expert_max_over_mean", imbalance(load.expert_imbalance())},
                        {"rank_max_over_mean", imbalance(load.rank_imbalance())}};
    moe["layers"] = load.layers_json(scenario.outputs.expert_load);
    moe["ranks"] = load.ranks_json();
    moe["stragglers"] = load.stragglers_json(kStragglerPairsReported);
    moe["classes"] = load.classes_json();
    const RebalanceSample& moved = load.rebalance_totals();
    moe["rebalance"] = {{"count", load.rebalances()},
                        {"slots_moved", moved.slots_moved},
                        {"bytes_moved", moved.bytes_moved},
                        {"stall_s", moved.stall_s},
                        {"layers_kept", moved.layers_kept}};
  } else {
    moe = nullptr;
  }
  report["moe"] = std::move(moe);

  report["network"] = {{"dispatch_s", result.busy.dispatch_s},
                       {"combine_s", result.busy.combine_s},
                       {"tp_allreduce_s", result.busy.tp_allreduce_s},
                       {"bytes", result.busy.network_bytes}};
  report["memory"] = memory_json(result.memory);
  report["cost_model"] = result.cost_model;
  report["timeseries"] = result.timeseries.to_json();
  if (result.moe) add_drop_rate_series(report["timeseries"]);

  const double wall_s = cost.reproducible ? 0.0 : cost.wall_s;
  const double sim_time_s = ns_to_seconds(result.end_time);
  report["simulator"] = {
      {"wall_s", wall_s},
      {"events", result.events},
      {"events_per_s", wall_s > 0 ? static_cast<double>(result.events) / wall_s : 0.0},
      {"steps", result.steps},
      {"sim_time_s", sim_time_s},
      {"sim_seconds_per_wall_second", wall_s > 0 ? sim_time_s / wall_s : 0.0},
      {"peak_rss_bytes", cost.reproducible ? 0 : cost.peak_rss_bytes},
  };
  return report;
}

std::string render_report(const nlohmann::json& report) {
  return report.dump(2) + "\n";
}

}  // namespace moesim
