// SPDX-License-Identifier: Apache-2.0
// An in-process Server driven by a fake clock: session expiry, the STALE rank and
// uptime follow the injected clock, not the wall clock, and no test step sleeps
// for the behaviour it checks.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include "daemon/clock.hpp"
#include "daemon/server.hpp"
#include "support/control_client.hpp"
#include "support/test_client.hpp"
#include "support/orbitd_process.hpp"

namespace orbit {
namespace {

class FakeClock final : public Clock {
 public:
  double now() const override { return seconds_.load(); }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds_.load())));
  }
  void advance(double seconds) { seconds_.store(seconds_.load() + seconds); }

 private:
  std::atomic<double> seconds_{1.7e9};
};

// The Server's loop on its own thread, as in orbitd; the test talks to it over its sockets.
class ServerOnALoop {
 public:
  ServerOnALoop(DaemonConfig config, const Clock& clock) : server_(io_, std::move(config), clock) {
    server_.start();
    loop_ = std::thread([this] { io_.run(); });
  }
  ~ServerOnALoop() {
    boost::asio::post(io_, [this] { server_.shutdown(); });
    io_.stop();
    loop_.join();
  }
  Server& server() { return server_; }
  // Runs `f` on the loop's thread (the Server is not thread-safe) and returns its result.
  template <class F>
  auto on_loop(F f) {
    std::promise<decltype(f())> result;
    boost::asio::post(io_, [&] { result.set_value(f()); });
    return result.get_future().get();
  }
  // The housekeeping, now.
  void housekeep() {
    on_loop([this] {
      server_.on_housekeeping();
      return true;
    });
  }

 private:
  boost::asio::io_context io_;
  Server server_;
  std::thread loop_;
};

double status_number(test::ControlClient& control, std::string_view section, std::string_view key) {
  auto h = control.call({{"cmd", std::string("status")}});
  const auto* s = test::map_get(h.get(), section);
  if (!s) throw std::runtime_error("status has no " + std::string(section));
  const auto* v = test::map_get(*s, key);
  if (!v) throw std::runtime_error("status has no " + std::string(key));
  return v->as<double>();
}

TEST(ServerClock, SilentSessionsExpireByTheInjectedClock) {
  const auto dir = test::make_temp_dir("fakeclock");
  DaemonConfig config;
  config.endpoint = "ipc://" + (dir / "adapters.sock").string();
  config.telemetry = "ipc://" + (dir / "telemetry.sock").string();
  config.control = "ipc://" + (dir / "control.sock").string();
  config.session_timeout_s = 60.0;
  FakeClock clock;
  ServerOnALoop loop(config, clock);
  zmq::context_t ctx;
  test::TestClient client(ctx, loop.server().endpoints().adapters);
  test::ControlClient control(ctx, loop.server().endpoints().control);

  client.send(test::make_hello("fc"));
  ASSERT_TRUE(client.recv());
  client.send(test::make_snapshot("fc", 1));
  ASSERT_TRUE(client.recv());
  EXPECT_EQ(test::status_counter(control, "sessions_active"), 1u);

  clock.advance(59.0);  // a minute of daemon time passes at once
  loop.housekeep();
  EXPECT_EQ(test::status_counter(control, "sessions_expired"), 0u) << "59 s < session_timeout_s";
  EXPECT_EQ(status_number(control, "daemon", "uptime_s"), 59.0);

  clock.advance(2.0);
  loop.housekeep();
  EXPECT_EQ(test::status_counter(control, "sessions_expired"), 1u);
  EXPECT_EQ(test::status_counter(control, "sessions_active"), 0u);
  EXPECT_EQ(status_number(control, "daemon", "uptime_s"), 61.0);
  // The run's only rank went silent: its controller marks the run STALE.
  EXPECT_EQ(loop.on_loop([&] { return loop.server().runs().at("fc").navigator->state(); }), OrbitState::stale);
  std::filesystem::remove_all(dir);
}

// Caps and expiry together: at daemon.max_sessions a new rank is refused; once the
// injected clock passes session_timeout_s the silent session expires and its place
// is free again. No step sleeps for the timeout.
TEST(ServerClock, AnExpiredSessionFreesItsPlaceUnderTheCap) {
  const auto dir = test::make_temp_dir("fakeclock");
  DaemonConfig config;
  config.endpoint = "ipc://" + (dir / "adapters.sock").string();
  config.telemetry = "ipc://" + (dir / "telemetry.sock").string();
  config.control = "ipc://" + (dir / "control.sock").string();
  config.session_timeout_s = 30.0;
  config.max_sessions = 1;
  FakeClock clock;
  ServerOnALoop loop(config, clock);
  zmq::context_t ctx;
  test::TestClient quiet(ctx, loop.server().endpoints().adapters);
  test::TestClient late(ctx, loop.server().endpoints().adapters);
  test::ControlClient control(ctx, loop.server().endpoints().control);

  quiet.send(test::make_hello("cap", 0, 2));
  auto reply = quiet.recv();
  ASSERT_TRUE(reply && std::holds_alternative<Welcome>(*reply));
  late.send(test::make_hello("cap", 1, 2));
  reply = late.recv();
  ASSERT_TRUE(reply && std::holds_alternative<Error>(*reply));
  EXPECT_EQ(std::get<Error>(*reply).code, ErrorCode::too_large);
  EXPECT_EQ(test::status_counter(control, "sessions_rejected"), 1u);

  clock.advance(31.0);
  loop.housekeep();
  EXPECT_EQ(test::status_counter(control, "sessions_expired"), 1u);
  late.send(test::make_hello("cap", 1, 2));
  reply = late.recv();
  ASSERT_TRUE(reply && std::holds_alternative<Welcome>(*reply));
  EXPECT_EQ(test::status_counter(control, "sessions_active"), 1u);
  EXPECT_EQ(test::status_counter(control, "sessions_rejected"), 1u);
  // The expired rank gets not_registered and must say hello again (and is now over the cap).
  quiet.send(test::make_snapshot("cap", 1, 0));
  reply = quiet.recv();
  ASSERT_TRUE(reply && std::holds_alternative<Error>(*reply));
  EXPECT_EQ(std::get<Error>(*reply).code, ErrorCode::not_registered);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orbit
