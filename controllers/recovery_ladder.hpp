// SPDX-License-Identifier: Apache-2.0
#pragma once
// The recovery ladder: when cutting the lr does not turn a CRITICAL run around
// (health not better by `min_improvement` after `patience_steps`), or the collapse
// signature is already present, or the loss went non-finite, ask the adapter to
// roll back to its newest checkpoint from before the episode's first alarm. Each
// rollback multiplies the ceiling on the lr scale by ceiling_factor; the ceiling relaxes
// back (doubling every `ceiling_relax_steps` stable steps). Rollbacks per window are
// bounded, one is outstanding at a time (until its ACK or a timeout), and adapters
// that did not declare `rollback` never get one.
//
// attn_logit_growth in danger (a warmup collapse's attention logits doubling every
// few steps) asks for it at once too, as the signature does: measured on the
// efficacy suite's setting C, the lr cut alone does not undo it (calibration seeds
// 0 and 1 without rollbacks end 2.257 / 2.214, with them 2.010 / 1.998), so waiting
// for the signature or the patience rule only loses the steps in between.
//
// After a rollback the signature alone does not ask for another one for
// `signature_grace_steps`: the restored run passes again through its early
// hidden-state transient (a healthy pre-LN run's dominant ratio reaches 0.8 at steps
// 20-50), which at a still-high lr looks like the signature for a few snapshots. The
// lr cut does its work meanwhile; a run it does not turn around is caught by the
// patience rule.
//
// A restored branch that stalled (the Navigator: its smoothed loss fell less than
// `stalled_branch_fall` since the restore) never left the collapse: the checkpoint
// it restored already carried it, and so do the branch's own, newer ones. Its next
// rollback goes to the run's start (`run_start`: the adapters' rings always keep the
// checkpoint taken when they attached; a resumed job's start is not step 0) and keeps
// the ceiling: the branch's lr did not cause what the checkpoint brought along.
// Efficacy suite, post-LN B at lr 1e-2 (calibration seeds 10, 12): the first alarm
// came at step 60 / 30, the restore to 29 / 19 sat on the loss plateau (3.3-3.4) and
// the next rollbacks (10 steps before the newest stable step) landed on it again:
// 3.062 / 2.345, with this 2.041 / 2.001 (unseen B 5000 and 7003 failed the same way).
//
// Measured on a small transformer (issue 3): once attention saturates, a lower lr
// alone freezes the collapse; rollback plus an lr cap rescued every collapsing run.

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controllers/orbit_state_machine.hpp"

namespace orbit {

struct RollbackPolicy {
  bool enabled = true;
  bool on_collapse_signature = true;
  bool on_attn_logit_growth = true;        // roll back at once when attn_logit_growth is in danger in CRITICAL
  bool on_nonfinite = true;
  std::int64_t patience_steps = 20;        // closed steps in CRITICAL before judging the lr cut
  double min_improvement = 0.1;            // health gain over the patience that counts as turned around
  double ceiling_factor = 0.25;            // ceiling *= this per rollback
  std::int64_t ceiling_relax_steps = 2000; // stable training steps for the ceiling to double
  std::int64_t window_steps = 1000;        // closed steps
  std::int64_t max_per_window = 3;
  std::int64_t ack_timeout_steps = 50;     // closed steps to wait for the restore ACK
  std::int64_t signature_grace_steps = 60; // closed steps after a rollback before the signature may ask again
  double restart_scale = 0.2;              // the lr scale after a rollback, as a share of the new ceiling
  std::int64_t rewarm_steps = 100;         // training steps of the linear re-warmup to the ceiling (0: off)
  std::int64_t lookback_steps = 10;        // roll back this far before the episode's anchor
  bool skip_batches = false;               // also skip the batches between checkpoint and alarm
  double stalled_branch_fall = 0.03;       // a restored branch whose loss fell less than this share stalled (0: off)
};

struct LadderInput {
  std::int64_t tick = 0;         // closed steps so far; monotone across rollbacks
  std::int64_t step = 0;         // the step this decision is for
  OrbitState state = OrbitState::stable;
  bool episode_started = false;  // this step left STABLE
  std::optional<std::int64_t> last_stable_step;  // newest step closed in STABLE
  bool signature = false;        // collapse signature present now
  std::string_view signature_text;  // valid during update() (not a copy per decision)
  std::optional<std::string> attn_logit_danger;  // attn_logit_growth in danger now: its reading, as text
  bool nonfinite = false;        // non-finite loss or gradient norm now
  std::optional<double> health;
  bool allowed = false;          // the adapter declared `rollback`
  double steps_elapsed = 1.0;    // training steps since the previous decision
  // This is a branch restored by a rollback, old enough to judge, whose smoothed loss
  // fell less than stalled_branch_fall since the restore (its text: the fall).
  std::optional<std::string> branch_stalled;
  std::int64_t run_start = 0;  // the step before the run's first snapshot (the ring's oldest checkpoint)
};

struct LadderAction {
  std::optional<std::int64_t> rollback_to_step;
  std::optional<std::int64_t> skip_batches;
  std::string reason;             // why (set with rollback_to_step)
  std::optional<std::string> event;  // anything else worth saying (budget spent, timeout)
};

class RecoveryLadder {
 public:
  LadderAction update(const LadderInput& in, const RollbackPolicy& policy, double lr_min, double lr_max);
  // The adapter restored a checkpoint (ACK with restored_step).
  void on_restored(std::int64_t restored_step);

  double ceiling(double lr_max) const { return ceiling_ ? *ceiling_ : lr_max; }
  bool pending() const { return pending_since_.has_value(); }
  // Inside `signature_grace_steps` of the newest rollback: the restored run passes
  // its early transient again (see the header).
  bool in_grace(std::int64_t tick, const RollbackPolicy& policy) const {
    return last_rollback_tick_ && tick - *last_rollback_tick_ < policy.signature_grace_steps;
  }
  std::optional<std::int64_t> anchor() const { return anchor_; }
  std::int64_t rollbacks() const { return total_; }

 private:
  std::optional<double> ceiling_;            // none = lr_max
  std::optional<std::int64_t> anchor_;       // where this episode rolls back to
  std::deque<std::int64_t> rollback_ticks_;  // inside the window
  std::optional<std::int64_t> pending_since_;
  std::optional<std::int64_t> critical_since_;
  std::optional<std::int64_t> last_rollback_tick_;
  double health_at_critical_ = 0.0;
  bool budget_reported_ = false;
  std::int64_t total_ = 0;
};

}  // namespace orbit
