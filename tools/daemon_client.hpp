// SPDX-License-Identifier: Apache-2.0
#pragma once
// Talking to a running orbitd from the command line: one control request with a
// timeout (DEALER, so a dead daemon never hangs the tool), and where the daemon's
// sockets are by default.

#include <chrono>
#include <optional>
#include <string>

#include <zmq.hpp>

namespace orbit {

// The endpoints orbitd uses when started without flags (config/endpoints.hpp).
std::string default_control_endpoint();
std::string default_telemetry_endpoint();

// Where to find a daemon's control / telemetry socket: `explicit_ep` when given,
// else the one beside `adapters` (--endpoint, else $ORBIT_ENDPOINT) as orbitd places
// it, else the default. So `orbit status --endpoint ipc:///x/orbitd.sock` finds the
// daemon started with `orbitd --endpoint ipc:///x/orbitd.sock`.
std::string locate_control_endpoint(const std::optional<std::string>& explicit_ep,
                                    const std::optional<std::string>& adapters);
std::string locate_telemetry_endpoint(const std::optional<std::string>& explicit_ep,
                                      const std::optional<std::string>& adapters);

// Sends one MessagePack control request; the reply bytes, or nullopt on timeout.
std::optional<std::string> control_request(const std::string& endpoint, const std::string& request,
                                           std::chrono::milliseconds timeout);
// Requests are made with protocol/control.hpp's encode_control.

// For a tcp endpoint under CURVE: $ORBIT_CURVE_SERVER_KEY names orbitd's public key
// file (NAME.pub) and $ORBIT_CURVE_KEY the caller's key pair (NAME.key, on orbitd's
// control or adapter allow-list). With both set `socket` becomes a CURVE client;
// with neither it stays plain; with one, std::runtime_error says which is missing.
void apply_curve_from_env(zmq::socket_t& socket);

}  // namespace orbit
