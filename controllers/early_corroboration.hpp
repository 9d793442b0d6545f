// SPDX-License-Identifier: Apache-2.0
#pragma once
// Early in training (steps below signals.signature_early_steps) a healthy run's
// hidden states pass through a transient that can look like the collapse signature
// for 20+ steps (efficacy suite, setting H, fresh seed 2001: dominant ratio 0.89 ->
// 0.95 over steps 20-40, effective rank 1.4-2.1 to step 50). Duration alone does not
// tell it from a collapse; the run itself does: through the transient the healthy
// run's smoothed loss falls 5.7-13 % per 20 steps, while a collapsing run's stalls
// (post-LN at lr 1e-2: -0.3 to +1.3 % at its confirming probe) or its attention
// logits blow up (attn_logit_growth in danger: setting C, and most post-LN runs).
// An early hidden-state alarm (the signature, a spectral zone in danger) is
// corroborated when the smoothed loss fell less than `loss_fall` over the last
// `window` training steps, or attention-logit growth was in danger at its last
// reading; otherwise it waits (it still counts as soon as either holds, and at
// once past the early phase).

#include <cstdint>
#include <optional>
#include <utility>

#include "controllers/ring_deque.hpp"

namespace orbit {

struct EarlyCorroborationConfig {
  double loss_fall = 0.03;   // share of its smoothed level; 0 = off (every early alarm corroborated)
  std::int64_t window = 20;  // training steps (signals.signature_confirm_steps)
};

class EarlyCorroboration {
 public:
  // One closed step. `loss_level`: the run's smoothed loss after this step (nullopt:
  // none, e.g. non-finite); `attn_danger`: attn_logit_growth's zone at this step
  // when it had a reading (nullopt: no reading, the last one stands).
  void update(std::int64_t step, std::optional<double> loss_level, std::optional<bool> attn_danger,
              const EarlyCorroborationConfig& config);
  // 1 - level now / level `window` steps ago (the newest point at or before it);
  // nullopt until the run has a point that old.
  std::optional<double> loss_fall() const { return fall_; }
  // Does the run corroborate an early hidden-state alarm at this step? Without
  // `loss_counts` only the attention logits can: on a branch restored by a rollback
  // the controller itself holds the lr low (the restart lr and its re-warmup), so a
  // slowly falling loss there says nothing about a collapse.
  bool corroborated(const EarlyCorroborationConfig& config, bool loss_counts = true) const;
  void reset();

 private:
  RingDeque<std::pair<std::int64_t, double>> levels_;  // (step, smoothed loss)
  std::optional<double> fall_;
  bool attn_danger_ = false;
};

}  // namespace orbit
