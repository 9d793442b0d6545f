// SPDX-License-Identifier: Apache-2.0
#include "config/endpoints.hpp"


#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

namespace orbit {

std::filesystem::path private_socket_dir() {
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg && *xdg) {
    return std::filesystem::path(xdg) / "orbit";
  }
  return std::filesystem::path("/tmp") / ("orbit-" + std::to_string(::getuid()));
}

void ensure_private_dir(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create socket directory " + dir.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    throw std::runtime_error("cannot inspect socket directory " + dir.string() + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    throw std::runtime_error("socket directory " + dir.string() + " exists but is not a directory");
  }
  if (st.st_uid != ::getuid()) {
    throw std::runtime_error("socket directory " + dir.string() + " belongs to uid " + std::to_string(st.st_uid) +
                             ", not to this user; remove it or choose another endpoint");
  }
  if ((st.st_mode & 077) != 0) {
    throw std::runtime_error("socket directory " + dir.string() +
                             " is accessible by group or others; run `chmod 700 " + dir.string() + "`");
  }
}

DefaultEndpoints default_endpoints(const std::filesystem::path& dir) {
  return {"ipc://" + (dir / "orbitd.sock").string(), "ipc://" + (dir / "telemetry.sock").string(),
          "ipc://" + (dir / "control.sock").string()};
}

DefaultEndpoints endpoints_beside(const std::string& adapters) {
  const auto dir = ipc_directory(adapters);
  DefaultEndpoints e = dir.empty() ? default_endpoints() : default_endpoints(dir);
  e.adapters = adapters;
  return e;
}

std::string resolve_endpoint(const std::string& configured, const std::string& fallback) {
  return configured.empty() || configured == "auto" ? fallback : configured;
}

std::filesystem::path ipc_directory(const std::string& endpoint) {
  constexpr std::string_view prefix = "ipc://";
  if (endpoint.rfind(prefix, 0) != 0) return {};
  return std::filesystem::path(endpoint.substr(prefix.size())).parent_path();
}

bool private_ipc_endpoint(const std::string& endpoint) {
  constexpr std::string_view prefix = "ipc://";
  if (endpoint.rfind(prefix, 0) != 0) return false;
  const std::string path = endpoint.substr(prefix.size());
  return !path.empty() && path[0] != '@' && !ipc_directory(endpoint).empty();
}

bool loopback_host(const std::string& host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

std::pair<std::string, std::uint16_t> parse_http_address(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    throw std::invalid_argument("HTTP address '" + address + "' must be HOST:PORT, e.g. 127.0.0.1:9464");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  auto [end, err] = std::from_chars(first, last, port);
  if (err != std::errc() || end != last || port > 65535)
    throw std::invalid_argument("HTTP address '" + address + "': port must be a number in [0, 65535]");
  return {host, static_cast<std::uint16_t>(port)};
}

}  // namespace orbit
