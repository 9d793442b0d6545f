// SPDX-License-Identifier: Apache-2.0
#pragma once
// Exit codes of every `orbit` subcommand (also printed by `orbit --help`).

namespace orbit {

enum ExitCode : int {
  kExitOk = 0,       // done; nothing wrong found
  kExitFinding = 1,  // the command ran and found what it checks for: replay differs from the
                     // recorded burns, tune found no better gains, watch/status saw no daemon
  kExitUsage = 2,    // bad command line (unknown option, missing argument)
  kExitData = 3,     // I/O or data error: unreadable file, damaged journal, bad config
};

inline constexpr const char* kExitCodeHelp =
    "exit codes: 0 ok; 1 finding (replay differs from the recorded burns, tune found nothing\n"
    "better, watch/status heard no daemon); 2 usage error; 3 I/O or data error.\n";

}  // namespace orbit
