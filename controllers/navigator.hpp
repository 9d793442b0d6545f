// SPDX-License-Identifier: Apache-2.0
#pragma once
// The Navigator: one per run. It turns the ordered stream of a run's snapshots
// and ACKs into decisions: metrics → filters and trends → zones → basin → orbit
// state → actuators (PID on the lr scale, mixture reweighting, curriculum, loss
// weights, recovery ladder) → at most one burn per closed step.
//
// Pure and deterministic: no clock, no I/O, no logging. Time and step come in with
// the input; events go out as strings in the Decision. The same config and the
// same sequence of calls give bit-identical decisions, which is what journal
// replay and crash recovery rely on. All state lives in this object.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/actuator_settings.hpp"
#include "controllers/attn_logit_growth.hpp"
#include "controllers/basin_classifier.hpp"
#include "controllers/collapse_signature.hpp"
#include "controllers/curriculum.hpp"
#include "controllers/early_corroboration.hpp"
#include "controllers/finding.hpp"
#include "controllers/loss_weight_scheduler.hpp"
#include "controllers/lr_ceiling.hpp"
#include "controllers/metric_report.hpp"
#include "controllers/mixture_reweighter.hpp"
#include "controllers/navigator_config.hpp"
#include "controllers/orbit_state_machine.hpp"
#include "controllers/pid.hpp"
#include "controllers/rank_quorum.hpp"
#include "controllers/recovery_ladder.hpp"
#include "controllers/scalar_signals.hpp"
#include "controllers/spectral_metrics.hpp"
#include "controllers/zone_metric.hpp"
#include "controllers/zoned_metrics.hpp"
#include "protocol/messages.hpp"
#include "protocol/mode.hpp"

namespace orbit {

struct RunInfo {  // from the run's hello messages
  std::string run;
  std::int64_t world_size = 1;
  std::vector<std::string> domains;
  std::vector<std::string> actuators;  // subset of lr, domain_weights, curriculum, loss_weights, rollback
  std::optional<double> base_lr;
};

struct Decision {
  std::string state;           // "STABLE", ... upper case, as on the wire ("MONITOR" in monitor mode)
  std::string basin;           // current basin
  std::string forecast_basin;  // the basin the trends point at within the forecast horizon
  // Steps since the spectral evidence that named `basin` (0: this step's). The basin
  // holds between probe steps, so a step without spectra keeps the last evidence's
  // basin instead of falling back to UNKNOWN; none while no evidence ever came.
  std::optional<std::int64_t> basin_age_steps;
  std::map<std::string, double> metrics;  // finite values only; names in docs/controller.md
                                          // (empty when the Navigator is told not to report them)
  std::optional<Burn> burn;    // the burn this input produced (never from the controller in monitor mode)
  std::vector<std::string> events;  // readable transition/alarm reasons produced by this input
  double lr_scale = 1.0;       // scale in effect after this decision
  bool step_closed = false;    // this snapshot completed a step and the controller acted on it
  std::string observed_state;  // the state machine's state, also in monitor mode
};

// Makes `d` equal to a default-constructed Decision, keeping its strings' and
// vectors' storage: a caller that decides into one Decision per snapshot (replay)
// saves building and destroying one (~900 bytes) every time.
void clear_decision(Decision& d);

// The answers of the filters that read only a run's snapshots, recorded in one
// replay, for a caller that replays the same recording under many configs (tune):
// see replay_memo.hpp and record_memo()/follow_memo().
struct NavigatorMemo {
  ScalarSignalsMemo scalars;
  ZonedMetricsMemo zones;
};

class Navigator {
 public:
  Navigator(NavigatorConfig config, RunInfo info, Mode mode);

