// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the journal's record parser and segment reader. The input is
// the bytes after a segment header: parse_record walks them directly, then they are
// written as segment-0.orbj of a run directory (on /dev/shm when it exists) and read
// back with JournalReader, stopping at damage or, when the first byte is odd,
// resynchronising past it (skip_corrupt). Any outcome but a crash or a sanitizer
// report is fine; every record delivered must lie inside the file.
// Seeds: written at start-up into $ORBIT_FUZZ_JOURNAL_SEEDS (when set and empty) as
// records framing the golden vectors of protocol/vectors.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "journal/journal_error.hpp"
#include "journal/journal_reader.hpp"
#include "protocol/journal_record.hpp"

#ifndef ORBIT_SOURCE_DIR
#error "ORBIT_SOURCE_DIR must name the source tree (for the golden vectors)"
#endif

namespace fs = std::filesystem;

namespace {

fs::path g_run_dir;

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Seeds: one record per golden vector, one file with all of them, and one with a torn tail.
void write_seeds(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_empty(dir, ec)) return;
  std::string all;
  std::int64_t t = 1'700'000'000'000'000'000;
  int n = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(ORBIT_SOURCE_DIR) / "protocol" / "vectors")) {
    if (entry.path().extension() != ".msgpack") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string payload((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto type = entry.path().filename().string().rfind("hello", 0) == 0 ? orbit::RecordType::hello
                                                                               : orbit::RecordType::snapshot;
    const std::string record = orbit::frame_record(type, t += 1000, payload);
    write_file(dir / ("record-" + std::to_string(n++)), record);
    all += record;
  }
  all += orbit::frame_record(orbit::RecordType::config, t += 1000, "[daemon]\nmode = \"monitor\"\n");
  write_file(dir / "all-records", all);
  write_file(dir / "torn-tail", std::string_view(all).substr(0, all.size() - 7));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* seeds = std::getenv("ORBIT_FUZZ_JOURNAL_SEEDS")) write_seeds(seeds);
  const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  g_run_dir = base / ("orbit-fuzz-journal-" + std::to_string(::getpid())) / "run";
  fs::create_directories(g_run_dir);
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g_run_dir.parent_path(), ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The framing alone, record after record, as the reader's resync does.
  for (std::string_view rest = bytes; !rest.empty();) {
    const orbit::ParsedRecord r = orbit::parse_record(rest);
    if (r.status != orbit::ParseStatus::ok || r.size == 0 || r.size > rest.size()) break;
    rest.remove_prefix(r.size);
  }
  write_file(g_run_dir / "segment-0.orbj", orbit::segment_header() + std::string(bytes));
  orbit::ReadOptions options;
  options.skip_corrupt = size > 0 && (data[0] & 1);
  try {
    orbit::JournalReader reader(g_run_dir, options);
    const std::uint64_t file_size = orbit::kSegmentHeaderBytes + size;
    while (auto record = reader.next()) {
      if (record->offset + orbit::kRecordHeaderBytes + record->payload.size() > file_size) {
        std::fprintf(stderr, "record at %llu runs past the end of the file\n",
                     static_cast<unsigned long long>(record->offset));
        std::abort();
      }
    }
  } catch (const orbit::JournalError&) {
    // An unreadable journal is reported, as it should be.
  }
  return 0;
}
