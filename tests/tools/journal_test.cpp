// SPDX-License-Identifier: Apache-2.0
// Journal framing, writer and reader: round trip, rotation, torn tails at every byte,
// flipped bytes, fsync policies.

#include <gtest/gtest.h>

#include <boost/crc.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "journal/journal.hpp"
#include "journal/journal_reader.hpp"
#include "journal/record_payloads.hpp"
#include "protocol/codec.hpp"
#include "protocol/journal_record.hpp"
#include "temp_dir.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;
using detail::TempDir;

struct Written {
  RecordType type;
  std::int64_t timestamp_ns;
  std::string payload;
};

std::string snapshot_bytes(std::int64_t step, std::size_t spectrum = 64) {
  Snapshot s;
  s.run = "run-a";
  s.step = step;
  s.time = 1.7e9 + static_cast<double>(step);
  s.loss = 3.0 + 1.0 / static_cast<double>(step + 1);
  s.grad_norm = 0.5;
  std::vector<float> values(spectrum);
  for (std::size_t i = 0; i < spectrum; ++i) values[i] = 1.0f / static_cast<float>(i + 1 + step % 7);
  s.spectra["attn.0"] = values;
  return encode(s);
}

std::vector<Written> read_all(const fs::path& dir, ReadOptions options, RecoveryReport* report = nullptr) {
  std::vector<Written> out;
  RecoveryReport r = for_each_record(dir, [&](const JournalRecord& rec) {
    out.push_back({rec.type, rec.timestamp_ns, std::string(rec.payload)});
  }, options);
  if (report) *report = r;
  return out;
}

