// SPDX-License-Identifier: Apache-2.0
#include "controllers/navigator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

#include "controllers/basin_classifier.hpp"

namespace orbit {

namespace {

// Wire names in Decision::metrics are bounded like every map key on the wire.
constexpr std::size_t kMaxMetricName = 128;

std::string num(double v, int digits = 3) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*g", digits, v);
  return text;
}

std::string nonfinite_name(double v) {
  return std::isnan(v) ? "NaN" : (v > 0 ? "+inf" : "-inf");
}

bool matches(const std::string& name, const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return true;
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return name.compare(0, p.size(), p) == 0; });
}


std::string label(std::string_view metric) {
  if (metric == "loss_z") return "loss z";
  if (metric == "grad_norm_z") return "grad norm z";
  std::string s(metric);
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

// `metrics` is null when the caller does not want them: nothing is built then.
void put(std::map<std::string, double>* metrics, std::string_view name, double value) {
  if (metrics && std::isfinite(value) && name.size() <= kMaxMetricName) (*metrics)[std::string(name)] = value;
}

// `spectrum`: the spectrum's name ("hidden.0" -> "hidden.0.entropy"); none for the aggregate.
void put_spectral(std::map<std::string, double>* metrics, const std::string* spectrum, const SpectralMetrics& m) {
  if (!metrics) return;
  std::string key;  // one buffer for the five names: no temporary per name
  if (spectrum) (key = *spectrum) += '.';
  const std::size_t stem = key.size();
  for (const auto& [suffix, value] : {std::pair{"entropy", m.entropy}, std::pair{"effective_rank", m.effective_rank},
                                      std::pair{"normalized_entropy", m.normalized_entropy},
                                      std::pair{"dominant_ratio", m.dominant_ratio},
                                      std::pair{"phi_proximity", m.phi_proximity}}) {
    key.resize(stem);
    key += suffix;
    put(metrics, key, value);
  }
}

// The spectral zone metrics, in kZoneMetrics order (entropy ... phi_proximity).
void spectral_values(const SpectralMetrics& m, PerZoneMetric<double>& values) {
  if (!m.valid) return;
  values[0] = m.entropy;
  values[1] = m.effective_rank;
  values[2] = m.normalized_entropy;
  values[3] = m.dominant_ratio;
  values[4] = m.phi_proximity;
}
static_assert(std::string_view(kZoneMetrics[0]) == "entropy" && std::string_view(kZoneMetrics[4]) == "phi_proximity");
constexpr auto kLossZ = static_cast<std::size_t>(zone_metric_index("loss_z"));
constexpr auto kGradNormZ = static_cast<std::size_t>(zone_metric_index("grad_norm_z"));
constexpr auto kLoopRate = static_cast<std::size_t>(zone_metric_index("loop_rate"));
constexpr auto kPhiProximity = static_cast<std::size_t>(zone_metric_index("phi_proximity"));

struct Finding {
  Severity severity = Severity::none;
  std::string reason;
  std::string key;  // what kind of alarm, to report each one once while it lasts
};

// Severity order of states, for "did this transition go down?".
int level(OrbitState s) {
  switch (s) {
    case OrbitState::stable: return 0;
    case OrbitState::recovering: return 1;
    case OrbitState::drifting: return 2;
    case OrbitState::warning: return 3;
    case OrbitState::critical: return 4;
    case OrbitState::stale:
    case OrbitState::monitor: return 0;
  }
  return 0;
}

}  // namespace

Navigator::Navigator(NavigatorConfig config, RunInfo info, Mode mode)
    : config_(std::move(config)),
      info_(std::move(info)),
      mode_(mode),
      health_trend_(static_cast<std::size_t>(config_.filters.health_window)) {
  resolve_config();
  resolve_actuators();
  lead_ = config_.limits.apply_lead_steps;
  mixture_.set_domains(info_.domains, config_.basin_map,
                       {config_.reweight.rate, config_.reweight.relax, config_.limits.weight_floor,
                        config_.reweight.snap});
  applied_ = defaults();
}

void Navigator::resolve_actuators() {
  // Which actuators the adapters declared, looked up once per hello, not per decision.
  actuators_ = 0;
  for (std::size_t i = 0; i < std::size(kActuatorNames); ++i) {
    if (std::find(info_.actuators.begin(), info_.actuators.end(), kActuatorNames[i]) != info_.actuators.end()) {
      actuators_ |= 1u << i;
    }
  }
}

Navigator::Applied Navigator::defaults() const {
  Applied a;
  if (declared(Actuator::domain_weights) && !mixture_.empty()) a.domain_weights = mixture_.base();
  if (declared(Actuator::curriculum) && !config_.curriculum.phases.empty()) a.curriculum_phase = 0;
  if (declared(Actuator::loss_weights)) a.loss_weights = {{"collapse", 0.0}, {"phi", 0.0}};
  return a;
}

void Navigator::resolve_config() {
  for (std::size_t i = 0; i < kZoneMetricCount; ++i) {
    auto it = config_.zones.find(kZoneMetrics[i]);
    zone_config_[i] = it == config_.zones.end() ? std::nullopt : std::optional<ZoneConfig>(it->second);
  }
  rule_metrics_.clear();
  for (const BasinRule& rule : config_.basin_rules) {
    auto& indices = rule_metrics_.emplace_back();
    for (const auto& metric : rule.metrics) indices.push_back(zone_metric_index(metric));
  }
  for (SpectrumSlot& slot : spectrum_slots_) {
    slot.aggregated = matches(slot.name, config_.signals.spectra);
    slot.signature = matches(slot.name, config_.signals.signature_spectra);
  }
}

std::uint32_t Navigator::spectrum_slot(const std::string& name, std::size_t& cursor) {
  // Adapters send the same names in the same order every snapshot: the next slot
  // is almost always the one.
  if (cursor < spectrum_slots_.size() && spectrum_slots_[cursor].name == name) return static_cast<std::uint32_t>(cursor++);
  for (std::size_t i = 0; i < spectrum_slots_.size(); ++i) {
    if (spectrum_slots_[i].name == name) {
      cursor = i + 1;
      return static_cast<std::uint32_t>(i);
    }
  }
  spectrum_slots_.push_back({name, matches(name, config_.signals.spectra),
                             matches(name, config_.signals.signature_spectra)});
  cursor = spectrum_slots_.size();
  return static_cast<std::uint32_t>(spectrum_slots_.size() - 1);
}

