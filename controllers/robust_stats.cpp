// SPDX-License-Identifier: Apache-2.0
#include "controllers/robust_stats.hpp"

#include <algorithm>
#include <cmath>

namespace orbit {

namespace {

// The standard deviation with its floors (absolute, and relative to the mean): one
// formula for sd() and update().
double floored_sd(double raw_sd, double mean, const RobustStatsParams& params) {
  return std::max(raw_sd, std::max(params.min_sd, params.min_sd_rel * std::abs(mean)));
}

}  // namespace

double RobustStats::sd(const RobustStatsParams& params) const {
  return floored_sd(std::sqrt(std::max(var_, 0.0)), mean_, params);
}

RobustStatsStatus RobustStats::update(double x, const RobustStatsParams& params) {
  RobustStatsStatus s;
  if (!std::isfinite(x)) {
    s.ready = ready(params);
    s.mean = mean_;
    return s;
  }
  if (count_ == 0) {
    mean_ = x;
    var_ = 0.0;
    count_ = 1;
    s.mean = mean_;
    return s;
  }
  // sd(params), from the one square root both read.
  s.raw_sd = std::sqrt(std::max(var_, 0.0));
  const double sigma = floored_sd(s.raw_sd, mean_, params);
  const double residual = x - mean_;
  s.ready = count_ >= params.warmup;
  s.residual = residual;
  if (s.ready) s.z = residual / sigma;
  // During warmup the weights start at 1/n (a plain mean) and fall to alpha, so
  // the first samples do not pin the statistics.
  const double a = std::max(params.alpha, 1.0 / static_cast<double>(count_ + 1));
  double r = residual;
  if (s.ready && params.clip > 0.0 && std::abs(r) > params.clip * sigma) {
    r = std::copysign(params.clip * sigma, r);
    s.clipped = true;
  }
  mean_ += a * r;
  var_ = (1.0 - a) * (var_ + a * r * r);
  ++count_;
  s.mean = mean_;
  return s;
}

void RobustStats::reset() {
  mean_ = 0.0;
  var_ = 0.0;
  count_ = 0;
}

}  // namespace orbit
