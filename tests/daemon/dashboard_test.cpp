// SPDX-License-Identifier: Apache-2.0
// The dashboard's data served by a real orbitd over real TCP: the runs list, a
// run's history (what a page opened mid-run backfills from), the page itself, and
// the live event stream, including a client that stops reading: its queue drops
// its oldest events while every snapshot keeps getting its reply.

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/http_client.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using test::make_hello;
using test::make_snapshot;
using test::OrbitdProcess;
using test::TestClient;

using test::HttpReply;
using test::Tcp;
using Reply = HttpReply;

Reply get(const std::string& url, const std::string& path) { return test::http_get(url, path); }

std::optional<double> sample(const std::string& body, const std::string& series) {
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

void open_run(TestClient& client, const std::string& run) {
  client.send(make_hello(run));
  const auto welcome = client.recv();
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(*welcome)) << "hello of " << run << " not welcomed";
}

TEST(Dashboard, RunsListHistoryAndPage) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0", "--mode", "monitor"});
  const std::string url = orbitd.endpoints().http;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  open_run(client, "mid-run");
  for (int step = 0; step < 20; ++step) {
    Snapshot s = make_snapshot("mid-run", step);
    if (step % 5) s.spectra.clear();  // probe steps only, as adapters send them
    client.send(s);
    ASSERT_TRUE(client.recv()) << "no reply to snapshot " << step;
  }

  const Reply runs = get(url, "/api/runs");
  EXPECT_EQ(runs.status, 200);
  EXPECT_NE(runs.body.find("\"run\":\"mid-run\",\"points\":20"), std::string::npos) << runs.body;

  const Reply history = get(url, "/api/runs/mid-run/history");
  ASSERT_EQ(history.status, 200);
  EXPECT_EQ(count(history.body, "\"step\":"), 20u + 1u) << "20 points and the spectrum's step";
  EXPECT_NE(history.body.find("\"step\":19,"), std::string::npos);
  // The basin of step 15's spectrum holds on the steps between probes, with its age.
  EXPECT_NE(history.body.find("\"basin_age_steps\":4"), std::string::npos);
  EXPECT_NE(history.body.find("\"spectrum\":{\"run\":\"mid-run\",\"step\":15"), std::string::npos);
  EXPECT_EQ(history.body.find("\"basin\":\"UNKNOWN\""), std::string::npos);

  EXPECT_EQ(get(url, "/api/runs/no-such-run/history").status, 404);
  const Reply config = get(url, "/api/config");
  EXPECT_NE(config.body.find("\"entropy\":{\"good\":"), std::string::npos) << config.body;

  const Reply page = get(url, "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.head.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("uPlot.iife.min.js"), std::string::npos);
  EXPECT_EQ(get(url, "/app.js").status, 200);
  EXPECT_EQ(get(url, "/../CMakeLists.txt").status, 404) << "only the page's own files are served";
}

TEST(Dashboard, HistoryLimitsComeFromTheConfig) {
  const auto dir = std::filesystem::temp_directory_path() / ("orbit-dash-limits-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "orbitd.toml";
  std::ofstream(file) << "[dashboard]\nhistory_steps = 7\nmax_runs = 2\n";
  OrbitdProcess orbitd({"--config", file.string(), "--http", "127.0.0.1:0", "--mode", "monitor"});
  const std::string url = orbitd.endpoints().http;
  zmq::context_t ctx;
  for (const std::string run : {"first", "second", "third"}) {
    TestClient client(ctx, orbitd.endpoints().adapters);
    open_run(client, run);
    for (int step = 0; step < 12; ++step) {
      client.send(make_snapshot(run, step));
      ASSERT_TRUE(client.recv()) << "no reply to " << run << " snapshot " << step;
    }
  }
  const Reply runs = get(url, "/api/runs");
  EXPECT_EQ(runs.body.find("\"run\":\"first\""), std::string::npos) << "max_runs = 2 keeps the 2 latest: " << runs.body;
  EXPECT_NE(runs.body.find("\"run\":\"second\",\"points\":7"), std::string::npos) << runs.body;
  EXPECT_NE(runs.body.find("\"run\":\"third\",\"points\":7"), std::string::npos) << runs.body;
  const Reply history = get(url, "/api/runs/third/history");
  EXPECT_EQ(count(history.body, "\"time\":"), 7u) << history.body;
  EXPECT_EQ(history.body.find("\"step\":4,\"time\""), std::string::npos) << "steps 0-4 left the history";
  EXPECT_NE(history.body.find("\"step\":5,\"time\""), std::string::npos);
  EXPECT_EQ(get(url, "/api/runs/first/history").status, 404);
  std::filesystem::remove_all(dir);
}

TEST(Dashboard, SlowEventClientDropsItsOldestEventsAndNeverStallsSnapshots) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0", "--mode", "monitor"});
  const std::string url = orbitd.endpoints().http;
  const std::string subscribe = "GET /api/events?run=busy HTTP/1.1\r\nHost: localhost\r\n\r\n";

  // Reads its headers, then never again.
  Tcp slow(url, 4096);
  ASSERT_TRUE(slow.send(subscribe));
  ASSERT_NE(slow.read_some(5000).find("text/event-stream"), std::string::npos);

  // Reads everything as it comes.
  Tcp fast(url);
  ASSERT_TRUE(fast.send(subscribe));
  std::atomic<bool> done{false};
  std::mutex received_mutex;
  std::string received;
  std::thread reader([&] {
    while (true) {
      std::string s = fast.read_some(200);
      if (s.empty() && done) break;
      std::lock_guard<std::mutex> lock(received_mutex);
      received += s;
    }
  });
  auto points_received = [&] {
    std::lock_guard<std::mutex> lock(received_mutex);
    return count(received, "event: point\n");
  };

  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  open_run(client, "busy");
  constexpr int kSteps = 1500;
  for (int step = 0; step < kSteps; ++step) {
    Snapshot s = make_snapshot("busy", step);
    // A 1024-value spectrum event per step (~12 KiB of JSON): the stalled client backs up.
    std::vector<float> spectrum(1024);
    for (std::size_t i = 0; i < spectrum.size(); ++i) spectrum[i] = 1.0f / (static_cast<float>(i) + 1.7f);
    s.spectra["hidden.0"] = std::move(spectrum);
    client.send(s);
    ASSERT_TRUE(client.recv()) << "no reply to snapshot " << step << " with a stalled event client attached";
    // The reading client is a thread of this test sharing two cores with orbitd and
    // the sender: it is let catch up every 100 steps (up to 5 s), so that it lags by
    // less than its 1024-event queue whatever the scheduler does. A daemon that
    // stopped writing to it would still fail here; the stalled client never reads.
    if (step % 100 == 99)
      for (int i = 0; i < 500 && points_received() < static_cast<std::size_t>(step + 1 - 100); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const Reply metrics = get(url, "/metrics");
  // Give the fast reader the tail of the stream, then stop it.
  for (int i = 0; i < 50 && points_received() < static_cast<std::size_t>(kSteps); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  done = true;
  reader.join();

  EXPECT_EQ(sample(metrics.body, "orbitd_dashboard_streams").value_or(-1), 2.0) << metrics.body;
  EXPECT_GT(sample(metrics.body, "orbitd_dashboard_events_dropped_total").value_or(0), 0.0)
      << "the stalled client's queue should have overflowed";
  EXPECT_EQ(count(received, "event: point\n"), static_cast<std::size_t>(kSteps)) << "the reading client lost events";
  EXPECT_NE(received.find("\"step\":" + std::to_string(kSteps - 1) + ",\"time\""), std::string::npos);
}

}  // namespace
}  // namespace orbit
