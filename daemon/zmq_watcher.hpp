// SPDX-License-Identifier: Apache-2.0
#pragma once
// Lets a single-threaded Asio loop wait on a ZeroMQ socket.
//
// ZeroMQ's ZMQ_FD is edge-triggered and only says "look at ZMQ_EVENTS": it may
// not fire again for messages that arrived while we were busy, and a send can
// consume the pending edge. So on every wake the owner drains until ZMQ_EVENTS
// has no POLLIN, re-checks after its own sends, and a periodic safety poll
// covers anything still missed.

#include <utility>  // before Asio: Boost 1.74 under C++20

#include <chrono>
#include <functional>

#include <boost/asio.hpp>
#include <zmq.hpp>

namespace orbit {

class ZmqReadWatcher {
 public:
  // `drain` must read until `readable(socket)` is false (or a dontwait receive says
  // EAGAIN, which processes the same pending commands) or its batch budget is spent;
  // it returns true when it stopped early with messages left.
  ZmqReadWatcher(boost::asio::io_context& io, zmq::socket_t& socket, std::function<bool()> drain,
                 std::chrono::milliseconds safety_poll = std::chrono::milliseconds(100));
  ~ZmqReadWatcher();
  ZmqReadWatcher(const ZmqReadWatcher&) = delete;
  ZmqReadWatcher& operator=(const ZmqReadWatcher&) = delete;

  void start();
  void stop();

  // The owner sent on the socket outside `drain`: a send processes ZeroMQ's pending
  // commands and can consume the descriptor's edge for messages that arrived
  // meanwhile, so drain once more from the loop instead of at the safety poll.
  void recheck();

  static bool readable(zmq::socket_t& socket) { return (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0; }

 private:
  void arm();
  void arm_timer();
  void run_drain();
  void post_drain();

  boost::asio::io_context& io_;
  zmq::socket_t& socket_;
  std::function<bool()> drain_;
  boost::asio::posix::stream_descriptor fd_;
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds safety_poll_;
  bool stopped_ = true;
  bool drain_posted_ = false;
};

}  // namespace orbit
