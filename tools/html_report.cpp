// SPDX-License-Identifier: Apache-2.0
#include "tools/html_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

namespace orbit {

namespace {

constexpr double kWidth = 960, kLeft = 64, kRight = 16, kTop = 22, kPlotHeight = 150;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string label_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

const char* state_fill(std::string_view s) {
  if (s == "STABLE") return "#cfe8cf";
  if (s == "DRIFTING") return "#fff1a8";
  if (s == "WARNING") return "#ffc878";
  if (s == "CRITICAL") return "#f08080";
  if (s == "RECOVERING") return "#a8d8e8";
  if (s == "STALE") return "#d0d0d0";
  return "#e8e8f8";
}

struct Series {
  std::string name;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (step, value); non-finite values are gaps
  bool steps_shape = false;                       // draw as a step function
};

struct Band {
  double y0, y1;
  std::string fill;
};

// Keeps at most ~2 points per pixel column: the min and max of each bucket, so
// one-step spikes stay visible.
std::vector<std::pair<double, double>> thin(const std::vector<std::pair<double, double>>& pts, std::size_t buckets) {
  if (pts.size() <= 2 * buckets) return pts;
  std::vector<std::pair<double, double>> out;
  const double x0 = pts.front().first, x1 = pts.back().first;
  const double width = (x1 - x0) / static_cast<double>(buckets);
  std::size_t i = 0;
  while (i < pts.size()) {
    const double edge = x0 + width * (std::floor((pts[i].first - x0) / width) + 1);
    std::size_t lo = i, hi = i;
    std::size_t j = i;
    bool gap = false;
    for (; j < pts.size() && (pts[j].first < edge || j == i); ++j) {
      if (!std::isfinite(pts[j].second)) {
        gap = true;
        continue;
      }
      if (!std::isfinite(pts[lo].second) || pts[j].second < pts[lo].second) lo = j;
      if (!std::isfinite(pts[hi].second) || pts[j].second > pts[hi].second) hi = j;
    }
    if (lo <= hi) {
      out.push_back(pts[lo]);
      if (hi != lo) out.push_back(pts[hi]);
    } else {
      out.push_back(pts[hi]);
      out.push_back(pts[lo]);
    }
    if (gap) out.emplace_back(pts[j - 1].first, std::numeric_limits<double>::quiet_NaN());
    i = j;
  }
  return out;
}

class Plot {
 public:
  Plot(std::string title, double x0, double x1) : title_(std::move(title)), x0_(x0), x1_(x1 > x0 ? x1 : x0 + 1) {}

  void series(Series s) { series_.push_back(std::move(s)); }
  void band(Band b) { bands_.push_back(std::move(b)); }
  void marker(double x, std::string color, std::string tip) { markers_.push_back({x, std::move(color), std::move(tip)}); }
  void shade(double xa, double xb, std::string fill) { shades_.push_back({xa, xb, std::move(fill)}); }
  void log_y(bool on) { log_ = on; }
  void y_range(double lo, double hi) { fixed_ = {lo, hi}; }

