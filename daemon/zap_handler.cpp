// SPDX-License-Identifier: Apache-2.0
#include "daemon/zap_handler.hpp"

#include <array>
#include <charconv>

#include <zmq_addon.hpp>

namespace orbit {
namespace {

constexpr int kDrainBatch = 64;

std::string text(const zmq::message_t& m) { return std::string(static_cast<const char*>(m.data()), m.size()); }

}  // namespace

ZapHandler::ZapHandler(boost::asio::io_context& io, zmq::context_t& context, Decision on_decision)
    : socket_(context, zmq::socket_type::rep), io_(io), on_decision_(std::move(on_decision)) {}

ZapHandler::~ZapHandler() { stop(); }

void ZapHandler::allow(const std::string& domain, std::vector<std::string> keys) {
  allowed_[domain] = std::set<std::string>(keys.begin(), keys.end());
}

void ZapHandler::allow_uids(const std::string& domain, std::set<uid_t> uids) { allowed_uids_[domain] = std::move(uids); }

std::optional<uid_t> ipc_peer_uid(const std::string& address) {
  // The last three ':' fields are uid, gid and pid.
  const auto pid_colon = address.rfind(':');
  if (pid_colon == std::string::npos || pid_colon == 0) return std::nullopt;
  const auto gid_colon = address.rfind(':', pid_colon - 1);
  if (gid_colon == std::string::npos || gid_colon == 0) return std::nullopt;
  const auto uid_colon = address.rfind(':', gid_colon - 1);
  if (uid_colon == std::string::npos) return std::nullopt;
  unsigned long uid = 0;
  const char* first = address.data() + uid_colon + 1;
  const char* last = address.data() + gid_colon;
  const auto [end, err] = std::from_chars(first, last, uid);
  if (err != std::errc() || end != last || first == last) return std::nullopt;
  return static_cast<uid_t>(uid);
}

void ZapHandler::start() {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
  watch_ = std::make_unique<ZmqReadWatcher>(io_, socket_, [this] { return drain(); });
  watch_->start();
}

void ZapHandler::stop() {
  watch_.reset();
  if (socket_) socket_.close();
}

bool ZapHandler::drain() {
  for (int n = 0; n < kDrainBatch; ++n) {
    if (!ZmqReadWatcher::readable(socket_)) return false;
    std::vector<zmq::message_t> request;
    if (!zmq::recv_multipart(socket_, std::back_inserter(request), zmq::recv_flags::dontwait)) return false;
    answer(request);
  }
  return ZmqReadWatcher::readable(socket_);
}

void ZapHandler::answer(std::vector<zmq::message_t>& request) {
  // Request: version, request id, domain, address, routing id, mechanism, credentials...
  std::string status = "400", reason = "malformed ZAP request", user;
  std::string request_id = request.size() > 1 ? text(request[1]) : std::string();
  if (request.size() >= 6 && text(request[0]) == "1.0") {
    const std::string domain = text(request[2]);
    const std::string address = text(request[3]);
    const std::string mechanism = text(request[5]);
    if (mechanism == "NULL" && allowed_uids_.count(domain)) {
      // A plain ipc socket: the peer's user id decides.
      const auto uid = ipc_peer_uid(address);
      const bool ok = uid && allowed_uids_[domain].count(*uid) > 0;
      if (ok) {
        status = "200";
        reason = "OK";
        user = "uid:" + std::to_string(*uid);
      } else {
        reason = uid ? "user " + std::to_string(*uid) + " may not use the " + domain + " endpoint"
                     : "cannot read the peer's user id";
      }
      if (on_decision_) on_decision_(domain, ok, uid ? "uid:" + std::to_string(*uid) : "", address);
    } else if (mechanism != "CURVE" || request.size() < 7 || request[6].size() != 32) {
      reason = "CURVE required";
      if (on_decision_) on_decision_(domain, false, "", address);
    } else {
      char z85[41] = {};
      zmq_z85_encode(z85, static_cast<const std::uint8_t*>(request[6].data()), 32);
      const auto it = allowed_.find(domain);
      const bool ok = it != allowed_.end() && it->second.count(z85) > 0;
      if (ok) {
        status = "200";
        reason = "OK";
        user = z85;
      } else {
        reason = "client key not on the " + domain + " allow-list";
      }
      if (on_decision_) on_decision_(domain, ok, z85, address);
    }
  }
  // Reply: version, request id, status code, status text, user id, metadata.
  std::array<zmq::const_buffer, 6> reply = {zmq::str_buffer("1.0"), zmq::buffer(request_id), zmq::buffer(status),
                                            zmq::buffer(reason),     zmq::buffer(user),        zmq::const_buffer()};
  try {
    zmq::send_multipart(socket_, reply, zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The handshake that asked is gone; libzmq times it out on its side.
  }
}

void make_curve_server(zmq::socket_t& socket, const std::string& secret_key, const std::string& domain) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, secret_key);
  socket.set(zmq::sockopt::zap_domain, domain);
}

}  // namespace orbit
