// SPDX-License-Identifier: Apache-2.0
#include "controllers/basin_classifier.hpp"

#include <algorithm>

namespace orbit {

BasinCall classify_basin(const std::vector<BasinRule>& rules, const std::map<std::string, Zone>& zones) {
  BasinCall best;
  bool evidence = false;
  bool matched = false;
  for (const BasinRule& rule : rules) {
    for (const std::string& metric : rule.metrics) {
      auto it = zones.find(metric);
      if (it == zones.end()) continue;
      evidence = true;
      if (it->second < rule.min_zone) continue;
      if (!matched || it->second > best.zone) {
        best = {rule.basin, metric, it->second};
        matched = true;
      }
    }
  }
  if (!matched) best = {evidence ? Basin::creative : Basin::unknown, {}, Zone::good};
  return best;
}

BasinCall classify_basin(const std::vector<BasinRule>& rules, const std::vector<std::vector<int>>& rule_metrics,
                         const PerZoneMetric<Zone>& zones) {
  BasinCall best;
  bool evidence = false;
  bool matched = false;
  const Basin* best_basin = nullptr;
  const std::string* best_metric = nullptr;
  for (std::size_t r = 0; r < rules.size(); ++r) {
    const BasinRule& rule = rules[r];
    for (std::size_t j = 0; j < rule.metrics.size(); ++j) {
      const int i = rule_metrics[r][j];
      if (i < 0 || !zones[static_cast<std::size_t>(i)]) continue;
      const Zone zone = *zones[static_cast<std::size_t>(i)];
      evidence = true;
      if (zone < rule.min_zone) continue;
      if (!matched || zone > best.zone) {
        best_basin = &rule.basin;
        best_metric = &rule.metrics[j];
        best.zone = zone;
        matched = true;
      }
    }
  }
  if (!matched) return {evidence ? Basin::creative : Basin::unknown, {}, Zone::good};
  best.basin = *best_basin;
  best.metric = *best_metric;
  return best;
}

std::vector<BasinTerm> basin_terms(const std::vector<BasinRule>& rules,
                                   const std::vector<std::vector<int>>& rule_metrics) {
  std::vector<BasinTerm> terms;
  for (std::size_t r = 0; r < rules.size(); ++r) {
    for (std::size_t j = 0; j < rules[r].metrics.size(); ++j) {
      const int i = rule_metrics[r][j];
      if (i >= 0)
        terms.push_back({static_cast<std::uint32_t>(r), static_cast<std::uint32_t>(j), static_cast<std::uint32_t>(i)});
    }
  }
  return terms;
}

namespace {

// One classify_basin() under way: the best term so far.
struct BasinSearch {
  const BasinTerm* best = nullptr;
  Zone zone = Zone::good;
  bool evidence = false;

  void see(const BasinTerm& t, const BasinRule& rule, const std::optional<Zone>& z) {
    if (!z) return;
    evidence = true;
    if (*z < rule.min_zone) return;
    if (!best || *z > zone) {
      best = &t;
      zone = *z;
    }
  }
  BasinCall call(const std::vector<BasinRule>& rules) const {
    if (!best) return {evidence ? Basin::creative : Basin::unknown, {}, Zone::good};
    const BasinRule& rule = rules[best->rule];
    return {rule.basin, rule.metrics[best->metric], zone};
  }
};

}  // namespace

void classify_basins(const std::vector<BasinRule>& rules, const std::vector<BasinTerm>& terms,
                     const PerZoneMetric<Zone>& now, const PerZoneMetric<Zone>& forecast, BasinCall& now_call,
                     BasinCall& forecast_call) {
  BasinSearch a, b;
  for (const BasinTerm& t : terms) {
    const BasinRule& rule = rules[t.rule];
    a.see(t, rule, now[t.zone_index]);
    b.see(t, rule, forecast[t.zone_index]);
  }
  now_call = a.call(rules);
  forecast_call = b.call(rules);
}

double basin_pressure(Basin basin, const std::vector<BasinRule>& rules,
                      const std::vector<std::vector<int>>& rule_metrics, const PerZoneMetric<double>& margins) {
  double p = 0.0;
  for (std::size_t r = 0; r < rules.size(); ++r) {
    if (rules[r].basin != basin) continue;
    for (const int mi : rule_metrics[r]) {
      if (mi >= 0 && margins[static_cast<std::size_t>(mi)]) {
        p = std::max(p, std::clamp(1.0 - *margins[static_cast<std::size_t>(mi)], 0.0, 1.0));
      }
    }
  }
  return p;
}

}  // namespace orbit