void Navigator::reduce(const Snapshot& s, const std::vector<SpectralMetrics>* spectral, Sample& out) {
  // A run that keeps inventing names must not grow the slots without bound; they
  // are only a cache of names, so they start over when no waiting sample uses them.
  if (spectrum_slots_.size() > 4096 && !quorum_.waiting()) spectrum_slots_.clear();
  out.step = s.step;
  out.time = s.time;
  out.loss = s.loss;
  out.grad_norm = s.grad_norm;
  out.loop_rate = s.loop_rate;
  out.domains.clear();
  out.spectra.clear();
  std::size_t cursor = 0;
  if (spectral && spectral->size() != s.spectra.size()) spectral = nullptr;
  std::size_t i = 0;
  for (const auto& [name, values] : s.spectra) {
    const std::uint32_t slot = spectrum_slot(name, cursor);
    out.spectra.push_back({slot, spectral ? (*spectral)[i++] : spectral_metrics(values, config_.signals.phi_target)});
  }
}

Navigator::Sample Navigator::merge(const PendingStep& pending) const {
  if (pending.ranks.size() == 1) return pending.ranks.begin()->second;
  Sample out;
  double loss_sum = 0.0;
  std::size_t loss_n = 0;
  std::optional<double> bad_loss;
  double loop_sum = 0.0;
  std::size_t loop_n = 0;
  // name → rank → metrics; name order and rank-text order, as the aggregate has always read them
  std::map<std::string, std::pair<std::uint32_t, std::map<std::string, SpectralMetrics>>> spectra;
  std::map<std::string, std::pair<double, std::size_t>> domain_loss;
  for (const auto& [rank, s] : pending.ranks) {
    out.step = s.step;
    out.time = std::max(out.time, s.time);
    // The loudest signal wins: one rank's non-finite loss is the step's.
    if (std::isfinite(s.loss)) {
      loss_sum += s.loss;
      ++loss_n;
    } else if (!bad_loss || std::isnan(s.loss)) {
      bad_loss = s.loss;
    }
    if (s.grad_norm) {
      if (!out.grad_norm || !std::isfinite(*s.grad_norm) || (std::isfinite(*out.grad_norm) && *s.grad_norm > *out.grad_norm)) {
        if (!(out.grad_norm && std::isnan(*out.grad_norm))) out.grad_norm = s.grad_norm;
      }
    }
    if (s.loop_rate) {
      loop_sum += *s.loop_rate;
      ++loop_n;
    }
    for (const auto& [name, d] : s.domains) {
      auto& slot = out.domains[name];
      if (!slot.weight && d.weight) slot.weight = d.weight;
      if (d.loss && std::isfinite(*d.loss)) {
        domain_loss[name].first += *d.loss;
        ++domain_loss[name].second;
      }
    }
    for (const auto& [slot, m] : s.spectra) {
      auto& entry = spectra[spectrum_slots_[slot].name];
      entry.first = slot;
      entry.second[std::to_string(rank)] = m;
    }
  }
  out.loss = bad_loss ? *bad_loss : (loss_n > 0 ? loss_sum / static_cast<double>(loss_n) : 0.0);
  if (loop_n > 0) out.loop_rate = loop_sum / static_cast<double>(loop_n);
  for (const auto& [name, acc] : domain_loss) out.domains[name].loss = acc.first / static_cast<double>(acc.second);
  for (const auto& [name, by_rank] : spectra) {
    out.spectra.push_back({by_rank.first, aggregate(by_rank.second, config_.signals.aggregation)});
  }
  return out;
}

SpectralMetrics Navigator::add_spectral_metrics(const Sample& sample, std::map<std::string, double>* metrics) const {
  SpectralAggregator selected(config_.signals.aggregation);
  for (const auto& [slot, m] : sample.spectra) {
    if (!m.valid) continue;
    const SpectrumSlot& spectrum = spectrum_slots_[slot];
    put_spectral(metrics, &spectrum.name, m);
    if (spectrum.aggregated) selected.add(m);
  }
  const SpectralMetrics agg = selected.result();
  if (agg.valid) put_spectral(metrics, nullptr, agg);
  return agg;
}

void Navigator::refresh_applied() {
  // Past its expiry the adapter is back on the trainer's own schedule.
  if (last_burn_ && applied_until_ && max_step_ >= *applied_until_) {
    applied_ = defaults();
    applied_until_.reset();
    forced_until_.reset();
    // The controller starts again from what the adapter now applies.
    const double ceiling = ladder_.ceiling(config_.limits.lr_scale_max);
    pid_.set_output(std::min(0.0, std::log(ceiling)),
                    {std::log(config_.limits.lr_scale_min), std::log(ceiling), std::log(config_.limits.max_lr_change),
                     config_.pid.integral_limit, std::log(config_.limits.max_lr_change)});
  }
}

void Navigator::start_branch(std::int64_t last_closed_step, const std::string& why) {
  quorum_.start_branch(last_closed_step);
  last_closed_step_ = last_closed_step;
  max_step_ = last_closed_step;
  for (auto& track : tracks_) track.reset();
  active_findings_.clear();
  loss_stats_.reset();
  grad_stats_.reset();
  loss_cusum_.reset();
  grad_cusum_.reset();
  loss_z_recent_.clear();
  grad_z_recent_.clear();
  loss_jump_.reset();
  signature_since_.reset();
  health_trend_.reset();
  // What the adapter applies now keeps running from the new branch's start.
  if (applied_until_) applied_until_ = last_closed_step + config_.limits.expiry_steps;
  queued_events_.push_back(why);
}

Decision Navigator::on_snapshot(const Snapshot& snapshot) { return snapshot_decision(snapshot, nullptr); }