  // Every snapshot of every rank, in arrival order.
  Decision on_snapshot(const Snapshot& snapshot);
  // The same, given spectral_metrics() of each of snapshot.spectra (in map order)
  // computed with this config's signals.phi_target: a caller that feeds the same
  // snapshots many times (tune) computes them once. Ignored when the count differs.
  // `names`, when given, are the spectra's names in the same order, kept by such a
  // caller where they stay in cache: a snapshot's own map nodes, read again for every
  // candidate, are cold (the name compare was ~4 % of a tune's CPU).
  Decision on_snapshot(const Snapshot& snapshot, const std::vector<SpectralMetrics>& spectral,
                       const std::vector<std::string_view>* names = nullptr);
  // Either of the above (`spectral` null: computed here) into `out`, which must be a
  // default-constructed Decision or one passed through clear_decision(): a caller that
  // keeps its decisions in place saves moving one.
  void on_snapshot_into(const Snapshot& snapshot, const std::vector<SpectralMetrics>* spectral,
                        const std::vector<std::string_view>* names, Decision& out);
  // Per rank; a late apply raises the lead; restored_step starts a new branch.
  void on_ack(const Ack& ack);
  // The daemon heard nothing from `rank` for its timeout (`now`: daemon time, only
  // quoted in the event). That rank's data is STALE; when no rank is left the run
  // is STALE until a fresh snapshot arrives. Events come out with the next Decision.
  void on_rank_silent(std::int64_t rank, double now);
  void set_mode(Mode mode);                 // keeps controller state
  void reconfigure(NavigatorConfig config);  // keeps controller state
  void update_info(RunInfo info);           // a rank said hello again / joined
  // An operator's burn: clamped to BurnLimits (range, largest change, floor,
  // expiry), given the next seq and an apply_at_step; the controller continues
  // from it. Works in both modes (an operator's explicit request).
  std::optional<Burn> force_burn(const Burn& requested);
  // What makes an operator's burn impossible for this run's config (a curriculum
  // phase that does not exist), or nullopt. Asked before force_burn, which clamps
  // what is merely out of bounds; replayed forced burns are not asked again.
  std::optional<std::string> operator_burn_problem(const Burn& requested) const;
  // Recovery: seqs up to `seq` were already sent (by records replay could not
  // decode); the next burn takes a later one. Changes nothing else.
  void reserve_seq(std::int64_t seq) { seq_ = std::max(seq_, seq); }

  // Decision::metrics costs more than the decision itself; a caller that never reads
  // them (tune, a replay without a timeline) turns them off. Decisions do not change.
  void set_report_metrics(bool on) { report_metrics_ = on; }
  bool report_metrics() const { return report_metrics_; }
  // Hands back a decision's metrics map once the caller is done with it: the next
  // decision fills its nodes (names, values) instead of allocating ~40 of them.
  // Decisions, metrics included, are the same with or without it.
  void recycle_metrics(std::map<std::string, double>&& metrics) {
    if (spare_metrics_.empty()) spare_metrics_ = std::move(metrics);
  }
  // A caller that reads each decision's metrics from last_metrics() (orbit replay's
  // timeline) turns this on: Decision::metrics then stays empty, no map is filled.
  void set_metrics_in_sink(bool on) { metrics_in_sink_ = on; }
  // The metrics of the decision returned last (report_metrics on), in name order.
  const MetricSink& last_metrics() const { return metric_sink_; }

  // Before the first snapshot: record the snapshot-only filters' answers into `memo`,
  // or follow one recorded from the same snapshots (under any config): those filters
  // answer from it while their calls are the recorded ones and compute for themselves
  // from the first that differs. Decisions are the same with or without.
  void record_memo(NavigatorMemo* memo) {
    scalars_.record_into(&memo->scalars);
    zones_.record_into(&memo->zones);
  }
  void follow_memo(const NavigatorMemo* memo) {
    scalars_.follow(&memo->scalars);
    zones_.follow(&memo->zones);
  }

  const NavigatorConfig& config() const { return config_; }
  Mode mode() const { return mode_; }
  std::int64_t last_seq() const { return seq_; }

  // Read-only views for status and tests.
  OrbitState state() const { return machine_.state(); }
  const RunInfo& info() const { return info_; }
  double lr_ceiling() const { return ladder_.ceiling(config_.limits.lr_scale_max); }
  // The absolute lr cap (lr units) an alarm set, while it holds (controllers/lr_ceiling.hpp).
  const std::optional<double>& lr_cap() const { return lr_cap_.cap(); }
  std::int64_t apply_lead_steps() const { return lead_; }
  std::int64_t closed_steps() const { return tick_; }
  std::int64_t rollbacks() const { return ladder_.rollbacks(); }
  const std::optional<Burn>& last_burn() const { return last_burn_; }
  // Steps from the last spectral evidence of the basin to `step` (none without any).
  std::optional<std::int64_t> basin_age(std::int64_t step) const;

