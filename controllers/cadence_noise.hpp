// SPDX-License-Identifier: Apache-2.0
#pragma once
// The level and noise of one scalar series (ln loss, ln grad norm) at the run's own
// snapshot cadence, learned online: the level is the median of the last few
// accepted values, the noise the 90th percentile of the absolute successive
// differences over a longer window (as a Gaussian σ). Both are measured between consecutive snapshots,
// so a run logged every 500 steps is judged against its own 500-step wobble, not
// against a per-step one. When the cadence changes by more than `cadence_change`
// (AlgoPerf logs every step to 100, then every 100 or 500), the statistics start
// over and warm up again at the new cadence. A value beyond `clip` noise units
// enters the window clipped, so one spike cannot inflate the noise, while a level
// the run settles at is absorbed within a few snapshots (the alarm clears). While
// warming up, an early z against the noise of the differences so far (from
// `early_warmup` of them; their median, robust to the descent and to a spike that entered unclipped) is
// kept aside for the loss jump's noise check (a few snapshots at the new cadence
// already show how far a noisy run wobbles); the z the zones read waits for `warmup`.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "controllers/replay_memo.hpp"
#include "controllers/ring_deque.hpp"

namespace orbit {

// Configured as [controller.filters.cadence_noise] (configs/default.toml documents
// each key; NavigatorConfig::validate checks them).
struct CadenceNoiseParams {
  std::size_t level_window = 5;    // accepted values whose median is the level
  std::size_t noise_window = 40;   // successive differences whose 90th percentile is the noise
  std::size_t warmup = 20;         // differences at this cadence before a z is given
  std::size_t early_warmup = 5;    // differences before an early z is given (<= warmup)
  double clip = 4.0;               // noise units a value may move the window by
  double min_noise = 1e-3;         // floor of the noise (ln units: 0.1 %)
  double cadence_change = 4.0;     // a gap this many times shorter/longer restarts
};
bool same(const CadenceNoiseParams& a, const CadenceNoiseParams& b);  // bit for bit

// One update's input and what it answered, for a ReplayMemo.
struct CadenceNoiseInput {
  std::int64_t step = 0;
  double x = 0.0;
};
bool same(const CadenceNoiseInput& a, const CadenceNoiseInput& b);
struct CadenceNoiseOutput {
  std::optional<double> z;
  std::optional<double> early_z;
  std::optional<double> rise;
  bool restarted = false;
};

class CadenceNoise {
 public:
  // A finite value at training step `step`. Returns its z against the level and
  // noise before it, or nullopt while warming up (at the start, after a cadence change).
  std::optional<double> update(std::int64_t step, double x, const CadenceNoiseParams& params);
  void reset();
  // The last update saw the cadence change and started learning the noise afresh.
  bool restarted() const { return restarted_; }
  // The last value's z against the level and the noise of the differences so far,
  // from early_warmup of them on (equal to update's z once that is given); nullopt
  // before. Read only by the loss jump's noise check, never by the zones.
  std::optional<double> early_z() const { return early_z_; }
  // The last value minus the level before it (x - level: ln of the loss's ratio to its
  // level for ln(loss)), given with update's z; nullopt while that is not.
  std::optional<double> rise() const { return rise_; }

  // Records every update into `memo`, or answers from it (replay_memo.hpp).
  using Memo = ReplayMemo<CadenceNoiseInput, CadenceNoiseOutput, CadenceNoiseParams>;
  void record_into(Memo* memo) { memo_.record_into(memo); }
  void follow(const Memo* memo) { memo_.follow(memo); }
  bool following_memo() const { return memo_.following(); }

 private:
  std::optional<double> compute(std::int64_t step, double x, const CadenceNoiseParams& params);

  MemoCursor<CadenceNoiseInput, CadenceNoiseOutput, CadenceNoiseParams> memo_;
  bool restarted_ = false;
  std::optional<double> early_z_;
  std::optional<double> rise_;
  RingDeque<double> values_;  // accepted (clipped) values, newest last
  RingDeque<double> diffs_;   // |successive differences| of accepted values
  // diffs_ kept sorted as well: its quantile is an index, not a selection per
  // update (the k-th smallest value is the same whichever way it is found).
  std::vector<double> sorted_diffs_;
  std::optional<std::int64_t> last_step_;
  std::int64_t gap_ = 0;       // the cadence the statistics were learned at
};

}  // namespace orbit
