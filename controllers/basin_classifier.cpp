// SPDX-License-Identifier: Apache-2.0
#include "controllers/basin_classifier.hpp"

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
  if (!matched) best = {evidence ? Basin::creative : Basin::unknown, "", Zone::good};
  return best;
}

}  // namespace orbit
