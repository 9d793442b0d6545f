// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs the real `orbit` binary (path from the ORBIT_CLI compile definition) and
// captures its output and exit code.

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace orbit::detail {

struct CommandResult {
  int code = -1;
  std::string output;  // stdout and stderr together
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

inline CommandResult run_orbit(const std::vector<std::string>& args) {
  std::string cmd = shell_quote(ORBIT_CLI);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " 2>&1";
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace orbit::detail
