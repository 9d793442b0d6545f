// SPDX-License-Identifier: Apache-2.0
// Replay throughput, one core, warm page cache: snapshots per second for each stage
// of `orbit replay`, beside a raw sequential read() of the same segment files in the
// same run.
//
//   bench_replay [--snapshots N] [--repeat R] [--out FILE.json] [--keep-journal DIR]
//
// Stages: raw read (read(2), 1 MiB chunks), framed read (record framing + CRC),
// read + decode (MessagePack -> structs), controller (Navigator::on_snapshot on the
// decoded run, default config), and end to end (read + decode + controller), each
// loading the run into a RecordedRun first (what tune does). Then the same read +
// decode and end to end streamed, as `orbit replay` runs: stream_recorded_run()
// decodes each snapshot into one reused Snapshot and keeps nothing, and
// replay_journal() feeds it straight to the Navigator (same default config; its
// replay must have the same steps), and once more keeping the timeline (every decided
// step with its metrics), which is what `orbit replay` itself does. The decode stages also run side by side: with
// decode() (the snapshot fast path) and with decode_reference() (the object-tree
// decoder it replaced), each loading the same records into a RecordedRun; the
// replays of both must agree.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "config/config.hpp"
#include "journal/journal_reader.hpp"
#include "journal/journal_replay.hpp"
#include "synthetic_run.hpp"
#include "protocol/json_writer.hpp"
#include "tools/replay.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// This process's CPU time: on a machine shared with other work it moves less than
// the wall clock does (the wall time still counts the time the core was lent away).
double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::uint64_t raw_read(const std::vector<fs::path>& files) {
  std::vector<char> buf(1 << 20);
  std::uint64_t sum = 0;
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) sum += static_cast<unsigned char>(buf[static_cast<std::size_t>(n - 1)]) + static_cast<std::uint64_t>(n);
    ::close(fd);
  }
  return sum;
}

// load_recorded_run() for the records this run holds (hello, snapshots), with the
// given decoder: the same loop for the fast path and the reference decoder.
template <class Decoder>
orbit::RecordedRun load_with(const fs::path& run, Decoder&& decoder) {
  orbit::RecordedRun out;
  out.dir = run;
  out.run = run.filename().string();
  const orbit::DecodeLimits limits = orbit::journal_decode_limits();
  orbit::JournalReader reader(run);
  while (auto r = reader.next()) {
    if (r->type != orbit::RecordType::hello && r->type != orbit::RecordType::snapshot) continue;
    orbit::DecodeResult d = decoder(r->payload, limits);
    if (!d.ok()) {
      std::fprintf(stderr, "bench_replay: a record does not decode: %s\n", d.error.message.c_str());
      std::exit(1);
    }
    orbit::RecordedEntry e;
    e.type = r->type;
    e.timestamp_ns = r->timestamp_ns;
    if (r->type == orbit::RecordType::hello) {
      e.value = std::get<orbit::Hello>(std::move(*d.message));
    } else {
      e.value = std::get<orbit::Snapshot>(std::move(*d.message));
      ++out.snapshots;
    }
    out.entries.push_back(std::move(e));
  }
  out.report = reader.report();
  return out;
}

orbit::DecodeResult fast(std::string_view b, const orbit::DecodeLimits& l) { return orbit::decode(b, l); }
orbit::DecodeResult reference(std::string_view b, const orbit::DecodeLimits& l) { return orbit::decode_reference(b, l); }

struct Stage {
  const char* name;
  double best = 1e300;      // wall seconds, best of the repeats
  double best_cpu = 1e300;  // CPU seconds, best of the repeats
};

// Times one stage (wall and CPU), keeping the best of each.
class Timing {
 public:
  Timing() : wall_(Clock::now()), cpu_(cpu_seconds()) {}
  void stop(Stage& s) const {
    s.best = std::min(s.best, seconds_since(wall_));
    s.best_cpu = std::min(s.best_cpu, cpu_seconds() - cpu_);
  }

