// SPDX-License-Identifier: Apache-2.0
// ZmqReadWatcher on real ZeroMQ sockets: ZMQ_FD is edge-triggered, and a send on the
// socket processes ZeroMQ's pending commands, which can consume the edge of a
// message that arrived meanwhile.
#include <utility>  // before Asio: Boost 1.74 under C++20

#include <chrono>
#include <string>
#include <thread>

#include <boost/asio.hpp>
#include <gtest/gtest.h>
#include <zmq.hpp>

#include "daemon/zmq_watcher.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;

struct RouterDealer {
  zmq::context_t ctx;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
  RouterDealer() {
    router.set(zmq::sockopt::linger, 0);
    dealer.set(zmq::sockopt::linger, 0);
    router.bind("tcp://127.0.0.1:*");
    dealer.connect(router.get(zmq::sockopt::last_endpoint));
  }
};

// Runs the loop until `done` or `limit` passes.
template <class Done>
void run_until(boost::asio::io_context& io, Done done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(10ms);
  }
}

// A message arrives while the owner is busy, then the owner sends on the socket
// outside its drain (orbitd: a burn forced from the control socket). Without a
// recheck the message waits for the safety poll (here 60 s); with one it is read
// on the loop's next turn.
TEST(ZmqReadWatcher, ARecheckAfterASendOutsideTheDrainReadsWhatArrivedMeanwhile) {
  RouterDealer s;
  boost::asio::io_context io;
  std::string identity;
  int received = 0;
  ZmqReadWatcher watch(
      io, s.router,
      [&] {
        for (;;) {
          zmq::message_t id, body;
          if (!s.router.recv(id, zmq::recv_flags::dontwait)) return false;
          (void)s.router.recv(body, zmq::recv_flags::dontwait);
          identity = id.to_string();
          ++received;
        }
      },
      60s);
  watch.start();

  s.dealer.send(zmq::str_buffer("first"), zmq::send_flags::none);
  run_until(
      io, [&] { return received == 1; }, 5000ms);
  ASSERT_EQ(received, 1);

  s.dealer.send(zmq::str_buffer("second"), zmq::send_flags::none);
  std::this_thread::sleep_for(200ms);  // it reaches the router's pipe; the loop is not running
  s.router.send(zmq::buffer(identity), zmq::send_flags::sndmore);
  s.router.send(zmq::str_buffer("a burn"), zmq::send_flags::none);
  watch.recheck();

  run_until(
      io, [&] { return received == 2; }, 1000ms);
  EXPECT_EQ(received, 2) << "the message that arrived before the send waits for the safety poll";
  watch.stop();
}

}  // namespace
}  // namespace orbit
