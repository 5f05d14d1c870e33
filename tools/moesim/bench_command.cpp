#include "tools/moesim/commands.hpp"

namespace moesim::cli {

// Placeholder until the command lands.
void add_bench_command(CLI::App&) {}

}  // namespace moesim::cli
