// SPDX-License-Identifier: Apache-2.0
#include "controllers/trend.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

namespace orbit {

namespace {
// The sums are rebuilt when a removed term is this many times larger than what is
// left: its rounding would stay behind. (The anchor itself leaves the window only
// on the periodic rebuild, so the sums are never centered far from the values.)
constexpr double kLossRatio = 1e4;
}  // namespace

bool same(const TrendInput& a, const TrendInput& b) {
  return std::bit_cast<std::uint64_t>(a.x) == std::bit_cast<std::uint64_t>(b.x) &&
         std::bit_cast<std::uint64_t>(a.y) == std::bit_cast<std::uint64_t>(b.y);
}

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

void TrendWindow::add(double x, double y, double sign) {
  const double u = x - anchor_x_;
  const double v = y - anchor_y_;
  sums_.u += sign * u;
  sums_.v += sign * v;
  sums_.uu += sign * (u * u);
  sums_.uv += sign * (u * v);
  sums_.vv += sign * (v * v);
}

void TrendWindow::push(double x, double y) {
  const bool full = size_ == xs_.size();
  const double evicted_x = xs_[head_];
  const double evicted_y = ys_[head_];
  xs_[head_] = x;
  ys_[head_] = y;
  if (++head_ == xs_.size()) head_ = 0;  // not a 64-bit division per push
  size_ = std::min(size_ + 1, xs_.size());
  // A non-finite value poisons the sums while it is in the window and must not
  // after it leaves: entering or leaving, the sums are rebuilt from the ring.
  const bool nonfinite = !std::isfinite(y) || (full && !std::isfinite(evicted_y)) || !std::isfinite(anchor_y_);
  if (++since_rebuild_ >= xs_.size() || size_ == 1 || nonfinite) {
    rebuild_sums();
    return;
  }
  add(x, y, 1.0);
  if (full) {
    add(evicted_x, evicted_y, -1.0);
    // A point far larger than the rest leaves its rounding behind in the sums.
    const double eu = evicted_x - anchor_x_, ev = evicted_y - anchor_y_;
    if (eu * eu > kLossRatio * sums_.uu || ev * ev > kLossRatio * sums_.vv) {
      rebuild_sums();
      return;
    }
  }
  if (x >= max_x_) {
    max_x_ = x;
  } else if (full && evicted_x == max_x_) {
    // Steps went backwards and the largest left the window: rare, so a scan.
    max_x_ = x;
    for (std::size_t i = 0; i < size_; ++i) max_x_ = std::max(max_x_, xs_[i]);
  }
}

void TrendWindow::rebuild_sums() {
  since_rebuild_ = 0;
  sums_ = Sums{};
  if (size_ == 0) return;
  // Anchored at the newest point: the sums stay small next to the values, so
  // the centered sums below lose little to cancellation.
  const std::size_t newest = (head_ + xs_.size() - 1) % xs_.size();
  anchor_x_ = xs_[newest];
  anchor_y_ = ys_[newest];
  max_x_ = xs_[newest];
  for (std::size_t i = 0; i < size_; ++i) {
    add(xs_[i], ys_[i], 1.0);
    max_x_ = std::max(max_x_, xs_[i]);
  }
}

void TrendWindow::reset() {
  head_ = 0;
  size_ = 0;
  since_rebuild_ = 0;
  sums_ = Sums{};
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
  rebuild_sums();
}

TrendFit TrendWindow::fit() const {
  TrendFit f;
  f.points = size_;
  if (size_ < 3) return f;
  const auto n = static_cast<double>(size_);
  const double mean_u = sums_.u / n;
  const double mean_v = sums_.v / n;
  const double sxx = sums_.uu - sums_.u * mean_u;
  if (!(sxx > 0.0)) return f;
  f.last_x = max_x_;
  const double sxy = sums_.uv - sums_.u * mean_v;
  const double syy = sums_.vv - sums_.v * mean_v;
  f.slope = sxy / sxx;
  const double sse = syy - f.slope * sxy;
  f.slope_se = std::sqrt(std::max(sse, 0.0) / (n - 2.0) / sxx);
  f.value = anchor_y_ + mean_v + f.slope * (f.last_x - anchor_x_ - mean_u);
  f.valid = std::isfinite(f.slope) && std::isfinite(f.value);
  return f;
}

TrendFit TrendWindow::fit_direct() const {
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
