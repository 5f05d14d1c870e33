#include "sim/report/svg.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace moesim::svg {

namespace {

constexpr double kLeftMargin = 64;
constexpr double kRightMargin = 16;
constexpr double kTitleHeight = 24;
constexpr double kLegendRowHeight = 16;
constexpr double kBottomMargin = 42;
constexpr int kTickTarget = 5;
// Per-cell tooltips make a large map heavy (a DeepSeek-V3 map has 58 x 256 cells).
constexpr std::size_t kMaxHeatMapTooltips = 4096;

std::string svg_open(const std::string& id, const std::string& title, double width, double height) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"{}\" width=\"{:.0f}\" "
      "height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" role=\"img\" aria-label=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
      "<text x=\"{:.1f}\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
      escape(id), width, height, width, height, escape(title), kLeftMargin, escape(title));
}

// Maps data values of one axis onto pixels.
struct Mapping {
  double low = 0;
  double high = 1;
  double pixel_low = 0;
  double pixel_high = 1;
  Scale scale = Scale::linear;

  double transform(double value) const { return scale == Scale::log10 ? std::log10(value) : value; }
  double operator()(double value) const {
    const double t = (transform(value) - low) / (high - low);
    return pixel_low + t * (pixel_high - pixel_low);
  }
  bool contains(double value) const {
    if (!std::isfinite(value) || (scale == Scale::log10 && value <= 0)) return false;
    const double v = transform(value);
    const double slack = 1e-9 * (high - low);
    return v >= low - slack && v <= high + slack;
  }
};

struct Ticks {
  std::vector<double> values;  // data values
  std::vector<std::string> labels;
};

// Chooses an axis's range (in transformed units) and its ticks from the data.
std::pair<Mapping, Ticks> plan_axis(const Axis& axis, const std::vector<double>& data) {
  Mapping mapping;
  mapping.scale = axis.scale;
  Ticks ticks;
  if (!axis.categories.empty()) {
    mapping.low = -0.5;
    mapping.high = static_cast<double>(axis.categories.size()) - 0.5;
    for (std::size_t i = 0; i < axis.categories.size(); ++i) {
      ticks.values.push_back(static_cast<double>(i));
      ticks.labels.push_back(axis.categories[i]);
    }
    return {mapping, ticks};
  }
  if (!axis.tick_values.empty()) {
    ticks.values = axis.tick_values;
    ticks.labels = axis.tick_labels;
    const auto [low, high] = std::minmax_element(axis.tick_values.begin(), axis.tick_values.end());
    mapping.low = mapping.transform(*low);
    mapping.high = mapping.transform(*high);
    if (mapping.high <= mapping.low) mapping.high = mapping.low + 1;
    return {mapping, ticks};
  }
  double low = std::numeric_limits<double>::infinity();
  double high = -std::numeric_limits<double>::infinity();
  for (double value : data) {
    if (!std::isfinite(value) || (axis.scale == Scale::log10 && value <= 0)) continue;
    low = std::min(low, value);
    high = std::max(high, value);
  }
  if (axis.scale == Scale::log10) {
    if (!std::isfinite(low)) low = high = 1;
    const int first = static_cast<int>(std::floor(std::log10(low)));
    int last = static_cast<int>(std::ceil(std::log10(high)));
    if (last == first) ++last;
    mapping.low = first;
    mapping.high = last;
    for (int decade = first; decade <= last; ++decade) {
      const double value = std::pow(10.0, decade);
      ticks.values.push_back(value);
      ticks.labels.push_back(format_number(value));
    }
    return {mapping, ticks};
  }
  if (!std::isfinite(low)) low = high = 0;
  if (axis.from_zero) {
    low = std::min(low, 0.0);
    high = std::max(high, 0.0);
  }
  if (high - low <= 0) {
    const double pad = low == 0 ? 1.0 : std::abs(low) * 0.1;
    low -= axis.from_zero && low >= 0 ? 0 : pad;
    high += pad;
  }
  ticks.values = nice_ticks(low, high, kTickTarget);
  for (double value : ticks.values)
    ticks.labels.push_back(format_number(value));
  mapping.low = ticks.values.front();
  mapping.high = ticks.values.back();
  return {mapping, ticks};
}

std::string legend(const std::vector<std::string>& names, double x, double y) {
  std::string out;
  double at = x;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& colour = palette()[i % palette().size()];
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"4\" fill=\"{}\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        at, y - 5, colour, at + 16, y, escape(names[i]));
    // Assumption (layout only): an average glyph is 6.5 px wide at 11 px sans-serif.
    at += 28 + 6.5 * static_cast<double>(names[i].size());
  }
  return out;
}

