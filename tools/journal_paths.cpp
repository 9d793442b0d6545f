// SPDX-License-Identifier: Apache-2.0
#include "tools/journal_paths.hpp"

#include <algorithm>
#include <system_error>

#include "journal/journal_error.hpp"
#include "journal/journal_reader.hpp"

namespace orbit {

namespace fs = std::filesystem;

namespace {
bool has_segments(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (segment_number(e.path())) return true;
  return false;
}
}  // namespace

std::vector<fs::path> find_run_dirs(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec))
    throw JournalError(path.string() + " is not a directory (a journal is a run directory or a journal root)");
  if (has_segments(path)) return {path};
  std::vector<fs::path> runs;
  for (const auto& e : fs::directory_iterator(path, ec))
    if (e.is_directory(ec) && has_segments(e.path())) runs.push_back(e.path());
  std::sort(runs.begin(), runs.end());
  if (runs.empty()) throw JournalError(path.string() + " holds no journal (no segment-*.orbj files in it or its sub-directories)");
  return runs;
}

}  // namespace orbit
