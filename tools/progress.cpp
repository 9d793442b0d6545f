// SPDX-License-Identifier: Apache-2.0
#include "tools/progress.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <unistd.h>

#include "tools/cli_args.hpp"

namespace orbit {

ProgressDisplay progress_display(const ParsedArgs& args) {
  const bool on = args.has("progress"), off = args.has("no-progress");
  if (on && off) throw UsageError("--progress and --no-progress contradict each other; give one");
  return on ? ProgressDisplay::always : off ? ProgressDisplay::never : ProgressDisplay::when_terminal;
}

bool ProgressBar::enabled(ProgressDisplay display) {
  switch (display) {
    case ProgressDisplay::always: return true;
    case ProgressDisplay::never: return false;
    case ProgressDisplay::when_terminal: break;
  }
  return ::isatty(STDERR_FILENO) == 1 && std::getenv("ORBIT_NO_PROGRESS") == nullptr;
}

ProgressBar::ProgressBar(std::string label, std::uint64_t total, ProgressDisplay display)
    : label_(std::move(label)), total_(total), start_(std::chrono::steady_clock::now()), enabled_(enabled(display)) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::advance(std::uint64_t n) {
  done_.fetch_add(n, std::memory_order_relaxed);
  draw(false);
}

void ProgressBar::set(std::uint64_t done) {
  done_.store(done, std::memory_order_relaxed);
  draw(false);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  draw(true);
  std::fputs("\n", stderr);
  std::fflush(stderr);
  finished_ = true;
}

void ProgressBar::draw(bool force) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const std::uint64_t done = std::min(done_.load(std::memory_order_relaxed), total_);
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int width = 30;
  const int filled = static_cast<int>(frac * width);
  std::string bar;
  for (int i = 0; i < width; ++i) bar += i < filled ? "\u2588" : "\u2591";
  const double secs = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r\x1b[2K%s %s %3.0f%% %llu/%llu %.1fs", label_.c_str(), bar.c_str(), 100.0 * frac,
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), secs);
  std::fflush(stderr);
}

}  // namespace orbit
