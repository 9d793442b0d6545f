// SPDX-License-Identifier: Apache-2.0
// AdapterClient (torch-free) against a real orbitd: a message over the daemon's
// announced limit is refused locally (issue 16 item 7).

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "adapters/libtorch/adapter_client.hpp"
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

}  // namespace
}  // namespace orbit
