// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where orbitd listens by default: IPC sockets in a directory only the owner can
// enter, so other users on a shared training node can neither read nor steer a run.

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace orbit {

// ${XDG_RUNTIME_DIR}/orbit when XDG_RUNTIME_DIR is set, else /tmp/orbit-<uid>.
std::filesystem::path private_socket_dir();

// Creates `dir` with mode 0700 when missing; when present, checks that it is a
// directory owned by this user with no group/other access. Throws
// std::runtime_error with a sentence a person can act on otherwise.
void ensure_private_dir(const std::filesystem::path& dir);

struct DefaultEndpoints {
  std::string adapters;   // ipc://<dir>/orbitd.sock
  std::string telemetry;  // ipc://<dir>/telemetry.sock
  std::string control;    // ipc://<dir>/control.sock
};
DefaultEndpoints default_endpoints(const std::filesystem::path& dir = private_socket_dir());

// The endpoints an orbitd bound to adapter endpoint `adapters` uses for "auto"
// telemetry and control: beside an ipc socket (so two daemons in two directories
// never share them), else the defaults. orbitd and the CLI both apply this rule.
DefaultEndpoints endpoints_beside(const std::string& adapters);

// "auto" (or empty) resolves to the default; anything else is kept.
std::string resolve_endpoint(const std::string& configured, const std::string& fallback);

// For an ipc:// endpoint, the directory that holds the socket file ("" otherwise).
std::filesystem::path ipc_directory(const std::string& endpoint);

// True for an ipc:// endpoint with a filesystem path (not an abstract "@name"),
// whose directory ensure_private_dir() keeps to this user.
bool private_ipc_endpoint(const std::string& endpoint);

// True when `host` is a loopback IP address (127.0.0.0/8 or ::1).
bool loopback_host(const std::string& host);

// orbitd's HTTP address "HOST:PORT" (IPv6 as "[::1]:PORT"; port 0 = any free
// port) -> (host, port). Throws std::invalid_argument with the reason.
std::pair<std::string, std::uint16_t> parse_http_address(const std::string& address);

}  // namespace orbit
