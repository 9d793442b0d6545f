// SPDX-License-Identifier: Apache-2.0
#include "controllers/navigator_config.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

namespace orbit {

namespace {

// Shortest text that reads back as `v`, for messages that quote a configured number.
std::string number_text(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

const PidGains& PidSchedule::gains(OrbitState state) const {
  switch (state) {
    case OrbitState::drifting: return drifting;
    case OrbitState::warning: return warning;
    case OrbitState::critical: return critical;
    case OrbitState::recovering: return recovering;
    case OrbitState::stable:
    case OrbitState::stale:
    case OrbitState::monitor: return stable;
  }
  return stable;
}

std::map<std::string, ZoneConfig> NavigatorConfig::default_zones() {
  // Hidden-state bands calibrated on the efficacy suite's transformer (the original design's
  // roadmap table had entropy 2.0/1.5 and dominant ratio 0.4/0.6, which healthy
  // pre-LN runs cross in their early transient), plus z-score bands for the scalars.
  return {
      {"entropy", {{1.0, 0.75}, true}},
      {"dominant_ratio", {{0.8, 0.9}, true}},
      {"phi_proximity", {{0.85, 0.70}, false}},
      {"loop_rate", {{0.25, 0.50}, true}},
      {"loss_z", {{3.0, 6.0}, true}},
      {"grad_norm_z", {{3.0, 6.0}, true}},
      {"attn_logit_growth", {{2.0, 4.0}, true}},
  };
}

std::vector<BasinRule> NavigatorConfig::default_basin_rules() {
  return {
      {Basin::token_collapse, {"dominant_ratio", "entropy", "effective_rank", "normalized_entropy"}, Zone::warning},
      {Basin::semantic_loop, {"loop_rate"}, Zone::warning},
  };
}

std::vector<std::string> NavigatorConfig::validate() const {
  std::vector<std::string> errors;
  auto need = [&](bool ok, const std::string& key, const std::string& what) {
    if (!ok) errors.push_back(key + ": " + what);
  };
  auto finite = [](double v) { return std::isfinite(v); };
  auto in = [&](double v, double lo, double hi) { return finite(v) && v >= lo && v <= hi; };
  auto open01 = [&](double v) { return finite(v) && v > 0.0 && v <= 1.0; };

  need(finite(signals.phi_target) && signals.phi_target > 0.0, "controller.signals.phi_target", "must be a finite number > 0");
  need(open01(signals.signature_dominant_ratio), "controller.signals.signature_dominant_ratio", "must be in (0, 1]");
  need(finite(signals.signature_effective_rank) && signals.signature_effective_rank >= 0.0,
       "controller.signals.signature_effective_rank", "must be a finite number >= 0");
  need(signals.signature_early_steps >= 0, "controller.signals.signature_early_steps", "must be >= 0");
  need(signals.signature_confirm_steps >= 0, "controller.signals.signature_confirm_steps", "must be >= 0");
  need(signals.loop_rate_confirm_readings >= 1, "controller.signals.loop_rate_confirm_readings", "must be >= 1");
  need(in(signals.signature_early_loss_fall, 0.0, 1.0), "controller.signals.signature_early_loss_fall",
       "must be in [0, 1]");
  for (const auto& p : signals.spectra) need(!p.empty(), "controller.signals.spectra", "prefixes must not be empty strings");
  for (const auto& p : signals.signature_spectra)
    need(!p.empty(), "controller.signals.signature_spectra", "prefixes must not be empty strings");

  const std::string f = "controller.filters.";
  need(open01(filters.metric_alpha), f + "metric_alpha", "must be in (0, 1]");
  need(open01(filters.loss_alpha), f + "loss_alpha", "must be in (0, 1]");
  need(open01(filters.grad_norm_alpha), f + "grad_norm_alpha", "must be in (0, 1]");
  need(filters.warmup_steps >= 2, f + "warmup_steps", "must be >= 2");
  need(finite(filters.z_clip) && filters.z_clip > 0.0, f + "z_clip", "must be > 0");
  need(filters.spike_confirm_steps >= 1, f + "spike_confirm_steps", "must be >= 1");
  need(in(filters.loss_min_sd_rel, 0.0, 1.0), f + "loss_min_sd_rel", "must be in [0, 1]");
  need(in(filters.loss_spike_min_sd_rel, 0.0, 1.0), f + "loss_spike_min_sd_rel", "must be in [0, 1]");
  need(in(filters.loss_spike_min_ratio, 1.0, 1e6), f + "loss_spike_min_ratio", "must be in [1, 1e6]");
  need(finite(filters.grad_norm_min_sd) && filters.grad_norm_min_sd > 0.0, f + "grad_norm_min_sd", "must be > 0");
  need(filters.trend_window >= 3 && filters.trend_window <= 100000, f + "trend_window", "must be in [3, 100000]");
  need(in(filters.trend_sigmas, 0.0, 100.0), f + "trend_sigmas", "must be in [0, 100]");
  need(filters.forecast_horizon >= 1, f + "forecast_horizon", "must be >= 1");
  need(filters.health_window >= 3 && filters.health_window <= 100000, f + "health_window", "must be in [3, 100000]");
  need(finite(filters.cusum_k) && filters.cusum_k >= 0.0, f + "cusum_k", "must be >= 0");
  need(finite(filters.cusum_h) && filters.cusum_h > 0.0, f + "cusum_h", "must be > 0");
  need(in(filters.zone_hysteresis, 0.0, 1.0), f + "zone_hysteresis", "must be in [0, 1]");
  need(filters.loss_jump_ratio == 0.0 || (finite(filters.loss_jump_ratio) && filters.loss_jump_ratio > 1.0),
       f + "loss_jump_ratio", "must be 0 (off) or > 1");
  need(finite(filters.loss_jump_grad_ratio) && filters.loss_jump_grad_ratio > 1.0, f + "loss_jump_grad_ratio",
       "must be > 1");
  need(filters.loss_jump_arm_step >= 0, f + "loss_jump_arm_step", "must be >= 0");
  need(finite(filters.loss_jump_min_noise_z) && filters.loss_jump_min_noise_z >= 0.0, f + "loss_jump_min_noise_z",
       "must be >= 0");
  const CadenceNoiseParams& cn = filters.cadence_noise;
  const std::string cn_key = f + "cadence_noise.";
  need(cn.level_window >= 1 && cn.level_window <= 1000, cn_key + "level_window", "must be in [1, 1000]");
  need(cn.noise_window >= 1 && cn.noise_window <= 100000, cn_key + "noise_window", "must be in [1, 100000]");
  need(cn.warmup >= 1 && cn.warmup <= cn.noise_window, cn_key + "warmup",
       "must be in [1, noise_window] (the window holds at most noise_window differences; got warmup = " +
           std::to_string(cn.warmup) + ", noise_window = " + std::to_string(cn.noise_window) + ")");
  need(cn.early_warmup >= 1 && cn.early_warmup <= cn.warmup, cn_key + "early_warmup",
       "must be in [1, warmup] (got early_warmup = " + std::to_string(cn.early_warmup) +
           ", warmup = " + std::to_string(cn.warmup) + ")");
  need(finite(cn.clip) && cn.clip > 0.0, cn_key + "clip", "must be > 0");
  need(finite(cn.min_noise) && cn.min_noise > 0.0, cn_key + "min_noise", "must be > 0");
  need(finite(cn.cadence_change) && cn.cadence_change > 1.0, cn_key + "cadence_change", "must be > 1");

  const std::set<std::string> metrics(std::begin(kZoneMetrics), std::end(kZoneMetrics));
  for (const auto& [name, zone] : zones) {
    const std::string k = "controller.zones." + name;
    need(metrics.count(name) > 0, k, "unknown metric; zones exist for entropy, effective_rank, normalized_entropy, "
                                     "dominant_ratio, phi_proximity, loop_rate, loss_z, grad_norm_z");
    need(finite(zone.band.good) && finite(zone.band.danger), k, "good and danger must be finite numbers");
    need(zone.band.good != zone.band.danger, k, "good and danger must differ (their order says which way is better)");
    if (const int index = zone_metric_index(name); index >= 0 && zone.band.good != zone.band.danger) {
      const bool higher = kZoneMetricHigherIsBetter[index];
      need(zone.band.higher_is_better() == higher, k,
           "zone inverted: " + name + " is better " + (higher ? "higher" : "lower") + ", so good must be " +
               (higher ? "above" : "below") + " danger (got good = " + number_text(zone.band.good) +
               ", danger = " + number_text(zone.band.danger) + ")");
    }
  }

  for (std::size_t i = 0; i < basin_rules.size(); ++i) {
    const auto& r = basin_rules[i];
    const std::string k = "controller.basin_rules[" + std::to_string(i) + "]";
    need(r.basin == Basin::semantic_loop || r.basin == Basin::token_collapse, k + ".basin",
         "must be SEMANTIC_LOOP or TOKEN_COLLAPSE (CREATIVE is what no rule matches, UNKNOWN is no evidence)");
    need(!r.metrics.empty(), k + ".metrics", "must name at least one metric");
    for (const auto& m : r.metrics) need(metrics.count(m) > 0, k + ".metrics", "unknown metric '" + m + "'");
    need(r.min_zone != Zone::good, k + ".min_zone", "must be warning or danger");
  }

  const std::string s = "controller.states.";
  need(states.confirm_steps >= 1, s + "confirm_steps", "must be >= 1");
  need(states.min_dwell_steps >= 1, s + "min_dwell_steps", "must be >= 1");
  need(states.recovery_steps >= 1, s + "recovery_steps", "must be >= 1");

  const std::string p = "controller.pid.";
  need(in(pid.setpoint, 0.0, 2.0), p + "setpoint", "must be in [0, 2] (health units)");
  auto gains = [&](const PidGains& g, const std::string& state) {
    need(in(g.kp, 0.0, 100.0), p + state + ".kp", "must be in [0, 100]");
    need(in(g.ki, 0.0, 100.0), p + state + ".ki", "must be in [0, 100]");
    need(in(g.kd, 0.0, 100000.0), p + state + ".kd", "must be in [0, 100000]");
  };
  gains(pid.stable, "stable");
  gains(pid.drifting, "drifting");
  gains(pid.warning, "warning");
  gains(pid.critical, "critical");
  gains(pid.recovering, "recovering");
  need(in(pid.integral_limit, 0.0, 100.0), p + "integral_limit", "must be in [0, 100]");
  need(pid.return_steps_per_doubling >= 1, p + "return_steps_per_doubling", "must be >= 1");
  need(pid.lookahead_steps >= 0, p + "lookahead_steps", "must be >= 0");

  const std::string l = "controller.limits.";
  need(finite(limits.lr_scale_min) && limits.lr_scale_min > 0.0, l + "lr_scale_min", "must be > 0");
  need(finite(limits.lr_scale_max) && limits.lr_scale_max >= limits.lr_scale_min, l + "lr_scale_max",
       "must be finite and >= lr_scale_min");
  need(finite(limits.max_lr_change) && limits.max_lr_change > 1.0, l + "max_lr_change", "must be a factor > 1");
  need(in(limits.weight_floor, 0.0, 1.0), l + "weight_floor", "must be in [0, 1]");
  need(limits.expiry_steps >= 1, l + "expiry_steps", "must be >= 1");
  need(limits.apply_lead_steps >= 0, l + "apply_lead_steps", "must be >= 0");
  need(limits.max_apply_lead_steps >= limits.apply_lead_steps, l + "max_apply_lead_steps", "must be >= apply_lead_steps");
  need(limits.expiry_steps > 2 * limits.max_apply_lead_steps + 1, l + "expiry_steps",
       "must exceed 2 * max_apply_lead_steps + 1, or burns expire before they are refreshed");
  need(in(limits.lr_deadband, 0.0, 1.0), l + "lr_deadband", "must be in [0, 1]");
  need(in(limits.weight_deadband, 0.0, 1.0), l + "weight_deadband", "must be in [0, 1]");
  need(in(limits.loss_weight_deadband, 0.0, 1.0), l + "loss_weight_deadband", "must be in [0, 1]");

  const std::string w = "controller.reweight.";
  need(in(reweight.rate, 0.0, 1.0), w + "rate", "must be in [0, 1] (log-weight per step)");
  need(in(reweight.relax, 0.0, 1.0), w + "relax", "must be in [0, 1]");
  need(in(reweight.snap, 0.0, 1.0), w + "snap", "must be in [0, 1]");
  for (const auto& [domain, profile] : basin_map) {
    if (profile.weight) {
      need(finite(*profile.weight) && *profile.weight > 0.0, "domains." + domain + ".weight", "must be > 0");
    }
  }

  const std::string c = "controller.curriculum.";
  need(curriculum.advance_after_stable_steps >= 1, c + "advance_after_stable_steps", "must be >= 1");
  for (std::size_t i = 0; i < curriculum.phases.size(); ++i) {
    need(!curriculum.phases[i].domains.empty(), c + "phases[" + std::to_string(i) + "].domains",
         "must list at least one domain");
  }

  const std::string lw = "controller.loss_weights.";
  need(in(loss_weights.collapse_max, 0.0, 1000.0), lw + "collapse_max", "must be in [0, 1000]");
  need(in(loss_weights.phi_max, 0.0, 1000.0), lw + "phi_max", "must be in [0, 1000]");
  need(in(loss_weights.quantum, 0.0, 1.0), lw + "quantum", "must be in [0, 1]");

  const std::string r = "controller.rollback.";
  need(rollback.patience_steps >= 1, r + "patience_steps", "must be >= 1");
  need(in(rollback.min_improvement, 0.0, 3.0), r + "min_improvement", "must be in [0, 3] (health units)");
  need(finite(rollback.ceiling_factor) && rollback.ceiling_factor > 0.0 && rollback.ceiling_factor <= 1.0,
       r + "ceiling_factor", "must be in (0, 1]");
  need(rollback.ceiling_relax_steps >= 1, r + "ceiling_relax_steps", "must be >= 1");
  need(rollback.window_steps >= 1, r + "window_steps", "must be >= 1");
  need(rollback.max_per_window >= 0, r + "max_per_window", "must be >= 0");
  need(rollback.ack_timeout_steps >= 1, r + "ack_timeout_steps", "must be >= 1");
  need(rollback.signature_grace_steps >= 0, r + "signature_grace_steps", "must be >= 0");
  need(rollback.lookback_steps >= 0, r + "lookback_steps", "must be >= 0");
  need(finite(rollback.restart_scale) && rollback.restart_scale > 0.0 && rollback.restart_scale <= 1.0,
       r + "restart_scale", "must be in (0, 1]");
  need(rollback.rewarm_steps >= 0, r + "rewarm_steps", "must be >= 0");
  need(in(rollback.stalled_branch_fall, 0.0, 1.0), r + "stalled_branch_fall", "must be in [0, 1]");

  const std::string d = "controller.distributed.";
  need(finite(distributed.quorum) && distributed.quorum > 0.0 && distributed.quorum <= 1.0, d + "quorum",
       "must be in (0, 1]");
  need(distributed.deadline_steps >= 1, d + "deadline_steps", "must be >= 1");
  need(finite(distributed.deadline_seconds) && distributed.deadline_seconds > 0.0, d + "deadline_seconds", "must be > 0");
  need(finite(stale_after_seconds) && stale_after_seconds > 0.0, "controller.stale_after_seconds", "must be > 0");
  return errors;
}

}  // namespace orbit
