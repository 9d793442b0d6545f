// SPDX-License-Identifier: Apache-2.0
#include "controllers/recovery_ladder.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace orbit {

namespace {

std::string fmt(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", v);
  return text;
}

}  // namespace

LadderAction RecoveryLadder::update(const LadderInput& in, const RollbackPolicy& policy, double lr_min,
                                    double lr_max) {
  LadderAction act;
  // The ceiling: relax while stable, stay inside the configured range always.
  double ceiling = ceiling_.value_or(lr_max);
  if (in.state == OrbitState::stable && policy.ceiling_relax_steps > 0 && ceiling < lr_max) {
    ceiling *= std::exp2(in.steps_elapsed / static_cast<double>(policy.ceiling_relax_steps));
  }
  ceiling = std::clamp(ceiling, lr_min, lr_max);
  ceiling_ = ceiling >= lr_max ? std::nullopt : std::optional<double>(ceiling);

  // The episode's anchor: the newest stable step before its first alarm.
  if (in.state == OrbitState::stable) {
    anchor_.reset();
  } else if (in.episode_started || !anchor_) {
    if (!anchor_) anchor_ = in.last_stable_step.value_or(std::max<std::int64_t>(0, in.step - 1));
  }

  // Patience clock of the lr cut in CRITICAL.
  if (in.state == OrbitState::critical) {
    if (!critical_since_) {
      critical_since_ = in.tick;
      health_at_critical_ = in.health.value_or(-1.0);
    }
  } else {
    critical_since_.reset();
  }

  if (pending_since_ && in.tick - *pending_since_ > policy.ack_timeout_steps) {
    pending_since_.reset();
    act.event = "rollback not acknowledged within " + std::to_string(policy.ack_timeout_steps) +
                " steps; the ladder may try again";
  }
  if (!policy.enabled || !in.allowed || pending_since_ || !anchor_) return act;

  // After a rollback the restored run passes its early transient again (see the header).
  const bool graced = !in_grace(in.tick, policy);
  std::string why;
  if (in.nonfinite && policy.on_nonfinite) {
    why = "non-finite loss or gradient norm";
  } else if (in.signature && policy.on_collapse_signature && in.state == OrbitState::critical && graced) {
    why = "collapse signature present (" + std::string(in.signature_text) + ")";
  } else if (in.attn_logit_danger && policy.on_attn_logit_growth && in.state == OrbitState::critical && graced) {
    why = "attention logits growing fast (" + *in.attn_logit_danger + ")";
  } else if (critical_since_ && in.tick - *critical_since_ >= policy.patience_steps) {
    const double now = in.health.value_or(-1.0);
    if (now - health_at_critical_ < policy.min_improvement) {
      why = "lr cut for " + std::to_string(in.tick - *critical_since_) +
            " steps did not turn the run around (health " + fmt(health_at_critical_) + " -> " + fmt(now) + ")";
    }
  }
  if (why.empty()) return act;

  while (!rollback_ticks_.empty() && in.tick - rollback_ticks_.front() >= policy.window_steps) {
    rollback_ticks_.pop_front();
  }
  if (static_cast<std::int64_t>(rollback_ticks_.size()) >= policy.max_per_window) {
    if (!budget_reported_) {
      act.event = "rollback wanted (" + why + ") but " + std::to_string(policy.max_per_window) +
                  " rollbacks in the last " + std::to_string(policy.window_steps) + " steps already";
      budget_reported_ = true;
    }
    return act;
  }
  budget_reported_ = false;

  // The probe that raised the alarm follows the collapse's start by up to one probe
  // interval, so the newest checkpoint before it may already carry it: look back.
  // A stalled restored branch carries the collapse in every checkpoint it has: back
  // to the start, under the same ceiling (see the header).
  const bool stalled = in.branch_stalled.has_value();
  const std::int64_t target =
      stalled ? std::max<std::int64_t>(0, in.run_start)
              : std::clamp<std::int64_t>(*anchor_ - policy.lookback_steps, 0, std::max<std::int64_t>(0, in.step - 1));
  act.rollback_to_step = target;
  if (policy.skip_batches) act.skip_batches = std::max<std::int64_t>(0, in.step - target);
  if (!stalled) ceiling_ = std::clamp(ceiling * policy.ceiling_factor, lr_min, lr_max);
  if (ceiling_ && *ceiling_ >= lr_max) ceiling_.reset();
  if (stalled) why += "; the restored branch stalled (" + *in.branch_stalled + "): its checkpoints carry the collapse";
  rollback_ticks_.push_back(in.tick);
  last_rollback_tick_ = in.tick;
  pending_since_ = in.tick;
  critical_since_ = in.tick;  // a fresh patience for the restored run
  health_at_critical_ = in.health.value_or(-1.0);
  ++total_;
  act.reason = "rollback to step " + std::to_string(target) + ": " + why + "; lr ceiling now " +
               fmt(ceiling_.value_or(lr_max));
  return act;
}

void RecoveryLadder::on_restored(std::int64_t restored_step) {
  pending_since_.reset();
  if (anchor_) anchor_ = std::min(*anchor_, restored_step);
}

}  // namespace orbit
