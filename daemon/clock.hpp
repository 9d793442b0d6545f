// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where orbitd reads time. The Server reads no clock of its own: main() passes
// the system's, tests pass one they advance by hand (session expiry, STALE ranks,
// uptime, journal timestamps and fsync intervals then follow it, with no sleeps).

#include <chrono>

namespace orbit {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall time in Unix seconds: session liveness, journal timestamps, uptime.
  virtual double now() const = 0;
  // Monotonic time for intervals that must not jump with the wall clock (fsync).
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
};

class SystemClock final : public Clock {
 public:
  double now() const override {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
  std::chrono::steady_clock::time_point steady_now() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace orbit
