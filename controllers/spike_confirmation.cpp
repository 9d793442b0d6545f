// SPDX-License-Identifier: Apache-2.0
#include "controllers/spike_confirmation.hpp"

#include <algorithm>

namespace orbit {

void SpikeConfirmation::push(std::optional<double> z, std::int64_t steps, std::int64_t max_steps) {
  if (!z) {
    recent_.clear();
    return;
  }
  recent_.emplace_back(*z, std::max<std::int64_t>(steps, 1));
  // Every snapshot covers >= 1 step, so max_steps snapshots always span max_steps.
  while (static_cast<std::int64_t>(recent_.size()) > std::max<std::int64_t>(max_steps, 1)) recent_.pop_front();
}

std::optional<double> SpikeConfirmation::held(std::int64_t min_steps) const {
  std::int64_t covered = 0;
  std::optional<double> least;
  for (auto it = recent_.rbegin(); it != recent_.rend(); ++it) {
    least = least ? std::min(*least, it->first) : it->first;
    covered += it->second;
    if (covered >= min_steps) return least;
  }
  return std::nullopt;
}

}  // namespace orbit
