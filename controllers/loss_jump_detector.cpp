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
    } else if (grads_in_window_ > 0 && *grad_norm > 0.0) {
      s.grad_ratio = *grad_norm / grad_minima_.front().value;
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
  if (grad_norm && std::isfinite(*grad_norm) && *grad_norm > 0.0) push_grad(*grad_norm, params.grad_window);
  return s;
}

void LossJumpDetector::push_grad(double grad_norm, std::size_t window) {
  ++grads_pushed_;
  grads_in_window_ = std::min(grads_in_window_ + 1, std::max<std::size_t>(window, 1));
  // A value at or above the new one is never the least again while the new one stays.
  while (!grad_minima_.empty() && grad_minima_.back().value >= grad_norm) grad_minima_.pop_back();
  grad_minima_.push_back({grads_pushed_, grad_norm});
  // The window holds the pushes after grads_pushed_ - grads_in_window_.
  while (grad_minima_.front().seq + grads_in_window_ <= grads_pushed_) grad_minima_.pop_front();
}

void LossJumpDetector::reset() {
  memo_.on_reset();
  recent_losses_.clear();
  grad_minima_.clear();
  grads_pushed_ = 0;
  grads_in_window_ = 0;
  floor_.reset();
  last_step_.reset();
  jump_since_.reset();
}

}  // namespace orbit
