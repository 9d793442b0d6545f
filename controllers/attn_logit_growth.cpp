// SPDX-License-Identifier: Apache-2.0
#include "controllers/attn_logit_growth.hpp"

#include <algorithm>
#include <cmath>

namespace orbit {

std::optional<double> AttnLogitGrowth::update(std::int64_t step, std::optional<double> logit_max,
                                              const AttnLogitConfig& config) {
  if (!logit_max || !std::isfinite(*logit_max)) return std::nullopt;
  // A step that went back (a rollback's new branch) starts the window again.
  if (!points_.empty() && step <= points_.back().first) points_.clear();
  const double lowest = restored_ ? std::max(config.floor, 1e-6) : 1e-6;
  points_.emplace_back(step, std::log2(std::max(*logit_max, lowest)));
  while (points_.size() > 3 && points_.front().first <= step - config.window_steps) points_.pop_front();
  if (points_.size() < 2) return std::nullopt;
  if (*logit_max < config.floor) return 0.0;
  double mt = 0.0, my = 0.0;
  for (const auto& [t, y] : points_) {
    mt += static_cast<double>(t);
    my += y;
  }
  const auto n = static_cast<double>(points_.size());
  mt /= n;
  my /= n;
  double sxy = 0.0, sxx = 0.0;
  for (const auto& [t, y] : points_) {
    sxy += (static_cast<double>(t) - mt) * (y - my);
    sxx += (static_cast<double>(t) - mt) * (static_cast<double>(t) - mt);
  }
  if (sxx <= 0.0) return std::nullopt;
  // Shrinking logits are no alarm: a growth below 0 reads 0.
  return std::max(0.0, 100.0 * sxy / sxx);
}

}  // namespace orbit
