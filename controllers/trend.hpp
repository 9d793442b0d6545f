// SPDX-License-Identifier: Apache-2.0
#pragma once
// Least-squares line through the last N (step, value) points, and the forecast of
// how many steps remain until the line reaches a threshold (the danger line of a
// zone): "entropy 1.62 falling 0.004/step, danger in ~30 steps".

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "controllers/replay_memo.hpp"

namespace orbit {

struct TrendFit {
  bool valid = false;      // at least 3 points spread over more than one step
  std::size_t points = 0;
  double slope = 0.0;      // value units per step
  double slope_se = 0.0;   // standard error of the slope
  double last_x = 0.0;     // newest step in the window
  double value = 0.0;      // the fitted line at last_x (less noisy than the last sample)

  // Slope larger than `sigmas` standard errors: a trend, not noise.
  bool significant(double sigmas) const { return valid && std::abs(slope) > sigmas * slope_se; }
  // Steps from last_x until the line reaches `threshold`; nullopt when it moves
  // away from it (or is flat). 0 when the fitted value is already past it.
  std::optional<double> steps_until(double threshold) const;
  double value_at(double x) const { return value + slope * (x - last_x); }
};

// One push (x, y) then fit() of a window of `capacity`, for a ReplayMemo: the fit
// depends on the whole push history (the running sums below), so the memo records
// every push since the window's reset.
struct TrendInput {
  double x = 0.0, y = 0.0;
};
struct TrendParams {
  std::size_t capacity = 0;
};
bool same(const TrendInput& a, const TrendInput& b);  // bit for bit
inline bool same(const TrendParams& a, const TrendParams& b) { return a.capacity == b.capacity; }
using TrendMemo = ReplayMemo<TrendInput, TrendFit, TrendParams>;
using TrendMemoCursor = MemoCursor<TrendInput, TrendFit, TrendParams>;

// The window keeps running sums, so push() and fit() are O(1) whatever the
// capacity (six fits run per snapshot). The sums are taken about an anchor point
// inside the window and rebuilt from the ring every `capacity` pushes, so rounding
// from adding and removing points never accumulates past one window's worth.
// The fit agrees with fit_direct() (the two-pass fit over the ring) to rounding,
// not bit for bit.
class TrendWindow {
 public:
  explicit TrendWindow(std::size_t capacity = 20);

  void push(double x, double y);
  void reset();
  // Keeps the newest points that still fit.
  void set_capacity(std::size_t capacity);

  TrendFit fit() const;         // O(1), from the running sums
  TrendFit fit_direct() const;  // O(n), two passes over the ring: the reference
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return xs_.size(); }

 private:
  struct Sums {
    double u = 0.0, v = 0.0, uu = 0.0, uv = 0.0, vv = 0.0;  // u = x - anchor_x, v = y - anchor_y
  };
  void rebuild_sums();  // new anchor, sums recomputed from the ring
  void add(double x, double y, double sign);
  double newest_x() const { return xs_[(head_ + xs_.size() - 1) % xs_.size()]; }

  std::vector<double> xs_;
  std::vector<double> ys_;
  std::size_t head_ = 0;  // next slot to write
  std::size_t size_ = 0;
  Sums sums_;
  double anchor_x_ = 0.0, anchor_y_ = 0.0;
  double max_x_ = 0.0;             // the largest x in the window
  std::size_t since_rebuild_ = 0;  // pushes since the sums were rebuilt
};

}  // namespace orbit
