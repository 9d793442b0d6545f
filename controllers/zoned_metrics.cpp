// SPDX-License-Identifier: Apache-2.0
#include "controllers/zoned_metrics.hpp"

#include <algorithm>
#include <cmath>

#include "controllers/decision_text.hpp"
#include "controllers/metric_report.hpp"

namespace orbit {

namespace {
constexpr auto kLossZ = static_cast<std::size_t>(zone_metric_index("loss_z"));
constexpr auto kGradNormZ = static_cast<std::size_t>(zone_metric_index("grad_norm_z"));
constexpr auto kLoopRate = static_cast<std::size_t>(zone_metric_index("loop_rate"));
constexpr auto kAttnLogitGrowth = static_cast<std::size_t>(zone_metric_index("attn_logit_growth"));
}  // namespace

ZoneReading ZonedMetrics::update(std::int64_t at, const PerZoneMetric<double>& values,
                                 const PerZoneMetric<ZoneConfig>& zone_config, const NavigatorConfig& cfg,
                                 const std::vector<double>& extra_margins, bool nonfinite, MetricSink* m,
                                 std::vector<Finding>& findings, bool early_corroborated,
                                 std::optional<double> sparse_loss_ratio) {
  const FilterConfig& fc = cfg.filters;
  const auto step = static_cast<double>(at);
  const std::int64_t confirm = fc.spike_confirm_steps;
  ZoneReading out;
  std::optional<double>& health = out.health;
  std::optional<double>& health_ahead = out.health_ahead;
  const auto horizon = static_cast<double>(fc.forecast_horizon);
  std::optional<double> soonest_danger;  // steps until the first trend reaches its danger line
  for (std::size_t mi = 0; mi < kZoneMetricCount; ++mi) {
    const char* metric = kZoneMetrics[mi];
    const std::optional<ZoneConfig>& zc = zone_config[mi];
    const std::optional<double>& v = values[mi];
    if (!v && tracks_[mi]) tracks_[mi]->last_value.reset();  // "the snapshot before" is the one just before
    if (!zc || !v) continue;
    const ZoneBand& band = zc->band;
    const bool is_z = mi == kLossZ || mi == kGradNormZ;
    if (!tracks_[mi]) {
      tracks_[mi].emplace(MetricTrack{Ewma(fc.metric_alpha), ZoneTracker{},
                                      TrendWindow(static_cast<std::size_t>(fc.trend_window)), std::nullopt, 0,
                                      std::nullopt});
    }
    MetricTrack& track = *tracks_[mi];
    double smooth = *v;
    TrendFit fit;
    if (!is_z) {
      track.ewma.set_alpha(fc.metric_alpha);
      smooth = track.ewma.update(*v);
      fit = push_trend(mi, track.trend, step, *v);
    }
    Zone zs = track.zone.update(smooth, band, fc.zone_hysteresis);
    Zone zr = is_z ? zs : band.classify(*v);
    // A loop-rate reading is one sampled generation: a single one in danger is as
    // likely noise as a loop (healthy runs swing by 0.4 between probes), while a
    // model stuck in a loop stays stuck. Its danger counts once it held on
    // signals.loop_rate_confirm_readings consecutive readings; until then a warning.
    bool unconfirmed_loop = false;
    if (mi == kLoopRate) {
      track.danger_readings = zr == Zone::danger ? track.danger_readings + 1 : 0;
      if ((zr == Zone::danger || zs == Zone::danger) &&
          track.danger_readings < cfg.signals.loop_rate_confirm_readings) {
        unconfirmed_loop = true;
        zr = std::min(zr, Zone::warning);
        zs = std::min(zs, Zone::warning);
      }
    }
    // One sparse snapshot (it alone spans the confirmation) whose loss z is in danger
    // while its loss stands less than filters.loss_spike_min_ratio over its level and
    // its grad norm does not stand out with it: far out in the units of a smooth run's
    // noise, yet no spike by size (the labelled spikes are 1.5x). It raises nothing
    // (Navigator reports it); a rise that persists is the drift CUSUM's, and one that
    // grows to the ratio is CRITICAL then. Measured on bench/traces (fresh4):
    // AlgoPerf v0.5 librispeech deepspeech jax, baseline trial 4 and caspr trial 1,
    // outliers of 1.2x and 1.16x their level at a 100-step cadence, and wmt_glu_tanh
    // pytorch sf-prodigy trial 2, 1.08x at 500 steps: loss z 6.1-6.6, each a CRITICAL.
    bool immaterial_loss = false;
    if (mi == kLossZ && sparse_loss_ratio && *sparse_loss_ratio < fc.loss_spike_min_ratio &&
        (zr == Zone::danger || zs == Zone::danger)) {
      immaterial_loss = true;
      zr = std::min(zr, Zone::warning);
      zs = std::min(zs, Zone::warning);
    }
    // A held loss z between the warning and danger lines that fell since the snapshot
    // before is a level the loss stepped to once and now holds: the running statistics
    // are taking it in (a new regime, not a spike), so it raises no warning. A rise that
    // keeps growing keeps its z up, one past the danger line alarms at once, and a
    // slow climb is the drift CUSUM's. Measured on bench/traces: AlgoPerf v0.6
    // criteo1tb pytorch shampoo trial 2 (healthy) steps 8 % at step 95 and stays flat
    // (held z 5.3, then 2.7), which burned the lr as a WARNING.
    const bool settling_level =
        mi == kLossZ && zs == Zone::warning && zr != Zone::danger && track.last_value && *v < *track.last_value;
    if (is_z) track.last_value = *v;
    const Zone now = std::max(zs, zr);
    out.now[mi] = now;
    std::optional<double> eta;
    if (fit.valid && fit.points >= static_cast<std::size_t>(fc.trend_window) && fit.significant(fc.trend_sigmas)) {
      eta = fit.steps_until(band.danger);
    }
    const bool forecast_danger = eta && *eta <= horizon;
    if (eta && *eta >= 0.0 && zc->alarm) soonest_danger = soonest_danger ? std::min(*soonest_danger, *eta) : *eta;
    if (cfg.pid.lookahead_steps > 0 && zc->alarm && fit.valid &&
        fit.points >= static_cast<std::size_t>(fc.trend_window) && fit.significant(fc.trend_sigmas)) {
      const double ahead = band.margin(fit.value_at(fit.last_x + static_cast<double>(cfg.pid.lookahead_steps)));
      health_ahead = health_ahead ? std::min(*health_ahead, ahead) : ahead;
    }
    out.forecast[mi] = forecast_danger ? Zone::danger : now;
    // A raw value in danger counts at once (a sudden collapse must not wait for
    // the smoother); otherwise the smoothed value speaks, so noise does not.
    double margin = zr == Zone::danger ? std::min(band.margin(smooth), band.margin(*v)) : band.margin(smooth);
    if (unconfirmed_loop || immaterial_loss) margin = std::max(margin, 0.0);
    out.margins[mi] = margin;
    // Early in training healthy runs pass through a short hidden-state transient
    // (see the signature): there a spectral metric alarms or weighs on health only
    // once it has stayed in danger for signature_confirm_steps on consecutive
    // probes and the run corroborates it (its loss stalls or its attention logits
    // blow up: a healthy transient's loss keeps falling); its warnings and forecasts
    // wait for the end of the early phase.
    // attn_logit_growth is not held: its floor (signals.attn_logit_floor) already
    // keeps the init transient out (healthy runs stay below it for 150+ steps), and a
    // warmup collapse held 20 steps is caught at a higher lr.
    const bool spectral = !is_z && mi != kLoopRate && mi != kAttnLogitGrowth;
    const bool in_danger = zr == Zone::danger || zs == Zone::danger;
    if (spectral) {
      if (track.danger_since && at < *track.danger_since) track.danger_since.reset();
      if (!in_danger) track.danger_since.reset();
      else if (!track.danger_since) track.danger_since = at;
    }
    const bool early_hold = spectral && at < cfg.signals.signature_early_steps &&
                            (!in_danger || at - *track.danger_since < cfg.signals.signature_confirm_steps ||
                             !early_corroborated);
    if (!zc->alarm || early_hold) continue;
    health = health ? std::min(*health, margin) : margin;
    if (zr == Zone::danger || zs == Zone::danger) {
      const double shown = zr == Zone::danger ? *v : smooth;
      findings.push_back({Severity::critical,
                          metric_label(metric) + " " + num(shown) + " in danger zone (" + band.danger_text() +
                              (is_z ? ", held " + std::to_string(confirm) + " steps)" : ")"),
                          std::string(metric) + ":danger"});
    } else if (unconfirmed_loop) {
      findings.push_back({Severity::warning,
                          metric_label(metric) + " " + num(*v) + " beyond the danger line (" + band.danger_text() +
                              ") on " + std::to_string(track.danger_readings) + " of " +
                              std::to_string(cfg.signals.loop_rate_confirm_readings) + " readings",
                          std::string(metric) + ":warning"});
    } else if (immaterial_loss) {
      // reported by the Navigator as an event, not a finding
    } else if (zs == Zone::warning && !settling_level) {
      findings.push_back({Severity::warning,
                          metric_label(metric) + " " + num(smooth) + " in warning zone (danger " +
                              band.danger_text() + ")",
                          std::string(metric) + ":warning"});
    } else if (forecast_danger) {
      findings.push_back({Severity::drift,
                          metric_label(metric) + " " + num(fit.value) + (fit.slope < 0 ? " falling " : " rising ") +
                              num(std::abs(fit.slope), 2) + "/step, danger in ~" +
                              std::to_string(static_cast<std::int64_t>(std::ceil(*eta))) + " steps",
                          std::string(metric) + ":drift"});
    }
  }
  for (const double margin : extra_margins) health = health ? std::min(*health, margin) : margin;
  if (nonfinite) health = -1.0;
  if (health) put_metric(m, "health", *health);
  if (soonest_danger) put_metric(m, "steps_to_danger", *soonest_danger);
  if (health) {
    health_trend_.set_capacity(static_cast<std::size_t>(fc.health_window));
    health_trend_.push(step, *health);
    const TrendFit hf = health_trend_.fit();
    if (hf.valid) out.health_slope = hf.slope;
  }
  return out;
}

TrendFit ZonedMetrics::push_trend(std::size_t metric, TrendWindow& trend, double step, double value) {
  TrendMemoCursor& memo = trend_memo_[metric];
  const TrendInput input{step, value};
  const TrendParams params{trend.capacity()};
  if (memo.following()) {
    if (const TrendFit* fit = memo.recorded(input, params)) return *fit;
    // The window is as reset (it is not pushed while followed), with the capacity
    // the recorded pushes had: replaying them rebuilds its sums bit for bit.
    memo.leave([&](const TrendInput& in, const TrendParams&) { trend.push(in.x, in.y); });
  }
  trend.push(step, value);
  const TrendFit fit = trend.fit();
  memo.computed(input, fit, params);
  return fit;
}

void ZonedMetrics::leave_trend_memos() {
  for (std::size_t mi = 0; mi < kZoneMetricCount; ++mi) {
    TrendMemoCursor& memo = trend_memo_[mi];
    memo.stop_recording();
    if (!memo.following()) continue;
    if (tracks_[mi]) {
      TrendWindow& trend = tracks_[mi]->trend;
      memo.leave([&](const TrendInput& in, const TrendParams&) { trend.push(in.x, in.y); });
    } else {
      memo.leave([](const TrendInput&, const TrendParams&) {});  // no track: nothing was pushed
    }
  }
}

void ZonedMetrics::record_into(ZonedMetricsMemo* memo) {
  for (std::size_t mi = 0; mi < kZoneMetricCount; ++mi) trend_memo_[mi].record_into(&memo->trends[mi]);
}

void ZonedMetrics::follow(const ZonedMetricsMemo* memo) {
  for (std::size_t mi = 0; mi < kZoneMetricCount; ++mi) trend_memo_[mi].follow(&memo->trends[mi]);
}

void ZonedMetrics::set_windows(std::int64_t trend_window, std::int64_t health_window) {
  leave_trend_memos();
  for (auto& track : tracks_) {
    if (track) track->trend.set_capacity(static_cast<std::size_t>(trend_window));
  }
  health_trend_.set_capacity(static_cast<std::size_t>(health_window));
}

void ZonedMetrics::restart_trends() {
  for (auto& track : tracks_) {
    if (track) track->trend.reset();
  }
  for (auto& memo : trend_memo_) memo.on_reset();
  health_trend_.reset();
}

void ZonedMetrics::reset() {
  for (auto& track : tracks_) track.reset();
  for (auto& memo : trend_memo_) memo.on_reset();
  health_trend_.reset();
}

}  // namespace orbit
