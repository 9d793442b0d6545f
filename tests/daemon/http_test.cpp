// SPDX-License-Identifier: Apache-2.0
// orbitd's HTTP views (/metrics, /status) against a real process over real TCP,
// including clients that are slow, malformed or too large.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "support/control_client.hpp"
#include "support/http_client.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;
using test::make_hello;
using test::make_snapshot;
using test::OrbitdProcess;
using test::TestClient;

using test::http_request;
using test::HttpReply;
using test::Tcp;

HttpReply get(const std::string& url, const std::string& path) { return test::http_get(url, path); }
HttpReply request(const std::string& url, const std::string& raw) { return http_request(url, raw); }
std::optional<std::string> sample(const std::string& body, const std::string& series) {
  return test::prometheus_sample(body, series);
}

void stream(TestClient& client, const std::string& run, int snapshots) {
  client.send(make_hello(run));
  const auto welcome = client.recv();
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(*welcome)) << "hello of " << run << " not welcomed";
  for (int step = 0; step < snapshots; ++step) {
    client.send(make_snapshot(run, step));
    ASSERT_TRUE(client.recv()) << "no reply to snapshot " << step;
  }
}

TEST(OrbitdHttp, OffUnlessAsked) {
  OrbitdProcess orbitd;
  EXPECT_EQ(orbitd.endpoints().http, "");
}

TEST(OrbitdHttp, MetricsExposeCountersAndRunsByName) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0", "--mode", "monitor"});
  const std::string url = orbitd.endpoints().http;
  ASSERT_FALSE(url.empty());
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  stream(client, "http-run", 7);
  client.send(make_snapshot("nobody", 0));  // no hello: one not_registered error
  ASSERT_TRUE(client.recv());

  const auto r = get(url, "/metrics");
  ASSERT_EQ(r.status, 200) << r.head;
  EXPECT_NE(r.head.find("text/plain; version=0.0.4"), std::string::npos);
  // One metric per quantity, told apart by labels.
  EXPECT_EQ(sample(r.body, R"(orbitd_messages_decoded_total{type="snapshot"})"), "8") << r.body;
  EXPECT_EQ(sample(r.body, R"(orbitd_messages_decoded_total{type="hello"})"), "1");
  EXPECT_EQ(sample(r.body, R"(orbitd_messages_sent_total{type="state"})"), "7");
  EXPECT_EQ(sample(r.body, R"(orbitd_messages_sent_total{type="error"})"), "1");
  EXPECT_EQ(sample(r.body, R"(orbitd_errors_total{code="not_registered"})"), "1");
  EXPECT_EQ(sample(r.body, R"(orbitd_errors_total{code="bad_message"})"), "0");
  EXPECT_EQ(r.body.find("orbitd_error_"), std::string::npos) << "no metric per error code";
  EXPECT_EQ(sample(r.body, "orbitd_runs_active"), "1");
  EXPECT_EQ(sample(r.body, "orbitd_http_requests_total"), "1");  // this request
  EXPECT_NE(r.body.find("# TYPE orbitd_messages_decoded_total counter"), std::string::npos);
  // Every counter's name ends in _total.
  const std::regex counter_type(R"(# TYPE (\S+) counter)");
  int counters = 0;
  for (auto it = std::sregex_iterator(r.body.begin(), r.body.end(), counter_type); it != std::sregex_iterator(); ++it) {
    ++counters;
    EXPECT_TRUE((*it)[1].str().ends_with("_total")) << (*it)[1].str();
  }
  EXPECT_GT(counters, 10);
  const std::string run = R"(run="http-run")";
  EXPECT_EQ(sample(r.body, "orbit_run_step{" + run + "}"), "6");
  EXPECT_EQ(sample(r.body, "orbit_run_state{" + run + ",state=\"MONITOR\"}"), "1");
  EXPECT_EQ(sample(r.body, "orbit_run_state{" + run + ",state=\"CRITICAL\"}"), "0");
  // Health metrics: a family per quantity (its unit in the name), never one family of mixed units.
  EXPECT_EQ(r.body.find("orbit_run_metric{"), std::string::npos);
  // Uniform 64-value hidden spectrum: entropy ln 64 nats, effective rank 64.
  const auto entropy = sample(r.body, "orbit_run_spectral_entropy_nats{" + run + ",spectrum=\"hidden.0\"}");
  ASSERT_TRUE(entropy) << r.body;
  EXPECT_NEAR(std::stod(*entropy), std::log(64.0), 1e-9);
  const auto aggregate = sample(r.body, "orbit_run_spectral_effective_rank{" + run + ",spectrum=\"aggregate\"}");
  ASSERT_TRUE(aggregate) << r.body;
  EXPECT_NEAR(std::stod(*aggregate), 64.0, 1e-6);
  EXPECT_EQ(sample(r.body, "orbit_run_loss{" + run + ",statistic=\"last\"}"), "2.5");
}

