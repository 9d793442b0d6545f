// SPDX-License-Identifier: Apache-2.0
#pragma once
// A one-line progress bar for long work, drawn in place on stdout only when stdout
// is a terminal (so pipes, files and tests see clean output). Redraws at most every
// 100 ms; thread-safe update() for parallel work.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace orbit {

class ProgressBar {
 public:
  ProgressBar(std::string label, std::uint64_t total);
  ~ProgressBar();  // finishes the line
  void advance(std::uint64_t n = 1);
  void set(std::uint64_t done);
  void finish();
  static bool enabled();  // stdout is a terminal and ORBIT_NO_PROGRESS is unset

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
