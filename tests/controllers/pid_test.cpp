// SPDX-License-Identifier: Apache-2.0
// The log-lr PID: direction, limits, slew, anti-windup, bumpless transfer and return.
#include <cmath>

#include <gtest/gtest.h>

#include "controllers/pid.hpp"

namespace orbit {
namespace {

const PidLimits kLimits{std::log(0.05), 0.0, std::log(2.0), 3.0, std::log(2.0)};

TEST(LogLrPid, UnhealthyCutsHealthyHoldsAtTheCeiling) {
  LogLrPid pid;
  const PidGains g{1.0, 0.0, 0.0};
  auto s = pid.update(0.4, 1.0, 0.0, g, kLimits);  // error 0.4 → cut 0.4
  EXPECT_NEAR(s.output, -0.4, 1e-12);
  EXPECT_NEAR(s.p, 0.4, 1e-12);
  s = pid.update(-0.8, 1.0, 0.0, g, kLimits);  // healthy: wants +0.8, ceiling is 0
  EXPECT_EQ(s.output, 0.0);
  EXPECT_TRUE(s.saturated);
}

TEST(LogLrPid, DerivativeActsOnTheMeasurementSlope) {
  LogLrPid pid;
  const PidGains g{0.5, 0.0, 60.0};
  // Healthy now (e = -0.6) but falling 0.01/step: look-ahead 120 steps says cut.
  auto s = pid.update(-0.6, 1.0, -0.01, g, kLimits);
  EXPECT_NEAR(s.d, 0.6, 1e-12);
  EXPECT_NEAR(s.output, -(0.5 * -0.6 + 0.6), 1e-12);
  // A rising measurement never cuts.
  LogLrPid rising;
  EXPECT_EQ(rising.update(-0.6, 1.0, +0.01, g, kLimits).output, 0.0);
}

TEST(LogLrPid, SlewLimitsEachStepAndRangeHolds) {
  LogLrPid pid;
  const PidGains g{50.0, 0.0, 0.0};
  double previous = 0.0;
  for (int i = 0; i < 20; ++i) {
    const auto s = pid.update(2.0, 1.0, 0.0, g, kLimits);
    EXPECT_LE(previous - s.output, std::log(2.0) + 1e-12);
    EXPECT_GE(s.output, std::log(0.05) - 1e-12);
    previous = s.output;
  }
  EXPECT_NEAR(previous, std::log(0.05), 1e-12);
}

TEST(LogLrPid, AntiWindupStopsTheIntegralAtALimit) {
  LogLrPid pid;
  const PidGains g{0.0, 0.5, 0.0};
  for (int i = 0; i < 200; ++i) pid.update(1.0, 1.0, 0.0, g, kLimits);  // error 1 for 200 steps
  EXPECT_NEAR(pid.output(), std::log(0.05), 1e-12);
  // Without anti-windup the integral would have run to its limit; with it, it
  // stopped exactly where the output met the floor.
  EXPECT_NEAR(pid.integral(), -std::log(0.05), 1e-9);
  // So when the error flips, the output leaves the floor within a few steps.
  int steps = 0;
  while (pid.update(-1.0, 1.0, 0.0, g, kLimits).output <= std::log(0.05) + 1e-9 && steps < 100) ++steps;
  EXPECT_EQ(steps, 0);
}

TEST(LogLrPid, NoWindupWhileHealthyAtTheCeiling) {
  LogLrPid pid;
  const PidGains g{1.0, 0.1, 0.0};
  for (int i = 0; i < 500; ++i) pid.update(-1.0, 1.0, 0.0, g, kLimits);  // healthy: pinned at 0
  EXPECT_EQ(pid.integral(), 0.0);
  // The first unhealthy step acts at once (no negative integral to unwind).
  const auto s = pid.update(0.5, 1.0, 0.0, g, kLimits);
  EXPECT_LT(s.output, -0.5);
}

TEST(LogLrPid, TrackIsBumplessOnAGainChange) {
  LogLrPid pid;
  const PidGains critical{2.0, 0.05, 20.0};
  const PidGains recovering{0.5, 0.02, 0.0};
  for (int i = 0; i < 5; ++i) pid.update(0.5, 1.0, 0.0, critical, kLimits);
  const double before = pid.output();
  pid.track(0.5, 0.0, recovering, kLimits);
  const auto s = pid.update(0.5, 1.0, 0.0, recovering, kLimits);
  // Continuous: only this step's integral increment moves the output.
  EXPECT_NEAR(s.output, before - 0.02 * 0.5, 1e-12);
  // Without track() the lower gains would have jumped the output up.
  LogLrPid jumpy;
  for (int i = 0; i < 5; ++i) jumpy.update(0.5, 1.0, 0.0, critical, kLimits);
  EXPECT_GT(jumpy.update(0.5, 1.0, 0.0, recovering, kLimits).output, before + 0.3);
}

TEST(LogLrPid, RelaxTowardReturnsBumplesslyToOne) {
  LogLrPid pid;
  pid.set_output(std::log(0.25), kLimits);
  const double rate = std::log(2.0) / 50.0;
  int steps = 0;
  double previous = pid.output();
  while (pid.output() < 0.0) {
    const double u = pid.relax_toward(0.0, rate, kLimits);
    EXPECT_LE(u - previous, rate + 1e-12);
    EXPECT_LE(u, 0.0);
    previous = u;
    ++steps;
  }
  EXPECT_NEAR(steps, 100, 1);  // two doublings at 50 steps each
  EXPECT_EQ(pid.integral(), 0.0);
}

TEST(LogLrPid, CutsFastRaisesSlowly) {
  PidLimits asymmetric = kLimits;
  asymmetric.max_step_up = std::log(2.0) / 50.0;
  LogLrPid pid;
  const PidGains g{2.0, 0.0, 0.0};
  EXPECT_NEAR(pid.update(1.0, 1.0, 0.0, g, asymmetric).output, -std::log(2.0), 1e-12);  // one full cut
  // Healthy again: the output climbs back at most ln2/50 per update.
  double previous = pid.output();
  for (int i = 0; i < 10; ++i) {
    const double u = pid.update(-1.0, 1.0, 0.0, g, asymmetric).output;
    EXPECT_NEAR(u - previous, std::log(2.0) / 50.0, 1e-12);
    previous = u;
  }
}

TEST(LogLrPid, LoweredCeilingWinsOverTheSlew) {
  LogLrPid pid;
  PidLimits capped = kLimits;
  capped.output_max = std::log(0.25);
  const auto s = pid.update(-1.0, 1.0, 0.0, PidGains{1.0, 0.0, 0.0}, capped);
  EXPECT_NEAR(s.output, std::log(0.25), 1e-12);
}

// Gains are per training step: one update spanning 10 steps integrates what 10
// one-step updates would (while no limit holds), and dt = 0 integrates nothing.
TEST(LogLrPid, TheIntegralScalesWithTheStepsSinceTheLastUpdate) {
  const PidGains g{0.0, 0.01, 0.0};
  const PidLimits wide{-3.0, 0.0, 3.0, 3.0, 3.0};
  LogLrPid per_step;
  for (int i = 0; i < 10; ++i) per_step.update(0.5, 1.0, 0.0, g, wide);
  LogLrPid coarse;
  const auto s = coarse.update(0.5, 10.0, 0.0, g, wide);
  EXPECT_NEAR(coarse.integral(), 0.05, 1e-15);
  EXPECT_NEAR(coarse.integral(), per_step.integral(), 1e-15);
  EXPECT_NEAR(s.output, -0.05, 1e-15);

  LogLrPid held;
  held.update(0.5, 0.0, 0.0, g, wide);
  held.update(0.5, std::nan(""), 0.0, g, wide);
  EXPECT_EQ(held.integral(), 0.0);
  // The proportional and derivative terms do not depend on dt.
  LogLrPid pd;
  EXPECT_EQ(pd.update(0.5, 10.0, -0.01, PidGains{1.0, 0.0, 5.0}, wide).output,
            LogLrPid{}.update(0.5, 1.0, -0.01, PidGains{1.0, 0.0, 5.0}, wide).output);
}

}  // namespace
}  // namespace orbit
