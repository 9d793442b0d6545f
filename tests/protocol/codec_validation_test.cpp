// SPDX-License-Identifier: Apache-2.0
// One test per validation rule of protocol/SPEC.md: each builds the smallest message
// that breaks the rule and checks the error code and `ref` the sender gets back.

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/codec.hpp"
#include "tests/protocol/raw_msgpack.hpp"

namespace orbit {
namespace {

using namespace orbit::detail;

::testing::AssertionResult rejected(const std::string& bytes, ErrorCode code,
                                    std::optional<std::string> ref, const DecodeLimits& limits = {}) {
  const DecodeResult r = decode(bytes, limits);
  if (r.ok()) return ::testing::AssertionFailure() << "accepted";
  if (r.error.code != code || r.error.ref != ref)
    return ::testing::AssertionFailure()
           << "got " << to_string(r.error.code) << " ref=" << r.error.ref.value_or("(none)") << " ("
           << r.error.message << "), want " << to_string(code) << " ref=" << ref.value_or("(none)");
  if (r.error.message.empty()) return ::testing::AssertionFailure() << "empty message";
  return ::testing::AssertionSuccess();
}

template <class T>
T accepted(const std::string& bytes, const DecodeLimits& limits = {}) {
  const DecodeResult r = decode(bytes, limits);
  if (!r.ok()) {
    ADD_FAILURE() << "rejected: " << to_string(r.error.code) << " " << r.error.message;
    return T{};
  }
  return std::get<T>(*r.message);
}

// ------------------------------------------------------------ framing

TEST(Validation, EmptyAndGarbageAreBadMessage) {
  EXPECT_TRUE(rejected("", ErrorCode::bad_message, std::nullopt));
  EXPECT_TRUE(rejected("\xc1", ErrorCode::bad_message, std::nullopt));
  const std::string good = M(snapshot_fields());
  for (std::size_t cut = 1; cut < good.size(); ++cut)
    EXPECT_TRUE(rejected(good.substr(0, cut), ErrorCode::bad_message, std::nullopt)) << cut;
}

TEST(Validation, TrailingBytesAreBadMessage) {
  const std::string good = M(snapshot_fields());
  accepted<Snapshot>(good);
  EXPECT_TRUE(rejected(good + I(0), ErrorCode::bad_message, std::nullopt));
  EXPECT_TRUE(rejected(good + good, ErrorCode::bad_message, std::nullopt));
}

TEST(Validation, NonMapIsBadMessage) {
  for (const std::string& root : {A({S("snapshot")}), I(1), S("hello"), kNil, F64(1.0), Bin("ab")})
    EXPECT_TRUE(rejected(root, ErrorCode::bad_message, std::nullopt));
}

TEST(Validation, TypeAndVersionKeys) {
  EXPECT_TRUE(rejected(M(without(snapshot_fields(), "type")), ErrorCode::bad_message, "type"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "type", I(2))), ErrorCode::invalid_field, "type"));
  EXPECT_TRUE(rejected(M(without(snapshot_fields(), "v")), ErrorCode::bad_message, "v"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "v", S("1"))), ErrorCode::invalid_field, "v"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "v", F64(1.0))), ErrorCode::invalid_field, "v"));
}

TEST(Validation, UnsupportedVersion) {
  for (std::int64_t v : {0, 2, 99, -1})
    EXPECT_TRUE(rejected(M(with(snapshot_fields(), "v", I(v))), ErrorCode::unsupported_version, "v")) << v;
  // The version check comes before the type check.
  EXPECT_TRUE(rejected(M({{"v", I(2)}, {"type", S("launch")}}), ErrorCode::unsupported_version, "v"));
}

TEST(Validation, HelloNegotiatesThroughVersions) {
  // Any `v` is fine on a hello; `versions` must offer 1.
  const auto h = accepted<Hello>(M(with(with(hello_fields(), "v", I(3)), "versions", A({I(3), I(1)}))));
  EXPECT_EQ(h.versions, (std::vector<std::int64_t>{3, 1}));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "versions", A({I(2), I(3)}))), ErrorCode::unsupported_version, "versions"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "versions", A({}))), ErrorCode::unsupported_version, "versions"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "versions", I(1))), ErrorCode::invalid_field, "versions"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "versions", A({S("1")}))), ErrorCode::invalid_field, "versions"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "versions", A(std::vector<std::string>(65, I(1))))), ErrorCode::too_large, "versions"));
  accepted<Hello>(M(with(hello_fields(), "versions", A(std::vector<std::string>(64, I(1))))));
}