void expect_same(const std::vector<Written>& got, const std::vector<Written>& want, std::size_t n) {
  ASSERT_GE(got.size(), n);
  ASSERT_GE(want.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(got[i].type, want[i].type) << "record " << i;
    EXPECT_EQ(got[i].timestamp_ns, want[i].timestamp_ns) << "record " << i;
    EXPECT_EQ(got[i].payload, want[i].payload) << "record " << i;
  }
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

JournalOptions options_for(const fs::path& root, JournalOptions::Fsync fsync = JournalOptions::never,
                           std::uint64_t segment_bytes = 1 << 20) {
  JournalOptions o;
  o.root = root;
  o.segment_bytes = segment_bytes;
  o.fsync = fsync;
  o.fsync_interval_ms = 100;
  return o;
}

// Writes `n` snapshot records (plus a config and a burn) and returns them in order.
std::vector<Written> write_run(Journal& j, const std::string& run, int n, std::int64_t first_step = 0) {
  std::vector<Written> w;
  if (first_step == 0) {
    w.push_back({RecordType::config, 1, "[controller]\nsetpoint = 2.0\n"});
    j.append(run, w.back().type, w.back().timestamp_ns, w.back().payload);
  }
  for (int i = 0; i < n; ++i) {
    const std::int64_t step = first_step + i;
    w.push_back({RecordType::snapshot, 1'000'000'000 + step, snapshot_bytes(step)});
    j.append(run, w.back().type, w.back().timestamp_ns, w.back().payload);
    if (step % 10 == 9) {
      Burn b;
      b.run = run;
      b.seq = step / 10;
      b.lr_scale = 0.5;
      w.push_back({RecordType::burn, 1'000'000'000 + step, encode(b)});
      j.append(run, w.back().type, w.back().timestamp_ns, w.back().payload);
    }
  }
  return w;
}

// ------------------------------------------------------------------ framing

TEST(JournalRecord, FrameParsesBack) {
  const std::string payload = snapshot_bytes(3);
  const std::string framed = frame_record(RecordType::snapshot, -42, payload);
  ASSERT_EQ(framed.size(), kRecordHeaderBytes + payload.size());
  const ParsedRecord r = parse_record(framed);
  ASSERT_EQ(r.status, ParseStatus::ok);
  EXPECT_EQ(r.record.type, RecordType::snapshot);
  EXPECT_EQ(r.record.timestamp_ns, -42);
  EXPECT_EQ(r.record.payload, payload);
  EXPECT_EQ(r.size, framed.size());
}

// The record CRC is computed by carry-less multiplication (x86-64 with PCLMULQDQ, from
// 64 bytes) and eight bytes at a time; it must stay Boost.CRC's crc_32_type to the bit,
// for every length and alignment (every length up to 200: each 16- and 64-byte fold
// count and tail).
TEST(JournalRecord, CrcIsBoostCrc32ForEveryLengthAndAlignment) {
  std::mt19937_64 rng(5);
  std::string buffer(1100, '\0');
  for (auto& c : buffer) c = static_cast<char>(rng());
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t length = 0; length <= 1024; length += (length < 200 ? 1 : 37)) {
      const std::string_view payload(buffer.data() + offset, length);
      const auto type = static_cast<std::uint8_t>(1 + length % 11);
      const auto timestamp = static_cast<std::int64_t>(rng());
      // The framed bytes the CRC covers: length | type | timestamp (LE) | payload.
      std::string covered;
      for (int i = 0; i < 4; ++i) covered.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
      covered.push_back(static_cast<char>(type));
      for (int i = 0; i < 8; ++i) covered.push_back(static_cast<char>((static_cast<std::uint64_t>(timestamp) >> (8 * i)) & 0xff));
      covered.append(payload);
      boost::crc_32_type reference;
      reference.process_bytes(covered.data(), covered.size());
      ASSERT_EQ(record_crc(static_cast<std::uint32_t>(length), type, timestamp, payload), reference.checksum())
          << "length " << length << " offset " << offset;
      const std::string framed = frame_record(static_cast<RecordType>(type), timestamp, payload);
      std::uint32_t stored = 0;  // the writer's CRC (bytes 4-7, little-endian)
      for (int i = 3; i >= 0; --i) stored = (stored << 8) | static_cast<unsigned char>(framed[4 + static_cast<std::size_t>(i)]);
      ASSERT_EQ(stored, reference.checksum()) << "framed, length " << length << " offset " << offset;
      ASSERT_EQ(parse_record(framed).status, ParseStatus::ok) << "length " << length;
    }
  }
  // The check value of CRC-32/ISO-HDLC ("123456789" -> 0xCBF43926), through Boost.
  boost::crc_32_type check;
  check.process_bytes("123456789", 9);
  EXPECT_EQ(check.checksum(), 0xCBF43926u);
}

TEST(JournalRecord, EveryFlippedBitIsDetected) {
  const std::string framed = frame_record(RecordType::burn, 123456789, "a small payload");
  for (std::size_t byte = 0; byte < framed.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = framed;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      EXPECT_NE(parse_record(bad).status, ParseStatus::ok) << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(JournalRecord, EveryTruncationIsIncomplete) {
  const std::string framed = frame_record(RecordType::ack, 7, "payload bytes");
  for (std::size_t n = 0; n < framed.size(); ++n)
    EXPECT_EQ(parse_record(std::string_view(framed).substr(0, n)).status, ParseStatus::incomplete) << n;
}

TEST(JournalRecord, ZerosAreNotARecord) {
  const std::string zeros(64, '\0');
  EXPECT_NE(parse_record(zeros).status, ParseStatus::ok);
}

TEST(JournalRecord, TypeNamesRoundTrip) {
  for (std::uint8_t v = 1; known_record_type(v); ++v) {
    const auto t = static_cast<RecordType>(v);
    EXPECT_EQ(record_type_from_string(to_string(t)), t);
  }
  EXPECT_FALSE(record_type_from_string("nope"));
}

TEST(JournalRecord, EvaluationPayloadRoundTrips) {
  Evaluation e{42, 3.5, {{"val_loss", 2.75}, {"bleu", 0.3}}};
  const auto back = decode_evaluation(encode_evaluation(e));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->step, 42);
  EXPECT_DOUBLE_EQ(back->time, 3.5);
  EXPECT_EQ(back->metrics, e.metrics);
  EXPECT_FALSE(decode_evaluation("\xc1"));     // not MessagePack
  EXPECT_FALSE(decode_evaluation("\x93\x01\x02\x03"));  // an array, not a map
}

// The resync rejects candidates of a map type whose payload does not open with a map
// header, so every message the daemon journals under those types must open with one.
TEST(JournalRecord, MapPayloadTypesCarryMaps) {
  Burn b;
  b.run = "r";
  b.lr_scale = 0.5;
  Ack a;
  a.run = "r";
  Bye bye;
  bye.run = "r";
  for (const auto& [type, bytes] : std::vector<std::pair<RecordType, std::string>>{
           {RecordType::snapshot, snapshot_bytes(3)}, {RecordType::burn, encode(b)},
           {RecordType::ack, encode(a)}, {RecordType::bye, encode(bye)},
           {RecordType::rank_silent, encode_rank_silent({2, 1.5})}}) {
    EXPECT_TRUE(map_payload(type)) << to_string(type);
    ASSERT_FALSE(bytes.empty());
    EXPECT_TRUE(msgpack_map_header(static_cast<std::uint8_t>(bytes[0]))) << to_string(type);
  }
  for (const RecordType text : {RecordType::config, RecordType::mode, RecordType::gap})
    EXPECT_FALSE(map_payload(text)) << to_string(text);
  for (int b = 0; b < 256; ++b)
    EXPECT_EQ(msgpack_map_header(static_cast<std::uint8_t>(b)), (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)
        << b;
}

// ------------------------------------------------------------------ writer + reader

TEST(Journal, RoundTripTwoRuns) {
  TempDir tmp;
  std::vector<Written> a, b;
  {
    Journal j = Journal::open(options_for(tmp.path() / "journal"));
    a = write_run(j, "run-a", 50);
    b = write_run(j, "run-b", 20);
    EXPECT_EQ(j.runs(), (std::vector<std::string>{"run-a", "run-b"}));
    EXPECT_EQ(j.stats().records, a.size() + b.size());
  }
  RecoveryReport report;
  const auto got_a = read_all(tmp.path() / "journal" / "run-a", {}, &report);
  EXPECT_TRUE(report.clean()) << report.summary();
  ASSERT_EQ(got_a.size(), a.size());
  expect_same(got_a, a, a.size());
  const auto got_b = read_all(tmp.path() / "journal" / "run-b", {});
  ASSERT_EQ(got_b.size(), b.size());
  expect_same(got_b, b, b.size());
  // The payload is the exact wire bytes: it decodes to the message that was sent.
  const DecodeResult d = decode(got_a[1].payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(std::get<Snapshot>(*d.message).step, 0);
}

TEST(Journal, ReopenAppendsToTheSameRun) {
  TempDir tmp;
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(tmp.path()));
    w = write_run(j, "r", 10);
  }
  {
    Journal j = Journal::open(options_for(tmp.path()));
    auto more = write_run(j, "r", 10, 10);
    w.insert(w.end(), more.begin(), more.end());
  }
  RecoveryReport report;
  const auto got = read_all(tmp.path() / "r", {}, &report);
  EXPECT_TRUE(report.clean());
  EXPECT_EQ(report.segments, 1u);
  ASSERT_EQ(got.size(), w.size());
  expect_same(got, w, w.size());
}

TEST(Journal, RotatesBySize) {
  TempDir tmp;
  const std::uint64_t limit = 8192;
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(tmp.path(), JournalOptions::never, limit));
    w = write_run(j, "r", 300);
  }
  const auto segments = list_segments(tmp.path() / "r");
  ASSERT_GT(segments.size(), 5u);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    EXPECT_EQ(segment_number(segments[i]), i + 1);
    EXPECT_LE(fs::file_size(segments[i]), limit) << segments[i];
    EXPECT_TRUE(valid_segment_header(file_bytes(segments[i])));
  }
  RecoveryReport report;
  const auto got = read_all(tmp.path() / "r", {}, &report);
  EXPECT_TRUE(report.clean()) << report.summary();
  EXPECT_EQ(report.segments, segments.size());
  ASSERT_EQ(got.size(), w.size());
  expect_same(got, w, w.size());
}

// A new segment's directory entry is made durable: the run directory is fsynced after
// each segment file is created (and the root after each run directory), unless the
// policy is `never`.
TEST(Journal, NewSegmentsAndRunsSyncTheirDirectory) {
  TempDir tmp;
  {
    Journal j = Journal::open(options_for(tmp.path() / "a", JournalOptions::interval, 8192));
    EXPECT_EQ(j.stats().dir_syncs, 1u) << "the new root's parent";
    j.append("r", RecordType::hello, 0, "x");
    EXPECT_EQ(j.stats().segments, 1u);
    EXPECT_EQ(j.stats().dir_syncs, 3u) << "then the root (new run directory) and the run directory (new segment)";
    write_run(j, "r", 300);
    ASSERT_GT(j.stats().segments, 5u);
    EXPECT_EQ(j.stats().dir_syncs, 2 + j.stats().segments) << "one run directory sync per segment created";
    j.append("s", RecordType::hello, 0, "x");
    EXPECT_EQ(j.stats().dir_syncs, 4 + j.stats().segments - 1);
  }
  {
    Journal again = Journal::open(options_for(tmp.path() / "a", JournalOptions::interval, 8192));
    EXPECT_EQ(again.stats().dir_syncs, 0u) << "an existing root is not created, so nothing to sync";
  }
  {
    Journal nested = Journal::open(options_for(tmp.path() / "n1" / "n2" / "root", JournalOptions::always, 8192));
    EXPECT_EQ(nested.stats().dir_syncs, 3u) << "each created directory's parent: n1/n2, n1 and the temp dir";
  }
  Journal never = Journal::open(options_for(tmp.path() / "b", JournalOptions::never, 8192));
  write_run(never, "r", 300);
  EXPECT_GT(never.stats().segments, 5u);
  EXPECT_EQ(never.stats().dir_syncs, 0u);
}

TEST(Journal, RejectsRunIdsThatEscapeTheRoot) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path()));
  EXPECT_THROW(j.append("..", RecordType::hello, 0, "x"), std::invalid_argument);
  EXPECT_THROW(j.append(".", RecordType::hello, 0, "x"), std::invalid_argument);
  EXPECT_THROW(j.append("a/b", RecordType::hello, 0, "x"), std::invalid_argument);
  EXPECT_TRUE(j.runs().empty());
}

