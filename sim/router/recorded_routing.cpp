#include "sim/router/recorded_routing.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/line_reader.hpp"

namespace moesim {

namespace {

constexpr std::string_view kMagic = "# moesim routing trace:";
constexpr int kMaxLayers = 10000;
constexpr int kMaxExperts = 1 << 20;
constexpr std::int64_t kMaxCount = std::int64_t{1} << 30;

std::string_view form_name(RoutingTraceForm form) {
  return form == RoutingTraceForm::tokens ? "tokens" : "counts";
}

std::string_view columns_of(RoutingTraceForm form) {
  return form == RoutingTraceForm::tokens ? "token,layer,experts" : "step,layer,counts";
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}

bool parse_integer(std::string_view text, std::int64_t& value) {
  text = trim(text);
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

// One data row: the token (or step) index, the layer and its expert ids (or counts).
struct TraceRow {
  std::int64_t index = 0;
  int layer = 0;
  std::vector<std::int64_t> values;
};

// The rows of a routing trace with every per-row check; the per-token or per-step grouping is checked
// by the callers.
class TraceRows {
 public:
  explicit TraceRows(const std::filesystem::path& file) : reader_(file) {
    std::string_view line;
    if (!reader_.next(line))
      fail("", fmt::format("a header line starting with \"{}\", got an empty file", kMagic));
    read_header(line);
    if (!reader_.next(line)) fail("", fmt::format("the column line \"{}\"", columns_of(header_.form)));
    if (trim(line) != columns_of(header_.form)) {
      fail("", fmt::format("the column line \"{}\" for form={}, got \"{}\"", columns_of(header_.form),
                           form_name(header_.form), line));
    }
  }

  const RoutingTraceHeader& header() const { return header_; }
  const std::string& name() const { return reader_.name(); }
  std::uint64_t line_number() const { return reader_.line_number(); }

  // False at the end of the file.
  bool next(TraceRow& row) {
    std::string_view line;
    do {
      if (!reader_.next(line)) return false;
    } while (trim(line).empty() || line.front() == '#');
    const auto first = line.find(',');
    const auto second = first == std::string_view::npos ? first : line.find(',', first + 1);
    if (second == std::string_view::npos || line.find(',', second + 1) != std::string_view::npos) {
      fail("", fmt::format("3 comma-separated fields ({})", columns_of(header_.form)));
    }
    const std::string_view index_name = header_.form == RoutingTraceForm::tokens ? "token" : "step";
    if (!parse_integer(line.substr(0, first), row.index) || row.index < 0) {
      fail(index_name, "a non-negative integer");
    }
    std::int64_t layer = 0;
    if (!parse_integer(line.substr(first + 1, second - first - 1), layer) || layer < 0 ||
        layer >= header_.layers) {
      fail("layer", fmt::format("an integer in [0, {})", header_.layers));
    }
    row.layer = static_cast<int>(layer);
    read_values(line.substr(second + 1), row.values);
    return true;
  }

  [[noreturn]] void fail(std::string_view field, std::string_view expected) const {
    const std::string place = field.empty() ? fmt::format("line {}", reader_.line_number())
                                            : fmt::format("line {}, field {}", reader_.line_number(), field);
    throw InputError(reader_.name(), place, fmt::format("expected {}", expected));
  }

 private:
  void read_header(std::string_view line) {
    if (!line.starts_with(kMagic)) {
      fail("", fmt::format("a header line starting with \"{}\"", kMagic));
    }
    std::string_view rest = line.substr(kMagic.size());
    bool has_form = false;
    while (!(rest = trim(rest)).empty()) {
      const auto space = rest.find(' ');
      const std::string_view item = rest.substr(0, space);
      rest = space == std::string_view::npos ? std::string_view() : rest.substr(space);
      const auto equals = item.find('=');
      const std::string_view key = item.substr(0, equals);
      const std::string_view value =
          equals == std::string_view::npos ? std::string_view() : item.substr(equals + 1);
      std::int64_t number = 0;
      const auto positive = [&](int limit) {
        if (!parse_integer(value, number) || number < 1 || number > limit) {
          fail(key, fmt::format("an integer in [1, {}] in the header", limit));
        }
        return static_cast<int>(number);
      };
      if (key == "form") {
        if (value == "tokens") {
          header_.form = RoutingTraceForm::tokens;
        } else if (value == "counts") {
          header_.form = RoutingTraceForm::counts;
        } else {
          fail("form", "tokens or counts in the header");
        }
        has_form = true;
      } else if (key == "layers") {
        header_.layers = positive(kMaxLayers);
      } else if (key == "experts") {
        header_.experts = positive(kMaxExperts);
      } else if (key == "top_k") {
        header_.top_k = positive(kMaxExperts);
      } else {
        fail(key, "only the header keys form, layers, experts, top_k");
      }
    }
    if (!has_form || header_.layers == 0 || header_.experts == 0 || header_.top_k == 0) {
      fail("", "a header naming form, layers, experts and top_k");
    }
    if (header_.top_k > header_.experts) fail("top_k", "top_k <= experts in the header");
  }

  void read_values(std::string_view text, std::vector<std::int64_t>& values) {
    const bool tokens = header_.form == RoutingTraceForm::tokens;
    const std::string_view field = tokens ? "experts" : "counts";
    const std::size_t expected = static_cast<std::size_t>(tokens ? header_.top_k : header_.experts);
    values.clear();
    text = trim(text);
    while (!text.empty()) {
      const auto space = text.find(' ');
      std::int64_t value = 0;
      if (!parse_integer(text.substr(0, space), value)) fail(field, "space-separated integers");
      if (tokens && (value < 0 || value >= header_.experts)) {
        fail(field, fmt::format("expert ids in [0, {}), got {}", header_.experts, value));
      }
      if (!tokens && (value < 0 || value > kMaxCount)) {
        fail(field, fmt::format("counts in [0, {}], got {}", kMaxCount, value));
      }
      if (values.size() == expected) fail(field, fmt::format("{} values, got more", expected));
      values.push_back(value);
      text = space == std::string_view::npos ? std::string_view() : trim(text.substr(space));
    }
    if (values.size() != expected) fail(field, fmt::format("{} values, got {}", expected, values.size()));
    if (tokens) {
      for (std::size_t i = 1; i < values.size(); ++i) {
        if (std::find(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(i), values[i]) !=
            values.begin() + static_cast<std::ptrdiff_t>(i)) {
          fail(field, fmt::format("{} distinct expert ids, got {} twice", expected, values[i]));
        }
      }
    }
  }

  LineReader reader_;
  RoutingTraceHeader header_;
};

// Checks that rows come grouped by token (or step) 0, 1, 2, ..., each group listing every layer once,
// and, in the counts form, that each layer of a step holds the same tokens within the top-k rules.
class GroupChecker {
 public:
  explicit GroupChecker(const RoutingTraceHeader& header)
      : header_(header), seen_(static_cast<std::size_t>(header.layers), 0) {}

  // Returns the tokens of the row (1 in the tokens form).
  std::int64_t add(const TraceRows& rows, const TraceRow& row) {
    const std::string_view noun = header_.form == RoutingTraceForm::tokens ? "token" : "step";
    if (groups_ == 0 && row.index != 0) rows.fail(noun, fmt::format("the first {} to be 0", noun));
    if (groups_ > 0 && row.index == current_ + 1) {
      check_complete(rows);
    } else if (groups_ > 0 && row.index != current_) {
      rows.fail(noun, fmt::format("{} {} or {} (numbered in order from 0)", noun, current_, current_ + 1));
    }
    if (groups_ == 0 || row.index != current_) {
      current_ = row.index;
      ++groups_;
      std::fill(seen_.begin(), seen_.end(), 0);
      layers_seen_ = 0;
      group_tokens_ = -1;
    }
    auto& seen = seen_[static_cast<std::size_t>(row.layer)];
    if (seen != 0)
      rows.fail("layer", fmt::format("each layer once per {}, layer {} is repeated", noun, row.layer));
    seen = 1;
    ++layers_seen_;
    if (header_.form == RoutingTraceForm::tokens) return layers_seen_ == 1 ? 1 : 0;
    const std::int64_t sum = std::accumulate(row.values.begin(), row.values.end(), std::int64_t{0});
    if (sum == 0 || sum % header_.top_k != 0) {
      rows.fail("counts", fmt::format("a positive multiple of top_k = {} in all (tokens x top_k), got {}",
                                      header_.top_k, sum));
    }
    const std::int64_t tokens = sum / header_.top_k;
    if (group_tokens_ >= 0 && tokens != group_tokens_) {
      rows.fail("counts",
                fmt::format("the {} tokens of the step's other layers, got {}", group_tokens_, tokens));
    }
    const std::int64_t largest = *std::max_element(row.values.begin(), row.values.end());
    if (largest > tokens) {
      rows.fail("counts", fmt::format("no count above the step's {} tokens (a token takes an expert at most "
                                      "once), got {}",
                                      tokens, largest));
    }
    const bool first_layer = group_tokens_ < 0;
    group_tokens_ = tokens;
    return first_layer ? tokens : 0;
  }

  void finish(const TraceRows& rows) {
    if (groups_ == 0) rows.fail("", "at least one data row");
    check_complete(rows);
  }

  std::int64_t groups() const { return groups_; }

 private:
  void check_complete(const TraceRows& rows) const {
    if (layers_seen_ == header_.layers) return;
    const auto missing = std::find(seen_.begin(), seen_.end(), 0) - seen_.begin();
    rows.fail("layer",
              fmt::format("every layer for {} {}, layer {} is missing",
                          header_.form == RoutingTraceForm::tokens ? "token" : "step", current_, missing));
  }

  RoutingTraceHeader header_;
  std::vector<char> seen_;
  std::int64_t current_ = 0;
  std::int64_t groups_ = 0;
  int layers_seen_ = 0;
  std::int64_t group_tokens_ = -1;
};

}  // namespace

bool is_routing_trace(const std::filesystem::path& file) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) return false;
  try {
    LineReader reader(file);
    std::string_view line;
    return reader.next(line) && line.starts_with(kMagic);
  } catch (const InputError&) {
    return false;
  }
}

