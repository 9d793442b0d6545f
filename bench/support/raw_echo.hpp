// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the ZeroMQ benches share: the raw floor they compare orbitd with (a ROUTER
// that sends every message straight back, run as a re-exec of the bench binary),
// the percentile they report, and the hello a bench client opens a run with.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include "protocol/messages.hpp"

namespace orbit::bench {

// The raw floor: receive [identity, payload], send it straight back. Writes the
// bound endpoint to `ready` when listening; `hwm` > 0 sets both high-water marks.
[[noreturn]] inline void run_raw_echo(const std::string& endpoint, const std::string& ready, int hwm) {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  if (hwm > 0) {
    s.set(zmq::sockopt::sndhwm, hwm);
    s.set(zmq::sockopt::rcvhwm, hwm);
  }
  s.bind(endpoint);
  std::ofstream(ready + ".tmp") << s.get(zmq::sockopt::last_endpoint);
  std::filesystem::rename(ready + ".tmp", ready);
  for (;;) {
    zmq::message_t id, body;
    if (!s.recv(id)) continue;
    if (!s.recv(body)) continue;
    s.send(id, zmq::send_flags::sndmore);
    s.send(body, zmq::send_flags::none);
  }
}

// The echo in its own process, as orbitd is: this binary re-executed as
// `argv0 --echo ENDPOINT READY_FILE` (its main hands those to run_raw_echo).
// Killed at scope exit.
class RawEchoProcess {
 public:
  RawEchoProcess(const std::string& argv0, const std::string& endpoint, const std::string& ready) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/proc/self/exe", argv0.c_str(), "--echo", endpoint.c_str(), ready.c_str(), nullptr);
      std::_Exit(127);
    }
    while (!std::filesystem::exists(ready)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::ifstream(ready) >> endpoint_;
  }
  ~RawEchoProcess() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  RawEchoProcess(const RawEchoProcess&) = delete;
  RawEchoProcess& operator=(const RawEchoProcess&) = delete;

  const std::string& endpoint() const { return endpoint_; }  // as bound (tcp://...:* resolved)
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string endpoint_;
};

// The p-quantile (0..1) of `v`, nearest rank below; reorders `v`. 0 when empty.
template <typename T>
double percentile(std::vector<T>& v, double p) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return static_cast<double>(v[k]);
}

}  // namespace orbit::bench
