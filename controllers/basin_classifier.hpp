// SPDX-License-Identifier: Apache-2.0
#pragma once
// Which basin the zones of the metrics point at. The rules are config: a basin
// matches when one of its metrics is in `min_zone` or worse; the worst zone wins
// and ties go to the earlier rule. No match: CREATIVE when any rule's metric has a
// value at all, else UNKNOWN (no evidence either way, e.g. a scalars-only run).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/basin.hpp"
#include "controllers/zone_metric.hpp"
#include "controllers/zones.hpp"

namespace orbit {

struct BasinRule {
  Basin basin = Basin::unknown;  // SEMANTIC_LOOP or TOKEN_COLLAPSE
  std::vector<std::string> metrics;
  Zone min_zone = Zone::warning;
};

struct BasinCall {
  Basin basin = Basin::unknown;
  // The metric that decided it ("" for CREATIVE / UNKNOWN): a view of the rule's
  // name, valid while `rules` is (no string copied per step).
  std::string_view metric;
  Zone zone = Zone::good;
};

// `zones` holds the zone of every metric that has a value this step.
BasinCall classify_basin(const std::vector<BasinRule>& rules, const std::map<std::string, Zone>& zones);

// The same call with the zones indexed like kZoneMetrics; `rule_metrics[r][j]` is
// zone_metric_index(rules[r].metrics[j]), resolved once per config (a name that is
// not a zone metric never has a zone).
BasinCall classify_basin(const std::vector<BasinRule>& rules, const std::vector<std::vector<int>>& rule_metrics,
                         const PerZoneMetric<Zone>& zones);

// The rules' metrics that are zone metrics, in rule order then metric order, flat:
// what the Navigator classifies with (resolved once per config).
struct BasinTerm {
  std::uint32_t rule = 0;        // into the rules
  std::uint32_t metric = 0;      // into that rule's metrics
  std::uint32_t zone_index = 0;  // kZoneMetrics index of the metric
};
std::vector<BasinTerm> basin_terms(const std::vector<BasinRule>& rules,
                                   const std::vector<std::vector<int>>& rule_metrics);

// classify_basin() of `now` and of `forecast` in one pass over the terms: the same
// two calls (the terms' order is the rules' order).
void classify_basins(const std::vector<BasinRule>& rules, const std::vector<BasinTerm>& terms,
                     const PerZoneMetric<Zone>& now, const PerZoneMetric<Zone>& forecast, BasinCall& now_call,
                     BasinCall& forecast_call);

// Pressure toward `basin`: 0 while the metrics of its rules are good, 1 on the
// danger line (1 - margin, clamped to [0, 1]; the largest over its metrics). The
// mixture reweighter and the loss weights push back in proportion to it.
double basin_pressure(Basin basin, const std::vector<BasinRule>& rules,
                      const std::vector<std::vector<int>>& rule_metrics, const PerZoneMetric<double>& margins);

}  // namespace orbit
