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

// An operator's burn: the `burn` fields an operator may give (run, lr_scale > 0,
// reason, expires_after_steps >= 0 with 0 = the config's expiry, domain_weights and
// loss_weights finite >= 0, curriculum_phase, rollback_to_step, skip_batches >= 0);
// the others (seq, state, ...) are the Navigator's to fill. Every value is checked
// here; the run's Navigator then clamps it to the config's bounds and checks what
// depends on the config (the curriculum phase exists).
struct BurnCommand {
  Burn requested = default_request();

  static Burn default_request() {
    Burn b;
    b.reason = "operator burn";
    b.expires_after_steps = 0;
    return b;
  }
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

}  // namespace orbit