// Keeps every k-th label so that labels stay at least `min_spacing` pixels apart.
std::size_t label_stride(std::size_t count, double pixels, double min_spacing) {
  if (count == 0) return 1;
  const double spacing = pixels / static_cast<double>(count);
  return std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(min_spacing / spacing)));
}

std::string frame(const Mapping& x, const Ticks& x_ticks, const Axis& x_axis, const Mapping& y,
                  const Ticks& y_ticks, const Axis& y_axis, double height) {
  std::string out;
  const double left = x.pixel_low, right = x.pixel_high, top = y.pixel_high, bottom = y.pixel_low;
  for (std::size_t i = 0; i < y_ticks.values.size(); ++i) {
    if (!y.contains(y_ticks.values[i])) continue;
    const double py = y(y_ticks.values[i]);
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        left, py, right, py, left - 5, py + 4, escape(y_ticks.labels[i]));
  }
  const std::size_t stride = label_stride(x_ticks.values.size(), right - left, 44);
  for (std::size_t i = 0; i < x_ticks.values.size(); i += stride) {
    if (!x.contains(x_ticks.values[i])) continue;
    const double px = x(x_ticks.values[i]);
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
        px, top, px, bottom, px, bottom + 14, escape(x_ticks.labels[i]));
  }
  out += fmt::format(
      "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#888888\"/>\n",
      left, top, right - left, bottom - top);
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", (left + right) / 2,
                     height - 6, escape(x_axis.label));
  out +=
      fmt::format("<text transform=\"translate(14 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                  (top + bottom) / 2, escape(y_axis.label));
  return out;
}

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_number(double value, int digits) {
  if (!std::isfinite(value)) return "n/a";
  if (value == 0) return "0";
  const double magnitude = std::abs(value);
  auto significant = [digits](double v) {
    std::string text = fmt::format("{:.{}g}", v, digits);
    // %g switches to an exponent at 10^digits; write such values in full.
    if (text.find('e') != std::string::npos) text = fmt::format("{:.0f}", v);
    return text;
  };
  if (magnitude >= 1e9) return significant(value / 1e9) + "G";
  if (magnitude >= 1e6) return significant(value / 1e6) + "M";
  if (magnitude >= 1e4) return significant(value / 1e3) + "k";
  if (magnitude < 1e-4) return fmt::format("{:.{}e}", value, std::max(0, digits - 1));
  return significant(value);
}

std::vector<double> nice_ticks(double low, double high, int target) {
  if (!(high > low) || target < 1) return {low, high};
  const double raw = (high - low) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalised = raw / magnitude;
  const double step = (normalised < 1.5 ? 1 : normalised < 3 ? 2 : normalised < 7 ? 5 : 10) * magnitude;
  const auto first = static_cast<long long>(std::floor(low / step + 1e-9));
  const auto last = static_cast<long long>(std::ceil(high / step - 1e-9));
  std::vector<double> ticks;
  for (long long i = first; i <= last; ++i)
    ticks.push_back(static_cast<double>(i) * step);
  return ticks;
}

const std::vector<std::string>& palette() {
  // Tableau 10: distinguishable, also for the common colour-vision deficiencies.
  static const std::vector<std::string> colours = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return colours;
}

std::string viridis(double t) {
  static constexpr std::array<std::array<int, 3>, 9> anchors = {{{0x44, 0x01, 0x54},
                                                                 {0x47, 0x2d, 0x7b},
                                                                 {0x3b, 0x52, 0x8b},
                                                                 {0x2c, 0x72, 0x8e},
                                                                 {0x21, 0x91, 0x8c},
                                                                 {0x28, 0xae, 0x80},
                                                                 {0x5e, 0xc9, 0x62},
                                                                 {0xad, 0xdc, 0x30},
                                                                 {0xfd, 0xe7, 0x25}}};
  const double clamped = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
  const double position = clamped * static_cast<double>(anchors.size() - 1);
  const auto index = std::min(static_cast<std::size_t>(position), anchors.size() - 2);
  const double f = position - static_cast<double>(index);
  std::array<int, 3> rgb{};
  for (std::size_t c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(anchors[index][c] * (1 - f) + anchors[index + 1][c] * f));
  }
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

