#include "sim/network/network_params.hpp"

#include <fmt/format.h>

namespace moesim {

namespace {

constexpr double kMaxOverheadUs = 1'000'000;

double efficiency(const JsonReader& reader, std::string_view key, double fallback) {
  const double value = reader.positive_number(key, fallback);
  if (value > 1) reader.fail(key, fmt::format("expected an efficiency in (0, 1], got {}", value));
  return value;
}

double overhead(const JsonReader& reader, std::string_view key, double fallback) {
  const double value = reader.non_negative_number(key, fallback);
  if (value > kMaxOverheadUs)
    reader.fail(key, fmt::format("expected at most {} us, got {}", kMaxOverheadUs, value));
  return value;
}

}  // namespace

NetworkParams parse_network_params(const JsonReader& reader) {
  NetworkParams params;
  // One backend today; the key exists so a finer model can be chosen by name without a schema change.
  reader.choice("backend", {"analytical"}, "analytical");
  params.ep_transport =
      reader.choice("ep_transport", {"high_throughput", "low_latency"}, "high_throughput") == "low_latency"
          ? EpTransport::low_latency
          : EpTransport::high_throughput;
  params.scale_up_efficiency = efficiency(reader, "scale_up_efficiency", params.scale_up_efficiency);
  params.scale_out_efficiency = efficiency(reader, "scale_out_efficiency", params.scale_out_efficiency);
  params.launch_overhead_us = overhead(reader, "launch_overhead_us", params.launch_overhead_us);
  params.per_peer_overhead_us = overhead(reader, "per_peer_overhead_us", params.per_peer_overhead_us);
  params.low_latency_over_nvlink = reader.boolean("low_latency_over_nvlink", params.low_latency_over_nvlink);
  reader.finish();
  return params;
}

nlohmann::json to_json(const NetworkParams& params) {
  return {
      {"backend", "analytical"},
      {"ep_transport", params.ep_transport == EpTransport::low_latency ? "low_latency" : "high_throughput"},
      {"scale_up_efficiency", params.scale_up_efficiency},
      {"scale_out_efficiency", params.scale_out_efficiency},
      {"launch_overhead_us", params.launch_overhead_us},
      {"per_peer_overhead_us", params.per_peer_overhead_us},
      {"low_latency_over_nvlink", params.low_latency_over_nvlink}};
}

}  // namespace moesim
