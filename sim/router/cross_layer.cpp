#include "sim/router/cross_layer.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <string_view>
#include <tuple>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/router/binomial.hpp"
#include "sim/router/csv_rows.hpp"

namespace moesim {

namespace {

constexpr std::string_view kHeader = "model,domain,selection,layer_from,layer_to,expert_from,expert_to,count";
constexpr int kFields = 8;
constexpr std::string_view kFieldNames[kFields] = {"model",    "domain",      "selection", "layer_from",
                                                   "layer_to", "expert_from", "expert_to", "count"};
// Counts up to 2^53 stay exact as doubles when rows are normalised.
constexpr std::int64_t kMaxCount = std::int64_t{1} << 53;
constexpr std::int64_t kMaxIndex = 1'000'000;
constexpr int kBalanceRounds = 1000;
constexpr double kBalanceTolerance = 1e-12;
constexpr int kGroupedChainMaxExperts = 32;  // as in router.cpp

[[noreturn]] void fail_at(const std::string& file, std::size_t line, int field, std::string_view expected) {
  throw InputError(file, fmt::format("line {}, field {}", line, kFieldNames[field]), expected);
}

std::int64_t parse_integer(const std::string& file, std::size_t line, int field, std::string_view text,
                           std::int64_t limit) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty() || value < 0 ||
      value > limit) {
    fail_at(file, line, field,
            fmt::format("expected an integer in [0, {}], got \"{}\"", limit, text.substr(0, 40)));
  }
  return value;
}

struct Row {
  int pair_from, pair_to, from, to;
  std::int64_t count;
};

}  // namespace

