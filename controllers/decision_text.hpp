// SPDX-License-Identifier: Apache-2.0
#pragma once
// How numbers and metric names read in the Navigator's events and burn reasons.
// Journals keep these texts and replay compares them, so they change only on purpose.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace orbit {

// `v` with `digits` significant digits ("%.*g").
inline std::string num(double v, int digits = 3) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*g", digits, v);
  return text;
}

inline std::string nonfinite_name(double v) { return std::isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf"); }

// A zone metric's name as a reader says it ("grad_norm_z" -> "grad norm z").
inline std::string metric_label(std::string_view metric) {
  if (metric == "loss_z") return "loss z";
  if (metric == "grad_norm_z") return "grad norm z";
  std::string s(metric);
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

}  // namespace orbit
