// SPDX-License-Identifier: Apache-2.0
#pragma once
// One thing a signal stage saw at a closed step: the worst finding of the step
// drives the orbit state machine, and each kind is reported once while it lasts.

#include <string>

#include "controllers/orbit_state_machine.hpp"

namespace orbit {

struct Finding {
  Severity severity = Severity::none;
  std::string reason;  // readable; becomes the transition's or the alarm's text
  std::string key;     // what kind of alarm ("loss_jump", "entropy:danger"), to report each once
};

}  // namespace orbit
