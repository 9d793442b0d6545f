// SPDX-License-Identifier: Apache-2.0
#include "controllers/pid.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

namespace orbit {

namespace {

double clamp_range(double u, const PidLimits& limits) {
  return std::clamp(u, limits.output_min, std::max(limits.output_min, limits.output_max));
}

}  // namespace

PidStatus LogLrPid::update(double error, double dt, double health_rate, const PidGains& gains,
                           const PidLimits& limits) {
  PidStatus s;
  s.error = error;
  s.p = gains.kp * s.error;
  s.d = -gains.kd * health_rate;
  const double steps = std::isfinite(dt) && dt > 0.0 ? dt : 0.0;

  auto limited = [&](double integral, bool& saturated) {
    const double wanted = -(s.p + integral + s.d);
    double u = clamp_range(wanted, limits);
    u = std::clamp(u, output_ - limits.max_step, output_ + limits.max_step_up);
    u = clamp_range(u, limits);  // a lowered ceiling wins over the slew
    saturated = u != wanted;
    return std::pair{u, wanted};
  };

  // Conditional integration: take the integral step only if the output is not
  // held by a limit in the direction the error pushes (e > 0 pushes u down).
  const double lowest = std::max(limits.integral_min, -limits.integral_limit);
  const double candidate = std::clamp(integral_ + gains.ki * s.error * steps, lowest, limits.integral_limit);
  bool saturated = false;
  auto [u, wanted] = limited(candidate, saturated);
  const bool pushes_down = s.error > 0.0;
  const bool held = saturated && ((pushes_down && u > wanted) || (!pushes_down && u < wanted));
  if (!held) {
    integral_ = candidate;
  } else {
    // Back-calculation: the integral goes only as far as the limit needs, never
    // past it and never against the error.
    const double fits = std::clamp(-u - s.p - s.d, lowest, limits.integral_limit);
    integral_ = std::clamp(fits, std::min(integral_, candidate), std::max(integral_, candidate));
    std::tie(u, wanted) = limited(integral_, saturated);
  }
  output_ = u;
  s.i = integral_;
  s.output = output_;
  s.saturated = saturated;
  return s;
}

void LogLrPid::track(double error, double health_rate, const PidGains& gains, const PidLimits& limits) {
  integral_ = std::clamp(-output_ - gains.kp * error + gains.kd * health_rate,
                         std::max(limits.integral_min, -limits.integral_limit), limits.integral_limit);
}

double LogLrPid::relax_toward(double target, double max_step, const PidLimits& limits) {
  target = clamp_range(target, limits);
  const double step = std::clamp(target - output_, -max_step, max_step);
  output_ = clamp_range(output_ + step, limits);
  integral_ = std::clamp(-output_, -limits.integral_limit, limits.integral_limit);
  return output_;
}

void LogLrPid::set_output(double output, const PidLimits& limits) {
  output_ = clamp_range(output, limits);
  integral_ = std::clamp(-output_, -limits.integral_limit, limits.integral_limit);
}

void LogLrPid::reset() {
  output_ = 0.0;
  integral_ = 0.0;
}

}  // namespace orbit