// Cut the file at every byte offset inside the last record: recovery delivers every
// earlier record, reports the offset, truncates there, and the writer continues cleanly.
TEST(Journal, TornTailAtEveryOffsetOfTheLastRecord) {
  TempDir tmp;
  const fs::path pristine = tmp.path() / "pristine";
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(pristine));
    w = write_run(j, "r", 6);
  }
  const fs::path seg = list_segments(pristine / "r").at(0);
  const std::string full = file_bytes(seg);
  const std::size_t last_size = kRecordHeaderBytes + w.back().payload.size();
  const std::size_t last_start = full.size() - last_size;

  for (std::size_t cut = last_start + 1; cut < full.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    const fs::path root = tmp.path() / ("cut" + std::to_string(cut));
    fs::create_directories(root / "r");
    write_bytes(root / "r" / seg.filename(), full.substr(0, cut));

    RecoveryReport report;
    const auto got = read_all(root / "r", {.repair = true}, &report);
    ASSERT_TRUE(report.torn_tail.has_value());
    EXPECT_TRUE(report.corruptions.empty());
    EXPECT_EQ(report.torn_tail->offset, last_start);
    EXPECT_EQ(report.torn_tail->bytes, cut - last_start);
    EXPECT_TRUE(report.torn_tail->cut);
    EXPECT_EQ(fs::file_size(root / "r" / seg.filename()), last_start);
    ASSERT_EQ(got.size(), w.size() - 1);
    expect_same(got, w, w.size() - 1);

    // The writer appends after the cut; everything reads back clean.
    {
      Journal j = Journal::open(options_for(root));
      j.append("r", w.back().type, w.back().timestamp_ns, w.back().payload);
    }
    RecoveryReport again;
    const auto all = read_all(root / "r", {.repair = true}, &again);
    EXPECT_TRUE(again.clean()) << again.summary();
    ASSERT_EQ(all.size(), w.size());
    expect_same(all, w, w.size());
    EXPECT_EQ(file_bytes(root / "r" / seg.filename()), full);
    fs::remove_all(root);
  }
}

