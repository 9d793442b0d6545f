// SPDX-License-Identifier: Apache-2.0
#pragma once
// A one-line progress bar for long work, drawn in place on stderr, so stdout stays
// the command's result (`orbit tune ... > tuned.toml` still shows progress). By
// default it is drawn only when stderr is a terminal (pipes, files and tests see
// nothing); --progress / --no-progress choose. Redraws at most every 100 ms;
// thread-safe advance()/set() for parallel work.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace orbit {

class ParsedArgs;

enum class ProgressDisplay {
  when_terminal,  // stderr is a terminal and ORBIT_NO_PROGRESS is unset
  always,         // --progress
  never,          // --no-progress
};

// The --progress / --no-progress flags of a command (both given: UsageError).
ProgressDisplay progress_display(const ParsedArgs& args);

class ProgressBar {
 public:
  ProgressBar(std::string label, std::uint64_t total, ProgressDisplay display = ProgressDisplay::when_terminal);
  ~ProgressBar();  // finishes the line
  void advance(std::uint64_t n = 1);
  void set(std::uint64_t done);
  void finish();
  static bool enabled(ProgressDisplay display);

 private:
  void draw(bool force);
  std::string label_;
  std::uint64_t total_;
  std::atomic<std::uint64_t> done_{0};
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool enabled_;
  bool finished_ = false;
};

}  // namespace orbit
