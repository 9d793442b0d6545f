// SPDX-License-Identifier: Apache-2.0
#pragma once
// A loss jump over its floor: the loss above `ratio` times the lowest level it has
// held (the running minimum of the median of its last few values). It needs no
// variance estimate, so it works from the second snapshot of a run that starts
// mid-training (a resumed job, a log excerpt), where z-scores are still warming up.
//
// A one-step outlier of a healthy run can jump as far (modded-nanogpt 1.5B:
// 5.05 against ~2.7 neighbours), so a jump alarms only when
//   - the gradient norm corroborates it: at or above `grad_ratio` times its lowest
//     value of the last `grad_window` snapshots, or non-finite; or
//   - it holds for `confirm_steps` training steps (at a coarse cadence one snapshot
//     spans them).
// Before `arm_step` a fresh run's loss is still falling and swinging, so holding
// proves nothing; with `early_corroborated` a jump there still alarms when the grad
// norm corroborates it at the same snapshot (a falling loss does not multiply the
// grad norm), flagged `early` so the caller can also ask it to stand out of the
// run's own early noise.
// The floor is a ratio of the loss itself: it suits losses bounded well away from
// zero (cross-entropy of language models), not losses that approach 0.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "controllers/replay_memo.hpp"
#include "controllers/ring_deque.hpp"

namespace orbit {

struct LossJumpParams {
  double ratio = 1.5;               // loss / floor that is a jump (0 = off)
  double grad_ratio = 4.0;          // grad norm / its recent minimum that corroborates at once
  std::int64_t confirm_steps = 2;   // an uncorroborated jump must span this many steps
  std::int64_t arm_step = 500;      // training step from which jumps count (a fresh run's loss is still falling)
  bool early_corroborated = false;  // before arm_step, a jump the grad norm corroborates counts
  std::size_t level_window = 5;     // losses in the median whose running minimum is the floor (<= 31)
  std::size_t grad_window = 20;     // snapshots whose least grad norm a jump is measured against
};
bool same(const LossJumpParams& a, const LossJumpParams& b);  // bit for bit

struct LossJumpStatus {
  bool armed = false;                // step >= arm_step and a floor exists
  double floor = 0.0;                // before this sample (0 = none yet)
  double ratio = 0.0;                // loss / floor (0 = no floor)
  std::optional<double> grad_ratio;  // grad norm / its recent minimum (inf: non-finite grad norm)
  bool early = false;                // before arm_step, a floor exists and early_corroborated is on
  bool jump = false;                 // ratio >= params.ratio while armed or early
  bool corroborated = false;         // ... with the gradient norm
  std::int64_t held_steps = 0;       // steps the jump has spanned so far
  bool alarm = false;                // jump and (corroborated or, when armed, held_steps >= confirm_steps)
};

// One update's input, for a ReplayMemo.
struct LossJumpInput {
  std::int64_t step = 0;
  double loss = 0.0;
  std::optional<double> grad_norm;
};
bool same(const LossJumpInput& a, const LossJumpInput& b);  // bit for bit

class LossJumpDetector {
 public:
  // `grad_norm` may be absent (loss-only logs). A non-finite loss is not absorbed
  // and ends a jump (the caller alarms on it by itself).
  LossJumpStatus update(std::int64_t step, double loss, std::optional<double> grad_norm, const LossJumpParams& params);
  void reset();

  // The floor after the last update (not kept while following a memo: tests only).
  double floor() const { return floor_.value_or(0.0); }

  // Records every update into `memo`, or answers from it (replay_memo.hpp).
  using Memo = ReplayMemo<LossJumpInput, LossJumpStatus, LossJumpParams>;
  void record_into(Memo* memo) { memo_.record_into(memo); }
  void follow(const Memo* memo) { memo_.follow(memo); }
  bool following_memo() const { return memo_.following(); }

 private:
  LossJumpStatus compute(std::int64_t step, double loss, std::optional<double> grad_norm, const LossJumpParams& params);

  // The least of the last `grad_window` positive finite grad norms, kept as the window
  // moves (an ascending run of (push number, value): each value enters and leaves it
  // once) instead of scanning the window at every snapshot. The same value the scan
  // finds: the grad norms here are finite and positive, so equal values are equal bits.
  struct GradEntry {
    std::uint64_t seq = 0;
    double value = 0.0;
  };
  void push_grad(double grad_norm, std::size_t window);

  MemoCursor<LossJumpInput, LossJumpStatus, LossJumpParams> memo_;
  RingDeque<double> recent_losses_;
  RingDeque<GradEntry> grad_minima_;  // ascending values; the front is the window's least
  std::uint64_t grads_pushed_ = 0;
  std::size_t grads_in_window_ = 0;
  std::optional<double> floor_;
  std::optional<std::int64_t> last_step_;
  std::optional<std::int64_t> jump_since_;  // step before the jump's first snapshot
};

}  // namespace orbit
