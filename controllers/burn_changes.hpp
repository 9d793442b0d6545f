// SPDX-License-Identifier: Apache-2.0
#pragma once
// Which of the wanted actuator settings differ enough from what the adapter
// applies to be worth a burn: the Navigator's "burn" stage asks this before it
// writes one. Small moves inside the deadbands are not sent; a return to the
// default (or, for the lr, to the ceiling) always is, so the run lands exactly.

#include "controllers/actuator_settings.hpp"
#include "controllers/navigator_config.hpp"

namespace orbit {

struct BurnChanges {
  bool lr = false;            // the lr scale moved past limits.lr_deadband, or reached the ceiling or 1.0
  bool domain_weights = false;  // a weight moved past limits.weight_deadband, back to base, or the set changed
  bool curriculum_phase = false;
  bool loss_weights = false;   // a weight moved past limits.loss_weight_deadband, back to base, or the set changed
  bool off_default = false;   // what is applied now is not the defaults (a burn is holding)
  bool any_moved() const { return lr || domain_weights || curriculum_phase || loss_weights; }
};

// `lr_ceiling`: a wanted lr scale equal to it is always sent (the Navigator passes
// limits.lr_scale_max: the moving ceilings below it, a relaxing rollback ceiling
// or the absolute lr cap's scale limit, are followed through the deadband).
BurnChanges burn_changes(const ActuatorSettings& wanted, const ActuatorSettings& applied,
                         const ActuatorSettings& defaults, const BurnLimits& limits, double lr_ceiling);

}  // namespace orbit
