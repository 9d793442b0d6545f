// SPDX-License-Identifier: Apache-2.0
// The canonical encoding of SPEC.md, checked against bytes built by hand: key order
// per message type, smallest integer forms, float64 floats, bytewise-sorted nested
// maps, little-endian float32 spectra, absent optionals left out.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/codec.hpp"
#include "tests/protocol/raw_msgpack.hpp"

namespace orbit {
namespace {

using namespace orbit::detail;

Pairs head(const char* type) { return {{"v", I(1)}, {"type", S(type)}}; }
Pairs operator+(Pairs a, const Pairs& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Encoding, HelloKeyOrder) {
  Hello m{"r", 2, 4, "py", "1.0", {1, 2}, {"web", "code"}, {"lr", "rollback"}, 0.001, "news"};
  EXPECT_EQ(encode(m), M(head("hello") + Pairs{{"run", S("r")}, {"rank", I(2)}, {"world_size", I(4)},
                                               {"adapter", S("py")}, {"adapter_version", S("1.0")},
                                               {"versions", A({I(1), I(2)})},
                                               {"domains", A({S("web"), S("code")})},  // arrays keep their order
                                               {"actuators", A({S("lr"), S("rollback")})},
                                               {"base_lr", F64(0.001)}, {"replies", S("news")}}));
  m.domains.clear();
  m.actuators.clear();
  m.base_lr.reset();
  m.replies.reset();
  EXPECT_EQ(encode(m), M(head("hello") + Pairs{{"run", S("r")}, {"rank", I(2)}, {"world_size", I(4)},
                                               {"adapter", S("py")}, {"adapter_version", S("1.0")},
                                               {"versions", A({I(1), I(2)})}}));
}

TEST(Encoding, WelcomeKeyOrder) {
  EXPECT_EQ(encode(Welcome{"r", 1, "s1", 1, "active", 10, std::nullopt, std::nullopt}),
            M(head("welcome") + Pairs{{"run", S("r")}, {"rank", I(1)}, {"session", S("s1")}, {"version", I(1)},
                                      {"mode", S("active")}, {"snapshot_every", I(10)}}));
  EXPECT_EQ(encode(Welcome{"r", 1, "s1", 1, "active", 10, 4096, "news"}),
            M(head("welcome") + Pairs{{"run", S("r")}, {"rank", I(1)}, {"session", S("s1")}, {"version", I(1)},
                                      {"mode", S("active")}, {"snapshot_every", I(10)},
                                      {"max_message_bytes", I(4096)}, {"replies", S("news")}}));
}

TEST(Encoding, SnapshotKeyOrderWithEveryOptional) {
  Snapshot m;
  m.run = "r";
  m.rank = 1;
  m.step = 300;
  m.time = 12.5;
  m.loss = 2.0;
  m.grad_norm = 0.5;
  m.lr = 0.001;
  m.tokens = 70000;
  m.domains["web"] = {1.5, 0.25};
  m.domains["code"] = {std::nullopt, 0.75};
  m.spectra["b"] = {2.0f, 1.0f};
  m.spectra["a"] = {};
  m.loop_rate = 0.125;
  m.scalars = {{"z", 1.0}, {"acc", 0.5}};
  EXPECT_EQ(encode(m),
            M(head("snapshot") +
              Pairs{{"run", S("r")}, {"rank", I(1)}, {"step", I(300)}, {"time", F64(12.5)}, {"loss", F64(2.0)},
                    {"grad_norm", F64(0.5)}, {"lr", F64(0.001)}, {"tokens", I(70000)},
                    {"domains", M({{"code", M({{"weight", F64(0.75)}})},
                                   {"web", M({{"loss", F64(1.5)}, {"weight", F64(0.25)}})}})},
                    {"spectra", M({{"a", Bin("")}, {"b", Bin(floats_le({2.0f, 1.0f}))}})},
                    {"loop_rate", F64(0.125)},
                    {"scalars", M({{"acc", F64(0.5)}, {"z", F64(1.0)}})}}));
}

TEST(Encoding, SnapshotAbsentOptionalsAreLeftOut) {
  Snapshot m;
  m.run = "r";
  m.time = 1.0;
  m.loss = 0.0;
  EXPECT_EQ(encode(m), M(head("snapshot") + Pairs{{"run", S("r")}, {"rank", I(0)}, {"step", I(0)},
                                                  {"time", F64(1.0)}, {"loss", F64(0.0)}}));
}

TEST(Encoding, StateBurnAckKeyOrder) {
  EXPECT_EQ(encode(State{"r", 0, 5, "STABLE", "CREATIVE", {{"b", 2.0}, {"a", 1.0}}, std::nullopt}),
            M(head("state") + Pairs{{"run", S("r")}, {"rank", I(0)}, {"step", I(5)}, {"state", S("STABLE")},
                                    {"basin", S("CREATIVE")}, {"metrics", M({{"a", F64(1.0)}, {"b", F64(2.0)}})}}));
  // metrics is required: written even when empty.
  EXPECT_EQ(encode(State{"r", 0, 5, "MONITOR", "UNKNOWN", {}, std::nullopt}),
            M(head("state") + Pairs{{"run", S("r")}, {"rank", I(0)}, {"step", I(5)}, {"state", S("MONITOR")},
                                    {"basin", S("UNKNOWN")}, {"metrics", M({})}}));
  Burn b{"r", 3, "WARNING", "TOKEN_COLLAPSE", "why", 10, 12, 100, 0.5, {{"web", 0.5}}, 2, {{"collapse", 0.25}}, 8, 4, std::nullopt};
  EXPECT_EQ(encode(b),
            M(head("burn") + Pairs{{"run", S("r")}, {"seq", I(3)}, {"state", S("WARNING")},
                                   {"basin", S("TOKEN_COLLAPSE")}, {"reason", S("why")}, {"for_step", I(10)},
                                   {"apply_at_step", I(12)}, {"expires_after_steps", I(100)}, {"lr_scale", F64(0.5)},
                                   {"domain_weights", M({{"web", F64(0.5)}})}, {"curriculum_phase", I(2)},
                                   {"loss_weights", M({{"collapse", F64(0.25)}})}, {"rollback_to_step", I(8)},
                                   {"skip_batches", I(4)}}));
  EXPECT_EQ(encode(Ack{"r", 1, 3, 12, true, 0.25, 8}),
            M(head("ack") + Pairs{{"run", S("r")}, {"rank", I(1)}, {"seq", I(3)}, {"step", I(12)}, {"late", kTrue},
                                  {"lr", F64(0.25)}, {"restored_step", I(8)}}));
  EXPECT_EQ(encode(Ack{"r", 1, 3, 12, false, std::nullopt, std::nullopt}),
            M(head("ack") + Pairs{{"run", S("r")}, {"rank", I(1)}, {"seq", I(3)}, {"step", I(12)}, {"late", kFalse}}));
}

TEST(Encoding, HeartbeatByeErrorTelemetryKeyOrder) {
  EXPECT_EQ(encode(Heartbeat{}), M(head("heartbeat")));
  EXPECT_EQ(encode(Heartbeat{"r", 2}), M(head("heartbeat") + Pairs{{"run", S("r")}, {"rank", I(2)}}));
  EXPECT_EQ(encode(Bye{"r", 2}), M(head("bye") + Pairs{{"run", S("r")}, {"rank", I(2)}}));
  EXPECT_EQ(encode(Error{ErrorCode::not_registered, "say hello", "run"}),
            M(head("error") + Pairs{{"code", S("not_registered")}, {"message", S("say hello")}, {"ref", S("run")}}));
  EXPECT_EQ(encode(Error{ErrorCode::too_large, "big", std::nullopt}),
            M(head("error") + Pairs{{"code", S("too_large")}, {"message", S("big")}}));
  Telemetry t{"r", 0, 9, 1.5, "monitor", "STABLE", "CREATIVE", "UNKNOWN", 1.0, {{"e", 2.0}}, 4, "because", std::nullopt};
  EXPECT_EQ(encode(t),
            M(head("telemetry") + Pairs{{"run", S("r")}, {"rank", I(0)}, {"step", I(9)}, {"time", F64(1.5)},
                                        {"mode", S("monitor")}, {"state", S("STABLE")}, {"basin", S("CREATIVE")},
                                        {"forecast_basin", S("UNKNOWN")}, {"lr_scale", F64(1.0)},
                                        {"metrics", M({{"e", F64(2.0)}})}, {"burn_seq", I(4)},
                                        {"reason", S("because")}}));
}

TEST(Encoding, IntegersInTheirSmallestForm) {
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  const std::int64_t min = std::numeric_limits<std::int64_t>::min();
  using namespace std::string_literals;  // "..."s keeps embedded NULs
  const std::vector<std::pair<std::int64_t, std::string>> cases{
      {0, "\x00"s}, {127, "\x7f"s}, {128, "\xcc\x80"s}, {255, "\xcc\xff"s}, {256, "\xcd\x01\x00"s},
      {65535, "\xcd\xff\xff"s}, {65536, "\xce\x00\x01\x00\x00"s},
      {4294967296, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00"s},
      {max, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff"s}, {-1, "\xff"s}, {-32, "\xe0"s}, {-33, "\xd0\xdf"s},
      {-128, "\xd0\x80"s}, {-129, "\xd1\xff\x7f"s}, {-32769, "\xd2\xff\xff\x7f\xff"s},
      {min, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00"s}};
  for (const auto& [v, bytes] : cases) {
    ASSERT_EQ(I(v), bytes) << "test helper, " << v;
    // welcome.version carries any int64, so it exercises negative forms too.
    const std::string encoded = encode(Welcome{"r", 0, "s", v, "monitor", 1, std::nullopt, std::nullopt});
    EXPECT_EQ(encoded, M(head("welcome") + Pairs{{"run", S("r")}, {"rank", I(0)}, {"session", S("s")},
                                                 {"version", bytes}, {"mode", S("monitor")},
                                                 {"snapshot_every", I(1)}}))
        << v;
  }
}

TEST(Encoding, FloatsAreAlwaysFloat64) {
  for (double v : {0.0, 1.0, 0.5, -2.0, 1e300, std::numeric_limits<double>::denorm_min()}) {
    Snapshot m;
    m.run = "r";
    m.loss = v;
    const std::string bytes = encode(m);
    EXPECT_NE(bytes.find("\xa4loss" + F64(v)), std::string::npos) << v;
  }
}

TEST(Encoding, NestedMapsSortedByKeyBytes) {
  Snapshot m;
  m.run = "r";
  m.scalars = {{"b", 1}, {"B", 2}, {"\xc3\xa9", 3}, {"aa", 4}, {"a", 5}, {"_", 6}};
  EXPECT_EQ(encode(m), M(head("snapshot") + Pairs{{"run", S("r")}, {"rank", I(0)}, {"step", I(0)},
                                                  {"time", F64(0)}, {"loss", F64(0)},
                                                  {"scalars", M({{"B", F64(2)}, {"_", F64(6)}, {"a", F64(5)},
                                                                 {"aa", F64(4)}, {"b", F64(1)},
                                                                 {"\xc3\xa9", F64(3)}})}}));
}

TEST(Encoding, StringAndBinaryForms) {
  for (std::size_t n : {0u, 31u, 32u, 255u, 256u, 65535u, 65536u}) {
    Error e{ErrorCode::internal, std::string(n, 'm'), std::nullopt};
    EXPECT_EQ(encode(e), M(head("error") + Pairs{{"code", S("internal")}, {"message", S(e.message)}})) << n;
  }
  for (std::size_t n : {0u, 63u, 64u, 16383u, 16384u}) {
    Snapshot m;
    m.run = "r";
    m.spectra["s"] = std::vector<float>(n, 0.5f);
    const std::string bytes = encode(m);
    EXPECT_NE(bytes.find(S("s") + Bin(floats_le(m.spectra["s"]))), std::string::npos) << n;
  }
}

TEST(Encoding, SpectraAreLittleEndianFloat32) {
  Snapshot m;
  m.run = "r";
  m.spectra["s"] = {1.0f, -2.5f};
  const std::string bytes = encode(m);
  EXPECT_NE(bytes.find(std::string("\xa1s\xc4\x08\x00\x00\x80\x3f\x00\x00\x20\xc0", 12)), std::string::npos);
}

}  // namespace
}  // namespace orbit
