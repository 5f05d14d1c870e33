#include "sim/common/error.hpp"

#include <fmt/format.h>

namespace moesim {

InputError::InputError(std::string_view source, std::string_view place, std::string_view expected)
    : std::runtime_error(place.empty() ? fmt::format("{}: {}", source, expected)
                                       : fmt::format("{}: {}: {}", source, place, expected)) {}

}  // namespace moesim
