// SPDX-License-Identifier: Apache-2.0
#pragma once
// Everything the Navigator can be told, as one plain struct. The defaults here are
// the defaults of configs/default.toml (a test loads that file and compares);
// config/navigator_config_toml.cpp fills it from TOML, validate() checks it.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "controllers/attn_logit_growth.hpp"
#include "controllers/basin_classifier.hpp"
#include "controllers/cadence_noise.hpp"
#include "controllers/curriculum.hpp"
#include "controllers/loss_weight_scheduler.hpp"
#include "controllers/lr_ceiling.hpp"
#include "controllers/mixture_reweighter.hpp"
#include "controllers/orbit_state_machine.hpp"
#include "controllers/pid.hpp"
#include "controllers/recovery_ladder.hpp"
#include "controllers/spectral_metrics.hpp"
#include "controllers/zone_metric.hpp"
#include "controllers/zones.hpp"

namespace orbit {

// Which spectra feed which signal (by name prefix: adapters send `hidden.<layer>`
// for hidden-state covariance eigenvalues, `attn.<layer>` for attention,
// `weight.<name>` for weights).
struct SignalConfig {
  Aggregation aggregation = Aggregation::worst;
  // Spectra aggregated into entropy, effective_rank, ..., which the zones, basins
  // and health read. Empty = every spectrum. Attention is left out by default:
  // measured, it false-alarms on healthy runs (healthy heads sharpen too).
  std::vector<std::string> spectra{"hidden"};
  double phi_target = kGoldenRatio;
  // The early collapse signature (issue 3: 9/9 unstable, 0/10 healthy runs):
  // on these spectra, dominant ratio above / effective rank below.
  std::vector<std::string> signature_spectra{"hidden"};
  double signature_dominant_ratio = 0.9;
  double signature_effective_rank = 2.2;
  // Early in training (steps below signature_early_steps) the signature must hold
  // signature_confirm_steps steps on consecutive probes before it counts: healthy
  // runs pass through a hidden-state transient there that looks like collapse at a
  // single probe. Later a signature counts at its first probe (sudden collapse).
  std::int64_t signature_early_steps = 150;
  std::int64_t signature_confirm_steps = 20;
  // ... and the run must corroborate it (controllers/early_corroboration.hpp): its
  // smoothed loss fell less than this share over the last signature_confirm_steps
  // steps, or attn_logit_growth is in danger. 0 = off (duration alone).
  double signature_early_loss_fall = 0.03;
  // A loop rate in danger counts (CRITICAL, SEMANTIC_LOOP) only once it held on this
  // many consecutive loop-rate readings; before that it reads as a warning. One
  // reading is one sampled generation (the example trainer: 61 4-grams every 200
  // steps), whose loop rate swings by up to 0.4 between probes of a healthy run; a
  // model stuck in a loop stays stuck. 1 = at once.
  std::int64_t loop_rate_confirm_readings = 2;
  // Attention-logit growth (the attn_logit_growth zone metric, from the snapshot's
  // attn_logit_max scalar): controllers/attn_logit_growth.hpp.
  AttnLogitConfig attn_logit;
};

struct FilterConfig {
  double metric_alpha = 0.3;         // EWMA of spectral metrics and loop rate
  double loss_alpha = 0.2;          // robust statistics of the loss
  double grad_norm_alpha = 0.05;     // robust statistics of ln(grad norm)
  std::int64_t warmup_steps = 20;    // samples before z-scores count
  double z_clip = 3.0;               // outliers enter the statistics as z_clip·sd
  std::int64_t spike_confirm_steps = 2;  // a z-score or loss-jump alarm must hold this many training steps
  double loss_min_sd_rel = 0.005;    // sd floor for the loss, share of its mean
  double loss_spike_min_sd_rel = 0.01;  // the same for loss_z when one snapshot confirms (not the CUSUM)
  double grad_norm_min_sd = 0.3;     // sd floor for ln(grad norm): 3 sd = a 2.5x jump
  std::int64_t trend_window = 30;    // points in the least-squares trend
  double trend_sigmas = 3.0;         // a slope must exceed this many standard errors
  std::int64_t forecast_horizon = 200;  // steps; a forecast danger crossing within it → DRIFTING
  std::int64_t health_window = 10;   // points in the health slope (the PID's derivative)
  double cusum_k = 1.0;              // CUSUM allowance, sd per step
  double cusum_h = 15.0;             // CUSUM alarm threshold, sd
  double zone_hysteresis = 0.1;      // share of a band's width to come back by
  // On a snapshot that alone confirms, with no grad norm standing out: the loss / its
  // level at the cadence from which a loss_z in danger is CRITICAL; under it the
  // reading is no spike by size and raises nothing (1 = off).
  double loss_spike_min_ratio = 1.3;
  // Loss jump over its floor (controllers/loss_jump_detector.hpp): works from a
  // run's second snapshot, where z-scores are still warming up.
  double loss_jump_ratio = 1.5;             // loss / floor that alarms (0 = off)
  double loss_jump_grad_ratio = 4.0;        // grad norm / recent minimum that confirms a jump at once
  std::int64_t loss_jump_arm_step = 500;    // training step from which jumps count
  bool loss_jump_early_corroborated = true;  // before it, a grad-corroborated jump out of the early noise counts
  double loss_jump_min_noise_z = 6.0;       // ln(loss) noise units above its recent level a jump needs
  // The run's own level and noise at its snapshot cadence (controllers/cadence_noise.hpp),
  // for the loss and ln(grad norm) z-scores and the loss jump's noise check.
  CadenceNoiseParams cadence_noise;
};

struct ZoneConfig {
  ZoneBand band;
  bool alarm = true;  // moves the state machine and the health; false = reported only
};

// The metrics zones may be given for: kZoneMetrics in controllers/zone_metric.hpp.

struct PidSchedule {
  double setpoint = 1.0;  // health wanted: 1 = the good line of the worst metric
  PidGains stable{0.0, 0.0, 0.0};
  PidGains drifting{0.5, 0.02, 10.0};
  PidGains warning{1.0, 0.05, 5.0};
  PidGains critical{2.0, 0.1, 5.0};
  PidGains recovering{0.2, 0.02, 0.0};
  double integral_limit = 3.0;            // |integral|, log-scale units
  std::int64_t return_steps_per_doubling = 50;  // the fastest the lr scale rises: bumpless return to 1.0
  std::int64_t lookahead_steps = 0;  // DRIFTING: the PID reads the trends' health this far ahead (0 = off)