Decision Navigator::on_snapshot(const Snapshot& snapshot, const std::vector<SpectralMetrics>& spectral) {
  return snapshot_decision(snapshot, &spectral);
}

Decision Navigator::snapshot_decision(const Snapshot& snapshot, const std::vector<SpectralMetrics>* spectral) {
  std::vector<std::string> events = std::move(queued_events_);
  queued_events_.clear();
  const std::int64_t world = std::max<std::int64_t>(1, info_.world_size);
  const double stale_after = config_.stale_after_seconds;

  RankStatus& me = quorum_.status(snapshot.rank);
  const std::int64_t previous_step = me.last_step;
  if (me.stale) {
    me.stale = false;
    events.push_back("rank " + std::to_string(snapshot.rank) + " fresh again at step " + std::to_string(snapshot.step));
  }
  if (world == 1 && me.seen && snapshot.time - me.last_time > stale_after) {
    events.push_back("no snapshot for " + num(snapshot.time - me.last_time) +
                     " s of snapshot time; trends start over");
    for (auto& track : tracks_) {
      if (track) track->trend.reset();
    }
    health_trend_.reset();
  }
  me.seen = true;
  me.last_time = snapshot.time;
  me.last_step = snapshot.step;
  if (machine_.state() == OrbitState::stale) {  // the reason is built only when it is used
    if (auto t = machine_.mark_fresh("fresh snapshot from rank " + std::to_string(snapshot.rank))) {
      events.push_back(std::string(to_string(t->from)) + " -> " + std::string(to_string(t->to)) + ": " + t->reason);
    }
  }
  for (std::int64_t rank : quorum_.mark_stale(snapshot.rank, snapshot.time, stale_after)) {
    events.push_back("rank " + std::to_string(rank) + " stale: no snapshot for " +
                     num(snapshot.time - quorum_.status(rank).last_time) + " s of snapshot time; deciding without it");
  }

  // A step that goes back starts a new branch (a rollback or a resumed job).
  if (last_closed_step_ && snapshot.step <= *last_closed_step_ &&
      (world == 1 || (previous_step >= 0 && snapshot.step < previous_step))) {
    start_branch(snapshot.step - 1, "step went back from " + std::to_string(std::max(previous_step, *last_closed_step_)) +
                                        " to " + std::to_string(snapshot.step) + ": a new branch, filters start over");
    for (auto& e : queued_events_) events.push_back(std::move(e));
    queued_events_.clear();
  }

  Sample& sample = scratch_;
  reduce(snapshot, spectral, sample);
  const bool late = last_closed_step_ && snapshot.step <= *last_closed_step_;
  if (!late && world == 1) {
    // The common case: one rank, its step closes now.
    max_step_ = std::max(max_step_, snapshot.step);
    Decision out = decide(sample, snapshot.domains);
    if (!out.events.empty()) {
      for (auto& e : out.events) events.push_back(std::move(e));
    }
    out.events = std::move(events);
    return out;
  }
  std::vector<Decision> closed;
  if (!late) {
    max_step_ = std::max(max_step_, snapshot.step);
    Sample& waiting = quorum_.add(snapshot.step, snapshot.rank, snapshot.time);
    waiting = sample;
    waiting.domains = snapshot.domains;
    close_ready_steps(snapshot.time, closed);
  }

  Decision out;
  if (closed.empty()) {
    // Waiting for the other ranks (or a late snapshot): report, do not act.
    refresh_applied();
    std::map<std::string, double>* m = report_metrics_ ? &out.metrics : nullptr;
    add_spectral_metrics(sample, m);
    put(m, "loss", sample.loss);
    if (sample.grad_norm) put(m, "grad_norm", *sample.grad_norm);
    if (sample.loop_rate) put(m, "loop_rate", *sample.loop_rate);
    put(m, "lr_scale", applied_.lr_scale);
    out.observed_state = std::string(to_string(machine_.state()));
    out.state = mode_ == Mode::monitor ? "MONITOR" : out.observed_state;
    out.basin = basin_;
    out.forecast_basin = forecast_basin_;
    out.lr_scale = applied_.lr_scale;
    if (late) {
      events.push_back("snapshot of rank " + std::to_string(snapshot.rank) + " for step " +
                       std::to_string(snapshot.step) + " came after that step was decided");
    }
  } else {
    // Several steps may close at once; the newest decision speaks, carrying the
    // events of all, and a rollback asked for on the way is never dropped.
    std::optional<Burn> burn;
    for (auto& d : closed) {
      for (auto& e : d.events) events.push_back(std::move(e));
      if (d.burn) {
        if (burn && burn->rollback_to_step && !d.burn->rollback_to_step) {
          d.burn->rollback_to_step = burn->rollback_to_step;
          d.burn->skip_batches = burn->skip_batches;
        }
        burn = std::move(d.burn);
      }
    }
    out = std::move(closed.back());
    out.burn = std::move(burn);
  }
  out.events = std::move(events);
  return out;
}

void Navigator::close_ready_steps(double now, std::vector<Decision>& out) {
  const auto through = quorum_.ready_through(config_.distributed, info_.world_size, max_step_, now);
  if (!through) return;
  while (auto pending = quorum_.pop_through(*through)) {
    const Sample merged = merge(*pending);
    out.push_back(decide(merged, merged.domains));
  }
}

