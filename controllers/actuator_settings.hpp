// SPDX-License-Identifier: Apache-2.0
#pragma once
// The actuators (the one list is protocol's kActuators; Actuator indexes it) and
// the values an adapter applies for them: the last burn's, or the defaults.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/messages.hpp"

namespace orbit {

enum class Actuator : unsigned { lr, domain_weights, curriculum, loss_weights, rollback };
static_assert(std::size(kActuators) == 5 && kActuators[0] == "lr" && kActuators[1] == "domain_weights" &&
                  kActuators[2] == "curriculum" && kActuators[3] == "loss_weights" && kActuators[4] == "rollback",
              "Actuator indexes protocol's kActuators");

struct ActuatorSettings {
  double lr_scale = 1.0;
  std::map<std::string, double> domain_weights;
  std::optional<std::int64_t> curriculum_phase;
  std::map<std::string, double> loss_weights;
};

}  // namespace orbit
