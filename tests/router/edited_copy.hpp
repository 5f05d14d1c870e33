#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>

namespace moesim::test {

// A copy of `source` in the scratch folder `folder` (under the system's temporary directory), named
// `name`, whose text is `edit` of the source's: the malformed files of the parsers' tests.
inline std::filesystem::path edited_copy(const std::filesystem::path& source, const std::string& folder,
                                         const std::string& name,
                                         const std::function<std::string(std::string)>& edit) {
  const auto directory = std::filesystem::temp_directory_path() / folder;
  std::filesystem::create_directories(directory);
  std::ifstream in(source);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto file = directory / name;
  std::ofstream(file) << edit(text);
  return file;
}

// `text` with the first `from` replaced by `to` (the test fails when there is none).
inline std::string replace(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace moesim::test
