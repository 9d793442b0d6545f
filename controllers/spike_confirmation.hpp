// SPDX-License-Identifier: Apache-2.0
#pragma once
// Confirmation of a z-score alarm counted in training steps, not snapshots: each
// snapshot stands for the steps since the one before it, so at a coarse cadence
// (a snapshot every 100 steps) one snapshot already spans the confirmation, while
// at a per-step cadence a one-step outlier still has to hold.

#include <cstdint>
#include <optional>
#include <utility>

#include "controllers/ring_deque.hpp"

namespace orbit {

class SpikeConfirmation {
 public:
  // A z-score (nullopt: none this snapshot, which breaks the run) and the training
  // steps this snapshot covers (>= 1). Keeps no more than `max_steps` snapshots.
  void push(std::optional<double> z, std::int64_t steps, std::int64_t max_steps);
  void clear() { recent_.clear(); }

  // The smallest z over the newest snapshots that together cover `min_steps` steps;
  // nullopt while the unbroken run covers fewer.
  std::optional<double> held(std::int64_t min_steps) const;

 private:
  RingDeque<std::pair<double, std::int64_t>> recent_;  // (z, steps covered), oldest first
};

}  // namespace orbit