// Caps: a hello over daemon.max_runs or daemon.max_sessions gets too_large naming
// the key, and the refusals are counted by name in status and /metrics.
TEST(OrbitdHttp, CapRefusalsAreClearAndCounted) {
  const auto dir = test::make_temp_dir("caps");
  const auto cfg = dir / "orbitd.toml";
  std::ofstream(cfg) << "[daemon]\nmax_runs = 2\nmax_sessions = 3\n";
  OrbitdProcess orbitd({"--config", cfg.string(), "--http", "127.0.0.1:0", "--mode", "monitor"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  auto hello = [&](const std::string& run, std::int64_t rank) {
    client.send(make_hello(run, rank, 4));
    auto reply = client.recv();
    if (!reply) throw std::runtime_error("no reply to hello");
    return *reply;
  };
  ASSERT_TRUE(std::holds_alternative<Welcome>(hello("a", 0)));
  ASSERT_TRUE(std::holds_alternative<Welcome>(hello("a", 1)));
  ASSERT_TRUE(std::holds_alternative<Welcome>(hello("b", 0)));
  auto over_runs = hello("c", 0);
  ASSERT_TRUE(std::holds_alternative<Error>(over_runs));
  EXPECT_EQ(std::get<Error>(over_runs).code, ErrorCode::too_large);
  EXPECT_EQ(std::get<Error>(over_runs).ref, "run");
  EXPECT_NE(std::get<Error>(over_runs).message.find("daemon.max_runs"), std::string::npos);
  auto over_sessions = hello("a", 2);
  ASSERT_TRUE(std::holds_alternative<Error>(over_sessions));
  EXPECT_EQ(std::get<Error>(over_sessions).code, ErrorCode::too_large);
  EXPECT_EQ(std::get<Error>(over_sessions).ref, "rank");
  EXPECT_NE(std::get<Error>(over_sessions).message.find("daemon.max_sessions"), std::string::npos);
  ASSERT_TRUE(std::holds_alternative<Welcome>(hello("a", 1)));  // a known session says hello again: no new place

  test::ControlClient control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(test::status_counter(control, "runs_rejected"), 1u);
  EXPECT_EQ(test::status_counter(control, "sessions_rejected"), 1u);
  const auto r = get(orbitd.endpoints().http, "/metrics");
  EXPECT_EQ(sample(r.body, "orbitd_runs_rejected_total"), "1") << r.body;
  EXPECT_EQ(sample(r.body, "orbitd_sessions_rejected_total"), "1") << r.body;
  EXPECT_EQ(sample(r.body, "orbitd_sessions_active"), "3");
  EXPECT_EQ(sample(r.body, "orbitd_runs_active"), "2");
  EXPECT_EQ(sample(r.body, R"(orbitd_errors_total{code="too_large"})"), "2");
  std::filesystem::remove_all(dir);
}

TEST(OrbitdHttp, SpectralMetricsAreHeldBetweenProbeSteps) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0", "--mode", "monitor"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  stream(client, "probe-run", 5);  // every one with a spectrum: a probe step
  // Steps between probes carry the loss alone.
  for (int step = 5; step < 8; ++step) {
    Snapshot s = make_snapshot("probe-run", step);
    s.spectra.clear();
    s.loss = 2.0;
    client.send(s);
    ASSERT_TRUE(client.recv());
  }
  const auto r = get(orbitd.endpoints().http, "/metrics");
  ASSERT_EQ(r.status, 200);
  const std::string run = R"(run="probe-run")";
  EXPECT_EQ(sample(r.body, "orbit_run_step{" + run + "}"), "7");
  EXPECT_EQ(sample(r.body, "orbit_run_loss{" + run + ",statistic=\"last\"}"), "2") << "scalars are the newest";
  const auto entropy = sample(r.body, "orbit_run_spectral_entropy_nats{" + run + ",spectrum=\"hidden.0\"}");
  ASSERT_TRUE(entropy) << "the last probe's value is held:\n" << r.body;
  EXPECT_NEAR(std::stod(*entropy), std::log(64.0), 1e-9);
}

TEST(OrbitdHttp, MetricsPassPromtoolCheck) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool not installed (Debian: prometheus)";
  OrbitdProcess orbitd({"--http", "127.0.0.1:0"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  stream(client, "lint-run", 3);
  const auto r = get(orbitd.endpoints().http, "/metrics");
  ASSERT_EQ(r.status, 200);
  const auto dir = test::make_temp_dir("promtool");
  { std::ofstream(dir / "metrics.txt") << r.body; }
  const std::string cmd = "promtool check metrics < " + (dir / "metrics.txt").string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string lint;
  char buf[512];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) lint.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 0) << lint << "\n" << r.body;
  EXPECT_EQ(lint, "") << r.body;
  std::filesystem::remove_all(dir);
}