RoutingTraceSummary summarize_routing_trace(const std::filesystem::path& file) {
  TraceRows rows(file);
  RoutingTraceSummary summary;
  summary.header = rows.header();
  const auto experts = static_cast<std::size_t>(summary.header.experts);
  summary.layer_counts.assign(static_cast<std::size_t>(summary.header.layers) * experts, 0);
  GroupChecker groups(summary.header);
  TraceRow row;
  while (rows.next(row)) {
    summary.tokens += groups.add(rows, row);
    std::int64_t* layer = summary.layer_counts.data() + static_cast<std::size_t>(row.layer) * experts;
    if (summary.header.form == RoutingTraceForm::tokens) {
      for (const auto id : row.values)
        ++layer[id];
    } else {
      for (std::size_t e = 0; e < experts; ++e)
        layer[e] += row.values[e];
    }
  }
  groups.finish(rows);
  summary.steps = groups.groups();
  return summary;
}

// The replay reads rows that summarize_routing_trace has already checked, through the same parser.
struct RecordedRouting::Rows {
  explicit Rows(const std::filesystem::path& file) : rows(file) {}
  TraceRows rows;
  TraceRow row;
};

RecordedRouting::RecordedRouting(const std::filesystem::path& file, int layers, int experts, int top_k,
                                 std::uint64_t start)
    : file_(file),
      summary_(summarize_routing_trace(file)),
      layers_(layers),
      experts_(experts),
      top_k_(top_k) {
  const RoutingTraceHeader& header = summary_.header;
  if (header.layers != layers || header.experts != experts || header.top_k != top_k) {
    throw InputError(
        file.string(), "header",
        fmt::format(
            "expected the simulated model's shape ({} MoE layers, {} experts, top-{}), got {} layers, "
            "{} experts, top-{}",
            layers, experts, top_k, header.layers, header.experts, header.top_k));
  }
  const auto width = static_cast<std::size_t>(experts);
  shares_.resize(summary_.layer_counts.size());
  for (std::size_t l = 0; l < static_cast<std::size_t>(layers); ++l) {
    const auto begin = summary_.layer_counts.begin() + static_cast<std::ptrdiff_t>(l * width);
    const auto total = static_cast<double>(
        std::accumulate(begin, begin + static_cast<std::ptrdiff_t>(width), std::int64_t{0}));
    for (std::size_t e = 0; e < width; ++e)
      shares_[l * width + e] = static_cast<double>(begin[e]) / total;
  }
  step_counts_.assign(summary_.layer_counts.size(), 0);
  remainders_.resize(width);
  order_.resize(width);
  rows_ = std::make_unique<Rows>(file_);
  const auto skipped = static_cast<std::int64_t>(start % static_cast<std::uint64_t>(summary_.steps)) * layers;
  for (std::int64_t row = 0; row < skipped; ++row)
    rows_->rows.next(rows_->row);
}

