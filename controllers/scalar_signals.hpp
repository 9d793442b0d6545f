// SPDX-License-Identifier: Apache-2.0
#pragma once
// The scalar signals of one run: the loss and ln(grad norm) through robust
// statistics (z-scores), CUSUM drift detectors, spike confirmation counted in
// training steps, and the loss-jump detector. The Navigator's "signals" stage.
//
// Each z-score is the smaller of two: the EWMA z (robust_stats) and the z against
// the run's own snapshot-to-snapshot noise (cadence_noise: median level, 90th percentile
// of the successive differences, re-learned when the logging cadence changes). A value
// is a spike only when it stands out on both; a run whose loss wobbles 1.4x between
// snapshots (noisy batch losses logged every 500 steps) does not alarm on a 1.5x
// one. A loss jump alarms only while ln(loss) is also loss_jump_min_noise_z noise
// units (filters config) above the run's recent level (once its noise is known, from the
// early noise of cadence_noise.early_warmup differences on), so the jump alarm clears
// when the run settles, even at a level above its old floor. A jump before the arm
// step (loss_jump_early_corroborated, grad norm corroborated) needs that noise known.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controllers/cadence_noise.hpp"
#include "controllers/change_detector.hpp"
#include "controllers/finding.hpp"
#include "controllers/loss_jump_detector.hpp"
#include "controllers/metric_report.hpp"
#include "controllers/navigator_config.hpp"
#include "controllers/robust_stats.hpp"
#include "controllers/spike_confirmation.hpp"
#include "controllers/zone_metric.hpp"

namespace orbit {

struct ScalarReading {
  std::optional<double> loss_z;       // this sample's z-score, once warmed up
  std::optional<double> grad_norm_z;  // the same for ln(grad norm)
  std::optional<LossJumpStatus> jump;  // when the loss was finite
  bool nonfinite = false;              // the loss or the grad norm is NaN / inf
  // On a snapshot that alone spans spike_confirm_steps (a sparse log), once loss_z is
  // given and when the grad norm does not stand out with it (grad_norm_z under z_clip,
  // or none): the loss over its level at that cadence (CadenceNoise::rise), which says
  // whether a loss_z in danger is a material excursion (filters.loss_spike_min_ratio).
  std::optional<double> sparse_loss_ratio;
};

// What ScalarSignals' filters that read only the snapshots (not the config keys a
// tune searches, not the decisions) answered in one replay: the cadence noise of
// ln(loss) and ln(grad norm) and the loss jump (replay_memo.hpp).
struct ScalarSignalsMemo {
  CadenceNoise::Memo loss_noise;
  CadenceNoise::Memo grad_noise;
  LossJumpDetector::Memo loss_jump;
};

class ScalarSignals {
 public:
  // One closed step. `covered`: training steps since the previous decision (>= 1).
  // Appends the alarms to `findings` (loss drift, non-finite values, grad norm
  // drift, loss jump, in that order); writes loss, loss_ewma, loss_z, grad_norm,
  // grad_norm_z and loss_jump to `metrics` when not null.
  ScalarReading update(std::int64_t step, double loss, std::optional<double> grad_norm, std::int64_t covered,
                       const FilterConfig& filters, MetricSink* metrics, std::vector<Finding>& findings);

  // The z-scores that held over spike_confirm_steps training steps (nullopt: none held).
  // The loss's running (EWMA, outlier-clipped) level; nullopt before its first finite value.
  std::optional<double> loss_level() const {
    return loss_stats_.count() > 0 ? std::optional<double>(loss_stats_.mean()) : std::nullopt;
  }
  std::optional<double> held_loss_z(std::int64_t confirm_steps) const { return loss_z_recent_.held(confirm_steps); }
  std::optional<double> held_grad_norm_z(std::int64_t confirm_steps) const {
    return grad_z_recent_.held(confirm_steps);
  }

  // Health margins of the drift and jump alarms that are on, for the zones whose
  // config alarms: a CUSUM alarm is 1 at its threshold and 0 at twice it; a loss
  // jump is 1 at its floor and 0 at the jump ratio. Each is clamped to [-1, 2].
  std::vector<double> alarm_margins(const PerZoneMetric<ZoneConfig>& zones, const FilterConfig& filters,
                                    const std::optional<LossJumpStatus>& jump) const;

  void reset();  // a new branch: every statistic starts over

  // Records into `memo`, or answers from it where the calls are the recorded ones;
  // only before the first update.
  void record_into(ScalarSignalsMemo* memo);
  void follow(const ScalarSignalsMemo* memo);

 private:
  void restart_statistics();  // EWMA statistics and CUSUMs, at a cadence change

  CadenceNoise loss_noise_;  // of ln(loss)
  CadenceNoise grad_noise_;  // of ln(grad norm)
  RobustStats loss_stats_;
  RobustStats grad_stats_;
  Cusum loss_cusum_;
  Cusum grad_cusum_;
  SpikeConfirmation loss_z_recent_;
  SpikeConfirmation grad_z_recent_;
  LossJumpDetector loss_jump_;
};

}  // namespace orbit
