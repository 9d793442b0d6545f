// SPDX-License-Identifier: Apache-2.0
// `orbit watch`: a live view of every run from orbitd's telemetry PUB socket.

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <string>

#include <unistd.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "protocol/codec.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/daemon_client.hpp"
#include "tools/exit_codes.hpp"
#include "tools/telemetry_view.hpp"

namespace orbit {

namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop = true; }

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a("orbit watch [--endpoint EP | --telemetry EP] [--run NAME ...] [--tree] [--once | --count N] [--timeout S]",
                "Shows every run orbitd reports on its telemetry socket, one line each, redrawn in place\n"
                "(plain ANSI: works over ssh):\n"
                "  run-a  step 1840  entropy 2.31  \u03c6-prox 0.87  \u2588\u2588\u2588\u2588\u2588\u2588\u2588\u2591\u2591\u2591 DRIFTING\n"
                "The bar is the run's health (metric \"health\", else \u03c6-proximity). Each metric holds its\n"
                "last value between the steps that carry it (spectra come on probe steps only); a value\n"
                "from an earlier step shows its age in steps: \"entropy 2.31 (10 ago)\". When stdout is\n"
                "not a terminal, each telemetry message is printed as one line instead.");
    a.option("endpoint", "EP",
             "the adapter endpoint orbitd was started with (default: $ORBIT_ENDPOINT); its telemetry\n"
             "socket is found beside it, as orbitd places it");
    a.option("telemetry", "EP",
             "telemetry endpoint (default: telemetry.sock beside --endpoint, else in orbitd's private directory)");
    a.option("run", "NAME", "only this run", true);
    a.flag("tree", "a detail tree under each run: loss, basin, health metrics, lr scale, last reason");
    a.flag("once", "print the view once, after the first message (and 0.3 s for other runs), then exit");
    a.option("count", "N", "print N telemetry messages, one line each, then exit");
    a.option("timeout", "S", "give up after S seconds (exit 1 when nothing arrived)");
    a.flag("no-color", "no ANSI colours");
    a.epilog(kExitCodeHelp);
    return a;
  }();
  return p;
}

}  // namespace

int watch_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  const std::string endpoint = locate_telemetry_endpoint(a.maybe("telemetry"), a.maybe("endpoint"));
  const bool once = a.has("once");
  const long long count = a.integer("count", 0);
  if (count < 0) throw UsageError("--count must be >= 0");
  if (once && count) throw UsageError("--once and --count do not go together");
  const double timeout_s = a.number("timeout", 0.0);
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  const bool live = tty && !once && count == 0;  // redraw in place
  ViewStyle style;
  style.color = tty && !a.has("no-color");
  const bool tree = a.has("tree");

  zmq::context_t context(1);
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  if (a.all("run").empty()) sub.set(zmq::sockopt::subscribe, "");
  for (const auto& run : a.all("run")) sub.set(zmq::sockopt::subscribe, run);
  apply_curve_from_env(sub);
  sub.connect(endpoint);

  g_stop = false;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  std::map<std::string, HeldTelemetry> runs;
  long long received = 0;
  int drawn_lines = 0;
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> first_at;
  auto last_draw = start;
  bool dirty = false;

  auto render = [&] {
    std::size_t width = 0;
    for (const auto& [name, t] : runs) width = std::max(width, name.size());
    std::string out;
    int lines = 0;
    for (const auto& [name, t] : runs) {
      out += (live ? "\x1b[2K" : "") + run_line(t, style, width) + "\n";
      ++lines;
      if (tree) {
        const std::string detail = run_tree(t, style);
        for (std::size_t i = 0; i < detail.size(); ++i) {
          if (live && (i == 0 || detail[i - 1] == '\n')) out += "\x1b[2K";
          out += detail[i];
          if (detail[i] == '\n') ++lines;
        }
      }
    }
    if (live && drawn_lines > 0) std::printf("\x1b[%dA", drawn_lines);
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    drawn_lines = lines;
  };

  if (live) {
    std::printf("watching %s (Ctrl-C to stop)\n", endpoint.c_str());
    std::fflush(stdout);
  }
  while (!g_stop) {
    const auto now = std::chrono::steady_clock::now();
    if (timeout_s > 0 && now - start >= std::chrono::duration<double>(timeout_s)) break;
    if (once && first_at && now - *first_at >= std::chrono::milliseconds(300)) break;
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    while (true) {
      std::vector<zmq::message_t> frames;
      std::optional<std::size_t> got;
      try {
        got = zmq::recv_multipart(sub, std::back_inserter(frames), zmq::recv_flags::dontwait);
      } catch (const zmq::error_t&) {
        break;  // interrupted by a signal
      }
      if (!got) break;
      if (frames.size() != 2) continue;
      const DecodeResult d = decode(frames[1].to_string_view());
      if (!d.ok() || !std::holds_alternative<Telemetry>(*d.message)) continue;
      const auto& t = std::get<Telemetry>(*d.message);
      HeldTelemetry& held = runs[t.run];
      held.update(t);
      ++received;
      if (!first_at) first_at = std::chrono::steady_clock::now();
      if (!live && !once) {
        std::printf("%s\n", run_line(held, style).c_str());
        if (tree) std::fputs(run_tree(held, style).c_str(), stdout);
        std::fflush(stdout);
      }
      dirty = true;
      if (count && received >= count) break;
    }
    if (count && received >= count) break;
    if (live && dirty && std::chrono::steady_clock::now() - last_draw >= std::chrono::milliseconds(100)) {
      render();
      last_draw = std::chrono::steady_clock::now();
      dirty = false;
    }
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  if (once && !runs.empty()) render();
  if (live && dirty) render();
  if (received == 0) {
    std::fprintf(stderr, "orbit watch: no telemetry from %s\n", endpoint.c_str());
    return kExitFinding;
  }
  if (count && received < count) {
    std::fprintf(stderr, "orbit watch: %lld of %lld messages before the timeout\n", received, count);
    return kExitFinding;
  }
  return kExitOk;
}

}  // namespace orbit
