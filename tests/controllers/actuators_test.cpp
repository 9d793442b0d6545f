// SPDX-License-Identifier: Apache-2.0
// Actuator pieces on their own: mixture reweighter, curriculum, loss weights,
// recovery ladder.
#include <cmath>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "controllers/curriculum.hpp"
#include "controllers/loss_weight_scheduler.hpp"
#include "controllers/mixture_reweighter.hpp"
#include "controllers/recovery_ladder.hpp"

namespace orbit {
namespace {

double sum(const std::map<std::string, double>& w) {
  double s = 0.0;
  for (const auto& [k, v] : w) s += v;
  return s;
}

std::map<std::string, DomainProfile> scorecard() {
  std::map<std::string, DomainProfile> m;
  m["forum"] = {{Basin::semantic_loop}, Verdict::reduce, std::nullopt, ""};
  m["spam"] = {{Basin::semantic_loop, Basin::token_collapse}, Verdict::remove, std::nullopt, ""};
  m["books"] = {{Basin::creative}, Verdict::increase, std::nullopt, ""};
  return m;
}

TEST(MixtureReweighter, ProjectKeepsSumAndFloor) {
  std::vector<double> w = {0.0, 1e-9, 5.0, 3.0};
  MixtureReweighter::project(w, 0.05);
  EXPECT_NEAR(std::accumulate(w.begin(), w.end(), 0.0), 1.0, 1e-12);
  EXPECT_EQ(w[0], 0.05);
  EXPECT_EQ(w[1], 0.05);
  EXPECT_NEAR(w[2] / w[3], 5.0 / 3.0, 1e-12);  // the rest keep their proportions
  std::vector<double> tight = {1.0, 0.0, 0.0};
  MixtureReweighter::project(tight, 0.5);  // n·floor > 1: floor becomes 1/n
  for (double x : tight) EXPECT_NEAR(x, 1.0 / 3.0, 1e-12);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 1000; ++trial) {
    std::vector<double> r(1 + trial % 9);
    for (double& x : r) x = u(rng) < 0.3 ? 0.0 : std::pow(u(rng), 6.0);
    MixtureReweighter::project(r, 0.04);
    const double f = std::min(0.04, 1.0 / static_cast<double>(r.size()));
    EXPECT_NEAR(std::accumulate(r.begin(), r.end(), 0.0), 1.0, 1e-12);
    for (double x : r) EXPECT_GE(x, f - 1e-15);
  }
}

TEST(MixtureReweighter, HeadingTowardALoopMovesWeightAwayFromLoopDomains) {
  MixtureReweighter mix;
  const ReweightParams p{0.1, 0.05, 0.02, 0.002};
  mix.set_domains({"forum", "spam", "books", "code"}, scorecard(), p);
  EXPECT_NEAR(mix.weights()["forum"], 0.25, 1e-12);
  for (int i = 0; i < 5; ++i) mix.push_away(Basin::semantic_loop, 1.0, p);
  auto w = mix.weights();
  EXPECT_NEAR(sum(w), 1.0, 1e-12);
  EXPECT_LT(w["forum"], 0.25);
  EXPECT_LT(w["spam"], w["forum"]);  // remove moves twice as fast as reduce
  EXPECT_GT(w["books"], w["code"]);  // CREATIVE-tagged gains, untagged only by renormalization
  EXPECT_GE(w["spam"], 0.02);
  // A collapse only touches domains tagged TOKEN_COLLAPSE.
  MixtureReweighter other;
  other.set_domains({"forum", "spam", "books", "code"}, scorecard(), p);
  other.push_away(Basin::token_collapse, 1.0, p);
  EXPECT_LT(other.weights()["spam"], 0.25);
  EXPECT_NEAR(other.weights()["forum"], other.weights()["code"], 1e-15);
  // Zero pressure: nothing moves.
  MixtureReweighter still;
  still.set_domains({"forum", "books"}, scorecard(), p);
  still.push_away(Basin::semantic_loop, 0.0, p);
  EXPECT_TRUE(still.at_base());
}

TEST(MixtureReweighter, RelaxReturnsExactlyToTheBase) {
  MixtureReweighter mix;
  const ReweightParams p{0.1, 0.05, 0.02, 0.002};
  auto card = scorecard();
  card["forum"].weight = 3.0;
  card["books"].weight = 1.0;
  mix.set_domains({"forum", "books", "code"}, card, p);
  const auto base = mix.base();
  EXPECT_NEAR(base.at("forum"), 3.0 / 6.0, 1e-12);  // code takes the mean of the given weights
  EXPECT_NEAR(base.at("code"), 2.0 / 6.0, 1e-12);
  for (int i = 0; i < 30; ++i) mix.push_away(Basin::semantic_loop, 1.0, p);
  EXPECT_FALSE(mix.at_base());
  int steps = 0;
  while (!mix.relax(p)) ++steps;
  EXPECT_EQ(mix.weights(), base);
  EXPECT_GT(steps, 10);
  EXPECT_LT(steps, 200);
}

TEST(MixtureReweighter, ObservedBaseAndDomainChanges) {
  MixtureReweighter mix;
  const ReweightParams p{0.1, 0.05, 0.02, 0.002};
  mix.set_domains({"a", "b"}, {}, p);
  mix.observe_base({{"a", 0.9}}, p);  // incomplete: ignored
  EXPECT_FALSE(mix.observed_base());
  mix.observe_base({{"a", 0.9}, {"b", 0.1}}, p);
  EXPECT_TRUE(mix.observed_base());
  EXPECT_NEAR(mix.base().at("a"), 0.9, 1e-12);
  mix.set_domains({"a", "b", "c"}, {}, p);  // a domain joins
  EXPECT_EQ(mix.domains().size(), 3u);
  EXPECT_NEAR(sum(mix.weights()), 1.0, 1e-12);
  EXPECT_GT(mix.base().at("a"), mix.base().at("c"));
  EXPECT_EQ(verdict_from_string("remove"), Verdict::remove);
  EXPECT_FALSE(verdict_from_string("delete"));
}

TEST(Curriculum, AdvancesAfterStableStepsAndStepsBackOnCritical) {
  Curriculum c;
  const std::vector<CurriculumPhase> phases = {{"easy", {"a"}}, {"mixed", {"a", "b"}}, {"all", {"a", "b", "c"}}};
  const CurriculumParams p{5};
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(c.update(OrbitState::stable, false, phases, p));
  auto e = c.update(OrbitState::stable, false, phases, p);
  ASSERT_TRUE(e);
  EXPECT_EQ(c.phase(), 1);
  EXPECT_NE(e->find("phase 1 (mixed)"), std::string::npos);
  for (int i = 0; i < 4; ++i) c.update(OrbitState::stable, false, phases, p);
  c.update(OrbitState::warning, false, phases, p);  // breaks the run of stable steps
  EXPECT_EQ(c.phase(), 1);
  e = c.update(OrbitState::critical, true, phases, p);
  ASSERT_TRUE(e);
  EXPECT_EQ(c.phase(), 0);
  EXPECT_FALSE(c.update(OrbitState::critical, true, phases, p));  // not below 0
  for (int i = 0; i < 100; ++i) c.update(OrbitState::stable, false, phases, p);
  EXPECT_EQ(c.phase(), 2);  // and not past the last
}

TEST(LossWeightScheduler, RisesWithPressureZeroWhenStable) {
  LossWeightScheduler s;
  const LossWeightParams p{0.1, 0.05, 0.005};
  auto w = s.update(OrbitState::warning, 0.5, 1.0, p);
  EXPECT_NEAR(w.at("collapse"), 0.05, 1e-12);
  EXPECT_NEAR(w.at("phi"), 0.05, 1e-12);
  w = s.update(OrbitState::critical, 7.0, -1.0, p);  // clamped to [0, 1]
  EXPECT_NEAR(w.at("collapse"), 0.1, 1e-12);
  EXPECT_EQ(w.at("phi"), 0.0);
  w = s.update(OrbitState::stable, 1.0, 1.0, p);
  EXPECT_TRUE(s.zero());
}

LadderInput at(std::int64_t tick, OrbitState state, double health) {
  LadderInput in;
  in.tick = tick;
  in.step = 100 + tick;
  in.state = state;
  in.health = health;
  in.allowed = true;
  return in;
}

TEST(RecoveryLadder, SignatureRollsBackAtOnceToBeforeTheFirstAlarm) {
  RecoveryLadder ladder;
  const RollbackPolicy policy;
  LadderInput in = at(1, OrbitState::critical, -0.5);
  in.episode_started = true;
  in.last_stable_step = 100;
  in.signature = true;
  in.signature_text = "hidden.1 dominant ratio 0.93 > 0.8";
  const auto act = ladder.update(in, policy, 0.05, 1.0);
  ASSERT_TRUE(act.rollback_to_step);
  EXPECT_EQ(*act.rollback_to_step, 90);  // lookback_steps (10) before the last stable step
  EXPECT_FALSE(act.skip_batches);
  EXPECT_NEAR(ladder.ceiling(1.0), 0.25, 1e-12);
  EXPECT_NE(act.reason.find("collapse signature"), std::string::npos);
  // One outstanding at a time.
  in.tick = 2;
  in.step = 102;
  in.episode_started = false;
  EXPECT_FALSE(ladder.update(in, policy, 0.05, 1.0).rollback_to_step);
  ladder.on_restored(100);
  // The restored run passes through its early transient again: inside the grace the
  // signature alone asks for nothing (health improves, so patience does not either).
  ASSERT_EQ(policy.signature_grace_steps, 60);
  for (std::int64_t t = 3; t <= 60; ++t) {
    in.tick = t;
    in.step = 100 + t;
    in.health = -0.5 + 0.01 * static_cast<double>(t);
    EXPECT_FALSE(ladder.update(in, policy, 0.05, 1.0).rollback_to_step) << t;
  }
  // Past it, a signature that is still there does.
  in.tick = 61;
  in.step = 161;
  const auto again = ladder.update(in, policy, 0.05, 1.0);
  ASSERT_TRUE(again.rollback_to_step);
  EXPECT_EQ(*again.rollback_to_step, 90);  // the same anchor in the same episode
  EXPECT_NEAR(ladder.ceiling(1.0), 0.0625, 1e-12);
}

// Post-LN B of the efficacy suite (seeds 5000, 7003): the first restore landed on the
// loss plateau, the branch never left it, and the next rollbacks went 10 steps before
// its newest stable step, onto the same plateau. A stalled branch goes to the start
// under the same ceiling; one that learned rolls back as before.
TEST(RecoveryLadder, AStalledRestoredBranchRollsBackToTheStartUnderTheSameCeiling) {
  const RollbackPolicy policy;
  for (const bool stalled : {true, false}) {
    RecoveryLadder ladder;
    LadderInput in = at(1, OrbitState::critical, -0.3);
    in.step = 70;
    in.episode_started = true;
    in.last_stable_step = 49;
    in.signature = true;
    in.signature_text = "hidden.1 effective rank 1.97 < 2.2";
    ASSERT_EQ(ladder.update(in, policy, 0.05, 1.0).rollback_to_step, 39);
    ladder.on_restored(39);
    EXPECT_NEAR(ladder.ceiling(1.0), 0.25, 1e-12);
    // The restored branch runs STABLE to step 169, then the signature is back.
    in.signature = false;
    in.state = OrbitState::stable;
    in.health = 2.0;
    std::int64_t tick = 2;
    for (std::int64_t step = 40; step < 170; ++step, ++tick) {
      in.tick = tick;
      in.step = step;
      in.episode_started = false;
      in.last_stable_step = step;
      ASSERT_FALSE(ladder.update(in, policy, 0.05, 1.0).rollback_to_step) << step;
    }
    const double ceiling = ladder.ceiling(1.0);
    in.tick = tick;
    in.step = 170;
    in.state = OrbitState::critical;
    in.episode_started = true;
    in.last_stable_step = 169;
    in.signature = true;
    in.health = -0.3;
    if (stalled) in.branch_stalled = "smoothed loss 3.40 at step 59, 3.39 now";
    in.run_start = 5;  // a job resumed at step 5: its adapter's oldest checkpoint
    const auto act = ladder.update(in, policy, 0.05, 1.0);
    ASSERT_TRUE(act.rollback_to_step);
    if (stalled) {
      EXPECT_EQ(*act.rollback_to_step, 5);
      EXPECT_NEAR(ladder.ceiling(1.0), ceiling, 1e-12);
      EXPECT_NE(act.reason.find("the restored branch stalled (smoothed loss 3.40"), std::string::npos) << act.reason;
    } else {
      EXPECT_EQ(*act.rollback_to_step, 159);
      EXPECT_NEAR(ladder.ceiling(1.0), ceiling * policy.ceiling_factor, 1e-12);
    }
  }
}

// Setting C of the efficacy suite: a warmup collapse whose attention logits double
// every few steps while no hidden-state signature shows yet. The lr cut alone did
// not undo it (calibration seeds 0 and 1 without rollbacks: 2.257 / 2.214), so it
// rolls back at once, as the signature does, within the same grace.
TEST(RecoveryLadder, AttnLogitGrowthInDangerRollsBackAtOnce) {
  RecoveryLadder ladder;
  const RollbackPolicy policy;
  ASSERT_TRUE(policy.on_attn_logit_growth);
  LadderInput in = at(1, OrbitState::critical, -1.0);
  in.episode_started = true;
  in.last_stable_step = 39;
  in.attn_logit_danger = "attn logit growth 18.2 doublings/100 steps";
  const auto act = ladder.update(in, policy, 0.05, 1.0);
  ASSERT_TRUE(act.rollback_to_step);
  EXPECT_EQ(*act.rollback_to_step, 29);
  EXPECT_NE(act.reason.find("attention logits growing fast (attn logit growth 18.2"), std::string::npos) << act.reason;
  ladder.on_restored(29);
  in.episode_started = false;
  for (std::int64_t t = 2; t < 1 + policy.signature_grace_steps; ++t) {  // the restored run's transient
    in.tick = t;
    in.step = 29 + t;
    in.health = 1.5;  // improving: the patience rule does not ask either
    EXPECT_FALSE(ladder.update(in, policy, 0.05, 1.0).rollback_to_step) << t;
  }
  in.tick = 1 + policy.signature_grace_steps;
  EXPECT_TRUE(ladder.update(in, policy, 0.05, 1.0).rollback_to_step);

  RollbackPolicy off;
  off.on_attn_logit_growth = false;
  RecoveryLadder without;
  LadderInput first = at(1, OrbitState::critical, -1.0);
  first.episode_started = true;
  first.last_stable_step = 39;
  first.attn_logit_danger = "attn logit growth 18.2 doublings/100 steps";
  EXPECT_FALSE(without.update(first, off, 0.05, 1.0).rollback_to_step) << "off: the lr cut and the patience rule";
}

TEST(RecoveryLadder, WithoutGraceTheSignatureAsksAgainAtOnce) {
  RecoveryLadder ladder;
  RollbackPolicy policy;
  policy.signature_grace_steps = 0;
  policy.lookback_steps = 0;
  LadderInput in = at(1, OrbitState::critical, -0.5);
  in.episode_started = true;
  in.last_stable_step = 100;
  in.signature = true;
  in.signature_text = "hidden.1 effective rank 1.50 < 2.2";
  const auto first = ladder.update(in, policy, 0.05, 1.0);
  ASSERT_TRUE(first.rollback_to_step);
  EXPECT_EQ(*first.rollback_to_step, 100);  // no lookback: the last stable step itself
  ladder.on_restored(100);
  in.tick = 2;
  in.step = 102;
  in.episode_started = false;
  ASSERT_TRUE(ladder.update(in, policy, 0.05, 1.0).rollback_to_step);
  EXPECT_EQ(ladder.rollbacks(), 2);
}

TEST(RecoveryLadder, NeverWithoutTheActuatorOrWhenDisabled) {
  RecoveryLadder ladder;
  LadderInput in = at(1, OrbitState::critical, -1.0);
  in.nonfinite = true;
  in.allowed = false;
  EXPECT_FALSE(ladder.update(in, RollbackPolicy{}, 0.05, 1.0).rollback_to_step);
  RollbackPolicy off;
  off.enabled = false;
  in.allowed = true;
  EXPECT_FALSE(ladder.update(in, off, 0.05, 1.0).rollback_to_step);
  EXPECT_EQ(ladder.rollbacks(), 0);
}

TEST(RecoveryLadder, PatienceThenRollbackWhenTheCutDoesNotHelp) {
  RecoveryLadder ladder;
  RollbackPolicy policy;
  policy.patience_steps = 5;
  policy.skip_batches = true;
  std::optional<std::int64_t> rolled;
  for (std::int64_t t = 1; t <= 10 && !rolled; ++t) {
    LadderInput in = at(t, OrbitState::critical, 0.3);
    in.episode_started = t == 1;
    in.last_stable_step = 100;
    const auto act = ladder.update(in, policy, 0.05, 1.0);
    if (act.rollback_to_step) {
      rolled = t;
      EXPECT_EQ(*act.skip_batches, 100 + t - 90);  // back to lookback_steps before step 100
      EXPECT_NE(act.reason.find("did not turn the run around"), std::string::npos);
    }
  }
  EXPECT_EQ(rolled, 6);
  // Improving health inside the patience: no rollback.
  RecoveryLadder better;
  for (std::int64_t t = 1; t <= 20; ++t) {
    LadderInput in = at(t, OrbitState::critical, 0.3 + 0.05 * static_cast<double>(t));
    in.last_stable_step = 100;
    EXPECT_FALSE(better.update(in, policy, 0.05, 1.0).rollback_to_step);
  }
}

TEST(RecoveryLadder, BudgetPerWindowAndCeilingRelax) {
  RecoveryLadder ladder;
  RollbackPolicy policy;
  policy.max_per_window = 2;
  policy.window_steps = 100;
  policy.ceiling_factor = 0.5;
  policy.ceiling_relax_steps = 10;
  int rollbacks = 0;
  for (std::int64_t t = 1; t <= 50; ++t) {
    LadderInput in = at(t, OrbitState::critical, -1.0);
    in.nonfinite = true;
    in.last_stable_step = 90;
    if (ladder.update(in, policy, 0.05, 1.0).rollback_to_step) {
      ++rollbacks;
      ladder.on_restored(90);
    }
  }
  EXPECT_EQ(rollbacks, 2);
  EXPECT_NEAR(ladder.ceiling(1.0), 0.25, 1e-12);
  // Stable: doubles every 10 steps, never past the max.
  for (std::int64_t t = 51; t <= 70; ++t) ladder.update(at(t, OrbitState::stable, 1.5), policy, 0.05, 1.0);
  EXPECT_NEAR(ladder.ceiling(1.0), 1.0, 1e-9);
  for (std::int64_t t = 71; t <= 90; ++t) ladder.update(at(t, OrbitState::stable, 1.5), policy, 0.05, 1.0);
  EXPECT_EQ(ladder.ceiling(1.0), 1.0);
}

}  // namespace
}  // namespace orbit
