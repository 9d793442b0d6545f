// SPDX-License-Identifier: Apache-2.0
#pragma once
// The entropy loop as first written (|v| / total, then -p ln p with std::log, summed
// in index order): the bits every faster version must keep.

#include <cmath>
#include <vector>

namespace orbit {

inline double plain_entropy(const std::vector<float>& v, double total) {
  double h = 0.0;
  for (float x : v) {
    const double d = x;
    if (!std::isfinite(d)) continue;
    const double p = std::abs(d) / total;
    if (p > 0.0) h -= p * std::log(p);
  }
  return h;
}

}  // namespace orbit
