#include "sim/common/paths.hpp"

#include <cstdlib>

namespace moesim {

namespace {

std::string replace_all(std::string text, std::string_view from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

}  // namespace

std::filesystem::path home_directory() {
  if (const char* home = std::getenv("MOESIM_HOME"); home != nullptr && *home != '\0') return home;
  return MOESIM_SOURCE_DIR;
}

std::filesystem::path data_directory() {
  if (const char* data = std::getenv("MOESIM_DATA"); data != nullptr && *data != '\0') return data;
  return (home_directory().parent_path() / "shared" / "data").lexically_normal();
}

std::filesystem::path resolve_user_path(std::string_view written,
                                        const std::filesystem::path& base_directory) {
  std::string text(written);
  text = replace_all(std::move(text), "${MOESIM_DATA}", data_directory().string());
  text = replace_all(std::move(text), "${MOESIM_HOME}", home_directory().string());
  std::filesystem::path path(text);
  if (path.is_relative()) path = base_directory / path;
  return path.lexically_normal();
}

std::filesystem::path resolve_catalogue_entry(std::string_view reference, std::string_view catalogue_subdir,
                                              const std::filesystem::path& base_directory) {
  const bool is_path = reference.ends_with(".json") || reference.find('/') != std::string_view::npos;
  if (is_path) return resolve_user_path(reference, base_directory);
  return home_directory() / catalogue_subdir / (std::string(reference) + ".json");
}

}  // namespace moesim
