// SPDX-License-Identifier: Apache-2.0
#include "journal/journal.hpp"

#include "journal/background_sync.hpp"
#include "journal/lock_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal/journal_reader.hpp"
#include "protocol/codec.hpp"

namespace orbit {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail_errno(const std::string& what, const fs::path& path) {
  throw JournalError(what + " " + path.string() + ": " + std::strerror(errno));
}

void write_all(int fd, std::string_view bytes, const fs::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("cannot write", path);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void sync_dir(const fs::path& dir, JournalStats& stats) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno("cannot open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail_errno("cannot sync directory", dir);
  ++stats.dir_syncs;
}

// mkdir with owner-only access; false when it already existed.
bool make_private_dir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return true;
  if (errno == EEXIST && fs::is_directory(dir)) return false;
  fail_errno("cannot create directory", dir);
}

}  // namespace

bool valid_journal_run(std::string_view run) { return valid_run_id(run) && run != "." && run != ".."; }

struct Journal::Impl {
  struct OpenRun {
    int fd = -1;
    fs::path dir;
    fs::path file;
    std::uint32_t segment = 0;
    std::uint64_t size = 0;
    bool dirty = false;
    bool retry_segment = false;  // creating the next segment failed: the next append retries it
    bool parked = false;         // closed to bound open files: reopen `file` as it is
    std::uint64_t last_used = 0;
  };

  std::optional<LockFile> lock;  // first member: released after every file is closed
  JournalOptions options;
  JournalStats stats;
  std::map<std::string, OpenRun, std::less<>> runs;
  std::uint64_t uses = 0;  // append counter: the LRU clock
  bool synced_once = false;
  std::chrono::steady_clock::time_point last_sync{};
  std::unique_ptr<BackgroundSync> background;  // interval policy: syncs off the caller's thread

  ~Impl() {
    for (auto& [name, run] : runs) {
      if (options.fsync != JournalOptions::never && run.dirty) ::fdatasync(run.fd);
      ::close(run.fd);
    }
  }

  void sync(OpenRun& run) {
    if (::fdatasync(run.fd) != 0) fail_errno("cannot sync", run.file);
    run.dirty = false;
    ++stats.syncs;
  }

  void close(OpenRun& run) {
    if (run.fd < 0) return;
    if (options.fsync != JournalOptions::never && run.dirty) sync(run);
    ::close(run.fd);
    run.fd = -1;
  }