RecordedTransitions read_crosslayer_counts(const EmpiricalSource& source, int experts) {
  const std::string file = source.file.string();
  const std::string text = read_text_file(source.file);
  const std::string_view selection = source.selection == CountSelection::top1 ? "top1" : "topk";

  std::set<std::string> models, domains_of_model;
  // Per chosen domain: its layer pairs, and its rows to catch duplicates.
  std::vector<std::set<std::pair<int, int>>> pairs_of_domain(source.domains.size());
  std::set<std::tuple<std::size_t, int, int, int, int>> seen;
  std::vector<Row> rows;
  int largest_expert = -1;

  std::size_t line_number = 0;
  std::size_t at = 0;
  std::string_view line;
  while (next_csv_line(text, at, line)) {
    ++line_number;
    if (line_number == 1) {
      if (line != kHeader) {
        throw InputError(file, "line 1, field header", fmt::format("expected the header \"{}\"", kHeader));
      }
      continue;
    }
    if (line.empty()) {
      if (at >= text.size()) break;
      fail_at(file, line_number, 0, "expected a row, got an empty line");
    }
    std::string_view fields[kFields];
    const int count = split_csv_fields(line, fields);
    if (count != kFields) {
      fail_at(file, line_number, count < kFields ? count : kFields - 1,
              fmt::format("expected {} comma-separated fields, got {} (truncated or malformed row)", kFields,
                          count));
    }
    models.emplace(fields[0]);
    if (fields[0] != source.model) continue;
    if (fields[2] != "topk" && fields[2] != "top1") {
      fail_at(file, line_number, 2, fmt::format("expected topk or top1, got \"{}\"", fields[2]));
    }
    Row row{};
    row.pair_from = static_cast<int>(parse_integer(file, line_number, 3, fields[3], kMaxIndex));
    row.pair_to = static_cast<int>(parse_integer(file, line_number, 4, fields[4], kMaxIndex));
    row.from = static_cast<int>(parse_integer(file, line_number, 5, fields[5], kMaxIndex));
    row.to = static_cast<int>(parse_integer(file, line_number, 6, fields[6], kMaxIndex));
    row.count = parse_integer(file, line_number, 7, fields[7], kMaxCount);
    if (row.pair_to <= row.pair_from) {
      fail_at(file, line_number, 4,
              fmt::format("expected a layer after layer_from {}, got {}", row.pair_from, row.pair_to));
    }
    largest_expert = std::max({largest_expert, row.from, row.to});
    if (fields[2] != selection) continue;
    domains_of_model.emplace(fields[1]);
    const auto domain = static_cast<std::size_t>(
        std::find(source.domains.begin(), source.domains.end(), fields[1]) - source.domains.begin());
    if (domain == source.domains.size()) continue;
    if (!seen.emplace(domain, row.pair_from, row.pair_to, row.from, row.to).second) {
      fail_at(file, line_number, 6,
              fmt::format("duplicate row for domain {}, layers {}->{}, experts {}->{}", fields[1],
                          row.pair_from, row.pair_to, row.from, row.to));
    }
    pairs_of_domain[domain].emplace(row.pair_from, row.pair_to);
    rows.push_back(row);
  }
  if (line_number == 0) {
    throw InputError(file, "", "file is empty, expected the header and rows of cross-layer counts");
  }
  if (!models.contains(source.model)) {
    throw InputError(file, "model",
                     fmt::format("model \"{}\" not found (models in the file: {})", source.model,
                                 fmt::join(models, ", ")));
  }
  for (std::size_t d = 0; d < source.domains.size(); ++d) {
    if (pairs_of_domain[d].empty()) {
      throw InputError(
          file, "domains",
          fmt::format("no {} counts for model \"{}\" and domain \"{}\" (domains with {} counts: {})",
                      selection, source.model, source.domains[d], selection,
                      fmt::join(domains_of_model, ", ")));
    }
    if (pairs_of_domain[d] != pairs_of_domain[0]) {
      const auto& lacking = pairs_of_domain[d].size() < pairs_of_domain[0].size() ? d : 0;
      const auto& other = lacking == 0 ? d : 0;
      std::vector<std::string> missing;
      for (const auto& [from, to] : pairs_of_domain[other]) {
        if (!pairs_of_domain[lacking].contains({from, to}))
          missing.push_back(fmt::format("{}->{}", from, to));
      }
      throw InputError(file, "layer_from",
                       fmt::format("domain \"{}\" of model \"{}\" has no counts for layers {}, which domain "
                                   "\"{}\" has",
                                   source.domains[lacking], source.model, fmt::join(missing, ", "),
                                   source.domains[other]));
    }
  }
  if (largest_expert + 1 != experts) {
    throw InputError(file, "model",
                     fmt::format("model \"{}\" has {} experts in the file but the simulated model has {}",
                                 source.model, largest_expert + 1, experts));
  }

  RecordedTransitions recorded;
  recorded.pairs.assign(pairs_of_domain[0].begin(), pairs_of_domain[0].end());
  recorded.counts.assign(recorded.pairs.size(), std::vector<std::int64_t>(std::size_t(experts) * experts, 0));
  for (const Row& row : rows) {
    const auto pair = static_cast<std::size_t>(std::lower_bound(recorded.pairs.begin(), recorded.pairs.end(),
                                                                std::pair{row.pair_from, row.pair_to}) -
                                               recorded.pairs.begin());
    recorded.counts[pair][std::size_t(row.from) * experts + row.to] += row.count;
  }
  for (std::size_t i = 0; i < recorded.pairs.size(); ++i) {
    const auto& counts = recorded.counts[i];
    if (std::all_of(counts.begin(), counts.end(), [](std::int64_t c) { return c == 0; })) {
      throw InputError(file, "count",
                       fmt::format("layers {}->{} of model \"{}\" have no counts", recorded.pairs[i].first,
                                   recorded.pairs[i].second, source.model));
    }
  }
  return recorded;
}

int recorded_pair_for(int layer, int moe_layers, std::span<const std::pair<int, int>> pairs) {
  const double depth = moe_layers > 1 ? static_cast<double>(layer) / (moe_layers - 1) : 0.0;
  int deepest = 1;
  for (const auto& pair : pairs)
    deepest = std::max(deepest, pair.second);
  int best = 0;
  for (int i = 1; i < static_cast<int>(pairs.size()); ++i) {
    if (static_cast<double>(pairs[i].first) / deepest <= depth) best = i;
  }
  return best;
}

