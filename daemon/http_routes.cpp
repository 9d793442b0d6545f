// SPDX-License-Identifier: Apache-2.0
// What orbitd serves over HTTP ([daemon] http / --http): read-only views for
// scrapers and curl. GET /metrics is the Prometheus text format (every
// DaemonStats counter by name, per-run step, state, lr scale, burns and health
// metrics); GET /status is the control endpoint's `status` reply as JSON.
#include <array>
#include <cmath>

#include <msgpack.hpp>

#include "daemon/server.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/msgpack_json.hpp"

namespace orbit {
namespace {

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return format_double(v);
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

constexpr std::array<OrbitState, 7> kStates = {OrbitState::stable,     OrbitState::drifting, OrbitState::warning,
                                               OrbitState::critical,   OrbitState::recovering, OrbitState::stale,
                                               OrbitState::monitor};

}  // namespace

std::string Server::prometheus_metrics() {
  if (http_) stats_.http_rejected = http_->counters().rejected;
  std::string out;
  out.reserve(4096 + runs_.size() * 1024);
  family(out, "orbitd_info", "gauge", "orbitd version and the mode of new runs.");
  out.append("orbitd_info{version=\"").append(label(ORBIT_VERSION)).append("\",mode=\"").append(label(config_.mode))
      .append("\"} 1\n");
  family(out, "orbitd_uptime_seconds", "gauge", "Seconds since orbitd started serving.");
  out.append("orbitd_uptime_seconds ").append(number(clock_.now() - started_at_)).append("\n");
  stats_.for_each([&](const char* name, std::uint64_t v) {
    const std::string metric = std::string("orbitd_") + name + "_total";
    family(out, metric, "counter", std::string("DaemonStats.") + name + ".");
    out.append(metric).append(" ").append(std::to_string(v)).append("\n");
  });
  family(out, "orbitd_sessions_active", "gauge", "Open (run, rank) sessions.");
  out.append("orbitd_sessions_active ").append(std::to_string(sessions_.size())).append("\n");
  family(out, "orbitd_runs_active", "gauge", "Runs with a controller.");
  out.append("orbitd_runs_active ").append(std::to_string(runs_.size())).append("\n");

  family(out, "orbit_run_step", "gauge", "Last step the run reported.");
  for (const auto& [name, run] : runs_)
    out.append("orbit_run_step{run=\"").append(label(name)).append("\"} ").append(std::to_string(run.last_step)).append("\n");
  family(out, "orbit_run_lr_scale", "gauge", "lr scale in force from the last decision.");
  for (const auto& [name, run] : runs_)
    out.append("orbit_run_lr_scale{run=\"").append(label(name)).append("\"} ").append(number(run.last.lr_scale)).append("\n");
  family(out, "orbit_run_burns_total", "counter", "Burns decided or forced for the run (its last burn seq).");
  for (const auto& [name, run] : runs_)
    out.append("orbit_run_burns_total{run=\"").append(label(name)).append("\"} ")
        .append(std::to_string(run.navigator->last_seq())).append("\n");
  family(out, "orbit_run_state", "gauge", "1 for the run's orbit state, 0 for the others.");
  for (const auto& [name, run] : runs_) {
    const std::string current = run.last.state.empty() ? std::string(to_string(run.navigator->state())) : run.last.state;
    for (OrbitState s : kStates) {
      const std::string_view state = to_string(s);
      out.append("orbit_run_state{run=\"").append(label(name)).append("\",state=\"").append(state).append("\"} ")
          .append(current == state ? "1" : "0").append("\n");
    }
  }
  family(out, "orbit_run_metric", "gauge", "Health metrics of the run's last snapshot, by name (SPEC.md 5.4.1).");
  for (const auto& [name, run] : runs_)
    for (const auto& [metric, v] : run.last.metrics)
      out.append("orbit_run_metric{run=\"").append(label(name)).append("\",metric=\"").append(label(metric))
          .append("\"} ").append(number(v)).append("\n");
  return out;
}

HttpEndpoint::Response Server::handle_http(std::string_view method, std::string_view target) {
  ++stats_.http_requests;
  const std::string_view path = target.substr(0, target.find('?'));
  if (method != "GET") return {405, "text/plain; charset=utf-8", "only GET is served\n"};
  if (path == "/metrics") return {200, "text/plain; version=0.0.4; charset=utf-8", prometheus_metrics()};
  if (path == "/status") {
    const std::string reply = status_reply();
    const msgpack::object_handle h = msgpack::unpack(reply.data(), reply.size());
    JsonWriter w(true);
    to_json(h.get(), w);
    return {200, "application/json", w.take() + "\n"};
  }
  if (path == "/") return {200, "text/plain; charset=utf-8", "orbitd: GET /metrics (Prometheus), GET /status (JSON)\n"};
  return {404, "text/plain; charset=utf-8", "not found; orbitd serves /metrics and /status\n"};
}

}  // namespace orbit