TEST(Journal, WriterCutsATornTailBeforeAppending) {
  TempDir tmp;
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(tmp.path()));
    w = write_run(j, "r", 4);
  }
  const fs::path seg = list_segments(tmp.path() / "r").at(0);
  std::string bytes = file_bytes(seg);
  write_bytes(seg, bytes + std::string(40, '\0'));  // zeros a crash can leave behind
  {
    Journal j = Journal::open(options_for(tmp.path()));
    j.append("r", RecordType::mode, 5, "monitor");
  }
  w.push_back({RecordType::mode, 5, "monitor"});
  RecoveryReport report;
  const auto got = read_all(tmp.path() / "r", {}, &report);
  EXPECT_TRUE(report.clean()) << report.summary();
  ASSERT_EQ(got.size(), w.size());
  expect_same(got, w, w.size());
}

TEST(Journal, ReadOnlyReaderReportsButDoesNotCut) {
  TempDir tmp;
  {
    Journal j = Journal::open(options_for(tmp.path()));
    write_run(j, "r", 3);
  }
  const fs::path seg = list_segments(tmp.path() / "r").at(0);
  const std::string bytes = file_bytes(seg);
  write_bytes(seg, bytes.substr(0, bytes.size() - 5));
  RecoveryReport report;
  read_all(tmp.path() / "r", {.repair = false}, &report);
  ASSERT_TRUE(report.torn_tail);
  EXPECT_FALSE(report.torn_tail->cut);
  EXPECT_EQ(fs::file_size(seg), bytes.size() - 5);
}