  // Creates segment `number` with its header; the directory entry is made durable too
  // unless the policy is `never`, so a synced record never sits in a file that vanishes.
  void create_segment(OpenRun& run, std::uint32_t number) {
    run.segment = number;
    run.file = run.dir / segment_file_name(number);
    run.fd = ::open(run.file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (run.fd < 0) fail_errno("cannot create", run.file);
    try {
      const std::string header = segment_header();
      write_all(run.fd, header, run.file);
      run.size = header.size();
      if (options.fsync != JournalOptions::never) {
        sync(run);
        sync_dir(run.dir, stats);
      } else {
        run.dirty = true;
      }
    } catch (...) {
      // A full disk: remove the file that holds no record and leave the run closed;
      // the next append tries this same segment again instead of leaving one empty
      // segment per failed append.
      ::close(run.fd);
      run.fd = -1;
      ::unlink(run.file.c_str());
      run.segment = number - 1;
      run.dirty = false;
      run.retry_segment = true;
      throw;
    }
    ++stats.segments;
  }

  OpenRun& open_run(std::string_view name) {
    if (auto it = runs.find(name); it != runs.end()) {
      if (it->second.parked) {
        reopen(it->second);
        park_least_recent(name);
      }
      if (it->second.fd >= 0 || it->second.retry_segment) return it->second;
      runs.erase(it);  // a failed rotation left it closed: start over from the files
    }
    if (!valid_journal_run(name))
      throw std::invalid_argument("run id '" + std::string(name) + "' cannot name a journal directory");
    OpenRun run;
    run.dir = options.root / std::string(name);
    if (make_private_dir(run.dir) && options.fsync != JournalOptions::never) sync_dir(options.root, stats);

    // Cut a torn tail left by a crash before appending after it.
    JournalReader check(run.dir, {.repair = true, .skip_corrupt = false, .last_segment_only = true});
    while (check.next()) {
    }
    const RecoveryReport& report = check.report();
    const auto segments = list_segments(run.dir);
    if (segments.empty()) {
      std::uint32_t number = 1;
      for (const auto& removed : report.removed) number = std::max(number, segment_number(removed).value_or(1));
      create_segment(run, number);
    } else {
      const std::uint32_t last = segment_number(segments.back()).value_or(0);
      if (!report.corruptions.empty()) {
        // Leave damaged bytes as they are for a person to look at; append in a new file.
        create_segment(run, last + 1);
      } else {
        run.segment = last;
        run.file = segments.back();
        run.fd = ::open(run.file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (run.fd < 0) fail_errno("cannot open", run.file);
        struct stat st {};
        if (::fstat(run.fd, &st) != 0) fail_errno("cannot stat", run.file);
        run.size = static_cast<std::uint64_t>(st.st_size);
      }
    }
    OpenRun& opened = runs.emplace(std::string(name), std::move(run)).first->second;
    park_least_recent(name);
    return opened;
  }

  // A parked run's file is as this writer left it: no torn tail to look for.
  void reopen(OpenRun& run) {
    run.fd = ::open(run.file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (run.fd < 0) fail_errno("cannot reopen", run.file);
    run.parked = false;
  }

  // Past max_open_files, closes the least recently written file other than `keep`'s.
  void park_least_recent(std::string_view keep) {
    std::size_t open = 0;
    OpenRun* oldest = nullptr;
    for (auto& [name, r] : runs) {
      if (r.fd < 0) continue;
      ++open;
      if (name != keep && (!oldest || r.last_used < oldest->last_used)) oldest = &r;
    }
    if (open <= options.max_open_files || !oldest) return;
    ++stats.idle_closes;
    oldest->parked = true;
    try {
      close(*oldest);
    } catch (...) {
      ::close(oldest->fd);  // its sync failed: the file is closed all the same
      oldest->fd = -1;
      oldest->dirty = false;
      throw;
    }
  }

  // Records staged for one run since the last commit, framed back to back.
  struct Pending {
    std::string run;
    std::string bytes;
    struct Staged {
      std::size_t end;  // offset in `bytes` just past the record
      RecordType type;
      std::int64_t timestamp_ns;
    };
    std::vector<Staged> records;
  };
  std::vector<Pending> pending;  // [0, pending_runs) in use; the rest keep their buffers
  std::size_t pending_runs = 0;
  std::size_t pending_records = 0;

  void stage(std::string_view name, RecordType type, std::int64_t timestamp_ns, std::string_view bytes) {
    if (bytes.size() > kMaxRecordPayload)
      throw std::invalid_argument("journal record of " + std::to_string(bytes.size()) + " bytes exceeds the limit");
    if (!valid_journal_run(name))
      throw std::invalid_argument("run id '" + std::string(name) + "' cannot name a journal directory");
    Pending* p = nullptr;
    for (std::size_t i = 0; i < pending_runs && !p; ++i)
      if (pending[i].run == name) p = &pending[i];
    if (!p) {
      if (pending_runs == pending.size()) pending.emplace_back();
      p = &pending[pending_runs++];
      p->run.assign(name);
      p->bytes.clear();
      p->records.clear();
    }
    append_record(p->bytes, type, timestamp_ns, bytes);
    p->records.push_back({p->bytes.size(), type, timestamp_ns});
    ++pending_records;
  }

  std::vector<CommitFailure> commit() {
    std::vector<CommitFailure> failures;
    for (std::size_t i = 0; i < pending_runs; ++i) commit_run(pending[i], failures);
    pending_runs = 0;
    pending_records = 0;
    return failures;
  }

  // Writes one run's staged records: one write(2) per segment file, rotating exactly
  // where one append() per record would. Under `always` a record counts as kept once
  // its file is synced (at the rotation away from it, or at the end).
  void commit_run(const Pending& p, std::vector<CommitFailure>& failures) {
    const std::size_t n = p.records.size();
    std::size_t written = 0;  // records in the kernel
    std::size_t kept = 0;     // records the policy counts as appended
    std::size_t offset = 0;   // bytes of p.bytes written
    try {
      OpenRun& run = open_run(p.run);
      run.last_used = ++uses;
      while (written < n) {
        const std::size_t first_size = p.records[written].end - offset;
        if (run.retry_segment || (run.size > kSegmentHeaderBytes && run.size + first_size > options.segment_bytes)) {
          close(run);
          kept = written;
          run.retry_segment = false;
          create_segment(run, run.segment + 1);
        }
        std::size_t last = written + 1;
        while (last < n && run.size + (p.records[last].end - offset) <= options.segment_bytes) ++last;
        const std::string_view chunk(p.bytes.data() + offset, p.records[last - 1].end - offset);
        try {
          write_all(run.fd, chunk, run.file);
        } catch (...) {
          // A partial record would read as corruption in front of every later one.
          if (::ftruncate(run.fd, static_cast<off_t>(run.size)) != 0) {
          }
          throw;
        }
        ++stats.writes;
        run.size += chunk.size();
        stats.records += last - written;
        stats.bytes += chunk.size();
        run.dirty = true;
        written = last;
        offset += chunk.size();
        if (options.fsync != JournalOptions::always) kept = written;
      }
      if (options.fsync == JournalOptions::always) {
        sync(run);
        kept = written;
      }
    } catch (const std::exception& e) {
      CommitFailure failure{p.run, {}, e.what()};
      for (std::size_t i = kept; i < n; ++i) failure.lost.push_back({p.records[i].type, p.records[i].timestamp_ns});
      failures.push_back(std::move(failure));
    }
  }

  void flush() {
    if (background) background->drain();
    for (auto& [name, run] : runs)
      if (run.dirty) sync(run);
    throw_background_error();
  }

  // Interval syncs: each dirty file's descriptor is duplicated and synced by the
  // worker; the appender goes on at once.
  void sync_in_background() {
    if (!background) background = std::make_unique<BackgroundSync>();
    for (auto& [name, run] : runs) {
      if (!run.dirty || run.fd < 0) continue;
      const int copy = ::dup(run.fd);
      if (copy < 0) {
        sync(run);  // out of descriptors: sync here rather than not at all
        continue;
      }
      background->submit(copy, run.file.string());
      run.dirty = false;
      ++stats.syncs;
    }
    throw_background_error();
  }

  void throw_background_error() {
    if (!background) return;
    if (std::string error = background->take_error(); !error.empty()) throw JournalError(error);
  }
};

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Journal::Journal(Journal&&) noexcept = default;
Journal& Journal::operator=(Journal&&) noexcept = default;
Journal::~Journal() = default;

Journal Journal::open(JournalOptions options) {
  if (options.root.empty()) throw JournalError("journal root directory is empty");
  if (options.segment_bytes < kSegmentHeaderBytes + kRecordHeaderBytes)
    throw JournalError("journal segment_bytes " + std::to_string(options.segment_bytes) + " is too small");
  std::error_code ec;
  auto impl = std::make_unique<Impl>();
  if (!fs::exists(options.root, ec)) {
    // The directories this open creates, the root first: each one's entry in its
    // parent is synced (a crash right after must not lose the root a run then lives in).
    std::vector<fs::path> created;
    for (fs::path p = options.root; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      created.push_back(p);
      if (p == p.parent_path()) break;
    }
    const fs::path parent = options.root.parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (ec) throw JournalError("cannot create " + parent.string() + ": " + ec.message());
    make_private_dir(options.root);
    if (options.fsync != JournalOptions::never) {
      for (const fs::path& dir : created) sync_dir(dir.has_parent_path() ? dir.parent_path() : fs::path("."), impl->stats);
    }
  } else if (!fs::is_directory(options.root, ec)) {
    throw JournalError("journal root " + options.root.string() + " is not a directory");
  }
  if (::access(options.root.c_str(), W_OK | X_OK) != 0) fail_errno("cannot write to journal root", options.root);
  // One writer per journal: a second would interleave records and reuse burn seqs.
  try {
    impl->lock.emplace(LockFile::acquire(options.root / kLockFileName, "the journal " + options.root.string()));
  } catch (const std::runtime_error& e) {
    throw JournalError(e.what());
  }
  impl->options = std::move(options);
  return Journal(std::move(impl));
}

void Journal::append(std::string_view run, RecordType type, std::int64_t timestamp_ns, std::string_view bytes) {
  impl_->stage(run, type, timestamp_ns, bytes);
  const auto failures = impl_->commit();
  if (!failures.empty()) throw JournalError(failures.front().error);
}

void Journal::stage(std::string_view run, RecordType type, std::int64_t timestamp_ns, std::string_view bytes) {
  impl_->stage(run, type, timestamp_ns, bytes);
}

std::vector<Journal::CommitFailure> Journal::commit() { return impl_->commit(); }

std::size_t Journal::staged() const { return impl_->pending_records; }

void Journal::flush() { impl_->flush(); }

void Journal::maybe_sync(std::chrono::steady_clock::time_point now) {
  if (impl_->options.fsync != JournalOptions::interval) return;
  if (impl_->synced_once &&
      now - impl_->last_sync < std::chrono::milliseconds(impl_->options.fsync_interval_ms))
    return;
  impl_->synced_once = true;
  impl_->last_sync = now;
  impl_->sync_in_background();
}

void Journal::close_run(std::string_view run) {
  if (auto it = impl_->runs.find(run); it != impl_->runs.end()) {
    impl_->close(it->second);
    impl_->runs.erase(it);
  }
}

fs::path Journal::run_dir(std::string_view run) const { return impl_->options.root / std::string(run); }

std::vector<std::string> Journal::runs() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(impl_->options.root, ec)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory(ec) && valid_journal_run(name)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const JournalOptions& Journal::options() const { return impl_->options; }
const JournalStats& Journal::stats() const { return impl_->stats; }

}  // namespace orbit
