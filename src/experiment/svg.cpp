#include "experiment/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace tlm::experiment {

namespace {

constexpr double kWidth = 560, kHeight = 340;
constexpr double kLeft = 64, kRight = 150, kTop = 36, kBottom = 52;  // margins; legend on the right
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

const char* color(size_t i) { return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))]; }

// Tick positions at multiples of 1, 2 or 5 times a power of ten, covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / 5;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  double step = p;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * p;
    if (step >= raw) break;
  }
  // From the tick at or below lo to the one at or above hi, so the frame holds every point.
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step, last = std::ceil(hi / step - 1e-9) * step;
  for (double t = first; t <= last + step * 1e-9; t += step) ticks.push_back(t);
  return ticks;
}

std::string fmt_tick(double v) {
  if (std::abs(v) < 1e-12) return "0";
  if (std::abs(v) >= 10000) return fmt::format("{:.0f}k", v / 1000);
  if (std::abs(v) >= 100) return fmt::format("{:.0f}", v);
  std::string s = fmt::format("{:.3g}", v);
  return s;
}

struct Frame {
  double x0, x1, y0, y1;
  bool log_x;
  double px(double x) const {
    const double a = log_x ? std::log10(x) : x, lo = log_x ? std::log10(x0) : x0, hi = log_x ? std::log10(x1) : x1;
    return kLeft + (a - lo) / (hi - lo) * (kWidth - kLeft - kRight);
  }
  double py(double y) const { return kHeight - kBottom - (y - y0) / (y1 - y0) * (kHeight - kTop - kBottom); }
};

std::string header(const std::string& id, const std::string& title) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"tlm-plot\" data-plot=\"{}\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
      escape_xml(id), kWidth, kHeight, kWidth, kHeight, kLeft, escape_xml(title));
}

std::string y_axis(const Frame& f, const std::vector<double>& ticks, const std::string& label) {
  std::string s;
  for (double t : ticks) {
    s += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e5e5e5\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n",
        kLeft, kWidth - kRight, f.py(t), f.py(t), kLeft - 6, f.py(t) + 4, fmt_tick(t));
  }
  s += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#333\"/>\n", kLeft, kTop,
                   kHeight - kBottom);
  s += fmt::format("<text transform=\"translate(16,{:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
                   (kTop + kHeight - kBottom) / 2, escape_xml(label));
  return s;
}

std::string legend(const std::vector<std::pair<std::string, bool>>& entries) {
  std::string s;
  for (size_t i = 0; i < entries.size(); ++i) {
    const double y = kTop + 8 + 18 * static_cast<double>(i), x = kWidth - kRight + 12;
    s += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"3\"{}/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n",
        x, x + 18, y, y, color(i), entries[i].second ? " stroke-dasharray=\"5,3\"" : "", x + 24, y + 4,
        escape_xml(entries[i].first));
  }
  return s;
}

}  // namespace

std::string escape_xml(const std::string& text) {
  std::string out;
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
      default:
        out += c;
    }
  }
  return out;
}

