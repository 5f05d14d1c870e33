#include "sim/router/expert_counts.hpp"

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
#include "sim/router/csv_rows.hpp"

namespace moesim {

namespace {

constexpr std::string_view kHeader = "model,domain,selection,layer,expert,count";
constexpr std::string_view kFieldNames[] = {"model", "domain", "selection", "layer", "expert", "count"};
// Counts up to 2^53 stay exact as doubles when turned into shares.
constexpr std::int64_t kMaxCount = std::int64_t{1} << 53;

class CsvFile {
 public:
  explicit CsvFile(const std::filesystem::path& file) : name_(file.string()) {}

  [[noreturn]] void fail(std::size_t line, std::string_view field, std::string_view expected) const {
    throw InputError(name_, fmt::format("line {}, field {}", line, field), expected);
  }
  [[noreturn]] void fail(std::string_view expected) const { throw InputError(name_, "", expected); }

  std::int64_t integer(std::size_t line, int field, std::string_view text, std::int64_t limit) const {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty() || value < 0 ||
        value > limit) {
      fail(line, kFieldNames[field],
           fmt::format("expected an integer in [0, {}], got \"{}\"", limit, text.substr(0, 40)));
    }
    return value;
  }

 private:
  std::string name_;
};

std::string joined_names(const std::set<std::string>& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

RecordedCounts read_expert_counts(const EmpiricalSource& source, int experts) {
  const CsvFile csv(source.file);
  const std::string text = read_text_file(source.file);
  const std::string_view selection = source.selection == CountSelection::top1 ? "top1" : "topk";
  const std::set<std::string, std::less<>> wanted_domains(source.domains.begin(), source.domains.end());

  std::set<std::string> models, domains_of_model, found_domains;
  // (layer, expert) -> count pooled over domains; (domain, layer, expert) to catch duplicates.
  std::map<std::pair<int, int>, std::int64_t> pooled;
  std::set<std::tuple<std::string, int, int>> seen;
  int largest_expert = -1;

  std::size_t line_number = 0;
  std::size_t at = 0;
  std::string_view line;
  while (next_csv_line(text, at, line)) {
    ++line_number;
    if (line_number == 1) {
      if (line != kHeader) csv.fail(1, "header", fmt::format("expected the header \"{}\"", kHeader));
      continue;
    }
    if (line.empty()) {
      if (at >= text.size()) break;
      csv.fail(line_number, "model", "expected a row, got an empty line");
    }
    std::string_view fields[6];
    const int count = split_csv_fields(line, fields);
    if (count != 6) {
      csv.fail(line_number, count < 6 ? kFieldNames[count] : "count",
               fmt::format("expected 6 comma-separated fields, got {} (truncated or malformed row)", count));
    }
    models.emplace(fields[0]);
    if (fields[0] != source.model) continue;
    if (fields[2] != "topk" && fields[2] != "top1") {
      csv.fail(line_number, "selection", fmt::format("expected topk or top1, got \"{}\"", fields[2]));
    }
    const auto layer = static_cast<int>(csv.integer(line_number, 3, fields[3], 1'000'000));
    const auto expert = static_cast<int>(csv.integer(line_number, 4, fields[4], 1'000'000));
    const std::int64_t value = csv.integer(line_number, 5, fields[5], kMaxCount);
    if (fields[2] != selection) continue;
    domains_of_model.emplace(fields[1]);
    if (!wanted_domains.contains(fields[1])) continue;
    if (!seen.emplace(std::string(fields[1]), layer, expert).second) {
      csv.fail(line_number, "expert",
               fmt::format("duplicate row for domain {}, layer {}, expert {}", fields[1], layer, expert));
    }
    found_domains.emplace(fields[1]);
    largest_expert = std::max(largest_expert, expert);
    pooled[{layer, expert}] += value;
  }
  if (line_number == 0) csv.fail("file is empty, expected the header and rows of per-expert counts");

  if (!models.contains(source.model)) {
    csv.fail(
        fmt::format("model \"{}\" not found (models in the file: {})", source.model, joined_names(models)));
  }
  for (const auto& domain : source.domains) {
    if (!found_domains.contains(domain)) {
      csv.fail(fmt::format("no {} counts for model \"{}\" and domain \"{}\" (domains with {} counts: {})",
                           selection, source.model, domain, selection, joined_names(domains_of_model)));
    }
  }
  if (largest_expert + 1 != experts) {
    csv.fail(fmt::format("model \"{}\" has {} experts in the file but the simulated model has {}",
                         source.model, largest_expert + 1, experts));
  }

  RecordedCounts recorded;
  for (const auto& [key, value] : pooled) {
    const auto [layer, expert] = key;
    if (recorded.layers.empty() || recorded.layers.back() != layer) {
      recorded.layers.push_back(layer);
      recorded.counts.emplace_back(experts, -1);
    }
    recorded.counts.back()[expert] = value;
  }
  if (seen.size() != wanted_domains.size() * recorded.layers.size() * static_cast<std::size_t>(experts)) {
    csv.fail(
        fmt::format("model \"{}\" lacks counts of some domain, layer and expert (expected every domain to "
                    "record every expert at layers {})",
                    source.model, fmt::join(recorded.layers, ", ")));
  }
  for (std::size_t i = 0; i < recorded.layers.size(); ++i) {
    const auto total = std::accumulate(recorded.counts[i].begin(), recorded.counts[i].end(), std::int64_t{0});
    if (total <= 0) {
      csv.fail(fmt::format("layer {} of model \"{}\" has no counts", recorded.layers[i], source.model));
    }
  }
  return recorded;
}

int recorded_layer_for(int layer, int moe_layers, std::span<const int> recorded_layers) {
  const double depth = moe_layers > 1 ? static_cast<double>(layer) / (moe_layers - 1) : 0.0;
  const double deepest = std::max(recorded_layers.back(), 1);
  int best = 0;
  for (int i = 1; i < static_cast<int>(recorded_layers.size()); ++i) {
    if (std::abs(recorded_layers[i] / deepest - depth) < std::abs(recorded_layers[best] / deepest - depth))
      best = i;
  }
  return best;
}

}  // namespace moesim
