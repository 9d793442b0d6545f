// SPDX-License-Identifier: Apache-2.0
#include "adapters/libtorch/adapter_client.hpp"

#include <thread>
#include <utility>
#include <variant>

#include <zmq.hpp>

#include "protocol/codec.hpp"
#include "protocol/curve_keys.hpp"

namespace orbit {

struct AdapterClient::Socket {
  zmq::context_t context{1};
  zmq::socket_t dealer{context, zmq::socket_type::dealer};
};

AdapterClient::AdapterClient(AdapterClientOptions options)
    : options_(std::move(options)), socket_(std::make_unique<Socket>()) {
  auto& s = socket_->dealer;
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, options_.send_queue);
  s.set(zmq::sockopt::rcvhwm, 1000);
  // Queue only on a live connection: with no daemon a send fails at once instead of
  // piling up stale snapshots that would be delivered when it comes back.
  s.set(zmq::sockopt::immediate, 1);
  s.set(zmq::sockopt::reconnect_ivl, 100);
  s.set(zmq::sockopt::reconnect_ivl_max, 1000);
  if (const auto keys = curve_client_keys(options_.curve_server_key, options_.curve_key_file)) {
    s.set(zmq::sockopt::curve_serverkey, keys->server_public_key);
    s.set(zmq::sockopt::curve_publickey, keys->own.public_key);
    s.set(zmq::sockopt::curve_secretkey, keys->own.secret_key);
    curve_ = true;
  }
  s.connect(options_.endpoint);
}

AdapterClient::~AdapterClient() { close(); }

void AdapterClient::close() {
  if (closed_) return;
  // linger stays 0: after the echo nothing is left to deliver, and without a
  // session (or an echo within close_wait) closing never waits on the daemon.
  const bool said_bye = registered_ && send_bytes(encode(Bye{options_.run, options_.rank}));
  if (said_bye && options_.close_wait.count() > 0 && send_bytes(encode(Heartbeat{}))) {
    auto& dealer = socket_->dealer;
    const auto deadline = Clock::now() + options_.close_wait;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
      if (left.count() <= 0 || zmq::poll(&item, 1, left) <= 0) break;
      zmq::message_t reply;
      if (!dealer.recv(reply, zmq::recv_flags::dontwait)) continue;
      DecodeResult result = decode(std::string_view(static_cast<const char*>(reply.data()), reply.size()));
      if (!result.ok()) continue;
      const auto* echo = std::get_if<Heartbeat>(&*result.message);
      if (echo && !echo->run) {
        counters_.close_confirmed = 1;
        break;
      }
    }
  }
  closed_ = true;
  registered_ = false;
}

bool AdapterClient::send_bytes(const std::string& bytes) {
  if (closed_) return false;
  try {
    auto sent = socket_->dealer.send(zmq::const_buffer(bytes.data(), bytes.size()),
                                     zmq::send_flags::dontwait);
    if (!sent) return false;
  } catch (const zmq::error_t&) {
    return false;
  }
  last_send_ = Clock::now();
  return true;
}

void AdapterClient::send_hello(Clock::time_point now) {
  Hello hello;
  hello.run = options_.run;
  hello.rank = options_.rank;
  hello.world_size = options_.world_size;
  hello.adapter = options_.adapter;
  hello.adapter_version = options_.adapter_version;
  hello.versions = {kProtocolVersion};
  hello.domains = options_.domains;
  hello.actuators = options_.actuators;
  hello.base_lr = options_.base_lr;
  // A hello that could not be queued (no connection yet) is retried on the next
  // poll; one that went out is repeated only after hello_retry without a welcome.
  hello_queued_ = send_bytes(encode(hello));
  if (hello_queued_) {
    last_hello_ = now;
    ++counters_.hellos_sent;
  }
}

void AdapterClient::drop_session() {
  registered_ = false;
  hello_queued_ = false;
  unanswered_.clear();
  failed_sends_ = 0;
}

