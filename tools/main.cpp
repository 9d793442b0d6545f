// SPDX-License-Identifier: Apache-2.0
// `orbit`: the command line for Orbit journals and running daemons.

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "journal/journal_error.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/exit_codes.hpp"

#ifndef ORBIT_VERSION
#define ORBIT_VERSION "0.0.0"
#endif

namespace {

struct Command {
  const char* name;
  int (*run)(std::span<const std::string>);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"replay", orbit::replay_command, "feed a journal through a controller config; states, burns, alarms, lead"},
    {"tune", orbit::tune_command, "search controller gains over journals (open- or closed-loop objective)"},
    {"import", orbit::import_command, "turn a training log (csv, llm.c, step log, Megatron) into a journal"},
    {"export", orbit::export_command, "write a journal as JSON lines or CSV"},
    {"watch", orbit::watch_command, "live view of every run from orbitd's telemetry socket"},
    {"status", orbit::status_command, "one-shot view of orbitd: runs, sessions, counters"},
    {"keygen", orbit::keygen_command, "write a CURVE key pair (NAME.key 0600, NAME.pub) for orbitd or a client"},
};

void usage(std::FILE* out) {
  std::fprintf(out, "usage: orbit COMMAND [ARGS...]   (orbit COMMAND --help for each)\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
  std::fprintf(out, "\n  --version  print the version\n\n%s", orbit::kExitCodeHelp);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return orbit::kExitUsage;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    if (argc > 2) {
      for (const auto& c : kCommands)
        if (std::strcmp(c.name, argv[2]) == 0) {
          const std::vector<std::string> help = {"--help"};
          return c.run(help);
        }
    }
    usage(stdout);
    return orbit::kExitOk;
  }
  if (name == "--version") {
    std::printf("orbit %s\n", ORBIT_VERSION);
    return orbit::kExitOk;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    const std::vector<std::string> args(argv + 2, argv + argc);
    try {
      return c.run(args);
    } catch (const orbit::UsageError& e) {
      std::fprintf(stderr, "orbit %s: %s\n", c.name, e.what());
      return orbit::kExitUsage;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "orbit %s: %s\n", c.name, e.what());
      return orbit::kExitData;
    }
  }
  std::fprintf(stderr, "orbit: unknown command '%s'\n\n", name.c_str());
  usage(stderr);
  return orbit::kExitUsage;
}
