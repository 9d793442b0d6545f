// SPDX-License-Identifier: Apache-2.0
#pragma once
// Exponentially weighted moving average: the smoother in front of zones and trends.

#include <cstdint>

namespace orbit {

class Ewma {
 public:
  explicit Ewma(double alpha = 0.3) : alpha_(alpha) {}

  // The first sample initializes the average; later ones move it by alpha.
  double update(double x) {
    value_ = count_ == 0 ? x : value_ + alpha_ * (x - value_);
    ++count_;
    return value_;
  }

  void set_alpha(double alpha) { alpha_ = alpha; }
  void reset() {
    value_ = 0.0;
    count_ = 0;
  }

  double value() const { return value_; }
  double alpha() const { return alpha_; }
  bool initialized() const { return count_ > 0; }
  std::int64_t count() const { return count_; }

 private:
  double alpha_;
  double value_ = 0.0;
  std::int64_t count_ = 0;
};

}  // namespace orbit
