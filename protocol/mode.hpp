// SPDX-License-Identifier: Apache-2.0
#pragma once
// A run's mode, and its one spelling on the wire, in journals, configs and
// commands: "active" (the controller burns) or "monitor" (it observes only).

#include <optional>
#include <string_view>

namespace orbit {

enum class Mode { active, monitor };

constexpr std::string_view to_string(Mode mode) { return mode == Mode::monitor ? "monitor" : "active"; }

// nullopt for anything but "active" or "monitor".
constexpr std::optional<Mode> parse_mode(std::string_view text) {
  if (text == "active") return Mode::active;
  if (text == "monitor") return Mode::monitor;
  return std::nullopt;
}

}  // namespace orbit
