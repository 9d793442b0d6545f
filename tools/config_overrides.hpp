// SPDX-License-Identifier: Apache-2.0
#pragma once
// `--set key=value` on top of an orbitd config text. Keys are dotted TOML paths
// ("controller.pid.warning.kp"); a key whose first part is not a section of the
// config file ([daemon], [limits], [logging], [journal], [controller]) is taken
// under [controller], so "pid.warning.kp" works too. Values are TOML ("0.5", "true",
// "[\"hidden\"]"); anything that does not parse as TOML is a string.

#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace orbit {

using Overrides = std::vector<std::pair<std::string, std::string>>;

// "pid.warning.kp" -> "controller.pid.warning.kp".
std::string full_config_key(const std::string& key);

// The text with every override applied (throws ConfigError naming the key).
std::string apply_overrides(const std::string& toml_text, const Overrides& overrides, const std::string& source);

// parse_daemon_config(apply_overrides(text)).
DaemonConfig config_with_overrides(const std::string& toml_text, const Overrides& overrides,
                                   const std::string& source);

}  // namespace orbit
