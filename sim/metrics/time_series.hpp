#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/common/time.hpp"

namespace moesim {

// How the values recorded in one window of a column combine.
enum class Aggregation { sum, mean, max };

struct SeriesColumn {
  std::string name;
  Aggregation aggregation;
};

// Values in fixed windows of simulated time. Columns are declared once and then
// addressed by index, so recording is an array update. Storage grows with the
// simulated span, not with the number of requests.
class TimeSeries {
 public:
  TimeSeries(SimTime window, std::vector<SeriesColumn> columns);

  void record(SimTime at, int column, double value);
  // Extends the series to cover time `at` (so idle windows at the end appear as zeros).
  void extend_to(SimTime at);

  SimTime window() const { return window_; }
  std::size_t windows() const { return windows_; }
  double value(std::size_t window_index, int column) const;

  // {"window_s": w, "start_s": [...], "<column>": [...], ...}
  nlohmann::json to_json() const;

 private:
  std::size_t window_of(SimTime at);

  SimTime window_;
  std::vector<SeriesColumn> columns_;
  std::size_t windows_ = 0;
  std::vector<std::vector<double>> values_;   // per column, per window
  std::vector<std::vector<double>> samples_;  // per column, per window (mean columns only)
};

}  // namespace moesim
