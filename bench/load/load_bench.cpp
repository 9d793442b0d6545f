// SPDX-License-Identifier: Apache-2.0
// Load: many ranks (default 64 runs x 8 ranks = 512 DEALER connections) stream
// snapshots to one real orbitd over loopback ipc (or tcp) for a set duration.
//
//   bench_load [--runs N] [--ranks-per-run N] [--duration S] [--rate HZ] [--threads N]
//              [--transport ipc|tcp] [--mode active|monitor] [--no-journal] [--http]
//              [--baseline-s S] [--drain-s S] [--stall AT:SECONDS] [--out FILE.json] [--check]
//
// Every snapshot sent is matched with its answer (state, error, or a burn the
// daemon decided on it); what stays unanswered must be explained by the daemon's
// own counters (replies_dropped) or it is an unexplained drop. Reports the round
// trip (p50, p99), orbitd's peak RSS (VmHWM from /proc), its steady RSS (median of
// the second half) and its CPU, and first runs
// the same clients for --baseline-s against a raw ZeroMQ ROUTER echo (the floor of
// round trip at this load) so the ratios come from the same run. With --check it
// exits 1 on any unexplained drop, error reply or rank not welcomed (the bounded
// CI version, bench_load_bounded in ctest). --http has orbitd serve the dashboard,
// whose history of every run is then kept in memory too.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <queue>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

#include "bench/support/bench_hello.hpp"
#include "bench/support/raw_echo.hpp"
#include "protocol/codec.hpp"
#include "support/control_client.hpp"
#include "support/orbitd_process.hpp"

