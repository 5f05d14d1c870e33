#include "tools/moesim/routing_trace_inspect.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/moe/layer_evaluator.hpp"
#include "sim/moe/placement.hpp"
#include "sim/router/recorded_routing.hpp"

namespace moesim::cli {

namespace {
// Tokens per rank of a replayed tokens-form step unless --tokens-per-rank says otherwise (the load
// REFERENCE.md §3 quotes imbalance at).
constexpr int kDefaultTokensPerRank = 256;
}  // namespace

void inspect_routing_trace(const std::filesystem::path& file, const RoutingTraceInspectOptions& options) {
  const RoutingTraceSummary summary = summarize_routing_trace(file);
  const RoutingTraceHeader& header = summary.header;
  if (options.ep < 1 || header.experts % options.ep != 0 || options.steps < 1 ||
      options.tokens_per_rank < 0) {
    throw InputError("routing inspect", "--ep",
                     fmt::format("an EP degree dividing the trace's {} experts, --steps >= 1 and "
                                 "--tokens-per-rank >= 0, got --ep {}",
                                 header.experts, options.ep));
  }
  const bool tokens_form = header.form == RoutingTraceForm::tokens;
  std::int64_t step_tokens = std::int64_t{options.tokens_per_rank} * options.ep;
  if (options.tokens_per_rank == 0) {
    step_tokens = tokens_form ? std::int64_t{kDefaultTokensPerRank} * options.ep
                              : std::max<std::int64_t>(1, std::llround(static_cast<double>(summary.tokens) /
                                                                       static_cast<double>(summary.steps)));
  }
  RecordedRouting routing(file, header.layers, header.experts, header.top_k);
  const ExpertPlacement placement(PlacementKind::contiguous, header.experts, options.ep);
  MoeLayerEvaluator evaluator(placement, CapacitySpec{}, header.experts, header.top_k);
  std::vector<double> expert_ratio(static_cast<std::size_t>(header.layers), 0.0);
  std::vector<double> rank_ratio(expert_ratio.size(), 0.0);
  std::vector<std::int32_t> counts(static_cast<std::size_t>(header.experts));
  for (int step = 0; step < options.steps; ++step) {
    for (int layer = 0; layer < header.layers; ++layer) {
      routing.sample_counts(layer, step_tokens, counts);
      const MoeLayerResult& result = evaluator.evaluate(step_tokens, counts);
      expert_ratio[static_cast<std::size_t>(layer)] += result.expert_imbalance() / options.steps;
      rank_ratio[static_cast<std::size_t>(layer)] += result.rank_imbalance() / options.steps;
    }
  }

  fmt::print("routing trace  {}\n", file.string());
  fmt::print("recorded       form={}, {} MoE layers, {} experts, top-{}; {} tokens in {} {}\n",
             tokens_form ? "tokens" : "counts", header.layers, header.experts, header.top_k, summary.tokens,
             summary.steps, tokens_form ? "token rows" : "steps");
  fmt::print("replayed       {} steps of {} tokens ({} per rank), EP{} contiguous{}\n", options.steps,
             step_tokens, static_cast<double>(step_tokens) / options.ep, options.ep,
             routing.wraps() > 0 ? fmt::format(", wrapped to the start {} times", routing.wraps()) : "");
  fmt::print("\n{:>9}  {:>13}  {:>15}  {:>13}\n", "MoE layer", "busiest/mean", "expert max/mean",
             "rank max/mean");
  fmt::print("{:>9}  {:>13}  {:>15}  {:>13}\n", "", "whole trace", "per step", "per step");
  double busiest_mean = 0, expert_mean = 0, rank_mean = 0;
  for (int layer = 0; layer < header.layers; ++layer) {
    const auto share = routing.popularity(layer);
    const double busiest = *std::max_element(share.begin(), share.end()) * header.experts;
    const auto l = static_cast<std::size_t>(layer);
    fmt::print("{:>9}  {:>13.2f}  {:>15.2f}  {:>13.3f}\n", layer, busiest, expert_ratio[l], rank_ratio[l]);
    busiest_mean += busiest / header.layers;
    expert_mean += expert_ratio[l] / header.layers;
    rank_mean += rank_ratio[l] / header.layers;
  }
  fmt::print("{:>9}  {:>13.2f}  {:>15.2f}  {:>13.3f}\n", "mean", busiest_mean, expert_mean, rank_mean);
  fmt::print("\nper-rank imbalance (max - mean) / mean, averaged over layers and steps: {:.3f}\n",
             rank_mean - 1);
}

}  // namespace moesim::cli
