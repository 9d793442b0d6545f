// SPDX-License-Identifier: Apache-2.0
#include "daemon/fd_limit.hpp"

#include <sys/resource.h>

namespace orbit {

std::uint64_t fds_needed(const DaemonConfig& config) {
  const std::uint64_t journal = config.journal.dir.empty() ? 0 : config.journal.max_open_files;
  return static_cast<std::uint64_t>(config.max_sessions) + journal + kReservedFds;
}

std::uint64_t raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(lim.rlim_cur);
}

std::string fd_budget_problem(const DaemonConfig& config, std::uint64_t limit) {
  const std::uint64_t needed = fds_needed(config);
  if (needed <= limit) return {};
  return "the configured caps need up to " + std::to_string(needed) + " file descriptors (daemon.max_sessions " +
         std::to_string(config.max_sessions) + " + journal.max_open_files " +
         std::to_string(config.journal.dir.empty() ? 0 : config.journal.max_open_files) + " + " +
         std::to_string(kReservedFds) + " reserved) but the open-file limit is " + std::to_string(limit) +
         " (ulimit -n, hard limit included); lower daemon.max_sessions or raise the limit";
}

}  // namespace orbit
