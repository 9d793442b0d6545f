// SPDX-License-Identifier: Apache-2.0
#pragma once
// The journal writer: every message of every run, appended to per-run segment files
// (protocol/journal_record.hpp) under a root directory:
//
//   <root>/<run>/segment-00000001.orbj, segment-00000002.orbj, ...
//
// Each append is one write(2) of the whole framed record, so a crash of the process
// (kill -9) never loses a record append() returned for: the bytes are in the kernel.
// A batch of records (stage() then commit()) takes one write(2) per run file: the
// records staged for a run, framed back to back (two writes when the batch crosses
// into a new segment); commit() returns once they are in the kernel.
// The fsync policy decides what a crash of the machine may lose:
//   always   - fdatasync before append() / commit() returns (one per file per
//              batch): nothing acknowledged is lost.
//   interval - fdatasync at most every fsync_interval_ms (maybe_sync): the last interval.
//              The syncs run on a worker thread (journal/background_sync.hpp), so
//              maybe_sync never waits on the disk; a failed one is thrown by a later call.
//   never    - the kernel writes back when it likes (typically within 30 s).
// A torn or partly written tail is cut when the run is opened again (journal_reader.hpp).
//
// Not thread-safe: one Journal belongs to one event loop. Time comes in as arguments;
// the writer reads no clock.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "journal/journal_error.hpp"
#include "protocol/journal_record.hpp"

namespace orbit {

inline constexpr const char* kLockFileName = "writer.lock";

struct JournalOptions {
  std::filesystem::path root;
  std::uint64_t segment_bytes = 64ull << 20;  // start a new segment once a record would cross this
  enum Fsync { always, interval, never } fsync = interval;
  std::uint32_t fsync_interval_ms = 200;
  // Segment files open at once: past it the least recently written run's file is
  // closed (synced unless `never`) and reopened, without rereading it, on its next append.
  std::uint32_t max_open_files = 256;
};

struct JournalStats {
  std::uint64_t records = 0;   // appended by this process
  std::uint64_t bytes = 0;     // framed bytes appended by this process
  std::uint64_t writes = 0;    // write(2) calls that appended records (one per run file per commit)
  std::uint64_t syncs = 0;     // fdatasync calls on segment files
  std::uint64_t segments = 0;  // segment files created by this process
  std::uint64_t idle_closes = 0;  // files closed to stay within max_open_files
  // fsync calls on directories: the root after a new run directory, the run directory
  // after a new segment file (unless the policy is `never`), so that a synced record
  // never sits in a file whose directory entry a machine crash could lose.
  std::uint64_t dir_syncs = 0;
};

class Journal {
 public:
  // Creates the root (mode 0700) when missing and takes the single-writer lock
  // (<root>/writer.lock, held until the Journal is destroyed). Throws JournalError,
  // naming the holder's pid when another process writes this journal.
  static Journal open(JournalOptions options);

  Journal(Journal&&) noexcept;
  Journal& operator=(Journal&&) noexcept;
  ~Journal();  // closes every file; syncs them unless the policy is `never`

  // Appends one record to `run`'s journal; the first append of a run in this process
  // opens its newest segment after cutting any torn tail. Returns once the bytes are
  // written (and synced under `always`). Throws JournalError; std::invalid_argument
  // for a run id that is not a valid directory name.
  // Also commits every record staged before it (all runs).
  void append(std::string_view run, RecordType type, std::int64_t timestamp_ns,
              std::string_view bytes);

  // Batched appends. stage() frames one record into `run`'s pending buffer (no I/O;
  // throws std::invalid_argument for a record append() would refuse, staging nothing).
  // commit() writes each run's staged records in staging order with one write(2) per
  // segment file, with the same segment rollover as one append() per record, and under
  // `always` one fdatasync per file; then every staged record is either in the kernel
  // or listed in the returned failures (never throws JournalError). A run whose write
  // fails keeps the records before the failing write; the rest are lost, as a failed
  // append() loses its record. Records still staged when the Journal is destroyed
  // are dropped.
  struct LostRecord {
    RecordType type;
    std::int64_t timestamp_ns;
  };
  struct CommitFailure {
    std::string run;
    std::vector<LostRecord> lost;  // in staging order
    std::string error;
  };
  void stage(std::string_view run, RecordType type, std::int64_t timestamp_ns, std::string_view bytes);
  std::vector<CommitFailure> commit();
  std::size_t staged() const;  // records staged since the last commit

  // fdatasync every file written since its last sync, whatever the policy.
  void flush();
  // Under `interval`: when at least fsync_interval_ms passed since the last sync, hands
  // every file written since to the background syncer and returns at once; throws
  // JournalError for a background sync that failed since the last call.
  // No-op under the other policies. Call it from a timer and after appends.
  void maybe_sync(std::chrono::steady_clock::time_point now);

  // Closes `run`'s open segment (syncing unless `never`); a later append reopens it.
  void close_run(std::string_view run);

  std::filesystem::path run_dir(std::string_view run) const;
  // Runs with a directory under the root, sorted by name.
  std::vector<std::string> runs() const;

  const JournalOptions& options() const;
  const JournalStats& stats() const;

 private:
  struct Impl;
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when `run` can name a run directory: a valid protocol run id other than "." and "..".
bool valid_journal_run(std::string_view run);

}  // namespace orbit
