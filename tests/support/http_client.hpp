// SPDX-License-Identifier: Apache-2.0
#pragma once
// A raw HTTP/1.1 client over a plain TCP socket to "http://127.0.0.1:PORT", shared
// by the daemon's HTTP and dashboard tests: whole GETs, hand-written requests, and
// connections that stall or read slowly on purpose.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <sstream>
#include <regex>
#include <stdexcept>
#include <string>

namespace orbit::test {

class Tcp {
 public:
  // `receive_buffer` > 0 shrinks the kernel's buffer first, so a client that stops
  // reading backs up quickly. Reads time out after 10 s.
  explicit Tcp(const std::string& url, int receive_buffer = 0) {
    std::smatch m;
    if (!std::regex_match(url, m, std::regex(R"(http://([0-9.]+):(\d+))"))) throw std::runtime_error("bad url " + url);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(m[2])));
    ::inet_pton(AF_INET, m[1].str().c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect to " + url + " failed");
    }
  }
  ~Tcp() { ::close(fd_); }
  Tcp(const Tcp&) = delete;
  Tcp& operator=(const Tcp&) = delete;

  // False when not every byte was sent.
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Up to 64 KiB, or "" when the peer closed or nothing came within `ms`.
  std::string read_some(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return {};
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  // Everything until the server closes (or 10 s without a byte).
  std::string read_all() {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

 private:
  int fd_ = -1;
};

struct HttpReply {
  int status = 0;  // 0: no HTTP/1.1 status line came
  std::string head, body;
};

inline HttpReply parse_http_reply(const std::string& raw) {
  HttpReply r;
  const auto split = raw.find("\r\n\r\n");
  r.head = raw.substr(0, split);
  if (split != std::string::npos) r.body = raw.substr(split + 4);
  if (raw.rfind("HTTP/1.1 ", 0) == 0) r.status = std::stoi(raw.substr(9, 3));
  return r;
}

// One request as written (the server closes after replying), the whole reply.
inline HttpReply http_request(const std::string& url, const std::string& raw_request) {
  Tcp c(url);
  if (!c.send(raw_request)) throw std::runtime_error("sending the request to " + url + " failed");
  return parse_http_reply(c.read_all());
}

inline HttpReply http_get(const std::string& url, const std::string& path) {
  return http_request(url, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

// The value of one sample line `name{labels} value` in a Prometheus text body.
inline std::optional<std::string> prometheus_sample(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  return std::nullopt;
}

}  // namespace orbit::test
