// SPDX-License-Identifier: Apache-2.0
#pragma once
// The median of the last n values of a window, shared by the detectors that take a
// level as the median of their last few values (cadence_noise, loss_jump_detector).
// Up to kStackMedian values it works on a stack copy, so the per-snapshot path does not
// allocate; a larger window takes a heap copy. Even n: the mean of the two middle values.

#include <algorithm>
#include <array>
#include <cstddef>
#include <deque>
#include <iterator>
#include <vector>

namespace orbit {

inline constexpr std::size_t kStackMedian = 64;

namespace detail {
template <class It>
double median_in_place(It first, It last) {
  const auto n = static_cast<std::size_t>(std::distance(first, last));
  const auto mid = first + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(first, mid, last);
  if (n % 2 == 1) return *mid;
  return 0.5 * (*mid + *std::max_element(first, mid));
}
}  // namespace detail

// n must be in [1, values.size()].
inline double median_of_last(const std::deque<double>& values, std::size_t n) {
  const auto from = values.end() - static_cast<std::ptrdiff_t>(n);
  if (n <= kStackMedian) {
    std::array<double, kStackMedian> v;
    std::copy(from, values.end(), v.begin());
    return detail::median_in_place(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
  }
  std::vector<double> v(from, values.end());
  return detail::median_in_place(v.begin(), v.end());
}

}  // namespace orbit