 private:
  // A spectrum name seen in this run, with what the config says about it, resolved
  // once instead of per snapshot.
  struct SpectrumSlot {
    std::string name;
    bool aggregated = false;  // matches signals.spectra
    bool signature = false;   // matches signals.signature_spectra
  };
  struct SpectrumSample {
    std::uint32_t slot = 0;  // into spectrum_slots_
    SpectralMetrics metrics;
  };
  // One rank's contribution to a step, with its spectra already reduced to metrics.
  struct Sample {
    std::int64_t step = 0;
    double time = 0.0;
    double loss = 0.0;
    std::optional<double> grad_norm;
    std::optional<double> lr;           // in effect
    std::optional<double> schedule_lr;  // the trainer's schedule, before the scale
    std::optional<double> loop_rate;
    std::optional<double> attn_logit_max;  // the snapshot's scalar of that name
    // Filled for samples that wait for other ranks; a single rank's sample is decided
    // at once and reads the snapshot's domains instead (no copy).
    std::map<std::string, DomainStats> domains;
    std::vector<SpectrumSample> spectra;  // in name order, as in the snapshot
  };
  using PendingStep = RankQuorum<Sample>::PendingStep;
  // What the adapter applies now (the last burn's values, or the defaults).
  using Applied = ActuatorSettings;
  // What decide()'s stages hand on (defined in navigator.cpp).
  struct SignalReading;
  struct StateStep;
  struct ActuatorPlan;

  void snapshot_decision(const Snapshot& snapshot, const std::vector<SpectralMetrics>* spectral,
                         const std::vector<std::string_view>* names, Decision& out);
  void reduce(const Snapshot& snapshot, const std::vector<SpectralMetrics>* spectral,
              const std::vector<std::string_view>* names, Sample& out);
  std::uint32_t spectrum_slot(std::string_view name, std::size_t& cursor);
  void resolve_config();  // config names → indices and slot flags
  Sample merge(const PendingStep& pending) const;
  // One closed step, in stages: signals -> zones -> basin and state -> actuators -> burn.
  // Into `d`, a fresh Decision.
  void decide(const Sample& sample, const std::map<std::string, DomainStats>& domains, Decision& d);
  SignalReading read_signals(const Sample& in, const std::map<std::string, DomainStats>& domains, double elapsed,
                             MetricSink* metrics, std::vector<Finding>& findings);
  ZoneReading read_zones(const Sample& in, const SignalReading& signals, MetricSink* metrics,
                         std::vector<Finding>& findings, std::vector<std::string>& events);
  StateStep step_state(std::int64_t step, const ZoneReading& zones, const std::vector<Finding>& findings,
                       std::vector<std::string>& events);
  ActuatorPlan plan_actuators(const Sample& in, const std::map<std::string, DomainStats>& domains, double elapsed,
                              const SignalReading& signals, const ZoneReading& zones, const StateStep& state,
                              std::vector<std::string>& events);
  void steer_lr(std::int64_t step, double elapsed, const SignalReading& signals, const ZoneReading& zones,
                const StateStep& state, ActuatorPlan& plan, std::vector<std::string>& events);
  void rewarm(std::int64_t step, const std::optional<double>& health, const PidLimits& limits,
              std::vector<std::string>& events);
  void steer_data(const std::map<std::string, DomainStats>& domains, const ZoneReading& zones, const StateStep& state,
                  ActuatorPlan& plan, std::vector<std::string>& events);
  ActuatorSettings wanted_settings(const ActuatorPlan& plan) const;
  std::optional<Burn> compose_burn(std::int64_t step, const ActuatorPlan& plan, const StateStep& state,
                                   const ZoneReading& zones);
  void close_ready_steps(double now, std::vector<Decision>& out);
  void start_branch(std::int64_t last_closed_step, const std::string& why);
  // Per-spectrum and aggregated metrics into `metrics` (when not null); returns the aggregate.
  SpectralMetrics add_spectral_metrics(const Sample& sample, MetricSink* metrics) const;
  // A decision's metrics: the sink its stages write (null when they are off), then
  // the map they end in (the recycled one's nodes, when its names are the same).
  MetricSink* start_metrics();
  void finish_metrics(std::map<std::string, double>& metrics);
  void refresh_applied();
  // The highest lr scale allowed now: the rollback ladder's ceiling, lowered by the
  // absolute lr cap at the newest schedule lr.
  double scale_ceiling() const;
  void resolve_actuators();
  bool declared(Actuator a) const { return (actuators_ >> static_cast<unsigned>(a)) & 1u; }
  Applied defaults() const;