  const PidGains& gains(OrbitState state) const;
};

struct BurnLimits {
  double lr_scale_min = 0.05;
  double lr_scale_max = 1.0;
  double max_lr_change = 2.0;         // factor: a burn moves the scale at most ×/÷ this
  double weight_floor = 0.02;
  std::int64_t expiry_steps = 200;    // expires_after_steps of every burn
  std::int64_t apply_lead_steps = 2;  // apply_at_step = newest step seen + lead
  std::int64_t max_apply_lead_steps = 16;  // late ACKs raise the lead up to this
  double lr_deadband = 0.05;          // relative lr change worth a burn
  double weight_deadband = 0.005;     // absolute weight change worth a burn
  // Absolute loss-weight change worth a burn: more than one quantum of
  // loss_weights.quantum (0.005), so a pressure wobbling on a rounding edge sends nothing.
  double loss_weight_deadband = 0.0075;
};

struct ReweightConfig {
  double rate = 0.1;
  double relax = 0.05;
  double snap = 0.002;
};

struct CurriculumConfig {
  std::vector<CurriculumPhase> phases;
  std::int64_t advance_after_stable_steps = 500;
};

struct DistributedConfig {
  double quorum = 1.0;            // share of live ranks whose snapshot closes a step
  std::int64_t deadline_steps = 2;   // or: a rank is this many steps ahead
  double deadline_seconds = 30.0; // or: this much snapshot time since the step's first snapshot
};

struct NavigatorConfig {
  SignalConfig signals;
  FilterConfig filters;
  std::map<std::string, ZoneConfig> zones = default_zones();
  std::vector<BasinRule> basin_rules = default_basin_rules();
  StateMachineParams states;
  PidSchedule pid;
  BurnLimits limits;
  ReweightConfig reweight;
  std::map<std::string, DomainProfile> basin_map;  // domain → tags (the scorecard)
  std::string basin_map_file;                      // where it came from ("" = none)
  CurriculumConfig curriculum;
  LossWeightParams loss_weights;
  RollbackPolicy rollback;
  LrCeilingConfig lr_ceiling;
  DistributedConfig distributed;
  double stale_after_seconds = 60.0;  // snapshot time without news from a rank → stale

  static std::map<std::string, ZoneConfig> default_zones();
  static std::vector<BasinRule> default_basin_rules();

  // Every problem as "dotted.key: what is wrong" (empty = valid).
  std::vector<std::string> validate() const;
};

}  // namespace orbit
