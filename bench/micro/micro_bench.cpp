// SPDX-License-Identifier: Apache-2.0
// Google Benchmark suite for the per-snapshot hot paths: snapshot decode (fast path
// and the reference object-tree decoder side by side), spectral metrics, its entropy loop
// (std::log beside the vector log), trend fits, cadence noise,
// the loss jump, a filter window (std::deque beside RingDeque),
// Navigator::on_snapshot, a replay with and without the filter memo, journal append and
// read, load_recorded_run and stream_recorded_run. Not a test: run it by hand,
//
//   build/bench/micro/bench_micro [--benchmark_filter=Decode] [--benchmark_repetitions=5]
//
// (ctest only runs it once with a tiny --benchmark_min_time to check that it runs).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include "config/config.hpp"
#include "controllers/cadence_noise.hpp"
#include "controllers/loss_jump_detector.hpp"
#include "controllers/navigator.hpp"
#include "controllers/ring_deque.hpp"
#include "controllers/spectral_metrics.hpp"
#include "controllers/trend.hpp"
#include "controllers/vector_log.hpp"
#include "journal/journal.hpp"
#include "journal/journal_reader.hpp"
#include "journal/journal_replay.hpp"
#include "protocol/codec.hpp"

namespace {

namespace fs = std::filesystem;

// A snapshot as the replay bench writes them: one 64-value power-law spectrum, loss,
// grad norm, lr; `scalars` extra named scalars (the latency bench pads to ~1 KiB with 60).
orbit::Snapshot make_snapshot(std::int64_t step, int scalars) {
  orbit::Snapshot s;
  s.run = "bench";
  s.step = step;
  s.time = 1.7e9 + static_cast<double>(step);
  s.loss = 2.5 + 0.01 * std::sin(static_cast<double>(step));
  s.grad_norm = 0.4;
  s.lr = 3e-4;
  auto& spectrum = s.spectra["hidden.0"];
  spectrum.resize(64);
  for (std::size_t k = 0; k < spectrum.size(); ++k)
    spectrum[k] = static_cast<float>(
        std::pow(static_cast<double>(k + 1), -(1.0 + 0.001 * static_cast<double>(step % 50))));
  for (int i = 0; i < scalars; ++i) s.scalars["extra." + std::to_string(i)] = i;
  return s;
}

void BM_DecodeReference(benchmark::State& state) {
  const std::string bytes = orbit::encode(make_snapshot(7, static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(orbit::decode_reference(bytes));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(BM_DecodeReference)->Arg(0)->Arg(60);

void BM_Decode(benchmark::State& state) {
  const std::string bytes = orbit::encode(make_snapshot(7, static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(orbit::decode(bytes));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(BM_Decode)->Arg(0)->Arg(60);

void BM_DecodeSnapshotInto(benchmark::State& state) {
  const std::string bytes = orbit::encode(make_snapshot(7, static_cast<int>(state.range(0))));
  orbit::Snapshot into;
  orbit::DecodeResult other;
  for (auto _ : state) {
    const bool ok = orbit::decode_snapshot_into(bytes, into, other);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(into.step);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(BM_DecodeSnapshotInto)->Arg(0)->Arg(60);

// A Navigator at the default config, and 1,024 snapshots to feed it in turn.
std::unique_ptr<orbit::Navigator> default_navigator() {
  const orbit::NavigatorConfig config = orbit::parse_daemon_config("", "<defaults>").navigator;
  orbit::RunInfo info;
  info.run = "bench";
  info.actuators = {"lr"};
  info.base_lr = 3e-4;
  return std::make_unique<orbit::Navigator>(config, info, orbit::Mode::active);
}

std::vector<orbit::Snapshot> snapshots(int scalars) {
  std::vector<orbit::Snapshot> snaps;
  for (int i = 0; i < 1024; ++i) snaps.push_back(make_snapshot(i, scalars));
  return snaps;
}

// The reply orbitd sends for most snapshots: a State with one decision's metrics.
void BM_EncodeState(benchmark::State& state) {
  const std::unique_ptr<orbit::Navigator> nav = default_navigator();
  orbit::Decision d;
  for (int i = 0; i < 200; ++i) d = nav->on_snapshot(make_snapshot(i, 0));
  orbit::State reply{"bench", 0, 199, d.state, d.basin, d.metrics, d.basin_age_steps};
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string wire = orbit::encode(reply);
    bytes = wire.size();
    benchmark::DoNotOptimize(wire.data());
  }
  state.counters["metrics"] = static_cast<double>(reply.metrics.size());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_EncodeState);

void BM_SpectralMetrics(benchmark::State& state) {
  const auto s = make_snapshot(7, 0);
  const auto& spectrum = s.spectra.at("hidden.0");
  for (auto _ : state) benchmark::DoNotOptimize(orbit::spectral_metrics(spectrum));
}
BENCHMARK(BM_SpectralMetrics);

// The entropy loop of spectral_metrics over that spectrum (64 values): the plain
// loop with std::log one value at a time (Arg 0, the loop before) or
// entropy_of_shares, shares and logs four at a time (Arg 1; counter `vector` says
// whether the AVX2 kernel ran). Both give the same bits.
void BM_EntropyLoop(benchmark::State& state) {
  const auto s = make_snapshot(7, 0);
  const auto& spectrum = s.spectra.at("hidden.0");
  double total = 0.0;
  for (float v : spectrum) total += std::abs(static_cast<double>(v));
  for (auto _ : state) {
    double h = 0.0;
    if (state.range(0) == 0) {
      for (float v : spectrum) {
        const double p = std::abs(static_cast<double>(v)) / total;
        if (p > 0.0) h -= p * std::log(p);
      }
    } else {
      h = orbit::entropy_of_shares(spectrum.data(), spectrum.size(), total);
    }
    benchmark::DoNotOptimize(h);
  }
  state.counters["vector"] = state.range(0) != 0 && orbit::vector_log_in_use() ? 1 : 0;
}
BENCHMARK(BM_EntropyLoop)->ArgName("vector")->Arg(0)->Arg(1);

// One push and one fit per iteration: the running-sums fit, or (Direct) the
// two-pass reference fit it replaced, on the same pushes.
template <bool Direct>
void push_and_fit(benchmark::State& state) {
  orbit::TrendWindow w(static_cast<std::size_t>(state.range(0)));
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise;
  double x = 0;
  for (auto _ : state) {
    w.push(x, 0.001 * x + noise(rng));
    x += 1;
    benchmark::DoNotOptimize(Direct ? w.fit_direct() : w.fit());
  }
}

void BM_TrendPushFit(benchmark::State& state) { push_and_fit<false>(state); }
BENCHMARK(BM_TrendPushFit)->Arg(20)->Arg(200);

void BM_TrendPushFitDirect(benchmark::State& state) { push_and_fit<true>(state); }
BENCHMARK(BM_TrendPushFitDirect)->Arg(20)->Arg(200);

// One CadenceNoise update at the default windows (level 5, noise 40), past warmup:
// ScalarSignals runs two per snapshot (ln loss, ln grad norm).
void BM_CadenceNoiseUpdate(benchmark::State& state) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0.0, 0.01);
  std::vector<double> xs(4096);
  for (double& x : xs) x = 1.0 + noise(rng);
  orbit::CadenceNoise cadence;
  const orbit::CadenceNoiseParams params;
  std::int64_t step = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cadence.update(step, xs[static_cast<std::size_t>(step) % xs.size()], params));
    ++step;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CadenceNoiseUpdate);

// One LossJumpDetector update at the default windows (level 5, grad 20), past
// warmup: ScalarSignals runs one per snapshot.
void BM_LossJumpUpdate(benchmark::State& state) {
  std::mt19937_64 rng(6);
  std::normal_distribution<double> noise(0.0, 0.01);
  std::vector<double> losses(4096), grads(4096);
  for (std::size_t i = 0; i < losses.size(); ++i) {
    losses[i] = 2.5 + noise(rng);
    grads[i] = 0.4 * std::exp(noise(rng));
  }
  orbit::LossJumpDetector jump;
  const orbit::LossJumpParams params;
  std::int64_t step = 0;
  for (auto _ : state) {
    const auto i = static_cast<std::size_t>(step) % losses.size();
    benchmark::DoNotOptimize(jump.update(step, losses[i], grads[i], params));
    ++step;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LossJumpUpdate);

// A filter's window per snapshot: push the newest value, drop the oldest past
// `window`, read the window's least value (the loss jump's grad window: 20; the
// cadence noise's difference window: 40). std::deque, which the filters used, beside
// RingDeque, which they use now.
template <class Window>
void window_push_drop_min(benchmark::State& state) {
  const auto window = static_cast<std::size_t>(state.range(0));
  std::mt19937_64 rng(7);
  std::vector<double> xs(4096);
  for (double& x : xs) x = static_cast<double>(rng() % 100000);
  Window w;
  std::size_t i = 0;
  for (auto _ : state) {
    w.push_back(xs[i++ % xs.size()]);
    while (w.size() > window) w.pop_front();
    benchmark::DoNotOptimize(*std::min_element(w.begin(), w.end()));
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_WindowStdDeque(benchmark::State& state) { window_push_drop_min<std::deque<double>>(state); }
BENCHMARK(BM_WindowStdDeque)->Arg(20)->Arg(40);
void BM_WindowRingDeque(benchmark::State& state) { window_push_drop_min<orbit::RingDeque<double>>(state); }
BENCHMARK(BM_WindowRingDeque)->Arg(20)->Arg(40);

void BM_NavigatorOnSnapshot(benchmark::State& state) {
  const std::unique_ptr<orbit::Navigator> owner = default_navigator();
  orbit::Navigator& nav = *owner;
  nav.set_report_metrics(state.range(1) != 0);  // off: as replay without a timeline and tune run it
  std::vector<orbit::Snapshot> snaps = snapshots(static_cast<int>(state.range(0)));
  std::int64_t step = 0;
  for (auto _ : state) {
    orbit::Snapshot& s = snaps[static_cast<std::size_t>(step % 1024)];
    s.step = step++;
    benchmark::DoNotOptimize(nav.on_snapshot(s));
  }
}
BENCHMARK(BM_NavigatorOnSnapshot)->ArgNames({"scalars", "metrics"})->Args({0, 1})->Args({60, 1})->Args({0, 0});

// Metrics on, each decision's metrics map handed back (Navigator::recycle_metrics) as
// orbitd does: the next decision refills its nodes instead of allocating them.
void BM_NavigatorOnSnapshotRecycled(benchmark::State& state) {
  const std::unique_ptr<orbit::Navigator> owner = default_navigator();
  orbit::Navigator& nav = *owner;
  std::vector<orbit::Snapshot> snaps = snapshots(0);
  std::int64_t step = 0;
  for (auto _ : state) {
    orbit::Snapshot& s = snaps[static_cast<std::size_t>(step % 1024)];
    s.step = step++;
    orbit::Decision d = nav.on_snapshot(s);
    benchmark::DoNotOptimize(d.metrics.size());
    nav.recycle_metrics(std::move(d.metrics));
  }
}
BENCHMARK(BM_NavigatorOnSnapshotRecycled);

// One replay of 1,024 snapshots through a fresh Navigator (metrics off, as tune runs
// it), without (memo 0) and with (memo 1) following the memo of an earlier replay's
// snapshot-only filters (Navigator::follow_memo): what each tune candidate saves.
void BM_NavigatorReplayMemo(benchmark::State& state) {
  const std::vector<orbit::Snapshot> snaps = snapshots(0);
  orbit::NavigatorMemo memo;
  {
    const std::unique_ptr<orbit::Navigator> recorder = default_navigator();
    recorder->set_report_metrics(false);
    recorder->record_memo(&memo);
    for (const orbit::Snapshot& s : snaps) recorder->on_snapshot(s);
  }
  for (auto _ : state) {
    const std::unique_ptr<orbit::Navigator> nav = default_navigator();
    nav->set_report_metrics(false);
    if (state.range(0)) nav->follow_memo(&memo);
    for (const orbit::Snapshot& s : snaps) benchmark::DoNotOptimize(nav->on_snapshot(s));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(snaps.size()));
}
BENCHMARK(BM_NavigatorReplayMemo)->ArgName("memo")->Arg(0)->Arg(1);

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/orbit-bench-micro-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

void BM_JournalAppend(benchmark::State& state) {
  TempDir dir;
  orbit::JournalOptions o;
  o.root = dir.path;
  o.fsync = orbit::JournalOptions::never;
  orbit::Journal j = orbit::Journal::open(o);
  const std::string bytes = orbit::encode(make_snapshot(7, 0));
  std::int64_t ns = 0;
  for (auto _ : state) j.append("bench", orbit::RecordType::snapshot, ns++, bytes);
  j.flush();
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}
BENCHMARK(BM_JournalAppend);

void BM_JournalRead(benchmark::State& state) {
  TempDir dir;
  {
    orbit::JournalOptions o;
    o.root = dir.path;
    o.fsync = orbit::JournalOptions::never;
    orbit::Journal j = orbit::Journal::open(o);
    const std::string bytes = orbit::encode(make_snapshot(7, 0));
    for (int i = 0; i < 10000; ++i) j.append("bench", orbit::RecordType::snapshot, i, bytes);
    j.flush();
  }
  std::int64_t records = 0;
  for (auto _ : state) {
    orbit::JournalReader reader(dir.path / "bench");
    while (auto r = reader.next()) {
      benchmark::DoNotOptimize(r->payload.data());
      ++records;
    }
  }
  state.SetItemsProcessed(records);
}
BENCHMARK(BM_JournalRead);

// load_recorded_run(): read, decode and keep every snapshot of a run, as replay and
// tune start (the entries' growth and page faults included).
// A run "bench" of `n` snapshots under `root`, as the replay bench writes them.
void write_snapshot_run(const fs::path& root, int n) {
  orbit::JournalOptions o;
  o.root = root;
  o.fsync = orbit::JournalOptions::never;
  orbit::Journal j = orbit::Journal::open(o);
  for (int i = 0; i < n; ++i) j.append("bench", orbit::RecordType::snapshot, i, orbit::encode(make_snapshot(i, 0)));
  j.flush();
}

void BM_LoadRecordedRun(benchmark::State& state) {
  TempDir dir;
  const auto n = static_cast<int>(state.range(0));
  write_snapshot_run(dir.path, n);
  for (auto _ : state) {
    const orbit::RecordedRun run = orbit::load_recorded_run(dir.path / "bench");
    benchmark::DoNotOptimize(run.entries.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_LoadRecordedRun)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

// stream_recorded_run(): the same read and decode, each snapshot into one reused
// Snapshot and none kept (orbit replay's path), beside BM_LoadRecordedRun.
void BM_StreamRecordedRun(benchmark::State& state) {
  TempDir dir;
  const auto n = static_cast<int>(state.range(0));
  write_snapshot_run(dir.path, n);
  for (auto _ : state) {
    double losses = 0.0;
    const orbit::RecordedRun run = orbit::stream_recorded_run(
        dir.path / "bench", {},
        [&](const orbit::RecordedEntry& e) { losses += std::get<orbit::Snapshot>(e.value).loss; });
    benchmark::DoNotOptimize(losses);
    benchmark::DoNotOptimize(run.snapshots);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_StreamRecordedRun)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