TEST(Validation, UnknownType) {
  for (const char* t : {"launch", "HELLO", "", "control"})
    EXPECT_TRUE(rejected(M({{"v", I(1)}, {"type", S(t)}}), ErrorCode::unknown_type, "type")) << t;
}

TEST(Validation, TooLargeMessage) {
  const std::string good = M(snapshot_fields());
  DecodeLimits limits;
  limits.max_message_bytes = good.size();
  accepted<Snapshot>(good, limits);
  limits.max_message_bytes = good.size() - 1;
  EXPECT_TRUE(rejected(good, ErrorCode::too_large, std::nullopt, limits));
  // The default limit is 4 MiB.
  const std::string padding(4u << 20, 'x');
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "pad", Bin(padding))), ErrorCode::too_large, std::nullopt));
}

TEST(Validation, NestingDepth) {
  auto nested = [](int containers) {  // root map + (containers - 1) arrays
    std::string value = "\x90";
    for (int i = 2; i < containers; ++i) value = "\x91" + value;
    return M(with(snapshot_fields(), "x", value));
  };
  accepted<Snapshot>(nested(8));
  EXPECT_TRUE(rejected(nested(9), ErrorCode::too_large, std::nullopt));
  EXPECT_TRUE(rejected(nested(5000), ErrorCode::too_large, std::nullopt));
}

TEST(Validation, DuplicateKeys) {
  auto fields = snapshot_fields();
  fields.emplace_back("step", I(8));
  EXPECT_TRUE(rejected(M(fields), ErrorCode::bad_message, "step"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", M({{"a", F64(1)}, {"a", F64(2)}}))),
                       ErrorCode::invalid_field, "scalars.a"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "spectra", M({{"s", Bin("")}, {"s", Bin("")}}))),
                       ErrorCode::invalid_field, "spectra.s"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", M({{"d", M({})}, {"d", M({})}}))),
                       ErrorCode::invalid_field, "domains.d"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", M({{"d", M({{"loss", F64(1)}, {"loss", F64(2)}})}}))),
                       ErrorCode::invalid_field, "domains.d.loss"));
}

TEST(Validation, UnknownKeysAreIgnored) {
  auto fields = with(snapshot_fields(), "future_field", M({{"deep", A({I(1), S("x")})}}));
  fields.emplace_back("another", kNil);
  const auto s = accepted<Snapshot>(M(fields));
  EXPECT_EQ(s.step, 7);
  EXPECT_EQ(encode(s), encode(accepted<Snapshot>(M(snapshot_fields()))));
}

// ------------------------------------------------------------ fields

TEST(Validation, EveryRequiredSnapshotFieldIsRequired) {
  for (const char* field : {"run", "rank", "step", "time", "loss"}) {
    EXPECT_TRUE(rejected(M(without(snapshot_fields(), field)), ErrorCode::invalid_field, field)) << field;
    EXPECT_TRUE(rejected(M(with(snapshot_fields(), field, kNil)), ErrorCode::invalid_field, field)) << field;
  }
  for (const char* field : {"run", "rank", "world_size", "adapter", "adapter_version", "versions"})
    EXPECT_TRUE(rejected(M(without(hello_fields(), field)), ErrorCode::invalid_field, field)) << field;
  for (const char* field : {"run", "seq", "state", "basin", "reason", "for_step", "apply_at_step",
                            "expires_after_steps", "lr_scale"})
    EXPECT_TRUE(rejected(M(without(burn_fields(), field)), ErrorCode::invalid_field, field)) << field;
  for (const char* field : {"run", "rank", "seq", "step", "late"})
    EXPECT_TRUE(rejected(M(without(ack_fields(), field)), ErrorCode::invalid_field, field)) << field;
}

