#include "afd/report/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tensor/error.h"

namespace afd::report {

namespace {

// Tableau 10: distinguishable colours, one per series (cycled).
const char* kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                         "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

// A tick label: as few digits as tell the ticks apart ("0.1", "0.35", "100").
std::string tick_text(double v, double step) {
  if (std::abs(v) < step * 1e-9) return "0";
  const int decimals = std::max(0, int(std::ceil(-std::log10(step) - 1e-9)));
  return fmt::format("{:.{}f}", v, std::min(decimals, 6));
}

struct Range {
  double lo, hi;
};

// The data range of one axis (NaNs skipped), widened when empty or a single value.
Range data_range(const LineChart& c, bool x_axis) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : c.series)
    for (double v : x_axis ? s.x : s.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo)) return {0, 1};
  if (hi - lo < 1e-12) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.5;
    return {lo - pad, hi + pad};
  }
  return {lo, hi};
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0 (except tab, newline, return).
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') out += ' ';
        else out += ch;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  AFD_CHECK(std::isfinite(lo) && std::isfinite(hi) && hi > lo && target >= 1, "nice_ticks: range [{}, {}], target {}",
            lo, hi, target);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw * 0.999) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  // Multiples k * step (not a running sum, which would drift: 0.1 + 0.1 + 0.1 != 0.3).
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1)
    ticks.push_back(k == 0 ? 0.0 : k * step);
  return ticks;
}

std::string render_svg(const LineChart& c) {
  for (const Series& s : c.series)
    AFD_CHECK(s.x.size() == s.y.size(), "render_svg: series '{}' has {} x and {} y values", s.name, s.x.size(),
              s.y.size());
  AFD_CHECK(c.width >= 200 && c.height >= 150, "render_svg: {}x{} is too small (at least 200x150)", c.width, c.height);
  Range xr = data_range(c, true), yr = data_range(c, false);
  if (c.x_min) xr.lo = *c.x_min;
  if (c.x_max) xr.hi = *c.x_max;
  if (c.y_min) yr.lo = *c.y_min;
  if (c.y_max) yr.hi = *c.y_max;
  AFD_CHECK(xr.hi > xr.lo && yr.hi > yr.lo, "render_svg: empty axis range x [{}, {}], y [{}, {}]", xr.lo, xr.hi, yr.lo,
            yr.hi);

  // The plot area: margins for the title, tick labels, axis labels; the legend inside at the right.
  const double left = 64, right = c.width - 16, top = 36, bottom = c.height - 48;
  auto px = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - yr.lo) / (yr.hi - yr.lo) * (bottom - top); };
  auto inside = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && x >= xr.lo && x <= xr.hi && y >= yr.lo && y <= yr.hi;
  };

  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      c.width, c.height);
  s += fmt::format("<text x=\"{:.1f}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n", (left + right) / 2,
                   xml_escape(c.title));
  // Grid lines and ticks.
  const std::vector<double> xt = nice_ticks(xr.lo, xr.hi, 6), yt = nice_ticks(yr.lo, yr.hi, 5);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : xr.hi - xr.lo, ystep = yt.size() > 1 ? yt[1] - yt[0] : yr.hi - yr.lo;
  for (double t : xt) {
    s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#e0e0e0\"/>\n", px(t), top,
                     bottom);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", px(t), bottom + 16,
                     tick_text(t, xstep));
  }
  for (double t : yt) {
    s += fmt::format("<line x1=\"{1:.1f}\" y1=\"{0:.1f}\" x2=\"{2:.1f}\" y2=\"{0:.1f}\" stroke=\"#e0e0e0\"/>\n", py(t), left,
                     right);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, py(t) + 4,
                     tick_text(t, ystep));
  }
  // Axes and their labels.
  s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"black\"/>\n", left, bottom, right);
  s += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"black\"/>\n", left, top, bottom);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", (left + right) / 2, c.height - 10,
                   xml_escape(c.x_label));
  s += fmt::format("<text x=\"16\" y=\"{0:.1f}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {0:.1f})\">{1}</text>\n",
                   (top + bottom) / 2, xml_escape(c.y_label));

  // One path per series: points outside the axis ranges or NaN break the line (a new M).
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& ser = c.series[k];
    const char* color = kColors[k % std::size(kColors)];
    std::string d;
    bool pen_down = false;
    for (size_t i = 0; i < ser.x.size(); ++i) {
      if (!inside(ser.x[i], ser.y[i])) {
        pen_down = false;
        continue;
      }
      d += fmt::format("{}{}{:.2f} {:.2f}", d.empty() ? "" : " ", pen_down ? "L" : "M", px(ser.x[i]), py(ser.y[i]));
      pen_down = true;
    }
    s += fmt::format("<path data-series=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                     xml_escape(ser.name), d, c.lines ? color : "none");
    if (c.markers || !c.lines)
      for (size_t i = 0; i < ser.x.size(); ++i)
        if (inside(ser.x[i], ser.y[i]))
          s += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"3\" fill=\"{}\"/>\n", px(ser.x[i]), py(ser.y[i]), color);
  }
  // The legend: top right inside the plot area, one swatch and name per series.
  for (size_t k = 0; k < c.series.size(); ++k) {
    const double y = top + 14 + 16 * double(k);
    const double x = right - 150;
    if (c.lines)
      s += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                       x, y - 4, x + 20, y - 4, kColors[k % std::size(kColors)]);
    else
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n", x + 10, y - 4,
                       kColors[k % std::size(kColors)]);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", x + 26, y, xml_escape(c.series[k].name));
  }
  s += "</svg>\n";
  return s;
}

void write_svg(const std::string& path, const LineChart& chart) {
  const std::string text = render_svg(chart);
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  std::ofstream f(path);
  AFD_CHECK(f, "write_svg {}: cannot open the file for writing", path);
  f << text;
  f.close();
  AFD_CHECK(f, "write_svg {}: write failed", path);
}

}  // namespace afd::report
