#include "sim/serving/deployment.hpp"

#include <limits>

namespace moesim {

namespace {

Precision parse_precision(const JsonReader& reader, std::string_view key, Precision fallback) {
  const std::string name = reader.choice(key, {"bf16", "fp8", "fp4"}, precision_name(fallback));
  return name == "fp8" ? Precision::fp8 : name == "fp4" ? Precision::fp4 : Precision::bf16;
}

int bounded_int(const JsonReader& reader, std::string_view key, std::int64_t fallback) {
  const auto value = reader.positive_integer(key, fallback);
  if (value > std::numeric_limits<int>::max()) reader.fail(key, "value is too large");
  return static_cast<int>(value);
}

void parse_precisions(const JsonReader& reader, StepCostOptions& step) {
  if (auto precision = reader.optional_object("precision")) {
    step.weight_precision = parse_precision(*precision, "weights", step.weight_precision);
    step.expert_precision = parse_precision(*precision, "experts", step.expert_precision);
    step.dispatch_precision = parse_precision(*precision, "dispatch", step.dispatch_precision);
    step.combine_precision = parse_precision(*precision, "combine", step.combine_precision);
    precision->finish();
  }
}

DeploymentSpec parse_group(const JsonReader& reader, const std::filesystem::path& base_dir,
                           bool with_precision) {
  DeploymentSpec spec;
  spec.instances = bounded_int(reader, "instances", 1);
  if (auto parallel = reader.optional_object("parallel")) spec.layout = parse_parallel_layout(*parallel);
  if (auto scheduler = reader.optional_object("scheduler")) {
    spec.scheduler.max_sequences = bounded_int(*scheduler, "max_sequences", spec.scheduler.max_sequences);
    spec.scheduler.max_batched_tokens =
        bounded_int(*scheduler, "max_batched_tokens", spec.scheduler.max_batched_tokens);
    spec.scheduler.chunked_prefill = scheduler->boolean("chunked_prefill", spec.scheduler.chunked_prefill);
    spec.scheduler.kv_block_tokens =
        bounded_int(*scheduler, "kv_block_tokens", spec.scheduler.kv_block_tokens);
    spec.scheduler.prefix_caching = scheduler->boolean("prefix_caching", spec.scheduler.prefix_caching);
    scheduler->finish();
  }
  spec.gpu_memory_utilization = reader.number("gpu_memory_utilization", spec.gpu_memory_utilization);
  if (!(spec.gpu_memory_utilization > 0 && spec.gpu_memory_utilization <= 1)) {
    reader.fail("gpu_memory_utilization", "expected a number in (0, 1]");
  }
  spec.activation_reserve_bytes =
      reader.non_negative_number("activation_reserve_GB", spec.activation_reserve_bytes / 1e9) * 1e9;
  spec.load_balancer = reader.choice("load_balancer", {"least_outstanding", "round_robin"},
                                     "least_outstanding") == "round_robin"
                           ? LoadBalancerPolicy::round_robin
                           : LoadBalancerPolicy::least_outstanding;
  if (auto placement = reader.optional_object("placement"))
    spec.placement = parse_placement(*placement, base_dir);
  if (with_precision) parse_precisions(reader, spec.step);
  spec.step.overlap_micro_batches = reader.boolean("overlap_micro_batches", spec.step.overlap_micro_batches);
  spec.step.kernels_per_layer =
      static_cast<int>(reader.non_negative_integer("kernels_per_layer", spec.step.kernels_per_layer));
  spec.step.expert_kernel = reader.choice("expert_kernel", {"grouped", "per_expert"},
                                          expert_kernel_name(spec.step.expert_kernel)) == "per_expert"
                                ? ExpertKernel::per_expert
                                : ExpertKernel::grouped;
  reader.finish();
  return spec;
}

}  // namespace

DeploymentSpec parse_deployment(const JsonReader& reader, const std::filesystem::path& base_dir) {
  return parse_group(reader, base_dir, true);
}

bool is_disaggregated(const JsonReader& reader) {
  return reader.has("prefill") || reader.has("decode");
}

DisaggregationSpec parse_disaggregation(const JsonReader& reader, const std::filesystem::path& base_dir) {
  DisaggregationSpec spec;
  spec.prefill = parse_group(reader.object("prefill"), base_dir, false);
  spec.decode = parse_group(reader.object("decode"), base_dir, false);
  StepCostOptions shared;
  parse_precisions(reader, shared);
  for (DeploymentSpec* group : {&spec.prefill, &spec.decode}) {
    group->step.weight_precision = shared.weight_precision;
    group->step.expert_precision = shared.expert_precision;
    group->step.dispatch_precision = shared.dispatch_precision;
    group->step.combine_precision = shared.combine_precision;
  }
  reader.finish();
  return spec;
}

nlohmann::json to_json(const DisaggregationSpec& spec) {
  return {{"prefill", to_json(spec.prefill)}, {"decode", to_json(spec.decode)}};
}

nlohmann::json to_json(const DeploymentSpec& spec) {
  return {
      {"instances", spec.instances},
      {"parallel", to_json(spec.layout)},
      {"scheduler",
       {{"max_sequences", spec.scheduler.max_sequences},
        {"max_batched_tokens", spec.scheduler.max_batched_tokens},
        {"chunked_prefill", spec.scheduler.chunked_prefill},
        {"kv_block_tokens", spec.scheduler.kv_block_tokens},
        {"prefix_caching", spec.scheduler.prefix_caching}}},
      {"gpu_memory_utilization", spec.gpu_memory_utilization},
      {"activation_reserve_GB", spec.activation_reserve_bytes / 1e9},
      {"load_balancer",
       spec.load_balancer == LoadBalancerPolicy::round_robin ? "round_robin" : "least_outstanding"},
      {"placement", to_json(spec.placement)},
      {"precision",
       {{"weights", precision_name(spec.step.weight_precision)},
        {"experts", precision_name(spec.step.expert_precision)},
        {"dispatch", precision_name(spec.step.dispatch_precision)},
        {"combine", precision_name(spec.step.combine_precision)}}},
      {"kernels_per_layer", spec.step.kernels_per_layer},
      {"overlap_micro_batches", spec.step.overlap_micro_batches},
      {"expert_kernel", expert_kernel_name(spec.step.expert_kernel)},
  };
}

}  // namespace moesim
