// SPDX-License-Identifier: Apache-2.0
#pragma once
// The orbit state machine: STABLE → DRIFTING → WARNING → CRITICAL → RECOVERING →
// STABLE, plus STALE (no fresh data) and MONITOR (observe only; reported by the
// Navigator in monitor mode, never entered here). Each closed step brings its
// training step, the worst severity found and its reason; the machine adds
// confirmation (a forecast or a warning must hold `confirm_steps` snapshots in a
// row), a minimum dwell before any way down, and a calm period in RECOVERING, so the
// state does not chatter. The dwell and the calm period count training steps (the
// steps the calm snapshots cover), not snapshots: a run logged every 500 steps
// clears an alarm after as many training steps as one logged every step, not 500x
// more. A snapshot whose step does not advance (a rollback's new branch) counts one.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orbit {

enum class OrbitState { stable, drifting, warning, critical, recovering, stale, monitor };

// Upper case, as on the wire.
std::string_view to_string(OrbitState state);
std::optional<OrbitState> orbit_state_from_string(std::string_view name);

enum class Severity { none = 0, drift = 1, warning = 2, critical = 3 };

struct StateMachineParams {
  std::int64_t confirm_steps = 2;     // snapshots in a row a drift or warning finding must hold
  std::int64_t min_dwell_steps = 10;  // calm training steps before leaving DRIFTING/WARNING/CRITICAL
  std::int64_t recovery_steps = 20;   // calm training steps in RECOVERING before STABLE
};

struct Transition {
  OrbitState from = OrbitState::stable;
  OrbitState to = OrbitState::stable;
  std::string reason;
};

class OrbitStateMachine {
 public:
  // One call per closed step, `step` its training step. `reason` explains `severity`
  // (ignored when none).
  std::optional<Transition> update(std::int64_t step, Severity severity, const std::string& reason,
                                   const StateMachineParams& params);
  // No fresh data: STALE until mark_fresh() restores the state it interrupted.
  std::optional<Transition> mark_stale(const std::string& reason);
  std::optional<Transition> mark_fresh(const std::string& reason);

  OrbitState state() const { return state_; }
  // Snapshots (update calls) since the state was entered.
  std::int64_t steps_in_state() const { return steps_in_state_; }
  // True while in DRIFTING, WARNING, CRITICAL or RECOVERING (an episode is open).
  bool alarmed() const;

 private:
  std::optional<Transition> move(OrbitState to, std::string reason);

  OrbitState state_ = OrbitState::stable;
  OrbitState before_stale_ = OrbitState::stable;
  std::int64_t steps_in_state_ = 0;
  std::int64_t drift_run_ = 0;  // consecutive steps with severity >= drift
  std::int64_t warn_run_ = 0;   // consecutive steps with severity >= warning
  std::int64_t calm_run_ = 0;   // training steps of consecutive snapshots below the current state's level
  std::optional<std::int64_t> last_step_;  // the previous update's training step
};

}  // namespace orbit
