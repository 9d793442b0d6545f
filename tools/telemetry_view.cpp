// SPDX-License-Identifier: Apache-2.0
#include "tools/telemetry_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace orbit {

namespace {

std::string fixed(double v, int decimals = 2) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string general(double v) {
  if (!std::isfinite(v)) return fixed(v);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

const double* metric(const Telemetry& t, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (auto it = t.metrics.find(n); it != t.metrics.end()) return &it->second;
  return nullptr;
}

const char* state_color(const std::string& state) {
  if (state == "STABLE") return "\x1b[32m";
  if (state == "DRIFTING") return "\x1b[33m";
  if (state == "WARNING") return "\x1b[1;33m";
  if (state == "CRITICAL") return "\x1b[1;31m";
  if (state == "RECOVERING") return "\x1b[36m";
  if (state == "MONITOR") return "\x1b[34m";
  return "\x1b[90m";  // STALE and anything new
}

std::string bar(double fraction, int width) {
  const double f = std::isfinite(fraction) ? std::clamp(fraction, 0.0, 1.0) : 0.0;
  const int filled = static_cast<int>(std::lround(f * width));
  std::string s;
  for (int i = 0; i < width; ++i) s += i < filled ? "\u2588" : "\u2591";
  return s;
}

// A held value from an earlier step gets its age in steps.
std::string aged(std::string value, const HeldTelemetry* held, const std::string& name) {
  const std::int64_t age = held ? held->age(name) : 0;
  if (age > 0) value += " (" + std::to_string(age) + " ago)";
  return value;
}

// The name under which `names` first finds a metric ("" when none).
std::string found_name(const Telemetry& t, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (t.metrics.contains(n)) return n;
  return "";
}

std::string line_of(const Telemetry& t, const HeldTelemetry* held, const ViewStyle& style, std::size_t run_width) {
  std::string s = t.run;
  if (s.size() < run_width) s.append(run_width - s.size(), ' ');
  s += "  step " + std::to_string(t.step);
  const double* entropy = metric(t, {"entropy", "spectral_entropy"});
  const double* phi = metric(t, {"phi_proximity", "phi_prox"});
  s += "  entropy " +
       (entropy ? aged(fixed(*entropy), held, found_name(t, {"entropy", "spectral_entropy"})) : std::string("-"));
  s += "  \u03c6-prox " +
       (phi ? aged(fixed(*phi), held, found_name(t, {"phi_proximity", "phi_prox"})) : std::string("-"));
  const double* health = metric(t, {"health"});
  if (!health) health = phi;
  s += "  " + (health ? bar(*health, style.bar_width) : std::string(static_cast<std::size_t>(style.bar_width), '-'));
  s += " ";
  if (style.color) s += state_color(t.state);
  s += t.state.empty() ? std::string("?") : t.state;
  if (style.color) s += "\x1b[0m";
  if (t.mode == "monitor") s += " (monitor)";
  if (t.burn_seq) s += "  burn #" + std::to_string(*t.burn_seq);
  return s;
}

std::string tree_of(const Telemetry& t, const HeldTelemetry* held) {
  std::string s;
  auto row = [&](bool last, const std::string& name, const std::string& value) {
    s += last ? "  \u2514\u2500 " : "  \u251c\u2500 ";
    s += name;
    if (name.size() < 10) s.append(10 - name.size(), ' ');
    s += " " + value + "\n";
  };
  const double* loss = metric(t, {"loss"});
  row(false, "loss", loss ? aged(general(*loss), held, "loss") : "-");
  std::string basin = t.basin.empty() ? "?" : t.basin;
  // Held from the last probe step's spectra: say how old the evidence is.
  if (t.basin_age_steps && *t.basin_age_steps > 0)
    basin += " (evidence " + std::to_string(*t.basin_age_steps) + " steps old)";
  if (!t.forecast_basin.empty() && t.forecast_basin != t.basin) basin += " (heading for " + t.forecast_basin + ")";
  std::string shares;
  for (const auto& [k, v] : t.metrics)
    if (k.starts_with("basin.") || k.starts_with("share.")) shares += (shares.empty() ? "" : "  ") + k + " " + fixed(v);
  row(false, "basin", basin + (shares.empty() ? "" : "  " + shares));
  std::string health;
  for (const auto& [k, v] : t.metrics) {
    if (k == "loss" || k.starts_with("basin.") || k.starts_with("share.")) continue;
    health += (health.empty() ? "" : "  ") + k + " " + aged(general(v), held, k);
  }
  row(false, "health", health.empty() ? "-" : health);
  row(false, "lr scale", fixed(t.lr_scale, 3));
  row(true, "reason", t.reason.empty() ? "-" : t.reason);
  return s;
}

}  // namespace

void HeldTelemetry::update(const Telemetry& t) {
  std::map<std::string, double> metrics = std::move(latest_.metrics);
  latest_ = t;
  for (const auto& [name, value] : t.metrics) {
    metrics[name] = value;
    metric_step_[name] = t.step;
  }
  latest_.metrics = std::move(metrics);
}

std::int64_t HeldTelemetry::age(const std::string& metric) const {
  const auto it = metric_step_.find(metric);
  // A step that went back (rollback, restart) makes no age: the value is shown as is.
  return it == metric_step_.end() ? 0 : std::max<std::int64_t>(0, latest_.step - it->second);
}

std::string run_line(const Telemetry& t, const ViewStyle& style, std::size_t run_width) {
  return line_of(t, nullptr, style, run_width);
}

std::string run_line(const HeldTelemetry& t, const ViewStyle& style, std::size_t run_width) {
  return line_of(t.latest(), &t, style, run_width);
}

std::string run_tree(const Telemetry& t, const ViewStyle&) { return tree_of(t, nullptr); }

std::string run_tree(const HeldTelemetry& t, const ViewStyle&) { return tree_of(t.latest(), &t); }

}  // namespace orbit
