// afd/report/svg_plot.h: the SVG line charts of afd_run eval (issue 9's plots): well-formed XML with
// escaped text (checked by the minimal parser in tests/support/xml.h), one <path> per series named
// by data-series, every coordinate inside the viewBox, monotone data drawn monotone, NaN breaks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "afd/report/svg_plot.h"
#include "tensor/error.h"
#include "tests/data/temp_dir.h"
#include "tests/support/xml.h"

namespace afd::report {
namespace {

using afd::testing::parse_xml;
using afd::testing::XmlElement;

struct PathPoint {
  char command;  // 'M' or 'L'
  double x, y;
};

std::vector<PathPoint> path_points(const std::string& d) {
  std::istringstream in(d);
  std::vector<PathPoint> pts;
  for (std::string cmd; in >> cmd;) {
    PathPoint p{cmd[0], 0, 0};
    EXPECT_TRUE(p.command == 'M' || p.command == 'L') << d;
    p.x = std::stod(cmd.substr(1));
    in >> p.y;
    pts.push_back(p);
  }
  return pts;
}

LineChart two_models() {
  LineChart c;
  c.title = "pgd-linf <white-box> & \"more\"";
  c.x_label = "eps (linf)";
  c.y_label = "robust accuracy (%)";
  c.y_min = 0;
  c.y_max = 100;
  c.series.push_back({"AT", {0, 0.1, 0.3, 0.35, 0.4}, {99, 97, 90, 60, 20}});
  c.series.push_back({"AFD <wgan> & 'co'", {0, 0.1, 0.3, 0.35, 0.4}, {99, 98, 93, 80, 45}});
  c.series.push_back({"NT", {0, 0.1, 0.3, 0.35, 0.4}, {99, 30, 0, 0, 0}});
  return c;
}

TEST(SvgPlot, WellFormedWithTheSeriesNamesAndOnePathEach) {
  const LineChart c = two_models();
  const std::string svg = render_svg(c);
  XmlElement root;
  ASSERT_NO_THROW(root = parse_xml(svg)) << svg;
  EXPECT_EQ(root.name, "svg");
  EXPECT_EQ(root.attrs.at("xmlns"), "http://www.w3.org/2000/svg");
  const auto paths = root.all("path");
  ASSERT_EQ(paths.size(), c.series.size());
  std::vector<std::string> texts;
  for (const XmlElement* t : root.all("text")) texts.push_back(t->text);
  for (size_t k = 0; k < c.series.size(); ++k) {
    EXPECT_EQ(paths[k]->attrs.at("data-series"), c.series[k].name);
    EXPECT_EQ(path_points(paths[k]->attrs.at("d")).size(), c.series[k].x.size());
    EXPECT_NE(std::find(texts.begin(), texts.end(), c.series[k].name), texts.end()) << c.series[k].name << " not in the legend";
  }
  for (const char* label : {"pgd-linf <white-box> & \"more\"", "eps (linf)", "robust accuracy (%)", "0", "100", "0.1", "0.4"})
    EXPECT_NE(std::find(texts.begin(), texts.end(), label), texts.end()) << label;
  // The raw text never holds an unescaped name.
  EXPECT_EQ(svg.find("<wgan>"), std::string::npos);
  // Each series has its own colour.
  EXPECT_NE(paths[0]->attrs.at("stroke"), paths[1]->attrs.at("stroke"));
}

TEST(SvgPlot, ScatterIsWellFormedWithMarkersOnly) {
  LineChart c;
  c.title = "d_hat vs error gap";
  c.x_label = "d_hat";
  c.y_label = "error gap (%)";
  c.lines = false;
  c.markers = false;  // a scatter draws its markers regardless
  c.series.push_back({"pgd-linf", {0.2, 1.5, 0.7}, {3, 40, 12}});
  c.series.push_back({"fgsm", {0.1, NAN}, {1, 5}});
  XmlElement root;
  ASSERT_NO_THROW(root = parse_xml(render_svg(c)));
  const auto paths = root.all("path");
  ASSERT_EQ(paths.size(), 2u);
  for (const XmlElement* p : paths) EXPECT_EQ(p->attrs.at("stroke"), "none");
  // One marker per finite point (3 + 1) and one legend swatch per series (2).
  EXPECT_EQ(root.all("circle").size(), 6u);
  const double w = std::stod(root.attrs.at("width")), h = std::stod(root.attrs.at("height"));
  for (const XmlElement* m : root.all("circle")) {
    EXPECT_GE(std::stod(m->attrs.at("cx")), 0);
    EXPECT_LE(std::stod(m->attrs.at("cx")), w);
    EXPECT_GE(std::stod(m->attrs.at("cy")), 0);
    EXPECT_LE(std::stod(m->attrs.at("cy")), h);
  }
}

TEST(SvgPlot, EveryCoordinateInsideTheViewBox) {
  LineChart c = two_models();
  c.width = 500;
  c.height = 300;
  const XmlElement root = parse_xml(render_svg(c));
  std::istringstream vb(root.attrs.at("viewBox"));
  double x0, y0, w, h;
  vb >> x0 >> y0 >> w >> h;
  EXPECT_EQ(x0, 0);
  EXPECT_EQ(y0, 0);
  EXPECT_EQ(w, 500);
  EXPECT_EQ(h, 300);
  auto check = [&](double x, double y, const std::string& what) {
    EXPECT_TRUE(x >= 0 && x <= w && y >= 0 && y <= h) << what << " at (" << x << ", " << y << ")";
  };
  int checked = 0;
  for (const XmlElement* p : root.all("path"))
    for (const PathPoint& q : path_points(p->attrs.at("d"))) check(q.x, q.y, "path"), ++checked;
  for (const XmlElement* e : root.all("circle"))
    check(std::stod(e->attrs.at("cx")), std::stod(e->attrs.at("cy")), "circle"), ++checked;
  for (const XmlElement* e : root.all("line")) {
    check(std::stod(e->attrs.at("x1")), std::stod(e->attrs.at("y1")), "line start");
    check(std::stod(e->attrs.at("x2")), std::stod(e->attrs.at("y2")), "line end");
    ++checked;
  }
  for (const XmlElement* e : root.all("text")) check(std::stod(e->attrs.at("x")), std::stod(e->attrs.at("y")), "text " + e->text), ++checked;
  EXPECT_GT(checked, 40);
  EXPECT_EQ(root.all("circle").size(), 15u);  // markers: one per point
}

TEST(SvgPlot, MonotoneCurvesAreDrawnMonotone) {
  LineChart c;
  c.series.push_back({"down", {0, 0.1, 0.2, 0.3, 0.5}, {0.99, 0.9, 0.9, 0.4, 0.0}});   // non-increasing
  c.series.push_back({"up", {1, 2, 5, 10}, {3, 3.5, 8, 100}});                        // increasing
  const XmlElement root = parse_xml(render_svg(c));
  const auto paths = root.all("path");
  ASSERT_EQ(paths.size(), 2u);
  const auto down = path_points(paths[0]->attrs.at("d")), up = path_points(paths[1]->attrs.at("d"));
  ASSERT_EQ(down.size(), 5u);
  ASSERT_EQ(up.size(), 4u);
  EXPECT_EQ(down[0].command, 'M');
  for (size_t i = 1; i < down.size(); ++i) {
    EXPECT_EQ(down[i].command, 'L');
    EXPECT_GT(down[i].x, down[i - 1].x);
    EXPECT_GE(down[i].y, down[i - 1].y);  // SVG y grows downwards: a falling curve goes down the page
  }
  EXPECT_DOUBLE_EQ(down[1].y, down[2].y);  // equal values, equal heights
  for (size_t i = 1; i < up.size(); ++i) EXPECT_LT(up[i].y, up[i - 1].y);
}

TEST(SvgPlot, NanBreaksTheLineAndASinglePointStillPlots) {
  LineChart c;
  c.series.push_back({"gap", {0, 1, 2, 3}, {1, NAN, 0.5, 0.2}});
  c.series.push_back({"one point", {0.3}, {0.7}});  // e.g. AutoAttack at one eps
  const XmlElement root = parse_xml(render_svg(c));
  const auto paths = root.all("path");
  const auto gap = path_points(paths[0]->attrs.at("d"));
  ASSERT_EQ(gap.size(), 3u);
  EXPECT_EQ(gap[0].command, 'M');
  EXPECT_EQ(gap[1].command, 'M');  // after the NaN
  EXPECT_EQ(gap[2].command, 'L');
  EXPECT_EQ(path_points(paths[1]->attrs.at("d")).size(), 1u);
  EXPECT_EQ(root.all("circle").size(), 4u);
  LineChart empty;
  EXPECT_NO_THROW(parse_xml(render_svg(empty)));
  LineChart bad;
  bad.series.push_back({"x", {0, 1}, {1}});
  EXPECT_THROW(render_svg(bad), Error);
}

TEST(SvgPlot, NiceTicksAndEscaping) {
  EXPECT_EQ(nice_ticks(0, 100, 5), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  const std::vector<double> t = nice_ticks(0, 0.5, 6);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_NEAR(t[3], 0.3, 1e-12);
  EXPECT_EQ(nice_ticks(1, 5, 4), (std::vector<double>{1, 2, 3, 4, 5}));
  EXPECT_EQ(xml_escape("a<b>&\"c\"'d'"), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
  EXPECT_EQ(xml_escape(std::string("x\x01y")), "x y");
}

TEST(SvgPlot, TheCheckerRejectsMalformedXml) {
  EXPECT_NO_THROW(parse_xml("<?xml version=\"1.0\"?>\n<a x=\"1\"><!-- c --><b/>t&amp;</a>\n"));
  for (const char* bad : {"<a><b></a></b>", "<a>&nbsp;</a>", "<a x=1/>", "<a x=\"1\" x=\"2\"/>", "<a>x<y</a>",
                          "<a/><b/>", "<a>", "<a x=\"<\"/>"})
    EXPECT_THROW(parse_xml(bad), std::runtime_error) << bad;
}

TEST(SvgPlot, WriteSvgCreatesTheFolder) {
  afd::testing::TempDir dir;
  const std::string path = dir / "plots/a.svg";
  write_svg(path, two_models());
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_EQ(ss.str(), render_svg(two_models()));
}

}  // namespace
}  // namespace afd::report