std::vector<TransitionMatrix> transition_patterns(const CorrelationSpec& spec, int moe_layers, int experts) {
  std::vector<TransitionMatrix> patterns;
  if (spec.kind == CorrelationKind::fitted) {
    const RecordedTransitions recorded = read_crosslayer_counts(spec.counts, experts);
    std::vector<TransitionMatrix> fitted;
    for (const auto& counts : recorded.counts) {
      TransitionMatrix matrix;
      matrix.row_start.push_back(0);
      for (int from = 0; from < experts; ++from) {
        const auto row = counts.begin() + std::ptrdiff_t(from) * experts;
        const auto total = static_cast<double>(std::accumulate(row, row + experts, std::int64_t{0}));
        for (int to = 0; to < experts; ++to) {
          if (row[to] == 0) continue;
          matrix.column.push_back(to);
          matrix.probability.push_back(static_cast<double>(row[to]) / total);
        }
        matrix.row_start.push_back(static_cast<std::int32_t>(matrix.column.size()));
      }
      fitted.push_back(std::move(matrix));
    }
    for (int layer = 0; layer + 1 < moe_layers; ++layer)
      patterns.push_back(fitted[recorded_pair_for(layer, moe_layers, recorded.pairs)]);
    return patterns;
  }
  throw InternalError("transition_patterns: synthetic patterns come from synthetic_pattern");
}

TransitionMatrix synthetic_pattern(Rng& rng, int successors, std::span<const double> selection_to) {
  const auto experts = static_cast<int>(selection_to.size());
  std::vector<std::pair<double, int>> clocks;
  TransitionMatrix matrix;
  matrix.row_start.push_back(0);
  for (int from = 0; from < experts; ++from) {
    // Successive sampling without replacement: the experts whose exponential clocks of rate p ring first.
    clocks.clear();
    for (int to = 0; to < experts; ++to) {
      const double clock = rng.exponential(1.0);
      if (selection_to[to] > 0) clocks.emplace_back(clock / selection_to[to], to);
    }
    const auto taken = std::min<std::ptrdiff_t>(successors, static_cast<std::ptrdiff_t>(clocks.size()));
    std::nth_element(clocks.begin(), clocks.begin() + (taken - 1), clocks.end());
    std::sort(clocks.begin(), clocks.begin() + taken,
              [](const auto& a, const auto& b) { return a.second < b.second; });
    for (std::ptrdiff_t j = 0; j < taken; ++j) {
      matrix.column.push_back(clocks[j].second);
      matrix.probability.push_back(selection_to[clocks[j].second]);
    }
    matrix.row_start.push_back(static_cast<std::int32_t>(matrix.column.size()));
  }
  return matrix;
}