  std::string svg() const {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : series_)
      for (const auto& [x, y] : s.points)
        if (std::isfinite(y) && (!log_ || y > 0)) {
          lo = std::min(lo, y);
          hi = std::max(hi, y);
        }
    if (fixed_) {
      lo = std::min(lo, fixed_->first);
      hi = std::max(hi, fixed_->second);
    }
    if (!std::isfinite(lo)) {
      lo = 0;
      hi = 1;
    }
    if (hi <= lo) hi = lo + (lo == 0 ? 1 : std::abs(lo) * 0.1);
    const double ylo = log_ ? std::log10(lo) : lo, yhi = log_ ? std::log10(hi) : hi;
    const double pad = (yhi - ylo) * 0.05;
    const double a = ylo - pad, b = yhi + pad;
    const double plot_w = kWidth - kLeft - kRight;
    auto X = [&](double x) { return kLeft + (x - x0_) / (x1_ - x0_) * plot_w; };
    auto Y = [&](double y) {
      const double v = log_ ? std::log10(std::max(y, lo)) : y;
      return kTop + (1.0 - (v - a) / (b - a)) * kPlotHeight;
    };
    const double h = kTop + kPlotHeight + 24;
    std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(kWidth) + "' height='" + num(h) +
                    "' viewBox='0 0 " + num(kWidth) + " " + num(h) + "'>";
    s += "<text x='" + num(kLeft) + "' y='14' class='t'>" + html_escape(title_) + (log_ ? " (log scale)" : "") + "</text>";
    s += "<rect x='" + num(kLeft) + "' y='" + num(kTop) + "' width='" + num(plot_w) + "' height='" + num(kPlotHeight) +
         "' fill='#fff' stroke='#999'/>";
    // The id is taken once, before either use: the two operands of one `+` chain are
    // evaluated in unspecified order, so reading a counter there named a missing id.
    const std::string clip_id = "c" + std::to_string(next_id());
    s += "<clipPath id='" + clip_id + "'><rect x='" + num(kLeft) + "' y='" + num(kTop) + "' width='" + num(plot_w) +
         "' height='" + num(kPlotHeight) + "'/></clipPath><g clip-path='url(#" + clip_id + ")'>";
    for (const auto& bnd : bands_) {
      const double ya = Y(std::clamp(bnd.y1, log_ ? lo : a, log_ ? hi : b));
      const double yb = Y(std::clamp(bnd.y0, log_ ? lo : a, log_ ? hi : b));
      s += "<rect x='" + num(kLeft) + "' y='" + num(std::min(ya, yb)) + "' width='" + num(plot_w) + "' height='" +
           num(std::abs(yb - ya)) + "' fill='" + bnd.fill + "'/>";
    }
    for (const auto& sh : shades_)
      s += "<rect x='" + num(X(sh.xa)) + "' y='" + num(kTop) + "' width='" + num(std::max(1.0, X(sh.xb) - X(sh.xa))) +
           "' height='" + num(kPlotHeight) + "' fill='" + sh.fill + "'/>";
    for (const auto& ser : series_) {
      std::string d;
      bool pen = false;
      double prev_y = 0;
      for (const auto& [x, y] : thin(ser.points, 800)) {
        if (!std::isfinite(y) || (log_ && y <= 0)) {
          pen = false;
          continue;
        }
        // Appended piece by piece: GCC 12 at -O3 misreads `"L" + std::string` as an
        // overlapping memcpy (-Wrestrict false positive, GCC PR 105651).
        if (pen && ser.steps_shape) d.append("L").append(num(X(x))).append(" ").append(num(prev_y));
        d.append(pen ? "L" : "M").append(num(X(x))).append(" ").append(num(Y(y)));
        prev_y = Y(y);
        pen = true;
      }
      s += "<path d='" + d + "' fill='none' stroke='" + ser.color + "' stroke-width='1.2'/>";
    }
    for (const auto& m : markers_)
      s += "<line x1='" + num(X(m.x)) + "' x2='" + num(X(m.x)) + "' y1='" + num(kTop) + "' y2='" + num(kTop + kPlotHeight) +
           "' stroke='" + m.color + "' stroke-dasharray='3,2'><title>" + html_escape(m.tip) + "</title></line>";
    s += "</g>";
    // Axes labels: y extremes, x extremes.
    auto yval = [&](double v) { return log_ ? std::pow(10.0, v) : v; };
    s += "<text x='" + num(kLeft - 4) + "' y='" + num(kTop + 10) + "' class='a' text-anchor='end'>" + label_num(yval(b)) + "</text>";
    s += "<text x='" + num(kLeft - 4) + "' y='" + num(kTop + kPlotHeight) + "' class='a' text-anchor='end'>" + label_num(yval(a)) + "</text>";
    s += "<text x='" + num(kLeft) + "' y='" + num(kTop + kPlotHeight + 14) + "' class='a'>step " + label_num(x0_) + "</text>";
    s += "<text x='" + num(kWidth - kRight) + "' y='" + num(kTop + kPlotHeight + 14) + "' class='a' text-anchor='end'>" +
         label_num(x1_) + "</text>";
    double lx = kLeft + 120;
    for (const auto& ser : series_) {
      s += "<text x='" + num(lx) + "' y='" + num(kTop + kPlotHeight + 14) + "' class='a' fill='" + ser.color + "'>\u25a0 " +
           html_escape(ser.name) + "</text>";
      lx += 14 + 7.0 * static_cast<double>(ser.name.size());
    }
    s += "</svg>";
    return s;
  }

