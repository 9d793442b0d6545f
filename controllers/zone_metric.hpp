// SPDX-License-Identifier: Apache-2.0
#pragma once
// The metrics zones may be given for, and a fixed index for each: the Navigator
// keeps its per-metric state in arrays indexed by it instead of looking names up
// per snapshot (names are resolved once, when a config is taken).

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace orbit {

inline constexpr const char* kZoneMetrics[] = {"entropy", "effective_rank", "normalized_entropy", "dominant_ratio",
                                               "phi_proximity", "loop_rate", "loss_z", "grad_norm_z",
                                               "attn_logit_growth"};
inline constexpr std::size_t kZoneMetricCount = std::size(kZoneMetrics);

// Which way each metric is better, in kZoneMetrics order: a spread spectrum (entropy,
// effective rank) and an eigen-gap near the golden ratio are healthy; one dominant
// direction, loops and z-score excursions are not. A zone's good/danger lines must
// agree (config validation rejects a band drawn the other way round).
inline constexpr bool kZoneMetricHigherIsBetter[] = {true, true, true, false, true, false, false, false, false};
static_assert(std::size(kZoneMetricHigherIsBetter) == kZoneMetricCount);

// Index into kZoneMetrics; -1 for a name that is not a zone metric.
constexpr int zone_metric_index(std::string_view name) {
  for (std::size_t i = 0; i < kZoneMetricCount; ++i) {
    if (name == kZoneMetrics[i]) return static_cast<int>(i);
  }
  return -1;
}

// One optional value per zone metric (nullopt: no value this step).
template <class T>
using PerZoneMetric = std::array<std::optional<T>, kZoneMetricCount>;

}  // namespace orbit
