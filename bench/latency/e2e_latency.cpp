// SPDX-License-Identifier: Apache-2.0
// End-to-end round trip through a real orbitd (snapshot -> state), side by side
// with a raw ZeroMQ ROUTER echo on the same transport, in the same run.
//
//   bench_e2e_latency [--round-trips N] [--pipelined N] [--window W] [--journal] [--out FILE.json]
//
// --journal: every orbitd journals (its own directory, the default fsync policy
// `interval`), as in production; without it no orbitd has a journal.
// Both servers are separate processes, as orbitd is in production. Reports p50,
// p99 and pipelined throughput per transport and the ratios to the raw floor.
// With ORBITD_BASELINE set to another orbitd binary (an older build), that one is
// measured too, interleaved in the same run, and the ratios of ORBITD to it are
// reported beside the ratios to the raw floor.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include "bench/support/bench_hello.hpp"
#include "bench/support/raw_echo.hpp"
#include "protocol/codec.hpp"
#include "support/orbitd_process.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  std::string server, transport;
  double p50_us = 0, p99_us = 0, mean_us = 0, throughput = 0;
  std::size_t request_bytes = 0;
};

std::string snapshot_bytes(std::int64_t step) {
  orbit::Snapshot s;
  s.run = "bench";
  s.step = step;
  s.time = 1.7e9 + static_cast<double>(step);
  s.loss = 2.0;
  s.grad_norm = 1.0;
  s.lr = 1e-3;
  std::vector<float> spectrum(64);
  for (int i = 0; i < 64; ++i) spectrum[i] = 1.0f / static_cast<float>(i + 1);
  s.spectra["hidden.0"] = spectrum;
  // Pad with scalars to about 1 KiB, the size the issue measures.
  for (int i = 0; orbit::encode(s).size() < 1024 - 24; ++i) s.scalars["extra." + std::to_string(i)] = i;
  return orbit::encode(s);
}

