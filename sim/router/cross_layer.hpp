#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "sim/common/rng.hpp"
#include "sim/router/router_spec.hpp"

namespace moesim {

// Cross-layer routing correlation: the pieces the router links consecutive MoE layers with
// (router.hpp describes the model and the two sampling paths).

// Measured transition counts of one model and selection, pooled over the chosen domains, for each
// recorded layer pair (ascending).
struct RecordedTransitions {
  std::vector<std::pair<int, int>> pairs;         // (layer_from, layer_to)
  std::vector<std::vector<std::int64_t>> counts;  // counts[i][expert_from * experts + expert_to]
};

// Reads a crosslayer_counts CSV (header model,domain,selection,layer_from,layer_to,expert_from,
// expert_to,count; pairs absent from it count 0). InputError naming the file, the line and the field
// for malformed rows (field count, non-integer, negative, NaN, huge, layer_to not after layer_from,
// duplicate rows); naming the file and the field for an unknown model or domain, a domain that lacks
// a layer pair another chosen domain has, a pair without counts, or when the model's expert count in
// the file differs from `experts`.
RecordedTransitions read_crosslayer_counts(const EmpiricalSource& source, int experts);

// The recorded pair (an index into `pairs`) that serves the simulated pair layer -> layer + 1.
// Assumption (moesim's own): the pair whose layer_from is the deepest at or below the simulated
// layer's relative depth (layer / (moe_layers - 1) against layer_from / the deepest recorded
// layer_to), the first pair above all. The OLMoE file records 0->7 and 7->15 only, so OLMoE pairs
// 0->1 .. 6->7 use 0->7 and 7->8 .. 14->15 use 7->15; Mixtral's (32 layers) 0->1 .. 14->15 use 0->7.
// A dependence measured 7 layers apart understates the one between consecutive layers.
int recorded_pair_for(int layer, int moe_layers, std::span<const std::pair<int, int>> pairs);

// A row-stochastic matrix stored by rows, zero entries left out: row a holds the distribution of the
// expert at layer l + 1 that follows expert a at layer l.
struct TransitionMatrix {
  std::vector<std::int32_t> row_start;  // experts + 1 offsets into column and probability
  std::vector<std::int32_t> column;
  std::vector<double> probability;
  // Where balancing could not meet the popularity with the rows' own successors (too few of
  // them), each row is kept with weight `kept` and the rest goes to `remainder`, a distribution
  // shared by all rows (empty when kept is 1).
  double kept = 1.0;
  std::vector<double> remainder;

  int rows() const { return static_cast<int>(row_start.size()) - 1; }
  std::span<const std::int32_t> columns(int row) const {
    return {column.data() + row_start[row], static_cast<std::size_t>(row_start[row + 1] - row_start[row])};
  }
  std::span<const double> probabilities(int row) const {
    return {probability.data() + row_start[row],
            static_cast<std::size_t>(row_start[row + 1] - row_start[row])};
  }
};

// The measured pattern of each consecutive MoE layer pair (moe_layers - 1): the recorded pair's
// counts (recorded_pair_for), row-normalised; an expert with no counts as layer_from has an empty
// row. `spec` must be fitted. InputError when the file does not fit (read_crosslayer_counts).
std::vector<TransitionMatrix> transition_patterns(const CorrelationSpec& spec, int moe_layers, int experts);

// A synthetic pattern: each expert's `successors` experts at layer l + 1 are distinct draws weighted
// by `selection_to` (so a hot expert follows many experts: a matrix of uniform random successors
// could not give it its popularity), each weighing its popularity. Fewer when fewer experts have
// popularity.
TransitionMatrix synthetic_pattern(Rng& rng, int successors, std::span<const double> selection_to);

// The transition matrix of a layer pair for a class: `pattern` scaled (Sinkhorn's alternating row and
// column scaling, up to 1000 rounds or 1e-12) so that rows stay distributions and, weighted by
// `share_from` (layer l's expected assignment shares), they average to `selection_to` (layer l + 1's
// first-choice distribution): correlation moves a token's choices towards its predecessors'
// successors but leaves each layer's expected popularity as its own source says.
// Assumption (moesim's own): a measured matrix keeps its dependence but not its marginals (they are
// the measured layers', not the simulated ones'); a synthetic row ends up weighting its successors
// by their popularity. Empty rows, and rows whose successors all have no popularity, become
// `selection_to` itself (no dependence). Where the pattern's support cannot meet the popularity
// (Sinkhorn does not converge), every row is blended with one shared remainder, with the largest
// weight on the rows that leaves the average exact (TransitionMatrix::kept).
TransitionMatrix balance_transition(const TransitionMatrix& pattern, std::span<const double> share_from,
                                    std::span<const double> selection_to);

// The share-weighted mean over rows of each row's largest probability: how likely a token's most
// likely successor is (chance: 1 / experts).
double mean_top_successor(const TransitionMatrix& matrix, std::span<const double> share_from);

// Approximate successive-sampling inclusion probabilities (inclusion.hpp) in O(experts) per call:
// Rosen's order-sampling approximation pi_e = 1 - exp(-q_e t), t solved so that sum pi = top_k
// (Newton from `time`, which receives the solution), times `correction` per expert (the exact over
// the approximate inclusion of a reference distribution), renormalised to top_k and capped at 1.
// `selection` needs at least top_k positive entries.
void approximate_inclusion(std::span<const double> selection, int top_k, std::span<const double> correction,
                           double& time, std::span<double> inclusion);

// Per-expert counts of `tokens` tokens with per-call inclusion probabilities (sum top_k, each in
// [0, 1]): sum == tokens * top_k, each count in [0, tokens]. Up to 32 experts by the grouped chain
// (router.hpp); above, each count is drawn from Binomial(tokens, pi_e) and the sum is corrected as
// CountSampler does (step 2 and 3, without its variance inflation: each count keeps
// (1 - w_e) of its binomial variance, w_e being its share of the total, ~1 / experts).
// Cost O(experts) binomial draws; allocates only on its first call for a size.
class InclusionCountSampler {
 public:
  void sample(Rng& rng, std::int64_t tokens, int top_k, std::span<const double> inclusion,
              std::span<std::int32_t> counts);

 private:
  std::vector<int> order_;
  std::vector<double> mass_from_;
  std::vector<std::int64_t> choices_left_;
};

}  // namespace moesim
