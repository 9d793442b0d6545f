// SPDX-License-Identifier: Apache-2.0
#include "daemon/zmq_watcher.hpp"

namespace orbit {

ZmqReadWatcher::ZmqReadWatcher(boost::asio::io_context& io, zmq::socket_t& socket, std::function<bool()> drain,
                               std::chrono::milliseconds safety_poll)
    : io_(io),
      socket_(socket),
      drain_(std::move(drain)),
      fd_(io, socket.get(zmq::sockopt::fd)),
      timer_(io),
      safety_poll_(safety_poll) {}

ZmqReadWatcher::~ZmqReadWatcher() {
  stop();
  // The descriptor belongs to ZeroMQ: hand it back instead of closing it.
  fd_.release();
}

void ZmqReadWatcher::start() {
  stopped_ = false;
  arm();
  arm_timer();
  run_drain();  // messages may have queued before we started watching
}

void ZmqReadWatcher::stop() {
  stopped_ = true;
  boost::system::error_code ignored;
  fd_.cancel(ignored);
  timer_.cancel();
}

void ZmqReadWatcher::arm() {
  fd_.async_wait(boost::asio::posix::descriptor_base::wait_read, [this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    run_drain();
    arm();
  });
}

void ZmqReadWatcher::arm_timer() {
  timer_.expires_after(safety_poll_);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    run_drain();
    arm_timer();
  });
}

void ZmqReadWatcher::run_drain() {
  if (stopped_) return;
  if (drain_()) {
    // Budget spent with messages left: yield to timers, signals and the other
    // sockets, then continue. The edge is already consumed, so we must not
    // wait for the descriptor again.
    post_drain();
  }
}

void ZmqReadWatcher::recheck() {
  if (!stopped_) post_drain();
}

void ZmqReadWatcher::post_drain() {
  if (drain_posted_) return;
  drain_posted_ = true;
  boost::asio::post(io_, [this] {
    drain_posted_ = false;
    run_drain();
  });
}

}  // namespace orbit
