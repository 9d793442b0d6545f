// SPDX-License-Identifier: Apache-2.0
// Randomized round trip: random valid messages of every type encode -> decode ->
// encode to the same bytes, and the decoded fields equal the ones sent.

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/codec.hpp"

namespace orbit {
namespace {

class RandomMessages {
 public:
  explicit RandomMessages(std::uint64_t seed) : rng_(seed) {}

  Message next(std::size_t type) {
    switch (type) {
      case 0: return hello();
      case 1: {
        Welcome w{run(), count(), text(40), 1, pick({"active", "monitor"}), 1 + count() % 1000, std::nullopt,
                  std::nullopt};
        if (count() % 2) w.max_message_bytes = 1024 + count();
        if (coin()) w.replies = std::string(kRepliesNews);
        return w;
      }
      case 2: return snapshot();
      case 3: return State{run(), count(), count(), text(12), text(16), numbers(false), std::nullopt};
      case 4: return burn();
      case 5: return Ack{run(), count(), count(), count(), coin(), maybe(finite()), maybe(count())};
      case 6: return Heartbeat{coin() ? std::optional(run()) : std::nullopt, maybe(count())};
      case 7: return Bye{run(), count()};
      case 8: return Error{static_cast<ErrorCode>(rng_() % 7), text(300), coin() ? std::optional(text(20)) : std::nullopt};
      default: return telemetry();
    }
  }

 private:
  bool coin() { return rng_() % 2 == 0; }
  template <class T>
  std::optional<T> maybe(T v) { return coin() ? std::optional<T>(v) : std::nullopt; }
  std::string pick(std::initializer_list<const char*> options) {
    return *(options.begin() + rng_() % options.size());
  }
  // Counters across every integer form: fixint, uint8/16/32/64.
  std::int64_t count() {
    static constexpr std::int64_t bounds[] = {128, 256, 65536, 1ll << 32, std::numeric_limits<std::int64_t>::max()};
    const std::int64_t bound = bounds[rng_() % 5];
    return static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(bound));
  }
  double finite() {
    switch (rng_() % 4) {
      case 0: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
      case 1: return std::ldexp(std::uniform_real_distribution<double>(0.5, 1)(rng_), static_cast<int>(rng_() % 2000) - 1000);
      case 2: return static_cast<double>(rng_() % 100);
      default: return std::uniform_real_distribution<double>(0, 1)(rng_);
    }
  }
  double positive() { return std::ldexp(std::uniform_real_distribution<double>(0.5, 1)(rng_), static_cast<int>(rng_() % 60) - 40); }
  double any() {  // non-finite values too
    switch (rng_() % 8) {
      case 0: return std::numeric_limits<double>::quiet_NaN();
      case 1: return std::numeric_limits<double>::infinity();
      case 2: return -std::numeric_limits<double>::infinity();
      default: return finite();
    }
  }
  std::string run() {
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    std::string s(1 + rng_() % 128, 'x');
    for (char& c : s) c = alphabet[rng_() % (sizeof(alphabet) - 1)];
    return s;
  }
  // Any bytes but NUL-free; names must be 1-128 bytes.
  std::string text(std::size_t max_len) {
    std::string s(rng_() % (max_len + 1), 'x');
    for (char& c : s) c = static_cast<char>(1 + rng_() % 255);
    return s;
  }
  std::string name() {
    std::string s = text(127);
    return s.empty() ? "n" : s;
  }
  std::map<std::string, double> numbers(bool require_finite) {
    std::map<std::string, double> m;
    const std::size_t n = rng_() % 20;  // fixmap and map16
    for (std::size_t i = 0; i < n; ++i) m[name()] = require_finite ? finite() : any();
    return m;
  }
  std::vector<std::string> names(std::size_t max) {
    std::vector<std::string> v(rng_() % (max + 1));
    for (auto& s : v) s = name();
    return v;
  }

  Hello hello() {
    Hello m;
    m.run = run();
    m.world_size = 1 + count() % 100000;
    m.rank = count() % m.world_size;
    m.adapter = text(40);
    m.adapter_version = text(20);
    m.versions = {1};
    if (coin()) m.versions.push_back(2);
    m.domains = names(20);
    for (auto a : kActuators)
      if (coin()) m.actuators.emplace_back(a);
    m.base_lr = maybe(positive());
    if (coin()) m.replies = pick({"every", "news"});
    return m;
  }

