#include "tools/moesim/commands.hpp"

namespace moesim::cli {

// Placeholder until the command lands.
void add_calibrate_commands(CLI::App&) {}

}  // namespace moesim::cli