TEST(Validation, WrongTypes) {
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "step", S("7"))), ErrorCode::invalid_field, "step"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "step", F64(7.0))), ErrorCode::invalid_field, "step"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "rank", kTrue)), ErrorCode::invalid_field, "rank"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "loss", S("2.5"))), ErrorCode::invalid_field, "loss"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "loss", kTrue)), ErrorCode::invalid_field, "loss"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "run", I(1))), ErrorCode::invalid_field, "run"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", A({}))), ErrorCode::invalid_field, "scalars"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", M({{"a", S("x")}}))), ErrorCode::invalid_field, "scalars.a"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "spectra", A({}))), ErrorCode::invalid_field, "spectra"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "spectra", M({{"s", S("1 2")}}))), ErrorCode::invalid_field, "spectra.s"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", M({{"d", F64(1)}}))), ErrorCode::invalid_field, "domains.d"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "tokens", F64(1))), ErrorCode::invalid_field, "tokens"));
  EXPECT_TRUE(rejected(M(with(ack_fields(), "late", I(0))), ErrorCode::invalid_field, "late"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "actuators", S("lr"))), ErrorCode::invalid_field, "actuators"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "domains", A({I(1)}))), ErrorCode::invalid_field, "domains"));
}

TEST(Validation, IntegersOutsideInt64) {
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "step", U64(1ull << 63))), ErrorCode::invalid_field, "step"));
  const auto s = accepted<Snapshot>(M(with(snapshot_fields(), "step", U64((1ull << 63) - 1))));
  EXPECT_EQ(s.step, std::numeric_limits<std::int64_t>::max());
}

TEST(Validation, NegativeCounters) {
  for (const char* field : {"rank", "step"})
    EXPECT_TRUE(rejected(M(with(snapshot_fields(), field, I(-1))), ErrorCode::invalid_field, field));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "tokens", I(-5))), ErrorCode::invalid_field, "tokens"));
  for (const char* field : {"seq", "for_step", "apply_at_step", "expires_after_steps", "curriculum_phase",
                            "rollback_to_step", "skip_batches"})
    EXPECT_TRUE(rejected(M(with(burn_fields(), field, I(-1))), ErrorCode::invalid_field, field)) << field;
  EXPECT_TRUE(rejected(M(with(ack_fields(), "restored_step", I(-1))), ErrorCode::invalid_field, "restored_step"));
}

TEST(Validation, RunIds) {
  const std::string longest(128, 'a');
  for (const std::string& good : {std::string("a"), std::string("run-1.b_C9"), longest})
    EXPECT_EQ(accepted<Snapshot>(M(with(snapshot_fields(), "run", S(good)))).run, good);
  for (const std::string& bad : {std::string(""), std::string(129, 'a'), std::string("a b"),
                                 std::string("a/b"), std::string("r\xc3\xa9"), std::string("a\0b", 3)})
    EXPECT_TRUE(rejected(M(with(snapshot_fields(), "run", S(bad))), ErrorCode::invalid_field, "run")) << bad;
  EXPECT_TRUE(valid_run_id("gpt2.small_seed-7"));
  EXPECT_FALSE(valid_run_id("run:1"));
}

TEST(Validation, RankBelowWorldSize) {
  accepted<Hello>(M(with(with(hello_fields(), "rank", I(7)), "world_size", I(8))));
  EXPECT_TRUE(rejected(M(with(with(hello_fields(), "rank", I(8)), "world_size", I(8))), ErrorCode::invalid_field, "rank"));
  EXPECT_TRUE(rejected(M(with(with(hello_fields(), "rank", I(9)), "world_size", I(8))), ErrorCode::invalid_field, "rank"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "world_size", I(0))), ErrorCode::invalid_field, "world_size"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "rank", I(-1))), ErrorCode::invalid_field, "rank"));
}

TEST(Validation, Actuators) {
  const auto all = accepted<Hello>(M(with(hello_fields(), "actuators",
      A({S("lr"), S("domain_weights"), S("curriculum"), S("loss_weights"), S("rollback")}))));
  EXPECT_EQ(all.actuators.size(), 5u);
  EXPECT_TRUE(rejected(M(with(hello_fields(), "actuators", A({S("lr"), S("momentum")}))), ErrorCode::invalid_field, "actuators"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "actuators", A({S("LR")}))), ErrorCode::invalid_field, "actuators"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "actuators", A(std::vector<std::string>(6, S("lr"))))), ErrorCode::too_large, "actuators"));
}

TEST(Validation, BaseLr) {
  EXPECT_EQ(accepted<Hello>(M(with(hello_fields(), "base_lr", I(1)))).base_lr, 1.0);
  for (double bad : {0.0, -1e-3, std::nan(""), std::numeric_limits<double>::infinity()})
    EXPECT_TRUE(rejected(M(with(hello_fields(), "base_lr", F64(bad))), ErrorCode::invalid_field, "base_lr")) << bad;
}