TEST(Journal, TornSegmentHeaderIsRemoved) {
  TempDir tmp;
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(tmp.path()));
    w = write_run(j, "r", 3);
  }
  const fs::path torn = tmp.path() / "r" / segment_file_name(2);
  write_bytes(torn, segment_header().substr(0, 5));
  RecoveryReport report;
  const auto got = read_all(tmp.path() / "r", {.repair = true}, &report);
  ASSERT_TRUE(report.torn_tail);
  EXPECT_EQ(report.removed.size(), 1u);
  EXPECT_FALSE(fs::exists(torn));
  ASSERT_EQ(got.size(), w.size());
}

// A flipped byte in the middle: reported as (segment, offset); every record before it
// reads; nothing is cut; skip_corrupt resynchronises on the next record.
TEST(Journal, FlippedByteInTheMiddleIsReported) {
  TempDir tmp;
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(tmp.path(), JournalOptions::never, 8192));
    w = write_run(j, "r", 100);
  }
  const auto segments = list_segments(tmp.path() / "r");
  ASSERT_GE(segments.size(), 3u);

  // Records of segment 2 and where they start.
  std::vector<std::uint64_t> offsets;
  std::size_t before = 0;  // records in segment 1
  for_each_record(tmp.path() / "r", [&](const JournalRecord& r) {
    if (r.segment == 1) ++before;
    if (r.segment == 2) offsets.push_back(r.offset);
  }, {});
  ASSERT_GE(offsets.size(), 4u);

  for (const bool last_segment : {false, true}) {
    SCOPED_TRACE(last_segment ? "in the last segment" : "in an older segment");
    const fs::path seg = last_segment ? segments.back() : segments[1];
    std::uint64_t bad_offset = 0;
    std::size_t expect_before = before;
    if (last_segment) {
      std::vector<std::uint64_t> last_offsets;
      std::size_t n = 0;
      for_each_record(tmp.path() / "r", [&](const JournalRecord& r) {
        if (r.segment == segment_number(seg)) last_offsets.push_back(r.offset); else ++n;
      }, {});
      ASSERT_GE(last_offsets.size(), 3u);
      bad_offset = last_offsets[1];
      expect_before = n + 1;
    } else {
      bad_offset = offsets[2];
      expect_before = before + 2;
    }
    const std::string original = file_bytes(seg);
    std::string bad = original;
    bad[bad_offset + kRecordHeaderBytes + 10] ^= 0x40;  // inside the payload
    write_bytes(seg, bad);

    RecoveryReport report;
    const auto got = read_all(tmp.path() / "r", {.repair = true}, &report);
    EXPECT_FALSE(report.torn_tail);
    ASSERT_EQ(report.corruptions.size(), 1u);
    EXPECT_EQ(report.corruptions[0].segment, seg);
    EXPECT_EQ(report.corruptions[0].offset, bad_offset);
    ASSERT_EQ(got.size(), expect_before);
    expect_same(got, w, expect_before);
    EXPECT_EQ(file_bytes(seg), bad) << "corruption must never be cut";

    RecoveryReport skipping;
    const auto rest = read_all(tmp.path() / "r", {.repair = true, .skip_corrupt = true}, &skipping);
    ASSERT_EQ(skipping.corruptions.size(), 1u);
    EXPECT_GT(skipping.corruptions[0].skipped, 0u);
    EXPECT_EQ(rest.size(), w.size() - 1);

    write_bytes(seg, original);
  }
}

