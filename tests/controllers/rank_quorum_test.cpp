// SPDX-License-Identifier: Apache-2.0
// RankQuorum: liveness of ranks and when a multi-rank step may close; and the
// Navigator with a world size far larger than any rank it has seen.

#include <chrono>
#include <cstdint>

#include <gtest/gtest.h>

#include "controllers/navigator.hpp"
#include "controllers/rank_quorum.hpp"

namespace orbit {
namespace {

DistributedConfig rule(double quorum, std::int64_t deadline_steps = 100, double deadline_seconds = 1e9) {
  DistributedConfig r;
  r.quorum = quorum;
  r.deadline_steps = deadline_steps;
  r.deadline_seconds = deadline_seconds;
  return r;
}

TEST(RankQuorum, UnseenRanksAreLiveStaleOnesAreNot) {
  RankQuorum<int> q;
  EXPECT_EQ(q.live(4), 4);
  q.status(1).seen = true;
  EXPECT_TRUE(q.mark_silent(2));
  EXPECT_FALSE(q.mark_silent(2));  // already stale
  EXPECT_EQ(q.live(4), 3);
  // A stale rank outside the declared world does not count against it.
  EXPECT_TRUE(q.mark_silent(9));
  EXPECT_EQ(q.live(4), 3);
  EXPECT_EQ(q.live(0), 1);  // a world is at least one rank
}

TEST(RankQuorum, LiveCostsTheRanksSeenNotTheWorldSize) {
  RankQuorum<int> q;
  q.mark_silent(3);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(q.live(std::int64_t{1} << 40), (std::int64_t{1} << 40) - 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(RankQuorum, AStepClosesOnAQuorumOfLiveRanks) {
  RankQuorum<int> q;
  q.add(5, 0, 100.0) = 10;
  EXPECT_FALSE(q.ready_through(rule(1.0), 2, 5, 100.0));
  EXPECT_EQ(q.ready_through(rule(0.5), 2, 5, 100.0), 5);
  q.add(5, 1, 100.5) = 11;
  EXPECT_EQ(q.ready_through(rule(1.0), 2, 5, 100.5), 5);
  auto p = q.pop_through(5);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ranks.size(), 2u);
  EXPECT_EQ(p->ranks.at(1), 11);
  EXPECT_DOUBLE_EQ(p->first_time, 100.0);
  EXPECT_FALSE(q.waiting());
  EXPECT_FALSE(q.pop_through(5));
}

TEST(RankQuorum, AStaleRankIsNotWaitedFor) {
  RankQuorum<int> q;
  q.add(1, 0, 0.0);
  EXPECT_FALSE(q.ready_through(rule(1.0), 2, 1, 0.0));
  q.mark_silent(1);
  EXPECT_EQ(q.ready_through(rule(1.0), 2, 1, 0.0), 1);
}

TEST(RankQuorum, DeadlinesInStepsAndSecondsCloseEveryOlderStep) {
  RankQuorum<int> q;
  q.add(1, 0, 10.0);
  q.add(2, 0, 11.0);
  EXPECT_FALSE(q.ready_through(rule(1.0, 3, 60.0), 4, 2, 11.0));
  EXPECT_EQ(q.ready_through(rule(1.0, 3, 60.0), 4, 4, 11.0), 1);   // step 4 seen: 1 + 3 <= 4
  EXPECT_EQ(q.ready_through(rule(1.0, 3, 60.0), 4, 2, 71.0), 2);   // both waited 60 s
  EXPECT_TRUE(q.pop_through(2));
  EXPECT_TRUE(q.pop_through(2));
  EXPECT_FALSE(q.waiting());
}

TEST(RankQuorum, StaleMarkingAndANewBranch) {
  RankQuorum<int> q;
  for (std::int64_t r : {0, 1, 2}) {
    RankStatus& s = q.status(r);
    s.seen = true;
    s.last_time = 10.0 * static_cast<double>(r);
    s.last_step = 50 + r;
  }
  // Rank 2 sends at time 100: ranks 0 and 1 (times 0 and 10) are older than 60 s.
  EXPECT_EQ(q.mark_stale(2, 100.0, 60.0), (std::vector<std::int64_t>{0, 1}));
  EXPECT_TRUE(q.mark_stale(2, 100.0, 60.0).empty());
  q.add(60, 2, 100.0);
  q.start_branch(40);
  EXPECT_FALSE(q.waiting());
  EXPECT_EQ(q.status(2).last_step, 40);
  q.forget_ranks_from(2);
  EXPECT_EQ(q.ranks().size(), 2u);
}

Snapshot snapshot(std::int64_t step, std::int64_t rank) {
  Snapshot s;
  s.run = "huge";
  s.rank = rank;
  s.step = step;
  s.time = 1000.0 + static_cast<double>(step);
  s.loss = 2.0;
  s.spectra["hidden.0"] = std::vector<float>(16, 1.0f);
  return s;
}

// Issue 16 item 1: a declared world of 2^40 ranks once cost a loop over every
// rank per snapshot and per silent rank (the daemon froze, also on recovery).
TEST(RankQuorum, NavigatorWithAHugeDeclaredWorldStaysFast) {
  RunInfo info;
  info.run = "huge";
  info.world_size = std::int64_t{1} << 40;
  info.actuators = {"lr"};
  Navigator nav(NavigatorConfig{}, info, Mode::active);
  const auto start = std::chrono::steady_clock::now();
  for (std::int64_t step = 0; step < 20; ++step) {
    nav.on_snapshot(snapshot(step, 0));
    nav.on_snapshot(snapshot(step, 1));
  }
  nav.on_rank_silent(1, 2000.0);
  nav.on_snapshot(snapshot(20, 0));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Steps closed by the step deadline (2^40 ranks never make a quorum).
  EXPECT_GT(nav.closed_steps(), 0);
}

}  // namespace
}  // namespace orbit
