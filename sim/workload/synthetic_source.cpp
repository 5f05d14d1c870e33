#include "sim/workload/synthetic_source.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "sim/workload/trace_reader.hpp"

namespace moesim {

LengthSampler::LengthSampler(const LengthDistribution& distribution, bool column_is_input)
    : distribution_(distribution) {
  using Kind = LengthDistribution::Kind;
  if (distribution.kind == Kind::lognormal) {
    log_mean_ = std::log(distribution.mean) - 0.5 * distribution.sigma * distribution.sigma;
  }
  if (distribution.kind != Kind::empirical) return;
  // Assumption: empirical prompt and output lengths are drawn independently, each from its own column;
  // the correlation between them in the trace is not kept (moesim's own guess; replay the trace itself to
  // keep it).
  std::unordered_map<std::int32_t, std::uint64_t> counts;
  const auto reader = make_trace_reader(*distribution.trace_file);
  TraceRow row;
  while (reader->read(row))
    ++counts[column_is_input ? row.input_tokens : row.output_tokens];
  std::vector<std::pair<std::int32_t, std::uint64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::uint64_t total = 0;
  for (const auto& [value, count] : sorted) {
    total += count;
    values_.push_back(value);
    cumulative_counts_.push_back(total);
  }
}

std::int32_t LengthSampler::sample(Rng& rng) const {
  using Kind = LengthDistribution::Kind;
  switch (distribution_.kind) {
    case Kind::fixed:
      return distribution_.tokens;
    case Kind::uniform:
      return distribution_.min + static_cast<std::int32_t>(rng.below(
                                     static_cast<std::uint64_t>(distribution_.max - distribution_.min) + 1));
    case Kind::lognormal: {
      const double drawn = std::exp(log_mean_ + distribution_.sigma * rng.normal());
      const double upper = distribution_.max > 0 ? distribution_.max : 2147483647.0;
      return static_cast<std::int32_t>(
          std::clamp(std::round(drawn), static_cast<double>(distribution_.min), upper));
    }
    case Kind::geometric: {
      // Number of Bernoulli(1/mean) trials up to the first success, by inversion: the
      // discrete analogue of an exponential, which makes M/M/1-like service times.
      if (distribution_.mean <= 1) return 1;
      const double trials =
          std::ceil(std::log(rng.uniform_positive()) / std::log1p(-1.0 / distribution_.mean));
      return static_cast<std::int32_t>(std::clamp(trials, 1.0, 2147483647.0));
    }
    case Kind::empirical: {
      const std::uint64_t rank = rng.below(cumulative_counts_.back());
      const auto at = std::upper_bound(cumulative_counts_.begin(), cumulative_counts_.end(), rank);
      return values_[static_cast<std::size_t>(at - cumulative_counts_.begin())];
    }
  }
  return distribution_.tokens;
}

SyntheticSource::SyntheticSource(const SyntheticSpec& spec, const WorkloadSpec& limits, std::uint64_t seed)
    : spec_(spec),
      max_input_tokens_(limits.max_input_tokens),
      max_output_tokens_(limits.max_output_tokens),
      traffic_class_(limits.traffic_class),
      input_(spec.input, true),
      output_(spec.output, false),
      arrival_rng_(make_rng(seed, RngStream::arrivals)),
      input_rng_(make_rng(seed, RngStream::lengths, 0)),
      output_rng_(make_rng(seed, RngStream::lengths, 1)),
      gamma_shape_(1.0 / (spec.cv * spec.cv)) {
  advance();
}

double SyntheticSource::gap_seconds() {
  if (spec_.arrivals == SyntheticSpec::Arrivals::poisson) return arrival_rng_.exponential(spec_.rate);
  // Gamma(k, 1 / (k rate)) has mean 1 / rate and CV 1 / sqrt(k).
  return arrival_rng_.gamma(gamma_shape_) / (gamma_shape_ * spec_.rate);
}

void SyntheticSource::advance() {
  pending_.reset();
  if (spec_.requests && emitted_ >= *spec_.requests) return;
  // Assumption: the process is observed from t = 0 without an arrival there, so the first request
  // comes one gap after the start (moesim's own guess; a stationary Poisson process behaves so).
  clock_s_ += gap_seconds();
  if (spec_.duration_s && clock_s_ >= *spec_.duration_s) return;
  Request request;
  request.id = emitted_++;
  request.arrival = seconds_to_ns(clock_s_);
  const std::int32_t input = input_.sample(input_rng_);
  const std::int32_t output = output_.sample(output_rng_);
  request.input_tokens = max_input_tokens_ > 0 ? std::min(input, max_input_tokens_) : input;
  request.output_tokens = max_output_tokens_ > 0 ? std::min(output, max_output_tokens_) : output;
  request.traffic_class = traffic_class_;
  pending_ = std::move(request);
}

std::optional<Request> SyntheticSource::next() {
  if (!pending_) return std::nullopt;
  std::optional<Request> result = std::move(pending_);
  advance();
  return result;
}

}  // namespace moesim
