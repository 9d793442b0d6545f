// SPDX-License-Identifier: Apache-2.0
// `orbit status`: one control request, printed as tables or JSON.

#include <cmath>
#include <cstdio>
#include <string>

#include <msgpack.hpp>

#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/daemon_client.hpp"
#include "tools/exit_codes.hpp"
#include "protocol/control.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/msgpack_json.hpp"

namespace orbit {

namespace {

namespace mt = msgpack::type;

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a("orbit status [--json] [--endpoint EP | --control EP] [--timeout S]",
                "Asks a running orbitd for its runs, sessions and counters (control command \"status\").");
    a.flag("json", "print the daemon's reply as JSON");
    a.option("endpoint", "EP",
             "the adapter endpoint orbitd was started with (default: $ORBIT_ENDPOINT); its control\n"
             "socket is found beside it, as orbitd places it");
    a.option("control", "EP",
             "control endpoint (default: control.sock beside --endpoint, else in orbitd's private directory)");
    a.option("timeout", "S", "seconds to wait for the reply (default 2)");
    a.epilog(std::string("Exit 1 when no daemon answers within the timeout.\n") + kExitCodeHelp);
    return a;
  }();
  return p;
}

const msgpack::object* get(const msgpack::object& map, std::string_view key) {
  if (map.type != mt::MAP) return nullptr;
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == mt::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) return &kv.val;
  }
  return nullptr;
}

std::string text(const msgpack::object* o) {
  if (!o) return "-";
  switch (o->type) {
    case mt::STR: return std::string(o->via.str.ptr, o->via.str.size);
    case mt::POSITIVE_INTEGER: return std::to_string(o->via.u64);
    case mt::NEGATIVE_INTEGER: return std::to_string(o->via.i64);
    case mt::FLOAT32:
    case mt::FLOAT64: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.4g", o->via.f64);
      return buf;
    }
    case mt::BOOLEAN: return o->via.boolean ? "true" : "false";
    default: return "?";
  }
}

void print_human(const msgpack::object& reply) {
  const msgpack::object* daemon = get(reply, "daemon");
  if (daemon) {
    std::printf("orbitd %s  mode %s  up %ss  config %s\n", text(get(*daemon, "version")).c_str(),
                text(get(*daemon, "mode")).c_str(), text(get(*daemon, "uptime_s")).c_str(),
                text(get(*daemon, "config")).c_str());
    if (const auto* ep = get(*daemon, "endpoints"))
      std::printf("  adapters %s\n  telemetry %s\n  control %s\n", text(get(*ep, "adapters")).c_str(),
                  text(get(*ep, "telemetry")).c_str(), text(get(*ep, "control")).c_str());
  }
  if (const auto* runs = get(reply, "runs"); runs && runs->type == mt::ARRAY) {
    std::printf("\nruns (%u)\n", runs->via.array.size);
    if (runs->via.array.size)
      std::printf("  %-24s %-7s %9s %-10s %-14s %-14s %7s %5s  %s\n", "RUN", "MODE", "STEP", "STATE", "BASIN",
                  "FORECAST", "LR*", "BURNS", "REASON");
    for (uint32_t i = 0; i < runs->via.array.size; ++i) {
      const auto& r = runs->via.array.ptr[i];
      std::printf("  %-24s %-7s %9s %-10s %-14s %-14s %7s %5s  %s\n", text(get(r, "run")).c_str(),
                  text(get(r, "mode")).c_str(), text(get(r, "step")).c_str(), text(get(r, "state")).c_str(),
                  text(get(r, "basin")).c_str(), text(get(r, "forecast_basin")).c_str(),
                  text(get(r, "lr_scale")).c_str(), text(get(r, "burns")).c_str(), text(get(r, "reason")).c_str());
    }
  }
  if (const auto* sessions = get(reply, "sessions"); sessions && sessions->type == mt::ARRAY) {
    std::printf("\nsessions (%u)\n", sessions->via.array.size);
    if (sessions->via.array.size)
      std::printf("  %-24s %5s %-20s %8s %10s\n", "RUN", "RANK", "SESSION", "IDLE_S", "SNAPSHOTS");
    for (uint32_t i = 0; i < sessions->via.array.size; ++i) {
      const auto& s = sessions->via.array.ptr[i];
      std::printf("  %-24s %5s %-20s %8s %10s\n", text(get(s, "run")).c_str(), text(get(s, "rank")).c_str(),
                  text(get(s, "session")).c_str(), text(get(s, "idle_s")).c_str(),
                  text(get(s, "snapshots")).c_str());
    }
  }
  if (const auto* stats = get(reply, "stats"); stats && stats->type == mt::MAP) {
    std::printf("\ncounters\n");
    for (uint32_t i = 0; i < stats->via.map.size; ++i) {
      const auto& kv = stats->via.map.ptr[i];
      std::printf("  %-28s %s\n", text(&kv.key).c_str(), text(&kv.val).c_str());
    }
  }
}

}  // namespace

int status_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  const std::string endpoint = locate_control_endpoint(a.maybe("control"), a.maybe("endpoint"));
  const double timeout_s = a.number("timeout", 2.0);
  if (!(timeout_s > 0)) throw UsageError("--timeout must be > 0");
  const auto reply = control_request(endpoint, encode_control(StatusCommand{}),
                                     std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000)));
  if (!reply) {
    std::fprintf(stderr, "orbit status: no reply from %s within %.1f s (is orbitd running?)\n", endpoint.c_str(),
                 timeout_s);
    return kExitFinding;
  }
  msgpack::object_handle h;
  try {
    h = msgpack::unpack(reply->data(), reply->size());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orbit status: the reply is not MessagePack: %s\n", e.what());
    return kExitData;
  }
  const msgpack::object& o = h.get();
  const auto* ok = get(o, "ok");
  if (!ok || ok->type != mt::BOOLEAN || !ok->via.boolean) {
    std::fprintf(stderr, "orbit status: the daemon refused: %s\n", text(get(o, "error")).c_str());
    return kExitData;
  }
  if (a.has("json")) {
    JsonWriter w(true);
    to_json(o, w);
    std::printf("%s\n", w.str().c_str());
  } else {
    print_human(o);
  }
  return kExitOk;
}

}  // namespace orbit