Decision Navigator::decide(const Sample& in, const std::map<std::string, DomainStats>& domains) {
  const NavigatorConfig& cfg = config_;
  const FilterConfig& fc = cfg.filters;
  Decision d;
  d.step_closed = true;
  ++tick_;
  const auto step = static_cast<double>(in.step);
  // Training steps since the last decision (snapshots may come every N steps):
  // rates given per step (the lr's return, the ceiling's relaxation) scale by it.
  const double elapsed =
      last_closed_step_ ? std::clamp(static_cast<double>(in.step - *last_closed_step_), 1.0, 1000.0) : 1.0;
  std::map<std::string, double>* m = report_metrics_ ? &d.metrics : nullptr;
  const SpectralMetrics agg = add_spectral_metrics(in, m);  // aggregated over signals.spectra
  std::vector<Finding> findings;

  // ---- scalars: loss and ln(grad norm) through robust statistics
  const bool loss_finite = std::isfinite(in.loss);
  const bool grad_finite = !in.grad_norm || std::isfinite(*in.grad_norm);
  const RobustStatsParams loss_params{fc.loss_alpha, fc.warmup_steps, fc.z_clip, 1e-12, fc.loss_min_sd_rel};
  const RobustStatsParams grad_params{fc.grad_norm_alpha, fc.warmup_steps, fc.z_clip, fc.grad_norm_min_sd, 0.0};
  const CusumParams cusum{fc.cusum_k, fc.cusum_h, 2.0 * fc.z_clip};
  const std::int64_t confirm = fc.spike_confirm_steps;  // training steps
  std::optional<double> loss_z_raw, grad_z_raw;
  if (loss_finite) {
    const auto st = loss_stats_.update(in.loss, loss_params);
    put(m, "loss", in.loss);
    put(m, "loss_ewma", st.mean);
    if (st.ready) {
      loss_z_raw = st.z;
      put(m, "loss_z", st.z);
      const auto c = loss_cusum_.update(st.z, cusum);
      if (c.up) {
        findings.push_back({Severity::warning,
                            "loss drifting up (CUSUM " + num(c.upper) + " over " + std::to_string(c.up_run) + " steps)",
                            "loss_cusum"});
      }
    }
  } else {
    findings.push_back({Severity::critical, "loss is " + nonfinite_name(in.loss), "loss_nonfinite"});
  }
  if (in.grad_norm && grad_finite) {
    put(m, "grad_norm", *in.grad_norm);
    const auto st = grad_stats_.update(std::log(std::max(*in.grad_norm, 1e-30)), grad_params);
    if (st.ready) {
      grad_z_raw = st.z;
      put(m, "grad_norm_z", st.z);
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
  } else if (in.grad_norm) {
    findings.push_back({Severity::critical, "grad norm is " + nonfinite_name(*in.grad_norm), "grad_norm_nonfinite"});
  }
  // Each snapshot stands for the steps since the last one: confirmation counts steps.
  const auto covered = static_cast<std::int64_t>(elapsed);
  loss_z_recent_.push(loss_z_raw, covered, confirm);
  grad_z_recent_.push(grad_z_raw, covered, confirm);
  // A loss jump over its floor: armed from a mid-training run's second snapshot.
  std::optional<LossJumpStatus> jump;
  if (loss_finite) {
    const LossJumpParams jp{fc.loss_jump_ratio, fc.loss_jump_grad_ratio, confirm, fc.loss_jump_arm_step};
    jump = loss_jump_.update(in.step, in.loss, in.grad_norm, jp);
    if (jump->ratio > 0.0) put(m, "loss_jump", jump->ratio);
    if (jump->alarm) {
      findings.push_back({Severity::critical,
                          "loss " + num(in.loss) + " is " + num(jump->ratio) + "x its floor " + num(jump->floor) +
                              (jump->corroborated ? " (grad norm " + num(*jump->grad_ratio) + "x its recent low)"
                                                  : " (held " + std::to_string(jump->held_steps) + " steps)"),
                          "loss_jump"});
    }
  }
  if (in.loop_rate) put(m, "loop_rate", *in.loop_rate);
  if (m) {
    for (const auto& [name, stats] : domains) {
      if (stats.loss) put(m, "domain." + name + ".loss", *stats.loss);
    }
  }
  const bool nonfinite = !loss_finite || !grad_finite;

  // ---- the collapse signature, per spectrum (issue 3's early signal)
  bool signature = false;
  bool signature_checked = false;  // this snapshot carries a signature spectrum
  std::string signature_text;
  for (const auto& [slot, sm] : in.spectra) {
    if (!sm.valid || !spectrum_slots_[slot].signature) continue;
    signature_checked = true;
    const std::string& name = spectrum_slots_[slot].name;
    if (sm.dominant_ratio > cfg.signals.signature_dominant_ratio) {
      signature_text = name + " dominant ratio " + num(sm.dominant_ratio) + " > " + num(cfg.signals.signature_dominant_ratio);
    } else if (sm.effective_rank < cfg.signals.signature_effective_rank) {
      signature_text = name + " effective rank " + num(sm.effective_rank) + " < " + num(cfg.signals.signature_effective_rank);
    } else {
      continue;
    }
    signature = true;
    break;
  }
  // Early in training the signature must hold (signature_early_steps); a step
  // counter that went back (a rollback) starts the count again.
  if (signature_since_ && in.step < *signature_since_) signature_since_.reset();
  if (signature_checked) {
    if (!signature) signature_since_.reset();
    else if (!signature_since_) signature_since_ = in.step;
  }
  if (signature) {
    const std::int64_t held = in.step - *signature_since_;
    if (in.step < cfg.signals.signature_early_steps && held < cfg.signals.signature_confirm_steps) {
      put(m, "signature_held_steps", static_cast<double>(held));
      signature = false;  // seen, not yet confirmed: no finding, no burn
    } else {
      if (held > 0) signature_text += " (held " + std::to_string(held) + " steps)";
      findings.push_back({Severity::critical, "collapse signature: " + signature_text, "signature"});
    }
  }

  // ---- zoned metrics: smoothing, zones with hysteresis, trend forecast
  // Indexed like kZoneMetrics: no name is looked up per snapshot.
  PerZoneMetric<double> values;
  spectral_values(agg, values);
  if (in.loop_rate) values[kLoopRate] = *in.loop_rate;
  if (auto z = loss_z_recent_.held(confirm)) values[kLossZ] = *z;
  if (auto z = grad_z_recent_.held(confirm)) values[kGradNormZ] = *z;

  PerZoneMetric<Zone> zones_now, zones_forecast;
  PerZoneMetric<double> margins;
  std::optional<double> health;
  std::optional<double> health_ahead;  // the trends' health lookahead_steps from now
  const auto horizon = static_cast<double>(fc.forecast_horizon);
  for (std::size_t mi = 0; mi < kZoneMetricCount; ++mi) {
    const char* metric = kZoneMetrics[mi];
    const std::optional<ZoneConfig>& zc = zone_config_[mi];
    const std::optional<double>& v = values[mi];
    if (!zc || !v) continue;
    const ZoneBand& band = zc->band;
    const bool is_z = mi == kLossZ || mi == kGradNormZ;
    if (!tracks_[mi]) {
      tracks_[mi].emplace(MetricTrack{Ewma(fc.metric_alpha), ZoneTracker{},
                                      TrendWindow(static_cast<std::size_t>(fc.trend_window)), std::nullopt});
    }
    MetricTrack& track = *tracks_[mi];
    double smooth = *v;
    TrendFit fit;
    if (!is_z) {
      track.ewma.set_alpha(fc.metric_alpha);
      smooth = track.ewma.update(*v);
      track.trend.push(step, *v);
      fit = track.trend.fit();
    }
    const Zone zs = track.zone.update(smooth, band, fc.zone_hysteresis);
    const Zone zr = is_z ? zs : band.classify(*v);
    const Zone now = std::max(zs, zr);
    zones_now[mi] = now;
    std::optional<double> eta;
    if (fit.valid && fit.points >= static_cast<std::size_t>(fc.trend_window) && fit.significant(fc.trend_sigmas)) {
      eta = fit.steps_until(band.danger);
    }
    const bool forecast_danger = eta && *eta <= horizon;
    if (cfg.pid.lookahead_steps > 0 && zc->alarm && fit.valid &&
        fit.points >= static_cast<std::size_t>(fc.trend_window) && fit.significant(fc.trend_sigmas)) {
      const double ahead = band.margin(fit.value_at(fit.last_x + static_cast<double>(cfg.pid.lookahead_steps)));
      health_ahead = health_ahead ? std::min(*health_ahead, ahead) : ahead;
    }
    zones_forecast[mi] = forecast_danger ? Zone::danger : now;
    // A raw value in danger counts at once (a sudden collapse must not wait for
    // the smoother); otherwise the smoothed value speaks, so noise does not.
    const double margin = zr == Zone::danger ? std::min(band.margin(smooth), band.margin(*v)) : band.margin(smooth);
    margins[mi] = margin;
    // Early in training healthy runs pass through a short hidden-state transient
    // (see the signature): there a spectral metric alarms or weighs on health only
    // once it has stayed in danger for signature_confirm_steps on consecutive
    // probes; its warnings and forecasts wait for the end of the early phase.
    const bool spectral = !is_z && mi != kLoopRate;
    const bool in_danger = zr == Zone::danger || zs == Zone::danger;
    if (spectral) {
      if (track.danger_since && in.step < *track.danger_since) track.danger_since.reset();
      if (!in_danger) track.danger_since.reset();
      else if (!track.danger_since) track.danger_since = in.step;
    }
    const bool early_hold = spectral && in.step < cfg.signals.signature_early_steps &&
                            (!in_danger || in.step - *track.danger_since < cfg.signals.signature_confirm_steps);
    if (!zc->alarm || early_hold) continue;
    health = health ? std::min(*health, margin) : margin;
    if (zr == Zone::danger || zs == Zone::danger) {
      const double shown = zr == Zone::danger ? *v : smooth;
      findings.push_back({Severity::critical,
                          label(metric) + " " + num(shown) + " in danger zone (" + band.danger_text() +
                              (is_z ? ", held " + std::to_string(confirm) + " steps)" : ")"),
                          std::string(metric) + ":danger"});
    } else if (zs == Zone::warning) {
      findings.push_back({Severity::warning,
                          label(metric) + " " + num(smooth) + " in warning zone (danger " + band.danger_text() + ")",
                          std::string(metric) + ":warning"});
    } else if (forecast_danger) {
      findings.push_back({Severity::drift,
                          label(metric) + " " + num(fit.value) + (fit.slope < 0 ? " falling " : " rising ") +
                              num(std::abs(fit.slope), 2) + "/step, danger in ~" +
                              std::to_string(static_cast<std::int64_t>(std::ceil(*eta))) + " steps",
                          std::string(metric) + ":drift"});
    }
  }
  // A CUSUM drift alarm weighs on health too: 1 at the alarm level, 0 at twice it.
  for (const auto& [metric, cusum_state] : {std::pair{kLossZ, &loss_cusum_}, std::pair{kGradNormZ, &grad_cusum_}}) {
    const std::optional<ZoneConfig>& zc = zone_config_[metric];
    if (!zc || !zc->alarm || !cusum_state->status().up) continue;
    const double margin = std::clamp(2.0 - cusum_state->status().upper / fc.cusum_h, -1.0, 2.0);
    health = health ? std::min(*health, margin) : margin;
  }
  // A loss jump weighs on health while it alarms: 1 at its floor, 0 at the jump ratio.
  if (jump && jump->alarm) {
    const double margin = std::clamp((fc.loss_jump_ratio - jump->ratio) / (fc.loss_jump_ratio - 1.0), -1.0, 2.0);
    health = health ? std::min(*health, margin) : margin;
  }
  if (nonfinite) health = -1.0;
  if (health) put(m, "health", *health);
  double health_slope = 0.0;
  if (health) {
    health_trend_.set_capacity(static_cast<std::size_t>(fc.health_window));
    health_trend_.push(step, *health);
    const TrendFit hf = health_trend_.fit();
    if (hf.valid) health_slope = hf.slope;
  }
  // An isolated z-spike is reported, not acted on (healthy runs have them).
  auto spike_note = [&](const char* metric, const std::optional<double>& z) {
    const auto mi = static_cast<std::size_t>(zone_metric_index(metric));
    const std::optional<ZoneConfig>& zc = zone_config_[mi];
    if (!z || !zc || !zc->alarm) return;
    if (zc->band.classify(*z) == Zone::danger && zones_now[mi].value_or(Zone::good) != Zone::danger) {
      d.events.push_back("isolated " + label(metric) + " " + num(*z) + " at step " + std::to_string(in.step) +
                         " (acted on only if it holds " + std::to_string(confirm) + " steps)");
    }
  };
  spike_note("loss_z", loss_z_raw);
  spike_note("grad_norm_z", grad_z_raw);

  Finding worst;
  for (const auto& f : findings) {
    if (f.severity > worst.severity) worst = f;
  }

  // ---- basins and state
  const BasinCall call = classify_basin(cfg.basin_rules, rule_metrics_, zones_now);
  const BasinCall forecast_call = classify_basin(cfg.basin_rules, rule_metrics_, zones_forecast);
  basin_.assign(to_string(call.basin));
  forecast_basin_.assign(to_string(forecast_call.basin));
  const OrbitState before = machine_.state();
  const auto transition = machine_.update(worst.severity, worst.reason, cfg.states);
  const OrbitState state = machine_.state();
  if (transition) {
    d.events.push_back(std::string(to_string(transition->from)) + " -> " + std::string(to_string(transition->to)) +
                       " at step " + std::to_string(in.step) + ": " + transition->reason);
  }
  // New alarms are reported once, also when the state does not change (a NaN in
  // a run that is already CRITICAL).
  std::set<std::string> active;
  for (const auto& f : findings) {
    active.insert(f.key);
    if (active_findings_.count(f.key) || (transition && f.reason == transition->reason)) continue;
    if (f.severity >= Severity::warning) d.events.push_back("alarm at step " + std::to_string(in.step) + ": " + f.reason);
  }
  active_findings_ = std::move(active);
  const bool episode_started = before == OrbitState::stable && state != OrbitState::stable;
  const bool entered_critical = transition && transition->to == OrbitState::critical;

  // Pressure toward a basin: 0 while its metrics are good, 1 on the danger line.
  auto pressure = [&](Basin basin) {
    double p = 0.0;
    for (std::size_t r = 0; r < cfg.basin_rules.size(); ++r) {
      if (cfg.basin_rules[r].basin != basin) continue;
      for (const int mi : rule_metrics_[r]) {
        if (mi >= 0 && margins[static_cast<std::size_t>(mi)]) {
          p = std::max(p, std::clamp(1.0 - *margins[static_cast<std::size_t>(mi)], 0.0, 1.0));
        }
      }
    }
    return p;
  };

  refresh_applied();
  // An operator's burn is left alone while the run is calm, until it expires.
  const bool hold_forced = forced_until_ && max_step_ < *forced_until_ && state == OrbitState::stable;
  if (forced_until_ && !hold_forced) forced_until_.reset();
  if (mode_ == Mode::active && !hold_forced) {
    const BurnLimits& lim = cfg.limits;
    const ReweightParams rw{cfg.reweight.rate, cfg.reweight.relax, lim.weight_floor, cfg.reweight.snap};

    // Recovery ladder first: a rollback lowers the ceiling the PID works under.
    // A confirmed signature began at its first sighting: roll back to before it.
    std::optional<std::int64_t> anchor = last_stable_step_;
    if (signature && signature_since_ && (!anchor || *signature_since_ - 1 < *anchor))
      anchor = std::max<std::int64_t>(0, *signature_since_ - 1);
    const LadderAction ladder = ladder_.update({tick_, in.step, state, episode_started, anchor, signature,
                                                signature_text, nonfinite, health, declared(Actuator::rollback), elapsed},
                                               cfg.rollback, lim.lr_scale_min, lim.lr_scale_max);
    if (ladder.event) d.events.push_back(*ladder.event);
    const double ceiling = ladder_.ceiling(lim.lr_scale_max);
    // Cuts as fast as a burn may move; raises never faster than the return rate.
    const double rate = elapsed * std::log(2.0) / static_cast<double>(cfg.pid.return_steps_per_doubling);
    const PidLimits pl{std::log(lim.lr_scale_min), std::log(ceiling), std::log(lim.max_lr_change),
                       cfg.pid.integral_limit, std::min(rate, std::log(lim.max_lr_change))};
    std::optional<double> pid_measured;
    if (state == OrbitState::stable) {
      // Bumpless return to the ceiling (1.0 unless a rollback lowered it).
      pid_.relax_toward(pl.output_max, rate, pl);
      if (std::abs(pid_.output() - pl.output_max) < 0.5 * std::log1p(lim.lr_deadband)) pid_.set_output(pl.output_max, pl);
    } else if (health) {
      // DRIFTING acts on where the trends say health will be; the other states on
      // where it is.
      const double measured =
          state == OrbitState::drifting && health_ahead ? std::min(*health, *health_ahead) : *health;
      const bool went_down = transition && level(transition->to) < level(transition->from);
      if (went_down) pid_.track(cfg.pid.setpoint, measured, health_slope, cfg.pid.gains(state), pl);
      pid_.update(cfg.pid.setpoint, measured, health_slope, cfg.pid.gains(state), pl);
      pid_measured = measured;
    }
    // The restored run restarts at restart_scale x the new ceiling and climbs back
    // at the return rate: the warmup whose absence let it collapse.
    if (ladder.rollback_to_step) {
      pid_.set_output(std::min(pid_.output(), pl.output_max + std::log(cfg.rollback.restart_scale)), pl);
    }

    // Mixture, curriculum, loss weights.
    std::optional<Basin> heading;
    if (call.basin == Basin::semantic_loop || call.basin == Basin::token_collapse) {
      heading = call.basin;
    } else if (forecast_call.basin == Basin::semantic_loop || forecast_call.basin == Basin::token_collapse) {
      heading = forecast_call.basin;
    }
    std::string mixture_note;
    if (declared(Actuator::domain_weights) && !mixture_.empty()) {
      std::map<std::string, double> reported;
      for (const auto& [name, stats] : domains) {
        if (stats.weight) reported[name] = *stats.weight;
      }
      if (!last_burn_) {
        mixture_.observe_base(reported, rw);
        applied_.domain_weights = mixture_.base();
      }
      if (state == OrbitState::stable || !heading) {
        mixture_.relax(rw);
      } else if (const double p = pressure(*heading); p > 0.0) {
        mixture_.push_away(*heading, p, rw);
        mixture_note = "weights away from " + std::string(to_string(*heading));
      }
    }
    std::string curriculum_note;
    if (declared(Actuator::curriculum) && !cfg.curriculum.phases.empty()) {
      if (auto e = curriculum_.update(state, entered_critical, cfg.curriculum.phases,
                                      {cfg.curriculum.advance_after_stable_steps})) {
        d.events.push_back(*e);
        curriculum_note = *e;
      }
    }
    if (declared(Actuator::loss_weights)) {
      const double phi = margins[kPhiProximity] ? std::clamp(1.0 - *margins[kPhiProximity], 0.0, 1.0) : 0.0;
      loss_weights_.update(state, pressure(Basin::token_collapse), phi, cfg.loss_weights);
    }

    // ---- what the adapter should apply; a burn only when it differs enough
    Applied want;
    if (declared(Actuator::lr)) {
      const double desired = std::exp(pid_.output());
      // A rollback restarts the run from a checkpoint, so its cut is not rationed:
      // the restored run's first steps (Adam's largest) must not run at the lr that
      // collapsed it.
      const double lowest = ladder.rollback_to_step ? lim.lr_scale_min : applied_.lr_scale / lim.max_lr_change;
      want.lr_scale = std::clamp(desired, lowest, applied_.lr_scale * lim.max_lr_change);
      want.lr_scale = std::clamp(want.lr_scale, lim.lr_scale_min, lim.lr_scale_max);
      if (std::abs(desired - want.lr_scale) < 1e-12) want.lr_scale = desired;
    }
    if (declared(Actuator::domain_weights) && !mixture_.empty()) want.domain_weights = mixture_.weights();
    if (declared(Actuator::curriculum) && !cfg.curriculum.phases.empty()) want.curriculum_phase = curriculum_.phase();
    if (declared(Actuator::loss_weights)) want.loss_weights = loss_weights_.weights();

    const Applied base = defaults();
    const bool lr_moved = want.lr_scale != applied_.lr_scale &&
                          (std::abs(std::log(want.lr_scale / applied_.lr_scale)) > std::log1p(lim.lr_deadband) ||
                           want.lr_scale == std::exp(pl.output_max) || want.lr_scale == 1.0);
    double weight_change = 0.0;
    for (const auto& [name, w] : want.domain_weights) {
      auto it = applied_.domain_weights.find(name);
      weight_change = std::max(weight_change, std::abs(w - (it == applied_.domain_weights.end() ? 0.0 : it->second)));
    }
    const bool weights_moved =
        want.domain_weights != applied_.domain_weights &&
        (weight_change > lim.weight_deadband || want.domain_weights == base.domain_weights ||
         want.domain_weights.size() != applied_.domain_weights.size());
    const bool phase_moved = want.curriculum_phase.value_or(0) != applied_.curriculum_phase.value_or(0);
    const bool loss_moved = want.loss_weights != applied_.loss_weights;
    const bool off_default = applied_.lr_scale != 1.0 || applied_.domain_weights != base.domain_weights ||
                             applied_.curriculum_phase.value_or(0) != 0 || applied_.loss_weights != base.loss_weights;
    const bool refresh = off_default && applied_until_ && max_step_ + 2 * lead_ + 1 >= *applied_until_;
    const bool rollback = ladder.rollback_to_step.has_value();

    if (lr_moved || weights_moved || phase_moved || loss_moved || refresh || rollback) {
      if (!lr_moved) want.lr_scale = applied_.lr_scale;
      if (!weights_moved) want.domain_weights = applied_.domain_weights;
      Burn b;
      b.run = info_.run;
      b.seq = ++seq_;
      b.state = std::string(to_string(state));
      b.basin = basin_;
      b.for_step = in.step;
      b.apply_at_step = max_step_ + lead_;
      b.expires_after_steps = lim.expiry_steps;
      b.lr_scale = want.lr_scale;
      b.domain_weights = want.domain_weights;
      b.curriculum_phase = want.curriculum_phase;
      b.loss_weights = want.loss_weights;
      b.rollback_to_step = ladder.rollback_to_step;
      b.skip_batches = ladder.skip_batches;

      std::string why = worst.severity != Severity::none ? worst.reason
                        : transition                   ? transition->reason
                        : state == OrbitState::stable  ? "on orbit"
                                                       : "holding";
      std::string reason = b.state + " (" + b.basin + "): " + why;
      if (rollback) reason += " | " + ladder.reason;
      if (lr_moved || rollback) {
        reason += " | lr x" + num(want.lr_scale);
        if (pid_measured && health && *pid_measured < *health) {
          reason += " (health " + num(*pid_measured) + " in " + std::to_string(cfg.pid.lookahead_steps) +
                    " steps by the trend, setpoint " + num(cfg.pid.setpoint) + ")";
        } else if (health) {
          reason += " (health " + num(*health) + ", setpoint " + num(cfg.pid.setpoint) + ")";
        }
      }
      if (weights_moved) reason += " | " + (mixture_note.empty() ? std::string("weights back toward base") : mixture_note);
      if (phase_moved) reason += " | " + (curriculum_note.empty() ? "curriculum phase " + std::to_string(*want.curriculum_phase) : curriculum_note);
      if (loss_moved) {
        reason += " | loss weights collapse " + num(want.loss_weights["collapse"]) + ", phi " + num(want.loss_weights["phi"]);
      }
      if (refresh && !(lr_moved || weights_moved || phase_moved || loss_moved || rollback)) reason += " | renewed before expiry";
      b.reason = std::move(reason);

      applied_ = std::move(want);
      applied_until_ = b.apply_at_step + b.expires_after_steps;
      last_burn_ = b;
      d.burn = std::move(b);
    }
  }

  if (state == OrbitState::stable) last_stable_step_ = in.step;
  last_closed_step_ = in.step;
  put(m, "lr_scale", applied_.lr_scale);
  d.observed_state.assign(to_string(state));
  d.state = mode_ == Mode::monitor ? "MONITOR" : d.observed_state;
  d.basin = basin_;
  d.forecast_basin = forecast_basin_;
  d.lr_scale = applied_.lr_scale;
  return d;
}

void Navigator::on_ack(const Ack& ack) {
  if (ack.seq <= 0 || ack.seq > seq_) return;
  if (ack.late && ack.seq > late_seq_) {
    late_seq_ = ack.seq;
    if (lead_ < config_.limits.max_apply_lead_steps) {
      ++lead_;
      queued_events_.push_back("burn #" + std::to_string(ack.seq) + " applied late by rank " + std::to_string(ack.rank) +
                               " (step " + std::to_string(ack.step) + "); apply lead now " + std::to_string(lead_) +
                               " steps");
    }
  }
  if (ack.restored_step && ack.seq > restored_seq_) {
    restored_seq_ = ack.seq;
    ladder_.on_restored(*ack.restored_step);
    start_branch(*ack.restored_step, "rank " + std::to_string(ack.rank) + " restored the checkpoint of step " +
                                         std::to_string(*ack.restored_step) + " (burn #" + std::to_string(ack.seq) +
                                         "); a new branch starts, filters start over");
  }
}

void Navigator::on_rank_silent(std::int64_t rank, double now) {
  if (!quorum_.mark_silent(rank)) return;
  queued_events_.push_back("rank " + std::to_string(rank) + " silent (daemon time " + num(now, 12) +
                           "); its data is stale");
  if (quorum_.live(info_.world_size) == 0) {
    if (auto t = machine_.mark_stale("no fresh snapshot from any rank")) {
      queued_events_.push_back(std::string(to_string(t->from)) + " -> " + std::string(to_string(t->to)) + ": " +
                               t->reason);
    }
  }
}

void Navigator::set_mode(Mode mode) {
  if (mode == mode_) return;
  mode_ = mode;
  queued_events_.push_back(mode == Mode::active ? "mode: monitor -> active" : "mode: active -> monitor");
}

void Navigator::reconfigure(NavigatorConfig config) {
  config_ = std::move(config);
  resolve_config();
  for (auto& track : tracks_) {
    if (track) track->trend.set_capacity(static_cast<std::size_t>(config_.filters.trend_window));
  }
  health_trend_.set_capacity(static_cast<std::size_t>(config_.filters.health_window));
  lead_ = std::clamp(lead_, config_.limits.apply_lead_steps, config_.limits.max_apply_lead_steps);
  mixture_.set_domains(info_.domains, config_.basin_map,
                       {config_.reweight.rate, config_.reweight.relax, config_.limits.weight_floor,
                        config_.reweight.snap});
  curriculum_.clamp_to(config_.curriculum.phases.size());
  queued_events_.push_back("configuration reloaded; controller state kept");
}

void Navigator::update_info(RunInfo info) {
  info.run = info_.run;
  info_ = std::move(info);
  resolve_actuators();
  mixture_.set_domains(info_.domains, config_.basin_map,
                       {config_.reweight.rate, config_.reweight.relax, config_.limits.weight_floor,
                        config_.reweight.snap});
  quorum_.forget_ranks_from(info_.world_size);
  if (!last_burn_) applied_ = defaults();
}

std::optional<Burn> Navigator::force_burn(const Burn& requested) {
  const BurnLimits& lim = config_.limits;
  refresh_applied();
  Burn b = requested;
  b.run = info_.run;
  b.seq = ++seq_;
  b.state = std::string(to_string(machine_.state()));
  b.basin = basin_;
  b.for_step = std::max<std::int64_t>(0, max_step_);
  b.apply_at_step = std::max(requested.apply_at_step, std::max<std::int64_t>(0, max_step_) + lead_);
  b.expires_after_steps =
      requested.expires_after_steps > 0 ? std::min(requested.expires_after_steps, lim.expiry_steps) : lim.expiry_steps;
  double lr = std::isfinite(requested.lr_scale) && requested.lr_scale > 0.0 ? requested.lr_scale : 1.0;
  lr = std::clamp(lr, applied_.lr_scale / lim.max_lr_change, applied_.lr_scale * lim.max_lr_change);
  b.lr_scale = std::clamp(lr, lim.lr_scale_min, lim.lr_scale_max);
  if (!b.domain_weights.empty()) {
    std::vector<std::string> names;
    std::vector<double> w;
    for (const auto& [name, v] : b.domain_weights) {
      names.push_back(name);
      w.push_back(v);
    }
    MixtureReweighter::project(w, lim.weight_floor);
    for (std::size_t i = 0; i < names.size(); ++i) b.domain_weights[names[i]] = w[i];
  } else {
    b.domain_weights = applied_.domain_weights;
  }
  if (b.curriculum_phase && !config_.curriculum.phases.empty()) {
    b.curriculum_phase = std::clamp<std::int64_t>(*b.curriculum_phase, 0,
                                                  static_cast<std::int64_t>(config_.curriculum.phases.size()) - 1);
  } else if (!b.curriculum_phase) {
    b.curriculum_phase = applied_.curriculum_phase;
  }
  if (b.loss_weights.empty()) b.loss_weights = applied_.loss_weights;
  for (auto& [name, v] : b.loss_weights) {
    const double max = name == "phi" ? config_.loss_weights.phi_max : config_.loss_weights.collapse_max;
    v = std::isfinite(v) ? std::clamp(v, 0.0, max) : 0.0;
  }
  if (!declared(Actuator::rollback)) {
    b.rollback_to_step.reset();
    b.skip_batches.reset();
  }
  if (b.reason.empty()) b.reason = "forced by operator";

  applied_.lr_scale = b.lr_scale;
  applied_.domain_weights = b.domain_weights;
  applied_.curriculum_phase = b.curriculum_phase;
  applied_.loss_weights = b.loss_weights;
  applied_until_ = b.apply_at_step + b.expires_after_steps;
  forced_until_ = applied_until_;
  last_burn_ = b;
  // The controller continues from the forced scale instead of snapping back.
  const double ceiling = ladder_.ceiling(lim.lr_scale_max);
  pid_.set_output(std::log(b.lr_scale), {std::log(lim.lr_scale_min), std::log(std::max(ceiling, b.lr_scale)),
                                         std::log(lim.max_lr_change), config_.pid.integral_limit,
                                         std::log(lim.max_lr_change)});
  return b;
}

}  // namespace orbit
