#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sim/router/router_spec.hpp"

namespace moesim {

// Per-expert counts of one model and selection, pooled over the chosen domains, for each layer the
// file records (ascending).
struct RecordedCounts {
  std::vector<int> layers;
  std::vector<std::vector<std::int64_t>> counts;  // counts[i][expert] for layers[i]
};

// Reads an expert_counts CSV (header model,domain,selection,layer,expert,count). InputError naming
// the file, the line and the field for malformed rows (field count, non-integer, negative, NaN,
// duplicate rows); naming the file for an unknown model or domain, or when the model's expert count
// in the file differs from `experts`, or when a recorded layer lacks an expert.
RecordedCounts read_expert_counts(const EmpiricalSource& source, int experts);

// The recorded layer (an index into `recorded_layers`) that stands in for MoE layer `layer` of
// `moe_layers`.
// Assumption: a simulated layer behaves like the recorded layer nearest in relative depth
// (layer / (moe_layers - 1) against recorded / last recorded; ties to the shallower one). The OLMoE
// file records only layers 0, 7 and 15 of 16, so OLMoE layers 0-3 use layer 0, 4-11 layer 7 and 12-15
// layer 15 (moesim's own guess; data/routing/olmoe-mixtral/SOURCE.md).
int recorded_layer_for(int layer, int moe_layers, std::span<const int> recorded_layers);

}  // namespace moesim