std::string line_chart(const LineChart& chart) {
  const double width = chart.width, height = chart.height;
  const bool has_legend = chart.series.size() > 1;
  const double top = kTitleHeight + (has_legend ? kLegendRowHeight : 0) + 6;
  std::vector<double> xs, ys;
  for (const auto& series : chart.series) {
    xs.insert(xs.end(), series.x.begin(), series.x.end());
    ys.insert(ys.end(), series.y.begin(), series.y.end());
  }
  auto [x, x_ticks] = plan_axis(chart.x, xs);
  auto [y, y_ticks] = plan_axis(chart.y, ys);
  x.pixel_low = kLeftMargin;
  x.pixel_high = width - kRightMargin;
  y.pixel_low = height - kBottomMargin;
  y.pixel_high = top;

  std::string out = svg_open(chart.id, chart.title, width, height);
  if (has_legend) {
    std::vector<std::string> names;
    for (const auto& series : chart.series)
      names.push_back(series.name);
    out += legend(names, kLeftMargin, kTitleHeight + 12);
  }
  out += frame(x, x_ticks, chart.x, y, y_ticks, chart.y, height);
  for (std::size_t s = 0; s < chart.series.size(); ++s) {
    const Series& series = chart.series[s];
    const std::string& colour = palette()[s % palette().size()];
    std::string path;
    std::string markers;
    bool pen_down = false;
    for (std::size_t i = 0; i < std::min(series.x.size(), series.y.size()); ++i) {
      if (!x.contains(series.x[i]) || !y.contains(series.y[i])) {
        pen_down = false;
        continue;
      }
      const double px = x(series.x[i]), py = y(series.y[i]);
      path += fmt::format("{}{:.1f},{:.1f}", pen_down ? " L" : (path.empty() ? "M" : " M"), px, py);
      pen_down = true;
      if (series.markers) {
        const std::string x_text = chart.x.categories.empty()
                                       ? format_number(series.x[i], 4)
                                       : chart.x.categories[static_cast<std::size_t>(series.x[i])];
        markers += fmt::format(
            "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{}: {}, {}</title></circle>\n",
            px, py, colour, escape(series.name), escape(x_text), format_number(series.y[i], 4));
      }
    }
    if (!path.empty()) {
      out += fmt::format(
          "<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" stroke-linejoin=\"round\"/>\n",
          path, colour);
    }
    out += markers;
  }
  out += "</svg>\n";
  return out;
}

std::string bar_chart(const BarChart& chart) {
  const double width = chart.width, height = chart.height;
  const bool has_reference = std::isfinite(chart.reference) && !chart.reference_label.empty();
  const double top = kTitleHeight + (has_reference ? kLegendRowHeight : 0) + 6;
  std::vector<double> data = chart.values;
  if (has_reference) data.push_back(chart.reference);
  Axis y_axis{.label = chart.y_label};
  auto [y, y_ticks] = plan_axis(y_axis, data);
  y.pixel_low = height - kBottomMargin;
  y.pixel_high = top;
  Axis x_axis{.label = chart.x_label, .categories = chart.labels};
  auto [x, x_ticks] = plan_axis(x_axis, {});
  x.pixel_low = kLeftMargin;
  x.pixel_high = width - kRightMargin;

  std::string out = svg_open(chart.id, chart.title, width, height);
  out += frame(x, x_ticks, x_axis, y, y_ticks, y_axis, height);
  const double slot =
      (x.pixel_high - x.pixel_low) / std::max<double>(1, static_cast<double>(chart.values.size()));
  const double bar = std::max(1.0, slot * 0.8);
  for (std::size_t i = 0; i < chart.values.size(); ++i) {
    const double value = std::isfinite(chart.values[i]) ? chart.values[i] : 0.0;
    const double base = y(0.0), py = y(value);
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
        "<title>{}: {}</title></rect>\n",
        x(static_cast<double>(i)) - bar / 2, std::min(base, py), bar, std::abs(base - py), palette()[0],
        escape(i < chart.labels.size() ? chart.labels[i] : std::to_string(i)), format_number(value, 4));
  }
  if (has_reference) {
    const double py = y(chart.reference);
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"5 3\"/>\n",
        x.pixel_low, py, x.pixel_high, py, palette()[2]);
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"1.5\" "
        "stroke-dasharray=\"5 3\"/><text x=\"{:.1f}\" y=\"{:.1f}\">{} ({})</text>\n",
        kLeftMargin, kTitleHeight + 7, kLeftMargin + 14, kTitleHeight + 7, palette()[2], kLeftMargin + 18,
        kTitleHeight + 11, escape(chart.reference_label), format_number(chart.reference, 4));
  }
  out += "</svg>\n";
  return out;
}

