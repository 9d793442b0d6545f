// SPDX-License-Identifier: Apache-2.0
#include "controllers/lr_ceiling.hpp"

#include <algorithm>
#include <cmath>

namespace orbit {

void LrCeiling::update(bool alarm, std::optional<double> lr, bool stable, double elapsed,
                       const LrCeilingConfig& config) {
  if (!config.enabled) {
    reset();
    return;
  }
  if (free_cap_ && stable && config.relax_steps > 0) {
    *free_cap_ *= std::exp2(elapsed / static_cast<double>(config.relax_steps));
  }
  if (first_cap_) since_first_ += elapsed;
  if (alarm && lr && std::isfinite(*lr) && *lr > 0.0) {
    // One alarm lowers an existing cap by at most `share`: an alarm raised while the
    // lr is already far below the cap (a rolled-back run restarting at a fraction of
    // its ceiling) says nothing against that low lr, and share x it pinned the run
    // at lr_scale_min to the end (setting C of the efficacy suite).
    const double cap = config.share * *lr;
    free_cap_ = free_cap_ ? std::min(*free_cap_, std::max(cap, config.share * *free_cap_)) : cap;
    if (!first_cap_) first_cap_ = free_cap_;
  }
  cap_ = free_cap_;
  if (first_cap_ && since_first_ < static_cast<double>(config.first_cap_hold_steps)) {
    cap_ = std::min(*free_cap_, *first_cap_);
  }
}

std::optional<double> LrCeiling::scale_limit(std::optional<double> schedule_lr) const {
  if (!cap_ || !schedule_lr || !std::isfinite(*schedule_lr) || *schedule_lr <= 0.0) return std::nullopt;
  return *cap_ / *schedule_lr;
}

}  // namespace orbit