namespace {

using SteadyClock = std::chrono::steady_clock;

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

struct Options {
  int runs = 64;
  int ranks_per_run = 8;
  double duration_s = 60.0;
  double rate_hz = 10.0;  // snapshots per rank per second
  int threads = 2;
  std::string transport = "ipc";
  std::string mode = "active";
  bool journal = true;
  bool http = false;  // orbitd serves the dashboard (its history is kept in memory)
  double baseline_s = 20.0;
  // After streaming, replies are awaited while they keep coming (a 2 s silence
  // ends the wait) for at most this long: a starved daemon answers late, not never.
  double drain_s = 120.0;
  double stall_at_s = 0.0, stall_s = 0.0;  // SIGSTOP orbitd for stall_s at stall_at_s (a backlog on demand)
  std::string out = "bench/results/load.json";
  bool check = false;
};

// A healthy synthetic run: loss decays slowly with a little deterministic noise,
// a spectrum every 10th step (a probe step).
std::string snapshot_bytes(const std::string& run, std::int64_t rank, std::int64_t step) {
  orbit::Snapshot s;
  s.run = run;
  s.rank = rank;
  s.step = step;
  s.time = 1.7e9 + static_cast<double>(step) * 0.1;
  const double noise = std::sin(static_cast<double>(step * 7919 + rank * 104729)) * 0.01;
  s.loss = 2.5 + 0.5 * std::exp(-static_cast<double>(step) / 2000.0) + noise;
  s.grad_norm = 1.0 + noise;
  s.lr = 1e-3;
  s.schedule_lr = 1e-3;
  s.tokens = step * 4096;
  if (step % 10 == 0) {
    std::vector<float> spectrum(64);
    for (int i = 0; i < 64; ++i) spectrum[i] = 1.0f / std::pow(static_cast<float>(i + 1), 0.8f);
    s.spectra["hidden.0"] = std::move(spectrum);
  }
  return orbit::encode(s);
}

// What one client thread saw; summed over threads at the end.
struct Tally {
  std::uint64_t welcomed = 0, hello_errors = 0;
  std::uint64_t sent = 0, refused = 0;  // refused: the client's own queue was full (never sent)
  // skipped_by_later_state: snapshots a later state skipped over (answers come in order, so
  // each was answered by a burn, or its answer is missing).
  std::uint64_t states = 0, errors = 0, burns = 0, skipped_by_later_state = 0, unmatched = 0, other = 0;
  std::uint64_t outstanding_end = 0;
  std::map<std::string, std::uint64_t> error_codes;
  std::string first_error;
  std::vector<float> rtt_us;
  // Round trips per 10 s window of the streaming phase (for stability over time).
  std::vector<std::vector<float>> window_rtt_us;
};

struct Rank {
  zmq::socket_t socket;
  std::string run;
  std::int64_t rank = 0;
  std::int64_t next_step = 0;
  double next_due = 0.0;  // seconds after the streaming start
  bool welcomed = false;
  std::deque<std::pair<std::int64_t, SteadyClock::time_point>> outstanding;  // (step, sent at), in order
};

class ClientThread {
 public:
  ClientThread(zmq::context_t& ctx, const std::string& endpoint,
               std::vector<std::pair<std::string, std::int64_t>> ranks, int world_size, double rate_hz, bool echo)
      : echo_(echo), world_size_(world_size), period_s_(1.0 / rate_hz) {
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error("epoll_create1 failed");
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      Rank r;
      r.socket = zmq::socket_t(ctx, zmq::socket_type::dealer);
      r.run = ranks[i].first;
      r.rank = ranks[i].second;
      r.socket.set(zmq::sockopt::linger, 0);
      r.socket.connect(endpoint);
      epoll_event ev{};
      ev.events = EPOLLIN;  // ZMQ_FD is edge-like: ZMQ_EVENTS is checked after every wake and operation
      ev.data.u64 = i;
      const int fd = r.socket.get(zmq::sockopt::fd);
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) throw std::runtime_error("epoll_ctl failed");
      ranks_.push_back(std::move(r));
    }
  }
  ~ClientThread() { ::close(epoll_); }

  // Says hello on every rank and waits (up to `timeout_s`) for the welcomes.
  void say_hello(double timeout_s) {
    for (auto& r : ranks_) {
      if (echo_) {
        r.welcomed = true;
        ++tally_.welcomed;
        continue;
      }
      const orbit::Hello h = orbit::bench::lr_hello(r.run, "bench_load", 1e-3, r.rank, world_size_);
      r.socket.send(zmq::buffer(orbit::encode(h)), zmq::send_flags::none);
    }
    const auto t0 = SteadyClock::now();
    while (tally_.welcomed + tally_.hello_errors < ranks_.size() && seconds_since(t0) < timeout_s) wait(0.05);
  }

  // Streams from `start` for `duration_s`, then drains replies for up to `drain_s`.
  void stream(SteadyClock::time_point start, double duration_s, double drain_s, double phase_spread_s) {
    start_ = start;
    using Due = std::pair<double, std::size_t>;
    std::priority_queue<Due, std::vector<Due>, std::greater<>> due;
    for (std::size_t i = 0; i < ranks_.size(); ++i) {
      if (!ranks_[i].welcomed) continue;
      // Ranks of one run step together (a synchronous trainer); runs are spread over the period.
      const double run_phase = phase_spread_s * static_cast<double>(std::hash<std::string>{}(ranks_[i].run) % 1000) /
                               1000.0;
      ranks_[i].next_due = run_phase + 0.0005 * static_cast<double>(ranks_[i].rank);
      due.push({ranks_[i].next_due, i});
    }
    while (!due.empty()) {
      const double now = seconds_since(start_);
      if (now >= duration_s) break;
      while (!due.empty() && due.top().first <= now) {
        const std::size_t i = due.top().second;
        due.pop();
        send_snapshot(i);
        Rank& r = ranks_[i];
        r.next_due += period_s_;
        if (r.next_due < duration_s) due.push({r.next_due, i});
      }
      const double next = due.empty() ? duration_s : std::min(due.top().first, duration_s);
      wait(std::max(0.0, next - seconds_since(start_)));
    }
    const auto drain_start = SteadyClock::now();
    double last_reply = 0.0;
    std::uint64_t answered = answered_total();
    while (outstanding_total() > 0 && seconds_since(drain_start) < drain_s) {
      wait(0.05);
      if (answered_total() != answered) {
        answered = answered_total();
        last_reply = seconds_since(drain_start);
      }
      // Tail snapshots answered by a burn leave entries no later state clears:
      // after 2 s of silence nothing more is coming.
      if (seconds_since(drain_start) - last_reply > 2.0) break;
    }
    tally_.outstanding_end = outstanding_total();
  }

  void say_bye() {
    if (echo_) return;
    for (auto& r : ranks_) {
      orbit::Bye bye;
      bye.run = r.run;
      bye.rank = r.rank;
      (void)r.socket.send(zmq::buffer(orbit::encode(bye)), zmq::send_flags::dontwait);
    }
  }

  Tally& tally() { return tally_; }

 private:
  std::uint64_t outstanding_total() const {
    std::uint64_t n = 0;
    for (const auto& r : ranks_) n += r.outstanding.size();
    return n;
  }
  std::uint64_t answered_total() const { return tally_.states + tally_.errors + tally_.burns + tally_.unmatched; }

  void send_snapshot(std::size_t i) {
    Rank& r = ranks_[i];
    const std::string bytes = snapshot_bytes(r.run, r.rank, r.next_step);
    const auto sent_at = SteadyClock::now();
    if (r.socket.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
      ++tally_.sent;
      r.outstanding.emplace_back(r.next_step, sent_at);
    } else {
      ++tally_.refused;  // the trainer's rule: never block; counted
    }
    ++r.next_step;
    drain(i);  // a send can consume the ZMQ_FD edge of a reply already queued
  }

  // Waits up to `timeout_s` for replies on any rank and handles them.
  void wait(double timeout_s) {
    epoll_event events[64];
    const int ms = static_cast<int>(std::ceil(timeout_s * 1000.0));
    const int n = ::epoll_wait(epoll_, events, 64, ms);
    for (int k = 0; k < n; ++k) drain(static_cast<std::size_t>(events[k].data.u64));
    // A safety sweep now and then: an edge missed would otherwise stall a rank.
    if (seconds_since(last_sweep_) > 0.1) {
      last_sweep_ = SteadyClock::now();
      for (std::size_t i = 0; i < ranks_.size(); ++i) drain(i);
    }
  }

  void drain(std::size_t i) {
    Rank& r = ranks_[i];
    while (r.socket.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      zmq::message_t m;
      if (!r.socket.recv(m, zmq::recv_flags::dontwait)) break;
      on_reply(r, m.to_string_view());
    }
  }

  void answer(Rank& r, std::int64_t step, bool by_state) {
    // Answers come in order: entries before `step` were answered by burns.
    while (!r.outstanding.empty() && r.outstanding.front().first < step) {
      r.outstanding.pop_front();
      ++tally_.skipped_by_later_state;
    }
    if (r.outstanding.empty() || r.outstanding.front().first != step) {
      ++tally_.unmatched;
      return;
    }
    const double us =
        std::chrono::duration<double, std::micro>(SteadyClock::now() - r.outstanding.front().second).count();
    r.outstanding.pop_front();
    tally_.rtt_us.push_back(static_cast<float>(us));
    const auto window = static_cast<std::size_t>(seconds_since(start_) / 10.0);
    if (tally_.window_rtt_us.size() <= window) tally_.window_rtt_us.resize(window + 1);
    tally_.window_rtt_us[window].push_back(static_cast<float>(us));
    (void)by_state;
  }

  void on_reply(Rank& r, std::string_view wire) {
    orbit::DecodeResult d = orbit::decode(wire);
    if (!d.ok()) {
      ++tally_.other;
      return;
    }
    auto& m = *d.message;
    if (auto* s = std::get_if<orbit::State>(&m)) {
      ++tally_.states;
      answer(r, s->step, true);
    } else if (auto* snap = std::get_if<orbit::Snapshot>(&m)) {  // the echo baseline
      ++tally_.states;
      answer(r, snap->step, true);
    } else if (auto* e = std::get_if<orbit::Error>(&m)) {
      if (!r.welcomed) {
        ++tally_.hello_errors;
      } else {
        ++tally_.errors;
        if (!r.outstanding.empty()) r.outstanding.pop_front();
      }
      ++tally_.error_codes[std::string(orbit::to_string(e->code))];
      if (tally_.first_error.empty()) tally_.first_error = r.run + "/" + std::to_string(r.rank) + ": " + e->message;
    } else if (std::holds_alternative<orbit::Welcome>(m)) {
      if (!r.welcomed) {
        r.welcomed = true;
        ++tally_.welcomed;
      } else {
        ++tally_.other;
      }
    } else if (std::holds_alternative<orbit::Burn>(m)) {
      ++tally_.burns;  // an answer (to this rank's snapshot) or sent to every rank; counted by the daemon
    } else {
      ++tally_.other;  // heartbeat probes
    }
  }

  bool echo_;
  int world_size_;
  double period_s_;
  int epoll_ = -1;
  std::vector<Rank> ranks_;
  Tally tally_;
  SteadyClock::time_point start_ = SteadyClock::now();
  SteadyClock::time_point last_sweep_ = SteadyClock::now();
};