std::string render_svg(const LinePlot& plot) {
  double x0 = std::numeric_limits<double>::max(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : plot.series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      const double e = s.err.empty() ? 0 : s.err[i];
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i] - e);
      y1 = std::max(y1, s.y[i] + e);
    }
  }
  if (plot.zero_line) {
    y0 = std::min(y0, 0.0);
    y1 = std::max(y1, 0.0);
  }
  if (x0 > x1) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // no data: an empty frame
  if (x1 <= x0) x0 -= 0.5, x1 += 0.5;
  const double pad = (y1 > y0 ? y1 - y0 : 1) * 0.08;
  const std::vector<double> yt = nice_ticks(y0 - pad, y1 + pad);
  Frame f{x0, x1, yt.front(), yt.back(), plot.log_x && x0 > 0};
  if (!f.log_x && x1 > x0) {
    const double xp = (x1 - x0) * 0.04;
    f.x0 -= xp;
    f.x1 += xp;
  } else if (f.log_x) {
    f.x0 /= 1.15;
    f.x1 *= 1.15;
  }
  std::string s = header(plot.id, plot.title) + y_axis(f, yt, plot.y_label);
  // x ticks: the data's own x values when few, else nice ticks.
  std::vector<double> xs;
  for (const auto& se : plot.series) xs.insert(xs.end(), se.x.begin(), se.x.end());
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  const std::vector<double> xt = (xs.size() <= 8 || f.log_x) ? xs : nice_ticks(x0, x1);
  for (double t : xt) {
    if (t < f.x0 || t > f.x1) continue;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", f.px(t),
                     kHeight - kBottom + 16, fmt_tick(t));
  }
  s += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"#333\"/>\n", kLeft, kWidth - kRight,
                   kHeight - kBottom);
  s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", (kLeft + kWidth - kRight) / 2,
                   kHeight - 12, escape_xml(plot.x_label));
  if (plot.zero_line && f.y0 < 0 && f.y1 > 0) {
    s += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#666\" stroke-dasharray=\"2,2\"/>\n", kLeft,
        kWidth - kRight, f.py(0), f.py(0));
  }
  std::vector<std::pair<std::string, bool>> entries;
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const Series& se = plot.series[k];
    entries.emplace_back(se.name, se.dashed);
    std::string d;
    for (size_t i = 0; i < se.x.size(); ++i) {
      d += fmt::format("{}{:.1f},{:.1f} ", i == 0 ? "M" : "L", f.px(se.x[i]), f.py(se.y[i]));
    }
    s += fmt::format("<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", d,
                     color(k), se.dashed ? " stroke-dasharray=\"6,4\"" : "");
    for (size_t i = 0; i < se.x.size(); ++i) {
      if (!se.err.empty() && se.err[i] > 0) {
        s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\"/>\n",
                         f.px(se.x[i]), f.py(se.y[i] - se.err[i]), f.py(se.y[i] + se.err[i]), color(k));
      }
      if (se.x.size() <= 30) {
        s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n", f.px(se.x[i]), f.py(se.y[i]),
                         color(k));
      }
    }
  }
  return s + legend(entries) + "</svg>\n";
}

std::string render_svg(const BarPlot& plot) {
  double y1 = 0;
  for (const auto& g : plot.groups) {
    for (double v : g.values) y1 = std::max(y1, v);
  }
  const std::vector<double> yt = nice_ticks(0, y1 > 0 ? y1 * 1.05 : 1);
  Frame f{0, 1, 0, yt.back(), false};
  std::string s = header(plot.id, plot.title) + y_axis(f, yt, plot.y_label);
  const double plot_w = kWidth - kLeft - kRight;
  const double cat_w = plot_w / std::max<size_t>(1, plot.categories.size());
  const double bar_w = cat_w * 0.8 / std::max<size_t>(1, plot.groups.size());
  for (size_t c = 0; c < plot.categories.size(); ++c) {
    const double cx = kLeft + cat_w * (static_cast<double>(c) + 0.5);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", cx, kHeight - kBottom + 16,
                     escape_xml(plot.categories[c]));
    for (size_t g = 0; g < plot.groups.size(); ++g) {
      if (c >= plot.groups[g].values.size()) continue;
      const double v = plot.groups[g].values[c];
      if (!(v > 0)) continue;
      const double x = kLeft + cat_w * static_cast<double>(c) + cat_w * 0.1 + bar_w * static_cast<double>(g);
      s += fmt::format(
          "<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">"
          "<title>{}: {:.4g}</title></rect>\n",
          x, f.py(v), bar_w * 0.92, f.py(0) - f.py(v), color(g), escape_xml(plot.groups[g].name), v);
    }
  }
  s += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"#333\"/>\n", kLeft, kWidth - kRight,
                   kHeight - kBottom);
  std::vector<std::pair<std::string, bool>> entries;
  for (const auto& g : plot.groups) entries.emplace_back(g.name, false);
  return s + legend(entries) + "</svg>\n";
}

}  // namespace tlm::experiment