TEST(Validation, Replies) {
  EXPECT_EQ(accepted<Hello>(M(with(hello_fields(), "replies", S("news")))).replies, "news");
  EXPECT_EQ(accepted<Hello>(M(with(hello_fields(), "replies", S("every")))).replies, "every");
  EXPECT_FALSE(accepted<Hello>(M(hello_fields())).replies.has_value());
  EXPECT_TRUE(rejected(M(with(hello_fields(), "replies", S("some"))), ErrorCode::invalid_field, "replies"));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "replies", I(1))), ErrorCode::invalid_field, "replies"));
}

TEST(Validation, LoopRateRange) {
  for (double ok : {0.0, 0.5, 1.0})
    EXPECT_EQ(accepted<Snapshot>(M(with(snapshot_fields(), "loop_rate", F64(ok)))).loop_rate, ok);
  for (double bad : {-0.1, 1.0000001, std::nan(""), std::numeric_limits<double>::infinity()})
    EXPECT_TRUE(rejected(M(with(snapshot_fields(), "loop_rate", F64(bad))), ErrorCode::invalid_field, "loop_rate")) << bad;
}

TEST(Validation, NonFiniteLossAndGradNormAreSignalsNotErrors) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double v : {std::nan(""), inf, -inf}) {
    const auto s = accepted<Snapshot>(M(with(with(snapshot_fields(), "loss", F64(v)), "grad_norm", F64(v))));
    EXPECT_EQ(std::isnan(s.loss), std::isnan(v));
    EXPECT_EQ(std::isnan(*s.grad_norm), std::isnan(v));
    if (!std::isnan(v)) {
      EXPECT_EQ(s.loss, v);
    }
  }
  // But a non-finite time, lr or domain weight is an error.
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "time", F64(inf))), ErrorCode::invalid_field, "time"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "lr", F64(std::nan("")))), ErrorCode::invalid_field, "lr"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", M({{"d", M({{"weight", F64(inf)}})}}))),
                       ErrorCode::invalid_field, "domains.d.weight"));
  EXPECT_TRUE(rejected(M(with(burn_fields(), "lr_scale", F64(inf))), ErrorCode::invalid_field, "lr_scale"));
  EXPECT_TRUE(rejected(M(with(burn_fields(), "loss_weights", M({{"c", F64(std::nan(""))}}))),
                       ErrorCode::invalid_field, "loss_weights.c"));
  EXPECT_TRUE(rejected(M(with(ack_fields(), "lr", F64(inf))), ErrorCode::invalid_field, "lr"));
}

TEST(Validation, IntegersAndFloat32AcceptedWhereFloatsAreExpected) {
  const auto s = accepted<Snapshot>(M(with(with(with(snapshot_fields(), "loss", I(3)), "time", I(-2)),
                                           "grad_norm", F32(0.5f))));
  EXPECT_EQ(s.loss, 3.0);
  EXPECT_EQ(s.time, -2.0);
  EXPECT_EQ(s.grad_norm, 0.5);
}

TEST(Validation, SpectraFromBinAndFromArrays) {
  const std::vector<float> values{3.0f, 1.5f, 0.25f, -1.0f, 0.0f};
  const auto from_bin = accepted<Snapshot>(M(with(snapshot_fields(), "spectra", M({{"s", Bin(floats_le(values))}}))));
  const auto from_floats = accepted<Snapshot>(M(with(snapshot_fields(), "spectra",
      M({{"s", A({F64(3.0), F32(1.5f), F64(0.25), I(-1), I(0)})}}))));
  EXPECT_EQ(from_bin.spectra.at("s"), values);
  EXPECT_EQ(from_floats.spectra.at("s"), values);
  EXPECT_EQ(encode(from_bin), encode(from_floats));
  // A float64 that float32 cannot hold is rounded to the nearest float32.
  const auto rounded = accepted<Snapshot>(M(with(snapshot_fields(), "spectra", M({{"s", A({F64(0.1)})}}))));
  EXPECT_EQ(rounded.spectra.at("s"), std::vector<float>{0.1f});
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "spectra", M({{"s", Bin("abcde")}}))), ErrorCode::invalid_field, "spectra.s"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "spectra", M({{"s", A({kNil})}}))), ErrorCode::invalid_field, "spectra.s"));
}

