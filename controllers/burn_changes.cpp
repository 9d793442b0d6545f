// SPDX-License-Identifier: Apache-2.0
#include "controllers/burn_changes.hpp"

#include <algorithm>
#include <cmath>

namespace orbit {

BurnChanges burn_changes(const ActuatorSettings& want, const ActuatorSettings& applied,
                         const ActuatorSettings& base, const BurnLimits& lim, double lr_ceiling) {
  BurnChanges c;
  c.lr = want.lr_scale != applied.lr_scale &&
         (std::abs(std::log(want.lr_scale / applied.lr_scale)) > std::log1p(lim.lr_deadband) ||
          want.lr_scale == lr_ceiling || want.lr_scale == 1.0);
  double weight_change = 0.0;
  for (const auto& [name, w] : want.domain_weights) {
    auto it = applied.domain_weights.find(name);
    weight_change = std::max(weight_change, std::abs(w - (it == applied.domain_weights.end() ? 0.0 : it->second)));
  }
  c.domain_weights = want.domain_weights != applied.domain_weights &&
                     (weight_change > lim.weight_deadband || want.domain_weights == base.domain_weights ||
                      want.domain_weights.size() != applied.domain_weights.size());
  c.curriculum_phase = want.curriculum_phase.value_or(0) != applied.curriculum_phase.value_or(0);
  double loss_weight_change = 0.0;
  bool same_keys = want.loss_weights.size() == applied.loss_weights.size();
  for (const auto& [name, w] : want.loss_weights) {
    auto it = applied.loss_weights.find(name);
    if (it == applied.loss_weights.end()) {
      same_keys = false;
      continue;
    }
    loss_weight_change = std::max(loss_weight_change, std::abs(w - it->second));
  }
  c.loss_weights = want.loss_weights != applied.loss_weights &&
                   (loss_weight_change > lim.loss_weight_deadband || want.loss_weights == base.loss_weights || !same_keys);
  c.off_default = applied.lr_scale != 1.0 || applied.domain_weights != base.domain_weights ||
                  applied.curriculum_phase.value_or(0) != 0 || applied.loss_weights != base.loss_weights;
  return c;
}

}  // namespace orbit
