#include "sim/common/files.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/format.h>
#include <unistd.h>

#include "sim/common/error.hpp"

namespace moesim {

std::string read_text_file(const std::filesystem::path& file) {
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    throw InputError(file.string(), "", "is a directory, expected a file");
  }
  std::ifstream stream(file, std::ios::binary);
  if (!stream) {
    throw InputError(file.string(), "", fmt::format("cannot open file ({})", std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  return std::move(buffer).str();
}

void write_file_atomically(const std::filesystem::path& file, std::string_view content) {
  const auto directory = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  std::error_code error;
  std::filesystem::create_directories(directory, error);
  if (error) {
    throw InputError(file.string(), "",
                     fmt::format("cannot create directory {}: {}", directory.string(), error.message()));
  }
  const auto temporary = directory / fmt::format(".{}.tmp.{}", file.filename().string(), ::getpid());
  {
    std::ofstream stream(temporary, std::ios::binary | std::ios::trunc);
    if (!stream) {
      throw InputError(file.string(), "", fmt::format("cannot write ({})", std::strerror(errno)));
    }
    stream.write(content.data(), static_cast<std::streamsize>(content.size()));
    stream.flush();
    if (!stream) {
      stream.close();
      std::filesystem::remove(temporary, error);
      throw InputError(file.string(), "", "write failed (disk full?)");
    }
  }
  std::filesystem::rename(temporary, file, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw InputError(file.string(), "",
                     fmt::format("cannot move the finished file into place: {}", error.message()));
  }
}

}  // namespace moesim
