#include "tools/moesim/commands.hpp"

namespace moesim::cli {

// Placeholder until the command lands.
void add_run_commands(CLI::App&) {}

}  // namespace moesim::cli