  Snapshot snapshot() {
    Snapshot m;
    m.run = run();
    m.rank = count();
    m.step = count();
    m.time = finite();
    m.loss = any();
    m.grad_norm = maybe(any());
    m.lr = maybe(positive());
    m.tokens = maybe(count());
    for (std::size_t i = 0, n = rng_() % 6; i < n; ++i)
      m.domains[name()] = DomainStats{maybe(any()), maybe(positive())};
    for (std::size_t i = 0, n = rng_() % 4; i < n; ++i) {
      // Lengths across bin8, bin16 and bin32.
      static constexpr std::size_t lengths[] = {0, 1, 63, 64, 200, 16384, 20000};
      std::vector<float> values(lengths[rng_() % 7]);
      for (float& v : values) v = static_cast<float>(any());
      m.spectra[name()] = std::move(values);
    }
    m.loop_rate = maybe(std::uniform_real_distribution<double>(0, 1)(rng_));
    m.scalars = numbers(false);
    return m;
  }

  Burn burn() {
    Burn m;
    m.run = run();
    m.seq = count();
    m.state = text(12);
    m.basin = text(16);
    m.reason = text(400);
    m.for_step = count();
    m.apply_at_step = count();
    m.expires_after_steps = count();
    m.lr_scale = positive();
    m.domain_weights = numbers(true);
    m.curriculum_phase = maybe(count());
    m.loss_weights = numbers(true);
    m.rollback_to_step = maybe(count());
    m.skip_batches = maybe(count());
    return m;
  }

  Telemetry telemetry() {
    return Telemetry{run(), count(), count(), finite(), pick({"active", "monitor"}), text(10), text(10), text(10),
                     positive(), numbers(false), maybe(count()), text(100), std::nullopt};
  }

  std::mt19937_64 rng_;
};

// Bitwise float equality: NaN == NaN, -0 != +0.
bool same(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(RoundTrip, RandomMessagesOfEveryType) {
  RandomMessages random(7);
  for (std::size_t type = 0; type < std::variant_size_v<Message>; ++type) {
    for (int i = 0; i < 300; ++i) {
      const Message original = random.next(type);
      const std::string bytes = encode(original);
      const DecodeResult r = decode(bytes);
      ASSERT_TRUE(r.ok()) << type_name(original) << ": " << to_string(r.error.code) << " " << r.error.message;
      ASSERT_EQ(r.message->index(), original.index());
      ASSERT_EQ(encode(*r.message), bytes) << type_name(original) << " #" << i;
    }
  }
}

// Byte equality above implies field equality; spell it out for the richest message.
TEST(RoundTrip, SnapshotFieldsSurvive) {
  RandomMessages random(11);
  for (int i = 0; i < 200; ++i) {
    const auto sent = std::get<Snapshot>(random.next(2));
    const DecodeResult r = decode(encode(sent));
    ASSERT_TRUE(r.ok()) << r.error.message;
    const auto& got = std::get<Snapshot>(*r.message);
    EXPECT_EQ(got.run, sent.run);
    EXPECT_EQ(got.rank, sent.rank);
    EXPECT_EQ(got.step, sent.step);
    EXPECT_TRUE(same(got.time, sent.time));
    EXPECT_TRUE(same(got.loss, sent.loss));
    EXPECT_EQ(got.grad_norm.has_value(), sent.grad_norm.has_value());
    if (sent.grad_norm) {
      EXPECT_TRUE(same(*got.grad_norm, *sent.grad_norm));
    }
    EXPECT_EQ(got.tokens, sent.tokens);
    ASSERT_EQ(got.spectra.size(), sent.spectra.size());
    for (const auto& [name, values] : sent.spectra) {
      const auto& back = got.spectra.at(name);
      ASSERT_EQ(back.size(), values.size());
      EXPECT_EQ(std::memcmp(back.data(), values.data(), values.size() * sizeof(float)), 0);
    }
    ASSERT_EQ(got.domains.size(), sent.domains.size());
    ASSERT_EQ(got.scalars.size(), sent.scalars.size());
    for (const auto& [name, v] : sent.scalars) EXPECT_TRUE(same(got.scalars.at(name), v));
  }
}

}  // namespace
}  // namespace orbit
