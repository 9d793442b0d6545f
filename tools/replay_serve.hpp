// SPDX-License-Identifier: Apache-2.0
#pragma once
// `orbit replay --serve ADDR`: the dashboard page orbitd serves, over runs replayed
// from a finished journal (dashboard/ holds the HTTP endpoint and the page's data,
// so this needs no daemon).

#include <string>
#include <vector>

#include "journal/journal_replay.hpp"
#include "tools/replay.hpp"

namespace orbit {

// Serves every run of `replays` (with its recording, for the latest spectrum) on
// "HOST:PORT" (loopback only; port 0 = any free port) until SIGINT or SIGTERM.
// Prints "serving http://HOST:PORT" on stdout once bound. Throws
// std::runtime_error naming the address when it cannot bind.
void serve_replays(const std::string& address, const std::string& source, const std::vector<const RunReplay*>& replays,
                   const std::vector<const RecordedRun*>& recordings);

}  // namespace orbit
