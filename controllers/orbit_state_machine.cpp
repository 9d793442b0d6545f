// SPDX-License-Identifier: Apache-2.0
#include "controllers/orbit_state_machine.hpp"

namespace orbit {

std::string_view to_string(OrbitState state) {
  switch (state) {
    case OrbitState::stable: return "STABLE";
    case OrbitState::drifting: return "DRIFTING";
    case OrbitState::warning: return "WARNING";
    case OrbitState::critical: return "CRITICAL";
    case OrbitState::recovering: return "RECOVERING";
    case OrbitState::stale: return "STALE";
    case OrbitState::monitor: return "MONITOR";
  }
  return "STALE";
}

std::optional<OrbitState> orbit_state_from_string(std::string_view name) {
  for (OrbitState s : {OrbitState::stable, OrbitState::drifting, OrbitState::warning, OrbitState::critical,
                       OrbitState::recovering, OrbitState::stale, OrbitState::monitor}) {
    if (to_string(s) == name) return s;
  }
  return std::nullopt;
}

bool OrbitStateMachine::alarmed() const {
  const OrbitState s = state_ == OrbitState::stale ? before_stale_ : state_;
  return s != OrbitState::stable;
}

std::optional<Transition> OrbitStateMachine::move(OrbitState to, std::string reason) {
  if (to == state_) return std::nullopt;
  Transition t{state_, to, std::move(reason)};
  state_ = to;
  steps_in_state_ = 0;
  calm_run_ = 0;
  return t;
}

std::optional<Transition> OrbitStateMachine::update(std::int64_t step, Severity severity, const std::string& reason,
                                                    const StateMachineParams& params) {
  if (state_ == OrbitState::stale) return std::nullopt;  // mark_fresh() first
  ++steps_in_state_;
  // The training steps this snapshot stands for: at least one (the first, or a step
  // that went back or repeated).
  const std::int64_t covered = last_step_ && step > *last_step_ ? step - *last_step_ : 1;
  last_step_ = step;
  drift_run_ = severity >= Severity::drift ? drift_run_ + 1 : 0;
  warn_run_ = severity >= Severity::warning ? warn_run_ + 1 : 0;
  const bool warn_confirmed = warn_run_ >= params.confirm_steps;
  const bool drift_confirmed = drift_run_ >= params.confirm_steps;

  // Up: CRITICAL at once, the others once confirmed.
  if (severity == Severity::critical) {
    if (state_ != OrbitState::critical) return move(OrbitState::critical, reason);
    calm_run_ = 0;
    return std::nullopt;
  }

  auto calm_reason = [&](std::string_view what) {
    return "calm for " + std::to_string(calm_run_) + " steps (" + std::string(what) + ")";
  };

  switch (state_) {
    case OrbitState::stable:
      if (warn_confirmed) return move(OrbitState::warning, reason);
      if (drift_confirmed) return move(OrbitState::drifting, reason);
      return std::nullopt;
    case OrbitState::drifting:
      if (warn_confirmed) return move(OrbitState::warning, reason);
      calm_run_ = severity == Severity::none ? calm_run_ + covered : 0;
      if (calm_run_ >= params.min_dwell_steps)
        return move(OrbitState::recovering, calm_reason("no forecast of danger"));
      return std::nullopt;
    case OrbitState::warning:
      calm_run_ = severity < Severity::warning ? calm_run_ + covered : 0;
      if (calm_run_ >= params.min_dwell_steps) return move(OrbitState::recovering, calm_reason("no metric in warning"));
      return std::nullopt;
    case OrbitState::critical:
      calm_run_ += covered;  // severity < critical here
      if (calm_run_ >= params.min_dwell_steps) {
        if (severity == Severity::warning) return move(OrbitState::warning, reason);
        return move(OrbitState::recovering, calm_reason("no metric in danger"));
      }
      return std::nullopt;
    case OrbitState::recovering:
      if (warn_confirmed) return move(OrbitState::warning, reason);
      calm_run_ = severity == Severity::none ? calm_run_ + covered : 0;
      if (calm_run_ >= params.recovery_steps) return move(OrbitState::stable, calm_reason("all metrics good"));
      return std::nullopt;
    case OrbitState::stale:
    case OrbitState::monitor: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<Transition> OrbitStateMachine::mark_stale(const std::string& reason) {
  if (state_ == OrbitState::stale) return std::nullopt;
  before_stale_ = state_;
  return move(OrbitState::stale, reason);
}

std::optional<Transition> OrbitStateMachine::mark_fresh(const std::string& reason) {
  if (state_ != OrbitState::stale) return std::nullopt;
  drift_run_ = warn_run_ = 0;
  return move(before_stale_, reason);
}

}  // namespace orbit
