// SPDX-License-Identifier: Apache-2.0
#include "protocol/journal_record.hpp"

#include <array>
#include <cstring>

#include <boost/crc.hpp>
#include <msgpack.hpp>

namespace orbit {

namespace {

constexpr std::string_view kTypeNames[] = {"",    "hello", "snapshot",    "burn", "ack",       "state",
                                           "config", "mode", "forced_burn", "bye", "evaluation",
                                           "rank_silent"};

// Little-endian loads and stores; the journal is byte-order independent on disk.
void put_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void put_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// CRC over the length field and then the contiguous type | timestamp | payload bytes.
std::uint32_t crc_of(const char* length_field, const char* body, std::size_t body_size) {
  boost::crc_32_type crc;
  crc.process_bytes(length_field, 4);
  crc.process_bytes(body, body_size);
  return crc.checksum();
}

}  // namespace

std::string_view to_string(RecordType type) {
  const auto i = static_cast<std::size_t>(type);
  return i > 0 && i < std::size(kTypeNames) ? kTypeNames[i] : std::string_view("unknown");
}

std::optional<RecordType> record_type_from_string(std::string_view name) {
  for (std::size_t i = 1; i < std::size(kTypeNames); ++i) {
    if (kTypeNames[i] == name) return static_cast<RecordType>(i);
  }
  return std::nullopt;
}

bool known_record_type(std::uint8_t value) { return value > 0 && value < std::size(kTypeNames); }

std::string segment_header() {
  std::string h(kSegmentHeaderBytes, '\0');
  std::memcpy(h.data(), kSegmentMagic, sizeof kSegmentMagic);
  put_u32(h.data() + 8, kJournalFormatVersion);
  put_u32(h.data() + 12, 0);
  return h;
}

bool valid_segment_header(std::string_view bytes) {
  return bytes.size() >= kSegmentHeaderBytes &&
         std::memcmp(bytes.data(), kSegmentMagic, sizeof kSegmentMagic) == 0 &&
         get_u32(bytes.data() + 8) == kJournalFormatVersion;
}

std::uint32_t record_crc(std::uint32_t length, std::uint8_t type, std::int64_t timestamp_ns,
                         std::string_view payload) {
  char len[4];
  put_u32(len, length);
  char head[9];
  head[0] = static_cast<char>(type);
  put_u64(head + 1, static_cast<std::uint64_t>(timestamp_ns));
  boost::crc_32_type crc;
  crc.process_bytes(len, 4);
  crc.process_bytes(head, 9);
  crc.process_bytes(payload.data(), payload.size());
  return crc.checksum();
}

void append_record(std::string& out, RecordType type, std::int64_t timestamp_ns,
                   std::string_view payload) {
  const std::size_t start = out.size();
  out.resize(start + kRecordHeaderBytes + payload.size());
  char* p = out.data() + start;
  put_u32(p, static_cast<std::uint32_t>(payload.size()));
  p[8] = static_cast<char>(type);
  put_u64(p + 9, static_cast<std::uint64_t>(timestamp_ns));
  if (!payload.empty()) std::memcpy(p + kRecordHeaderBytes, payload.data(), payload.size());
  put_u32(p + 4, crc_of(p, p + 8, 9 + payload.size()));
}

std::string frame_record(RecordType type, std::int64_t timestamp_ns, std::string_view payload) {
  std::string out;
  out.reserve(kRecordHeaderBytes + payload.size());
  append_record(out, type, timestamp_ns, payload);
  return out;
}

std::string_view to_string(ParseStatus status) {
  switch (status) {
    case ParseStatus::ok: return "ok";
    case ParseStatus::incomplete: return "incomplete record";
    case ParseStatus::bad_length: return "record length out of range";
    case ParseStatus::bad_type: return "record type 0";
    case ParseStatus::bad_crc: return "CRC mismatch";
  }
  return "unknown";
}

ParsedRecord parse_record(std::string_view bytes) {
  ParsedRecord r;
  if (bytes.size() < kRecordHeaderBytes) return r;  // incomplete
  const char* p = bytes.data();
  const std::uint32_t length = get_u32(p);
  if (length > kMaxRecordPayload) {
    r.status = ParseStatus::bad_length;
    return r;
  }
  if (bytes.size() - kRecordHeaderBytes < length) return r;  // incomplete
  const auto type = static_cast<std::uint8_t>(p[8]);
  if (crc_of(p, p + 8, 9 + std::size_t{length}) != get_u32(p + 4)) {
    r.status = ParseStatus::bad_crc;
    return r;
  }
  if (type == 0) {
    r.status = ParseStatus::bad_type;
    return r;
  }
  r.status = ParseStatus::ok;
  r.record.type = static_cast<RecordType>(type);
  r.record.timestamp_ns = static_cast<std::int64_t>(get_u64(p + 9));
  r.record.payload = bytes.substr(kRecordHeaderBytes, length);
  r.size = kRecordHeaderBytes + length;
  return r;
}

std::string encode_rank_silent(const RankSilent& event) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(2);
  p.pack_str(4).pack_str_body("rank", 4);
  p.pack_int64(event.rank);
  p.pack_str(4).pack_str_body("time", 4);
  p.pack_double(event.time);
  return {buf.data(), buf.size()};
}

std::optional<RankSilent> decode_rank_silent(std::string_view payload) {
  try {
    msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    const msgpack::object& o = h.get();
    if (o.type != msgpack::type::MAP) return std::nullopt;
    RankSilent e;
    bool rank = false, time = false;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      const std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
      if (k == "rank") {
        e.rank = kv.val.as<std::int64_t>();
        rank = true;
      } else if (k == "time") {
        e.time = kv.val.as<double>();
        time = true;
      }
    }
    if (!rank || !time) return std::nullopt;
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace orbit
