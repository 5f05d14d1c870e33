#include "tools/moesim/commands.hpp"

namespace moesim::cli {

// Placeholder until the command lands.
void add_models_commands(CLI::App&) {}

}  // namespace moesim::cli
