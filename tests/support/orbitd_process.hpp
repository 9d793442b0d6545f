// SPDX-License-Identifier: Apache-2.0
#pragma once
// Starts a real orbitd for a test: fork/exec with --ready-file, waits until the
// sockets are bound, reads the actual endpoints back, and stops it at scope exit.
// The binary comes from $ORBITD (set by ctest).

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace orbit::test {

inline std::filesystem::path make_temp_dir(const std::string& tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("orbit-" + tag + "-XXXXXX")).string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

class OrbitdProcess {
 public:
  struct Endpoints {
    std::string adapters, telemetry, control;
    std::string http;  // "" unless orbitd was given --http
  };

  // `args` are passed after the test's own --ready-file; by default every
  // endpoint is tcp://127.0.0.1:* so parallel tests never collide (the control
  // endpoint on tcp with --allow-exposed-control).
  explicit OrbitdProcess(std::vector<std::string> args = {}, bool default_endpoints = true)
      : dir_(make_temp_dir("orbitd")) {
    const char* bin = std::getenv("ORBITD");
    if (!bin) throw std::runtime_error("ORBITD is not set (ctest sets it to the built orbitd)");
    ready_ = (dir_ / "ready.json").string();
    std::vector<std::string> argv{bin, "--ready-file", ready_, "--log-level", "warn"};
    if (default_endpoints) {
      for (const char* flag : {"--endpoint", "--telemetry", "--control"}) {
        argv.push_back(flag);
        argv.push_back("tcp://127.0.0.1:*");
      }
      argv.push_back("--allow-exposed-control");  // tcp control on loopback, for parallel tests
    }
    argv.insert(argv.end(), args.begin(), args.end());
    log_ = (dir_ / "orbitd.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed or killed test leaves no daemon behind
      FILE* f = std::freopen(log_.c_str(), "w", stderr);
      (void)f;
      std::vector<char*> cargs;
      for (auto& a : argv) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      ::execv(cargs[0], cargs.data());
      std::_Exit(127);
    }
    wait_ready();
  }

  ~OrbitdProcess() {
    stop(SIGKILL);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Sends `signo` and waits; returns the exit status (or 128+signal).
  int stop(int signo = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (pid_ <= 0) return exit_code_;
    ::kill(pid_, signo);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  bool alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  pid_t pid() const { return pid_; }
  const Endpoints& endpoints() const { return endpoints_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::string log() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  void wait_ready() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(ready_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("orbitd exited before it was ready:\n" + log());
      }
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("orbitd not ready in 20 s:\n" + log());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::ifstream in(ready_);
    std::stringstream s;
    s << in.rdbuf();
    const std::string json = s.str();
    auto get = [&](const std::string& key) {
      std::smatch m;
      std::regex re("\"" + key + "\": \"([^\"]*)\"");
      if (!std::regex_search(json, m, re)) throw std::runtime_error("ready file lacks " + key + ": " + json);
      return m[1].str();
    };
    endpoints_ = {get("endpoint"), get("telemetry"), get("control"), get("http")};
  }

  std::filesystem::path dir_;
  std::string ready_;
  std::string log_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  Endpoints endpoints_;
};

}  // namespace orbit::test
