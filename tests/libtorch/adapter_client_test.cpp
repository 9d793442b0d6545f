// SPDX-License-Identifier: Apache-2.0
// AdapterClient (torch-free) against a real orbitd: a message over the daemon's
// announced limit is refused locally (issue 16 item 7), and close() loses nothing.

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include <zmq.h>

#include "adapters/libtorch/adapter_client.hpp"
#include "protocol/curve_keys.hpp"
#include "support/control_client.hpp"
#include "support/orbitd_process.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;

TEST(AdapterClientLimits, AMessageOverTheDaemonsLimitIsRefusedLocally) {
  const auto dir = test::make_temp_dir("cfg");
  std::ofstream(dir / "orbitd.toml") << "[daemon]\nmode = \"monitor\"\n[limits]\nmax_message_bytes = 65536\n";
  test::OrbitdProcess orbitd({"--config", (dir / "orbitd.toml").string()});
  AdapterClientOptions options;
  options.endpoint = orbitd.endpoints().adapters;
  options.run = "too-big";
  AdapterClient client(options);
  ASSERT_TRUE(client.wait_registered(5s));
  EXPECT_EQ(client.max_message_bytes(), 65536u);
  Snapshot big;
  big.run = "too-big";
  big.step = 1;
  big.time = 1.7e9;
  big.loss = 2.0;
  for (int i = 0; i < 8; ++i) big.spectra["s" + std::to_string(i)] = std::vector<float>(4000, 1.0f);  // 128 kB
  EXPECT_FALSE(client.send_snapshot(big));
  EXPECT_EQ(client.counters().oversized, 1u);
  EXPECT_EQ(client.counters().dropped, 0u);
  EXPECT_NE(client.last_refusal().find("65536"), std::string::npos) << client.last_refusal();
  Snapshot small = big;
  small.step = 2;
  small.spectra = {{"s", {3.0f, 2.0f, 1.0f}}};
  EXPECT_TRUE(client.send_snapshot(small));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!client.last_state() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
    client.poll();
  }
  ASSERT_TRUE(client.last_state());
  EXPECT_EQ(client.last_state()->step, 2);
  EXPECT_EQ(client.counters().errors, 0u);
  std::filesystem::remove_all(dir);
}

// Closing right after a burst: a close that left replies unread would reset the
// connection and lose the burst's tail and the bye; close() waits for its ping's echo.
TEST(AdapterClientClose, EverySnapshotAndTheByeAreInTheDaemonWhenCloseReturns) {
  test::OrbitdProcess orbitd;
  AdapterClientOptions options;
  options.endpoint = orbitd.endpoints().adapters;
  options.run = "closing";
  options.send_queue = 1000;
  Snapshot snapshot;
  snapshot.run = "closing";
  snapshot.time = 1.7e9;
  snapshot.loss = 2.0;
  snapshot.spectra["hidden.0"] = std::vector<float>(256, 0.5f);
  {
    AdapterClient client(options);
    ASSERT_TRUE(client.wait_registered(5s));
    for (int step = 0; step < 300; ++step) {
      snapshot.step = step;
      ASSERT_TRUE(client.send_snapshot(snapshot));
    }
    client.close();
    EXPECT_TRUE(client.closed());
    EXPECT_EQ(client.counters().close_confirmed, 1u);
    snapshot.step = 300;
    EXPECT_FALSE(client.send_snapshot(snapshot));
  }  // the socket closes here, with linger 0
  zmq::context_t ctx;
  test::ControlClient control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(test::status_counter(control, "snapshots"), 300u);
  EXPECT_EQ(test::status_counter(control, "byes"), 1u);
  EXPECT_EQ(test::status_counter(control, "sessions_closed"), 1u);
}

// CURVE (issue 11): a key pair on orbitd's adapter allow-list registers; one that is
// not never hears from the daemon, and orbitd counts the refusal.
TEST(AdapterClientCurve, AllowedKeyRegistersUnknownKeyIsRefused) {
  const auto dir = test::make_temp_dir("curve");
  auto pair = [] {
    char pub[41] = {}, sec[41] = {};
    if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed");
    return CurveKeyPair{pub, sec};
  };
  const CurveKeyPair server = pair(), adapter = pair(), stranger = pair();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    std::filesystem::permissions(dir / name, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  };
  write("orbitd.key", format_secret_key_file(server));
  write("orbitd.pub", format_public_key_file(server.public_key));
  write("adapter.key", format_secret_key_file(adapter));
  write("stranger.key", format_secret_key_file(stranger));
  write("adapters.allow", adapter.public_key + "\n");
  write("orbitd.toml",
        "[daemon]\nmode = \"monitor\"\n[security]\ncurve_secret_key_file = \"orbitd.key\"\n"
        "adapter_keys_file = \"adapters.allow\"\ncontrol_keys_file = \"adapters.allow\"\n");
  test::OrbitdProcess orbitd({"--config", (dir / "orbitd.toml").string()});

  AdapterClientOptions options;
  options.endpoint = orbitd.endpoints().adapters;
  options.run = "curve-cpp";
  options.curve_server_key = (dir / "orbitd.pub").string();
  options.curve_key_file = (dir / "adapter.key").string();
  AdapterClient allowed(options);
  EXPECT_TRUE(allowed.curve());
  EXPECT_TRUE(allowed.wait_registered(5s)) << orbitd.log();

  options.run = "curve-cpp-stranger";
  options.curve_server_key = server.public_key;  // the Z85 key itself works too
  options.curve_key_file = (dir / "stranger.key").string();
  AdapterClient refused(options);
  EXPECT_FALSE(refused.wait_registered(1500ms));
  EXPECT_EQ(refused.counters().welcomes, 0u);

  options.curve_key_file.clear();  // half a pair (and no $ORBIT_CURVE_KEY) is an error
  ::unsetenv("ORBIT_CURVE_KEY");
  EXPECT_THROW(AdapterClient{options}, std::runtime_error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orbit
