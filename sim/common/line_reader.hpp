#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moesim {

// Reads a text file one line at a time through a fixed buffer, so memory does not grow
// with the file (only with its longest line). Lines come without their "\n" or "\r\n".
class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& file);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // False at the end of the file. The view is valid until the next call.
  bool next(std::string_view& line);
  // 1-based number of the line last returned.
  std::uint64_t line_number() const { return line_number_; }
  // The file as named in error messages.
  const std::string& name() const { return name_; }

 private:
  bool refill();

  std::string name_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;  // first unread byte
  std::size_t end_ = 0;    // one past the last valid byte
  bool at_eof_ = false;
  std::uint64_t line_number_ = 0;
};

}  // namespace moesim
