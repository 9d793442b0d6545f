// SPDX-License-Identifier: Apache-2.0
#include "controllers/trend.hpp"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>

namespace orbit {

std::optional<double> TrendFit::steps_until(double threshold) const {
  if (!valid) return std::nullopt;
  const double gap = threshold - value;
  if (gap == 0.0) return 0.0;
  if (slope == 0.0 || (gap > 0.0) != (slope > 0.0)) {
    return std::nullopt;
  }
  return gap / slope;
}

TrendWindow::TrendWindow(std::size_t capacity)
    : xs_(std::max<std::size_t>(capacity, 2)), ys_(std::max<std::size_t>(capacity, 2)) {}

void TrendWindow::push(double x, double y) {
  xs_[head_] = x;
  ys_[head_] = y;
  head_ = (head_ + 1) % xs_.size();
  size_ = std::min(size_ + 1, xs_.size());
}

void TrendWindow::reset() {
  head_ = 0;
  size_ = 0;
}

void TrendWindow::set_capacity(std::size_t capacity) {
  capacity = std::max<std::size_t>(capacity, 2);
  if (capacity == xs_.size()) return;
  // Re-pack oldest → newest, keeping the newest points that fit.
  const std::size_t keep = std::min(size_, capacity);
  std::vector<double> xs(capacity), ys(capacity);
  for (std::size_t i = 0; i < keep; ++i) {
    const std::size_t from = (head_ + xs_.size() - keep + i) % xs_.size();
    xs[i] = xs_[from];
    ys[i] = ys_[from];
  }
  xs_ = std::move(xs);
  ys_ = std::move(ys);
  size_ = keep;
  head_ = keep % capacity;
}

TrendFit TrendWindow::fit() const {
  TrendFit f;
  f.points = size_;
  if (size_ < 3) return f;
  // The ring is fitted in place: order does not matter to least squares.
  const auto n = static_cast<Eigen::Index>(size_);
  Eigen::Map<const Eigen::VectorXd> x_all(xs_.data(), static_cast<Eigen::Index>(xs_.size()));
  Eigen::Map<const Eigen::VectorXd> y_all(ys_.data(), static_cast<Eigen::Index>(ys_.size()));
  const auto x = x_all.head(n);
  const auto y = y_all.head(n);
  // When the ring is full every slot is live; when not, the live slots are 0..size-1.
  // Centered sums as expressions: no temporaries are allocated per fit.
  const double x_mean = x.mean();
  const double y_mean = y.mean();
  const auto dx = x.array() - x_mean;
  const auto dy = y.array() - y_mean;
  const double sxx = dx.square().sum();
  if (!(sxx > 0.0)) return f;
  f.slope = (dx * dy).sum() / sxx;
  const double intercept = y_mean - f.slope * x_mean;
  const double sse = (dy - f.slope * dx).square().sum();
  f.slope_se = std::sqrt(std::max(sse, 0.0) / static_cast<double>(n - 2) / sxx);
  f.last_x = x.maxCoeff();
  f.value = intercept + f.slope * f.last_x;
  f.valid = std::isfinite(f.slope) && std::isfinite(f.value);
  return f;
}

}  // namespace orbit
