#pragma once

#include <string>
#include <string_view>
#include <vector>

// Small, self-contained SVG charts for the HTML report: axes with ticks, labels,
// units and a legend, drawn from plain vectors. No scripts and no external fonts;
// every text taken from the input is escaped. The output depends only on the
// arguments, so a report renders to the same bytes every time.
namespace moesim::svg {

// Escapes &, <, >, " and ' for text and attribute values of HTML and SVG.
std::string escape(std::string_view text);

// A number for a tick label or a tooltip: at most `digits` significant digits, no
// exponent between 1e-4 and 1e6, thousands as "k" and millions as "M" above that.
std::string format_number(double value, int digits = 3);

// Rounded tick positions covering [low, high] (1, 2 or 5 times a power of ten),
// about `target` of them.
std::vector<double> nice_ticks(double low, double high, int target);

enum class Scale { linear, log10 };

struct Axis {
  std::string label{};  // with the unit, e.g. "time (s)"
  Scale scale = Scale::linear;
  // Categorical axis: position i is labelled labels[i] (values are indices).
  std::vector<std::string> categories{};
  // Fixed ticks with their own labels (e.g. a percentile axis); empty: automatic.
  std::vector<double> tick_values{};
  std::vector<std::string> tick_labels{};
  // Include zero in a linear axis range (for counts and rates).
  bool from_zero = true;
};

struct Series {
  std::string name{};
  std::vector<double> x{};
  std::vector<double> y{};
  bool markers = false;  // a dot at every point, with its value as a tooltip
};

struct LineChart {
  std::string id{};  // data-chart attribute, for tests and anchors
  std::string title{};
  Axis x{};
  Axis y{};
  std::vector<Series> series{};
  int width = 560;
  int height = 300;
};

// Lines through each series' points (non-finite points break the line); points
// outside a log axis's range (<= 0) are dropped.
std::string line_chart(const LineChart& chart);

struct BarChart {
  std::string id{};
  std::string title{};
  std::string x_label{};
  std::string y_label{};
  std::vector<std::string> labels{};  // one per bar; thinned out when they would overlap
  std::vector<double> values{};
  // A horizontal reference line (e.g. the mean); not drawn when not finite.
  double reference = 0;
  std::string reference_label{};
  int width = 560;
  int height = 260;
};

std::string bar_chart(const BarChart& chart);

// One horizontal bar split into named parts (e.g. where the busy time went).
struct StackedBar {
  std::string id{};
  std::string title{};
  std::string unit{};
  std::vector<std::string> names{};
  std::vector<double> values{};  // negative parts are skipped
  int width = 1120;
};

std::string stacked_bar(const StackedBar& chart);

struct HeatMap {
  std::string id{};
  std::string title{};
  std::string row_label{};     // e.g. "MoE layer"
  std::string column_label{};  // e.g. "expert"
  std::string value_label{};   // the colour scale's legend, with its unit
  std::size_t rows = 0;
  std::size_t columns = 0;
  std::vector<double> values{};  // row-major, rows x columns
  int width = 1120;
};

// Cells coloured on the viridis scale from the smallest to the largest value, with a
// colour scale legend; a tooltip per cell when the map is small enough to keep light.
std::string heat_map(const HeatMap& chart);

// The viridis colour of t in [0, 1] as "#rrggbb" (clamped).
std::string viridis(double t);

// The series colours, in order.
const std::vector<std::string>& palette();

}  // namespace moesim::svg
