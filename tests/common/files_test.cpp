#include <filesystem>

#include <catch2/catch.hpp>

#include "sim/common/error.hpp"
#include "sim/common/files.hpp"
#include "sim/common/paths.hpp"

using namespace moesim;
using Catch::Matchers::Contains;

TEST_CASE("atomic writes leave the complete file and no temporary", "[common][files]") {
  const auto directory = std::filesystem::temp_directory_path() / "moesim_files_test";
  std::filesystem::remove_all(directory);
  const auto file = directory / "nested" / "report.json";
  write_file_atomically(file, "first");
  write_file_atomically(file, "second version");
  CHECK(read_text_file(file) == "second version");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(file.parent_path()))
    ++entries;
  CHECK(entries == 1);
  std::filesystem::remove_all(directory);
}

TEST_CASE("reading a missing file names it", "[common][files]") {
  CHECK_THROWS_WITH(read_text_file("/nonexistent/moesim.json"),
                    Contains("/nonexistent/moesim.json: cannot open"));
  CHECK_THROWS_WITH(read_text_file(std::filesystem::temp_directory_path()), Contains("is a directory"));
}

TEST_CASE("user paths expand MOESIM_DATA and resolve relative to their file", "[common][paths]") {
  CHECK(resolve_user_path("a/b.json", "/base/dir") == std::filesystem::path("/base/dir/a/b.json"));
  CHECK(resolve_user_path("/abs/x.csv", "/base") == std::filesystem::path("/abs/x.csv"));
  CHECK(resolve_user_path("${MOESIM_DATA}/traces/t.csv", "/base") ==
        (data_directory() / "traces/t.csv").lexically_normal());
  CHECK(resolve_catalogue_entry("deepseek-v3", "models", "/base") ==
        home_directory() / "models/deepseek-v3.json");
  CHECK(resolve_catalogue_entry("my/model.json", "models", "/base") ==
        std::filesystem::path("/base/my/model.json"));
}
