#include "sim/common/json_reader.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"

namespace moesim {

namespace {

std::string joined(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return fmt::format("{}.{}", path, key);
}

}  // namespace

std::string describe_json(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case nlohmann::json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      if (text.size() > 40) return "a string";
      return fmt::format("the string \"{}\"", text);
    }
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return fmt::format("the number {}", value.dump());
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

JsonReader::JsonReader(const nlohmann::json& value, std::string source, std::string path)
    : value_(&value), source_(std::move(source)), path_(std::move(path)) {
  if (!value_->is_object()) {
    throw InputError(source_, path_.empty() ? "top level" : path_,
                     fmt::format("expected an object, got {}", describe_json(*value_)));
  }
}

nlohmann::json JsonReader::parse_text(std::string_view text, std::string_view source) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    throw InputError(source, "", "file is empty, expected a JSON document");
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& error) {
    // Translate the byte offset into line and column for the user.
    const std::size_t offset = std::min<std::size_t>(error.byte, text.size());
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i + 1 < offset; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw InputError(source, fmt::format("line {}, column {}", line, column),
                     "invalid JSON (truncated file, trailing comma, NaN or a stray character?)");
  } catch (const nlohmann::json::exception& error) {
    throw InputError(source, "", fmt::format("invalid JSON: {}", error.what()));
  }
}

nlohmann::json JsonReader::parse_file(const std::filesystem::path& file) {
  return parse_text(read_text_file(file), file.string());
}

std::string JsonReader::place(std::string_view key) const {
  return joined(path_, key);
}

const nlohmann::json* JsonReader::find(std::string_view key) const {
  auto it = value_->find(key);
  if (it == value_->end()) return nullptr;
  read_keys_.emplace(key);
  return &*it;
}

const nlohmann::json& JsonReader::member(std::string_view key) const {
  const nlohmann::json* value = find(key);
  if (value == nullptr) fail(key, "missing required key");
  return *value;
}

bool JsonReader::has(std::string_view key) const {
  return value_->contains(key);
}

void JsonReader::fail(std::string_view key, std::string_view expected) const {
  throw InputError(source_, place(key), expected);
}

double JsonReader::number(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_number()) fail(key, fmt::format("expected a number, got {}", describe_json(value)));
  const double result = value.get<double>();
  if (!std::isfinite(result)) fail(key, "expected a finite number");
  return result;
}

double JsonReader::number(std::string_view key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

double JsonReader::positive_number(std::string_view key) const {
  const double result = number(key);
  if (!(result > 0)) fail(key, fmt::format("expected a positive number, got {}", result));
  return result;
}

double JsonReader::positive_number(std::string_view key, double fallback) const {
  return has(key) ? positive_number(key) : fallback;
}

double JsonReader::non_negative_number(std::string_view key) const {
  const double result = number(key);
  if (result < 0) fail(key, fmt::format("expected a number >= 0, got {}", result));
  return result;
}

double JsonReader::non_negative_number(std::string_view key, double fallback) const {
  return has(key) ? non_negative_number(key) : fallback;
}

double JsonReader::fraction(std::string_view key, double fallback) const {
  if (!has(key)) return fallback;
  const double result = number(key);
  if (result < 0 || result > 1) fail(key, fmt::format("expected a number in [0, 1], got {}", result));
  return result;
}

std::int64_t JsonReader::integer(std::string_view key) const {
  const auto& value = member(key);
  // nlohmann counts unsigned values as integers too, so test the unsigned form first.
  if (value.is_number_unsigned()) {
    const auto unsigned_value = value.get<std::uint64_t>();
    if (unsigned_value > static_cast<std::uint64_t>(INT64_MAX)) fail(key, "integer is too large");
    return static_cast<std::int64_t>(unsigned_value);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_float()) {
    const double as_double = value.get<double>();
    if (std::isfinite(as_double) && std::trunc(as_double) == as_double && std::fabs(as_double) < 9e15) {
      return static_cast<std::int64_t>(as_double);
    }
  }
  fail(key, fmt::format("expected an integer, got {}", describe_json(value)));
}

std::int64_t JsonReader::integer(std::string_view key, std::int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

std::int64_t JsonReader::positive_integer(std::string_view key) const {
  const auto result = integer(key);
  if (result <= 0) fail(key, fmt::format("expected a positive integer, got {}", result));
  return result;
}

std::int64_t JsonReader::positive_integer(std::string_view key, std::int64_t fallback) const {
  return has(key) ? positive_integer(key) : fallback;
}

std::int64_t JsonReader::non_negative_integer(std::string_view key) const {
  const auto result = integer(key);
  if (result < 0) fail(key, fmt::format("expected an integer >= 0, got {}", result));
  return result;
}

std::int64_t JsonReader::non_negative_integer(std::string_view key, std::int64_t fallback) const {
  return has(key) ? non_negative_integer(key) : fallback;
}

bool JsonReader::boolean(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_boolean()) fail(key, fmt::format("expected true or false, got {}", describe_json(value)));
  return value.get<bool>();
}

bool JsonReader::boolean(std::string_view key, bool fallback) const {
  return has(key) ? boolean(key) : fallback;
}

std::string JsonReader::string(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_string()) fail(key, fmt::format("expected a string, got {}", describe_json(value)));
  return value.get<std::string>();
}

