// SPDX-License-Identifier: Apache-2.0
#pragma once
// PID on the health error, acting in log-space of the lr scale (PX4 lib/pid style:
// plain gains and limits passed in, state kept here).
//
//   error e = setpoint - health                (> 0: less healthy than wanted)
//   I    += ki·e·dt                            (dt: training steps since the last update)
//   cut   c = kp·e + I - kd·rate(health)       (derivative on the filtered
//                                               measurement, never on the error)
//   output u = -c, clamped to [output_min, output_max], then slew-limited
//   (cuts may be fast, raises slow: a recovering run is not bounced back);
//   lr scale = exp(u).
//
// Time is counted in training steps, as flight-control PIDs count seconds: the
// gains are per step whatever the snapshot cadence, so a run that sends a snapshot
// every 10 steps integrates 10 steps of error per update. The derivative input is
// a rate already (health per training step: the least-squares slope of health
// against the step, which divides by the steps between the points), so it needs
// no further division by dt.
//
// Anti-windup: the integral only moves when the output is not pinned against a
// limit (range or slew) in the direction the error pushes. Gains can change every
// step (scheduled by orbit state); track() re-seats the integral so that a change
// of gains does not bump the output, and relax_toward() walks the output back to a
// target (scale 1.0) at a bounded rate, keeping the integral consistent.

namespace orbit {

struct PidGains {
  double kp = 0.0;  // per unit of health error
  double ki = 0.0;  // per unit of health error per training step (the integral grows by ki·e·dt)
  double kd = 0.0;  // per unit of health rate (health/step); kd/kp = look-ahead in steps
};

struct PidLimits {
  double output_min = -3.0;  // log of the smallest lr scale
  double output_max = 0.0;   // log of the largest lr scale (the ceiling)
  double max_step = 0.7;     // largest cut per update (slew down)
  double integral_limit = 3.0;
  double max_step_up = 0.7;  // largest raise per update (slew up): raise slowly, cut fast
  // The integral is accumulated cut: it unwinds to this but not below, so a
  // stretch of good health earns no credit to spend later.
  double integral_min = 0.0;
};

struct PidStatus {
  double output = 0.0;  // log lr scale
  double error = 0.0;
  double p = 0.0;       // terms of the cut
  double i = 0.0;
  double d = 0.0;
  bool saturated = false;  // limited by range or slew this update
};

class LogLrPid {
 public:
  // `error`: setpoint - health; `dt`: training steps since the last update (> 0;
  // anything else integrates nothing); `health_rate`: health per training step.
  PidStatus update(double error, double dt, double health_rate, const PidGains& gains, const PidLimits& limits);

  // Bumpless transfer: keep the present output under new gains.
  void track(double error, double health_rate, const PidGains& gains, const PidLimits& limits);

  // Moves the output toward `target` by at most `max_step`; the integral follows
  // so the next update() continues from here. Returns the new output.
  double relax_toward(double target, double max_step, const PidLimits& limits);

  // Sets the output (an operator's forced burn, a rollback's cap); the integral is
  // re-seated on the next track().
  void set_output(double output, const PidLimits& limits);
  void reset();

  double output() const { return output_; }
  double integral() const { return integral_; }

 private:
  double output_ = 0.0;
  double integral_ = 0.0;
};

}  // namespace orbit