TEST(OrbitdHttp, StatusIsTheControlStatusAsJson) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  stream(client, "json-run", 3);
  const auto r = get(orbitd.endpoints().http, "/status?pretty=1");
  ASSERT_EQ(r.status, 200) << r.head;
  EXPECT_NE(r.head.find("application/json"), std::string::npos);
  EXPECT_NE(r.body.find("\"run\": \"json-run\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"snapshots\": 3"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"http\": \"" + orbitd.endpoints().http + "\""), std::string::npos) << r.body;
}

TEST(OrbitdHttp, BadRequestsGetTheirStatusAndHarmNothingElse) {
  OrbitdProcess orbitd({"--http", "127.0.0.1:0"});
  const std::string url = orbitd.endpoints().http;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("busy"));
  ASSERT_TRUE(client.recv());

  Tcp silent(url);  // connects and never sends a byte
  Tcp half(url);    // sends half a request and stalls
  ASSERT_TRUE(half.send("GET /metr"));
  EXPECT_EQ(get(url, "/nope").status, 404);
  EXPECT_EQ(request(url, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").status, 405);
  EXPECT_EQ(request(url, "this is not http\r\n\r\n").status, 400);
  EXPECT_EQ(request(url, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n").status, 431);

  // While those two connections hang, snapshots are answered and HTTP still serves.
  for (int step = 0; step < 50; ++step) {
    client.send(make_snapshot("busy", step));
    ASSERT_TRUE(client.recv(2s)) << "snapshot " << step << " unanswered while HTTP clients stall";
  }
  const auto r = get(url, "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(sample(r.body, R"(orbitd_messages_decoded_total{type="snapshot"})"), "50");
  // The malformed and the oversized one (the stalled two join after the 5 s timeout).
  const auto rejected = sample(r.body, "orbitd_http_rejected_total");
  ASSERT_TRUE(rejected);
  EXPECT_GE(std::stoi(*rejected), 2);
  EXPECT_TRUE(orbitd.alive());
}

TEST(OrbitdHttp, BadAddressIsAUsageError) {
  const std::string cmd = std::string(std::getenv("ORBITD")) + " --http 127.0.0.1 >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2);
}

TEST(OrbitdHttp, BearerTokenIsRequiredWhenConfigured) {
  const auto dir = test::make_temp_dir("token");
  const std::string token = "s3cr3t-token-0123456789";
  std::ofstream(dir / "http.token") << token << "\n";
  std::filesystem::permissions(dir / "http.token",
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::ofstream(dir / "orbitd.toml") << "[security]\nhttp_token_file = \"http.token\"\n";
  OrbitdProcess orbitd({"--config", (dir / "orbitd.toml").string(), "--http", "127.0.0.1:0"});
  const std::string url = orbitd.endpoints().http;
  auto with = [&](const std::string& header) {
    return request(url, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n" + header + "\r\n");
  };
  const auto none = with("");
  EXPECT_EQ(none.status, 401) << none.head;
  EXPECT_NE(none.head.find("WWW-Authenticate: Bearer"), std::string::npos) << none.head;
  EXPECT_EQ(none.body.find("orbitd_"), std::string::npos) << "a refused request saw metrics";
  EXPECT_EQ(with("Authorization: Bearer wrong-token-0123456789\r\n").status, 401);
  EXPECT_EQ(with("Authorization: Bearer " + token + "x\r\n").status, 401);
  const auto ok = with("Authorization: Bearer " + token + "\r\n");
  ASSERT_EQ(ok.status, 200) << ok.head;
  EXPECT_EQ(sample(ok.body, "orbitd_http_unauthorized_total"), "3") << ok.body;
  std::filesystem::remove_all(dir);
}

TEST(OrbitdHttp, ATokenFileOthersMayReadIsRefusedAtStart) {
  const auto dir = test::make_temp_dir("token");
  std::ofstream(dir / "http.token") << "s3cr3t-token-0123456789\n";
  std::filesystem::permissions(dir / "http.token", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  std::ofstream(dir / "orbitd.toml") << "[security]\nhttp_token_file = \"http.token\"\n";
  try {
    OrbitdProcess orbitd({"--config", (dir / "orbitd.toml").string(), "--http", "127.0.0.1:0"});
    ADD_FAILURE() << "orbitd started with a token file others may read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orbit
