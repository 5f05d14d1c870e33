#include "sim/moe/capacity.hpp"

#include <cmath>

namespace moesim {

namespace {

constexpr double kMaxCapacityFactor = 1000.0;

std::int64_t ceil_exact(double value) {
  return static_cast<std::int64_t>(std::ceil(value * (1.0 - 1e-12)));
}

}  // namespace

CapacitySpec parse_capacity(const JsonReader& reader) {
  CapacitySpec spec;
  spec.capacity_factor = reader.positive_number("capacity_factor", 1.0);
  if (spec.capacity_factor > kMaxCapacityFactor) {
    reader.fail("capacity_factor", "expected a positive number of at most 1000");
  }
  spec.policy = reader.choice("policy", {"dropless", "drop"}, "dropless") == "drop"
                    ? CapacityPolicy::drop
                    : CapacityPolicy::dropless;
  spec.scope = reader.choice("scope", {"per_expert", "per_rank"}, "per_expert") == "per_rank"
                   ? CapacityScope::per_rank
                   : CapacityScope::per_expert;
  reader.finish();
  return spec;
}

nlohmann::json to_json(const CapacitySpec& spec) {
  return {{"capacity_factor", spec.capacity_factor},
          {"policy", spec.policy == CapacityPolicy::drop ? "drop" : "dropless"},
          {"scope", spec.scope == CapacityScope::per_rank ? "per_rank" : "per_expert"}};
}

std::int64_t expert_capacity(const CapacitySpec& spec, std::int64_t tokens, int top_k, int experts) {
  return ceil_exact(spec.capacity_factor * static_cast<double>(tokens * top_k) / experts);
}

std::int64_t rank_capacity(const CapacitySpec& spec, std::int64_t tokens, int top_k, int experts,
                           int experts_per_rank) {
  return ceil_exact(spec.capacity_factor * static_cast<double>(tokens * top_k) * experts_per_rank / experts);
}

}  // namespace moesim
