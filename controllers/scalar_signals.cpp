// SPDX-License-Identifier: Apache-2.0
#include "controllers/scalar_signals.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "controllers/decision_text.hpp"
#include "controllers/metric_report.hpp"

namespace orbit {

namespace {
constexpr auto kLossZ = static_cast<std::size_t>(zone_metric_index("loss_z"));
constexpr auto kGradNormZ = static_cast<std::size_t>(zone_metric_index("grad_norm_z"));

// The smaller of the EWMA z and the cadence-noise z; none until both are learned.
std::optional<double> combined_z(double ewma_z, std::optional<double> noise_z) {
  if (!noise_z) return std::nullopt;
  return std::min(ewma_z, *noise_z);
}
}  // namespace

ScalarReading ScalarSignals::update(std::int64_t step, double loss, std::optional<double> grad_norm,
                                    std::int64_t covered, const FilterConfig& fc, MetricSink* m,
                                    std::vector<Finding>& findings) {
  ScalarReading out;
  const bool loss_finite = std::isfinite(loss);
  const bool grad_finite = !grad_norm || std::isfinite(*grad_norm);
  const RobustStatsParams loss_params{fc.loss_alpha, fc.warmup_steps, fc.z_clip, 1e-12, fc.loss_min_sd_rel};
  const RobustStatsParams grad_params{fc.grad_norm_alpha, fc.warmup_steps, fc.z_clip, fc.grad_norm_min_sd, 0.0};
  const CusumParams cusum{fc.cusum_k, fc.cusum_h, 2.0 * fc.z_clip};
  const std::int64_t confirm = fc.spike_confirm_steps;  // training steps
  std::optional<double> loss_noise_z;
  if (loss_finite) {
    const auto st = loss_stats_.update(loss, loss_params);
    if (loss > 0.0) loss_noise_z = loss_noise_.update(step, std::log(loss), fc.cadence_noise);
    // A new logging cadence: the EWMA statistics and drift sums learned at the old
    // one would read its larger between-snapshot moves as drift; they start over too.
    if (loss_noise_.restarted()) restart_statistics();
    put_metric(m, "loss", loss);
    put_metric(m, "loss_ewma", st.mean);
    if (loss_noise_z) put_metric(m, "loss_noise_z", *loss_noise_z);
    const auto z = st.ready ? combined_z(st.z, loss_noise_z) : std::nullopt;
    if (z) {
      // A snapshot that alone spans the confirmation (a sparse log) confirms a spike
      // from one sampled step, without the persistence a per-step run must show:
      // there the spike must be material as well as unusual, read against at least
      // loss_spike_min_sd_rel of the mean. The drift CUSUM reads the finer z.
      const double material_sd = covered >= confirm ? fc.loss_spike_min_sd_rel * std::abs(loss - st.residual) : 0.0;
      out.loss_z = material_sd > 0.0 ? std::min(*z, st.residual / material_sd) : *z;
      put_metric(m, "loss_z", *out.loss_z);
      const auto c = loss_cusum_.update(*z, cusum);
      if (c.up) {
        findings.push_back({Severity::warning,
                            "loss drifting up (CUSUM " + num(c.upper) + " over " + std::to_string(c.up_run) + " steps)",
                            "loss_cusum"});
      }
    }
  } else {
    findings.push_back({Severity::critical, "loss is " + nonfinite_name(loss), "loss_nonfinite"});
  }
  if (grad_norm && grad_finite) {
    put_metric(m, "grad_norm", *grad_norm);
    const double log_grad = std::log(std::max(*grad_norm, 1e-30));
    const auto st = grad_stats_.update(log_grad, grad_params);
    const auto noise_z = grad_noise_.update(step, log_grad, fc.cadence_noise);
    if (grad_noise_.restarted()) {
      grad_stats_.reset();
      grad_cusum_.reset();
    }
    if (st.ready) {
      const auto z = combined_z(st.z, noise_z);
      out.grad_norm_z = z;
      if (z) put_metric(m, "grad_norm_z", *z);
      // The drift detector reads the unfloored z: a creep far below the spike
      // floor is exactly what it is for (its per-sample clip bounds one spike).
      const double drift_z = st.residual / std::max(st.raw_sd, 1e-3);
      const auto c = grad_cusum_.update(drift_z, cusum);
      if (c.up) {
        findings.push_back({Severity::warning,
                            "grad norm drifting up (CUSUM " + num(c.upper) + " over " + std::to_string(c.up_run) +
                                " steps)",
                            "grad_norm_cusum"});
      }
    }
  } else if (grad_norm) {
    findings.push_back({Severity::critical, "grad norm is " + nonfinite_name(*grad_norm), "grad_norm_nonfinite"});
  }
  // A sparse snapshot's loss z whose grad norm does not stand out with it (grad_norm_z
  // under z_clip, or no grad norm): how far the loss stands over its level, which the
  // zones weigh against filters.loss_spike_min_ratio.
  const bool grad_shows_it = out.grad_norm_z && *out.grad_norm_z >= fc.z_clip;
  if (out.loss_z && covered >= confirm && !grad_shows_it && loss_noise_.rise()) {
    out.sparse_loss_ratio = std::exp(*loss_noise_.rise());
  }
  // Each snapshot stands for the steps since the last one: confirmation counts steps.
  loss_z_recent_.push(out.loss_z, covered, confirm);
  // A grad norm is one step's value, not an average over the steps a snapshot
  // covers: a burst the loss does not show (its z under z_clip) stands for its own
  // step only, so it must hold spike_confirm_steps snapshots at any cadence.
  const bool loss_shows_it = out.loss_z && *out.loss_z >= fc.z_clip;
  grad_z_recent_.push(out.grad_norm_z, loss_shows_it ? covered : 1, confirm);
  // A loss jump over its floor: armed from a mid-training run's second snapshot.
  if (loss_finite) {
    const LossJumpParams jp{fc.loss_jump_ratio, fc.loss_jump_grad_ratio, confirm, fc.loss_jump_arm_step,
                            fc.loss_jump_early_corroborated};
    out.jump = loss_jump_.update(step, loss, grad_norm, jp);
    // Within the run's own noise of its recent level: an outlier of a noisy run, or
    // a level it has settled at, not a spike. While the noise is still warming up
    // (the start, a new cadence) the early noise of its first few differences
    // judges: a noisy run logged every 500 steps is not read as calm for 20 snapshots.
    const auto jump_noise_z = loss > 0.0 ? loss_noise_.early_z() : std::nullopt;
    if (out.jump->alarm && jump_noise_z && *jump_noise_z < fc.loss_jump_min_noise_z) out.jump->alarm = false;
    // Before the arm step (loss_jump_early_corroborated) the run's early noise must be
    // known and the jump stand out of it: a fresh run's first swings have no noise yet.
    if (out.jump->alarm && out.jump->early && !jump_noise_z) out.jump->alarm = false;
    if (out.jump->ratio > 0.0) put_metric(m, "loss_jump", out.jump->ratio);
    if (out.jump->alarm) {
      const LossJumpStatus& jump = *out.jump;
      findings.push_back({Severity::critical,
                          "loss " + num(loss) + " is " + num(jump.ratio) + "x its floor " + num(jump.floor) +
                              (jump.corroborated ? " (grad norm " + num(*jump.grad_ratio) + "x its recent low)"
                                                 : " (held " + std::to_string(jump.held_steps) + " steps)"),
                          "loss_jump"});
    }
  }
  out.nonfinite = !loss_finite || !grad_finite;
  return out;
}

std::vector<double> ScalarSignals::alarm_margins(const PerZoneMetric<ZoneConfig>& zones, const FilterConfig& fc,
                                                 const std::optional<LossJumpStatus>& jump) const {
  std::vector<double> margins;
  for (const auto& [metric, cusum_state] : {std::pair{kLossZ, &loss_cusum_}, std::pair{kGradNormZ, &grad_cusum_}}) {
    const std::optional<ZoneConfig>& zc = zones[metric];
    if (!zc || !zc->alarm || !cusum_state->status().up) continue;
    margins.push_back(std::clamp(2.0 - cusum_state->status().upper / fc.cusum_h, -1.0, 2.0));
  }
  if (jump && jump->alarm) {
    margins.push_back(std::clamp((fc.loss_jump_ratio - jump->ratio) / (fc.loss_jump_ratio - 1.0), -1.0, 2.0));
  }
  return margins;
}

void ScalarSignals::record_into(ScalarSignalsMemo* memo) {
  loss_noise_.record_into(&memo->loss_noise);
  grad_noise_.record_into(&memo->grad_noise);
  loss_jump_.record_into(&memo->loss_jump);
}

void ScalarSignals::follow(const ScalarSignalsMemo* memo) {
  loss_noise_.follow(&memo->loss_noise);
  grad_noise_.follow(&memo->grad_noise);
  loss_jump_.follow(&memo->loss_jump);
}

void ScalarSignals::restart_statistics() {
  loss_stats_.reset();
  grad_stats_.reset();
  loss_cusum_.reset();
  grad_cusum_.reset();
}

void ScalarSignals::reset() {
  loss_noise_.reset();
  grad_noise_.reset();
  loss_stats_.reset();
  grad_stats_.reset();
  loss_cusum_.reset();
  grad_cusum_.reset();
  loss_z_recent_.clear();
  grad_z_recent_.clear();
  loss_jump_.reset();
}

}  // namespace orbit
