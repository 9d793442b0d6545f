// SPDX-License-Identifier: Apache-2.0
// BurnSchedule: when burns start, stop, supersede each other and count as late.
#include "adapters/libtorch/burn_schedule.hpp"

#include <gtest/gtest.h>

namespace orbit {
namespace {

Burn make_burn(std::int64_t seq, std::int64_t apply_at, std::int64_t expires, double scale) {
  Burn b;
  b.run = "r";
  b.seq = seq;
  b.apply_at_step = apply_at;
  b.expires_after_steps = expires;
  b.lr_scale = scale;
  return b;
}

TEST(BurnSchedule, GovernsFromApplyAtStepForItsWindow) {
  BurnSchedule s;
  s.add(make_burn(1, 5, 3, 0.5));
  for (std::int64_t step = 0; step < 5; ++step) {
    EXPECT_TRUE(s.advance(step).empty());
    EXPECT_EQ(s.lr_scale(), 1.0) << step;
  }
  auto applied = s.advance(5);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].step, 5);
  EXPECT_FALSE(applied[0].late);
  EXPECT_EQ(s.lr_scale(), 0.5);
  EXPECT_TRUE(s.advance(6).empty());
  EXPECT_EQ(s.lr_scale(), 0.5);
  s.advance(7);
  EXPECT_EQ(s.lr_scale(), 0.5);
  s.advance(8);  // 5 + 3: expired
  EXPECT_EQ(s.lr_scale(), 1.0);
  EXPECT_FALSE(s.active());
}

TEST(BurnSchedule, LateBurnAppliesAtOnceAndKeepsItsScheduledEnd) {
  BurnSchedule s;
  s.add(make_burn(1, 3, 4, 0.25));
  auto applied = s.advance(5);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_TRUE(applied[0].late);
  EXPECT_EQ(applied[0].step, 5);
  EXPECT_EQ(s.lr_scale(), 0.25);
  s.advance(6);
  EXPECT_EQ(s.lr_scale(), 0.25);
  s.advance(7);  // 3 + 4
  EXPECT_EQ(s.lr_scale(), 1.0);
}

TEST(BurnSchedule, NewerBurnReplacesOlderScaleWithoutCompounding) {
  BurnSchedule s;
  s.add(make_burn(1, 1, 100, 0.5));
  s.advance(1);
  EXPECT_EQ(s.lr_scale(), 0.5);
  s.add(make_burn(2, 3, 100, 0.8));
  s.advance(3);
  EXPECT_EQ(s.lr_scale(), 0.8);  // not 0.4
}

TEST(BurnSchedule, DuplicatesAndOvertakenBurnsAreIgnored) {
  BurnSchedule s;
  s.add(make_burn(2, 1, 10, 0.5));
  s.add(make_burn(2, 1, 10, 0.5));
  EXPECT_EQ(s.pending(), 1u);
  EXPECT_EQ(s.advance(1).size(), 1u);
  s.add(make_burn(2, 1, 10, 0.5));  // re-delivered after it was applied
  s.add(make_burn(1, 2, 10, 0.1));  // older seq arriving late
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_TRUE(s.advance(2).empty());
  EXPECT_EQ(s.lr_scale(), 0.5);
}

TEST(BurnSchedule, BurnsDueTogetherApplyInSeqOrderAndTheNewestGoverns) {
  BurnSchedule s;
  s.add(make_burn(4, 2, 10, 0.3));
  s.add(make_burn(3, 2, 10, 0.6));
  auto applied = s.advance(2);
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0].burn.seq, 3);
  EXPECT_EQ(applied[1].burn.seq, 4);
  EXPECT_EQ(s.lr_scale(), 0.3);
}

TEST(BurnSchedule, APendingBurnOvertakenByANewerOneIsDropped) {
  BurnSchedule s;
  Burn late = make_burn(1, 5, 10, 0.5);  // due later
  late.rollback_to_step = 0;
  s.add(late);
  s.add(make_burn(2, 2, 10, 0.8));  // newer, due first
  auto first = s.advance(2);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].burn.seq, 2);
  EXPECT_TRUE(s.advance(5).empty());  // seq 1 was overtaken: not applied, no rollback
  EXPECT_FALSE(s.rollback_due(5));
  EXPECT_EQ(s.lr_scale(), 0.8);
}

TEST(BurnSchedule, ZeroExpiryIsOneShot) {
  BurnSchedule s;
  Burn b = make_burn(1, 2, 0, 0.5);
  b.rollback_to_step = 0;
  s.add(b);
  auto applied = s.advance(2);
  ASSERT_EQ(applied.size(), 1u);  // still applied (its rollback happens) ...
  EXPECT_EQ(s.lr_scale(), 1.0);   // ... but its scale governs no step
}

}  // namespace
}  // namespace orbit
