// SPDX-License-Identifier: Apache-2.0
#pragma once
// The median of the last n values of a window, shared by the detectors that take a
// level as the median of their last few values (cadence_noise, loss_jump_detector).
// Up to kStackMedian values it works on a stack copy, so the per-snapshot path does not
// allocate; a larger window takes a heap copy. Even n: the mean of the two middle values.

#include <algorithm>
#include <array>
#include <cstddef>
#include <iterator>
#include <vector>

#include "controllers/ring_deque.hpp"

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

// Up to this many values without a NaN, the copy is insertion-sorted instead: the same
// middle values (the k-th smallest is the k-th smallest however it is found), so the
// same median to the bit, at a fraction of nth_element's cost on a 5-value window.
// A NaN (no strict weak order) or a zero (which of +0 and -0 lands in the middle
// depends on the algorithm) takes nth_element, whose result it has always been.
inline constexpr std::size_t kSortMedian = 16;

// The median of five values without a NaN or a zero: the third smallest, found by
// min and max alone (no branches): the middle of e, the larger of the two pairs'
// minima and the smaller of their maxima (the smallest and the largest of a..d are
// never the middle of five). Equal values here have equal bits, so it is the value
// the sort would put in the middle.
inline double median_of_five(double a, double b, double c, double d, double e) {
  const double lo = std::max(std::min(a, b), std::min(c, d));
  const double hi = std::min(std::max(a, b), std::max(c, d));
  return std::max(std::min(e, lo), std::min(std::max(e, lo), hi));
}

// n must be in [1, values.size()].
inline double median_of_last(const RingDeque<double>& values, std::size_t n) {
  const auto from = values.end() - static_cast<std::ptrdiff_t>(n);
  if (n == 5) {  // the detectors' default level window, once it is full
    const double a = from[0], b = from[1], c = from[2], d = from[3], e = from[4];
    // A NaN or a zero leaves the network (as it leaves the insertion sort below).
    const bool special = (a != a) | (b != b) | (c != c) | (d != d) | (e != e) | (a == 0.0) | (b == 0.0) | (c == 0.0) |
                         (d == 0.0) | (e == 0.0);
    if (!special) return median_of_five(a, b, c, d, e);
  }
  if (n <= kSortMedian) {
    std::array<double, kSortMedian> v{};  // zeroed: GCC cannot see that the sort writes before it reads
    bool special = false;
    std::size_t i = 0;
    for (auto it = from; it != values.end(); ++it, ++i) {
      const double x = *it;
      special |= x != x || x == 0.0;
      std::size_t j = i;
      for (; j > 0 && x < v[j - 1]; --j) v[j] = v[j - 1];
      v[j] = x;
    }
    if (!special) return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2] + v[n / 2 - 1]);
    std::copy(from, values.end(), v.begin());
    return detail::median_in_place(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
  }
  if (n <= kStackMedian) {
    std::array<double, kStackMedian> v;
    std::copy(from, values.end(), v.begin());
    return detail::median_in_place(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
  }
  std::vector<double> v(from, values.end());
  return detail::median_in_place(v.begin(), v.end());
}

}  // namespace orbit