std::string stacked_bar(const StackedBar& chart) {
  const double width = chart.width;
  const double bar_top = kTitleHeight + 4, bar_height = 26;
  const std::size_t rows = (chart.names.size() + 2) / 3;
  const double height = bar_top + bar_height + 10 + static_cast<double>(rows) * kLegendRowHeight + 4;
  double total = 0;
  for (double value : chart.values)
    if (std::isfinite(value) && value > 0) total += value;
  std::string out = svg_open(chart.id, chart.title, width, height);
  const double left = kLeftMargin, span = width - kLeftMargin - kRightMargin;
  double at = left;
  for (std::size_t i = 0; i < chart.values.size() && i < chart.names.size(); ++i) {
    const double value = chart.values[i];
    const std::string& colour = palette()[i % palette().size()];
    const double share = total > 0 && std::isfinite(value) && value > 0 ? value / total : 0.0;
    if (share > 0) {
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>{}: {} {} ({:.1f} %)</title></rect>\n",
          at, bar_top, share * span, bar_height, colour, escape(chart.names[i]), format_number(value, 4),
          escape(chart.unit), 100 * share);
      at += share * span;
    }
    const double column_width = span / 3;
    const double lx = left + static_cast<double>(i % 3) * column_width;
    const double ly = bar_top + bar_height + 10 + static_cast<double>(i / 3) * kLegendRowHeight + 8;
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\">{}: {} {} ({:.1f} %)</text>\n",
        lx, ly - 9, colour, lx + 14, ly, escape(chart.names[i]), format_number(value, 4), escape(chart.unit),
        100 * share);
  }
  out += "</svg>\n";
  return out;
}

std::string heat_map(const HeatMap& chart) {
  const double width = chart.width;
  const double legend_height = 46;
  const double top = kTitleHeight + 6;
  const double left = kLeftMargin, right = width - kRightMargin;
  const double cell_height =
      chart.rows == 0 ? 8.0 : std::clamp(420.0 / static_cast<double>(chart.rows), 3.0, 16.0);
  const double plot_height = cell_height * static_cast<double>(chart.rows);
  const double bottom = top + plot_height;
  const double height = bottom + 34 + legend_height;
  const double cell_width = (right - left) / std::max<double>(1, static_cast<double>(chart.columns));

  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (double value : chart.values) {
    if (!std::isfinite(value)) continue;
    low = std::min(low, value);
    high = std::max(high, value);
  }
  if (!std::isfinite(low)) low = high = 0;
  const double range = high - low;
  const bool tooltips = chart.rows * chart.columns <= kMaxHeatMapTooltips;

  std::string out = svg_open(chart.id, chart.title, width, height);
  // Cells overlap by a fraction of a pixel so that no white seams show between them.
  for (std::size_t r = 0; r < chart.rows; ++r) {
    for (std::size_t c = 0; c < chart.columns; ++c) {
      const double value = chart.values[r * chart.columns + c];
      const double t = range > 0 ? (value - low) / range : 0.5;
      out +=
          fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"",
                      left + static_cast<double>(c) * cell_width, top + static_cast<double>(r) * cell_height,
                      cell_width + 0.3, cell_height + 0.3, viridis(t));
      if (tooltips) {
        out += fmt::format("><title>{} {}, {} {}: {}</title></rect>\n", escape(chart.row_label), r,
                           escape(chart.column_label), c, format_number(value, 4));
      } else {
        out += "/>\n";
      }
    }
    if (r + 1 == chart.rows || r % label_stride(chart.rows, plot_height, 14) == 0) {
      out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 5,
                         top + (static_cast<double>(r) + 0.5) * cell_height + 4, r);
    }
  }
  const std::size_t stride = label_stride(chart.columns, right - left, 36);
  for (std::size_t c = 0; c < chart.columns; c += stride) {
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                       left + (static_cast<double>(c) + 0.5) * cell_width, bottom + 14, c);
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", (left + right) / 2,
                     bottom + 28, escape(chart.column_label));
  out +=
      fmt::format("<text transform=\"translate(14 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                  (top + bottom) / 2, escape(chart.row_label));

  // The colour scale legend.
  const std::string gradient = "scale-" + escape(chart.id);
  const double legend_top = bottom + 38, legend_width = std::min(360.0, right - left);
  out += fmt::format("<defs><linearGradient id=\"{}\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">", gradient);
  constexpr int kStops = 16;
  for (int i = 0; i <= kStops; ++i) {
    const double t = static_cast<double>(i) / kStops;
    out += fmt::format("<stop offset=\"{:.3f}\" stop-color=\"{}\"/>", t, viridis(t));
  }
  out += "</linearGradient></defs>\n";
  out += fmt::format(
      "<rect class=\"colour-scale\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"12\" "
      "fill=\"url(#{})\" stroke=\"#888888\"/>\n",
      left, legend_top, legend_width, gradient);
  const double tick_low = range > 0 ? low : low - 1, tick_high = range > 0 ? high : high + 1;
  for (double tick : nice_ticks(tick_low, tick_high, 4)) {
    if (tick < tick_low - 1e-12 || tick > tick_high + 1e-12) continue;
    const double px = left + (tick - tick_low) / (tick_high - tick_low) * legend_width;
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#333333\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
        px, legend_top + 12, px, legend_top + 16, px, legend_top + 27, format_number(tick));
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", left + legend_width + 10, legend_top + 10,
                     escape(chart.value_label));
  out += "</svg>\n";
  return out;
}

}  // namespace moesim::svg
