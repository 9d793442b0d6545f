// SPDX-License-Identifier: Apache-2.0
#pragma once
// Multi-rank step assembly for one run: which ranks were seen and which are
// stale, the samples waiting for the other ranks of their step, and when a step
// may close (a quorum of the live ranks, or a deadline in steps or seconds).
//
// Pure and deterministic like the Navigator that owns it. Every operation costs
// in the ranks actually seen and the steps waiting, never in the declared world
// size: a run may declare any world size without costing the daemon time.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "controllers/navigator_config.hpp"

namespace orbit {

struct RankStatus {
  bool seen = false;
  bool stale = false;
  double last_time = 0.0;
  std::int64_t last_step = -1;
};

template <class Sample>
class RankQuorum {
 public:
  struct PendingStep {
    std::map<std::int64_t, Sample> ranks;
    double first_time = 0.0;
  };

  // The status of `rank`, created (unseen, not stale) on first use.
  RankStatus& status(std::int64_t rank) { return ranks_[rank]; }
  const std::map<std::int64_t, RankStatus>& ranks() const { return ranks_; }

  // Ranks of [0, world) that are not stale. Unseen ranks count as live: a step
  // waits for a rank that has not reported yet. Costs O(ranks seen).
  std::int64_t live(std::int64_t world) const {
    world = std::max<std::int64_t>(1, world);
    std::int64_t stale = 0;
    for (auto it = ranks_.begin(); it != ranks_.end() && it->first < world; ++it) {
      if (it->first >= 0 && it->second.stale) ++stale;
    }
    return world - stale;
  }

  // Marks every seen, fresh rank other than `except` whose last sample is older
  // than `stale_after` (snapshot time) stale; returns them in rank order.
  std::vector<std::int64_t> mark_stale(std::int64_t except, double time, double stale_after) {
    std::vector<std::int64_t> marked;
    for (auto& [rank, s] : ranks_) {
      if (rank == except || !s.seen || s.stale) continue;
      if (time - s.last_time > stale_after) {
        s.stale = true;
        marked.push_back(rank);
      }
    }
    return marked;
  }

  // The daemon heard nothing from `rank`: true when it was not already stale.
  bool mark_silent(std::int64_t rank) {
    RankStatus& s = ranks_[rank];
    if (s.stale) return false;
    s.stale = true;
    return true;
  }

  // The run's world shrank: ranks at or above `world` are forgotten.
  void forget_ranks_from(std::int64_t world) {
    ranks_.erase(ranks_.lower_bound(std::max<std::int64_t>(1, world)), ranks_.end());
  }

  // A new branch starts after `last_closed_step`: waiting samples are dropped and
  // no rank is further than that step.
  void start_branch(std::int64_t last_closed_step) {
    pending_.clear();
    for (auto& [rank, s] : ranks_) s.last_step = std::min(s.last_step, last_closed_step);
  }

  // The slot of `rank` in `step`'s pending sample set (the step's first sample
  // sets its deadline clock).
  Sample& add(std::int64_t step, std::int64_t rank, double time) {
    PendingStep& p = pending_[step];
    if (p.ranks.empty()) p.first_time = time;
    return p.ranks[rank];
  }

  bool waiting() const { return !pending_.empty(); }

  // The newest waiting step that may close, given `world` declared ranks, the
  // newest step seen and the current snapshot time; every older step closes with it.
  std::optional<std::int64_t> ready_through(const DistributedConfig& rule, std::int64_t world, std::int64_t max_step,
                                            double now) const {
    const std::int64_t live_ranks = live(world);
    const auto needed = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::ceil(rule.quorum * static_cast<double>(live_ranks) - 1e-9)));
    std::optional<std::int64_t> through;
    for (const auto& [step, p] : pending_) {
      std::int64_t have = 0;
      for (const auto& [rank, sample] : p.ranks) {
        auto it = ranks_.find(rank);
        if (it == ranks_.end() || !it->second.stale) ++have;
      }
      const bool ready =
          have >= needed || max_step >= step + rule.deadline_steps || now - p.first_time >= rule.deadline_seconds;
      if (ready) through = step;
    }
    return through;
  }

  // Removes and returns the oldest waiting step if it is at or before `through`.
  std::optional<PendingStep> pop_through(std::int64_t through) {
    if (pending_.empty() || pending_.begin()->first > through) return std::nullopt;
    PendingStep p = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    return p;
  }

 private:
  std::map<std::int64_t, RankStatus> ranks_;
  std::map<std::int64_t, PendingStep> pending_;
};

}  // namespace orbit
