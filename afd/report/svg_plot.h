// Line charts as SVG text, written by the project (no plotting runtime): axes with "nice" ticks,
// axis labels, a title, a legend and one <path> per series (optionally a marker per point), or
// scatter plots (lines = false: markers only). afd_run eval draws robust accuracy vs eps with one
// line per model (the paper's Figure 2) and d_hat and the error gap vs eps and against each other
// (Figure 3).
//
//   report::LineChart chart;
//   chart.title = "pgd-linf on mnist";
//   chart.x_label = "eps (linf)";
//   chart.y_label = "robust accuracy (%)";
//   chart.y_min = 0, chart.y_max = 100;
//   chart.series.push_back({"AT", {0, 0.1, 0.3}, {99, 97, 90}});
//   report::write_svg("out/plots/accuracy.svg", chart);
//
// The document is well-formed XML (text escaped), every coordinate lies inside its viewBox
// "0 0 width height", and each series is exactly one <path> element with data-series="NAME"; the
// axes, ticks and legend use <line> and <text> only. A NaN breaks a series' line at that point.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace afd::report {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  std::optional<double> x_min, x_max, y_min, y_max;  // axis ranges (default: the data's, padded)
  bool markers = true;                                // a circle at every point
  // false: a scatter plot, markers only (each series' <path> is still written, with stroke="none",
  // so a series stays one <path>; the legend swatch is a circle).
  bool lines = true;
  double width = 640, height = 400;                   // pixels (the viewBox)
};

// Text safe inside XML elements and attribute values: & < > " ' escaped.
std::string xml_escape(const std::string& text);

// About `target` round tick values (1, 2 or 5 times a power of ten apart) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

std::string render_svg(const LineChart& chart);
void write_svg(const std::string& path, const LineChart& chart);  // creates the parent folder

}  // namespace afd::report
