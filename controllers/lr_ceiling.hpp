// SPDX-License-Identifier: Apache-2.0
#pragma once
// The absolute lr ceiling: the learning rate in effect when an alarm went up stays
// off limits, also while the trainer's own schedule keeps rising (a warmup). The
// lr scale is relative to the schedule, so a scale cut at step 40 of a warmup is
// undone by the schedule within a few dozen steps; this keeps the EFFECTIVE lr
// (schedule lr x scale) at or below share x the alarm's lr instead, and lets that
// cap double back every relax_steps STABLE steps (evidence that the run holds).
// A later alarm lowers the cap again, by at most share x the cap per alarm; the
// Navigator does not pass on alarms inside a rollback's grace (the restored run
// is at the restart lr the ladder chose, below the cap).
// For first_cap_hold_steps training steps after the FIRST alarm the cap in force is
// at most that alarm's cap: the cap relaxes and later alarms lower it as without the
// hold (the free cap), and the cap in force is the lower of the free cap and the
// first alarm's. Setting C lost through the late raises past the first cap; B
// trained worse when a later alarm's cap was cut from the held cap instead of the
// relaxed one (a later alarm lowers it by at most share x the cap).
// Needs the snapshot's schedule_lr (and lr); without them it stays off.

#include <cstdint>
#include <optional>

namespace orbit {

struct LrCeilingConfig {
  bool enabled = true;
  double share = 0.5;                // cap = share x the lr in effect at the alarm
  std::int64_t relax_steps = 2000;   // STABLE training steps for the cap to double
  // Training steps after the first alarm with the cap at most the first alarm's
  // (0: off; 1e9: the whole run, the default since the efficacy calibration).
  std::int64_t first_cap_hold_steps = 1'000'000'000;
};

class LrCeiling {
 public:
  // One closed step. `alarm`: the state rose into WARNING or CRITICAL at this step;
  // `lr`: the lr in effect at this step; `stable`: the run is STABLE now;
  // `elapsed`: training steps since the previous decision.
  void update(bool alarm, std::optional<double> lr, bool stable, double elapsed, const LrCeilingConfig& config);
  // The largest lr scale the cap allows at a step whose schedule lr is
  // `schedule_lr` (nullopt: no cap, or the schedule lr is unknown).
  std::optional<double> scale_limit(std::optional<double> schedule_lr) const;
  const std::optional<double>& cap() const { return cap_; }
  void reset() { *this = LrCeiling{}; }

 private:
  std::optional<double> cap_;        // the cap in force, absolute lr units
  std::optional<double> free_cap_;   // the cap without the first alarm's hold
  std::optional<double> first_cap_;  // the first alarm's cap
  double since_first_ = 0.0;         // training steps since the first alarm
};

}  // namespace orbit