TEST(Validation, SpectrumLengthLimit) {
  DecodeLimits limits;
  limits.max_spectrum_length = 4;
  const auto spectra = [](std::size_t n, bool bin) {
    std::vector<std::string> items(n, F64(1.0));
    return M(with(snapshot_fields(), "spectra",
                  M({{"s", bin ? Bin(floats_le(std::vector<float>(n, 1.0f))) : A(items)}})));
  };
  accepted<Snapshot>(spectra(4, true), limits);
  accepted<Snapshot>(spectra(4, false), limits);
  EXPECT_TRUE(rejected(spectra(5, true), ErrorCode::too_large, "spectra.s", limits));
  // An array over the limit is refused while parsing, before a field name is known.
  const DecodeResult r = decode(spectra(2000, false), limits);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error.code, ErrorCode::too_large);
  // Default limit: 131072 values.
  accepted<Snapshot>(spectra(131072, true));
  EXPECT_TRUE(rejected(spectra(131073, true), ErrorCode::too_large, "spectra.s"));
}

TEST(Validation, CountLimits) {
  DecodeLimits limits;
  limits.max_spectra = 2;
  limits.max_domains = 2;
  limits.max_scalars = 2;
  auto map_of = [](std::size_t n, const std::string& value) {
    Pairs p;
    for (std::size_t i = 0; i < n; ++i) p.emplace_back("k" + std::to_string(i), value);
    return M(p);
  };
  accepted<Snapshot>(M(with(snapshot_fields(), "spectra", map_of(2, Bin("")))), limits);
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "spectra", map_of(3, Bin("")))), ErrorCode::too_large, "spectra", limits));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", map_of(3, M({})))), ErrorCode::too_large, "domains", limits));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", map_of(3, F64(1)))), ErrorCode::too_large, "scalars", limits));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "domains", A({S("a"), S("b"), S("c")}))), ErrorCode::too_large, "domains", limits));
}

TEST(Validation, StateCarriesMoreMetricsThanAScalarMap) {
  // 64 spectra x 5 metrics exceed max_scalars; state and telemetry allow 8x.
  auto metrics = [](std::size_t n) {
    Pairs p;
    for (std::size_t i = 0; i < n; ++i) p.emplace_back("m" + std::to_string(i), F64(1));
    return M(p);
  };
  const Pairs state{{"v", I(1)}, {"type", S("state")}, {"run", S("r")}, {"rank", I(0)},
                    {"step", I(1)}, {"state", S("MONITOR")}, {"basin", S("UNKNOWN")}};
  EXPECT_EQ(accepted<State>(M(with(state, "metrics", metrics(2048)))).metrics.size(), 2048u);
  DecodeLimits limits;
  limits.max_scalars = 4;
  accepted<State>(M(with(state, "metrics", metrics(32))), limits);
  EXPECT_TRUE(rejected(M(with(state, "metrics", metrics(33))), ErrorCode::too_large, "metrics", limits));
}

TEST(Validation, MapKeyNames) {
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", M({{"", F64(1)}}))), ErrorCode::invalid_field, "scalars"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", M({{std::string(129, 'k'), F64(1)}}))), ErrorCode::invalid_field, "scalars"));
  accepted<Snapshot>(M(with(snapshot_fields(), "scalars", M({{std::string(128, 'k'), F64(1)}}))));
  EXPECT_TRUE(rejected(M(with(hello_fields(), "domains", A({S("")}))), ErrorCode::invalid_field, "domains"));
  // Keys must be strings.
  const std::string int_key = "\x81" + I(1) + F64(1.0);
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "scalars", int_key)), ErrorCode::invalid_field, "scalars"));
}

TEST(Validation, DomainStats) {
  const auto s = accepted<Snapshot>(M(with(snapshot_fields(), "domains",
      M({{"a", M({{"loss", F64(std::nan(""))}, {"weight", F64(0.0)}})}, {"b", M({})}}))));
  EXPECT_TRUE(std::isnan(*s.domains.at("a").loss));
  EXPECT_EQ(s.domains.at("a").weight, 0.0);
  EXPECT_FALSE(s.domains.at("b").loss);
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", M({{"a", M({{"weight", F64(-0.1)}})}}))),
                       ErrorCode::invalid_field, "domains.a.weight"));
  EXPECT_TRUE(rejected(M(with(snapshot_fields(), "domains", M({{"a", M({{"loss", S("x")}})}}))),
                       ErrorCode::invalid_field, "domains.a.loss"));
}

