#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "sim/common/json_reader.hpp"
#include "sim/workload/workload.hpp"

namespace moesim::test {

inline std::filesystem::path fixture(std::string_view name) {
  return std::filesystem::path(MOESIM_TEST_SOURCE_DIR) / "tests" / "data" / "workload" / name;
}

// A per-process scratch folder, removed when the test executable ends.
struct ScratchFolder {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("moesim-workload-tests-" + std::to_string(::getpid()));
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};
inline ScratchFolder scratch_folder;

// Writes `content` to a fresh file in the scratch folder and returns its path.
inline std::filesystem::path scratch_file(std::string_view name, std::string_view content) {
  std::filesystem::create_directories(scratch_folder.path);
  const auto path = scratch_folder.path / name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

inline WorkloadSpec parse_workload_text(std::string_view text) {
  const auto json = JsonReader::parse_text(text, "scenario.json");
  return parse_workload(JsonReader(json, "scenario.json", "workload"),
                        std::filesystem::path(MOESIM_TEST_SOURCE_DIR));
}

inline std::vector<Request> drain(RequestSource& source) {
  std::vector<Request> requests;
  while (auto request = source.next())
    requests.push_back(std::move(*request));
  return requests;
}

inline std::vector<Request> drain(const WorkloadSpec& spec, std::uint64_t seed = 1) {
  const auto source = make_request_source(spec, seed);
  return drain(*source);
}

}  // namespace moesim::test
