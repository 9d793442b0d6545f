// SPDX-License-Identifier: Apache-2.0
#include "controllers/early_corroboration.hpp"

#include <cmath>

namespace orbit {

void EarlyCorroboration::update(std::int64_t step, std::optional<double> loss_level, std::optional<bool> attn_danger,
                                const EarlyCorroborationConfig& cfg) {
  // A step counter that went back (a rollback, a resumed job): start over.
  if (!levels_.empty() && step < levels_.back().first) reset();
  if (attn_danger) attn_danger_ = *attn_danger;
  fall_.reset();
  if (!loss_level || !std::isfinite(*loss_level) || *loss_level <= 0.0) return;
  levels_.emplace_back(step, *loss_level);
  const std::int64_t from = step - cfg.window;
  // Keep the newest point at or before `from` (the reference) and everything after it.
  while (levels_.size() > 1 && levels_[1].first <= from) levels_.pop_front();
  if (levels_.front().first <= from) fall_ = 1.0 - *loss_level / levels_.front().second;
}

bool EarlyCorroboration::corroborated(const EarlyCorroborationConfig& cfg, bool loss_counts) const {
  if (cfg.loss_fall <= 0.0 || attn_danger_) return true;
  if (!loss_counts) return false;
  // No reference yet (the run's first window): nothing speaks against the alarm.
  return !fall_ || *fall_ < cfg.loss_fall;
}

void EarlyCorroboration::reset() {
  levels_.clear();
  fall_.reset();
  attn_danger_ = false;
}

}  // namespace orbit
