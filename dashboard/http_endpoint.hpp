// SPDX-License-Identifier: Apache-2.0
#pragma once
// A small read-only HTTP/1.1 server on an Asio loop (orbitd's, or `orbit replay
// --serve`'s): scrapers, curl and the dashboard page. One request per connection
// (Connection: close), bounded in size, count and time, so a slow or hostile
// client costs a socket and never the loop. A handler may turn its reply into a
// Server-Sent Events stream: the connection stays open and writes what the loop
// pushes into its bounded EventStream (dashboard/event_stream.hpp).

#include <utility>  // before Asio: Boost 1.74 under C++20

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio.hpp>

#include "dashboard/event_stream.hpp"

namespace orbit {

class HttpEndpoint {
 public:
  struct Response {
    Response() = default;
    Response(unsigned s, std::string type, std::string b)
        : status(s), content_type(std::move(type)), body(std::move(b)) {}
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    // Set: the reply is an event stream (status 200, text/event-stream); `body`
    // goes out first (already framed events), then this is called once with the
    // stream the loop pushes into for as long as the client stays.
    std::function<void(std::shared_ptr<EventStream>)> stream;
  };
  // Called on the loop with the method and the request target (path and query).
  using Handler = std::function<Response(std::string_view method, std::string_view target)>;

  struct Limits {
    std::size_t max_request_bytes = 8192;  // request line + headers; no bodies are read
    std::size_t max_connections = 32;      // more are closed at once
    std::uint32_t timeout_ms = 5000;       // a request must arrive and its reply leave in this
    std::size_t max_stream_queue = 1024;   // events waiting per stream client; more drop the oldest
  };

  struct Counters {
    std::uint64_t requests = 0;
    std::uint64_t rejected = 0;      // malformed, too large, too slow, or over max_connections
    std::uint64_t streams = 0;       // event streams opened
    std::uint64_t unauthorized = 0;  // a bearer token was required and missing or wrong (401)
  };

  HttpEndpoint(boost::asio::io_context& io, Handler handler) : HttpEndpoint(io, std::move(handler), Limits()) {}
  HttpEndpoint(boost::asio::io_context& io, Handler handler, Limits limits);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds "HOST:PORT" (port 0 = any free port; IPv6 as "[::1]:PORT") and starts
  // accepting. Throws std::runtime_error naming the address when that fails.
  void listen(const std::string& address);
  // From now on every request must carry `Authorization: Bearer TOKEN`; others get
  // 401 and are counted (unauthorized) without reaching the handler. "" = no token.
  void require_bearer_token(std::string token) { *token_ = std::move(token); }
  // Stops accepting and closes every open connection. Idempotent.
  void close();

  // "http://HOST:PORT" as bound (the real port when 0 was asked), or "".
  const std::string& url() const { return url_; }
  const Counters& counters() const { return *counters_; }

 private:
  class Connection;
  void accept();

  Handler handler_;
  Limits limits_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::string url_;
  // Shared with connections, which may outlive a closed endpoint by one callback.
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
  std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0);
  std::shared_ptr<bool> closed_ = std::make_shared<bool>(false);
  std::shared_ptr<std::string> token_ = std::make_shared<std::string>();
  std::vector<std::weak_ptr<Connection>> connections_;  // to close them with the endpoint
};

}  // namespace orbit
