// SPDX-License-Identifier: Apache-2.0
#include "dashboard/http_endpoint.hpp"

#include "config/endpoints.hpp"

#include <stdexcept>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace orbit {

namespace http = boost::beast::http;
using boost::asio::ip::tcp;

class HttpEndpoint::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const HttpEndpoint& owner)
      : socket_(std::move(socket)),
        buffer_(owner.limits_.max_request_bytes),
        deadline_(socket_.get_executor()),
        handler_(owner.handler_),
        counters_(owner.counters_),
        open_(owner.open_),
        closed_(owner.closed_),
        max_stream_queue_(owner.limits_.max_stream_queue),
        token_(owner.token_) {
    parser_.header_limit(static_cast<std::uint32_t>(owner.limits_.max_request_bytes));
    parser_.body_limit(0);  // GET only: a request with a body is refused
    timeout_ = std::chrono::milliseconds(owner.limits_.timeout_ms);
    ++*open_;
  }
  ~Connection() {
    --*open_;
    if (stream_) stream_->close();
  }

  void start() {
    auto self = shared_from_this();
    deadline_.expires_after(timeout_);
    deadline_.async_wait([self](const boost::system::error_code& ec) {
      if (ec) return;  // cancelled: the reply went out in time
      ++self->counters_->rejected;
      boost::system::error_code ignored;
      self->socket_.close(ignored);  // cancels the pending read or write
    });
    http::async_read(socket_, buffer_, parser_,
                     [self](const boost::system::error_code& ec, std::size_t) { self->on_read(ec); });
  }

  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    deadline_.cancel();
    if (stream_) stream_->close();
  }

 private:
  void on_read(const boost::system::error_code& ec) {
    if (*closed_ || !socket_.is_open()) return;
    if (ec == http::error::end_of_stream) return finish();  // connected and left
    if (ec) {
      ++counters_->rejected;
      const bool too_large = ec == http::error::header_limit || ec == http::error::buffer_overflow ||
                             ec == http::error::body_limit;
      return reply({too_large ? 431u : 400u, "text/plain; charset=utf-8",
                    too_large ? "request too large (GET requests only, headers up to the limit)\n"
                              : "malformed HTTP request: " + ec.message() + "\n"});
    }
    ++counters_->requests;
    const auto& req = parser_.get();
    if (!token_->empty() && !bearer_matches(req[http::field::authorization])) {
      ++counters_->unauthorized;
      response_.set(http::field::www_authenticate, "Bearer realm=\"orbitd\"");
      return reply({401, "text/plain; charset=utf-8", "unauthorized: send Authorization: Bearer TOKEN\n"});
    }
    const std::string_view method(req.method_string().data(), req.method_string().size());
    const std::string_view target(req.target().data(), req.target().size());
    HttpEndpoint::Response r = handler_(method, target);
    if (r.stream) return start_stream(std::move(r), target);
    reply(std::move(r));
  }

  // The reply stays open: headers and the first events, then whatever the loop
  // pushes. The client sends nothing more, so a read that ends means it left.
  void start_stream(HttpEndpoint::Response r, std::string_view target) {
    ++counters_->streams;
    deadline_.cancel();
    stream_ = std::make_shared<EventStream>(max_stream_queue_);
    const auto q = target.find('?');
    if (q != std::string_view::npos) stream_->set_query(std::string(target.substr(q + 1)));
    out_ =
        "HTTP/1.1 200 OK\r\nServer: orbitd\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Connection: close\r\n\r\n" +
        r.body;
    std::weak_ptr<Connection> weak = shared_from_this();
    stream_->set_wake([weak] {
      if (auto self = weak.lock()) self->write_events();
    });
    writing_ = true;
    auto self = shared_from_this();
    boost::asio::async_write(socket_, boost::asio::buffer(out_),
                             [self](const boost::system::error_code& ec, std::size_t) { self->on_events_written(ec); });
    socket_.async_read_some(boost::asio::buffer(discard_), [self](const boost::system::error_code&, std::size_t) {
      self->close();  // data or end of stream: either way this client is done
    });
    r.stream(stream_);
  }

  void write_events() {
    if (writing_ || !stream_ || stream_->closed() || stream_->queue().empty()) return;
    // Everything queued goes in one write (up to 1 MiB); the queue holds only
    // what has not reached the socket yet.
    out_.clear();
    auto& queue = stream_->queue();
    while (!queue.empty() && out_.size() < (1u << 20)) {
      out_ += queue.front();
      queue.pop_front();
    }
    writing_ = true;
    auto self = shared_from_this();
    boost::asio::async_write(socket_, boost::asio::buffer(out_),
                             [self](const boost::system::error_code& ec, std::size_t) { self->on_events_written(ec); });
  }

  void on_events_written(const boost::system::error_code& ec) {
    writing_ = false;
    if (ec || *closed_) return close();
    write_events();
  }

  // Compares every byte whatever the first difference, so timing does not tell how much matched.
  bool bearer_matches(boost::beast::string_view header) const {
    const std::string expected = "Bearer " + *token_;
    if (header.size() != expected.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < expected.size(); ++i)
      diff |= static_cast<unsigned char>(header[i] ^ expected[i]);
    return diff == 0;
  }

  void reply(HttpEndpoint::Response r) {
    response_.result(r.status);
    response_.version(11);
    response_.set(http::field::server, "orbitd");
    response_.set(http::field::content_type, r.content_type);
    response_.set(http::field::connection, "close");
    response_.body() = std::move(r.body);
    response_.prepare_payload();
    auto self = shared_from_this();
    http::async_write(socket_, response_, [self](const boost::system::error_code&, std::size_t) { self->finish(); });
  }

  void finish() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    deadline_.cancel();
  }

  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> response_;
  boost::asio::steady_timer deadline_;
  std::chrono::milliseconds timeout_{5000};
  const HttpEndpoint::Handler& handler_;  // the endpoint outlives every callback that reads it (closed_)
  std::shared_ptr<HttpEndpoint::Counters> counters_;
  std::shared_ptr<std::size_t> open_;
  std::shared_ptr<bool> closed_;
  std::size_t max_stream_queue_;
  std::shared_ptr<EventStream> stream_;  // set once the reply became an event stream
  std::string out_;                      // the stream's write in flight
  bool writing_ = false;
  char discard_[256];
  std::shared_ptr<const std::string> token_;
};

