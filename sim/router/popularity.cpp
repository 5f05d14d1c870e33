#include "sim/router/popularity.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/rng.hpp"
#include "sim/router/expert_counts.hpp"
#include "sim/router/inclusion.hpp"

namespace moesim {

PopularityTable::PopularityTable(int layers, int experts)
    : layers_(layers), experts_(experts), values_(std::size_t(layers) * experts, 0.0) {}

namespace {

void fill_zipf(PopularityTable& table, double exponent, std::uint64_t seed) {
  const int experts = table.experts();
  std::vector<double> ranked(experts);
  for (int rank = 0; rank < experts; ++rank)
    ranked[rank] = std::pow(rank + 1.0, -exponent);
  const double total = std::accumulate(ranked.begin(), ranked.end(), 0.0);
  for (double& value : ranked)
    value /= total;
  Rng rng = make_rng(seed, RngStream::routing, 1);
  std::vector<int> holder(experts);
  for (int layer = 0; layer < table.layers(); ++layer) {
    std::iota(holder.begin(), holder.end(), 0);
    for (int i = experts - 1; i > 0; --i)
      std::swap(holder[i], holder[rng.below(i + 1)]);
    auto probabilities = table.layer(layer);
    for (int rank = 0; rank < experts; ++rank)
      probabilities[holder[rank]] = ranked[rank];
  }
}

void fill_empirical(PopularityTable& table, const EmpiricalSource& source, int top_k) {
  const RecordedCounts recorded = read_expert_counts(source, table.experts());
  const std::string file = source.file.string();
  std::vector<std::vector<double>> selection_of_recorded;
  for (std::size_t i = 0; i < recorded.layers.size(); ++i) {
    const auto& counts = recorded.counts[i];
    const auto total = static_cast<double>(std::accumulate(counts.begin(), counts.end(), std::int64_t{0}));
    const auto with_counts =
        std::count_if(counts.begin(), counts.end(), [](std::int64_t c) { return c > 0; });
    if (with_counts < top_k) {
      throw InputError(file, fmt::format("layer {}", recorded.layers[i]),
                       fmt::format("only {} experts have counts, fewer than top_k = {}", with_counts, top_k));
    }
    std::vector<double> shares(counts.size());
    for (std::size_t e = 0; e < counts.size(); ++e)
      shares[e] = static_cast<double>(counts[e]) / total;
    if (source.selection == CountSelection::top1) {
      selection_of_recorded.push_back(std::move(shares));
      continue;
    }
    std::vector<double> inclusion(shares.size());
    for (std::size_t e = 0; e < shares.size(); ++e) {
      inclusion[e] = shares[e] * top_k;
      // Beyond 0.999 the selection probability that reaches it is numerically unbounded.
      if (inclusion[e] > 0.999) {
        throw InputError(
            file, fmt::format("layer {}, expert {}", recorded.layers[i], e),
            fmt::format("share {:.4f} of all assignments is too close to 1 / top_k = {:.4f}: a token "
                        "cannot pick one expert more than once",
                        shares[e], 1.0 / top_k));
      }
    }
    auto selection = selection_for_inclusion(inclusion, top_k);
    if (selection.empty()) {
      throw InputError(file, fmt::format("layer {}", recorded.layers[i]),
                       "no top-k routing reproduces these shares (some are too close to 1 / top_k)");
    }
    selection_of_recorded.push_back(std::move(selection));
  }
  for (int layer = 0; layer < table.layers(); ++layer) {
    const auto& selection = selection_of_recorded[recorded_layer_for(layer, table.layers(), recorded.layers)];
    std::copy(selection.begin(), selection.end(), table.layer(layer).begin());
  }
}

}  // namespace

PopularityTable build_popularity(const RouterSpec& spec, int moe_layers, int experts, int top_k,
                                 std::uint64_t seed) {
  if (moe_layers < 1 || experts < 1 || top_k < 1 || top_k > experts) {
    throw InternalError(fmt::format("build_popularity: invalid shape ({} MoE layers, {} experts, top_k {})",
                                    moe_layers, experts, top_k));
  }
  PopularityTable table(moe_layers, experts);
  switch (spec.kind) {
    case PopularityKind::uniform:
      for (int layer = 0; layer < moe_layers; ++layer)
        std::fill(table.layer(layer).begin(), table.layer(layer).end(), 1.0 / experts);
      break;
    case PopularityKind::zipf:
      fill_zipf(table, spec.zipf_exponent, seed);
      break;
    case PopularityKind::empirical:
      fill_empirical(table, spec.empirical, top_k);
      break;
  }
  return table;
}

}  // namespace moesim
