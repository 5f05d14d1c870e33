#include "sim/common/line_reader.hpp"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "sim/common/error.hpp"

namespace moesim {

namespace {
constexpr std::size_t kInitialBufferBytes = 1 << 20;
}

LineReader::LineReader(const std::filesystem::path& file) : name_(file.string()) {
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    throw InputError(name_, "", "is a directory, expected a text file");
  }
  file_ = std::fopen(name_.c_str(), "rb");
  if (file_ == nullptr) {
    throw InputError(name_, "", fmt::format("cannot open file ({})", std::strerror(errno)));
  }
  buffer_.resize(kInitialBufferBytes);
}

LineReader::~LineReader() {
  if (file_ != nullptr) std::fclose(file_);
}

bool LineReader::refill() {
  if (at_eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // A line longer than the buffer doubles it; ordinary files never get here.
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
  const std::size_t got = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_);
  if (got == 0) {
    if (std::ferror(file_)) throw InputError(name_, "", "read error");
    at_eof_ = true;
    return false;
  }
  end_ += got;
  return true;
}

bool LineReader::next(std::string_view& line) {
  std::size_t scanned = begin_;
  for (;;) {
    const void* newline = std::memchr(buffer_.data() + scanned, '\n', end_ - scanned);
    if (newline != nullptr) {
      const auto at = static_cast<std::size_t>(static_cast<const char*>(newline) - buffer_.data());
      std::size_t length = at - begin_;
      if (length > 0 && buffer_[at - 1] == '\r') --length;
      line = std::string_view(buffer_.data() + begin_, length);
      begin_ = at + 1;
      ++line_number_;
      return true;
    }
    const std::size_t already = end_ - begin_;
    if (!refill()) break;
    scanned = begin_ + already;
  }
  if (begin_ == end_) return false;
  // The last line has no newline: return it as it is; a cut-off row fails its own checks.
  std::size_t length = end_ - begin_;
  if (buffer_[end_ - 1] == '\r') --length;
  line = std::string_view(buffer_.data() + begin_, length);
  begin_ = end_;
  ++line_number_;
  return true;
}

}  // namespace moesim