RecordedRouting::~RecordedRouting() = default;

bool RecordedRouting::next_row() {
  if (rows_->rows.next(rows_->row)) return true;
  rows_ = std::make_unique<Rows>(file_);
  ++wraps_;
  return rows_->rows.next(rows_->row);
}

void RecordedRouting::read_tokens(std::int64_t tokens) {
  std::fill(step_counts_.begin(), step_counts_.end(), 0);
  const auto width = static_cast<std::size_t>(experts_);
  for (std::int64_t row = 0; row < tokens * layers_; ++row) {
    if (!next_row()) throw InputError(file_.string(), "", "rows (the file emptied while it was replayed)");
    std::int64_t* layer = step_counts_.data() + static_cast<std::size_t>(rows_->row.layer) * width;
    for (const auto id : rows_->row.values)
      ++layer[id];
  }
  step_tokens_ = tokens;
}

void RecordedRouting::read_step() {
  const auto width = static_cast<std::size_t>(experts_);
  for (int row = 0; row < layers_; ++row) {
    if (!next_row()) throw InputError(file_.string(), "", "rows (the file emptied while it was replayed)");
    std::copy(rows_->row.values.begin(), rows_->row.values.end(),
              step_counts_.begin() +
                  static_cast<std::ptrdiff_t>(static_cast<std::size_t>(rows_->row.layer) * width));
  }
  step_tokens_ = std::accumulate(step_counts_.begin(),
                                 step_counts_.begin() + static_cast<std::ptrdiff_t>(width), std::int64_t{0}) /
                 top_k_;
}

