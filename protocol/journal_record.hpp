// SPDX-License-Identifier: Apache-2.0
#pragma once
// Framing of journal records and segment files (protocol/SPEC.md, "Journal").
//
// A segment file is a 16-byte header followed by records, back to back:
//
//   segment header: "ORBJRNL1" | u32 format version (1) | u32 reserved (0)
//   record:         u32 payload length | u32 CRC-32 | u8 type | i64 timestamp (ns) | payload
//
// All integers are little-endian. The CRC (CRC-32/ISO-HDLC, Boost.CRC's crc_32_type)
// covers the length field, the type, the timestamp and the payload, so a torn write,
// a flipped bit or a stretch of zeros (what some filesystems show after a crash) is
// never mistaken for a record. The payload is the exact bytes of the message as it
// crossed the wire; see RecordType for what each type carries.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace orbit {

// Stored in one byte; values are stable on disk. Readers pass unknown values through
// so that newer writers stay readable.
enum class RecordType : std::uint8_t {
  hello = 1,        // encoded `hello` as received
  snapshot = 2,     // encoded `snapshot` as received
  burn = 3,         // encoded `burn` as sent
  ack = 4,          // encoded `ack` as received
  state = 5,        // encoded `state` as sent (optional: the daemon may leave these out)
  config = 6,       // TOML text of the configuration in force from here on (run start, reload)
  mode = 7,         // "active" or "monitor": the run's mode from here on
  forced_burn = 8,  // encoded `burn` as an operator requested it (control "burn", before
                    // clamping); the burn actually sent follows as a `burn` record
  bye = 9,          // encoded `bye` as received
  evaluation = 10,  // imported evaluation row: MessagePack {"step": int, "time": float, "metrics": {name: float}}
  rank_silent = 11, // a rank's session timed out: MessagePack {"rank": int, "time": float}
                    // (the time passed to Navigator::on_rank_silent)
  gap = 12,         // text: records of this run the writer could not append (a full or
                    // failing disk), written once appends work again: "N records lost ..."
};

std::string_view to_string(RecordType type);
std::optional<RecordType> record_type_from_string(std::string_view name);
bool known_record_type(std::uint8_t value);
// Whether records of `type` carry one MessagePack map: every known type but config, mode
// and gap (text). The reader's resync uses it to reject candidates before their CRC.
bool map_payload(RecordType type);
// Whether `byte` opens a MessagePack map: fixmap (0x80-0x8f), map16 (0xde) or map32 (0xdf).
bool msgpack_map_header(std::uint8_t byte);

inline constexpr char kSegmentMagic[8] = {'O', 'R', 'B', 'J', 'R', 'N', 'L', '1'};
inline constexpr std::uint32_t kJournalFormatVersion = 1;
inline constexpr std::size_t kSegmentHeaderBytes = 16;
inline constexpr std::size_t kRecordHeaderBytes = 17;
// Larger than any message the decoder accepts (DecodeLimits) with room for configs.
inline constexpr std::uint32_t kMaxRecordPayload = 64u << 20;

// The 16 bytes every segment file starts with.
std::string segment_header();
bool valid_segment_header(std::string_view bytes);

// One record as it lies in a segment; `payload` points into the caller's buffer.
struct RecordView {
  RecordType type = RecordType::snapshot;
  std::int64_t timestamp_ns = 0;
  std::string_view payload;
};

std::uint32_t record_crc(std::uint32_t length, std::uint8_t type, std::int64_t timestamp_ns,
                         std::string_view payload);

// Appends the framed record to `out`.
void append_record(std::string& out, RecordType type, std::int64_t timestamp_ns,
                   std::string_view payload);
std::string frame_record(RecordType type, std::int64_t timestamp_ns, std::string_view payload);

enum class ParseStatus {
  ok,
  incomplete,  // the bytes end before the record does (a torn tail when at the end of a file)
  bad_length,  // the length field exceeds kMaxRecordPayload
  bad_type,    // type byte 0 (zeroed space is not a record)
  bad_crc,     // the bytes are not what was written
};
std::string_view to_string(ParseStatus status);

struct ParsedRecord {
  ParseStatus status = ParseStatus::incomplete;
  RecordView record;   // valid when status == ok
  std::size_t size = 0;  // bytes the record occupies (header + payload) when status == ok
};

// Parses the record that starts at bytes[0]. Never reads past bytes.size().
ParsedRecord parse_record(std::string_view bytes);


}  // namespace orbit
