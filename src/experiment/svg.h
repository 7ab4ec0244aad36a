// Plots as standalone SVG text (no scripts, no external files): line plots with error bars and
// grouped bar charts, for the reproduce report.
#pragma once

#include <string>
#include <vector>

namespace tlm::experiment {

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> err;  // (y.size()) half-widths of error bars, or empty
  bool dashed = false;
};

struct LinePlot {
  std::string id;  // data-plot attribute, for tests and links
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_x = false;
  bool zero_line = false;  // a horizontal line at y = 0 (for gaps)
};

struct BarGroup {
  std::string name;            // legend entry
  std::vector<double> values;  // one per category
};

struct BarPlot {
  std::string id;
  std::string title, y_label;
  std::vector<std::string> categories;
  std::vector<BarGroup> groups;
};

std::string render_svg(const LinePlot& plot);
std::string render_svg(const BarPlot& plot);

// Text escaped for XML and HTML.
std::string escape_xml(const std::string& text);

}  // namespace tlm::experiment
