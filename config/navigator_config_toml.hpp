// SPDX-License-Identifier: Apache-2.0
#pragma once
// TOML → NavigatorConfig: the [controller] section and its sub-tables, plus the
// basin map file it names. Every invalid value (wrong type, out of range, unknown
// basin or zone name, unknown key) throws ConfigError(file, dotted key, reason).

#include <string>

#include <toml++/toml.h>

#include "controllers/navigator_config.hpp"
#include "config/config_error.hpp"

namespace orbit {

// `root` is the whole parsed file; `file` names it in errors and anchors the
// relative path of `controller.basin_map`. A missing [controller] gives defaults.
NavigatorConfig load_navigator_config(const toml::table& root, const std::string& file);

// The basin map (data-quality scorecard): [domains.NAME] with basins, verdict,
// weight, note. Throws ConfigError naming `file`.
std::map<std::string, DomainProfile> load_basin_map(const toml::table& root, const std::string& file);
std::map<std::string, DomainProfile> load_basin_map_file(const std::string& path);

}  // namespace orbit
