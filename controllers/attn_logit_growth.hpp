// SPDX-License-Identifier: Apache-2.0
#pragma once
// Attention-logit growth (Wortsman et al. 2023, "small-scale proxies"): the largest
// pre-softmax attention logit (the adapters' `attn_logit_max` scalar) growing
// exponentially is how a slow warmup collapse starts, often with no hidden-state
// signature at all. Reported as doublings per 100 training steps: the least-squares
// slope of log2(attn_logit_max) over the probes of the last window_steps training
// steps (at least the last three probes, so a sparse probe cadence still gets a
// slope). Scale-free: the units of the logits do not matter, only how fast they
// grow. Below `floor` (nats: a logit gap of 8 already puts e^8 ≈ 3000x more weight
// on one key, saturation) the growth is reported as 0: every run's logits grow fast
// from their near-zero initial values, which is not a collapse.
//
// After a restart from a checkpoint (a rollback's restored branch, a resumed job)
// the run's logits start again from the checkpoint's, near zero when it is an early
// step, and with the lr rising they can pass the floor within one window: a window
// still holding the restart's near-zero probes then reads a steep rise that is the
// init transient again, not a collapse (post-LN calibration seed 2 with a 100-step
// re-warmup: 7.6 doublings per 100 steps, a second rollback). On such a branch a
// probe below the floor enters the fit at the floor, so the growth measures the
// rise from the floor.
// A first branch is unchanged: clamping there too caught setting C 20-40 steps later.

#include <cstdint>
#include <optional>
#include <utility>

#include "controllers/ring_deque.hpp"

namespace orbit {

struct AttnLogitConfig {
  double floor = 8.0;               // attn_logit_max below this: growth reads 0
  std::int64_t window_steps = 100;  // training steps of the slope's window
};

class AttnLogitGrowth {
 public:
  // One closed step; `logit_max`: this step's attn_logit_max (nullopt: not probed).
  // Returns the growth in doublings per 100 training steps when this step carried a
  // value and the window holds at least two probes; nullopt otherwise.
  std::optional<double> update(std::int64_t step, std::optional<double> logit_max, const AttnLogitConfig& config);
  // The run restarts from a checkpoint: the window forgets the branch before it, and
  // from now on probes below the floor enter the fit at the floor.
  void restart_from_checkpoint() {
    points_.clear();
    restored_ = true;
  }

 private:
  RingDeque<std::pair<std::int64_t, double>> points_;  // (step, log2 logit max)
  bool restored_ = false;                               // on a branch restored from a checkpoint
};

}  // namespace orbit
