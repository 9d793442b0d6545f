// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a journal PATH on the command line means: a run directory (it holds
// segment-*.orbj files) or a journal root (its sub-directories are runs).

#include <filesystem>
#include <vector>

namespace orbit {

// The run directories under `path`, sorted; throws JournalError when there are none.
std::vector<std::filesystem::path> find_run_dirs(const std::filesystem::path& path);

}  // namespace orbit