Result measure(const std::string& server, const std::string& transport, const std::string& endpoint, bool orbitd,
               int round_trips, int pipelined, int window) {
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, 100000);
  s.set(zmq::sockopt::rcvhwm, 100000);
  s.connect(endpoint);
  zmq::message_t reply;
  if (orbitd) {
    s.send(zmq::buffer(orbit::encode(orbit::bench::lr_hello("bench", "bench", std::nullopt))));
    (void)s.recv(reply);
  }
  Result r{server, transport};
  std::int64_t step = 0;
  // Warm up both paths (connections, allocators, caches).
  for (int i = 0; i < 2000; ++i) {
    std::string m = snapshot_bytes(step++);
    s.send(zmq::buffer(m));
    (void)s.recv(reply);
  }
  std::vector<std::string> requests;
  requests.reserve(1024);
  for (int i = 0; i < 1024; ++i) requests.push_back(snapshot_bytes(step + i));
  r.request_bytes = requests[0].size();

  std::vector<double> rtt;
  rtt.reserve(round_trips);
  for (int i = 0; i < round_trips; ++i) {
    const std::string& m = requests[i % requests.size()];
    const auto t0 = Clock::now();
    s.send(zmq::buffer(m));
    (void)s.recv(reply);
    rtt.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  r.p50_us = orbit::bench::percentile(rtt, 0.50);
  r.p99_us = orbit::bench::percentile(rtt, 0.99);
  double sum = 0;
  for (double v : rtt) sum += v;
  r.mean_us = sum / static_cast<double>(rtt.size());

  // Pipelined: keep `window` requests in flight.
  int sent = 0, received = 0;
  const auto t0 = Clock::now();
  while (received < pipelined) {
    while (sent < pipelined && sent - received < window) {
      s.send(zmq::buffer(requests[sent % requests.size()]));
      ++sent;
    }
    (void)s.recv(reply);
    ++received;
  }
  r.throughput = pipelined / std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--echo") orbit::bench::run_raw_echo(argv[2], argv[3], 100000);
  int round_trips = 20000, pipelined = 100000, window = 64;
  std::string out = "bench/results/e2e_latency.json";
  bool journal = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--journal") journal = true;
    else if (a == "--round-trips" && has_value) round_trips = std::stoi(argv[++i]);
    else if (a == "--pipelined" && has_value) pipelined = std::stoi(argv[++i]);
    else if (a == "--window" && has_value) window = std::stoi(argv[++i]);
    else if (a == "--out" && has_value) out = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--round-trips N] [--pipelined N] [--window W] [--journal] [--out FILE]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!std::getenv("ORBITD")) {
    std::fprintf(stderr, "set ORBITD to the orbitd binary (e.g. build/daemon/orbitd)\n");
    return 2;
  }
  const char* baseline = std::getenv("ORBITD_BASELINE");
  const auto dir = orbit::test::make_temp_dir("bench");
  std::vector<Result> results;
  std::vector<Result> baseline_results;  // per transport, when ORBITD_BASELINE is set
  for (const std::string transport : {"ipc", "tcp"}) {
    const std::string ep_orbitd = transport == "ipc" ? "ipc://" + (dir / "orbitd.sock").string() : "tcp://127.0.0.1:*";
    const std::string ep_echo = transport == "ipc" ? "ipc://" + (dir / "echo.sock").string() : "tcp://127.0.0.1:*";

    // Raw echo in its own process (re-exec of this binary).
    orbit::bench::RawEchoProcess echo("bench_e2e_latency", ep_echo, (dir / ("echo-" + transport)).string());
    const std::string& echo_ep = echo.endpoint();

    auto orbitd_args = [&](const std::string& endpoint, const std::string& name) {
      std::vector<std::string> args{"--endpoint", endpoint, "--telemetry", "tcp://127.0.0.1:*", "--control",
                                    "tcp://127.0.0.1:*", "--allow-exposed-control", "--log-level", "error"};
      if (journal) {
        args.push_back("--journal-dir");
        args.push_back((dir / ("journal-" + name + "-" + transport)).string());
      }
      return args;
    };
    orbit::test::OrbitdProcess orbitd(orbitd_args(ep_orbitd, "orbitd"), false);
    std::unique_ptr<orbit::test::OrbitdProcess> base;
    if (baseline) {
      const std::string current = std::getenv("ORBITD");
      ::setenv("ORBITD", baseline, 1);
      const std::string ep_base = transport == "ipc" ? "ipc://" + (dir / "base.sock").string() : "tcp://127.0.0.1:*";
      base = std::make_unique<orbit::test::OrbitdProcess>(orbitd_args(ep_base, "base"), false);
      ::setenv("ORBITD", current.c_str(), 1);
    }
    // Interleave to share the machine's noise fairly: echo, orbitd, (baseline,) echo, orbitd, ...
    std::vector<Result> echo_runs, orbitd_runs, base_runs;
    for (int rep = 0; rep < 2; ++rep) {
      echo_runs.push_back(measure("raw-echo", transport, echo_ep, false, round_trips / 2, pipelined / 2, window));
      orbitd_runs.push_back(measure("orbitd", transport, orbitd.endpoints().adapters, true, round_trips / 2,
                                    pipelined / 2, window));
      if (base) {
        base_runs.push_back(measure("orbitd-baseline", transport, base->endpoints().adapters, true, round_trips / 2,
                                    pipelined / 2, window));
      }
    }
    auto merge = [](const std::vector<Result>& v) {
      Result r = v[0];
      r.p50_us = (v[0].p50_us + v[1].p50_us) / 2;
      r.p99_us = (v[0].p99_us + v[1].p99_us) / 2;
      r.mean_us = (v[0].mean_us + v[1].mean_us) / 2;
      r.throughput = (v[0].throughput + v[1].throughput) / 2;
      return r;
    };
    results.push_back(merge(echo_runs));
    results.push_back(merge(orbitd_runs));
    if (base) baseline_results.push_back(merge(base_runs));
  }
  std::filesystem::remove_all(dir);

  std::printf("\n%-9s %-5s %9s %9s %9s %13s %7s\n", "server", "trans", "p50 us", "p99 us", "mean us", "pipelined/s", "bytes");
  for (const auto& r : results) {
    std::printf("%-9s %-5s %9.1f %9.1f %9.1f %13.0f %7zu\n", r.server.c_str(), r.transport.c_str(), r.p50_us, r.p99_us,
                r.mean_us, r.throughput, r.request_bytes);
  }
  for (const auto& r : baseline_results) {
    std::printf("%-9s %-5s %9.1f %9.1f %9.1f %13.0f %7zu\n", "baseline", r.transport.c_str(), r.p50_us, r.p99_us,
                r.mean_us, r.throughput, r.request_bytes);
  }
  std::printf("\n%-5s %22s %28s\n", "trans", "p50 ratio (target<=1.2)", "throughput ratio (target>=0.5)");
  std::ofstream json(out);
  json << "{\n  \"benchmark\": \"e2e_latency\",\n  \"round_trips\": " << round_trips << ",\n  \"pipelined\": " << pipelined
       << ",\n  \"window\": " << window << ",\n  \"journal\": " << (journal ? "true" : "false")
       << ",\n  \"results\": [\n";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    json << "    {\"server\": \"" << r.server << "\", \"transport\": \"" << r.transport << "\", \"p50_us\": " << r.p50_us
         << ", \"p99_us\": " << r.p99_us << ", \"mean_us\": " << r.mean_us << ", \"throughput_per_s\": " << r.throughput
         << ", \"request_bytes\": " << r.request_bytes << "}" << (i + 1 < results.size() ? "," : "") << "\n";
  }
  json << "  ],\n";
  if (!baseline_results.empty()) {
    json << "  \"baseline_orbitd\": \"" << baseline << "\",\n  \"baseline_results\": [\n";
    for (std::size_t i = 0; i < baseline_results.size(); ++i) {
      const auto& r = baseline_results[i];
      json << "    {\"server\": \"orbitd-baseline\", \"transport\": \"" << r.transport << "\", \"p50_us\": " << r.p50_us
           << ", \"p99_us\": " << r.p99_us << ", \"mean_us\": " << r.mean_us
           << ", \"throughput_per_s\": " << r.throughput << "}" << (i + 1 < baseline_results.size() ? "," : "") << "\n";
    }
    json << "  ],\n";
  }
  json << "  \"ratios\": {";
  for (std::size_t i = 0; i + 1 < results.size(); i += 2) {
    const double p50 = results[i + 1].p50_us / results[i].p50_us;
    const double thr = results[i + 1].throughput / results[i].throughput;
    std::printf("%-5s %22.2f %28.2f\n", results[i].transport.c_str(), p50, thr);
    json << (i ? ", " : "") << "\"" << results[i].transport << "\": {\"p50_ratio\": " << p50
         << ", \"throughput_ratio\": " << thr;
    if (i / 2 < baseline_results.size()) {
      const Result& b = baseline_results[i / 2];
      const double p50_vs = results[i + 1].p50_us / b.p50_us;
      const double thr_vs = results[i + 1].throughput / b.throughput;
      std::printf("%-5s vs baseline orbitd: p50 %.2fx, throughput %.2fx (baseline vs raw: p50 %.2f, throughput %.2f)\n",
                  results[i].transport.c_str(), p50_vs, thr_vs, b.p50_us / results[i].p50_us,
                  b.throughput / results[i].throughput);
      json << ", \"p50_vs_baseline\": " << p50_vs << ", \"throughput_vs_baseline\": " << thr_vs
           << ", \"baseline_p50_ratio\": " << b.p50_us / results[i].p50_us
           << ", \"baseline_throughput_ratio\": " << b.throughput / results[i].throughput;
    }
    json << "}";
  }
  json << "}\n}\n";
  std::printf("\nwrote %s\n", out.c_str());
  return 0;
}
