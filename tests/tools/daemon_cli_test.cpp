// SPDX-License-Identifier: Apache-2.0
// `orbit status` and `orbit watch` against a real orbitd with a real client.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <zmq.hpp>

#include <msgpack.hpp>

#include "run_command.hpp"
#include "support/orbitd_process.hpp"
#include "temp_dir.hpp"
#include "tools/daemon_client.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using detail::run_orbit;

bool contains(const std::string& s, const std::string& n) { return s.find(n) != std::string::npos; }

Snapshot snapshot(const std::string& run, std::int64_t step) {
  Snapshot s;
  s.run = run;
  s.step = step;
  s.time = 1000.0 + static_cast<double>(step);
  s.loss = 3.0 - 0.001 * static_cast<double>(step);
  s.grad_norm = 0.5;
  std::vector<float> spectrum(64);
  for (std::size_t i = 0; i < spectrum.size(); ++i) spectrum[i] = 1.0f / static_cast<float>(i + 1);
  s.spectra["hidden.0"] = spectrum;
  return s;
}

class DaemonCli : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon_ = std::make_unique<test::OrbitdProcess>();
    client_ = std::make_unique<test::TestClient>(ctx_, daemon_->endpoints().adapters);
    client_->send(test::make_hello("run-w"));
    auto welcome = client_->recv();
    ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(*welcome));
  }

  // Streams snapshots (one reply each) until `done` is ready: PUB subscribers join late.
  template <class F>
  void stream_until(std::future<F>& done) {
    while (done.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
      client_->send(snapshot("run-w", step_++));
      ASSERT_TRUE(client_->recv()) << "orbitd answers every snapshot";
    }
  }

  zmq::context_t ctx_{1};
  std::unique_ptr<test::OrbitdProcess> daemon_;
  std::unique_ptr<test::TestClient> client_;
  std::int64_t step_ = 0;
};

TEST_F(DaemonCli, StatusShowsRunsSessionsAndCounters) {
  for (int i = 0; i < 5; ++i) {
    client_->send(snapshot("run-w", step_++));
    ASSERT_TRUE(client_->recv());
  }
  auto text = run_orbit({"status", "--control", daemon_->endpoints().control});
  ASSERT_EQ(text.code, 0) << text.output;
  EXPECT_TRUE(contains(text.output, "runs (1)")) << text.output;
  EXPECT_TRUE(contains(text.output, "run-w")) << text.output;
  EXPECT_TRUE(contains(text.output, "sessions (1)")) << text.output;
  EXPECT_TRUE(contains(text.output, "counters")) << text.output;
  auto json = run_orbit({"status", "--json", "--control", daemon_->endpoints().control});
  ASSERT_EQ(json.code, 0) << json.output;
  EXPECT_TRUE(json.output.starts_with("{")) << json.output;
  EXPECT_TRUE(contains(json.output, "\"run\": \"run-w\"")) << json.output;
  EXPECT_TRUE(contains(json.output, "\"step\": 4")) << json.output;
  EXPECT_TRUE(contains(json.output, "\"snapshots\": 5")) << json.output;
}