void RecordedRouting::sample_counts(int layer, std::int64_t tokens, std::span<std::int32_t> counts) {
  if (layer < 0 || layer >= layers_ || tokens < 0 || counts.size() != static_cast<std::size_t>(experts_)) {
    throw InternalError("RecordedRouting::sample_counts: bad layer, tokens or counts size");
  }
  if (tokens == 0) {
    std::fill(counts.begin(), counts.end(), 0);
    return;
  }
  if (layer <= last_layer_ || tokens != simulated_tokens_) {
    if (summary_.header.form == RoutingTraceForm::tokens) {
      read_tokens(tokens);
    } else {
      read_step();
    }
    simulated_tokens_ = tokens;
  }
  last_layer_ = layer;
  const auto width = static_cast<std::size_t>(experts_);
  const std::int64_t* recorded = step_counts_.data() + static_cast<std::size_t>(layer) * width;
  if (step_tokens_ == tokens) {
    for (std::size_t e = 0; e < width; ++e)
      counts[e] = static_cast<std::int32_t>(recorded[e]);
    return;
  }
  // Scaled to tokens x top_k by largest remainders; a count stays <= tokens because the recorded one
  // is <= the recorded step's tokens and an exact `tokens` has no remainder to round up.
  const double scale = static_cast<double>(tokens) / static_cast<double>(step_tokens_);
  std::int64_t assigned = 0;
  for (std::size_t e = 0; e < width; ++e) {
    const double exact = static_cast<double>(recorded[e]) * scale;
    const double whole = std::floor(exact);
    counts[e] = static_cast<std::int32_t>(whole);
    remainders_[e] = exact - whole;
    assigned += counts[e];
  }
  // Only the `left` largest remainders are needed (fewer than experts): a partial sort, ties to the
  // lower expert.
  const auto left = static_cast<std::size_t>(tokens * top_k_ - assigned);
  std::iota(order_.begin(), order_.end(), 0);
  std::partial_sort(order_.begin(),
                    order_.begin() + static_cast<std::ptrdiff_t>(std::min(left, order_.size())), order_.end(),
                    [&](int a, int b) {
                      const double ra = remainders_[static_cast<std::size_t>(a)];
                      const double rb = remainders_[static_cast<std::size_t>(b)];
                      return ra != rb ? ra > rb : a < b;
                    });
  for (std::size_t i = 0; i < left; ++i)
    ++counts[static_cast<std::size_t>(order_[i % order_.size()])];
}

}  // namespace moesim
