// SPDX-License-Identifier: Apache-2.0
#pragma once
// A minimal HTTP/1.1 client for tests of orbitd's HTTP endpoint (/metrics, /status):
// one request per connection to "http://127.0.0.1:PORT", read until the server closes.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace orbit::test {

// A plain TCP connection to "http://127.0.0.1:PORT", with a receive timeout.
class Tcp {
 public:
  explicit Tcp(const std::string& url) {
    std::smatch m;
    if (!std::regex_match(url, m, std::regex(R"(http://([0-9.]+):(\d+))"))) throw std::runtime_error("bad url " + url);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(m[2])));
    ::inet_pton(AF_INET, m[1].str().c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("connect failed");
  }
  ~Tcp() { ::close(fd_); }
  void send(const std::string& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
  }
  // Everything until the server closes (or the timeout).
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
  int status = 0;
  std::string head, body;
};

inline HttpReply parse(const std::string& raw) {
  HttpReply r;
  const auto split = raw.find("\r\n\r\n");
  r.head = raw.substr(0, split);
  if (split != std::string::npos) r.body = raw.substr(split + 4);
  if (raw.rfind("HTTP/1.1 ", 0) == 0) r.status = std::stoi(raw.substr(9, 3));
  return r;
}

inline HttpReply request(const std::string& url, const std::string& raw_request) {
  Tcp c(url);
  c.send(raw_request);
  return parse(c.read_all());
}

inline HttpReply get(const std::string& url, const std::string& path) {
  return request(url, "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
}

// The value of one sample line `name{labels} value` in a Prometheus text body.
inline std::optional<std::string> sample(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  return std::nullopt;
}

}  // namespace orbit::test
