// SPDX-License-Identifier: Apache-2.0
#pragma once
// Writing Decision::metrics. Every stage takes the map as a pointer that is null
// when the caller turned metrics off (Navigator::set_report_metrics): then nothing
// is built, which is most of what a decision would cost.

#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "controllers/spectral_metrics.hpp"

namespace orbit {

// Wire names in Decision::metrics are bounded like every map key on the wire.
inline constexpr std::size_t kMaxMetricName = 128;

// Finite values only. The name goes through a per-thread buffer: a name the map
// already holds (every name, once orbitd recycles the maps) is then found without
// building a string, which past 15 characters meant a malloc and a free per metric.
inline void put_metric(std::map<std::string, double>* metrics, std::string_view name, double value) {
  if (!metrics || !std::isfinite(value) || name.size() > kMaxMetricName) return;
  thread_local std::string key;
  key.assign(name);
  (*metrics)[key] = value;
}

// `spectrum`: the spectrum's name ("hidden.0" -> "hidden.0.entropy"); none for the aggregate.
inline void put_spectral_metrics(std::map<std::string, double>* metrics, const std::string* spectrum,
                                 const SpectralMetrics& m) {
  if (!metrics) return;
  std::string key;  // one buffer for the five names: no temporary per name
  if (spectrum) (key = *spectrum) += '.';
  const std::size_t stem = key.size();
  for (const auto& [suffix, value] : {std::pair{"entropy", m.entropy}, std::pair{"effective_rank", m.effective_rank},
                                      std::pair{"normalized_entropy", m.normalized_entropy},
                                      std::pair{"dominant_ratio", m.dominant_ratio},
                                      std::pair{"phi_proximity", m.phi_proximity}}) {
    key.resize(stem);
    key += suffix;
    put_metric(metrics, key, value);
  }
}

}  // namespace orbit
