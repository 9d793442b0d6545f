// SPDX-License-Identifier: Apache-2.0
#pragma once
// Control endpoint messages (protocol/SPEC.md section 9): what an operator, `orbit
// status` or a script asks a running orbitd, decoded and validated by the protocol
// codec like every adapter message, so a bad request gets an error reply and
// changes nothing.
//
//   request: {"v": 1, "type": "control", "cmd": NAME, ...fields of the command}
//   reply:   {"v": 1, "type": "control_reply", "ok": bool, "error": str (when not ok), ...}

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/codec.hpp"
#include "protocol/mode.hpp"

namespace orbit {

struct StatusCommand {};

struct SetModeCommand {
  Mode mode = Mode::active;
  std::optional<std::string> run;  // none: every run and the mode of new runs
};

// An operator's burn. Every value is checked here (finite, in range); the run's
// Navigator then clamps it to the config's bounds and checks what depends on the
// config (the curriculum phase exists).
struct BurnCommand {
  std::string run;
  double lr_scale = 1.0;                        // > 0
  std::string reason = "operator burn";
  std::int64_t expires_after_steps = 0;         // >= 0; 0: the config's expiry
  std::map<std::string, double> domain_weights;  // finite, >= 0
  std::map<std::string, double> loss_weights;    // finite, >= 0
  std::optional<std::int64_t> curriculum_phase;  // >= 0
  std::optional<std::int64_t> rollback_to_step;  // >= 0
  std::optional<std::int64_t> skip_batches;      // >= 0
};

struct ReloadCommand {};

using ControlCommand = std::variant<StatusCommand, SetModeCommand, BurnCommand, ReloadCommand>;

struct ControlDecodeResult {
  std::optional<ControlCommand> command;
  std::string error;  // a sentence for the reply's `error` when !command
};

// Never throws on bad input.
ControlDecodeResult decode_control(std::string_view bytes, const DecodeLimits& limits = {});
// The request for `command` (clients: orbit status, tests).
std::string encode_control(const ControlCommand& command);
// {"v": 1, "type": "control_reply", "ok": false, "error": message}
std::string encode_control_error(std::string_view message);

// The burn an operator's command asks for, as the Navigator takes it.
Burn requested_burn(const BurnCommand& command);

}  // namespace orbit