TEST(DaemonCliEndpoints, StatusAndWatchFindTheSocketsBesideTheAdapterEndpoint) {
  // orbitd started with --endpoint only puts its control and telemetry sockets beside
  // it, not in the default private directory; `--endpoint` (or $ORBIT_ENDPOINT) finds them.
  const auto dir = test::make_temp_dir("cli-beside");
  const std::string adapters = "ipc://" + (dir / "orbitd.sock").string();
  test::OrbitdProcess daemon({"--endpoint", adapters}, /*default_endpoints=*/false);
  const std::string control = "ipc://" + (dir / "control.sock").string();
  ASSERT_EQ(daemon.endpoints().control, control);
  ASSERT_NE(control, default_control_endpoint());

  auto r = run_orbit({"status", "--json", "--endpoint", adapters});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, control)) << r.output;

  ::setenv("ORBIT_ENDPOINT", adapters.c_str(), 1);
  auto from_env = run_orbit({"status", "--json"});
  ::unsetenv("ORBIT_ENDPOINT");
  EXPECT_EQ(from_env.code, 0) << from_env.output;

  zmq::context_t ctx(1);
  test::TestClient client(ctx, adapters);
  client.send(test::make_hello("run-b"));
  ASSERT_TRUE(client.recv());
  auto watch = std::async(std::launch::async, [&] {
    return run_orbit({"watch", "--endpoint", adapters, "--count", "1", "--timeout", "30"});
  });
  for (std::int64_t step = 0; watch.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready; ++step) {
    client.send(snapshot("run-b", step));
    ASSERT_TRUE(client.recv());
  }
  const auto w = watch.get();
  EXPECT_EQ(w.code, 0) << w.output;
  EXPECT_TRUE(w.output.starts_with("run-b  step ")) << w.output;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_F(DaemonCli, StatusWithoutADaemonExitsOne) {
  daemon_->stop();
  auto r = run_orbit({"status", "--control", daemon_->endpoints().control, "--timeout", "0.3"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "no reply")) << r.output;
}

TEST_F(DaemonCli, WatchPrintsOneLinePerTelemetryMessage) {
  auto watch = std::async(std::launch::async, [&] {
    return run_orbit({"watch", "--telemetry", daemon_->endpoints().telemetry, "--count", "3", "--timeout", "30"});
  });
  stream_until(watch);
  const auto r = watch.get();
  ASSERT_EQ(r.code, 0) << r.output;
  std::istringstream in(r.output);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    EXPECT_TRUE(line.starts_with("run-w  step ")) << line;
    EXPECT_TRUE(contains(line, "entropy ")) << line;
    EXPECT_TRUE(contains(line, "\u03c6-prox ")) << line;
  }
  EXPECT_EQ(lines, 3) << r.output;
}

TEST_F(DaemonCli, WatchOnceWithTree) {
  auto watch = std::async(std::launch::async, [&] {
    return run_orbit({"watch", "--telemetry", daemon_->endpoints().telemetry, "--once", "--tree", "--timeout", "30"});
  });
  stream_until(watch);
  const auto r = watch.get();
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(r.output.starts_with("run-w  step ")) << r.output;
  for (const char* row : {"\u251c\u2500 loss", "\u251c\u2500 basin", "\u251c\u2500 health", "\u251c\u2500 lr scale",
                          "\u2514\u2500 reason"})
    EXPECT_TRUE(contains(r.output, row)) << row << "\n" << r.output;
}

TEST_F(DaemonCli, WatchWithNothingToHearExitsOne) {
  auto r = run_orbit({"watch", "--telemetry", daemon_->endpoints().telemetry, "--count", "1", "--timeout", "0.5"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "no telemetry")) << r.output;
}

// A control request: {"v":1,"type":"control","cmd":cmd, ...string/number fields}.
std::string control(const std::string& cmd, const std::map<std::string, std::string>& strings,
                    const std::map<std::string, double>& numbers = {}) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(static_cast<uint32_t>(3 + strings.size() + numbers.size()));
  p.pack(std::string("v"));
  p.pack(1);
  p.pack(std::string("type"));
  p.pack(std::string("control"));
  p.pack(std::string("cmd"));
  p.pack(cmd);
  for (const auto& [k, v] : strings) {
    p.pack(k);
    p.pack(v);
  }
  for (const auto& [k, v] : numbers) {
    p.pack(k);
    p.pack(v);
  }
  return {buf.data(), buf.size()};
}

