// SPDX-License-Identifier: Apache-2.0
#include "tools/daemon_client.hpp"

#include <cstdlib>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "protocol/curve_keys.hpp"
#include "config/endpoints.hpp"
#include "protocol/messages.hpp"

namespace orbit {

std::string default_control_endpoint() { return default_endpoints().control; }
std::string default_telemetry_endpoint() { return default_endpoints().telemetry; }

namespace {

DefaultEndpoints located(const std::optional<std::string>& adapters) {
  if (adapters && !adapters->empty()) return endpoints_beside(*adapters);
  if (const char* env = std::getenv("ORBIT_ENDPOINT"); env && *env) return endpoints_beside(env);
  return default_endpoints();
}

}  // namespace

std::string locate_control_endpoint(const std::optional<std::string>& explicit_ep,
                                    const std::optional<std::string>& adapters) {
  return explicit_ep ? *explicit_ep : located(adapters).control;
}

std::string locate_telemetry_endpoint(const std::optional<std::string>& explicit_ep,
                                      const std::optional<std::string>& adapters) {
  return explicit_ep ? *explicit_ep : located(adapters).telemetry;
}

std::optional<std::string> control_request(const std::string& endpoint, const std::string& request,
                                           std::chrono::milliseconds timeout) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  apply_curve_from_env(socket);
  socket.connect(endpoint);
  // An empty delimiter first: the same envelope a REQ socket sends.
  socket.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::sndmore);
  socket.send(zmq::buffer(request), zmq::send_flags::none);
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  std::vector<zmq::message_t> frames;
  if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait) || frames.empty())
    return std::nullopt;
  return frames.back().to_string();
}

void apply_curve_from_env(zmq::socket_t& socket) {
  const auto keys = curve_client_keys("", "");
  if (!keys) return;
  socket.set(zmq::sockopt::curve_serverkey, keys->server_public_key);
  socket.set(zmq::sockopt::curve_publickey, keys->own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys->own.secret_key);
}

}  // namespace orbit
