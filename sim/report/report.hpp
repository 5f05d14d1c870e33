#pragma once

#include <nlohmann/json.hpp>

#include "sim/config/scenario.hpp"
#include "sim/serving/simulation.hpp"

namespace moesim {

inline constexpr int kReportSchemaVersion = 1;

// Measurements of the simulator itself, taken by the front end around simulate().
struct SimulatorCost {
  double wall_s = 0;
  std::int64_t peak_rss_bytes = 0;
  // When set, wall-clock figures are written as 0 so two runs give byte-identical files.
  bool reproducible = false;
};

// The JSON report of one run; every field is documented in README.md ("Report").
nlohmann::json build_report(const Scenario& scenario, const SimulationResult& result,
                            const SimulatorCost& cost);

// Serialises with a fixed layout (sorted keys, two-space indent, trailing newline).
std::string render_report(const nlohmann::json& report);

}  // namespace moesim
