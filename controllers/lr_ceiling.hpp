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
// Needs the snapshot's schedule_lr (and lr); without them it stays off.

#include <cstdint>
#include <optional>

namespace orbit {

struct LrCeilingConfig {
  bool enabled = true;
  double share = 0.5;                // cap = share x the lr in effect at the alarm
  std::int64_t relax_steps = 2000;   // STABLE training steps for the cap to double
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
  void reset() { cap_.reset(); }

 private:
  std::optional<double> cap_;  // absolute lr units
};

}  // namespace orbit
