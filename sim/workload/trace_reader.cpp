#include "sim/workload/trace_reader.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sim/common/error.hpp"
#include "sim/common/line_reader.hpp"

namespace moesim {

namespace {

constexpr std::int64_t kMaxTokens = std::numeric_limits<std::int32_t>::max();

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Parses exactly `count` digits at `at`.
bool fixed_digits(std::string_view text, std::size_t at, std::size_t count, std::int64_t& value) {
  if (at + count > text.size()) return false;
  value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (!is_digit(text[i])) return false;
    value = value * 10 + (text[i] - '0');
  }
  return true;
}

std::int64_t days_from_civil(std::int64_t year, std::int64_t month, std::int64_t day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const std::int64_t year_of_era = year - era * 400;
  const std::int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const std::int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

std::int64_t unit_ns(TimestampUnit unit) {
  switch (unit) {
    case TimestampUnit::seconds:
      return 1'000'000'000;
    case TimestampUnit::milliseconds:
      return 1'000'000;
    case TimestampUnit::microseconds:
      return 1'000;
    default:
      return 1;
  }
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t'))
    text.remove_suffix(1);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  return text;
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

// Shared checks of one row, so both file kinds word their errors the same way.
class RowChecker {
 public:
  RowChecker(const TraceFileSpec& spec, std::string name) : spec_(spec), name_(std::move(name)) {}

  [[noreturn]] void fail(std::uint64_t line, std::string_view column, std::string_view expected) const {
    throw InputError(name_, fmt::format("line {}, column {}", line, column), expected);
  }

  std::int32_t length(std::uint64_t line, std::string_view column, std::int64_t value,
                      std::string_view text) const {
    if (value < 1 || value > kMaxTokens) {
      fail(line, column, fmt::format("expected a positive integer below 2^31, got \"{}\"", text));
    }
    return static_cast<std::int32_t>(value);
  }

  // Returns false when the row is to be skipped.
  bool output_length(std::uint64_t line, std::string_view column, std::int64_t value, std::string_view text,
                     std::int32_t& tokens) const {
    if (value == 0) {
      // Assumption: a row with zero output tokens (none in the Azure 2023 files; aborted requests in
      // other traces) still ran a prefill that produced one token, so by default it becomes a 1-token
      // request (moesim's own guess; "zero_output" can skip or reject such rows instead).
      switch (spec_.zero_output) {
        case ZeroOutputPolicy::one_token:
          tokens = 1;
          return true;
        case ZeroOutputPolicy::skip:
          return false;
        case ZeroOutputPolicy::error:
          fail(line, column, "expected a positive integer, got \"0\" (zero_output is \"error\")");
      }
    }
    tokens = length(line, column, value, text);
    return true;
  }

  std::int32_t class_name(std::uint64_t line, std::string_view text) const {
    for (std::size_t i = 0; i < spec_.class_names.size(); ++i) {
      if (spec_.class_names[i] == text) return static_cast<std::int32_t>(i);
    }
    fail(line, spec_.class_column,
         fmt::format("expected one of the class_names [{}], got \"{}\"", fmt::join(spec_.class_names, ", "),
                     text));
  }

  void order(std::uint64_t line, SimTime timestamp, std::string_view text) {
    if (has_previous_ && timestamp < previous_) {
      fail(line, spec_.timestamp_column,
           fmt::format("timestamps must not decrease, got \"{}\" after a later one on line {}", text,
                       previous_line_));
    }
    has_previous_ = true;
    previous_ = timestamp;
    previous_line_ = line;
  }

  const TraceFileSpec& spec() const { return spec_; }

 private:
  const TraceFileSpec& spec_;
  std::string name_;
  bool has_previous_ = false;
  SimTime previous_ = 0;
  std::uint64_t previous_line_ = 0;
};

std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

class CsvTraceReader final : public TraceReader {
 public:
  explicit CsvTraceReader(const TraceFileSpec& spec) : lines_(spec.path), checker_(spec, lines_.name()) {
    std::string_view header;
    while (lines_.next(header) && is_blank(header)) {
    }
    if (is_blank(header)) throw InputError(lines_.name(), "", "file is empty, expected a CSV header line");
    std::vector<std::string> names;
    for (std::size_t at = 0;;) {
      const std::size_t comma = header.find(',', at);
      names.emplace_back(trim(header.substr(at, comma == std::string_view::npos ? comma : comma - at)));
      if (comma == std::string_view::npos) break;
      at = comma + 1;
    }
    const auto find = [&](const std::string& column) {
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (names[i] == column) return i;
      }
      throw InputError(
          lines_.name(), fmt::format("line {}", lines_.line_number()),
          fmt::format("missing column \"{}\" (the header has \"{}\")", column, fmt::join(names, "\", \"")));
    };
    timestamp_index_ = find(spec.timestamp_column);
    input_index_ = find(spec.input_column);
    output_index_ = find(spec.output_column);
    if (!spec.class_column.empty()) class_index_ = find(spec.class_column);
    column_count_ = names.size();
    fields_.resize(column_count_);
  }

  bool read(TraceRow& row) override {
    const TraceFileSpec& spec = checker_.spec();
    std::string_view line;
    for (;;) {
      if (!lines_.next(line)) {
        if (!seen_row_) throw InputError(lines_.name(), "", "file has a header but no data rows");
        return false;
      }
      if (is_blank(line)) continue;
      seen_row_ = true;
      const std::uint64_t number = lines_.line_number();
      split(line, number);
      const std::string_view stamp = fields_[timestamp_index_];
      const auto timestamp = spec.timestamp_unit == TimestampUnit::datetime
                                 ? parse_datetime_ns(stamp)
                                 : parse_decimal_ns(stamp, spec.timestamp_unit);
      if (!timestamp) {
        checker_.fail(number, spec.timestamp_column,
                      fmt::format("expected {}, got \"{}\"",
                                  spec.timestamp_unit == TimestampUnit::datetime
                                      ? "a date-time \"YYYY-MM-DD HH:MM:SS[.fraction][+HH:MM]\""
                                      : "a non-negative number",
                                  stamp));
      }
      checker_.order(number, *timestamp, stamp);
      row.timestamp = *timestamp;
      row.line = number;
      row.input_tokens =
          checker_.length(number, spec.input_column, integer(number, input_index_), fields_[input_index_]);
      if (!checker_.output_length(number, spec.output_column, integer(number, output_index_),
                                  fields_[output_index_], row.output_tokens)) {
        continue;
      }
      row.traffic_class = -1;
      if (class_index_ != kNone) row.traffic_class = traffic_class(number);
      row.prefix_blocks.clear();
      return true;
    }
  }

 private:
  static constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

  void split(std::string_view line, std::uint64_t number) {
    std::size_t count = 0;
    for (std::size_t at = 0;;) {
      const std::size_t comma = line.find(',', at);
      if (count == column_count_) {
        checker_.fail(number, "-",
                      fmt::format("expected {} comma-separated fields, got more", column_count_));
      }
      fields_[count++] = trim(line.substr(at, comma == std::string_view::npos ? comma : comma - at));
      if (comma == std::string_view::npos) break;
      at = comma + 1;
    }
    if (count != column_count_) {
      checker_.fail(
          number, "-",
          fmt::format("expected {} comma-separated fields, got {} (truncated line?)", column_count_, count));
    }
  }

  std::int64_t integer(std::uint64_t number, std::size_t index) {
    const auto value = parse_integer(fields_[index]);
    if (!value) {
      const std::string& column =
          index == input_index_ ? checker_.spec().input_column : checker_.spec().output_column;
      checker_.fail(number, column, fmt::format("expected a positive integer, got \"{}\"", fields_[index]));
    }
    return *value;
  }

  std::int32_t traffic_class(std::uint64_t number) {
    const std::string_view text = fields_[class_index_];
    if (!checker_.spec().class_names.empty()) return checker_.class_name(number, text);
    const auto value = parse_integer(text);
    if (!value || *value < 0 || *value > kMaxTokens) {
      checker_.fail(number, checker_.spec().class_column,
                    fmt::format("expected a class number >= 0 (or set class_names), got \"{}\"", text));
    }
    return static_cast<std::int32_t>(*value);
  }

  LineReader lines_;
  RowChecker checker_;
  std::size_t timestamp_index_ = 0, input_index_ = 0, output_index_ = 0, class_index_ = kNone;
  std::size_t column_count_ = 0;
  std::vector<std::string_view> fields_;
  bool seen_row_ = false;
};

class JsonlTraceReader final : public TraceReader {
 public:
  explicit JsonlTraceReader(const TraceFileSpec& spec) : lines_(spec.path), checker_(spec, lines_.name()) {}

  bool read(TraceRow& row) override {
    const TraceFileSpec& spec = checker_.spec();
    std::string_view line;
    for (;;) {
      if (!lines_.next(line)) {
        if (!seen_row_) {
          throw InputError(lines_.name(), "", "file has no rows, expected one JSON object per line");
        }
        return false;
      }
      if (is_blank(line)) continue;
      seen_row_ = true;
      const std::uint64_t number = lines_.line_number();
      const nlohmann::json value = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (value.is_discarded()) {
        throw InputError(lines_.name(), fmt::format("line {}", number),
                         "invalid JSON (truncated line, NaN or a stray character?)");
      }
      if (!value.is_object()) {
        throw InputError(lines_.name(), fmt::format("line {}", number),
                         fmt::format("expected a JSON object, got {}", describe_json(value)));
      }
      row.line = number;
      row.timestamp = timestamp(number, member(value, number, spec.timestamp_column));
      checker_.order(number, row.timestamp, member(value, number, spec.timestamp_column).dump());
      row.input_tokens = checker_.length(number, spec.input_column, integer(value, number, spec.input_column),
                                         member(value, number, spec.input_column).dump());
      if (!checker_.output_length(number, spec.output_column, integer(value, number, spec.output_column),
                                  member(value, number, spec.output_column).dump(), row.output_tokens)) {
        continue;
      }
      row.traffic_class = spec.class_column.empty() ? -1 : traffic_class(value, number);
      row.prefix_blocks.clear();
      if (!spec.prefix_blocks_column.empty()) blocks(value, number, row.prefix_blocks);
      return true;
    }
  }

 private:
  const nlohmann::json& member(const nlohmann::json& object, std::uint64_t number,
                               const std::string& key) const {
    const auto it = object.find(key);
    if (it == object.end()) checker_.fail(number, key, "missing key");
    return *it;
  }

  SimTime timestamp(std::uint64_t number, const nlohmann::json& value) const {
    const TraceFileSpec& spec = checker_.spec();
    std::optional<SimTime> result;
    if (spec.timestamp_unit == TimestampUnit::datetime) {
      if (value.is_string()) result = parse_datetime_ns(value.get_ref<const std::string&>());
    } else if (value.is_number_unsigned() || (value.is_number_integer() && value.get<std::int64_t>() >= 0)) {
      const auto raw = value.get<std::uint64_t>();
      const auto scale = static_cast<std::uint64_t>(unit_ns(spec.timestamp_unit));
      if (raw <= static_cast<std::uint64_t>(std::numeric_limits<SimTime>::max()) / scale) {
        result = static_cast<SimTime>(raw * scale);
      }
    } else if (value.is_number_float()) {
      const double scaled = value.get<double>() * static_cast<double>(unit_ns(spec.timestamp_unit));
      if (std::isfinite(scaled) && scaled >= 0 && scaled < 9.2e18) result = std::llround(scaled);
    }
    if (!result) {
      checker_.fail(number, spec.timestamp_column,
                    fmt::format("expected {}, got {}",
                                spec.timestamp_unit == TimestampUnit::datetime ? "a date-time string"
                                                                               : "a non-negative number",
                                describe_json(value)));
    }
    return *result;
  }

  std::int64_t integer(const nlohmann::json& object, std::uint64_t number, const std::string& key) const {
    const auto& value = member(object, number, key);
    // Unsigned values above 2^63 wrap to negative and so fail the length check with their text.
    if (value.is_number_integer()) return value.get<std::int64_t>();
    checker_.fail(number, key, fmt::format("expected a positive integer, got {}", describe_json(value)));
  }

  std::int32_t traffic_class(const nlohmann::json& object, std::uint64_t number) const {
    const TraceFileSpec& spec = checker_.spec();
    const auto& value = member(object, number, spec.class_column);
    if (!spec.class_names.empty()) {
      if (!value.is_string()) {
        checker_.fail(number, spec.class_column,
                      fmt::format("expected a class name, got {}", describe_json(value)));
      }
      return checker_.class_name(number, value.get_ref<const std::string&>());
    }
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 ||
        value.get<std::int64_t>() > kMaxTokens) {
      checker_.fail(
          number, spec.class_column,
          fmt::format("expected a class number >= 0 (or set class_names), got {}", describe_json(value)));
    }
    return static_cast<std::int32_t>(value.get<std::int64_t>());
  }

  void blocks(const nlohmann::json& object, std::uint64_t number, std::vector<std::uint64_t>& out) const {
    const std::string& key = checker_.spec().prefix_blocks_column;
    const auto& value = member(object, number, key);
    if (!value.is_array()) {
      checker_.fail(number, key, fmt::format("expected an array of block ids, got {}", describe_json(value)));
    }
    out.reserve(value.size());
    for (const auto& id : value) {
      if (!id.is_number_unsigned() && !(id.is_number_integer() && id.get<std::int64_t>() >= 0)) {
        checker_.fail(number, key, fmt::format("expected block ids >= 0, got {}", describe_json(id)));
      }
      out.push_back(id.get<std::uint64_t>());
    }
  }

  LineReader lines_;
  RowChecker checker_;
  bool seen_row_ = false;
};

}  // namespace

