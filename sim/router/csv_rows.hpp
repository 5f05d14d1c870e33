#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string_view>

namespace moesim {

// Rows of a small CSV file held in memory (the measured routing files, read whole).

// The line that starts at `at` (without its "\n" or "\r\n"); `at` moves past it. False at the end.
inline bool next_csv_line(std::string_view text, std::size_t& at, std::string_view& line) {
  if (at >= text.size()) return false;
  const std::size_t end = std::min(text.find('\n', at), text.size());
  line = text.substr(at, end - at);
  at = end + 1;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return true;
}

// Splits `line` at its commas into `fields` (the first fields.size() of them) and returns how many
// fields the line has, which may be more than fields.size().
inline int split_csv_fields(std::string_view line, std::span<std::string_view> fields) {
  int count = 0;
  for (std::size_t start = 0;; ++count) {
    const std::size_t comma = line.find(',', start);
    if (static_cast<std::size_t>(count) < fields.size())
      fields[count] = line.substr(start, comma == std::string_view::npos ? line.npos : comma - start);
    if (comma == std::string_view::npos) return count + 1;
    start = comma + 1;
  }
}

}  // namespace moesim
