// SPDX-License-Identifier: Apache-2.0
// The golden vectors of protocol/vectors/ (SPEC.md, "Golden vectors"), shared with
// the Python tests: golden bytes decode and re-encode byte for byte, lenient bytes
// re-encode to their canonical twin, invalid bytes get the expected error code.

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/codec.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;

const fs::path kVectors = ORBIT_VECTORS_DIR;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The value of a top-level `"key": "string"` (or null) in the generator's JSON. Enough
// for the few plain-ASCII keys the tests read; not a JSON parser.
std::optional<std::string> json_string(const std::string& json, const std::string& key) {
  const std::string needle = "\"" + key + "\": ";
  const auto at = json.find(needle);
  if (at == std::string::npos) throw std::runtime_error("no key " + key);
  auto p = at + needle.size();
  if (json.compare(p, 4, "null") == 0) return std::nullopt;
  if (json[p] != '"') throw std::runtime_error("key " + key + " is not a string");
  std::string out;
  for (++p; json[p] != '"'; ++p) {
    if (json[p] == '\\') ++p;
    out.push_back(json[p]);
  }
  return out;
}

std::vector<std::string> stems(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".msgpack") out.push_back(entry.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string describe(const DecodeResult& r) {
  if (r.ok()) return "decoded fine";
  return std::string(to_string(r.error.code)) + " (" + r.error.ref.value_or("no ref") + "): " + r.error.message;
}

std::string test_name(const testing::TestParamInfo<std::string>& info) { return info.param; }

// ------------------------------------------------------------ golden

class GoldenVector : public testing::TestWithParam<std::string> {};

TEST_P(GoldenVector, DecodesAndReencodesByteForByte) {
  const std::string bytes = read_file(kVectors / (GetParam() + ".msgpack"));
  const std::string json = read_file(kVectors / (GetParam() + ".json"));
  const DecodeResult r = decode(bytes);
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(type_name(*r.message), *json_string(json, "type"));
  EXPECT_EQ(r.type, *json_string(json, "type"));
  const std::string again = encode(*r.message);
  EXPECT_EQ(again, bytes) << "re-encoding " << GetParam() << " changed its bytes";
}

INSTANTIATE_TEST_SUITE_P(Vectors, GoldenVector, testing::ValuesIn(stems(kVectors)), test_name);

TEST(GoldenVectors, CoverEveryMessageType) {
  std::set<std::string> types;
  for (const auto& name : stems(kVectors)) {
    const DecodeResult r = decode(read_file(kVectors / (name + ".msgpack")));
    ASSERT_TRUE(r.ok()) << name;
    types.insert(std::string(type_name(*r.message)));
  }
  EXPECT_EQ(types, (std::set<std::string>{"hello", "welcome", "snapshot", "state", "burn", "ack",
                                          "heartbeat", "bye", "error", "telemetry"}));
  EXPECT_GE(stems(kVectors).size(), 25u);
  EXPECT_GE(stems(kVectors / "invalid").size(), 40u);
  EXPECT_GE(stems(kVectors / "lenient").size(), 6u);
}

template <class T>
T decode_vector(const std::string& name) {
  const DecodeResult r = decode(read_file(kVectors / (name + ".msgpack")));
  if (!r.ok()) throw std::runtime_error(name + ": " + describe(r));
  return std::get<T>(*r.message);
}

// The bytes say what the readable twins say (a few vectors spelled out by hand).
TEST(GoldenVectors, SnapshotFullCarriesEveryOptional) {
  const auto s = decode_vector<Snapshot>("snapshot_full");
  EXPECT_EQ(s.run, "gpt2.small_seed-7");
  EXPECT_EQ(s.rank, 3);
  EXPECT_EQ(s.step, 1200);
  EXPECT_EQ(s.time, 1732612345.125);
  EXPECT_EQ(s.loss, 2.75);
  EXPECT_EQ(s.grad_norm, 0.8125);
  EXPECT_EQ(s.lr, 0.0003);
  EXPECT_EQ(s.schedule_lr, 0.0006);
  EXPECT_EQ(s.tokens, 19660800);
  ASSERT_EQ(s.domains.size(), 3u);
  EXPECT_EQ(s.domains.at("web").loss, 3.0);
  EXPECT_EQ(s.domains.at("web").weight, 0.5);
  ASSERT_EQ(s.spectra.size(), 2u);
  EXPECT_EQ(s.spectra.at("attn.0"),
            (std::vector<float>{4.0f, 2.5f, 1.5f, 1.0f, 0.5f, 0.25f, 0.125f, 0.0625f}));
  EXPECT_EQ(s.spectra.at("hidden.last"), (std::vector<float>{8.0f, 1.0f, 0.5f}));
  EXPECT_EQ(s.loop_rate, 0.0625);
  EXPECT_EQ(s.scalars.at("ppl"), 15.625);
}

TEST(GoldenVectors, NonFiniteLossAndGradNormAreValid) {
  const auto s = decode_vector<Snapshot>("snapshot_nonfinite");
  EXPECT_TRUE(std::isnan(s.loss));
  ASSERT_TRUE(s.grad_norm);
  EXPECT_TRUE(std::isinf(*s.grad_norm) && *s.grad_norm > 0);
  EXPECT_TRUE(std::isinf(s.scalars.at("overflow")) && s.scalars.at("overflow") < 0);
  const auto neg = decode_vector<Snapshot>("snapshot_neg_inf_loss");
  EXPECT_TRUE(std::isinf(neg.loss) && neg.loss < 0);
}

TEST(GoldenVectors, SpectraEdgeCases) {
  const auto s = decode_vector<Snapshot>("snapshot_spectra");
  EXPECT_EQ(s.spectra.at("attn.0.head_avg").size(), 300u);
  EXPECT_TRUE(s.spectra.at("empty").empty());
  EXPECT_EQ(s.spectra.at("one"), std::vector<float>{1.0f});
  const auto& w = s.spectra.at("with_nan");
  ASSERT_EQ(w.size(), 6u);
  EXPECT_EQ(w[0], 2.0f);
  EXPECT_TRUE(std::isnan(w[1]));
  EXPECT_TRUE(std::isinf(w[3]));
  EXPECT_EQ(w[5], -0.5f);
  EXPECT_EQ(s.spectra.at("zeros"), std::vector<float>(4, 0.0f));
}

TEST(GoldenVectors, DomainsWithPartialStats) {
  const auto s = decode_vector<Snapshot>("snapshot_domains");
  EXPECT_EQ(s.domains.at("loss_only").loss, 3.5);
  EXPECT_FALSE(s.domains.at("loss_only").weight);
  EXPECT_FALSE(s.domains.at("weight_only").loss);
  EXPECT_EQ(s.domains.at("weight_only").weight, 0.25);
  EXPECT_FALSE(s.domains.at("neither").loss || s.domains.at("neither").weight);
  EXPECT_TRUE(std::isnan(*s.domains.at("nan_loss").loss));
}

TEST(GoldenVectors, HelloAndBurnFields) {
  const auto h = decode_vector<Hello>("hello_full");
  EXPECT_EQ(h.world_size, 8);
  EXPECT_EQ(h.versions, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(h.actuators.size(), 5u);
  EXPECT_EQ(h.base_lr, 0.0003);
  const auto b = decode_vector<Burn>("burn_full");
  EXPECT_EQ(b.seq, 17);
  EXPECT_EQ(b.lr_scale, 0.25);
  EXPECT_EQ(b.domain_weights.at("web"), 0.125);
  EXPECT_EQ(b.curriculum_phase, 0);
  EXPECT_EQ(b.loss_weights.at("collapse"), 0.5);
  EXPECT_EQ(b.rollback_to_step, 2400);
  EXPECT_EQ(b.skip_batches, 64);
  EXPECT_GT(b.reason.size(), 255u);  // exercises str16
  const auto e = decode_vector<Error>("error_not_registered");
  EXPECT_EQ(e.code, ErrorCode::not_registered);
  EXPECT_EQ(e.ref, "run");
  EXPECT_FALSE(decode_vector<Error>("error_no_ref").ref);
  const auto t = decode_vector<Telemetry>("telemetry_burn");
  EXPECT_EQ(t.burn_seq, 1);
  EXPECT_FALSE(decode_vector<Telemetry>("telemetry").burn_seq);
}

// ------------------------------------------------------------ lenient

class LenientVector : public testing::TestWithParam<std::string> {};

TEST_P(LenientVector, ReencodesToItsCanonicalTwin) {
  const std::string bytes = read_file(kVectors / "lenient" / (GetParam() + ".msgpack"));
  const std::string json = read_file(kVectors / "lenient" / (GetParam() + ".json"));
  const std::string canonical = read_file(kVectors / (*json_string(json, "canonical") + ".msgpack"));
  ASSERT_FALSE(canonical.empty());
  ASSERT_NE(bytes, canonical);  // otherwise the vector tests nothing
  const DecodeResult r = decode(bytes);
  ASSERT_TRUE(r.ok()) << describe(r);
  EXPECT_EQ(encode(*r.message), canonical);
}

INSTANTIATE_TEST_SUITE_P(Vectors, LenientVector, testing::ValuesIn(stems(kVectors / "lenient")),
                         test_name);

// ------------------------------------------------------------ invalid

class InvalidVector : public testing::TestWithParam<std::string> {};

TEST_P(InvalidVector, IsRejectedWithItsCode) {
  const std::string bytes = read_file(kVectors / "invalid" / (GetParam() + ".msgpack"));
  const std::string json = read_file(kVectors / "invalid" / (GetParam() + ".json"));
  const DecodeResult r = decode(bytes);
  ASSERT_FALSE(r.ok()) << GetParam() << " was accepted";
  EXPECT_EQ(to_string(r.error.code), *json_string(json, "code")) << describe(r);
  EXPECT_EQ(r.error.ref, json_string(json, "ref")) << describe(r);
  EXPECT_FALSE(r.error.message.empty());
}

INSTANTIATE_TEST_SUITE_P(Vectors, InvalidVector, testing::ValuesIn(stems(kVectors / "invalid")),
                         test_name);

}  // namespace
}  // namespace orbit