std::optional<SimTime> parse_datetime_ns(std::string_view text) {
  std::int64_t year, month, day, hour, minute, second;
  if (!fixed_digits(text, 0, 4, year) || text.size() < 19 || text[4] != '-' ||
      !fixed_digits(text, 5, 2, month) || text[7] != '-' || !fixed_digits(text, 8, 2, day) ||
      (text[10] != ' ' && text[10] != 'T') || !fixed_digits(text, 11, 2, hour) || text[13] != ':' ||
      !fixed_digits(text, 14, 2, minute) || text[16] != ':' || !fixed_digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  SimTime result =
      ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60 * kNanosecondsPerSecond +
      second * kNanosecondsPerSecond;
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    const std::size_t first_digit = at;
    SimTime place = kNanosecondsPerSecond;
    for (; at < text.size() && is_digit(text[at]); ++at) {
      place /= 10;
      result += (text[at] - '0') * place;
    }
    if (at == first_digit) return std::nullopt;
  }
  if (at == text.size()) return result;
  if (text[at] == 'Z' && at + 1 == text.size()) return result;
  std::int64_t zone_hours, zone_minutes;
  if ((text[at] != '+' && text[at] != '-') || text.size() != at + 6 ||
      !fixed_digits(text, at + 1, 2, zone_hours) || text[at + 3] != ':' ||
      !fixed_digits(text, at + 4, 2, zone_minutes)) {
    return std::nullopt;
  }
  const SimTime offset = (zone_hours * 60 + zone_minutes) * 60 * kNanosecondsPerSecond;
  return text[at] == '+' ? result - offset : result + offset;
}

std::optional<SimTime> parse_decimal_ns(std::string_view text, TimestampUnit unit) {
  const SimTime scale = unit_ns(unit);
  std::size_t at = 0;
  SimTime whole = 0;
  for (; at < text.size() && is_digit(text[at]); ++at) {
    if (whole > (std::numeric_limits<SimTime>::max() / scale - 9) / 10) return std::nullopt;
    whole = whole * 10 + (text[at] - '0');
  }
  bool has_digits = at > 0;
  SimTime result = whole * scale;
  if (at < text.size() && text[at] == '.') {
    ++at;
    SimTime place = scale;
    for (; at < text.size() && is_digit(text[at]); ++at) {
      has_digits = true;
      place /= 10;
      result += (text[at] - '0') * place;
    }
  }
  if (!has_digits || at != text.size()) return std::nullopt;
  return result;
}

std::unique_ptr<TraceReader> make_trace_reader(const TraceFileSpec& spec) {
  switch (spec.format) {
    case TraceFormat::azure:
    case TraceFormat::csv:
      return std::make_unique<CsvTraceReader>(spec);
    default:
      return std::make_unique<JsonlTraceReader>(spec);
  }
}

}  // namespace moesim
