#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace moesim {

// Reads a whole file; a missing or unreadable file is an InputError naming it.
std::string read_text_file(const std::filesystem::path& file);

// Writes `content` to a temporary file beside `file` and renames it into place,
// so readers never see a partial file and a failed run leaves nothing behind.
void write_file_atomically(const std::filesystem::path& file, std::string_view content);

}  // namespace moesim