// Bytes that pass every check the resync makes before a CRC (known type, map header,
// a length that fits, a timestamp near the last record's) but carry a wrong CRC.
std::string decoy_header(std::uint32_t length, std::int64_t timestamp_ns) {
  std::string d = frame_record(RecordType::snapshot, timestamp_ns, std::string(length, '\x85'));
  d[4] = static_cast<char>(d[4] ^ 0x5a);  // the CRC
  d.resize(kRecordHeaderBytes + 1);       // header and the map byte; what follows is not its payload
  return d;
}

// Hundreds of KiB of seeded random bytes and decoys in the middle of a segment: with
// skip_corrupt, every record before and after the region reads back, in order, and the
// region is one corruption of exactly its size.
TEST(Journal, ResyncRecoversEveryRecordAfterGarbageAndDecoys) {
  TempDir tmp;
  std::vector<Written> w;
  {
    Journal j = Journal::open(options_for(tmp.path(), JournalOptions::never, 64 << 20));
    w = write_run(j, "r", 200);
  }
  const auto segments = list_segments(tmp.path() / "r");
  ASSERT_EQ(segments.size(), 1u);
  std::vector<std::uint64_t> offsets;
  for_each_record(tmp.path() / "r", [&](const JournalRecord& r) { offsets.push_back(r.offset); }, {});
  ASSERT_EQ(offsets.size(), w.size());
  const std::size_t cut_record = w.size() / 2;
  const std::size_t cut = offsets[cut_record];
  const std::string original = file_bytes(segments[0]);
  const std::int64_t near = w[cut_record - 1].timestamp_ns;

  std::mt19937_64 rng(20261204);
  std::string damage(384 << 10, '\0');
  for (auto& c : damage) c = static_cast<char>(rng() & 0xff);
  // Decoys: short ones inside the garbage, one claiming a length that runs over the first
  // intact record, and one that ends right where that record starts.
  for (std::size_t at = 1000; at + 64 < damage.size() - 4096; at += 9973) {
    const std::string d = decoy_header(static_cast<std::uint32_t>(16 + at % 200), near + static_cast<std::int64_t>(at));
    damage.replace(at, d.size(), d);
  }
  const std::size_t tail = original.size() - cut;
  const std::string over = decoy_header(static_cast<std::uint32_t>(1000 + tail / 2), near);
  damage.replace(damage.size() - 4096, over.size(), over);
  const std::string ends_at_record = decoy_header(static_cast<std::uint32_t>(40 - kRecordHeaderBytes), near);
  damage.replace(damage.size() - 40, ends_at_record.size(), ends_at_record);

  for (const bool last_segment : {true, false}) {
    SCOPED_TRACE(last_segment ? "in the last segment" : "in an older segment");
    write_bytes(segments[0], original.substr(0, cut) + damage + original.substr(cut));
    if (!last_segment) {  // a newer segment after the damaged one
      w.push_back({RecordType::snapshot, w.back().timestamp_ns + 1, snapshot_bytes(999)});
      write_bytes(tmp.path() / "r" / segment_file_name(*segment_number(segments[0]) + 1),
                  segment_header() + frame_record(w.back().type, w.back().timestamp_ns, w.back().payload));
    }
    RecoveryReport report;
    const auto got = read_all(tmp.path() / "r", {.skip_corrupt = true}, &report);
    EXPECT_FALSE(report.torn_tail);
    ASSERT_EQ(report.corruptions.size(), 1u);
    EXPECT_EQ(report.corruptions[0].segment, segments[0]);
    EXPECT_EQ(report.corruptions[0].offset, cut);
    EXPECT_EQ(report.corruptions[0].skipped, damage.size());
    ASSERT_EQ(got.size(), w.size());
    expect_same(got, w, w.size());
  }
}