// Operator actions are journaled too: a forced burn and mode changes replay exactly.
TEST(DaemonJournal, ForcedBurnsAndModeChangesReplayBitForBit) {
  detail::TempDir tmp;
  const auto journal = tmp.path() / "journal";
  test::OrbitdProcess daemon({"--journal-dir", journal.string()});
  zmq::context_t ctx(1);
  test::TestClient client(ctx, daemon.endpoints().adapters);
  client.send(test::make_hello("ops"));
  ASSERT_TRUE(client.recv());
  auto send_snapshots = [&](std::int64_t from, std::int64_t to) {
    for (std::int64_t i = from; i < to; ++i) {
      client.send(snapshot("ops", i));
      auto reply = client.recv();
      ASSERT_TRUE(reply);
      if (auto* b = std::get_if<Burn>(&*reply)) {
        Ack ack;
        ack.run = "ops";
        ack.seq = b->seq;
        ack.step = b->apply_at_step;
        client.send(ack);
      }
    }
  };
  const auto ctl = daemon.endpoints().control;
  send_snapshots(0, 30);
  ASSERT_TRUE(control_request(ctl, control("burn", {{"run", "ops"}, {"reason", "test"}}, {{"lr_scale", 0.5}}),
                              std::chrono::seconds(5)));
  // The adapter receives the forced burn (it went to every rank of the run).
  auto forced = client.recv();
  ASSERT_TRUE(forced && std::holds_alternative<Burn>(*forced));
  send_snapshots(30, 50);
  ASSERT_TRUE(control_request(ctl, control("set_mode", {{"run", "ops"}, {"mode", "monitor"}}), std::chrono::seconds(5)));
  send_snapshots(50, 60);
  ASSERT_TRUE(control_request(ctl, control("set_mode", {{"run", "ops"}, {"mode", "active"}}), std::chrono::seconds(5)));
  send_snapshots(60, 80);
  daemon.stop(SIGTERM);

  auto r = run_orbit({"replay", (journal / "ops").string(), "--verbose"});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "config recorded")) << r.output;
  EXPECT_TRUE(contains(r.output, "(forced)")) << r.output;
  EXPECT_TRUE(contains(r.output, "all reproduced bit for bit")) << r.output;
  auto e = run_orbit({"export", (journal / "ops").string()});
  EXPECT_TRUE(contains(e.output, "\"type\":\"forced_burn\"")) << e.output.substr(0, 2000);
  EXPECT_TRUE(contains(e.output, "\"type\":\"mode\",\"timestamp_ns\"")) << e.output.substr(0, 2000);
}

}  // namespace
}  // namespace orbit

namespace orbit {
namespace {

// `orbit keygen` writes a pair orbitd and `orbit status` use as they are (issue 11).
TEST(OrbitKeygen, WritesPrivatePairsThatOrbitdAndStatusUse) {
  detail::TempDir dir;
  const std::string base = (dir.path() / "orbitd").string();
  auto r = run_orbit({"keygen", base});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto perms = std::filesystem::status(base + ".key").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  r = run_orbit({"keygen", base});
  EXPECT_EQ(r.code, 3) << "an existing key is never overwritten silently";
  EXPECT_TRUE(contains(r.output, "--force")) << r.output;
  ASSERT_EQ(run_orbit({"keygen", (dir.path() / "alice").string()}).code, 0);
  std::filesystem::copy_file(dir.path() / "alice.pub", dir.path() / "operators.allow");
  std::ofstream(dir.path() / "orbitd.toml") << "[security]\ncurve_secret_key_file = \"orbitd.key\"\n"
                                               "adapter_keys_file = \"operators.allow\"\n"
                                               "control_keys_file = \"operators.allow\"\n";
  test::OrbitdProcess orbitd({"--config", (dir.path() / "orbitd.toml").string()});
  const std::string control = orbitd.endpoints().control;
  auto plain = run_orbit({"status", "--control", control, "--timeout", "1"});
  EXPECT_EQ(plain.code, 1) << "a client without keys is not answered: " << plain.output;
  ::setenv("ORBIT_CURVE_SERVER_KEY", (base + ".pub").c_str(), 1);
  ::setenv("ORBIT_CURVE_KEY", (dir.path() / "alice.key").c_str(), 1);
  auto keyed = run_orbit({"status", "--json", "--control", control, "--timeout", "5"});
  ::unsetenv("ORBIT_CURVE_SERVER_KEY");
  ::unsetenv("ORBIT_CURVE_KEY");
  EXPECT_EQ(keyed.code, 0) << keyed.output;
  EXPECT_TRUE(contains(keyed.output, "auth_accepted_control")) << keyed.output;
}

}  // namespace
}  // namespace orbit
