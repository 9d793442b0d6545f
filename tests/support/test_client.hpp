// SPDX-License-Identifier: Apache-2.0
#pragma once
// A minimal DEALER peer for tests: sends encoded (or raw) frames to orbitd and
// waits, with a deadline, for decoded replies.

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "protocol/codec.hpp"

namespace orbit::test {

class TestClient {
 public:
  // `configure` runs before connect (socket options such as CURVE keys).
  TestClient(zmq::context_t& ctx, const std::string& endpoint, zmq::socket_type type = zmq::socket_type::dealer,
             const std::function<void(zmq::socket_t&)>& configure = {})
      : socket_(ctx, type) {
    socket_.set(zmq::sockopt::linger, 0);
    if (configure) configure(socket_);
    socket_.connect(endpoint);
  }

  void send_raw(std::string_view bytes) { socket_.send(zmq::buffer(bytes.data(), bytes.size()), zmq::send_flags::none); }
  void send(const Message& m) { send_raw(encode(m)); }

  std::optional<std::string> recv_raw(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
    zmq::message_t msg;
    if (!socket_.recv(msg, zmq::recv_flags::dontwait)) return std::nullopt;
    return msg.to_string();
  }

  // Decoded reply, or nullopt on timeout. Fails loudly on an undecodable reply.
  std::optional<Message> recv(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto raw = recv_raw(timeout);
    if (!raw) return std::nullopt;
    DecodeResult r = decode(*raw);
    if (!r.ok()) throw std::runtime_error("orbitd sent an undecodable reply: " + r.error.message);
    return std::move(*r.message);
  }

  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::socket_t socket_;
};

inline Hello make_hello(const std::string& run, std::int64_t rank = 0, std::int64_t world = 1) {
  Hello h;
  h.run = run;
  h.rank = rank;
  h.world_size = world;
  h.adapter = "test";
  h.adapter_version = "0";
  h.versions = {1};
  h.actuators = {"lr"};
  return h;
}

inline Snapshot make_snapshot(const std::string& run, std::int64_t step, std::int64_t rank = 0) {
  Snapshot s;
  s.run = run;
  s.rank = rank;
  s.step = step;
  s.time = 1.7e9 + static_cast<double>(step);
  s.loss = 2.5;
  s.grad_norm = 1.0;
  s.spectra["hidden.0"] = std::vector<float>(64, 1.0f);
  return s;
}

}  // namespace orbit::test
