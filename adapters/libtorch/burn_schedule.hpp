// SPDX-License-Identifier: Apache-2.0
#pragma once
// When each received burn takes effect and when it stops: pure bookkeeping over
// step numbers, no torch and no sockets, so every rank that sees the same burns
// makes the same decisions at the same steps.
//
// Rules (protocol/SPEC.md, sections 5.5 and 5.6):
// - a burn governs the steps [apply_at_step, apply_at_step + expires_after_steps)
//   (as in the Python adapter; 0 = a one-shot: its rollback happens, its lr scale
//   governs no step); the window is counted from apply_at_step, not from arrival,
//   so late ranks still agree on the end;
// - a burn that arrives after its apply_at_step is applied at once and is late;
// - the newest burn (highest seq) defines the scale; scales never compound;
// - a burn whose seq was already applied is ignored (duplicate delivery).

#include <cstdint>
#include <optional>
#include <vector>

#include "protocol/messages.hpp"

namespace orbit {

struct AppliedBurn {
  Burn burn;
  std::int64_t step = 0;  // the first step it governs
  bool late = false;
};

class BurnSchedule {
 public:
  void add(Burn burn);

  // Moves the schedule to `step`, the next optimizer step to run. Returns the
  // burns that take effect at this step, in seq order (each must be acknowledged);
  // an expired burn stops governing here.
  std::vector<AppliedBurn> advance(std::int64_t step);

  // The burn governing the step given to the last advance(), if any.
  const std::optional<AppliedBurn>& active() const { return active_; }
  double lr_scale() const { return active_ ? active_->burn.lr_scale : 1.0; }
  std::size_t pending() const { return pending_.size(); }
  // True when advance(step) would apply a burn that carries a rollback.
  bool rollback_due(std::int64_t step) const;
  // Drops pending and active burns: the trainer's own schedule is back in charge.
  void clear();

 private:
  std::vector<Burn> pending_;
  std::optional<AppliedBurn> active_;
  std::optional<std::int64_t> last_seq_;
};

}  // namespace orbit
