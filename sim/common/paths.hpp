#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace moesim {

// The folder of real data (traces, routing counts): $MOESIM_DATA if set, else the
// shared/data folder beside the moesim checkout.
std::filesystem::path data_directory();

// The folder holding the shipped catalogue (models/, topologies/, ...):
// $MOESIM_HOME if set, else the source tree moesim was built from.
std::filesystem::path home_directory();

// Resolves a path written in a user file: expands ${MOESIM_DATA} and ${MOESIM_HOME},
// and makes relative paths relative to `base_directory` (the folder of the file
// that names them).
std::filesystem::path resolve_user_path(std::string_view written,
                                        const std::filesystem::path& base_directory);

// Resolves a catalogue reference: a value ending in ".json" or containing '/' is a
// path (as resolve_user_path); a bare name such as "deepseek-v3" is looked up as
// <home>/<catalogue_subdir>/<name>.json.
std::filesystem::path resolve_catalogue_entry(std::string_view reference, std::string_view catalogue_subdir,
                                              const std::filesystem::path& base_directory);

}  // namespace moesim