TransitionMatrix balance_transition(const TransitionMatrix& pattern, std::span<const double> share_from,
                                    std::span<const double> selection_to) {
  const int experts = pattern.rows();
  TransitionMatrix matrix;
  matrix.row_start.push_back(0);
  for (int from = 0; from < experts; ++from) {
    const auto columns = pattern.columns(from);
    const auto probabilities = pattern.probabilities(from);
    double reachable = 0;
    for (const int to : columns)
      reachable += selection_to[to];
    for (std::size_t j = 0; j < columns.size() && reachable > 0; ++j) {
      if (selection_to[columns[j]] == 0) continue;
      matrix.column.push_back(columns[j]);
      matrix.probability.push_back(probabilities[j]);
    }
    if (reachable == 0) {
      for (int to = 0; to < experts; ++to) {
        if (selection_to[to] == 0) continue;
        matrix.column.push_back(to);
        matrix.probability.push_back(selection_to[to]);
      }
    }
    matrix.row_start.push_back(static_cast<std::int32_t>(matrix.column.size()));
  }
  // Rows of experts with no share never weigh in the average: they are only normalised.
  auto& value = matrix.probability;
  std::vector<double> column_total(experts);
  const auto scale_rows = [&] {
    for (int from = 0; from < experts; ++from) {
      double total = 0;
      for (int j = matrix.row_start[from]; j < matrix.row_start[from + 1]; ++j)
        total += value[j];
      const double target = share_from[from] > 0 ? share_from[from] : 1.0;
      for (int j = matrix.row_start[from]; j < matrix.row_start[from + 1]; ++j)
        value[j] *= target / total;
    }
  };
  scale_rows();
  for (int round = 0; round < kBalanceRounds; ++round) {
    std::fill(column_total.begin(), column_total.end(), 0.0);
    for (int from = 0; from < experts; ++from) {
      if (share_from[from] == 0) continue;
      for (int j = matrix.row_start[from]; j < matrix.row_start[from + 1]; ++j)
        column_total[matrix.column[j]] += value[j];
    }
    double error = 0;
    for (int to = 0; to < experts; ++to)
      error = std::max(error, std::abs(column_total[to] - selection_to[to]));
    if (error < kBalanceTolerance) break;
    for (int from = 0; from < experts; ++from) {
      if (share_from[from] == 0) continue;
      for (int j = matrix.row_start[from]; j < matrix.row_start[from + 1]; ++j) {
        const double total = column_total[matrix.column[j]];
        if (total > 0) value[j] *= selection_to[matrix.column[j]] / total;
      }
    }
    scale_rows();
  }
  std::fill(column_total.begin(), column_total.end(), 0.0);
  for (int from = 0; from < experts; ++from) {
    if (share_from[from] == 0) continue;
    for (int j = matrix.row_start[from]; j < matrix.row_start[from + 1]; ++j) {
      column_total[matrix.column[j]] += value[j];
      value[j] /= share_from[from];
    }
  }
  double kept = 1.0;
  for (int to = 0; to < experts; ++to) {
    if (column_total[to] > 0) kept = std::min(kept, selection_to[to] / column_total[to]);
  }
  if (kept < 1.0 - 1e-9) {
    matrix.kept = kept;
    matrix.remainder.resize(experts);
    double total = 0;
    for (int to = 0; to < experts; ++to) {
      matrix.remainder[to] = std::max(0.0, selection_to[to] - kept * column_total[to]);
      total += matrix.remainder[to];
    }
    for (double& r : matrix.remainder)
      r /= total;
  }
  return matrix;
}

double mean_top_successor(const TransitionMatrix& matrix, std::span<const double> share_from) {
  double weighted = 0, total = 0;
  for (int from = 0; from < matrix.rows(); ++from) {
    const auto probabilities = matrix.probabilities(from);
    if (probabilities.empty()) continue;
    weighted += share_from[from] * *std::max_element(probabilities.begin(), probabilities.end());
    total += share_from[from];
  }
  return total > 0 ? weighted / total : 0.0;
}

void approximate_inclusion(std::span<const double> selection, int top_k, std::span<const double> correction,
                           double& time, std::span<double> inclusion) {
  const std::size_t experts = selection.size();
  double t = time > 0 ? time : static_cast<double>(top_k);
  // f(t) = sum (1 - exp(-q t)) - top_k is increasing and concave: Newton from below stays below
  // the root; from above it lands below it (or at t <= 0, which is halved back).
  for (int iteration = 0; iteration < 100; ++iteration) {
    double f = -top_k, slope = 0;
    for (std::size_t e = 0; e < experts; ++e) {
      const double stays = std::exp(-selection[e] * t);
      inclusion[e] = 1.0 - stays;
      f += inclusion[e];
      slope += selection[e] * stays;
    }
    if (std::abs(f) < 1e-10 * top_k || !(slope > 0)) break;
    const double next = t - f / slope;
    t = next > 0 ? next : 0.5 * t;
  }
  time = t;
  double total = 0;
  for (std::size_t e = 0; e < experts; ++e) {
    inclusion[e] *= correction[e];
    total += inclusion[e];
  }
  for (auto& pi : inclusion)
    pi *= top_k / total;
  // Capping at 1 moves the excess to the uncapped experts in proportion, until none is over.
  for (std::size_t pass = 0; pass < experts; ++pass) {
    double over = 0, below = 0;
    for (auto& pi : inclusion) {
      if (pi > 1.0) {
        over += pi - 1.0;
        pi = 1.0;
      } else if (pi < 1.0) {
        below += pi;
      }
    }
    if (over <= 0 || below <= 0) break;
    const double scale = 1.0 + over / below;
    for (auto& pi : inclusion) {
      if (pi < 1.0) pi *= scale;
    }
  }
}

