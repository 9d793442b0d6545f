// SPDX-License-Identifier: Apache-2.0
// orbitd: the Orbit daemon. Parses the command line, loads the config, runs the
// Server on one Asio loop, and turns signals into shutdown and reload.

#include <utility>  // before Asio: Boost 1.74 under C++20

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include <boost/asio.hpp>
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "config/config.hpp"
#include "config/config_error.hpp"
#include "config/endpoints.hpp"
#include "daemon/logging.hpp"
#include "daemon/fd_limit.hpp"
#include "daemon/server.hpp"

namespace {

constexpr const char* kUsage = R"(orbitd - closed-loop training controller daemon

Usage:
  orbitd [--config FILE] [options]
  orbitd --check-config FILE
  orbitd --version | --help

Options:
  --config FILE        TOML configuration (configs/default.toml documents every key).
                       Without it, the built-in defaults (equal to that file) are used.
  --endpoint EP        adapters' endpoint (ZeroMQ ROUTER), e.g. tcp://127.0.0.1:5555,
                       tcp://127.0.0.1:* (any free port), ipc:///path/orbitd.sock.
                       Default: ipc://$XDG_RUNTIME_DIR/orbit/orbitd.sock, or
                       ipc:///tmp/orbit-<uid>/orbitd.sock (directory mode 0700).
  --telemetry EP       telemetry PUB endpoint (default: telemetry.sock beside it).
  --control EP         control endpoint for `orbit status` and operator commands
                       (default: control.sock beside it).
  --http HOST:PORT     serve GET /metrics (Prometheus) and GET /status (JSON) over
                       HTTP, e.g. 127.0.0.1:9464 (port 0 = any free port). Default:
                       [daemon] http, off unless set. Read-only; bind loopback.
  --allow-exposed-control
                       allow a control endpoint that is not an ipc socket in a private
                       directory (tcp, abstract ipc): whoever reaches it can steer every
                       run (same as [daemon] allow_exposed_control = true).
  --allow-exposed-http allow --http on an address other than loopback (same as
                       [daemon] allow_exposed_http = true); HTTP has no authentication.
  --journal-dir DIR    journal root, one directory per run (overrides journal.dir).
  --mode MODE          active (burns) or monitor (observe only) for every run.
  --log-level LEVEL    trace, debug, info, warn, error, critical or off.
  --log-format FMT     text or json (one JSON object per line).
  --ready-file PATH    once bound, write {"endpoint","telemetry","control","http","pid"} as JSON
                       to PATH (lets scripts and tests use tcp://127.0.0.1:*).
  --check-config FILE  validate FILE and exit: 0 when valid, 2 with the reason when not.
  --version            print the version and exit.
  --help               print this help and exit.

Signals: SIGINT/SIGTERM finish the message in hand, flush and exit 0;
SIGHUP reloads --config (an invalid file is logged and the old config kept).

Exit status: 0 clean stop, 1 runtime failure (e.g. an endpoint cannot be bound or
is exposed without the flag that allows it, or the open-file limit is too low),
2 usage or configuration error.
)";

struct Options {
  std::optional<std::string> config;
  std::optional<std::string> endpoint, telemetry, control, http, journal_dir, mode, log_level, log_format, ready_file;
  bool allow_exposed_control = false;
  bool allow_exposed_http = false;
};

// Command-line values win over the file, also after a reload.
void apply_overrides(orbit::DaemonConfig& c, const Options& o) {
  if (o.endpoint) c.endpoint = *o.endpoint;
  if (o.telemetry) c.telemetry = *o.telemetry;
  if (o.control) c.control = *o.control;
  if (o.http) {
    c.http = *o.http;
    if (!c.http.empty()) orbit::parse_http_address(c.http);  // std::invalid_argument: a usage error
  }
  if (o.journal_dir) c.journal.dir = *o.journal_dir;
  if (o.allow_exposed_control) c.allow_exposed_control = true;
  if (o.allow_exposed_http) c.allow_exposed_http = true;
  if (o.mode) c.mode = *o.mode;
  if (o.log_level) c.log_level = *o.log_level;
  if (o.log_format) c.log_format = *o.log_format == "json" ? orbit::LogFormat::json : orbit::LogFormat::text;
}

orbit::DaemonConfig load(const Options& o) {
  orbit::DaemonConfig c = o.config ? orbit::load_daemon_config(*o.config) : orbit::parse_daemon_config("", "<defaults>");
  apply_overrides(c, o);
  return c;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

void write_ready_file(const std::string& path, const orbit::Server::Endpoints& e) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << "{\"endpoint\": \"" << json_escape(e.adapters) << "\", \"telemetry\": \"" << json_escape(e.telemetry)
        << "\", \"control\": \"" << json_escape(e.control) << "\", \"http\": \"" << json_escape(e.http)
        << "\", \"pid\": " << ::getpid() << "}\n";
  }
  std::filesystem::rename(tmp, path);  // readers never see half a file
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "orbitd: %s\nRun `orbitd --help` for usage.\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::optional<std::string> check;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::optional<std::string>& slot) -> bool {
      if (i + 1 >= argc) return false;
      slot = argv[++i];
      return true;
    };
    bool ok = true;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("orbitd %s (protocol v%d)\n", ORBIT_VERSION, orbit::kProtocolVersion);
      return 0;
    } else if (arg == "--config") ok = value(opt.config);
    else if (arg == "--check-config") ok = value(check);
    else if (arg == "--endpoint") ok = value(opt.endpoint);
    else if (arg == "--telemetry") ok = value(opt.telemetry);
    else if (arg == "--control") ok = value(opt.control);
    else if (arg == "--http") ok = value(opt.http);
    else if (arg == "--journal-dir") ok = value(opt.journal_dir);
    else if (arg == "--mode") ok = value(opt.mode);
    else if (arg == "--log-level") ok = value(opt.log_level);
    else if (arg == "--log-format") ok = value(opt.log_format);
    else if (arg == "--ready-file") ok = value(opt.ready_file);
    else if (arg == "--allow-exposed-control") opt.allow_exposed_control = true;
    else if (arg == "--allow-exposed-http") opt.allow_exposed_http = true;
    else return usage_error("unknown option '" + arg + "'");
    if (!ok) return usage_error("option " + arg + " needs a value");
  }
  if (opt.mode && !orbit::parse_mode(*opt.mode))
    return usage_error("--mode must be 'active' or 'monitor', got '" + *opt.mode + "'");
  if (opt.log_format && *opt.log_format != "text" && *opt.log_format != "json")
    return usage_error("--log-format must be 'text' or 'json', got '" + *opt.log_format + "'");

  if (check) {
    try {
      orbit::load_daemon_config(*check);
      std::printf("%s: ok\n", check->c_str());
      return 0;
    } catch (const orbit::ConfigError& e) {
      std::fprintf(stderr, "orbitd: invalid config: %s\n", e.what());
      return 2;
    }
  }

  orbit::DaemonConfig config;
  try {
    config = load(opt);
    orbit::configure_logging(config.log_level, config.log_format);
  } catch (const orbit::ConfigError& e) {
    std::fprintf(stderr, "orbitd: invalid config: %s\n", e.what());
    return 2;
  } catch (const std::invalid_argument& e) {
    return usage_error(e.what());
  }

  // Out of descriptors, libzmq aborts: take all the system allows and refuse a
  // configuration that could still run out.
  const std::uint64_t fd_limit = orbit::raise_fd_limit();
  if (const std::string problem = orbit::fd_budget_problem(config, fd_limit); !problem.empty()) {
    spdlog::critical("orbitd cannot start: {}", problem);
    return 1;
  }

  // Received messages are allocated by ZeroMQ's I/O thread (in its malloc arena) and
  // freed on this one: at the default 128 KiB threshold those frees trimmed that
  // arena every few hundred messages (madvise, a TLB shootdown across cores) and the
  // I/O thread faulted the pages back in; 7% of orbitd's CPU per pipelined snapshot.
  // The Server's periodic malloc_trim still returns free pages, so RSS falls again
  // after a backlog. Set before the Server starts ZeroMQ's threads.
  ::mallopt(M_TRIM_THRESHOLD, 64 << 20);

  boost::asio::io_context io(1);
  const orbit::SystemClock clock;
  orbit::Server server(io, config, clock);
  if (opt.config) server.set_config_loader([&opt] { return load(opt); });
  try {
    server.start();
    if (opt.ready_file) write_ready_file(*opt.ready_file, server.endpoints());
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }

  boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  stop_signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
    server.shutdown();
    io.stop();
  });
  boost::asio::signal_set hup(io, SIGHUP);
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      spdlog::info("SIGHUP: reloading config");
      server.reload_from_source();
      wait_hup();
    });
  };
  wait_hup();
  std::signal(SIGPIPE, SIG_IGN);

  try {
    io.run();
  } catch (const std::exception& e) {
    spdlog::critical("event loop failed: {}", e.what());
    return 1;
  }
  return 0;
}
