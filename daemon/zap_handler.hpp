// SPDX-License-Identifier: Apache-2.0
#pragma once
// orbitd's ZeroMQ authentication handler (ZAP, ZeroMQ RFC 27): a REP socket on
// inproc://zeromq.zap.01 in the daemon's context, served on the Asio loop. Each
// authenticated socket names a ZAP domain (its endpoint: adapters, telemetry,
// control). On a CURVE socket a client whose public key is not on that domain's
// allow-list is refused; on a plain (NULL mechanism) ipc socket a peer whose user
// id (SO_PEERCRED, which libzmq appends to an ipc peer's address as
// ":uid:gid:pid") is not on the domain's uid list is refused. A refused
// connection never carries a message.

#include <utility>  // before Asio: Boost 1.74 under C++20

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <boost/asio.hpp>
#include <zmq.hpp>

#include "daemon/zmq_watcher.hpp"

namespace orbit {

class ZapHandler {
 public:
  // Told of every decision: the domain, whether the key was let in, the client's
  // public key (Z85) and its address.
  using Decision = std::function<void(const std::string& domain, bool accepted, const std::string& client_key,
                                      const std::string& address)>;

  ZapHandler(boost::asio::io_context& io, zmq::context_t& context, Decision on_decision);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Replaces the public keys (Z85) let into `domain`; a domain without a list refuses everyone.
  void allow(const std::string& domain, std::vector<std::string> keys);
  // Lets the NULL mechanism into `domain` for ipc peers of these user ids only.
  void allow_uids(const std::string& domain, std::set<uid_t> uids);
  // Binds inproc://zeromq.zap.01 (before any CURVE socket binds) and starts serving.
  void start();
  void stop();

 private:
  bool drain();
  void answer(std::vector<zmq::message_t>& request);

  zmq::socket_t socket_;
  std::unique_ptr<ZmqReadWatcher> watch_;
  boost::asio::io_context& io_;
  std::map<std::string, std::set<std::string>> allowed_;
  std::map<std::string, std::set<uid_t>> allowed_uids_;
  Decision on_decision_;
};

// The user id in a ZAP address of an ipc peer ("PATH:uid:gid:pid"), or nullopt.
std::optional<uid_t> ipc_peer_uid(const std::string& address);

// Makes `socket` a CURVE server with orbitd's key pair, authenticated by ZAP `domain`.
void make_curve_server(zmq::socket_t& socket, const std::string& secret_key, const std::string& domain);

}  // namespace orbit
