// SPDX-License-Identifier: Apache-2.0
#pragma once
// A plant model: how a metric answers the lr scale. First order in log-lr:
//
//   y[t+1] = a·y[t] + b·u[t] + c,    u = ln(lr scale)
//
// i.e. a first-order lag (time constant -1/ln a steps) toward the equilibrium
// (b·u + c)/(1 - a), with static gain b/(1 - a) per unit of log-lr. fit_plant()
// estimates a, b, c by least squares from a recorded trajectory (Eigen), so replay
// and tune can close the loop around a model of the run they recorded; the
// closed-loop tests use it with known coefficients.
//
// Limits (say them when quoting a tuned result): linear around the recorded
// operating point, one metric, no saturation of the metric itself, and it cannot
// learn how the run answers lr values it never saw.

#include <cstddef>
#include <optional>

#include <Eigen/Core>

namespace orbit {

struct PlantModel {
  double a = 0.9;   // memory per step, in [0, 1) for a stable plant
  double b = 0.0;   // response to u = ln(lr scale)
  double c = 0.0;   // drive at lr scale 1

  double step(double y, double u) const { return a * y + b * u + c; }
  bool stable() const { return a >= 0.0 && a < 1.0; }
  double gain() const { return b / (1.0 - a); }
  double equilibrium(double u) const { return (b * u + c) / (1.0 - a); }
  // Steps for 63% of a step response; nullopt when not a stable lag.
  std::optional<double> time_constant() const;
};

struct PlantFit {
  bool valid = false;
  PlantModel model;
  double rmse = 0.0;     // one-step prediction error
  double r2 = 0.0;       // of the one-step predictions
  std::size_t samples = 0;
};

// y[i] and u[i] at the same steps (u = ln lr scale in effect at step i); uses the
// pairs (y[i], u[i]) -> y[i+1]. Needs at least 4 steps and some variation in u and y.
PlantFit fit_plant(Eigen::Ref<const Eigen::VectorXd> y, Eigen::Ref<const Eigen::VectorXd> u);

}  // namespace orbit
