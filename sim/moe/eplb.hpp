#pragma once

#include <span>
#include <vector>

namespace moesim {

// Redundant expert placement in the manner of DeepSeek's EPLB (github.com/deepseek-ai/EPLB,
// rebalance_experts), for one MoE layer.
//
// Global policy (hierarchical = false, or a single node):
//  1. Replicate: every expert starts with one slot; each of the `redundant` extra slots goes to the
//     expert with the highest expected load per slot (ties to the lowest expert id).
//  2. Pack: the experts + redundant slots, each weighing its expert's load / its replica count, are
//     taken from the heaviest to the lightest (ties to the lowest expert id) and each goes to the
//     least loaded rank that still has room (ties to the lowest rank); every rank gets the same
//     number of slots (balanced packing).
// Hierarchical policy (EPLB's node-first variant, for a cluster of several nodes):
//  1. The experts form groups of consecutive ids; whole groups are packed onto nodes by the same
//     balanced packing on their summed loads, so that every node gets as many groups.
//  2. Inside each node its experts are replicated to (experts + redundant) / nodes slots as above.
//  3. Those slots are packed onto the node's ranks as above.
// Assumption: the groups are experts / ranks consecutive experts each (one EP rank's worth), as the
// model files do not record the router's expert groups (moesim's own guess; DeepSeek-V3 routes within
// 8 groups of 32). When the groups do not split evenly over the nodes, the global policy is used, as
// EPLB itself does.
//
// Returns the expert of each slot, slots numbered rank by rank and sorted by expert id inside a rank.
// `ranks_per_node` <= 0 or >= ranks means a single node. The caller checks that (experts + redundant)
// is a multiple of ranks and redundant >= 0 (InternalError otherwise).
std::vector<int> eplb_slot_experts(std::span<const double> expert_load, int ranks, int redundant,
                                   int ranks_per_node, bool hierarchical);

}  // namespace moesim