TEST(Journal, MissingSegmentIsCorruption) {
  TempDir tmp;
  {
    Journal j = Journal::open(options_for(tmp.path(), JournalOptions::never, 4096));
    write_run(j, "r", 100);
  }
  const auto segments = list_segments(tmp.path() / "r");
  ASSERT_GE(segments.size(), 3u);
  fs::remove(segments[1]);
  RecoveryReport report;
  read_all(tmp.path() / "r", {.repair = true}, &report);
  ASSERT_EQ(report.corruptions.size(), 1u);
  EXPECT_FALSE(report.torn_tail);
  EXPECT_EQ(fs::file_size(segments.back()) > kSegmentHeaderBytes, true) << "nothing cut after a gap";
}

// ------------------------------------------------------------------ batched appends

// The records of one batch: two runs interleaved, payloads of varied length.
std::vector<std::pair<std::string, Written>> batch_records(int n, std::int64_t first) {
  std::vector<std::pair<std::string, Written>> out;
  for (int i = 0; i < n; ++i) {
    const std::int64_t step = first + i;
    out.push_back({i % 3 == 2 ? "run-b" : "run-a",
                   {RecordType::snapshot, 1'000'000'000 + step, snapshot_bytes(step, 16 + (step * 37) % 90)}});
  }
  return out;
}

std::map<std::string, std::string> journal_files(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().extension() == ".orbj") files[fs::relative(e.path(), root).string()] = file_bytes(e.path());
  return files;
}

// stage() + commit() leaves the same files, byte for byte, as one append() per record,
// rotations included, in one write(2) per run file per batch.
TEST(JournalBatch, CommitWritesEachRunFileOnceAndMatchesAppendsByteForByte) {
  for (const std::uint64_t segment_bytes : {std::uint64_t{1} << 20, std::uint64_t{2048}, std::uint64_t{700}}) {
    SCOPED_TRACE("segment_bytes " + std::to_string(segment_bytes));
    TempDir tmp;
    Journal batched = Journal::open(options_for(tmp.path() / "batched", JournalOptions::never, segment_bytes));
    Journal single = Journal::open(options_for(tmp.path() / "single", JournalOptions::never, segment_bytes));
    std::uint64_t records = 0;
    for (int batch = 0; batch < 6; ++batch) {
      const auto records_of_batch = batch_records(1 + batch * 7, records);
      const auto writes_before = batched.stats().writes;
      const auto segments_before = batched.stats().segments;
      for (const auto& [run, w] : records_of_batch) {
        batched.stage(run, w.type, w.timestamp_ns, w.payload);
        single.append(run, w.type, w.timestamp_ns, w.payload);
      }
      EXPECT_EQ(batched.staged(), records_of_batch.size());
      EXPECT_TRUE(batched.commit().empty());
      EXPECT_EQ(batched.staged(), 0u);
      records += records_of_batch.size();
      // One write per run touched; a batch that rotates mid-run writes each file once.
      std::set<std::string> runs_touched;
      for (const auto& rec : records_of_batch) runs_touched.insert(rec.first);
      const auto writes = batched.stats().writes - writes_before;
      const auto segments = batched.stats().segments - segments_before;
      EXPECT_GE(writes, runs_touched.size());
      EXPECT_LE(writes, runs_touched.size() + segments);
      if (segments == 0) {
        EXPECT_EQ(writes, runs_touched.size());
      }
    }
    EXPECT_EQ(batched.stats().records, records);
    EXPECT_EQ(single.stats().writes, records);
    if (segment_bytes < 4096) {
      EXPECT_GT(batched.stats().segments, 4u);  // rotations inside batches were exercised
      EXPECT_LE(batched.stats().writes, records);
    } else {
      EXPECT_LT(batched.stats().writes, records / 3);
    }
    EXPECT_EQ(journal_files(tmp.path() / "batched"), journal_files(tmp.path() / "single"));
  }
}

TEST(JournalBatch, AlwaysSyncsEachFileOncePerBatch) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path(), JournalOptions::always));
  j.append("r", RecordType::hello, 1, "h");
  j.append("q", RecordType::hello, 1, "h");
  const auto syncs = j.stats().syncs;
  for (int i = 0; i < 20; ++i) j.stage(i % 2 ? "r" : "q", RecordType::snapshot, 2 + i, snapshot_bytes(i));
  EXPECT_TRUE(j.commit().empty());
  EXPECT_EQ(j.stats().syncs, syncs + 2);
  EXPECT_TRUE(j.commit().empty());  // nothing staged: nothing written or synced
  EXPECT_EQ(j.stats().syncs, syncs + 2);
}

