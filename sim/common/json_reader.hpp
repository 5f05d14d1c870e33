#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace moesim {

// Strict reader for one JSON object of a named source (a file, an option).
// Every key of the object must be read before finish(); finish() rejects the
// ones nobody read, so a misspelt key is an error rather than a silent default.
// Errors are InputError naming the source, the key path and what was expected.
class JsonReader {
 public:
  // `path` is the dotted location of `value` inside the source ("" for the root).
  JsonReader(const nlohmann::json& value, std::string source, std::string path = "");

  // Parses a file; syntax errors name the file, line and column. Empty files are rejected.
  static nlohmann::json parse_file(const std::filesystem::path& file);
  static nlohmann::json parse_text(std::string_view text, std::string_view source);

  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }
  const nlohmann::json& json() const { return *value_; }
  std::string place(std::string_view key) const;

  bool has(std::string_view key) const;

  double number(std::string_view key) const;  // any finite number
  double number(std::string_view key, double fallback) const;
  double positive_number(std::string_view key) const;
  double positive_number(std::string_view key, double fallback) const;
  double non_negative_number(std::string_view key) const;
  double non_negative_number(std::string_view key, double fallback) const;
  // A probability-like value in [0, 1].
  double fraction(std::string_view key, double fallback) const;

  std::int64_t integer(std::string_view key) const;
  std::int64_t integer(std::string_view key, std::int64_t fallback) const;
  std::int64_t positive_integer(std::string_view key) const;
  std::int64_t positive_integer(std::string_view key, std::int64_t fallback) const;
  std::int64_t non_negative_integer(std::string_view key) const;
  std::int64_t non_negative_integer(std::string_view key, std::int64_t fallback) const;

  bool boolean(std::string_view key) const;
  bool boolean(std::string_view key, bool fallback) const;

  std::string string(std::string_view key) const;
  std::string string(std::string_view key, std::string_view fallback) const;
  // A string that must be one of `choices`.
  std::string choice(std::string_view key, const std::vector<std::string>& choices) const;
  std::string choice(std::string_view key, const std::vector<std::string>& choices,
                     std::string_view fallback) const;

  JsonReader object(std::string_view key) const;
  std::optional<JsonReader> optional_object(std::string_view key) const;
  std::vector<JsonReader> object_array(std::string_view key) const;
  std::vector<double> number_array(std::string_view key) const;
  std::vector<std::int64_t> integer_array(std::string_view key) const;
  std::vector<std::string> string_array(std::string_view key) const;
  // The raw value, marked as read; the caller checks its shape.
  const nlohmann::json& raw(std::string_view key) const;

  // Rejects keys that were never read.
  void finish() const;

  [[noreturn]] void fail(std::string_view key, std::string_view expected) const;

 private:
  const nlohmann::json& member(std::string_view key) const;
  const nlohmann::json* find(std::string_view key) const;

  const nlohmann::json* value_;
  std::string source_;
  std::string path_;
  mutable std::set<std::string, std::less<>> read_keys_;
};

// A short description of a JSON value for error messages: its type and, when
// short, its text ("a string \"abc\"", "the number -4", "an array").
std::string describe_json(const nlohmann::json& value);

}  // namespace moesim
