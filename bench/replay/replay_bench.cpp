// SPDX-License-Identifier: Apache-2.0
// Replay throughput, one core, warm page cache: snapshots per second for each stage
// of `orbit replay`, beside a raw sequential read() of the same segment files in the
// same run.
//
//   bench_replay [--snapshots N] [--repeat R] [--out FILE.json]
//
// Stages: raw read (read(2), 1 MiB chunks), framed read (record framing + CRC),
// read + decode (MessagePack -> structs), controller (Navigator::on_snapshot on the
// decoded run, default config), and end to end (read + decode + controller).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fcntl.h>
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

struct Stage {
  const char* name;
  double best = 1e300;
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 200000;
  int repeat = 5;
  std::string out = "bench/results/replay.json";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--snapshots" && i + 1 < argc) n = std::stoul(argv[++i]);
    else if (a == "--repeat" && i + 1 < argc) repeat = std::stoi(argv[++i]);
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_replay [--snapshots N] [--repeat R] [--out FILE.json]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/orbit-bench-replay-XXXXXX";
  const fs::path root = ::mkdtemp(tmpl);
  orbit::detail::write_synthetic_run(root, "bench", n, 42, {});
  const fs::path run = root / "bench";
  const auto files = orbit::list_segments(run);
  std::uint64_t bytes = 0;
  for (const auto& f : files) bytes += fs::file_size(f);

  const orbit::NavigatorConfig config = orbit::parse_daemon_config("", "<defaults>").navigator;
  orbit::ReplaySettings settings;
  settings.keep_timeline = false;

  Stage raw{"raw sequential read(2)"}, framed{"framed read (CRC)"}, decoded{"read + decode"},
      controller{"controller only"}, e2e{"end to end (read+decode+controller)"};
  volatile std::uint64_t sink = raw_read(files);  // warm the page cache
  std::size_t checked = 0;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = Clock::now();
    sink = sink + raw_read(files);
    raw.best = std::min(raw.best, seconds_since(t0));

    t0 = Clock::now();
    orbit::JournalReader reader(run);
    std::size_t records = 0;
    while (auto rec = reader.next()) records += rec->payload.size() > 0;
    framed.best = std::min(framed.best, seconds_since(t0));
    checked = records;

    t0 = Clock::now();
    const orbit::RecordedRun recording = orbit::load_recorded_run(run);
    decoded.best = std::min(decoded.best, seconds_since(t0));

    t0 = Clock::now();
    const auto replay = orbit::replay_fixed(recording, config, orbit::Mode::active, {}, settings);
    controller.best = std::min(controller.best, seconds_since(t0));
    sink = sink + replay.steps.size();

    t0 = Clock::now();
    const orbit::RecordedRun again = orbit::load_recorded_run(run);
    const auto full = orbit::replay_fixed(again, config, orbit::Mode::active, {}, settings);
    e2e.best = std::min(e2e.best, seconds_since(t0));
    sink = sink + full.steps.size();
  }
  fs::remove_all(root);

  std::printf("replay throughput: %zu snapshots (one 64-value spectrum each), %.1f MB in %zu segment(s), %zu records read,\n"
              "one core, warm page cache, best of %d\n\n",
              n, static_cast<double>(bytes) / 1e6, files.size(), checked, repeat);
  std::printf("%-38s %12s %14s %10s\n", "stage", "seconds", "snapshots/s", "MB/s");
  orbit::JsonWriter w(true);
  w.begin_object();
  w.field("benchmark", "replay").field("snapshots", static_cast<std::uint64_t>(n)).field("bytes", bytes);
  w.field("spectrum_values", 64).field("repeat", repeat);
  w.key("stages").begin_array();
  for (const Stage* s : {&raw, &framed, &decoded, &controller, &e2e}) {
    const double rate = static_cast<double>(n) / s->best;
    std::printf("%-38s %12.4f %14.0f %10.0f\n", s->name, s->best, rate, static_cast<double>(bytes) / s->best / 1e6);
    w.begin_object().field("stage", s->name).field("seconds", s->best).field("snapshots_per_s", rate);
    w.field("mb_per_s", static_cast<double>(bytes) / s->best / 1e6).end_object();
  }
  w.end_array();
  w.field("target_snapshots_per_s", 1000000.0);
  w.field("end_to_end_meets_target", static_cast<double>(n) / e2e.best >= 1e6);
  w.end_object();
  if (!out.empty()) {
    std::ofstream f(out);
    f << w.str() << "\n";
    std::printf("\nwrote %s\n", out.c_str());
  }
  return 0;
}