void InclusionCountSampler::sample(Rng& rng, std::int64_t tokens, int top_k,
                                   std::span<const double> inclusion, std::span<std::int32_t> counts) {
  const auto experts = static_cast<int>(inclusion.size());
  if (experts <= kGroupedChainMaxExperts) {
    // The grouped chain of Router::sample_grouped, for this call's inclusion probabilities.
    order_.resize(experts);
    std::iota(order_.begin(), order_.end(), 0);
    std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) { return inclusion[a] > inclusion[b]; });
    mass_from_.assign(experts + 1, 0.0);
    for (int position = experts - 1; position >= 0; --position)
      mass_from_[position] = mass_from_[position + 1] + inclusion[order_[position]];
    choices_left_.assign(top_k + 1, 0);
    choices_left_[top_k] = tokens;
    for (int position = 0; position < experts; ++position) {
      const int expert = order_[position];
      const int experts_left = experts - position;
      const double mass = mass_from_[position];
      std::int64_t taken = 0;
      for (int left = 1; left <= top_k; ++left) {
        const std::int64_t group = choices_left_[left];
        if (group == 0) continue;
        double chance = 1.0;
        if (left < experts_left) chance = mass > 0 ? std::min(1.0, left * inclusion[expert] / mass) : 0.0;
        const std::int64_t moving = sample_binomial(rng, group, chance);
        choices_left_[left] -= moving;
        choices_left_[left - 1] += moving;
        taken += moving;
      }
      counts[expert] = static_cast<std::int32_t>(taken);
    }
    return;
  }
  const auto t = static_cast<double>(tokens);
  double total = 0;
  for (int e = 0; e < experts; ++e) {
    counts[e] = static_cast<std::int32_t>(sample_binomial(rng, tokens, inclusion[e]));
    total += counts[e];
  }
  const std::int64_t wanted = tokens * top_k;
  const double difference = static_cast<double>(wanted) - total;
  std::int64_t assigned = static_cast<std::int64_t>(total);
  if (difference != 0) {
    // Slots are added where tokens still have room, or removed where they sit, as in CountSampler.
    const bool adding = difference > 0;
    double weight_total = 0;
    for (int e = 0; e < experts; ++e)
      weight_total += adding ? (t - counts[e]) * inclusion[e] : counts[e] * (1.0 - inclusion[e]);
    if (weight_total > 0) {
      const double scale = difference / weight_total;
      double cumulative = rng.uniform();
      double taken = 0;
      assigned = 0;
      for (int e = 0; e < experts; ++e) {
        const double value = counts[e];
        const double weight = adding ? (t - value) * inclusion[e] : value * (1.0 - inclusion[e]);
        cumulative += value + scale * weight;
        const double reached = std::floor(cumulative);
        counts[e] = static_cast<std::int32_t>(std::clamp(reached - taken, 0.0, t));
        taken = reached;
        assigned += counts[e];
      }
    }
  }
  std::int64_t missing = wanted - assigned;
  const int step = missing > 0 ? 1 : -1;
  for (auto e = static_cast<int>(rng.below(static_cast<std::uint64_t>(experts))); missing != 0;
       e = (e + 1) % experts) {
    if (step > 0 ? counts[e] < tokens : counts[e] > 0) {
      counts[e] += step;
      missing -= step;
    }
  }
}

}  // namespace moesim
