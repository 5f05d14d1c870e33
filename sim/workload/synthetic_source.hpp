#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "sim/common/rng.hpp"
#include "sim/workload/request.hpp"
#include "sim/workload/workload.hpp"

namespace moesim {

// Draws token counts from a LengthDistribution; an empirical one is loaded once from its trace
// as a table of distinct values and cumulative counts (memory grows with distinct values only).
class LengthSampler {
 public:
  // `column_is_input` picks the trace column an empirical distribution takes.
  LengthSampler(const LengthDistribution& distribution, bool column_is_input);
  std::int32_t sample(Rng& rng) const;

 private:
  LengthDistribution distribution_;
  double log_mean_ = 0.0;  // lognormal: mean of log
  std::vector<std::int32_t> values_;
  std::vector<std::uint64_t> cumulative_counts_;
};

// Open-loop synthetic arrivals: a Poisson process or a Gamma renewal process of a given rate and
// inter-arrival CV, bounded by a request count and/or a duration.
class SyntheticSource final : public RequestSource {
 public:
  SyntheticSource(const SyntheticSpec& spec, const WorkloadSpec& limits, std::uint64_t seed);

  std::optional<Request> next() override;
  bool exhausted() const override { return !pending_; }

 private:
  void advance();
  double gap_seconds();

  SyntheticSpec spec_;
  std::int32_t max_input_tokens_, max_output_tokens_, traffic_class_;
  LengthSampler input_, output_;
  Rng arrival_rng_, input_rng_, output_rng_;
  double gamma_shape_;
  double clock_s_ = 0.0;
  std::uint64_t emitted_ = 0;
  std::optional<Request> pending_;
};

}  // namespace moesim
