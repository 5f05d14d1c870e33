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

constexpr double kDirichletFloor = 1e-12;

// Which expert holds each popularity rank in a layer: a uniformly random permutation
// (Fisher-Yates) of 0 .. experts-1, so hot experts differ from layer to layer.
void shuffle_experts(Rng& rng, std::vector<int>& holder) {
  std::iota(holder.begin(), holder.end(), 0);
  for (int i = static_cast<int>(holder.size()) - 1; i > 0; --i)
    std::swap(holder[i], holder[rng.below(static_cast<std::uint64_t>(i) + 1)]);
}

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
    shuffle_experts(rng, holder);
    auto probabilities = table.layer(layer);
    for (int rank = 0; rank < experts; ++rank)
      probabilities[holder[rank]] = ranked[rank];
  }
}

// Assumption (all constants below, moesim's own fit): the DeepSeek-V3 preset was tuned by sampling it
// through Router and MoeLayerEvaluator at EP32, 8192 tokens per layer-step, contiguous placement, to the
// DeepSeek-R1 EP32 statistics of REFERENCE.md §3 (per-rank imbalance 1.564 averaged, per layer 0.46 to
// 2.46, layers 3-5 about 0.5; per-slot imbalance 10.95). A hot expert over a nearly flat tail keeps a
// layer's imbalance set by its profile rather than by which experts happen to share a rank.
constexpr double kDeepSeekTailExponent = 0.2;
constexpr double kDeepSeekEarlyHotShare = 0.02;    // per-rank imbalance about 0.5
constexpr double kDeepSeekPlateauHotShare = 0.07;  // about 1.6
constexpr double kDeepSeekPeakHotShare = 0.125;    // about 2.46
// The hot share ramps from early to plateau over this fraction of the MoE layers' depth.
constexpr double kDeepSeekRampDepth = 0.25;
// Layers 36 and 58 of DeepSeek's 61 (the first 3 dense), as relative depths among its 58 MoE layers:
// the hot layers of the translation data set (REFERENCE.md §3).
constexpr double kDeepSeekPeakDepths[] = {33.0 / 57.0, 55.0 / 57.0};

double deepseek_hot_share(int layer, int layers) {
  const double depth = layers > 1 ? static_cast<double>(layer) / (layers - 1) : 0.0;
  for (const double peak : kDeepSeekPeakDepths) {
    if (static_cast<int>(std::lround(peak * (layers - 1))) == layer) return kDeepSeekPeakHotShare;
  }
  return kDeepSeekEarlyHotShare +
         (kDeepSeekPlateauHotShare - kDeepSeekEarlyHotShare) * std::min(1.0, depth / kDeepSeekRampDepth);
}

void fill_deepseek_v3(PopularityTable& table, std::uint64_t seed) {
  const int experts = table.experts();
  std::vector<double> tail(experts, 0.0);
  for (int rank = 1; rank < experts; ++rank)
    tail[rank] = std::pow(rank + 1.0, -kDeepSeekTailExponent);
  const double tail_total = std::accumulate(tail.begin(), tail.end(), 0.0);
  Rng rng = make_rng(seed, RngStream::routing, 1);
  std::vector<int> holder(experts);
  for (int layer = 0; layer < table.layers(); ++layer) {
    shuffle_experts(rng, holder);
    const double hot = experts > 1 ? deepseek_hot_share(layer, table.layers()) : 1.0;
    auto probabilities = table.layer(layer);
    probabilities[holder[0]] = hot;
    for (int rank = 1; rank < experts; ++rank)
      probabilities[holder[rank]] = (1.0 - hot) * tail[rank] / tail_total;
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

void draw_dirichlet(Rng& rng, std::span<const double> alpha, std::span<double> out) {
  double total = 0;
  for (std::size_t e = 0; e < alpha.size(); ++e) {
    out[e] = rng.gamma(alpha[e]);
    total += out[e];
  }
  // Assumption (numerical, moesim's own): a probability below 1e-12 of the largest is raised to it,
  // so that tiny shape parameters (gamma draws that underflow to 0) still leave every expert
  // reachable and the successive-sampling tables finite.
  const double largest = *std::max_element(out.begin(), out.end());
  if (!(total > 0)) {
    std::fill(out.begin(), out.end(), 1.0 / static_cast<double>(out.size()));
    return;
  }
  total = 0;
  for (double& value : out) {
    value = std::max(value, largest * kDirichletFloor);
    total += value;
  }
  for (double& value : out)
    value /= total;
}

PopularityTable build_popularity(const PopularitySpec& spec, int moe_layers, int experts, int top_k,
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
    case PopularityKind::preset:
      fill_deepseek_v3(table, seed);
      break;
    case PopularityKind::dirichlet: {
      Rng rng = make_rng(seed, RngStream::routing, 1);
      const std::vector<double> alpha(experts, spec.dirichlet_alpha);
      for (int layer = 0; layer < moe_layers; ++layer)
        draw_dirichlet(rng, alpha, table.layer(layer));
      break;
    }
  }
  return table;
}

}  // namespace moesim
