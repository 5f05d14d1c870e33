#include "sim/metrics/time_series.hpp"

#include <algorithm>

#include "sim/common/error.hpp"

namespace moesim {

TimeSeries::TimeSeries(SimTime window, std::vector<SeriesColumn> columns)
    : window_(window), columns_(std::move(columns)), values_(columns_.size()), samples_(columns_.size()) {
  if (window_ <= 0) throw InternalError("time series window must be positive");
}

std::size_t TimeSeries::window_of(SimTime at) {
  const auto index = static_cast<std::size_t>(std::max<SimTime>(at, 0) / window_);
  if (index >= windows_) {
    windows_ = index + 1;
    for (std::size_t column = 0; column < columns_.size(); ++column) {
      values_[column].resize(windows_, 0.0);
      if (columns_[column].aggregation == Aggregation::mean) samples_[column].resize(windows_, 0.0);
    }
  }
  return index;
}

void TimeSeries::extend_to(SimTime at) {
  window_of(at);
}

void TimeSeries::record(SimTime at, int column, double value) {
  const std::size_t index = window_of(at);
  auto& slot = values_[static_cast<std::size_t>(column)][index];
  switch (columns_[static_cast<std::size_t>(column)].aggregation) {
    case Aggregation::sum:
      slot += value;
      break;
    case Aggregation::mean:
      slot += value;
      samples_[static_cast<std::size_t>(column)][index] += 1.0;
      break;
    case Aggregation::max:
      slot = std::max(slot, value);
      break;
  }
}

double TimeSeries::value(std::size_t window_index, int column) const {
  const auto c = static_cast<std::size_t>(column);
  if (window_index >= windows_) return 0.0;
  if (columns_[c].aggregation == Aggregation::mean) {
    const double samples = samples_[c][window_index];
    return samples == 0.0 ? 0.0 : values_[c][window_index] / samples;
  }
  return values_[c][window_index];
}

nlohmann::json TimeSeries::to_json() const {
  nlohmann::json result;
  result["window_s"] = ns_to_seconds(window_);
  std::vector<double> starts(windows_);
  for (std::size_t i = 0; i < windows_; ++i)
    starts[i] = ns_to_seconds(static_cast<SimTime>(i) * window_);
  result["start_s"] = starts;
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    std::vector<double> column(windows_);
    for (std::size_t i = 0; i < windows_; ++i)
      column[i] = value(i, static_cast<int>(c));
    result[columns_[c].name] = column;
  }
  return result;
}

}  // namespace moesim