  NavigatorConfig config_;
  RunInfo info_;
  Mode mode_;
  bool report_metrics_ = true;
  unsigned actuators_ = 0;  // bit i: kActuators[i] declared (resolve_actuators)

  // The config's names resolved (resolve_config): zones by kZoneMetrics index, the
  // basin rules' metrics as indices, and the spectrum names seen so far.
  PerZoneMetric<ZoneConfig> zone_config_;
  std::vector<std::vector<int>> rule_metrics_;
  std::vector<BasinTerm> basin_terms_;  // the same, flat, for classify_basins()
  std::vector<SpectrumSlot> spectrum_slots_;
  // ln of the limits each decision reads (resolve_config), and of the last ceiling.
  double log_lr_scale_min_ = 0.0, log_max_lr_change_ = 0.0, half_log_deadband_ = 0.0;
  double last_ceiling_ = std::numeric_limits<double>::quiet_NaN(), log_last_ceiling_ = 0.0;
  Sample scratch_;  // a single rank's sample, reused: no allocation per snapshot

  // Step assembly (world_size > 1) and liveness.
  RankQuorum<Sample> quorum_;
  std::optional<std::int64_t> last_closed_step_;
  std::int64_t max_step_ = -1;   // newest step seen on the current branch
  std::int64_t tick_ = 0;        // closed steps, monotone across branches
  std::vector<std::string> queued_events_;
  std::map<std::string, double> spare_metrics_;  // recycle_metrics(); see finish_metrics()
  MetricSink metric_sink_;
  bool metrics_in_sink_ = false;

  // Signals.
  ScalarSignals scalars_;
  CollapseSignature signature_;
  AttnLogitGrowth attn_growth_;
  EarlyCorroboration early_;  // does the run corroborate an early hidden-state alarm?
  ZonedMetrics zones_;
  std::set<std::string> active_findings_;  // alarm kinds seen at the last closed step

  // Decisions.
  OrbitStateMachine machine_;
  std::string basin_ = "UNKNOWN";
  std::string forecast_basin_ = "UNKNOWN";
  std::optional<std::int64_t> basin_evidence_step_;  // the step whose metrics named basin_
  std::optional<std::int64_t> last_stable_step_;
  LogLrPid pid_;
  MixtureReweighter mixture_;
  Curriculum curriculum_;
  LossWeightScheduler loss_weights_;
  RecoveryLadder ladder_;
  LrCeiling lr_cap_;
  std::optional<double> schedule_lr_;  // of the newest closed step
  // A rollback's restart lr in absolute units (restart_scale x the ceiling x the
  // schedule lr at the alarm), applied as a scale against the restored step's own
  // schedule lr at the new branch's first decision (restart_pending_).
  std::optional<double> restart_lr_;
  bool restart_pending_ = false;
  // The restored branch's re-warmup (rollback.rewarm_steps): a linear ramp of the
  // absolute lr from the restart lr to what the ceilings allow, from this step on;
  // dropped at the first sign of trouble (health below the setpoint) or at its end.
  struct Rewarm {
    double from_lr = 0.0;  // absolute lr (a scale when the schedule lr is unknown)
    std::int64_t start_step = 0;
  };
  std::optional<Rewarm> rewarm_;
  // A branch restored by a rollback: its first closed step (the trainer may count on
  // from the alarm's step or from the restored one) and its smoothed loss
  // signals.signature_confirm_steps later, to tell a branch that stalled in the
  // collapse its checkpoint carried (rollback.stalled_branch_fall; see RecoveryLadder).
  std::optional<std::int64_t> first_step_;  // the run's first closed step (a resumed job's is not 1)
  bool restored_branch_starts_ = false;
  std::optional<std::int64_t> restored_from_;
  std::optional<double> restored_loss_;
  std::int64_t restored_loss_step_ = 0;

  // Burns.
  std::int64_t seq_ = 0;
  std::int64_t lead_ = 0;
  std::optional<Burn> last_burn_;
  Applied applied_;
  std::optional<std::int64_t> applied_until_;  // step at which the applied burn expires
  std::optional<std::int64_t> forced_until_;   // an operator's burn holds until then (while STABLE)
  std::int64_t restored_seq_ = 0;
  std::int64_t late_seq_ = 0;
};

}  // namespace orbit
