// SPDX-License-Identifier: Apache-2.0
#include "controllers/loss_jump_detector.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "controllers/window_median.hpp"

namespace orbit {
namespace {

constexpr std::size_t kMaxLevelWindow = 31;  // the median works on a stack copy: no allocation per snapshot

double median(const RingDeque<double>& values) {
  return median_of_last(values, std::min(values.size(), kMaxLevelWindow));
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

}  // namespace

bool same(const LossJumpParams& a, const LossJumpParams& b) {
  return same_bits(a.ratio, b.ratio) && same_bits(a.grad_ratio, b.grad_ratio) && a.confirm_steps == b.confirm_steps &&
         a.arm_step == b.arm_step && a.early_corroborated == b.early_corroborated && a.level_window == b.level_window &&
         a.grad_window == b.grad_window;
}

bool same(const LossJumpInput& a, const LossJumpInput& b) {
  return a.step == b.step && same_bits(a.loss, b.loss) && a.grad_norm.has_value() == b.grad_norm.has_value() &&
         (!a.grad_norm || same_bits(*a.grad_norm, *b.grad_norm));
}

LossJumpStatus LossJumpDetector::update(std::int64_t step, double loss, std::optional<double> grad_norm,
                                        const LossJumpParams& params) {
  const LossJumpInput input{step, loss, grad_norm};
  if (memo_.following()) {
    if (const LossJumpStatus* s = memo_.recorded(input, params)) return *s;
    memo_.leave(
        [this](const LossJumpInput& in, const LossJumpParams& p) { compute(in.step, in.loss, in.grad_norm, p); });
  }
  const LossJumpStatus s = compute(step, loss, grad_norm, params);
  memo_.computed(input, s, params);
  return s;
}

LossJumpStatus LossJumpDetector::compute(std::int64_t step, double loss, std::optional<double> grad_norm,
                                         const LossJumpParams& params) {
  LossJumpStatus s;
  const std::int64_t before = last_step_.value_or(step - 1);
  last_step_ = step;
  if (!std::isfinite(loss)) {
    jump_since_.reset();
    return s;
  }
  s.floor = floor_.value_or(0.0);
  const bool has_floor = params.ratio > 0.0 && floor_ && *floor_ > 0.0;
  s.armed = has_floor && step >= params.arm_step;
  s.early = has_floor && !s.armed && params.early_corroborated;
  if (floor_ && *floor_ > 0.0) s.ratio = loss / *floor_;
  if (grad_norm) {
    if (!std::isfinite(*grad_norm)) {
      s.grad_ratio = std::numeric_limits<double>::infinity();
    } else if (!recent_grads_.empty() && *grad_norm > 0.0) {
      s.grad_ratio = *grad_norm / *std::min_element(recent_grads_.begin(), recent_grads_.end());
    }
  }
  s.jump = (s.armed || s.early) && s.ratio >= params.ratio;
  if (s.jump) {
    if (!jump_since_) jump_since_ = std::min(before, step - 1);
    s.held_steps = step - *jump_since_;
    s.corroborated = s.grad_ratio && *s.grad_ratio >= params.grad_ratio;
    s.alarm = s.corroborated || (s.armed && s.held_steps >= params.confirm_steps);
  } else {
    jump_since_.reset();
  }
  // Absorb the sample: the floor is the lowest median level, so neither one low
  // outlier nor the jump itself moves it.
  recent_losses_.push_back(loss);
  const std::size_t level_window = std::clamp<std::size_t>(params.level_window, 1, kMaxLevelWindow);
  while (recent_losses_.size() > level_window) recent_losses_.pop_front();
  const double level = median(recent_losses_);
  floor_ = floor_ ? std::min(*floor_, level) : level;
  if (grad_norm && std::isfinite(*grad_norm) && *grad_norm > 0.0) {
    recent_grads_.push_back(*grad_norm);
    while (recent_grads_.size() > std::max<std::size_t>(params.grad_window, 1)) recent_grads_.pop_front();
  }
  return s;
}

void LossJumpDetector::reset() {
  memo_.on_reset();
  recent_losses_.clear();
  recent_grads_.clear();
  floor_.reset();
  last_step_.reset();
  jump_since_.reset();
}

}  // namespace orbit
