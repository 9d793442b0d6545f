// SPDX-License-Identifier: Apache-2.0
// Journal resync speed: reading one segment (what orbitd does at startup, skip_corrupt)
// that holds 1, 4 and 8 MiB of seeded random bytes between valid records, beside the
// baseline of a segment of the same size made only of valid records, in the same run.
// Two placements: garbage after some records (the resync has a timestamp to compare
// with) and garbage at the start of the segment (it has none: the slower case).
//
//   bench_journal_resync [--repeats N] [--out FILE.json]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <stdlib.h>

#include "journal/journal_reader.hpp"
#include "protocol/codec.hpp"
#include "protocol/journal_record.hpp"
#include "protocol/json_writer.hpp"

namespace {

namespace fs = std::filesystem;
using orbit::RecordType;

constexpr std::int64_t kStartNs = 1'764'800'000'000'000'000;  // December 2025

// Framed snapshot records (64-value spectrum, ~350 bytes each) until `bytes` are reached.
std::string valid_records(std::size_t bytes, std::int64_t& step) {
  std::string out;
  while (out.size() < bytes) {
    orbit::Snapshot s;
    s.run = "bench";
    s.step = step;
    s.time = 1.7648e9 + static_cast<double>(step);
    s.loss = 3.0 + 1.0 / static_cast<double>(step + 1);
    s.grad_norm = 0.5;
    std::vector<float> values(64);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = 1.0f / static_cast<float>(i + 1 + step % 7);
    s.spectra["attn.0"] = values;
    orbit::append_record(out, RecordType::snapshot, kStartNs + step * 1'000'000, orbit::encode(s));
    ++step;
  }
  return out;
}

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i + 8 <= n; i += 8) {
    const std::uint64_t v = rng();
    for (int k = 0; k < 8; ++k) out[i + k] = static_cast<char>((v >> (8 * k)) & 0xff);
  }
  return out;
}

struct Reading {
  double seconds = 0;
  std::size_t records = 0;
  std::size_t corruptions = 0;
  std::size_t skipped = 0;
};

Reading read_run(const fs::path& dir) {
  Reading r;
  const auto t0 = std::chrono::steady_clock::now();
  const orbit::RecoveryReport report =
      orbit::for_each_record(dir, [&](const orbit::JournalRecord&) { ++r.records; }, {.skip_corrupt = true});
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.corruptions = report.corruptions.size();
  for (const auto& c : report.corruptions) r.skipped += c.skipped;
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void write_segment(const fs::path& dir, const std::string& body) {
  fs::create_directories(dir);
  std::ofstream f(dir / orbit::segment_file_name(1), std::ios::binary | std::ios::trunc);
  const std::string bytes = orbit::segment_header() + body;
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 5;
  std::string out = "bench/results/journal_resync.json";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeats" && i + 1 < argc) repeats = std::max(1, std::stoi(argv[++i]));
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_journal_resync [--repeats N] [--out FILE.json]\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/orbit-bench-resync-XXXXXX";
  const fs::path root = ::mkdtemp(tmpl);
  constexpr std::size_t kRecordsAround = 256 << 10;  // valid bytes before and after the garbage

  orbit::JsonWriter w(true);
  w.begin_object().field("benchmark", "journal_resync").field("repeats", static_cast<std::int64_t>(repeats));
  w.key("cases").begin_array();
  std::printf("journal resync: one segment read with skip_corrupt (orbitd's startup read), median of %d\n\n",
              repeats);
  std::printf("%-14s %-6s %12s %12s %9s %9s %8s\n", "placement", "MiB", "garbage ms", "baseline ms", "ratio",
              "records", "skipped");
  int failures = 0;
  for (const bool at_start : {false, true}) {
    for (const std::size_t mib : {1, 4, 8}) {
      const std::size_t garbage_bytes = mib << 20;
      std::int64_t step = 0;
      const std::string before = at_start ? std::string() : valid_records(kRecordsAround, step);
      const std::size_t records_before = static_cast<std::size_t>(step);
      const std::string garbage = random_bytes(garbage_bytes, 1000 + mib);
      const std::string after = valid_records(kRecordsAround, step);
      const std::size_t records_kept = static_cast<std::size_t>(step);
      // Baseline: the same number of bytes, all of them valid records.
      std::int64_t base_step = 0;
      const std::string baseline = valid_records(before.size() + garbage.size() + after.size(), base_step);

      const fs::path damaged_dir = root / ("damaged-" + std::to_string(mib) + (at_start ? "-start" : "-mid"));
      const fs::path baseline_dir = root / ("baseline-" + std::to_string(mib) + (at_start ? "-start" : "-mid"));
      write_segment(damaged_dir, before + garbage + after);
      write_segment(baseline_dir, baseline);

      std::vector<double> damaged_s, baseline_s;
      Reading last;
      for (int r = 0; r < repeats; ++r) {  // interleaved, so load from other builds hits both alike
        last = read_run(damaged_dir);
        damaged_s.push_back(last.seconds);
        baseline_s.push_back(read_run(baseline_dir).seconds);
      }
      // The bench measures a reader that recovers everything; say so loudly if it does not.
      const bool complete = last.records == records_kept && last.corruptions == 1 && last.skipped == garbage.size();
      if (!complete) ++failures;
      const double dm = median(damaged_s), bm = median(baseline_s);
      const char* placement = at_start ? "segment start" : "after records";
      std::printf("%-14s %-6zu %12.1f %12.1f %8.1fx %9zu %8zu%s\n", placement, mib, dm * 1e3, bm * 1e3, dm / bm,
                  last.records, last.skipped, complete ? "" : "  RECORDS LOST");
      w.begin_object().field("placement", placement).field("garbage_bytes", static_cast<std::uint64_t>(garbage_bytes));
      w.field("records_before", static_cast<std::uint64_t>(records_before));
      w.field("records_expected", static_cast<std::uint64_t>(records_kept));
      w.field("records_read", static_cast<std::uint64_t>(last.records)).field("all_recovered", complete);
      w.field("garbage_median_s", dm).field("baseline_median_s", bm).field("ratio", dm / bm);
      w.key("garbage_s").begin_array();
      for (double s : damaged_s) w.value(s);
      w.end_array().key("baseline_s").begin_array();
      for (double s : baseline_s) w.value(s);
      w.end_array().end_object();
      fs::remove_all(damaged_dir);
      fs::remove_all(baseline_dir);
    }
  }
  w.end_array().end_object();
  fs::remove_all(root);
  if (!out.empty()) {
    std::ofstream f(out);
    f << w.str() << "\n";
    std::printf("\nwrote %s\n", out.c_str());
  }
  return failures == 0 ? 0 : 1;
}
