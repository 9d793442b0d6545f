// SPDX-License-Identifier: Apache-2.0
// The plant model (fit from a trajectory) and the PID closed around it: with the
// default gains of every acting state, the loop settles without sustained
// oscillation.
#include <cmath>
#include <cstdio>
#include <random>

#include <gtest/gtest.h>

#include "controllers/navigator_config.hpp"
#include "controllers/pid.hpp"
#include "controllers/plant_model.hpp"
#include "controllers/trend.hpp"

namespace orbit {
namespace {

TEST(PlantModel, FitRecoversKnownCoefficients) {
  const PlantModel truth{0.9, -0.08, 0.05};
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0.0, 0.01);
  std::uniform_real_distribution<double> lr(std::log(0.1), 0.0);
  const int n = 400;
  Eigen::VectorXd y(n), u(n);
  y[0] = 0.5;
  for (int i = 0; i < n; ++i) {
    u[i] = i % 25 == 0 || i == 0 ? lr(rng) : u[i - 1];  // lr changes now and then, like burns
    if (i + 1 < n) y[i + 1] = truth.step(y[i], u[i]) + noise(rng);
  }
  const PlantFit fit = fit_plant(y, u);
  ASSERT_TRUE(fit.valid);
  EXPECT_NEAR(fit.model.a, truth.a, 0.03);
  EXPECT_NEAR(fit.model.b, truth.b, 0.02);
  EXPECT_NEAR(fit.model.c, truth.c, 0.02);
  EXPECT_NEAR(fit.rmse, 0.01, 0.003);
  EXPECT_GT(fit.r2, 0.5);
  EXPECT_EQ(fit.samples, static_cast<std::size_t>(n - 1));
  EXPECT_NEAR(*truth.time_constant(), 9.49, 0.01);
  EXPECT_NEAR(truth.gain(), -0.8, 1e-12);
  EXPECT_NEAR(truth.equilibrium(0.0), 0.5, 1e-12);
}

TEST(PlantModel, UnidentifiableWhenTheLrNeverMoved) {
  Eigen::VectorXd y = Eigen::VectorXd::LinSpaced(50, 1.0, 2.0);
  Eigen::VectorXd u = Eigen::VectorXd::Zero(50);
  EXPECT_FALSE(fit_plant(y, u).valid);
  EXPECT_FALSE(fit_plant(y.head(3), u.head(3)).valid);
}

struct LoopResult {
  double final_error = 0.0;
  int late_crossings = 0;    // sign changes of the error in the second half
  double late_u_swing = 0.0; // max - min of the output over the last 100 steps
};

// Health plants: at full lr each run drifts to an unhealthy equilibrium (0.3); a
// lower lr raises it. Time constants 5, 10 and 20 steps, static gains 0.5 to 2
// health units per unit of ln(lr scale): the same gains must work for all.
const PlantModel kPlants[] = {{0.8, -0.2, 0.06}, {0.9, -0.1, 0.03}, {0.95, -0.05, 0.015},
                              {0.9, -0.05, 0.03}, {0.9, -0.2, 0.03}};

// The loop as the Navigator runs it: measurement = health (+ noise), derivative
// from the least-squares slope over the health window, limits from BurnLimits.
LoopResult close_loop(const PlantModel& plant, const PidGains& gains, double noise_sd, unsigned seed) {
  const NavigatorConfig cfg;
  const PidLimits limits{std::log(cfg.limits.lr_scale_min), std::log(cfg.limits.lr_scale_max),
                         std::log(cfg.limits.max_lr_change), cfg.pid.integral_limit,
                         std::log(2.0) / static_cast<double>(cfg.pid.return_steps_per_doubling)};
  LogLrPid pid;
  TrendWindow slope_window(static_cast<std::size_t>(cfg.filters.health_window));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, noise_sd);
  double y = 1.2;
  const int steps = 800;
  std::vector<double> err, out;
  for (int t = 0; t < steps; ++t) {
    const double measured = y + noise(rng);
    slope_window.push(t, measured);
    const TrendFit f = slope_window.fit();
    const auto s = pid.update(cfg.pid.setpoint - measured, 1.0, f.valid ? f.slope : 0.0, gains, limits);
    y = plant.step(y, s.output);
    err.push_back(y - cfg.pid.setpoint);
    out.push_back(s.output);
  }
  LoopResult r;
  r.final_error = std::abs(err.back());
  for (int t = steps / 2 + 1; t < steps; ++t) {
    if ((err[t] > 0.02) != (err[t - 1] > 0.02) && std::abs(err[t]) > 0.02) ++r.late_crossings;
  }
  double lo = 1e9, hi = -1e9;
  for (int t = steps - 100; t < steps; ++t) {
    lo = std::min(lo, out[t]);
    hi = std::max(hi, out[t]);
  }
  r.late_u_swing = hi - lo;
  return r;
}

TEST(ClosedLoop, DefaultGainsSettleWithoutSustainedOscillation) {
  const NavigatorConfig cfg;
  for (const auto& [name, gains] : {std::pair{"drifting", cfg.pid.drifting}, std::pair{"warning", cfg.pid.warning},
                                    std::pair{"critical", cfg.pid.critical},
                                    std::pair{"recovering", cfg.pid.recovering}}) {
    for (const PlantModel& plant : kPlants) {
      SCOPED_TRACE(std::string(name) + " on a=" + std::to_string(plant.a) + " b=" + std::to_string(plant.b));
      const LoopResult r = close_loop(plant, gains, 0.0, 1);
      EXPECT_LT(r.final_error, 0.03);   // integral action: (almost) no steady offset
      EXPECT_EQ(r.late_crossings, 0);   // no limit cycle
      EXPECT_LT(r.late_u_swing, 0.03);  // the lr scale has come to rest
      // Health noise of 0.03 moves the scale, boundedly (peak to peak within a factor 2).
      EXPECT_LT(close_loop(plant, gains, 0.03, 2).late_u_swing, std::log(2.0));
    }
  }
}

TEST(ClosedLoop, TheCheckCanFailAggressiveGainsOscillate) {
  const NavigatorConfig cfg;
  PidGains hot = cfg.pid.critical;
  hot.kp *= 10;
  hot.ki *= 10;
  const LoopResult r = close_loop(kPlants[0], hot, 0.0, 1);
  std::printf("[ closed loop ] 10x critical gains: %d late crossings, late lr swing %.3f (ln units)\n", r.late_crossings,
              r.late_u_swing);
  EXPECT_GT(r.late_crossings, 10);
  EXPECT_GT(r.late_u_swing, 0.03);
}

}  // namespace
}  // namespace orbit
