// SPDX-License-Identifier: Apache-2.0
#pragma once
// MessagePack encoding and validating decoding of protocol v1 messages.
//
// Encoding is canonical (protocol/SPEC.md, "Canonical encoding"): `v`, `type`, then
// the fields in SPEC order, absent optionals omitted, nested maps sorted by key,
// floats as float64, integers in their smallest form, spectra as `bin` of
// little-endian float32. Every adapter that follows the same rules produces the
// same bytes, which is what protocol/vectors/ checks.

#include <cstddef>
#include <optional>
#include <span>
#include <string>

#include "protocol/messages.hpp"

namespace orbit {

// Bounds applied while decoding; a violation is a `too_large` error.
struct DecodeLimits {
  std::size_t max_message_bytes = 4u << 20;
  std::size_t max_spectrum_length = 131072;
  std::size_t max_spectra = 64;
  std::size_t max_domains = 256;
  std::size_t max_scalars = 256;
};

// Either a valid message or the error the sender should get back.
struct DecodeResult {
  std::optional<Message> message;
  Error error;  // meaningful only when !message
  // Wire type of the offending message when it could be read ("" otherwise).
  std::string type;

  bool ok() const { return message.has_value(); }
};

std::string encode(const Message& message);
// The same bytes for one message type, without first copying it into a Message
// (for a State, that copy was its whole metrics map, on every reply orbitd sends).
std::string encode(const Hello& message);
std::string encode(const Welcome& message);
std::string encode(const Snapshot& message);
std::string encode(const State& message);
std::string encode(const Burn& message);
std::string encode(const Ack& message);
std::string encode(const Heartbeat& message);
std::string encode(const Bye& message);
std::string encode(const Error& message);
std::string encode(const Telemetry& message);

// Never throws on bad input: every failure comes back as an Error with a code and
// a sentence a person can act on. Snapshots take a fast path that reads the bytes
// straight into the struct; whatever it does not take itself (another type, an
// error, a key or shape it does not read) goes to decode_reference(), so results
// and error texts are the reference decoder's (tests/protocol/codec_fast_path_test).
DecodeResult decode(std::span<const std::byte> bytes, const DecodeLimits& limits = {});
DecodeResult decode(std::string_view bytes, const DecodeLimits& limits = {});

// The same decoding into a Snapshot the caller keeps from message to message: its
// strings, spectra and map nodes are reused when the keys repeat, so a warm decode
// allocates nothing. True with `into` set when `bytes` is a valid snapshot; false
// otherwise, with `other` holding what decode() returns (another message or the
// error) and `into` unspecified.
bool decode_snapshot_into(std::string_view bytes, Snapshot& into, DecodeResult& other, const DecodeLimits& limits = {});

// The general decoder (MessagePack object tree, then typed fields): the reference
// the snapshot fast path is tested against, and the path for every other message.
DecodeResult decode_reference(std::string_view bytes, const DecodeLimits& limits = {});

// True when `run` is 1-128 characters of [A-Za-z0-9._-].
bool valid_run_id(std::string_view run);

}  // namespace orbit
