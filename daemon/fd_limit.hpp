// SPDX-License-Identifier: Apache-2.0
#pragma once
// File descriptors orbitd needs: one per adapter connection (up to
// daemon.max_sessions), the journal's open segment files (journal.max_open_files)
// and a fixed reserve (ZeroMQ's own, the HTTP endpoint, lock files, logs).
// Running out inside libzmq aborts the process, so the limit is raised to the
// hard limit at start and a configuration that cannot fit is refused up front.

#include <cstdint>
#include <string>

#include "config/config.hpp"

namespace orbit {

inline constexpr std::uint64_t kReservedFds = 128;

// Descriptors the configured caps may use at once.
std::uint64_t fds_needed(const DaemonConfig& config);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.
std::uint64_t raise_fd_limit();

// "" when `needed` fits under `limit`, else a sentence naming both, the keys
// that drive them and what to do.
std::string fd_budget_problem(const DaemonConfig& config, std::uint64_t limit);

}  // namespace orbit
