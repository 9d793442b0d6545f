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

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

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
  void reset() { points_.clear(); }

 private:
  std::deque<std::pair<std::int64_t, double>> points_;  // (step, log2 logit max)
};

}  // namespace orbit
