// SPDX-License-Identifier: Apache-2.0
// Differential test of the snapshot fast path (protocol/codec.cpp): decode() and
// decode_snapshot_into() must give exactly what decode_reference() gives (the same
// message, bit for bit, or the same error code, text and ref) on every golden vector
// and on random mutations of snapshots, and a warm decode_snapshot_into() must reuse
// the storage it was given.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/codec.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Everything a result says, as one comparable string: the canonical bytes of the
// message (floats bit for bit) or the error's code, ref and text.
std::string outcome(const DecodeResult& r) {
  if (r.ok()) return "ok " + r.type + " " + encode(*r.message);
  return "error " + std::string(to_string(r.error.code)) + " [" + r.error.ref.value_or("-") + "] " + r.error.message;
}

std::string outcome_into(bool ok, const Snapshot& into, const DecodeResult& other) {
  if (ok) return "ok snapshot " + encode(Message(into));
  return outcome(other);
}

std::vector<std::string> vectors() {
  std::vector<fs::path> paths;
  for (const auto& e : fs::directory_iterator(ORBIT_VECTORS_DIR))
    if (e.path().extension() == ".msgpack") paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(read_file(p));
  return out;
}

// A snapshot with every field the fast path reads, spectra as bin and as an array.
std::vector<std::string> rich_snapshots() {
  std::vector<std::string> out;
  for (int variant = 0; variant < 3; ++variant) {
    Snapshot s;
    s.run = "fast-path";
    s.rank = 3;
    s.step = 1000 + variant;
    s.time = 1.7e9;
    s.loss = variant == 2 ? -1.0 : 2.5;
    s.grad_norm = 0.75;
    s.lr = 3e-4;
    s.schedule_lr = 6e-4;
    s.tokens = 123456789;
    s.loop_rate = 0.5;
    s.domains["code"] = DomainStats{1.5, 0.25};
    s.domains["web"] = DomainStats{std::nullopt, 0.75};
    if (variant == 1) s.domains["zeta"] = DomainStats{2.0, std::nullopt};
    s.spectra["attn.0"] = {3.0f, 2.0f, 1.0f, 0.5f};
    s.spectra["mlp.1"] = {1.0f, 0.25f};
    for (int i = 0; i < 6 + variant; ++i) s.scalars["s" + std::to_string(i)] = i * 0.5;
    out.push_back(encode(s));
  }
  // The same content with one spectrum as an array of numbers (a lenient form).
  std::string bytes = out[0];
  const std::string bin = std::string("\xc4\x08", 2) +
                          std::string(reinterpret_cast<const char*>(std::vector<float>{1.0f, 0.25f}.data()), 8);
  const auto at = bytes.find(bin);
  if (at != std::string::npos)
    bytes.replace(at, bin.size(), std::string("\x92\xca\x3f\x80\x00\x00\xcb\x3f\xd0\x00\x00\x00\x00\x00\x00", 15));
  out.push_back(bytes);
  return out;
}

void expect_same(const std::string& bytes, const DecodeLimits& limits, Snapshot& warm, const std::string& what) {
  const std::string want = outcome(decode_reference(bytes, limits));
  EXPECT_EQ(outcome(decode(bytes, limits)), want) << what;
  DecodeResult other;
  const bool ok = decode_snapshot_into(bytes, warm, other, limits);
  EXPECT_EQ(outcome_into(ok, warm, other), want) << what << " (into a reused snapshot)";
}

TEST(CodecFastPath, GoldenVectorsDecodeAsTheReferenceDoes) {
  const auto all = vectors();
  ASSERT_GT(all.size(), 20u);
  Snapshot warm;
  for (std::size_t i = 0; i < all.size(); ++i) expect_same(all[i], {}, warm, "vector #" + std::to_string(i));
  // And again in reverse order, so the reused snapshot holds other keys each time.
  for (std::size_t i = all.size(); i-- > 0;) expect_same(all[i], {}, warm, "vector #" + std::to_string(i) + " again");
}

TEST(CodecFastPath, RichSnapshotsDecodeAsTheReferenceDoes) {
  Snapshot warm;
  for (const auto& bytes : rich_snapshots()) {
    expect_same(bytes, {}, warm, "rich snapshot");
    ASSERT_TRUE(decode(bytes).ok());
  }
}