 private:
  static int next_id() {
    static int n = 0;
    return ++n;
  }
  struct Marker {
    double x;
    std::string color, tip;
  };
  struct Shade {
    double xa, xb;
    std::string fill;
  };
  std::string title_;
  double x0_, x1_;
  bool log_ = false;
  std::optional<std::pair<double, double>> fixed_;
  std::vector<Series> series_;
  std::vector<Band> bands_;
  std::vector<Marker> markers_;
  std::vector<Shade> shades_;
};

std::string state_strip(const RunReplay& r, double x0, double x1) {
  const double plot_w = kWidth - kLeft - kRight;
  auto X = [&](double x) { return kLeft + (x - x0) / (x1 > x0 ? x1 - x0 : 1) * plot_w; };
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + num(kWidth) + "' height='44'>";
  s += "<text x='" + num(kLeft) + "' y='12' class='t'>state</text>";
  const auto& tl = r.timeline;
  for (std::size_t i = 0; i < tl.size();) {
    std::size_t j = i;
    while (j + 1 < tl.size() && tl[j + 1].state == tl[i].state) ++j;
    const double xa = X(static_cast<double>(tl[i].step));
    const double xb = j + 1 < tl.size() ? X(static_cast<double>(tl[j + 1].step)) : X(static_cast<double>(tl[j].step)) + 1;
    s += "<rect x='" + num(xa) + "' y='16' width='" + num(std::max(1.0, xb - xa)) + "' height='14' fill='" +
         state_fill(tl[i].state) + "'><title>" + html_escape(tl[i].state) + " steps " + std::to_string(tl[i].step) + "-" +
         std::to_string(tl[j].step) + "</title></rect>";
    i = j + 1;
  }
  for (const auto& b : r.burns)
    s += "<path d='M" + num(X(static_cast<double>(b.at_step))) + " 30 l-4 8 h8 z' fill='" +
         (b.forced ? "#7030a0" : "#c03030") + "'><title>burn #" + std::to_string(b.burn.seq) + " at step " +
         std::to_string(b.at_step) + ": lr scale " + label_num(b.burn.lr_scale) + " - " + html_escape(b.burn.reason) +
         "</title></path>";
  double lx = kLeft + 40;
  for (const char* st : {"STABLE", "DRIFTING", "WARNING", "CRITICAL", "RECOVERING", "STALE", "MONITOR"}) {
    s += "<rect x='" + num(lx) + "' y='3' width='9' height='9' fill='" + state_fill(st) + "'/><text x='" + num(lx + 12) +
         "' y='11' class='a'>" + st + "</text>";
    lx += 24 + 7.5 * static_cast<double>(std::string_view(st).size());
  }
  s += "</svg>";
  return s;
}

std::string run_plots(const RunReplay& r) {
  if (r.timeline.empty()) return "<p>No snapshots were replayed.</p>";
  const double x0 = static_cast<double>(r.timeline.front().step);
  const double x1 = static_cast<double>(r.timeline.back().step);
  std::string html;

  auto decorate = [&](Plot& p) {
    for (const auto& f : r.failures) {
      p.shade(static_cast<double>(f.onset), static_cast<double>(std::max(f.end, f.onset + 1)), "rgba(220,0,0,0.10)");
      p.marker(static_cast<double>(f.peak), "#d00000", f.kind + " peak at step " + std::to_string(f.peak));
    }
    for (const auto& ep : r.scoring.episodes)
      p.shade(static_cast<double>(ep.start), static_cast<double>(std::max(ep.end, ep.start + 1)),
              ep.false_alarm ? "rgba(255,140,0,0.25)" : "rgba(255,140,0,0.12)");
  };

  // Loss (and grad norm on its own plot).
  {
    Plot p("loss (red: failures, orange: alarms)", x0, x1);
    Series s{"loss", "#1f4e9c", {}, false};
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (const auto& t : r.timeline) {
      s.points.emplace_back(static_cast<double>(t.step), t.loss);
      if (std::isfinite(t.loss) && t.loss > 0) {
        lo = std::min(lo, t.loss);
        hi = std::max(hi, t.loss);
      }
    }
    p.log_y(std::isfinite(lo) && hi / lo > 20);
    p.series(std::move(s));
    decorate(p);
    html += p.svg();
  }
  if (std::any_of(r.timeline.begin(), r.timeline.end(), [](const TimelinePoint& t) { return t.grad_norm.has_value(); })) {
    Plot p("gradient norm", x0, x1);
    Series s{"grad norm", "#6a3d9a", {}, false};
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (const auto& t : r.timeline)
      if (t.grad_norm) {
        s.points.emplace_back(static_cast<double>(t.step), *t.grad_norm);
        if (std::isfinite(*t.grad_norm) && *t.grad_norm > 0) {
          lo = std::min(lo, *t.grad_norm);
          hi = std::max(hi, *t.grad_norm);
        }
      }
    p.log_y(std::isfinite(lo) && hi / lo > 20);
    p.series(std::move(s));
    decorate(p);
    html += p.svg();
  }
  html += state_strip(r, x0, x1);

  // Zoned metrics over their zones, then the other metrics worth a look.
  std::set<std::string> present;
  for (const auto& t : r.timeline)
    for (const auto& [k, v] : t.metrics) present.insert(k);
  for (const auto& [name, zone] : r.config.zones) {
    if (!present.count(name)) continue;
    Plot p(name + (zone.alarm ? "" : " (reported only)"), x0, x1);
    const auto& band = zone.band;
    const double big = 1e300;
    if (band.higher_is_better()) {
      p.band({band.good, big, "#e6f4e6"});
      p.band({band.danger, band.good, "#fff6d0"});
      p.band({-big, band.danger, "#fbe0e0"});
    } else {
      p.band({-big, band.good, "#e6f4e6"});
      p.band({band.good, band.danger, "#fff6d0"});
      p.band({band.danger, big, "#fbe0e0"});
    }
    p.y_range(std::min(band.good, band.danger), std::max(band.good, band.danger));
    Series s{name, "#1f4e9c", {}, false};
    for (const auto& t : r.timeline) {
      const double* v = t.metrics.find(name);
      s.points.emplace_back(static_cast<double>(t.step), v ? *v : std::numeric_limits<double>::quiet_NaN());
    }
    p.series(std::move(s));
    decorate(p);
    html += p.svg();
  }
  if (present.count("health")) {
    Plot p("health (1 = on the good line of the worst metric)", x0, x1);
    Series s{"health", "#2e7d32", {}, false};
    for (const auto& t : r.timeline) {
      const double* v = t.metrics.find("health");
      s.points.emplace_back(static_cast<double>(t.step), v ? *v : std::numeric_limits<double>::quiet_NaN());
    }
    p.series(std::move(s));
    decorate(p);
    html += p.svg();
  }

  // lr scale in effect.
  {
    Plot p("lr scale", x0, x1);
    Series s{"lr scale", "#c03030", {}, true};
    for (const auto& t : r.timeline) s.points.emplace_back(static_cast<double>(t.step), t.lr_scale);
    p.y_range(0.0, 1.0);
    p.series(std::move(s));
    html += p.svg();
  }
  // Domain weights from the burns (step functions).
  std::map<std::string, Series> weights;
  static const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  for (const auto& b : r.burns)
    for (const auto& [domain, w] : b.burn.domain_weights) {
      auto& s = weights[domain];
      if (s.name.empty()) {
        s.name = domain;
        s.color = palette[weights.size() % 8];
        s.steps_shape = true;
      }
      s.points.emplace_back(static_cast<double>(b.at_step), w);
    }
  if (!weights.empty()) {
    Plot p("domain weights (from burns)", x0, x1);
    for (auto& [d, s] : weights) {
      s.points.emplace_back(x1, s.points.back().second);
      p.series(std::move(s));
    }
    html += p.svg();
  }
  return html;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '\'': out += "&#39;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string replay_summary_html(const std::vector<const RunReplay*>& runs) {
  std::string s =
      "<table><tr><th>run</th><th>config</th><th>snapshots</th><th>burns</th><th>recorded burns</th>"
      "<th>failures</th><th>in time</th><th>late</th><th>missed</th><th>leads (steps)</th><th>false alarms</th></tr>";
  for (const RunReplay* r : runs) {
    std::string leads;
    for (const auto& d : r->scoring.detections)
      leads += (leads.empty() ? "" : ", ") + (d.lead ? std::to_string(*d.lead) : std::string("-"));
    std::string recorded = std::to_string(r->recorded_burns.size());
    if (!r->recorded_burns.empty())
      recorded += r->reproduced() ? " (reproduced)" : " (" + std::to_string(r->burns_matching) + " equal)";
    s += "<tr><td>" + html_escape(r->run) + "</td><td>" + html_escape(r->config_description) + "</td><td>" +
         std::to_string(r->steps.size()) + "</td><td>" + std::to_string(r->burns.size()) + "</td><td>" + recorded +
         "</td><td>" + std::to_string(r->failures.size()) + "</td><td>" + std::to_string(r->scoring.in_time) +
         "</td><td>" + std::to_string(r->scoring.late) + "</td><td>" + std::to_string(r->scoring.missed) + "</td><td>" +
         leads + "</td><td>" + std::to_string(r->scoring.false_alarms) + "</td></tr>";
  }
  return s + "</table>";
}

std::string html_report(const std::string& title, const std::string& intro_html,
                        const std::vector<ReportSection>& sections) {
  std::string s =
      "<!DOCTYPE html><html><head><meta charset='utf-8'><title>" + html_escape(title) +
      "</title><style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}"
      "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
      "th{background:#f3f3f3}pre{background:#f6f6f6;padding:8px;overflow:auto}.t{font:600 12px sans-serif}"
      ".a{font:11px sans-serif;fill:#555}h2{margin-top:32px;border-bottom:1px solid #ddd}</style></head><body>";
  s += "<h1>" + html_escape(title) + "</h1>" + intro_html;
  for (const auto& sec : sections) {
    if (!sec.replay) continue;
    const RunReplay& r = *sec.replay;
    s += "<h2>" + html_escape(r.run) + (sec.heading.empty() ? "" : " - " + html_escape(sec.heading)) + "</h2>";
    s += "<p>config: " + html_escape(r.config_description) + "; failures: " + html_escape(r.failure_source) + "; " +
         std::to_string(r.burns.size()) + " burns; " + std::to_string(r.scoring.false_alarms) + " false alarms</p>";
    s += run_plots(r);
  }
  s += "</body></html>\n";
  return s;
}

}  // namespace orbit