std::string JsonReader::string(std::string_view key, std::string_view fallback) const {
  return has(key) ? string(key) : std::string(fallback);
}

std::string JsonReader::choice(std::string_view key, const std::vector<std::string>& choices) const {
  auto result = string(key);
  for (const auto& candidate : choices) {
    if (candidate == result) return result;
  }
  fail(key, fmt::format("expected one of [{}], got \"{}\"", fmt::join(choices, ", "), result));
}

std::string JsonReader::choice(std::string_view key, const std::vector<std::string>& choices,
                               std::string_view fallback) const {
  return has(key) ? choice(key, choices) : std::string(fallback);
}

JsonReader JsonReader::object(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_object()) fail(key, fmt::format("expected an object, got {}", describe_json(value)));
  return JsonReader(value, source_, place(key));
}

std::optional<JsonReader> JsonReader::optional_object(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return object(key);
}

std::vector<JsonReader> JsonReader::object_array(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_array()) fail(key, fmt::format("expected an array of objects, got {}", describe_json(value)));
  std::vector<JsonReader> result;
  result.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string element_place = fmt::format("{}[{}]", place(key), i);
    if (!value[i].is_object()) {
      throw InputError(source_, element_place,
                       fmt::format("expected an object, got {}", describe_json(value[i])));
    }
    result.emplace_back(value[i], source_, element_place);
  }
  return result;
}

std::vector<double> JsonReader::number_array(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_array()) fail(key, fmt::format("expected an array of numbers, got {}", describe_json(value)));
  std::vector<double> result;
  result.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_number() || !std::isfinite(value[i].get<double>())) {
      throw InputError(source_, fmt::format("{}[{}]", place(key), i),
                       fmt::format("expected a finite number, got {}", describe_json(value[i])));
    }
    result.push_back(value[i].get<double>());
  }
  return result;
}

std::vector<std::int64_t> JsonReader::integer_array(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_array())
    fail(key, fmt::format("expected an array of integers, got {}", describe_json(value)));
  std::vector<std::int64_t> result;
  result.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_number_integer() && !value[i].is_number_unsigned()) {
      throw InputError(source_, fmt::format("{}[{}]", place(key), i),
                       fmt::format("expected an integer, got {}", describe_json(value[i])));
    }
    result.push_back(value[i].get<std::int64_t>());
  }
  return result;
}

std::vector<std::string> JsonReader::string_array(std::string_view key) const {
  const auto& value = member(key);
  if (!value.is_array()) fail(key, fmt::format("expected an array of strings, got {}", describe_json(value)));
  std::vector<std::string> result;
  result.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string()) {
      throw InputError(source_, fmt::format("{}[{}]", place(key), i),
                       fmt::format("expected a string, got {}", describe_json(value[i])));
    }
    result.push_back(value[i].get<std::string>());
  }
  return result;
}

const nlohmann::json& JsonReader::raw(std::string_view key) const {
  return member(key);
}

void JsonReader::finish() const {
  std::vector<std::string> unknown;
  for (const auto& item : value_->items()) {
    if (!read_keys_.contains(item.key())) unknown.push_back(item.key());
  }
  if (unknown.empty()) return;
  const std::string where = path_.empty() ? std::string("top level") : path_;
  throw InputError(
      source_, where,
      fmt::format("unknown key{} \"{}\"", unknown.size() > 1 ? "s" : "", fmt::join(unknown, "\", \"")));
}

}  // namespace moesim
