// SPDX-License-Identifier: Apache-2.0
#pragma once
// orbitd's log output: spdlog to stderr, as text or as one JSON object per line.

#include <string>

#include "config/config.hpp"

namespace orbit {

// Throws std::invalid_argument for an unknown level name.
void configure_logging(const std::string& level, LogFormat format);

}  // namespace orbit
