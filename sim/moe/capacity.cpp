#include "sim/moe/capacity.hpp"

#include <cmath>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {

constexpr double kMaxCapacityFactor = 1000.0;
constexpr const char* kFactorRange = "expected a positive number of at most 1000";

std::int64_t ceil_exact(double value) {
  return static_cast<std::int64_t>(std::ceil(value * (1.0 - 1e-12)));
}

}  // namespace

double CapacitySpec::factor(int layer) const {
  if (layer_factors.empty()) return capacity_factor;
  if (layer < 0 || static_cast<std::size_t>(layer) >= layer_factors.size()) {
    throw InternalError(fmt::format("CapacitySpec::factor: MoE layer {} of {} per-layer factors", layer,
                                    layer_factors.size()));
  }
  return layer_factors[static_cast<std::size_t>(layer)];
}

CapacitySpec parse_capacity(const JsonReader& reader) {
  CapacitySpec spec;
  if (reader.has("capacity_factor") && reader.raw("capacity_factor").is_array()) {
    spec.layer_factors = reader.number_array("capacity_factor");
    if (spec.layer_factors.empty())
      reader.fail("capacity_factor", "expected one factor per MoE layer, got []");
    for (std::size_t i = 0; i < spec.layer_factors.size(); ++i) {
      const double factor = spec.layer_factors[i];
      if (!(factor > 0 && factor <= kMaxCapacityFactor)) {
        throw InputError(reader.source(), fmt::format("{}[{}]", reader.place("capacity_factor"), i),
                         fmt::format("{}, got {}", kFactorRange, factor));
      }
    }
    spec.capacity_factor = spec.layer_factors.front();
  } else {
    spec.capacity_factor = reader.positive_number("capacity_factor", 1.0);
    if (spec.capacity_factor > kMaxCapacityFactor) reader.fail("capacity_factor", kFactorRange);
  }
  const auto policy = reader.choice("policy", {"dropless", "drop", "reroute"}, "dropless");
  spec.policy = policy == "drop"      ? CapacityPolicy::drop
                : policy == "reroute" ? CapacityPolicy::reroute
                                      : CapacityPolicy::dropless;
  spec.scope = reader.choice("scope", {"per_expert", "per_rank"}, "per_expert") == "per_rank"
                   ? CapacityScope::per_rank
                   : CapacityScope::per_expert;
  reader.finish();
  return spec;
}

const char* capacity_policy_name(CapacityPolicy policy) {
  switch (policy) {
    case CapacityPolicy::drop:
      return "drop";
    case CapacityPolicy::reroute:
      return "reroute";
    case CapacityPolicy::dropless:
      return "dropless";
  }
  return "dropless";
}

nlohmann::json to_json(const CapacitySpec& spec) {
  return {{"capacity_factor", spec.layer_factors.empty() ? nlohmann::json(spec.capacity_factor)
                                                         : nlohmann::json(spec.layer_factors)},
          {"policy", capacity_policy_name(spec.policy)},
          {"scope", spec.scope == CapacityScope::per_rank ? "per_rank" : "per_expert"}};
}

void check_capacity_layers(const CapacitySpec& spec, int moe_layers, const std::string& source) {
  if (spec.layer_factors.empty() || static_cast<int>(spec.layer_factors.size()) == moe_layers) return;
  throw InputError(source, "capacity.capacity_factor",
                   fmt::format("expected one factor per MoE layer ({} of them), got {}", moe_layers,
                               spec.layer_factors.size()));
}

std::int64_t expert_capacity(double capacity_factor, std::int64_t tokens, int top_k, int experts) {
  return ceil_exact(capacity_factor * static_cast<double>(tokens * top_k) / experts);
}

std::int64_t rank_capacity(double capacity_factor, std::int64_t tokens, int top_k, int experts,
                           int experts_per_rank) {
  return ceil_exact(capacity_factor * static_cast<double>(tokens * top_k) * experts_per_rank / experts);
}

}  // namespace moesim
