// SPDX-License-Identifier: Apache-2.0
// The dashboard's data served by a real orbitd over real TCP: the runs list, a
// run's history (what a page opened mid-run backfills from), the page itself, and
// the live event stream, including a client that stops reading: its queue drops
// its oldest events while every snapshot keeps getting its reply.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <regex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using test::make_hello;
using test::make_snapshot;
using test::OrbitdProcess;
using test::TestClient;

// A raw TCP client to "http://127.0.0.1:PORT". `receive_buffer` > 0 shrinks the
// kernel's buffer first, so a client that stops reading backs up quickly.
class Tcp {
 public:
  explicit Tcp(const std::string& url, int receive_buffer = 0) {
    std::smatch m;
    if (!std::regex_match(url, m, std::regex(R"(http://([0-9.]+):(\d+))"))) throw std::runtime_error("bad url " + url);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(m[2])));
    ::inet_pton(AF_INET, m[1].str().c_str(), &addr.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect failed");
  }
  ~Tcp() { ::close(fd_); }
  void send(const std::string& bytes) { ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  // Up to 64 KiB, or "" when the peer closed or nothing came within `ms`.
  std::string read_some(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return {};
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  std::string read_all() {
    std::string out;
    for (std::string s; !(s = read_some(10000)).empty();) out += s;
    return out;
  }

 private:
  int fd_ = -1;
};

struct Reply {
  int status = 0;
  std::string head, body;
};

Reply get(const std::string& url, const std::string& path) {
  Tcp c(url);
  c.send("GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const std::string raw = c.read_all();
  Reply r;
  const auto split = raw.find("\r\n\r\n");
  r.head = raw.substr(0, split);
  if (split != std::string::npos) r.body = raw.substr(split + 4);
  if (raw.rfind("HTTP/1.1 ", 0) == 0) r.status = std::stoi(raw.substr(9, 3));
  return r;
}

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

TEST(Dashboard, SlowEventClientDropsItsOldestEventsAndNeverStallsSnapshots) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0", "--mode", "monitor"});
  const std::string url = orbitd.endpoints().http;
  const std::string subscribe = "GET /api/events?run=busy HTTP/1.1\r\nHost: localhost\r\n\r\n";

  // Reads its headers, then never again.
  Tcp slow(url, 4096);
  slow.send(subscribe);
  ASSERT_NE(slow.read_some(5000).find("text/event-stream"), std::string::npos);

  // Reads everything as it comes.
  Tcp fast(url);
  fast.send(subscribe);
  std::atomic<bool> done{false};
  std::string received;
  std::thread reader([&] {
    while (true) {
      std::string s = fast.read_some(200);
      if (s.empty() && done) break;
      received += s;
    }
  });

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
  }
  const Reply metrics = get(url, "/metrics");
  // Give the fast reader the tail of the stream, then stop it.
  for (int i = 0; i < 50 && received.find("\"step\":" + std::to_string(kSteps - 1) + ",\"time\"") == std::string::npos; ++i)
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