HttpEndpoint::HttpEndpoint(boost::asio::io_context& io, Handler handler, Limits limits)
    : handler_(std::move(handler)), limits_(limits), acceptor_(io) {}

HttpEndpoint::~HttpEndpoint() { close(); }

void HttpEndpoint::listen(const std::string& address) {
  auto [host, port] = parse_http_address(address);
  boost::system::error_code ec;
  const auto ip = boost::asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("HTTP address '" + address + "': '" + host + "' is not an IP address");
  const tcp::endpoint endpoint(ip, port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    throw std::runtime_error("cannot bind HTTP endpoint " + address + ": " + ec.message());
  }
  const auto bound = acceptor_.local_endpoint();
  const std::string h = bound.address().is_v6() ? "[" + bound.address().to_string() + "]" : bound.address().to_string();
  url_ = "http://" + h + ":" + std::to_string(bound.port());
  *closed_ = false;
  accept();
}

void HttpEndpoint::accept() {
  acceptor_.async_accept([this, closed = closed_](const boost::system::error_code& ec, tcp::socket socket) {
    if (*closed) return;
    if (!ec) {
      if (*open_ >= limits_.max_connections) {
        ++counters_->rejected;
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        auto c = std::make_shared<Connection>(std::move(socket), *this);
        connections_.push_back(c);
        c->start();
      }
    }
    // Forget connections that are gone, so the list stays as short as the open ones.
    std::erase_if(connections_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
    accept();
  });
}

void HttpEndpoint::close() {
  if (*closed_) return;
  *closed_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& w : connections_)
    if (auto c = w.lock()) c->close();
  connections_.clear();
}

}  // namespace orbit