TEST(Validation, WelcomeMode) {
  const Pairs welcome{{"v", I(1)}, {"type", S("welcome")}, {"run", S("r")}, {"rank", I(0)},
                      {"session", S("s")}, {"version", I(1)}, {"mode", S("active")}, {"snapshot_every", I(1)}};
  EXPECT_EQ(accepted<Welcome>(M(welcome)).mode, "active");
  EXPECT_EQ(accepted<Welcome>(M(with(welcome, "mode", S("monitor")))).mode, "monitor");
  EXPECT_TRUE(rejected(M(with(welcome, "mode", S("auto"))), ErrorCode::invalid_field, "mode"));
  EXPECT_TRUE(rejected(M(with(welcome, "snapshot_every", I(0))), ErrorCode::invalid_field, "snapshot_every"));
}

TEST(Validation, HeartbeatFieldsAreOptionalButChecked) {
  const auto h = accepted<Heartbeat>(M({{"v", I(1)}, {"type", S("heartbeat")}}));
  EXPECT_FALSE(h.run || h.rank);
  EXPECT_TRUE(rejected(M({{"v", I(1)}, {"type", S("heartbeat")}, {"run", S("a b")}}), ErrorCode::invalid_field, "run"));
  EXPECT_TRUE(rejected(M({{"v", I(1)}, {"type", S("heartbeat")}, {"rank", I(-2)}}), ErrorCode::invalid_field, "rank"));
}

TEST(Validation, ErrorCodes) {
  for (auto code : {ErrorCode::bad_message, ErrorCode::unsupported_version, ErrorCode::unknown_type,
                    ErrorCode::invalid_field, ErrorCode::too_large, ErrorCode::not_registered,
                    ErrorCode::internal}) {
    EXPECT_EQ(error_code_from_string(to_string(code)), code);
    const auto e = accepted<Error>(M({{"v", I(1)}, {"type", S("error")}, {"code", S(to_string(code))}, {"message", S("m")}}));
    EXPECT_EQ(e.code, code);
  }
  EXPECT_FALSE(error_code_from_string("rate_limited"));
  // A code from a newer peer reads as internal.
  EXPECT_EQ(accepted<Error>(M({{"v", I(1)}, {"type", S("error")}, {"code", S("rate_limited")}, {"message", S("m")}})).code,
            ErrorCode::internal);
}

// The decoder never throws and never accepts what it cannot re-encode: mutate valid
// messages at random and check every outcome.
TEST(Validation, MutatedInputNeverThrowsAndAcceptedInputIsStable) {
  std::mt19937_64 rng(20241126);
  const std::vector<std::string> seeds{
      M(snapshot_fields()), M(hello_fields()), M(burn_fields()), M(ack_fields()),
      M(with(snapshot_fields(), "spectra", M({{"a", Bin(floats_le({1, 2, 3}))}, {"b", A({F64(1)})}}))),
      M(with(snapshot_fields(), "domains", M({{"d", M({{"loss", F64(1)}, {"weight", F64(0.5)}})}})))};
  int accepted_count = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % bytes.size();
      switch (rng() % 4) {
        case 0: bytes[at] = static_cast<char>(rng()); break;
        case 1: bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8))); break;
        case 2: bytes.erase(at, 1 + rng() % 3); break;
        default: bytes.insert(at, 1, static_cast<char>(rng())); break;
      }
      if (bytes.empty()) bytes = "\x80";
    }
    DecodeResult r;
    ASSERT_NO_THROW(r = decode(bytes));
    if (!r.ok()) {
      EXPECT_NE(r.error.code, ErrorCode::internal) << r.error.message;
      continue;
    }
    ++accepted_count;
    const std::string once = encode(*r.message);
    const DecodeResult again = decode(once);
    ASSERT_TRUE(again.ok()) << again.error.message;
    EXPECT_EQ(encode(*again.message), once);
  }
  EXPECT_GT(accepted_count, 100);  // the mutations also exercise the accepting paths
}

}  // namespace
}  // namespace orbit
