// SPDX-License-Identifier: Apache-2.0
#include "controllers/navigator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>

#include "controllers/basin_classifier.hpp"
#include "controllers/burn_changes.hpp"
#include "controllers/decision_text.hpp"
#include "controllers/metric_report.hpp"

namespace orbit {

namespace {

bool matches(std::string_view name, const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return true;
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return name.compare(0, p.size(), p) == 0; });
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
constexpr auto kAttnLogitGrowth = static_cast<std::size_t>(zone_metric_index("attn_logit_growth"));

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
      zones_(config_.filters.health_window) {
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
  for (std::size_t i = 0; i < std::size(kActuators); ++i) {
    if (std::find(info_.actuators.begin(), info_.actuators.end(), kActuators[i]) != info_.actuators.end()) {
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
  log_lr_scale_min_ = std::log(config_.limits.lr_scale_min);
  log_max_lr_change_ = std::log(config_.limits.max_lr_change);
  half_log_deadband_ = 0.5 * std::log1p(config_.limits.lr_deadband);
  for (std::size_t i = 0; i < kZoneMetricCount; ++i) {
    auto it = config_.zones.find(kZoneMetrics[i]);
    zone_config_[i] = it == config_.zones.end() ? std::nullopt : std::optional<ZoneConfig>(it->second);
  }
  rule_metrics_.clear();
  for (const BasinRule& rule : config_.basin_rules) {
    auto& indices = rule_metrics_.emplace_back();
    for (const auto& metric : rule.metrics) indices.push_back(zone_metric_index(metric));
  }
  basin_terms_ = basin_terms(config_.basin_rules, rule_metrics_);
  for (SpectrumSlot& slot : spectrum_slots_) {
    slot.aggregated = matches(slot.name, config_.signals.spectra);
    slot.signature = matches(slot.name, config_.signals.signature_spectra);
  }
}

std::uint32_t Navigator::spectrum_slot(std::string_view name, std::size_t& cursor) {
  // Adapters send the same names in the same order every snapshot: the next slot
  // is almost always the one.
  if (cursor < spectrum_slots_.size() && spectrum_slots_[cursor].name == name) return static_cast<std::uint32_t>(cursor++);
  for (std::size_t i = 0; i < spectrum_slots_.size(); ++i) {
    if (spectrum_slots_[i].name == name) {
      cursor = i + 1;
      return static_cast<std::uint32_t>(i);
    }
  }
  spectrum_slots_.push_back({std::string(name), matches(name, config_.signals.spectra),
                             matches(name, config_.signals.signature_spectra)});
  cursor = spectrum_slots_.size();
  return static_cast<std::uint32_t>(spectrum_slots_.size() - 1);
}

void Navigator::reduce(const Snapshot& s, const std::vector<SpectralMetrics>* spectral,
                       const std::vector<std::string_view>* names, Sample& out) {
  // A run that keeps inventing names must not grow the slots without bound; they
  // are only a cache of names, so they start over when no waiting sample uses them.
  if (spectrum_slots_.size() > 4096 && !quorum_.waiting()) spectrum_slots_.clear();
  out.step = s.step;
  out.time = s.time;
  out.loss = s.loss;
  out.grad_norm = s.grad_norm;
  out.lr = s.lr;
  out.schedule_lr = s.schedule_lr;
  out.loop_rate = s.loop_rate;
  out.attn_logit_max.reset();
  static const std::string kAttnLogitMax = "attn_logit_max";  // not a std::string built per snapshot
  if (auto it = s.scalars.find(kAttnLogitMax); it != s.scalars.end()) out.attn_logit_max = it->second;
  out.domains.clear();
  out.spectra.clear();
  std::size_t cursor = 0;
  if (spectral && spectral->size() != s.spectra.size()) spectral = nullptr;
  if (spectral && names && names->size() == spectral->size()) {
    for (std::size_t i = 0; i < names->size(); ++i) out.spectra.push_back({spectrum_slot((*names)[i], cursor), (*spectral)[i]});
    return;
  }
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
    // Ranks run one schedule; the largest is the conservative reading.
    if (s.lr && (!out.lr || *s.lr > *out.lr)) out.lr = s.lr;
    if (s.schedule_lr && (!out.schedule_lr || *s.schedule_lr > *out.schedule_lr)) out.schedule_lr = s.schedule_lr;
    if (s.attn_logit_max && (!out.attn_logit_max || *s.attn_logit_max > *out.attn_logit_max)) {
      out.attn_logit_max = s.attn_logit_max;
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

SpectralMetrics Navigator::add_spectral_metrics(const Sample& sample, MetricSink* metrics) const {
  SpectralAggregator selected(config_.signals.aggregation);
  for (const auto& [slot, m] : sample.spectra) {
    if (!m.valid) continue;
    const SpectrumSlot& spectrum = spectrum_slots_[slot];
    put_spectral_metrics(metrics, &spectrum.name, m);
    if (spectrum.aggregated) selected.add(m);
  }
  const SpectralMetrics agg = selected.result();
  if (agg.valid) put_spectral_metrics(metrics, nullptr, agg);
  return agg;
}

double Navigator::scale_ceiling() const {
  const BurnLimits& lim = config_.limits;
  double ceiling = ladder_.ceiling(lim.lr_scale_max);
  if (auto cap = lr_cap_.scale_limit(schedule_lr_)) ceiling = std::min(ceiling, *cap);
  return std::clamp(ceiling, lim.lr_scale_min, lim.lr_scale_max);
}

void Navigator::refresh_applied() {
  // Past its expiry the adapter is back on the trainer's own schedule.
  if (last_burn_ && applied_until_ && max_step_ >= *applied_until_) {
    applied_ = defaults();
    applied_until_.reset();
    forced_until_.reset();
    // The controller starts again from what the adapter now applies.
    const double ceiling = scale_ceiling();
    pid_.set_output(std::min(0.0, std::log(ceiling)),
                    {std::log(config_.limits.lr_scale_min), std::log(ceiling), std::log(config_.limits.max_lr_change),
                     config_.pid.integral_limit, std::log(config_.limits.max_lr_change)});
  }
}

void Navigator::start_branch(std::int64_t last_closed_step, const std::string& why) {
  quorum_.start_branch(last_closed_step);
  last_closed_step_ = last_closed_step;
  max_step_ = last_closed_step;
  zones_.reset();
  active_findings_.clear();
  scalars_.reset();
  signature_.reset();
  attn_growth_.restart_from_checkpoint();
  early_.reset();
  restart_pending_ = restart_lr_.has_value();
  restored_branch_starts_ = ladder_.rollbacks() > 0;
  restored_from_.reset();
  restored_loss_.reset();
  // What the adapter applies now keeps running from the new branch's start.
  if (applied_until_) applied_until_ = last_closed_step + config_.limits.expiry_steps;
  queued_events_.push_back(why);
}

void clear_decision(Decision& d) {
  d.state.clear();
  d.basin.clear();
  d.forecast_basin.clear();
  d.basin_age_steps.reset();
  d.metrics.clear();
  d.burn.reset();
  d.events.clear();
  d.lr_scale = 1.0;
  d.step_closed = false;
  d.observed_state.clear();
}

Decision Navigator::on_snapshot(const Snapshot& snapshot) {
  Decision out;
  snapshot_decision(snapshot, nullptr, nullptr, out);
  return out;
}

Decision Navigator::on_snapshot(const Snapshot& snapshot, const std::vector<SpectralMetrics>& spectral,
                                const std::vector<std::string_view>* names) {
  Decision out;
  snapshot_decision(snapshot, &spectral, names, out);
  return out;
}

void Navigator::on_snapshot_into(const Snapshot& snapshot, const std::vector<SpectralMetrics>* spectral,
                                 const std::vector<std::string_view>* names, Decision& out) {
  snapshot_decision(snapshot, spectral, names, out);
}

// `out` is a fresh Decision: the stages write into it where it lies, instead of
// returning one that each caller moves on (two moves and destructions per snapshot).
void Navigator::snapshot_decision(const Snapshot& snapshot, const std::vector<SpectralMetrics>* spectral,
                                  const std::vector<std::string_view>* names, Decision& out) {
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
    zones_.restart_trends();
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
  reduce(snapshot, spectral, names, sample);
  const bool late = last_closed_step_ && snapshot.step <= *last_closed_step_;
  if (!late && world == 1) {
    // The common case: one rank, its step closes now.
    max_step_ = std::max(max_step_, snapshot.step);
    decide(sample, snapshot.domains, out);
    if (!out.events.empty()) {
      for (auto& e : out.events) events.push_back(std::move(e));
    }
    out.events = std::move(events);
    return;
  }
  std::vector<Decision> closed;
  if (!late) {
    max_step_ = std::max(max_step_, snapshot.step);
    Sample& waiting = quorum_.add(snapshot.step, snapshot.rank, snapshot.time);
    waiting = sample;
    waiting.domains = snapshot.domains;
    close_ready_steps(snapshot.time, closed);
  }

  if (closed.empty()) {
    // Waiting for the other ranks (or a late snapshot): report, do not act.
    refresh_applied();
    MetricSink* m = start_metrics();
    add_spectral_metrics(sample, m);
    put_metric(m, "loss", sample.loss);
    if (sample.grad_norm) put_metric(m, "grad_norm", *sample.grad_norm);
    if (sample.loop_rate) put_metric(m, "loop_rate", *sample.loop_rate);
    put_metric(m, "lr_scale", applied_.lr_scale);
    finish_metrics(out.metrics);
    out.observed_state = std::string(to_string(machine_.state()));
    if (mode_ == Mode::monitor) out.state.assign("MONITOR");
    else out.state = out.observed_state;
    out.basin = basin_;
    out.forecast_basin = forecast_basin_;
    out.basin_age_steps = basin_age(snapshot.step);
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
}

void Navigator::close_ready_steps(double now, std::vector<Decision>& out) {
  const auto through = quorum_.ready_through(config_.distributed, info_.world_size, max_step_, now);
  if (!through) return;
  while (auto pending = quorum_.pop_through(*through)) {
    const Sample merged = merge(*pending);
    decide(merged, merged.domains, out.emplace_back());
  }
}

// What the stages hand on, one closed step at a time.
struct Navigator::SignalReading {
  ScalarReading scalars;
  SignatureReading signature;
  std::optional<double> attn_logit_growth;  // doublings per 100 steps, on probed steps
  bool attn_logit_danger = false;            // ... and in its danger zone (an alarming zone)
  bool early_corroborated = true;            // the run corroborates an early hidden-state alarm
};

struct Navigator::StateStep {
  BasinCall basin;
  BasinCall forecast_basin;
  Finding worst;  // the most severe finding of the step (severity none: none)
  std::optional<Transition> transition;
  OrbitState state = OrbitState::stable;
  bool episode_started = false;   // this step left STABLE
  bool entered_critical = false;
};

struct Navigator::ActuatorPlan {
  LadderAction ladder;
  PidLimits pid_limits;
  std::optional<double> pid_measured;  // the health the PID read (none: it did not run)
  ActuatorSettings wanted;
  std::string mixture_note;
  std::string curriculum_note;
};

void Navigator::decide(const Sample& in, const std::map<std::string, DomainStats>& domains, Decision& d) {
  d.step_closed = true;
  ++tick_;
  // Training steps since the last decision (snapshots may come every N steps):
  // rates given per step (the PID's integral, the lr's return, the ceiling's
  // relaxation, spike confirmation) scale by it.
  const double elapsed =
      last_closed_step_ ? std::clamp(static_cast<double>(in.step - *last_closed_step_), 1.0, 1000.0) : 1.0;
  MetricSink* m = start_metrics();
  std::vector<Finding> findings;

  const SignalReading signals = read_signals(in, domains, elapsed, m, findings);
  const ZoneReading zones = read_zones(in, signals, m, findings, d.events);
  const StateStep state = step_state(in.step, zones, findings, d.events);
  // An alarm (the state rising into WARNING or CRITICAL) puts the lr in effect off limits.
  const bool alarm = state.transition && level(state.transition->to) >= level(OrbitState::warning) &&
                     level(state.transition->to) > level(state.transition->from);
  const std::optional<double> cap_before = lr_cap_.cap();
  if (in.schedule_lr) schedule_lr_ = in.schedule_lr;
  const std::optional<double> lr_in_effect =
      in.lr ? in.lr : (in.schedule_lr ? std::optional<double>(*in.schedule_lr * applied_.lr_scale) : std::nullopt);
  // Inside a rollback's grace the restored run passes its early transient again at
  // the restart lr the ladder chose below the cap: an alarm there says nothing
  // against the cap's lr, and halving the cap on it held setting C's restored runs
  // at ~1e-3 to the end (calibration seed 4, unseen 6003). The lr cut and the
  // patience rule still act on it; the first alarm of a run always sets the cap.
  const bool graced_alarm = alarm && cap_before && ladder_.in_grace(tick_, config_.rollback);
  lr_cap_.update(alarm && !graced_alarm, lr_in_effect, state.state == OrbitState::stable, elapsed,
                 config_.lr_ceiling);
  if (graced_alarm) {
    d.events.push_back("alarm inside the rollback's grace: the lr cap stays " + num(*cap_before));
  }
  if (lr_cap_.cap() && (!cap_before || *lr_cap_.cap() < *cap_before)) {
    d.events.push_back("lr cap " + num(*lr_cap_.cap()) + " at step " + std::to_string(in.step) + ": " +
                       num(config_.lr_ceiling.share) + " x the lr in effect at the alarm (" + num(*lr_in_effect) +
                       "), kept through the schedule");
  }
  if (lr_cap_.cap()) put_metric(m, "lr_cap", *lr_cap_.cap());

  refresh_applied();
  // An operator's burn is left alone while the run is calm, until it expires.
  const bool hold_forced = forced_until_ && max_step_ < *forced_until_ && state.state == OrbitState::stable;
  if (forced_until_ && !hold_forced) forced_until_.reset();
  if (mode_ == Mode::active && !hold_forced) {
    const ActuatorPlan plan = plan_actuators(in, domains, elapsed, signals, zones, state, d.events);
    d.burn = compose_burn(in.step, plan, state, zones);
  }

  if (state.state == OrbitState::stable) last_stable_step_ = in.step;
  last_closed_step_ = in.step;
  put_metric(m, "lr_scale", applied_.lr_scale);
  d.observed_state.assign(to_string(state.state));
  // Not `cond ? "MONITOR" : d.observed_state`: that builds a temporary std::string
  // (copied, moved, destroyed) every decision.
  if (mode_ == Mode::monitor) d.state.assign("MONITOR");
  else d.state = d.observed_state;
  d.basin = basin_;
  d.forecast_basin = forecast_basin_;
  d.basin_age_steps = basin_age(in.step);
  d.lr_scale = applied_.lr_scale;
  finish_metrics(d.metrics);
}

MetricSink* Navigator::start_metrics() {
  if (!report_metrics_) return nullptr;
  metric_sink_.begin();
  return &metric_sink_;
}

void Navigator::finish_metrics(std::map<std::string, double>& metrics) {
  if (!report_metrics_) return;
  metric_sink_.seal();
  if (metrics_in_sink_) return;  // the caller reads last_metrics()
  if (metrics.empty() && !spare_metrics_.empty()) metrics.swap(spare_metrics_);
  metric_sink_.finish(metrics);
}

// ---- signals: loss and ln(grad norm) through robust statistics, the collapse signature
Navigator::SignalReading Navigator::read_signals(const Sample& in, const std::map<std::string, DomainStats>& domains,
                                                 double elapsed, MetricSink* m, std::vector<Finding>& findings) {
  SignalReading out;
  out.scalars = scalars_.update(in.step, in.loss, in.grad_norm, static_cast<std::int64_t>(elapsed), config_.filters,
                                m, findings);
  if (in.loop_rate) put_metric(m, "loop_rate", *in.loop_rate);
  if (in.attn_logit_max) put_metric(m, "attn_logit_max", *in.attn_logit_max);
  out.attn_logit_growth = attn_growth_.update(in.step, in.attn_logit_max, config_.signals.attn_logit);
  if (out.attn_logit_growth) put_metric(m, "attn_logit_growth", *out.attn_logit_growth);
  // Early in training a hidden-state alarm must be corroborated by the run: its loss
  // stalls, or its attention logits blow up (a healthy transient's loss keeps falling).
  std::optional<bool> attn_danger;
  if (const auto& zc = zone_config_[kAttnLogitGrowth]; zc && zc->alarm && out.attn_logit_growth) {
    attn_danger = zc->band.classify(*out.attn_logit_growth) == Zone::danger;
  }
  const EarlyCorroborationConfig early{config_.signals.signature_early_loss_fall,
                                       config_.signals.signature_confirm_steps};
  early_.update(in.step, scalars_.loss_level(), attn_danger, early);
  if (!first_step_) first_step_ = in.step;
  if (restored_branch_starts_) {
    restored_branch_starts_ = false;
    restored_from_ = in.step;
  }
  if (restored_from_ && !restored_loss_ && in.step >= *restored_from_ + config_.signals.signature_confirm_steps) {
    restored_loss_ = scalars_.loss_level();
    restored_loss_step_ = in.step;
  }
  out.attn_logit_danger = attn_danger.value_or(false);
  // After a rollback the restored run's loss falls slowly because its lr restarts
  // low: only its attention logits corroborate (calibration C seeds 4, 7, 9: hidden-state
  // episodes 30-70 steps into the restored branch, at 4-8e-4, cut the lr again).
  out.early_corroborated = early_.corroborated(early, ladder_.rollbacks() == 0);
  if (m) {
    for (const auto& [name, stats] : domains) {
      if (stats.loss) put_metric(m, "domain." + name + ".loss", *stats.loss);
    }
  }
  // The first signature spectrum (in name order) that shows it speaks.
  bool checked = false;  // this snapshot carries a signature spectrum
  std::optional<std::string> seen;
  for (const auto& [slot, sm] : in.spectra) {
    if (!sm.valid || !spectrum_slots_[slot].signature) continue;
    checked = true;
    seen = CollapseSignature::sighting(spectrum_slots_[slot].name, sm, config_.signals);
    if (seen) break;
  }
  out.signature =
      signature_.update(in.step, checked, std::move(seen), config_.signals, m, findings, out.early_corroborated);
  return out;
}

// ---- zones: smoothing, zones with hysteresis, trend forecast, health
ZoneReading Navigator::read_zones(const Sample& in, const SignalReading& signals, MetricSink* m,
                                  std::vector<Finding>& findings, std::vector<std::string>& events) {
  const std::int64_t confirm = config_.filters.spike_confirm_steps;
  // Indexed like kZoneMetrics: no name is looked up per snapshot.
  PerZoneMetric<double> values;
  spectral_values(add_spectral_metrics(in, m), values);  // aggregated over signals.spectra
  if (in.loop_rate) values[kLoopRate] = *in.loop_rate;
  if (signals.attn_logit_growth) values[kAttnLogitGrowth] = *signals.attn_logit_growth;
  if (auto z = scalars_.held_loss_z(confirm)) values[kLossZ] = *z;
  if (auto z = scalars_.held_grad_norm_z(confirm)) values[kGradNormZ] = *z;
  const ZoneReading zones =
      zones_.update(in.step, values, zone_config_, config_,
                    scalars_.alarm_margins(zone_config_, config_.filters, signals.scalars.jump),
                    signals.scalars.nonfinite, m, findings, signals.early_corroborated,
                    signals.scalars.sparse_loss_ratio);
  // An isolated z-spike is reported, not acted on (healthy runs have them).
  for (const auto& [mi, z] : {std::pair{kLossZ, signals.scalars.loss_z}, std::pair{kGradNormZ, signals.scalars.grad_norm_z}}) {
    const std::optional<ZoneConfig>& zc = zone_config_[mi];
    if (!z || !zc || !zc->alarm) continue;
    if (zc->band.classify(*z) == Zone::danger && zones.now[mi].value_or(Zone::good) != Zone::danger) {
      const std::optional<double>& ratio = signals.scalars.sparse_loss_ratio;
      if (mi == kLossZ && ratio && *ratio < config_.filters.loss_spike_min_ratio) {
        events.push_back("immaterial " + metric_label(kZoneMetrics[mi]) + " " + num(*z) + " at step " +
                         std::to_string(in.step) + " (one sparse snapshot, the loss " + num(*ratio) +
                         "x its level; a spike from " + num(config_.filters.loss_spike_min_ratio) + "x)");
        continue;
      }
      events.push_back("isolated " + metric_label(kZoneMetrics[mi]) + " " + num(*z) + " at step " +
                       std::to_string(in.step) + " (acted on only if it holds " + std::to_string(confirm) + " steps)");
    }
  }
  return zones;
}

// ---- basin and state: the zones' basin now and forecast, the worst finding moves the state machine
Navigator::StateStep Navigator::step_state(std::int64_t step, const ZoneReading& zones,
                                           const std::vector<Finding>& findings, std::vector<std::string>& events) {
  StateStep out;
  for (const auto& f : findings) {
    if (f.severity > out.worst.severity) out.worst = f;
  }
  classify_basins(config_.basin_rules, basin_terms_, zones.now, zones.forecast, out.basin, out.forecast_basin);
  // UNKNOWN means no rule metric had a value this step (a step without spectra):
  // the reported basin keeps the last evidence's, with its age. The actuators read
  // this step's own call (out.basin) and are not moved by the held one.
  if (out.basin.basin != Basin::unknown) {
    const std::string_view name = to_string(out.basin.basin);
    if (basin_ != name) basin_.assign(name);  // rarely changes: no copy per step
    basin_evidence_step_ = step;
  }
  if (out.forecast_basin.basin != Basin::unknown) {
    const std::string_view name = to_string(out.forecast_basin.basin);
    if (forecast_basin_ != name) forecast_basin_.assign(name);
  }
  const OrbitState before = machine_.state();
  out.transition = machine_.update(step, out.worst.severity, out.worst.reason, config_.states);
  out.state = machine_.state();
  const auto& transition = out.transition;
  if (transition) {
    events.push_back(std::string(to_string(transition->from)) + " -> " + std::string(to_string(transition->to)) +
                     " at step " + std::to_string(step) + ": " + transition->reason);
  }
  // New alarms are reported once, also when the state does not change (a NaN in
  // a run that is already CRITICAL).
  std::set<std::string> active;
  for (const auto& f : findings) {
    active.insert(f.key);
    if (active_findings_.count(f.key) || (transition && f.reason == transition->reason)) continue;
    if (f.severity >= Severity::warning) events.push_back("alarm at step " + std::to_string(step) + ": " + f.reason);
  }
  active_findings_ = std::move(active);
  out.episode_started = before == OrbitState::stable && out.state != OrbitState::stable;
  out.entered_critical = transition && transition->to == OrbitState::critical;
  return out;
}

// ---- actuators: recovery ladder, PID on the lr scale, mixture, curriculum, loss weights
Navigator::ActuatorPlan Navigator::plan_actuators(const Sample& in, const std::map<std::string, DomainStats>& domains,
                                                  double elapsed, const SignalReading& signals,
                                                  const ZoneReading& zones, const StateStep& st,
                                                  std::vector<std::string>& events) {
  ActuatorPlan plan;
  steer_lr(in.step, elapsed, signals, zones, st, plan, events);
  steer_data(domains, zones, st, plan, events);
  plan.wanted = wanted_settings(plan);
  return plan;
}

// The recovery ladder and the PID: where the lr scale should go.
void Navigator::steer_lr(std::int64_t step, double elapsed, const SignalReading& signals, const ZoneReading& zones,
                         const StateStep& st, ActuatorPlan& plan, std::vector<std::string>& events) {
  const NavigatorConfig& cfg = config_;
  const BurnLimits& lim = cfg.limits;
  const OrbitState state = st.state;
  const std::optional<double>& health = zones.health;

  // Recovery ladder first: a rollback lowers the ceiling the PID works under.
  // A confirmed signature began at its first sighting: roll back to before it.
  const bool signature = signals.signature.confirmed;
  const std::optional<std::int64_t>& since = signature_.since();
  std::optional<std::int64_t> anchor = last_stable_step_;
  if (signature && since && (!anchor || *since - 1 < *anchor)) anchor = std::max<std::int64_t>(0, *since - 1);
  std::optional<std::string> attn_danger;
  if (signals.attn_logit_danger && signals.attn_logit_growth) {
    attn_danger = "attn logit growth " + num(*signals.attn_logit_growth) + " doublings/100 steps";
  }
  // A restored branch whose loss has not fallen since its restore (once past the
  // grace) never left the collapse its checkpoint carried.
  std::optional<std::string> stalled;
  const std::optional<double> loss_level = scalars_.loss_level();
  if (restored_loss_ && loss_level && cfg.rollback.stalled_branch_fall > 0.0 &&
      step - *restored_from_ >= cfg.rollback.signature_grace_steps &&
      *loss_level > (1.0 - cfg.rollback.stalled_branch_fall) * *restored_loss_) {
    stalled = "smoothed loss " + num(*restored_loss_) + " at step " + std::to_string(restored_loss_step_) + ", " +
              num(*loss_level) + " now";
  }
  plan.ladder = ladder_.update({tick_, step, state, st.episode_started, anchor, signature, signals.signature.text,
                                std::move(attn_danger), signals.scalars.nonfinite, health,
                                declared(Actuator::rollback), elapsed, std::move(stalled),
                                first_step_.value_or(1) - 1},
                               cfg.rollback, lim.lr_scale_min, lim.lr_scale_max);
  const LadderAction& ladder = plan.ladder;
  if (ladder.event) events.push_back(*ladder.event);
  const double ceiling = scale_ceiling();
  // Cuts as fast as a burn may move; raises never faster than the return rate.
  const double rate = elapsed * std::log(2.0) / static_cast<double>(cfg.pid.return_steps_per_doubling);
  if (!(ceiling == last_ceiling_)) {  // the ceiling moves rarely: its log is kept
    last_ceiling_ = ceiling;
    log_last_ceiling_ = std::log(ceiling);
  }
  plan.pid_limits = {log_lr_scale_min_, log_last_ceiling_, log_max_lr_change_, cfg.pid.integral_limit,
                     std::min(rate, log_max_lr_change_)};
  const PidLimits& pl = plan.pid_limits;
  if (state == OrbitState::stable) {
    // Bumpless return to the ceiling (1.0 unless a rollback lowered it).
    pid_.relax_toward(pl.output_max, rate, pl);
    if (std::abs(pid_.output() - pl.output_max) < half_log_deadband_) pid_.set_output(pl.output_max, pl);
  } else if (health) {
    // DRIFTING acts on where the trends say health will be; the other states on
    // where it is.
    const double measured =
        state == OrbitState::drifting && zones.health_ahead ? std::min(*health, *zones.health_ahead) : *health;
    const double error = cfg.pid.setpoint - measured;
    const bool went_down = st.transition && level(st.transition->to) < level(st.transition->from);
    if (went_down) pid_.track(error, zones.health_slope, cfg.pid.gains(state), pl);
    pid_.update(error, elapsed, zones.health_slope, cfg.pid.gains(state), pl);
    plan.pid_measured = measured;
  }
  // The restored run restarts at restart_scale x the new ceiling and climbs back
  // at the return rate: the warmup whose absence let it collapse.
  if (ladder.rollback_to_step) {
    pid_.set_output(std::min(pid_.output(), pl.output_max + std::log(cfg.rollback.restart_scale)), pl);
    // That restart is meant against the lr that collapsed the run. Under a rising
    // schedule (a warmup) the restored step's own schedule lr is lower than the
    // alarm's, and the same scale on it would cut twice (setting C: rolled back from
    // step 40 to 9, 0.05 x a schedule at 9/40 of the alarm's ran the run ~100 steps
    // below the healthy fixed lr). Keep it in absolute units for the new branch.
    if (schedule_lr_) restart_lr_ = std::exp(pid_.output()) * *schedule_lr_;
    rewarm_.reset();
  } else if (restart_pending_) {
    restart_pending_ = false;
    if (restart_lr_ && schedule_lr_) {
      const double scale = std::clamp(*restart_lr_ / *schedule_lr_, lim.lr_scale_min, ceiling);
      if (scale > 1.001 * std::exp(pid_.output())) {  // a constant schedule: unchanged, no event
        pid_.set_output(std::log(scale), pl);
        events.push_back("restart lr " + num(*restart_lr_) + " kept through the restored schedule: lr x" +
                         num(scale) + " at step " + std::to_string(step));
      }
    }
    if (cfg.rollback.rewarm_steps > 0) {
      rewarm_ = Rewarm{restart_lr_.value_or(std::exp(pid_.output())), step};
      events.push_back("re-warmup from lr " + num(rewarm_->from_lr) + " to the ceiling over " +
                       std::to_string(cfg.rollback.rewarm_steps) + " steps from step " + std::to_string(step));
    }
    restart_lr_.reset();
  } else if (rewarm_) {
    rewarm(step, health, pl, events);
  }
}

// The restored branch starts from a checkpoint taken before the alarm, at the
// restart lr. Without this the lr waited there until the run was STABLE again (the
// restored run's zones and z-scores start empty: ~25 steps with no health reading)
// and then doubled every return_steps_per_doubling steps: the efficacy suite's
// setting A spent ~145 steps below its ceiling (5e-4 -> 2.6e-3) after losing ~32 to
// the rollback. Instead the absolute lr climbs linearly, like a trainer's warmup,
// from the restart lr to what the ceilings allow, over rewarm_steps training steps,
// while the restored run shows nothing wrong (no health reading yet, or health at
// or above the setpoint). The first health reading below the setpoint ends it: the
// PID and the state machine act as before. Only raises: never above the ceilings.
// rollback.rewarm_steps (default 100; 0: off). Its B regression (calibration seed 2:
// 2.228) was attn_logit_growth fitting the restart's near-zero logits, fixed there.
void Navigator::rewarm(std::int64_t step, const std::optional<double>& health, const PidLimits& pl,
                       std::vector<std::string>& events) {
  const NavigatorConfig& cfg = config_;
  if (health && *health < cfg.pid.setpoint) {
    events.push_back("re-warmup ended at step " + std::to_string(step) + ": health " + num(*health) +
                     " below the setpoint");
    rewarm_.reset();
    return;
  }
  const double schedule = schedule_lr_.value_or(1.0);
  const double ceiling = std::exp(pl.output_max);
  const double done = std::clamp(static_cast<double>(step - rewarm_->start_step) /
                                     static_cast<double>(cfg.rollback.rewarm_steps),
                                 0.0, 1.0);
  const double top = ceiling * schedule;
  const double lr = rewarm_->from_lr + (std::max(top, rewarm_->from_lr) - rewarm_->from_lr) * done;
  const double scale = std::clamp(lr / schedule, cfg.limits.lr_scale_min, ceiling);
  if (scale > std::exp(pid_.output())) pid_.set_output(std::log(scale), pl);
  if (done >= 1.0) rewarm_.reset();
}

// Mixture, curriculum, loss weights: away from the basin the run heads for.
void Navigator::steer_data(const std::map<std::string, DomainStats>& domains, const ZoneReading& zones,
                           const StateStep& st, ActuatorPlan& plan, std::vector<std::string>& events) {
  const NavigatorConfig& cfg = config_;
  const ReweightParams rw{cfg.reweight.rate, cfg.reweight.relax, cfg.limits.weight_floor, cfg.reweight.snap};
  const OrbitState state = st.state;
  std::optional<Basin> heading;
  const Basin now = st.basin.basin, ahead = st.forecast_basin.basin;
  if (now == Basin::semantic_loop || now == Basin::token_collapse) {
    heading = now;
  } else if (ahead == Basin::semantic_loop || ahead == Basin::token_collapse) {
    heading = ahead;
  }
  auto pressure = [&](Basin basin) { return basin_pressure(basin, cfg.basin_rules, rule_metrics_, zones.margins); };
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
      plan.mixture_note = "weights away from " + std::string(to_string(*heading));
    }
  }
  if (declared(Actuator::curriculum) && !cfg.curriculum.phases.empty()) {
    if (auto e = curriculum_.update(state, st.entered_critical, cfg.curriculum.phases,
                                    {cfg.curriculum.advance_after_stable_steps})) {
      events.push_back(*e);
      plan.curriculum_note = *e;
    }
  }
  if (declared(Actuator::loss_weights)) {
    const double phi = zones.margins[kPhiProximity] ? std::clamp(1.0 - *zones.margins[kPhiProximity], 0.0, 1.0) : 0.0;
    loss_weights_.update(state, pressure(Basin::token_collapse), phi, cfg.loss_weights);
  }
}

// What the adapter should apply, within the limits of one burn.
ActuatorSettings Navigator::wanted_settings(const ActuatorPlan& plan) const {
  const NavigatorConfig& cfg = config_;
  const BurnLimits& lim = cfg.limits;
  ActuatorSettings want;
  if (declared(Actuator::lr)) {
    const double desired = std::exp(pid_.output());
    // A rollback restarts the run from a checkpoint, so its cut is not rationed:
    // the restored run's first steps (Adam's largest) must not run at the lr that
    // collapsed it.
    const double lowest = plan.ladder.rollback_to_step ? lim.lr_scale_min : applied_.lr_scale / lim.max_lr_change;
    want.lr_scale = std::clamp(desired, lowest, applied_.lr_scale * lim.max_lr_change);
    want.lr_scale = std::clamp(want.lr_scale, lim.lr_scale_min, lim.lr_scale_max);
    if (std::abs(desired - want.lr_scale) < 1e-12) want.lr_scale = desired;
  }
  if (declared(Actuator::domain_weights) && !mixture_.empty()) want.domain_weights = mixture_.weights();
  if (declared(Actuator::curriculum) && !cfg.curriculum.phases.empty()) want.curriculum_phase = curriculum_.phase();
  if (declared(Actuator::loss_weights)) want.loss_weights = loss_weights_.weights();
  return want;
}

// ---- burn: only when the wanted settings differ enough from what is applied
std::optional<Burn> Navigator::compose_burn(std::int64_t step, const ActuatorPlan& plan, const StateStep& st,
                                            const ZoneReading& zones) {
  const NavigatorConfig& cfg = config_;
  const BurnLimits& lim = cfg.limits;
  const std::optional<double>& health = zones.health;
  ActuatorSettings want = plan.wanted;
  // The lr lands exactly only on lr_scale_max, the one ceiling that stays put: the
  // rollback ceiling relaxes every STABLE step and the absolute lr cap's scale
  // limit moves with the trainer's schedule (and relaxes too), so landing exactly
  // on either would be a burn per step. Following them is rationed by the deadband.
  const BurnChanges moved = burn_changes(want, applied_, defaults(), lim, lim.lr_scale_max);
  const bool refresh = moved.off_default && applied_until_ && max_step_ + 2 * lead_ + 1 >= *applied_until_;
  const bool rollback = plan.ladder.rollback_to_step.has_value();
  if (!(moved.any_moved() || refresh || rollback)) return std::nullopt;

  if (!moved.lr) want.lr_scale = applied_.lr_scale;
  if (!moved.domain_weights) want.domain_weights = applied_.domain_weights;
  if (!moved.loss_weights) want.loss_weights = applied_.loss_weights;
  Burn b;
  b.run = info_.run;
  b.seq = ++seq_;
  b.state = std::string(to_string(st.state));
  b.basin = basin_;
  b.basin_age_steps = basin_age(step);
  b.for_step = step;
  b.apply_at_step = max_step_ + lead_;
  b.expires_after_steps = lim.expiry_steps;
  b.lr_scale = want.lr_scale;
  b.domain_weights = want.domain_weights;
  b.curriculum_phase = want.curriculum_phase;
  b.loss_weights = want.loss_weights;
  b.rollback_to_step = plan.ladder.rollback_to_step;
  b.skip_batches = plan.ladder.skip_batches;

  std::string why = st.worst.severity != Severity::none ? st.worst.reason
                    : st.transition                     ? st.transition->reason
                    : st.state == OrbitState::stable    ? "on orbit"
                                                        : "holding";
  std::string reason = b.state + " (" + b.basin + "): " + why;
  if (rollback) reason += " | " + plan.ladder.reason;
  if (moved.lr || rollback) {
    reason += " | lr x" + num(want.lr_scale);
    if (plan.pid_measured && health && *plan.pid_measured < *health) {
      reason += " (health " + num(*plan.pid_measured) + " in " + std::to_string(cfg.pid.lookahead_steps) +
                " steps by the trend, setpoint " + num(cfg.pid.setpoint) + ")";
    } else if (health) {
      reason += " (health " + num(*health) + ", setpoint " + num(cfg.pid.setpoint) + ")";
    }
  }
  if (moved.domain_weights) {
    reason += " | " + (plan.mixture_note.empty() ? std::string("weights back toward base") : plan.mixture_note);
  }
  if (moved.curriculum_phase) {
    reason += " | " + (plan.curriculum_note.empty() ? "curriculum phase " + std::to_string(*want.curriculum_phase)
                                                    : plan.curriculum_note);
  }
  if (moved.loss_weights) {
    reason += " | loss weights collapse " + num(want.loss_weights["collapse"]) + ", phi " + num(want.loss_weights["phi"]);
  }
  if (refresh && !(moved.any_moved() || rollback)) reason += " | renewed before expiry";
  b.reason = std::move(reason);

  applied_ = std::move(want);
  applied_until_ = b.apply_at_step + b.expires_after_steps;
  last_burn_ = b;
  return b;
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
  queued_events_.push_back("mode: " + std::string(to_string(mode_)) + " -> " + std::string(to_string(mode)));
  mode_ = mode;
}

void Navigator::reconfigure(NavigatorConfig config) {
  config_ = std::move(config);
  resolve_config();
  zones_.set_windows(config_.filters.trend_window, config_.filters.health_window);
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

std::optional<std::string> Navigator::operator_burn_problem(const Burn& requested) const {
  if (!requested.curriculum_phase) return std::nullopt;
  const auto phases = static_cast<std::int64_t>(config_.curriculum.phases.size());
  if (phases == 0) return "curriculum_phase given but the config has no curriculum phases";
  if (*requested.curriculum_phase < 0 || *requested.curriculum_phase >= phases) {
    return "curriculum_phase " + std::to_string(*requested.curriculum_phase) + " does not exist (phases 0-" +
           std::to_string(phases - 1) + ")";
  }
  return std::nullopt;
}

std::optional<std::int64_t> Navigator::basin_age(std::int64_t step) const {
  if (!basin_evidence_step_) return std::nullopt;
  return std::max<std::int64_t>(0, step - *basin_evidence_step_);
}

std::optional<Burn> Navigator::force_burn(const Burn& requested) {
  const BurnLimits& lim = config_.limits;
  refresh_applied();
  Burn b = requested;
  b.run = info_.run;
  b.seq = ++seq_;
  b.state = std::string(to_string(machine_.state()));
  b.basin = basin_;
  b.basin_age_steps = basin_age(std::max<std::int64_t>(0, max_step_));
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
