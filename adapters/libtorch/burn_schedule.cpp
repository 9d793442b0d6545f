// SPDX-License-Identifier: Apache-2.0
#include "adapters/libtorch/burn_schedule.hpp"

#include <algorithm>
#include <utility>

namespace orbit {

void BurnSchedule::add(Burn burn) {
  if (last_seq_ && burn.seq <= *last_seq_) return;
  for (const auto& p : pending_)
    if (p.seq == burn.seq) return;
  pending_.push_back(std::move(burn));
}

std::vector<AppliedBurn> BurnSchedule::advance(std::int64_t step) {
  std::vector<AppliedBurn> applied;
  // Due burns in seq order; a newer seq supersedes whatever governed before.
  std::sort(pending_.begin(), pending_.end(),
            [](const Burn& a, const Burn& b) { return a.seq < b.seq; });
  auto due = [step](const Burn& b) { return b.apply_at_step <= step; };
  for (auto& b : pending_) {
    if (!due(b)) continue;
    if (last_seq_ && b.seq <= *last_seq_) continue;  // overtaken by a newer applied burn
    last_seq_ = b.seq;
    applied.push_back(AppliedBurn{b, step, b.apply_at_step < step});
  }
  pending_.erase(std::remove_if(pending_.begin(), pending_.end(), due), pending_.end());
  if (!applied.empty()) active_ = applied.back();

  if (active_) {
    const Burn& b = active_->burn;
    if (step >= b.apply_at_step + b.expires_after_steps) active_.reset();
  }
  return applied;
}

bool BurnSchedule::rollback_due(std::int64_t step) const {
  for (const auto& b : pending_) {
    if (b.apply_at_step <= step && b.rollback_to_step && (!last_seq_ || b.seq > *last_seq_)) return true;
  }
  return false;
}

void BurnSchedule::clear() {
  pending_.clear();
  active_.reset();
}

}  // namespace orbit