 private:
  Clock::time_point wall_;
  double cpu_;
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 200000;
  int repeat = 5;
  std::string out = "bench/results/replay.json";
  std::string keep;  // --keep-journal: write the run there and leave it (for `orbit replay` runs)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--snapshots" && i + 1 < argc) n = std::stoul(argv[++i]);
    else if (a == "--repeat" && i + 1 < argc) repeat = std::stoi(argv[++i]);
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "--keep-journal" && i + 1 < argc) keep = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_replay [--snapshots N] [--repeat R] [--out FILE.json] [--keep-journal DIR]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/orbit-bench-replay-XXXXXX";
  const fs::path root = keep.empty() ? fs::path(::mkdtemp(tmpl)) : fs::path(keep);
  if (!keep.empty() && fs::exists(root / "bench")) {
    std::fprintf(stderr, "bench_replay: %s already holds a run 'bench'\n", keep.c_str());
    return 2;
  }
  orbit::detail::write_synthetic_run(root, "bench", n, 42, {});
  const fs::path run = root / "bench";
  const auto files = orbit::list_segments(run);
  std::uint64_t bytes = 0;
  for (const auto& f : files) bytes += fs::file_size(f);

  const orbit::NavigatorConfig config = orbit::parse_daemon_config("", "<defaults>").navigator;
  orbit::ReplaySettings settings;
  settings.keep_timeline = false;
  // replay_journal() with the same config and mode as replay_fixed() above.
  orbit::ReplaySettings streamed_settings = settings;
  streamed_settings.config_text = "";
  streamed_settings.mode = orbit::Mode::active;
  // What `orbit replay` runs: the same, keeping the timeline for its reports.
  orbit::ReplaySettings timeline_settings = streamed_settings;
  timeline_settings.keep_timeline = true;

  Stage raw{"raw sequential read(2)"}, framed{"framed read (CRC)"}, decoded{"read + decode"},
      controller{"controller only"}, e2e{"end to end (read+decode+controller)"}, streamed{"read + decode, streamed"},
      e2e_streamed{"end to end, streamed (orbit replay)"}, e2e_timeline{"end to end, streamed, with timeline"},
      dec_fast{"read + decode, fast path"}, dec_ref{"read + decode, reference decoder"},
      e2e_fast{"end to end, fast path"}, e2e_ref{"end to end, reference decoder"};
  volatile std::uint64_t sink = raw_read(files);  // warm the page cache
  std::size_t checked = 0;
  for (int r = 0; r < repeat; ++r) {
    Timing t_raw;
    sink = sink + raw_read(files);
    t_raw.stop(raw);

    Timing t_framed;
    orbit::JournalReader reader(run);
    std::size_t records = 0;
    while (auto rec = reader.next()) records += rec->payload.size() > 0;
    t_framed.stop(framed);
    checked = records;

    Timing t_decoded;
    const orbit::RecordedRun recording = orbit::load_recorded_run(run);
    t_decoded.stop(decoded);

    Timing t_controller;
    const auto replay = orbit::replay_fixed(recording, config, orbit::Mode::active, {}, settings);
    t_controller.stop(controller);
    sink = sink + replay.steps.size();

    Timing t_e2e;
    const orbit::RecordedRun again = orbit::load_recorded_run(run);
    const auto full = orbit::replay_fixed(again, config, orbit::Mode::active, {}, settings);
    t_e2e.stop(e2e);
    sink = sink + full.steps.size();

    Timing t_streamed;
    std::size_t streamed_snapshots = 0;
    const orbit::RecordedRun counted = orbit::stream_recorded_run(run, {}, [&](const orbit::RecordedEntry& e) {
      streamed_snapshots += e.type == orbit::RecordType::snapshot;
    });
    t_streamed.stop(streamed);
    if (streamed_snapshots != recording.snapshots || counted.snapshots != recording.snapshots) {
      std::fprintf(stderr, "bench_replay: streaming read %zu snapshots, loading %zu\n", streamed_snapshots,
                   recording.snapshots);
      return 1;
    }

    Timing t_e2e_streamed;
    const auto direct = orbit::replay_journal(run, {}, streamed_settings);
    t_e2e_streamed.stop(e2e_streamed);
    if (direct.steps != full.steps || direct.alarms != full.alarms || direct.burns.size() != full.burns.size()) {
      std::fprintf(stderr, "bench_replay: the streamed replay differs from the loaded one\n");
      return 1;
    }

    Timing t_e2e_timeline;
    const auto reported = orbit::replay_journal(run, {}, timeline_settings);
    t_e2e_timeline.stop(e2e_timeline);
    if (reported.steps != full.steps || reported.alarms != full.alarms || reported.burns.size() != full.burns.size() ||
        reported.timeline.size() != full.steps.size()) {
      std::fprintf(stderr, "bench_replay: the replay with a timeline differs from the one without\n");
      return 1;
    }

    // Side by side: the same loop with each decoder, alternating which goes first.
    for (int k = 0; k < 2; ++k) {
      const bool fast_first = (r + k) % 2 == 0;
      Timing t1;
      const orbit::RecordedRun loaded = fast_first ? load_with(run, fast) : load_with(run, reference);
      t1.stop(fast_first ? dec_fast : dec_ref);
      sink = sink + loaded.entries.size();
    }
    for (int k = 0; k < 2; ++k) {
      const bool fast_first = (r + k) % 2 == 0;
      Timing t1;
      const orbit::RecordedRun loaded = fast_first ? load_with(run, fast) : load_with(run, reference);
      const auto rep = orbit::replay_fixed(loaded, config, orbit::Mode::active, {}, settings);
      t1.stop(fast_first ? e2e_fast : e2e_ref);
      if (rep.steps.size() != replay.steps.size()) {
        std::fprintf(stderr, "bench_replay: the %s decoder's replay has %zu steps, not %zu\n",
                     fast_first ? "fast" : "reference", rep.steps.size(), replay.steps.size());
        return 1;
      }
      sink = sink + rep.steps.size();
    }
  }
  if (keep.empty()) fs::remove_all(root);

  std::printf("replay throughput: %zu snapshots (one 64-value spectrum each), %.1f MB in %zu segment(s), %zu records read,\n"
              "one core, warm page cache, best of %d\n\n",
              n, static_cast<double>(bytes) / 1e6, files.size(), checked, repeat);
  std::printf("%-38s %12s %14s %10s %12s %16s\n", "stage", "seconds", "snapshots/s", "MB/s", "CPU seconds",
              "snapshots/CPU-s");
  orbit::JsonWriter w(true);
  w.begin_object();
  w.field("benchmark", "replay").field("snapshots", static_cast<std::uint64_t>(n)).field("bytes", bytes);
  w.field("spectrum_values", 64).field("repeat", repeat);
  w.key("stages").begin_array();
  for (const Stage* s : {&raw, &framed, &decoded, &controller, &e2e, &streamed, &e2e_streamed, &e2e_timeline, &dec_fast,
                         &dec_ref, &e2e_fast, &e2e_ref}) {
    const double rate = static_cast<double>(n) / s->best;
    const double cpu_rate = static_cast<double>(n) / s->best_cpu;
    std::printf("%-38s %12.4f %14.0f %10.0f %12.4f %16.0f\n", s->name, s->best, rate,
                static_cast<double>(bytes) / s->best / 1e6, s->best_cpu, cpu_rate);
    w.begin_object().field("stage", s->name).field("seconds", s->best).field("snapshots_per_s", rate);
    w.field("cpu_seconds", s->best_cpu).field("snapshots_per_cpu_s", cpu_rate);
    w.field("mb_per_s", static_cast<double>(bytes) / s->best / 1e6).end_object();
  }
  w.end_array();
  std::printf("\nfast path vs reference decoder, same run: read + decode %.2fx, end to end %.2fx\n",
              dec_ref.best / dec_fast.best, e2e_ref.best / e2e_fast.best);
  w.field("decode_speedup_vs_reference", dec_ref.best / dec_fast.best);
  w.field("end_to_end_speedup_vs_reference", e2e_ref.best / e2e_fast.best);
  w.field("target_snapshots_per_s", 1000000.0);
  w.field("end_to_end_meets_target", static_cast<double>(n) / e2e.best >= 1e6);
  w.field("end_to_end_meets_target_per_cpu_s", static_cast<double>(n) / e2e.best_cpu >= 1e6);
  w.field("streamed_end_to_end_meets_target", static_cast<double>(n) / e2e_streamed.best >= 1e6);
  w.field("streamed_end_to_end_meets_target_per_cpu_s", static_cast<double>(n) / e2e_streamed.best_cpu >= 1e6);
  w.field("timeline_end_to_end_meets_target", static_cast<double>(n) / e2e_timeline.best >= 1e6);
  w.end_object();
  if (!out.empty()) {
    std::ofstream f(out);
    f << w.str() << "\n";
    std::printf("\nwrote %s\n", out.c_str());
  }
  return 0;
}