// Random byte edits of valid snapshots: most become errors, some stay valid with
// other values; each must come out exactly as the reference decoder has it.
TEST(CodecFastPath, MutatedSnapshotsDecodeAsTheReferenceDoes) {
  std::vector<std::string> seeds = rich_snapshots();
  for (const auto& v : vectors())
    if (decode_reference(v).type == "snapshot") seeds.push_back(v);
  ASSERT_GE(seeds.size(), 8u);
  DecodeLimits small;  // small limits reach the too_large paths too
  small.max_spectrum_length = 3;
  small.max_spectra = 1;
  small.max_domains = 2;
  small.max_scalars = 5;
  std::mt19937_64 rng(12);
  const unsigned char specials[] = {0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xca, 0xcb, 0xcc, 0xcf, 0xd0, 0xd3,
                                    0xd9, 0xdc, 0xde, 0xdf, 0x80, 0x90, 0xa0, 0xff, 0x00, 0x7f, 0x01};
  Snapshot warm;
  int valid = 0;
  for (int n = 0; n < 40000; ++n) {
    std::string bytes = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !bytes.empty(); ++e) {
      const std::size_t at = rng() % bytes.size();
      switch (rng() % 6) {
        case 0: bytes[at] = static_cast<char>(rng()); break;
        case 1: bytes[at] = static_cast<char>(specials[rng() % sizeof specials]); break;
        case 2: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8))); break;
        case 3: bytes.erase(at, 1); break;
        case 4: bytes.insert(at, 1, static_cast<char>(specials[rng() % sizeof specials])); break;
        case 5: bytes.resize(at); break;
      }
    }
    const DecodeLimits& limits = (n % 4 == 3) ? small : DecodeLimits{};
    const std::string want = outcome(decode_reference(bytes, limits));
    valid += want.rfind("ok", 0) == 0;
    ASSERT_EQ(outcome(decode(bytes, limits)), want) << "mutation #" << n;
    DecodeResult other;
    const bool ok = decode_snapshot_into(bytes, warm, other, limits);
    ASSERT_EQ(outcome_into(ok, warm, other), want) << "mutation #" << n << " (into a reused snapshot)";
  }
  EXPECT_GT(valid, 1000);  // the valid side is exercised, not only errors
}

TEST(CodecFastPath, SuccessiveSnapshotsWithOtherKeysReplaceTheOldOnes) {
  const auto rich = rich_snapshots();
  Snapshot warm;
  DecodeResult other;
  // More domains and scalars, then fewer, then the first again: nothing stale survives.
  for (int i : {0, 1, 2, 0, 2, 1}) {
    ASSERT_TRUE(decode_snapshot_into(rich[static_cast<std::size_t>(i)], warm, other));
    EXPECT_EQ(encode(Message(warm)), rich[static_cast<std::size_t>(i)]) << "snapshot " << i;
  }
  // A minimal snapshot empties every optional field a previous one set.
  Snapshot minimal;
  minimal.run = "r";
  const std::string bytes = encode(minimal);
  ASSERT_TRUE(decode_snapshot_into(bytes, warm, other));
  EXPECT_EQ(encode(Message(warm)), bytes);
}

TEST(CodecFastPath, WarmDecodeReusesTheStorageItWasGiven) {
  const std::string bytes = rich_snapshots()[0];
  Snapshot warm;
  DecodeResult other;
  ASSERT_TRUE(decode_snapshot_into(bytes, warm, other));
  const double* scalar = &warm.scalars.begin()->second;
  const float* spectrum = warm.spectra.begin()->second.data();
  const DomainStats* domain = &warm.domains.begin()->second;
  ASSERT_TRUE(decode_snapshot_into(bytes, warm, other));
  EXPECT_EQ(&warm.scalars.begin()->second, scalar);
  EXPECT_EQ(warm.spectra.begin()->second.data(), spectrum);
  EXPECT_EQ(&warm.domains.begin()->second, domain);
}

TEST(CodecFastPath, NonSnapshotsComeBackInOther) {
  Hello h;
  h.run = "r";
  h.adapter = "a";
  h.adapter_version = "1";
  h.versions = {1};
  Snapshot warm;
  DecodeResult other;
  EXPECT_FALSE(decode_snapshot_into(encode(h), warm, other));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(std::holds_alternative<Hello>(*other.message));
  EXPECT_FALSE(decode_snapshot_into(std::string("\xc1"), warm, other));
  EXPECT_FALSE(other.ok());
  EXPECT_EQ(other.error.code, ErrorCode::bad_message);
}

}  // namespace
}  // namespace orbit
