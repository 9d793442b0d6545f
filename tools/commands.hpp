// SPDX-License-Identifier: Apache-2.0
#pragma once
// The `orbit` subcommands. Each takes the arguments after its name and returns an
// exit code (exit_codes.hpp); UsageError and other exceptions are mapped by main.

#include <span>
#include <string>

namespace orbit {

int import_command(std::span<const std::string> args);
int export_command(std::span<const std::string> args);
int replay_command(std::span<const std::string> args);
int tune_command(std::span<const std::string> args);
int watch_command(std::span<const std::string> args);
int status_command(std::span<const std::string> args);
int keygen_command(std::span<const std::string> args);

}  // namespace orbit
