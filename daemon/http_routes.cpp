// SPDX-License-Identifier: Apache-2.0
// What orbitd serves over HTTP ([daemon] http / --http): read-only views for
// scrapers, curl and the dashboard page. GET /metrics is the Prometheus text format
// (daemon/prometheus_metrics.cpp); GET /status is the control endpoint's `status`
// reply as JSON; the rest is the dashboard's (dashboard/dashboard_feed.hpp).
#include <msgpack.hpp>

#include "daemon/server.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/msgpack_json.hpp"

namespace orbit {

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
  // The dashboard: the page at /, its files and its /api/ routes (dashboard/dashboard_feed.hpp).
  if (dashboard_)
    if (auto r = dashboard_->handle(path)) return std::move(*r);
  return {404, "text/plain; charset=utf-8", "not found; orbitd serves /metrics, /status, the dashboard at / and /api/\n"};
}

}  // namespace orbit
