// SPDX-License-Identifier: Apache-2.0
// RingDeque against std::deque under the same random pushes, drops (front and back)
// and clears: the same values in the same order, read from the front, the back and
// by iterators.
#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <utility>

#include <gtest/gtest.h>

#include "controllers/ring_deque.hpp"

namespace orbit {
namespace {

TEST(RingDeque, HoldsWhatStdDequeHoldsUnderRandomUse) {
  std::mt19937_64 rng(3);
  RingDeque<std::pair<double, std::int64_t>> ring;
  std::deque<std::pair<double, std::int64_t>> want;
  for (int op = 0; op < 200000; ++op) {
    const auto pick = rng() % 100;
    if (pick < 55) {
      const std::pair<double, std::int64_t> v{static_cast<double>(rng() % 1000) / 7.0, static_cast<std::int64_t>(op)};
      ring.push_back(v);
      want.push_back(v);
    } else if (pick < 85) {
      if (!want.empty()) {
        ring.pop_front();
        want.pop_front();
      }
    } else if (pick < 99) {
      if (!want.empty()) {
        ring.pop_back();
        want.pop_back();
      }
    } else {
      ring.clear();
      want.clear();
    }
    ASSERT_EQ(ring.size(), want.size());
    ASSERT_EQ(ring.empty(), want.empty());
    if (want.empty()) continue;
    ASSERT_EQ(ring.front(), want.front());
    ASSERT_EQ(ring.back(), want.back());
    if (op % 97 == 0) {
      ASSERT_TRUE(std::equal(ring.begin(), ring.end(), want.begin(), want.end())) << "op " << op;
      ASSERT_TRUE(std::equal(ring.rbegin(), ring.rend(), want.rbegin(), want.rend())) << "op " << op;
      const std::size_t n = 1 + rng() % want.size();
      ASSERT_TRUE(std::equal(ring.end() - static_cast<std::ptrdiff_t>(n), ring.end(),
                             want.end() - static_cast<std::ptrdiff_t>(n)));
      ASSERT_EQ(*std::min_element(ring.begin(), ring.end()), *std::min_element(want.begin(), want.end()));
    }
  }
}

}  // namespace
}  // namespace orbit