TEST(JournalBatch, StageRefusesWhatAppendRefusesAndStagesNothing) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path()));
  EXPECT_THROW(j.stage("..", RecordType::hello, 0, "x"), std::invalid_argument);
  EXPECT_THROW(j.stage("r", RecordType::snapshot, 0, std::string(kMaxRecordPayload + 1, 'x')), std::invalid_argument);
  EXPECT_EQ(j.staged(), 0u);
  EXPECT_TRUE(j.commit().empty());
  EXPECT_EQ(j.stats().writes, 0u);
}

// A run whose file cannot be written loses its staged records (each one listed, in
// order, with its timestamp); the other runs of the batch are written.
TEST(JournalBatch, AFailingRunListsEveryLostRecordAndTheOthersAreWritten) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path()));
  // A file where the run's directory should be (root may write anywhere, so not permissions).
  write_bytes(tmp.path() / "bad", "not a directory");
  for (int i = 0; i < 6; ++i) j.stage(i % 2 ? "bad" : "good", RecordType::snapshot, 10 + i, snapshot_bytes(i));
  const auto failures = j.commit();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].run, "bad");
  ASSERT_EQ(failures[0].lost.size(), 3u);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(failures[0].lost[k].type, RecordType::snapshot);
    EXPECT_EQ(failures[0].lost[k].timestamp_ns, 11 + 2 * k);
  }
  EXPECT_FALSE(failures[0].error.empty());
  EXPECT_EQ(read_all(tmp.path() / "good", {}).size(), 3u);
  EXPECT_EQ(j.staged(), 0u);
}

// ------------------------------------------------------------------ fsync policies

TEST(Journal, FsyncAlwaysSyncsEveryRecord) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path(), JournalOptions::always));
  j.append("r", RecordType::hello, 1, "h");
  const auto after_first = j.stats().syncs;  // the new segment's header and directory too
  for (int i = 0; i < 5; ++i) j.append("r", RecordType::snapshot, 2 + i, snapshot_bytes(i));
  EXPECT_EQ(j.stats().syncs, after_first + 5);
}

TEST(Journal, FsyncNeverOnlySyncsOnFlush) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path(), JournalOptions::never));
  for (int i = 0; i < 5; ++i) j.append("r", RecordType::snapshot, i, snapshot_bytes(i));
  j.maybe_sync(std::chrono::steady_clock::time_point{} + std::chrono::hours(1));
  EXPECT_EQ(j.stats().syncs, 0u);
  j.flush();
  EXPECT_EQ(j.stats().syncs, 1u);
  j.flush();  // nothing new written: nothing to sync
  EXPECT_EQ(j.stats().syncs, 1u);
}

TEST(Journal, FsyncIntervalSyncsOncePerInterval) {
  TempDir tmp;
  Journal j = Journal::open(options_for(tmp.path(), JournalOptions::interval));  // 100 ms
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::seconds(10);
  j.append("r", RecordType::hello, 0, "h");
  const auto base = j.stats().syncs;
  j.append("r", RecordType::snapshot, 1, snapshot_bytes(1));
  EXPECT_EQ(j.stats().syncs, base) << "interval policy must not sync inside append";
  j.maybe_sync(t0);
  EXPECT_EQ(j.stats().syncs, base + 1);
  j.append("r", RecordType::snapshot, 2, snapshot_bytes(2));
  j.maybe_sync(t0 + std::chrono::milliseconds(50));
  EXPECT_EQ(j.stats().syncs, base + 1) << "synced before the interval passed";
  j.maybe_sync(t0 + std::chrono::milliseconds(100));
  EXPECT_EQ(j.stats().syncs, base + 2);
  j.maybe_sync(t0 + std::chrono::milliseconds(300));
  EXPECT_EQ(j.stats().syncs, base + 2) << "nothing dirty, nothing to sync";
}

}  // namespace
}  // namespace orbit