// /proc/PID readings of the daemon.
struct ProcSample {
  double cpu_s = 0.0;  // utime + stime
  double rss_mb = 0.0;
  double hwm_mb = 0.0;
};

ProcSample read_proc(pid_t pid) {
  ProcSample s;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mb = std::stod(line.substr(6)) / 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_mb = std::stod(line.substr(6)) / 1024.0;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream in(text.substr(close + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  return s;
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double client_cpu_s() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

using orbit::bench::percentile;

struct PhaseResult {
  std::string server;
  double seconds = 0.0;
  Tally total;
  double p50_us = 0, p99_us = 0, max_us = 0;
  double client_cpu_s = 0.0;
  std::string load_before, load_after;
  // The server process while streaming (/proc, every 0.5 s).
  double server_cpu_s = 0.0, server_cores = 0.0;
  double rss_peak_mb = 0.0;  // VmHWM at the end of the phase
  double rss_min_mb = 0.0, rss_max_mb = 0.0;
  double rss_steady_mb = 0.0;  // the median of the second half of the samples
  std::vector<double> rss_every_10s_mb;
};

// Summarizes the (seconds, VmRSS MB) samples and CPU readings of a phase's server.
void summarize_server(PhaseResult& r, const std::vector<std::pair<double, double>>& rss, const ProcSample& first,
                      const ProcSample& last, const ProcSample& end) {
  r.rss_peak_mb = end.hwm_mb;
  if (rss.empty()) return;
  r.server_cpu_s = last.cpu_s - first.cpu_s;
  const double window_s = rss.back().first - rss.front().first;
  r.server_cores = window_s > 0 ? r.server_cpu_s / window_s : 0.0;
  r.rss_min_mb = 1e9;
  for (const auto& [_, mb] : rss) r.rss_min_mb = std::min(r.rss_min_mb, mb), r.rss_max_mb = std::max(r.rss_max_mb, mb);
  std::vector<double> second_half;
  for (std::size_t i = rss.size() / 2; i < rss.size(); ++i) second_half.push_back(rss[i].second);
  r.rss_steady_mb = percentile(second_half, 0.5);
  for (const auto& [t, mb] : rss)
    if (t >= 10.0 * static_cast<double>(r.rss_every_10s_mb.size()))
      r.rss_every_10s_mb.push_back(std::round(mb * 10) / 10);
}

// Runs every client thread against `endpoint` (served by process `server_pid`,
// sampled every 0.5 s while streaming) for `duration_s`. `before_bye` is called once
// every reply is drained, while every session is still open.
PhaseResult run_phase(const std::string& server, pid_t server_pid, const std::string& endpoint, const Options& o,
                      double duration_s, bool echo, const std::function<void()>& before_bye) {
  PhaseResult result;
  result.server = server;
  result.load_before = loadavg();
  zmq::context_t ctx(1);
  ctx.set(zmq::ctxopt::max_sockets, o.runs * o.ranks_per_run + 64);
  std::vector<std::vector<std::pair<std::string, std::int64_t>>> per_thread(static_cast<std::size_t>(o.threads));
  std::size_t n = 0;
  for (int run = 0; run < o.runs; ++run) {
    char name[32];
    std::snprintf(name, sizeof name, "load-%03d", run);
    for (int rank = 0; rank < o.ranks_per_run; ++rank) per_thread[n++ % per_thread.size()].emplace_back(name, rank);
  }
  std::vector<std::unique_ptr<ClientThread>> clients;
  for (auto& ranks : per_thread) {
    clients.push_back(std::make_unique<ClientThread>(ctx, endpoint, ranks, o.ranks_per_run, o.rate_hz, echo));
  }
  const double cpu0 = client_cpu_s();
  std::atomic<int> ready{0};
  SteadyClock::time_point start;
  std::mutex start_mutex;
  std::atomic<bool> go{false};
  std::atomic<int> streamed{0};  // threads done streaming and draining
  std::atomic<bool> bye{false};  // then the ranks say bye (after `before_bye`)
  std::vector<std::thread> threads;
  for (auto& c : clients) {
    threads.emplace_back([&, client = c.get()] {
      client->say_hello(60.0);
      ++ready;
      while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      SteadyClock::time_point t;
      {
        std::lock_guard<std::mutex> lock(start_mutex);
        t = start;
      }
      client->stream(t, duration_s, o.drain_s, 1.0 / o.rate_hz);
      ++streamed;
      while (!bye) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      client->say_bye();
    });
  }
  while (ready < static_cast<int>(clients.size())) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  {
    std::lock_guard<std::mutex> lock(start_mutex);
    start = SteadyClock::now();
  }
  go = true;
  std::vector<std::pair<double, double>> rss;  // (seconds, VmRSS MB)
  ProcSample first{}, last{};
  const bool stall = !echo && o.stall_s > 0;
  bool stopped = false, resumed = false;
  while (seconds_since(start) < duration_s || streamed < static_cast<int>(clients.size())) {
    if (stall && !stopped && seconds_since(start) >= o.stall_at_s) {
      ::kill(server_pid, SIGSTOP);
      stopped = true;
      std::printf("bench_load: orbitd stopped (SIGSTOP) at %.1f s for %.1f s\n", seconds_since(start), o.stall_s);
      std::fflush(stdout);
    }
    if (stopped && !resumed && seconds_since(start) >= o.stall_at_s + o.stall_s) {
      ::kill(server_pid, SIGCONT);
      resumed = true;
    }
    if (seconds_since(start) < duration_s) {
      last = read_proc(server_pid);
      if (rss.empty()) first = last;
      rss.emplace_back(seconds_since(start), last.rss_mb);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (stopped && !resumed) ::kill(server_pid, SIGCONT);
  summarize_server(result, rss, first, last, read_proc(server_pid));
  if (before_bye) before_bye();
  bye = true;
  for (auto& t : threads) t.join();
  result.seconds = duration_s;
  result.client_cpu_s = client_cpu_s() - cpu0;
  result.load_after = loadavg();
  for (auto& c : clients) {
    Tally& t = c->tally();
    Tally& s = result.total;
    s.welcomed += t.welcomed;
    s.hello_errors += t.hello_errors;
    s.sent += t.sent;
    s.refused += t.refused;
    s.states += t.states;
    s.errors += t.errors;
    s.burns += t.burns;
    s.skipped_by_later_state += t.skipped_by_later_state;
    s.unmatched += t.unmatched;
    s.other += t.other;
    s.outstanding_end += t.outstanding_end;
    for (const auto& [code, k] : t.error_codes) s.error_codes[code] += k;
    if (s.first_error.empty()) s.first_error = t.first_error;
    s.rtt_us.insert(s.rtt_us.end(), t.rtt_us.begin(), t.rtt_us.end());
    if (s.window_rtt_us.size() < t.window_rtt_us.size()) s.window_rtt_us.resize(t.window_rtt_us.size());
    for (std::size_t w = 0; w < t.window_rtt_us.size(); ++w)
      s.window_rtt_us[w].insert(s.window_rtt_us[w].end(), t.window_rtt_us[w].begin(), t.window_rtt_us[w].end());
  }
  result.p50_us = percentile(result.total.rtt_us, 0.50);
  result.p99_us = percentile(result.total.rtt_us, 0.99);
  result.max_us = result.total.rtt_us.empty()
                      ? 0.0
                      : *std::max_element(result.total.rtt_us.begin(), result.total.rtt_us.end());
  return result;
}

std::uint64_t stat_of(const msgpack::object& status, const std::string& name) {
  const auto* stats = orbit::test::map_get(status, "stats");
  const auto* v = stats ? orbit::test::map_get(*stats, name) : nullptr;
  return v ? v->as<std::uint64_t>() : 0;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--runs N] [--ranks-per-run N] [--duration S] [--rate HZ] [--threads N]\n"
               "          [--transport ipc|tcp] [--mode active|monitor] [--no-journal] [--http] [--baseline-s S]\n"
               "          [--drain-s S] [--stall AT:SECONDS] [--out FILE.json] [--check]\n"
               "  --drain-s S waits up to S seconds (default 120) after streaming for replies still coming.\n"
               "  --stall AT:SECONDS stops orbitd (SIGSTOP) AT seconds into streaming for SECONDS: a backlog on\n"
               "  demand, to see what it costs in RSS and whether RSS falls again.\n"
               "  ORBITD must name the orbitd binary (e.g. build/daemon/orbitd).\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--echo") orbit::bench::run_raw_echo(argv[2], argv[3], 0);
  Options o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "--runs") o.runs = std::stoi(value());
      else if (a == "--ranks-per-run") o.ranks_per_run = std::stoi(value());
      else if (a == "--duration") o.duration_s = std::stod(value());
      else if (a == "--rate") o.rate_hz = std::stod(value());
      else if (a == "--threads") o.threads = std::stoi(value());
      else if (a == "--transport") o.transport = value();
      else if (a == "--mode") o.mode = value();
      else if (a == "--no-journal") o.journal = false;
      else if (a == "--http") o.http = true;
      else if (a == "--baseline-s") o.baseline_s = std::stod(value());
      else if (a == "--drain-s") o.drain_s = std::stod(value());
      else if (a == "--stall") {
        const std::string v = value();  // AT:SECONDS
        const auto colon = v.find(':');
        if (colon == std::string::npos) throw std::invalid_argument("--stall needs AT:SECONDS");
        o.stall_at_s = std::stod(v.substr(0, colon));
        o.stall_s = std::stod(v.substr(colon + 1));
      } else if (a == "--out") o.out = value();
      else if (a == "--check") o.check = true;
      else if (a == "--help" || a == "-h") return usage(argv[0]) == 2 ? 0 : 0;
      else throw std::invalid_argument("unknown argument " + a);
    }
    if (o.runs < 1 || o.ranks_per_run < 1 || o.threads < 1 || !(o.duration_s > 0) || !(o.rate_hz > 0) ||
        o.baseline_s < 0 || o.drain_s < 0 || (o.transport != "ipc" && o.transport != "tcp") ||
        (o.mode != "active" && o.mode != "monitor"))
      throw std::invalid_argument("a value is out of range");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_load: %s\n", e.what());
    return usage(argv[0]);
  }
  if (!std::getenv("ORBITD")) {
    std::fprintf(stderr, "bench_load: set ORBITD to the orbitd binary (e.g. build/daemon/orbitd)\n");
    return 2;
  }
  // Two descriptors per DEALER here, one per connection in orbitd.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  const int ranks = o.runs * o.ranks_per_run;
  const auto dir = orbit::test::make_temp_dir("load");
  auto endpoint_for = [&](const std::string& name) {
    return o.transport == "ipc" ? "ipc://" + (dir / (name + ".sock")).string() : std::string("tcp://127.0.0.1:*");
  };
  std::printf(
      "bench_load: %d runs x %d ranks = %d ranks, %.0f snapshots/s per rank, %.0f s, %s, mode %s, journal %s, "
      "dashboard %s\n",
      o.runs, o.ranks_per_run, ranks, o.rate_hz, o.duration_s, o.transport.c_str(), o.mode.c_str(),
      o.journal ? "on" : "off", o.http ? "on (--http)" : "off");
  std::fflush(stdout);

  std::vector<PhaseResult> phases;
  if (o.baseline_s > 0) {
    orbit::bench::RawEchoProcess echo("bench_load", endpoint_for("echo"), (dir / "echo-ready").string());
    phases.push_back(run_phase("raw-echo", echo.pid(), echo.endpoint(), o, o.baseline_s, true, {}));
  }

  std::vector<std::string> args{"--endpoint",  endpoint_for("orbitd"),
                                "--telemetry", "ipc://" + (dir / "telemetry.sock").string(),
                                "--control",   "ipc://" + (dir / "control.sock").string(),
                                "--mode",      o.mode,
                                "--log-level", "warn"};
  if (o.http) {
    args.push_back("--http");
    args.push_back("127.0.0.1:0");
  }
  if (o.journal) {
    args.push_back("--journal-dir");
    args.push_back((dir / "journal").string());
  }
  int exit_code = 0;
  {
    orbit::test::OrbitdProcess orbitd(args, /*default_endpoints=*/false);
    zmq::context_t ctx(1);
    orbit::test::ControlClient control(ctx, orbitd.endpoints().control);
    msgpack::object_handle status;  // read once every reply is in, before the ranks say bye
    PhaseResult r = run_phase("orbitd", orbitd.pid(), orbitd.endpoints().adapters, o, o.duration_s, false, [&] {
      status = control.call({{"cmd", std::string("status")}});
    });
    const msgpack::object& st = status.get();
    if (!orbitd.alive()) {
      std::fprintf(stderr, "bench_load: orbitd died:\n%s\n", orbitd.log().c_str());
      return 1;
    }
    const Tally& t = r.total;
    const std::uint64_t burns_decided = stat_of(st, "burns_decided");
    const std::uint64_t replies_dropped = stat_of(st, "replies_dropped");
    const std::uint64_t daemon_snapshots = stat_of(st, "snapshots");
    // Every snapshot not answered by a state or an error (skipped over by a later
    // state, or left at the end) must be one a burn answered (the daemon's
    // burns_decided: each answers exactly one snapshot) or a reply the daemon says it
    // dropped; any other is unexplained (and so is a state for no outstanding step).
    const std::int64_t unexplained = static_cast<std::int64_t>(t.skipped_by_later_state + t.outstanding_end) -
                                     static_cast<std::int64_t>(burns_decided) -
                                     static_cast<std::int64_t>(replies_dropped) +
                                     static_cast<std::int64_t>(t.unmatched);
    phases.push_back(r);
    std::printf("\n%-9s %6s %9s %7s %6s %9s %9s %9s %8s %8s %8s %8s\n", "server", "ranks", "sent", "refused", "errors",
                "p50 us", "p99 us", "max us", "client s", "server s", "RSS MB", "peak MB");
    for (const auto& p : phases) {
      std::printf("%-9s %6llu %9llu %7llu %6llu %9.0f %9.0f %9.0f %8.1f %8.1f %8.1f %8.1f\n", p.server.c_str(),
                  static_cast<unsigned long long>(p.total.welcomed), static_cast<unsigned long long>(p.total.sent),
                  static_cast<unsigned long long>(p.total.refused), static_cast<unsigned long long>(p.total.errors),
                  p.p50_us, p.p99_us, p.max_us, p.client_cpu_s, p.server_cpu_s, p.rss_steady_mb, p.rss_peak_mb);
    }
    std::printf("(RSS MB: the server's steady VmRSS, the median of the second half of the phase; peak: VmHWM)\n");
    std::printf("\nround trip per 10 s window (orbitd): ");
    std::vector<std::pair<double, double>> windows;
    for (auto& w : r.total.window_rtt_us) {
      const double p50 = percentile(w, 0.5), p99 = percentile(w, 0.99);
      windows.emplace_back(p50, p99);
    }
    for (std::size_t w = 0; w < windows.size(); ++w)
      std::printf("%s%.0f/%.0f", w ? " " : "", windows[w].first, windows[w].second);
    std::printf(" (p50/p99 us)\n");
    if (phases.size() == 2) {
      std::printf("ratios orbitd / raw echo at the same load: p50 %.2f, p99 %.2f\n", r.p50_us / phases[0].p50_us,
                  r.p99_us / phases[0].p99_us);
    }
    std::printf(
        "\naccounting: sent %llu = state %llu + error %llu + skipped %llu + left %llu (skipped + left = burns_decided "
        "+ replies_dropped when nothing is lost); "
        "burns received %llu, daemon burns_decided %llu, replies_dropped %llu, unmatched %llu, daemon "
        "snapshots %llu\n",
        static_cast<unsigned long long>(t.sent), static_cast<unsigned long long>(t.states),
        static_cast<unsigned long long>(t.errors), static_cast<unsigned long long>(t.skipped_by_later_state),
        static_cast<unsigned long long>(t.outstanding_end), static_cast<unsigned long long>(t.burns),
        static_cast<unsigned long long>(burns_decided), static_cast<unsigned long long>(replies_dropped),
        static_cast<unsigned long long>(t.unmatched), static_cast<unsigned long long>(daemon_snapshots));
    std::printf("unexplained drops: %lld\n", static_cast<long long>(unexplained));
    if (!t.first_error.empty()) std::printf("first error reply: %s\n", t.first_error.c_str());
    std::printf(
        "orbitd: sessions %llu, runs %llu, RSS peak (VmHWM) %.1f MB, RSS during streaming %.1f..%.1f MB "
        "(steady %.1f MB, the median of the second half; goal <= 30 MB), CPU %.1f s = %.2f cores over %.0f s\n",
        static_cast<unsigned long long>(stat_of(st, "sessions_active")),
        static_cast<unsigned long long>(stat_of(st, "runs_active")), r.rss_peak_mb, r.rss_min_mb, r.rss_max_mb,
        r.rss_steady_mb, r.server_cpu_s, r.server_cores, r.seconds);
    std::printf("load average: before %s, after %s\n", r.load_before.c_str(), r.load_after.c_str());

    std::filesystem::create_directories(std::filesystem::path(o.out).parent_path().empty()
                                            ? std::filesystem::path(".")
                                            : std::filesystem::path(o.out).parent_path());
    std::ofstream json(o.out);
    json << "{\n  \"benchmark\": \"load\",\n  \"runs\": " << o.runs << ",\n  \"ranks_per_run\": " << o.ranks_per_run
         << ",\n  \"ranks\": " << ranks << ",\n  \"rate_hz_per_rank\": " << o.rate_hz
         << ",\n  \"duration_s\": " << o.duration_s << ",\n  \"transport\": \"" << o.transport << "\",\n  \"mode\": \""
         << o.mode << "\",\n  \"journal\": " << (o.journal ? "true" : "false")
         << ",\n  \"http_dashboard\": " << (o.http ? "true" : "false") << ",\n  \"stall_at_s\": " << o.stall_at_s
         << ",\n  \"stall_s\": " << o.stall_s << ",\n  \"client_threads\": " << o.threads << ",\n  \"phases\": [\n";
    for (std::size_t i = 0; i < phases.size(); ++i) {
      const auto& p = phases[i];
      json << "    {\"server\": \"" << p.server << "\", \"seconds\": " << p.seconds
           << ", \"ranks_welcomed\": " << p.total.welcomed << ", \"sent\": " << p.total.sent
           << ", \"refused_by_client_queue\": " << p.total.refused << ", \"answered_state\": " << p.total.states
           << ", \"errors\": " << p.total.errors << ", \"p50_us\": " << p.p50_us << ", \"p99_us\": " << p.p99_us
           << ", \"max_us\": " << p.max_us << ", \"client_cpu_s\": " << p.client_cpu_s
           << ", \"server_cpu_s\": " << p.server_cpu_s << ", \"server_rss_steady_mb\": " << p.rss_steady_mb
           << ", \"server_rss_peak_mb\": " << p.rss_peak_mb << ", \"server_rss_mb_every_10s\": [";
      for (std::size_t k = 0; k < p.rss_every_10s_mb.size(); ++k) json << (k ? ", " : "") << p.rss_every_10s_mb[k];
      json << "], \"load_before\": \"" << p.load_before << "\", \"load_after\": \"" << p.load_after << "\"}"
           << (i + 1 < phases.size() ? "," : "") << "\n";
    }
    json << "  ],\n  \"accounting\": {\"sent\": " << t.sent << ", \"answered_state\": " << t.states
         << ", \"answered_error\": " << t.errors << ", \"skipped_by_later_state\": " << t.skipped_by_later_state
         << ", \"left_unanswered\": " << t.outstanding_end << ", \"burns_received\": " << t.burns
         << ", \"daemon_burns_decided\": " << burns_decided << ", \"daemon_replies_dropped\": " << replies_dropped
         << ", \"daemon_snapshots\": " << daemon_snapshots << ", \"unmatched\": " << t.unmatched
         << ", \"unexplained_drops\": " << unexplained << "},\n";
    json << "  \"error_codes\": {";
    bool first = true;
    for (const auto& [code, k] : t.error_codes)
      json << (first ? "" : ", ") << "\"" << code << "\": " << k, first = false;
    json << "},\n  \"orbitd\": {\"sessions_active\": " << stat_of(st, "sessions_active")
         << ", \"runs_active\": " << stat_of(st, "runs_active") << ", \"rss_peak_mb\": " << r.rss_peak_mb
         << ", \"rss_min_mb\": " << r.rss_min_mb << ", \"rss_max_mb\": " << r.rss_max_mb
         << ", \"rss_steady_mb\": " << r.rss_steady_mb << ", \"rss_goal_mb\": 30"
         << ", \"cpu_s\": " << r.server_cpu_s << ", \"cpu_cores\": " << r.server_cores << "},\n";
    json << "  \"rss_mb_every_10s\": [";
    for (std::size_t i = 0; i < r.rss_every_10s_mb.size(); ++i) json << (i ? ", " : "") << r.rss_every_10s_mb[i];
    json << "],\n  \"windows_p50_p99_us\": [";
    for (std::size_t w = 0; w < windows.size(); ++w)
      json << (w ? ", " : "") << "[" << windows[w].first << ", " << windows[w].second << "]";
    json << "],\n  \"ratios\": {";
    if (phases.size() == 2)
      json << "\"p50_vs_raw_echo\": " << r.p50_us / phases[0].p50_us
           << ", \"p99_vs_raw_echo\": " << r.p99_us / phases[0].p99_us
           << ", \"rss_steady_vs_raw_echo\": " << r.rss_steady_mb / phases[0].rss_steady_mb;
    json << "}\n}\n";
    std::printf("wrote %s\n", o.out.c_str());

    if (o.check) {
      std::vector<std::string> failures;
      if (t.welcomed != static_cast<std::uint64_t>(ranks)) failures.push_back("not every rank was welcomed");
      if (unexplained != 0) failures.push_back("unexplained drops (" + std::to_string(unexplained) + ")");
      if (t.errors != 0 || t.hello_errors != 0) failures.push_back("error replies");
      if (t.sent == 0) failures.push_back("nothing was sent");
      if (daemon_snapshots < t.sent) failures.push_back("the daemon counted fewer snapshots than were sent");
      for (const auto& f : failures) std::fprintf(stderr, "bench_load --check: FAILED: %s\n", f.c_str());
      if (!failures.empty()) exit_code = 1;
    }
  }
  std::filesystem::remove_all(dir);
  return exit_code;
}
