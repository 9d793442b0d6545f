// SPDX-License-Identifier: Apache-2.0
#include "journal/journal_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <system_error>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace orbit {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSegmentPrefix = "segment-";
constexpr std::string_view kSegmentSuffix = ".orbj";

[[noreturn]] void fail_errno(const std::string& what, const fs::path& path) {
  throw JournalError(what + " " + path.string() + ": " + std::strerror(errno));
}

// A read-only mapping of one segment file.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const fs::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_errno("cannot open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      fail_errno("cannot stat", path);
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      // Populated up front: every page is read anyway, and one call costs far less
      // than a page fault per 64 KiB on this kind of VM (framed read 1.3-1.6x, BM_JournalRead).
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        fail_errno("cannot map", path);
      }
      ::madvise(p, size_, MADV_SEQUENTIAL);
      data_ = static_cast<const char*>(p);
    }
    ::close(fd);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept { swap(o); }
  MappedFile& operator=(MappedFile&& o) noexcept {
    MappedFile tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  ~MappedFile() { unmap(); }

  void unmap() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }
  std::string_view bytes() const { return {data_, size_}; }

 private:
  void swap(MappedFile& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

// Records read after a damaged place are this close in time to the last one before it.
constexpr std::int64_t kResyncWindowNs = 10ll * 366 * 24 * 3600 * 1'000'000'000;

std::uint64_t little_endian(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Whether the 17 bytes at `p` (with `room` bytes after them in the segment) could
// start a record written after one stamped `near_ns`: a length that fits, a known type,
// a payload that opens with a MessagePack map header for the types that carry one, and
// (once a record was read) a timestamp within ten years of that record's. Every intact
// record passes: the writer frames only known types, the map types' payloads are encoded
// messages (a root map, protocol/SPEC.md section 4) and time moves forward. A record of
// a type this reader does not know (a newer writer) is not a place to resynchronise on:
// it is counted with the damaged bytes and reading goes on at the next known one.
bool plausible_header(const char* p, std::size_t room, std::optional<std::int64_t> near_ns) {
  const std::uint64_t length = little_endian(p, 4);
  if (length > kMaxRecordPayload || length > room) return false;
  const auto type = static_cast<std::uint8_t>(p[8]);
  if (!known_record_type(type)) return false;
  if (map_payload(static_cast<RecordType>(type)) &&
      (length == 0 || !msgpack_map_header(static_cast<std::uint8_t>(p[kRecordHeaderBytes]))))
    return false;
  if (near_ns) {
    constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    const std::int64_t lo = *near_ns > kMin + kResyncWindowNs ? *near_ns - kResyncWindowNs : kMin;
    const std::int64_t hi = *near_ns < kMax - kResyncWindowNs ? *near_ns + kResyncWindowNs : kMax;
    const auto ts = static_cast<std::int64_t>(little_endian(p + 9, 8));
    if (ts < lo || ts > hi) return false;
  }
  return true;
}

// Offset of the first valid record at or after `from`, or npos. Checking a
// candidate's CRC costs its claimed length, so a CRC is computed only for a plausible
// header (above). Over random bytes a fraction of about 0.014 * room / 4 GiB of offsets
// passes (known type 12/256, map byte or text type 0.30; the old check let through
// 255/256 of those whose length fits), ~29x fewer again with a timestamp window.
//
// The CRC bytes are deliberately not capped at a multiple of the damaged region: a
// candidate's claimed length is independent of where the damage ends, and the only
// proof that an earlier candidate is not the next record is its CRC over that length.
// Giving up on (or deferring) an expensive candidate could pass over a record that is
// intact; checking candidates in order of their claimed end would be safe (two records
// never overlap) but still costs about size^3 / 2^32 over random bytes. A true bound
// needs each CRC from prefix CRCs and CRC combination (zlib's crc32_combine), not a
// different scan order.
std::size_t resync(std::string_view bytes, std::size_t from, std::optional<std::int64_t> near_ns) {
  for (std::size_t q = from; q + kRecordHeaderBytes <= bytes.size(); ++q) {
    if (!plausible_header(bytes.data() + q, bytes.size() - q - kRecordHeaderBytes, near_ns)) continue;
    if (parse_record(bytes.substr(q)).status == ParseStatus::ok) return q;
  }
  return std::string_view::npos;
}

// A segment file that is shorter than its header and holds only a prefix of it (or
// zeros): what a crash between creating the file and writing the header leaves.
bool torn_header(std::string_view bytes) {
  if (bytes.size() >= kSegmentHeaderBytes) return false;
  const std::string header = segment_header();
  return std::equal(bytes.begin(), bytes.end(), header.begin()) ||
         std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

void truncate_file(const fs::path& path, std::uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) fail_errno("cannot truncate", path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fdatasync(fd);
    ::close(fd);
  }
}

void sync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

std::string segment_file_name(std::uint32_t number) {
  char digits[16];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, number);
  (void)ec;
  std::string n(digits, end);
  if (n.size() < 8) n.insert(0, 8 - n.size(), '0');
  return std::string(kSegmentPrefix) + n + std::string(kSegmentSuffix);
}

std::optional<std::uint32_t> segment_number(const fs::path& file) {
  const std::string name = file.filename().string();
  if (name.size() <= kSegmentPrefix.size() + kSegmentSuffix.size() || !name.starts_with(kSegmentPrefix) ||
      !name.ends_with(kSegmentSuffix))
    return std::nullopt;
  const char* first = name.data() + kSegmentPrefix.size();
  const char* last = name.data() + name.size() - kSegmentSuffix.size();
  std::uint32_t n = 0;
  auto [ptr, ec] = std::from_chars(first, last, n);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  return n;
}

std::vector<fs::path> list_segments(const fs::path& run_dir) {
  std::error_code ec;
  fs::directory_iterator it(run_dir, ec);
  if (ec) throw JournalError("cannot read journal directory " + run_dir.string() + ": " + ec.message());
  std::vector<std::pair<std::uint32_t, fs::path>> found;
  for (const auto& entry : it) {
    if (!entry.is_regular_file(ec)) continue;
    if (auto n = segment_number(entry.path())) found.emplace_back(*n, entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  out.reserve(found.size());
  for (auto& [n, p] : found) out.push_back(std::move(p));
  return out;
}

std::string RecoveryReport::summary() const {
  std::string s = std::to_string(records) + " records in " + std::to_string(segments) + " segment" +
                  (segments == 1 ? "" : "s");
  if (torn_tail) {
    s += "; torn tail " + std::string(torn_tail->cut ? "cut" : "found") + " at " +
         torn_tail->segment.filename().string() + ":" + std::to_string(torn_tail->offset) + " (" +
         std::to_string(torn_tail->bytes) + " bytes, " + torn_tail->reason + ")";
  }
  for (const auto& c : corruptions) {
    s += "; corruption at " + c.segment.filename().string() + ":" + std::to_string(c.offset) + " (" +
         c.reason + (c.skipped ? ", skipped " + std::to_string(c.skipped) + " bytes" : std::string()) + ")";
  }
  for (const auto& r : removed) s += "; removed empty segment " + r.filename().string();
  return s;
}

struct JournalReader::Impl {
  ReadOptions options;
  RecoveryReport report;
  std::vector<fs::path> segments;
  std::size_t index = 0;  // segment being read
  MappedFile file;
  bool open = false;      // `file` holds segments[index]
  std::uint32_t number = 0;  // segments[index]'s <n>, read once per segment (not per record)
  std::size_t pos = 0;
  bool stopped = false;
  std::optional<std::int64_t> last_timestamp_ns;  // of the last record read (resync's window)

  std::size_t last_on_disk = 0;  // only the newest file on disk can have a torn tail

  bool is_last() const { return index == last_on_disk; }

  // Opens segments[index]; returns false when the whole segment is to be passed over.
  bool open_segment() {
    file = MappedFile(segments[index]);
    open = true;
    number = segment_number(segments[index]).value_or(0);
    const std::string_view bytes = file.bytes();
    if (valid_segment_header(bytes)) {
      pos = kSegmentHeaderBytes;
      return true;
    }
    const fs::path& path = segments[index];
    if (is_last() && torn_header(bytes)) {
      report.torn_tail = TornTail{path, 0, bytes.size(), false, "segment header incomplete"};
      file.unmap();
      if (options.repair) {
        std::error_code ec;
        fs::remove(path, ec);
        if (ec) throw JournalError("cannot remove " + path.string() + ": " + ec.message());
        sync_dir(report.run_dir);
        report.torn_tail->cut = true;
        report.removed.push_back(path);
      }
      stopped = true;
      return false;
    }
    report.corruptions.push_back(Corruption{path, 0, options.skip_corrupt ? bytes.size() : 0,
                                            "bad segment header"});
    if (!options.skip_corrupt) stopped = true;
    return false;
  }

  std::optional<JournalRecord> next() {
    while (!stopped && index < segments.size()) {
      if (!open && !open_segment()) {
        file.unmap();
        open = false;
        ++index;
        continue;
      }
      const std::string_view bytes = file.bytes();
      if (pos >= bytes.size()) {
        file.unmap();
        open = false;
        ++index;
        continue;
      }
      const ParsedRecord r = parse_record(bytes.substr(pos));
      if (r.status == ParseStatus::ok) {
        JournalRecord out;
        out.type = r.record.type;
        out.timestamp_ns = r.record.timestamp_ns;
        out.payload = r.record.payload;
        out.segment = number;
        out.offset = pos;
        last_timestamp_ns = out.timestamp_ns;
        pos += r.size;
        ++report.records;
        report.bytes += r.size;
        return out;
      }
      damaged(r.status);
    }
    if (open) {
      file.unmap();
      open = false;
    }
    return std::nullopt;
  }

  void damaged(ParseStatus status) {
    const std::string_view bytes = file.bytes();
    const fs::path& path = segments[index];
    const std::size_t next_valid = resync(bytes, pos + 1, last_timestamp_ns);
    if (is_last() && next_valid == std::string_view::npos) {
      report.torn_tail = TornTail{path, pos, bytes.size() - pos, false, std::string(to_string(status))};
      file.unmap();
      open = false;
      if (options.repair) {
        truncate_file(path, pos);
        report.torn_tail->cut = true;
      }
      stopped = true;
      return;
    }
    const std::size_t end = next_valid == std::string_view::npos ? bytes.size() : next_valid;
    report.corruptions.push_back(
        Corruption{path, pos, options.skip_corrupt ? end - pos : 0, std::string(to_string(status))});
    if (!options.skip_corrupt) {
      stopped = true;
      return;
    }
    pos = end;
  }
};

JournalReader::JournalReader(fs::path run_dir, ReadOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  impl_->report.run_dir = run_dir;
  impl_->segments = list_segments(run_dir);
  impl_->report.segments = impl_->segments.size();
  impl_->last_on_disk = impl_->segments.empty() ? 0 : impl_->segments.size() - 1;
  if (options.last_segment_only && impl_->segments.size() > 1)
    impl_->index = impl_->segments.size() - 1;
  // A gap in the numbering is a lost segment: reading past it would hide the loss.
  for (std::size_t i = impl_->index + 1; i < impl_->segments.size(); ++i) {
    const auto prev = segment_number(impl_->segments[i - 1]).value_or(0);
    const auto cur = segment_number(impl_->segments[i]).value_or(0);
    if (cur != prev + 1) {
      impl_->report.corruptions.push_back(Corruption{
          impl_->segments[i], 0, 0, "segment " + std::to_string(prev + 1) + " is missing before this one"});
      if (!options.skip_corrupt) impl_->segments.resize(i);
      break;
    }
  }
}

JournalReader::JournalReader(JournalReader&&) noexcept = default;
JournalReader& JournalReader::operator=(JournalReader&&) noexcept = default;
JournalReader::~JournalReader() = default;

std::optional<JournalRecord> JournalReader::next() { return impl_->next(); }
const RecoveryReport& JournalReader::report() const { return impl_->report; }

RecoveryReport for_each_record(const fs::path& run_dir,
                               const std::function<void(const JournalRecord&)>& callback,
                               ReadOptions options) {
  JournalReader reader(run_dir, options);
  while (auto r = reader.next()) callback(*r);
  return reader.report();
}

}  // namespace orbit
