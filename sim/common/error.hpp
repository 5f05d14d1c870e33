#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace moesim {

// Bad input from a user-supplied file or option. The message always names the
// source (file or option), the place in it (key path, line, column) and what was
// expected, e.g. "scenario.json: deployment.ep: expected a positive integer, got -4".
// Front ends turn it into exit code 2; library code never exits.
class InputError : public std::runtime_error {
 public:
  InputError(std::string_view source, std::string_view place, std::string_view expected);
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

// A broken invariant inside moesim itself (a bug, not bad input).
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Exit codes shared by every front end.
inline constexpr int kExitOk = 0;
inline constexpr int kExitInputError = 2;
inline constexpr int kExitInternalError = 3;

}  // namespace moesim
