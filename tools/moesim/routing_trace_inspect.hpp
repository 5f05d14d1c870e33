#pragma once

#include <cstdint>
#include <filesystem>

namespace moesim::cli {

struct RoutingTraceInspectOptions {
  int ep = 32;
  // Tokens per rank of each replayed step; 0: the trace's mean step (counts form) or 256 (tokens form).
  int tokens_per_rank = 0;
  int steps = 16;
};

// `moesim routing inspect TRACE`: the recorded shape and, per MoE layer, the busiest expert's share
// over the whole trace and the per-step expert and rank max/mean of its replay under contiguous EP.
void inspect_routing_trace(const std::filesystem::path& file, const RoutingTraceInspectOptions& options);

}  // namespace moesim::cli
