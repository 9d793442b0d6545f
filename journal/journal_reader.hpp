// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reading a run's journal back in order, and the recovery check orbitd runs on start.
//
// A run directory holds segment-<n>.orbj files (journal.hpp). Reading stops at the
// first damaged place and reports it:
//   - a torn tail (the last record of the last segment is incomplete or fails its CRC,
//     with no valid record after it) is what a crash mid-write leaves; with
//     `repair` it is cut off (the file truncated) and its offset reported;
//   - anything else (a bad record with valid records after it, a bad segment header,
//     damage in an older segment) is corruption: reported as (segment, offset), every
//     record before it is delivered, nothing is cut. With `skip_corrupt` the reader
//     resynchronises on the next valid record instead of stopping.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "journal/journal_error.hpp"
#include "protocol/journal_record.hpp"

namespace orbit {

struct ReadOptions {
  bool repair = false;        // cut a torn tail (truncate the last segment)
  bool skip_corrupt = false;  // resynchronise past corruption instead of stopping
  bool last_segment_only = false;  // what the writer checks before appending to a run
};

// One record; `payload` stays valid until the reader moves on to the next record.
struct JournalRecord {
  RecordType type = RecordType::snapshot;
  std::int64_t timestamp_ns = 0;
  std::string_view payload;
  std::uint32_t segment = 0;  // segment number (the <n> in the file name)
  std::uint64_t offset = 0;   // byte offset of the record's header in its segment
};

struct TornTail {
  std::filesystem::path segment;
  std::uint64_t offset = 0;  // where the damaged tail starts (the file's new size when cut)
  std::uint64_t bytes = 0;   // bytes from there to the end of the file
  bool cut = false;          // the file was truncated (ReadOptions::repair)
  std::string reason;
};

struct Corruption {
  std::filesystem::path segment;
  std::uint64_t offset = 0;  // byte offset in that segment where the bad bytes start
  std::uint64_t skipped = 0; // bytes skipped to the next valid record (skip_corrupt), else 0
  std::string reason;
};

struct RecoveryReport {
  std::filesystem::path run_dir;
  std::uint64_t records = 0;   // records delivered
  std::uint64_t segments = 0;  // segment files found
  std::uint64_t bytes = 0;     // bytes of the delivered records
  std::optional<TornTail> torn_tail;
  std::vector<Corruption> corruptions;  // at most one unless skip_corrupt
  std::vector<std::filesystem::path> removed;  // empty trailing segments removed by repair

  bool clean() const { return !torn_tail && corruptions.empty(); }
  // One line for a log: "12034 records in 3 segments; torn tail cut at segment-...:4096 (35 bytes)".
  std::string summary() const;
};

// Sorted segment files of a run directory (throws JournalError when unreadable).
std::vector<std::filesystem::path> list_segments(const std::filesystem::path& run_dir);
// The <n> of segment-<n>.orbj, or nullopt for other names.
std::optional<std::uint32_t> segment_number(const std::filesystem::path& file);
std::string segment_file_name(std::uint32_t number);

// Pull-style reader over a run's segments (memory-mapped, read-only unless repairing).
class JournalReader {
 public:
  explicit JournalReader(std::filesystem::path run_dir, ReadOptions options = {});
  JournalReader(JournalReader&&) noexcept;
  JournalReader& operator=(JournalReader&&) noexcept;
  ~JournalReader();

  // The next record, or nullopt at the end or where reading stopped (see report()).
  std::optional<JournalRecord> next();
  const RecoveryReport& report() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads every record of the run in order. With the default options this is what
// orbitd calls on start: it cuts a torn tail and reports it; the callback sees every
// record before the first damage. Throws JournalError when the directory is unreadable.
RecoveryReport for_each_record(const std::filesystem::path& run_dir,
                               const std::function<void(const JournalRecord&)>& callback,
                               ReadOptions options = {.repair = true, .skip_corrupt = false});

}  // namespace orbit