void AdapterClient::handle(const char* data, std::size_t size, Clock::time_point now) {
  DecodeResult result = decode(std::string_view(data, size));
  if (!result.ok()) {
    ++counters_.undecodable;
    return;
  }
  // orbitd answers each snapshot with exactly one state, burn or error, in order;
  // it also pushes burns nobody asked for (forced ones, and other ranks' burns
  // fanned out). Any message proves the daemon alive.
  waiting_since_ = now;
  Message& message = *result.message;
  if (auto* w = std::get_if<Welcome>(&message)) {
    if (w->run != options_.run || w->rank != options_.rank) return;  // not ours
    ++counters_.welcomes;
    welcome_ = std::move(*w);
    registered_ = true;
    unanswered_.clear();
  } else if (auto* st = std::get_if<State>(&message)) {
    ++counters_.states;
    while (!unanswered_.empty() && unanswered_.front() <= st->step) unanswered_.pop_front();
    last_state_ = std::move(*st);
  } else if (auto* b = std::get_if<Burn>(&message)) {
    ++counters_.burns;
    if (!unanswered_.empty() && unanswered_.front() == b->for_step) unanswered_.pop_front();
    burns_.push_back(std::move(*b));
  } else if (auto* e = std::get_if<Error>(&message)) {
    ++counters_.errors;
    if (!unanswered_.empty()) unanswered_.pop_front();
    if (e->code == ErrorCode::not_registered) {
      // The daemon restarted or forgot us: start a new session at once.
      ++counters_.not_registered;
      drop_session();
    }
    last_error_ = std::move(*e);
  }
}

void AdapterClient::poll() {
  if (closed_) return;
  const auto now = Clock::now();
  zmq::message_t reply;
  for (;;) {
    zmq::recv_result_t got;
    try {
      got = socket_->dealer.recv(reply, zmq::recv_flags::dontwait);
    } catch (const zmq::error_t&) {
      break;
    }
    if (!got) break;
    handle(static_cast<const char*>(reply.data()), reply.size(), now);
  }

  if (!registered_) {
    if (!hello_queued_ || now - last_hello_ >= options_.hello_retry) send_hello(now);
    return;
  }
  if (!unanswered_.empty() && now - waiting_since_ > options_.reply_timeout) {
    ++counters_.sessions_lost;
    drop_session();
    send_hello(now);
    return;
  }
  if (now - last_send_ >= options_.heartbeat_every) {
    Heartbeat hb{options_.run, options_.rank};
    if (send_bytes(encode(hb))) ++counters_.heartbeats_sent;
  }
}

bool AdapterClient::wait_registered(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  poll();
  while (!registered_ && Clock::now() < deadline) {
    zmq::pollitem_t item{socket_->dealer.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(10));
    poll();
  }
  return registered_;
}

std::size_t AdapterClient::max_message_bytes() const {
  if (welcome_ && welcome_->max_message_bytes) return static_cast<std::size_t>(*welcome_->max_message_bytes);
  return DecodeLimits{}.max_message_bytes;
}

bool AdapterClient::fits(const std::string& bytes) {
  if (bytes.size() <= max_message_bytes()) return true;
  ++counters_.oversized;
  last_refusal_ = "message of " + std::to_string(bytes.size()) + " bytes not sent: over the daemon's limit of " +
                  std::to_string(max_message_bytes()) + " bytes (orbitd [limits] max_message_bytes)";
  return false;
}

bool AdapterClient::send_snapshot(const Snapshot& snapshot) {
  const std::string bytes = encode(snapshot);
  if (!fits(bytes)) return false;
  if (!send_bytes(bytes)) {
    ++counters_.dropped;
    // No connection, or a full queue: the daemon is gone or far behind. Stop
    // building snapshots and say hello until it answers again.
    if (++failed_sends_ >= kFailedSendsBeforeHello) {
      ++counters_.sessions_lost;
      drop_session();
    }
    return false;
  }
  failed_sends_ = 0;
  if (unanswered_.empty()) waiting_since_ = last_send_;
  unanswered_.push_back(snapshot.step);
  // A daemon that drops replies must not grow this without bound.
  if (unanswered_.size() > kMaxTrackedSnapshots) unanswered_.pop_front();
  ++counters_.snapshots_sent;
  return true;
}

bool AdapterClient::send_ack(const Ack& ack) {
  const std::string bytes = encode(ack);
  if (!fits(bytes)) return false;
  if (!send_bytes(bytes)) {
    ++counters_.dropped;
    return false;
  }
  ++counters_.acks_sent;
  return true;
}

std::vector<Burn> AdapterClient::take_burns() { return std::exchange(burns_, {}); }

}  // namespace orbit
