// SPDX-License-Identifier: Apache-2.0
#pragma once
// Hand-built MessagePack for tests: each helper returns the bytes of one value, so a
// test can write exactly the (possibly malformed or non-canonical) message it needs.

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orbit::detail {

inline std::string be(std::uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

// str in its smallest form.
inline std::string S(std::string_view s) {
  const auto n = s.size();
  std::string head;
  if (n < 32) head = std::string(1, static_cast<char>(0xa0 | n));
  else if (n < 256) head = "\xd9" + be(n, 1);
  else if (n < 65536) head = "\xda" + be(n, 2);
  else head = "\xdb" + be(n, 4);
  return head + std::string(s);
}

// int in its smallest form.
inline std::string I(std::int64_t v) {
  if (v >= 0) {
    const auto u = static_cast<std::uint64_t>(v);
    if (u < 128) return std::string(1, static_cast<char>(u));
    if (u < 256) return "\xcc" + be(u, 1);
    if (u < 65536) return "\xcd" + be(u, 2);
    if (u < (1ull << 32)) return "\xce" + be(u, 4);
    return "\xcf" + be(u, 8);
  }
  if (v >= -32) return std::string(1, static_cast<char>(v));
  if (v >= -128) return "\xd0" + be(static_cast<std::uint8_t>(v), 1);
  if (v >= -32768) return "\xd1" + be(static_cast<std::uint16_t>(v), 2);
  if (v >= INT32_MIN) return "\xd2" + be(static_cast<std::uint32_t>(v), 4);
  return "\xd3" + be(static_cast<std::uint64_t>(v), 8);
}
inline std::string U64(std::uint64_t v) { return "\xcf" + be(v, 8); }
inline std::string F64(double v) { return "\xcb" + be(std::bit_cast<std::uint64_t>(v), 8); }
inline std::string F32(float v) { return "\xca" + be(std::bit_cast<std::uint32_t>(v), 4); }
inline const std::string kNil = "\xc0";
inline const std::string kTrue = "\xc3";
inline const std::string kFalse = "\xc2";

inline std::string Bin(std::string_view data) {
  const auto n = data.size();
  std::string head;
  if (n < 256) head = "\xc4" + be(n, 1);
  else if (n < 65536) head = "\xc5" + be(n, 2);
  else head = "\xc6" + be(n, 4);
  return head + std::string(data);
}

// Little-endian float32 bytes of a spectrum.
inline std::string floats_le(const std::vector<float>& values) {
  std::string out;
  for (float f : values) {
    const auto u = std::bit_cast<std::uint32_t>(f);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
  }
  return out;
}

inline std::string A(const std::vector<std::string>& items) {
  const auto n = items.size();
  std::string out = n < 16 ? std::string(1, static_cast<char>(0x90 | n))
                           : (n < 65536 ? "\xdc" + be(n, 2) : "\xdd" + be(n, 4));
  for (const auto& i : items) out += i;
  return out;
}

using Pairs = std::vector<std::pair<std::string, std::string>>;  // key (plain text), packed value

inline std::string M(const Pairs& pairs) {
  const auto n = pairs.size();
  std::string out = n < 16 ? std::string(1, static_cast<char>(0x80 | n))
                           : (n < 65536 ? "\xde" + be(n, 2) : "\xdf" + be(n, 4));
  for (const auto& [k, v] : pairs) out += S(k) + v;
  return out;
}

// Replaces the value of `key` (or appends it) / removes it.
inline Pairs with(Pairs pairs, const std::string& key, std::string value) {
  for (auto& [k, v] : pairs)
    if (k == key) {
      v = std::move(value);
      return pairs;
    }
  pairs.emplace_back(key, std::move(value));
  return pairs;
}
inline Pairs without(Pairs pairs, const std::string& key) {
  std::erase_if(pairs, [&](const auto& kv) { return kv.first == key; });
  return pairs;
}

// Valid minimal messages as field lists, for tests to bend.
inline Pairs snapshot_fields() {
  return {{"v", I(1)},       {"type", S("snapshot")}, {"run", S("run-1")}, {"rank", I(0)},
          {"step", I(7)},    {"time", F64(1732612345.25)}, {"loss", F64(2.5)}};
}
inline Pairs hello_fields() {
  return {{"v", I(1)},           {"type", S("hello")},   {"run", S("run-1")},
          {"rank", I(0)},        {"world_size", I(1)},   {"adapter", S("test")},
          {"adapter_version", S("0")}, {"versions", A({I(1)})}};
}
inline Pairs burn_fields() {
  return {{"v", I(1)},          {"type", S("burn")},   {"run", S("r")},
          {"seq", I(1)},        {"state", S("WARNING")}, {"basin", S("TOKEN_COLLAPSE")},
          {"reason", S("x")},   {"for_step", I(1)},    {"apply_at_step", I(2)},
          {"expires_after_steps", I(10)}, {"lr_scale", F64(0.5)}};
}
inline Pairs ack_fields() {
  return {{"v", I(1)},    {"type", S("ack")}, {"run", S("r")}, {"rank", I(0)},
          {"seq", I(1)},  {"step", I(5)},     {"late", kFalse}};
}

}  // namespace orbit::detail
