// SPDX-License-Identifier: Apache-2.0
// Filters that follow a ReplayMemo (replay_memo.hpp) answer exactly as they would
// without it: from the memo while their calls are the recorded ones, by themselves
// from the first call that differs (another input, a reset the recording did not
// have or the other way round, other params), and a Navigator following a memo
// recorded under another config decides bit for bit as one without.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "controllers/cadence_noise.hpp"
#include "controllers/loss_jump_detector.hpp"
#include "controllers/navigator.hpp"
#include "protocol/codec.hpp"
#include "scenario.hpp"

namespace orbit {
namespace {

bool same_bits(const std::optional<double>& a, const std::optional<double>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || std::bit_cast<std::uint64_t>(*a) == std::bit_cast<std::uint64_t>(*b);
}

// ln(loss) of a falling, noisy run logged every `gap` steps, with a spike and a
// cadence change (every step -> every 20) half way.
std::vector<std::pair<std::int64_t, double>> noisy_series(unsigned seed, int n = 300) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 0.02);
  std::vector<std::pair<std::int64_t, double>> out;
  std::int64_t step = 0;
  for (int i = 0; i < n; ++i) {
    step += i < n / 2 ? 1 : 20;
    double x = std::log(3.0 * std::exp(-static_cast<double>(step) / 800.0) + 1.0) + noise(rng);
    if (i == 100 || i == 101) x += 0.8;
    out.emplace_back(step, x);
  }
  return out;
}

struct NoiseAnswer {
  std::optional<double> z, early_z;
  bool restarted = false;
};

NoiseAnswer answer(CadenceNoise& f, std::int64_t step, double x, const CadenceNoiseParams& p) {
  NoiseAnswer a;
  a.z = f.update(step, x, p);
  a.early_z = f.early_z();
  a.restarted = f.restarted();
  return a;
}

void expect_same(const NoiseAnswer& a, const NoiseAnswer& b, int i) {
  EXPECT_TRUE(same_bits(a.z, b.z)) << "call " << i;
  EXPECT_TRUE(same_bits(a.early_z, b.early_z)) << "call " << i;
  EXPECT_EQ(a.restarted, b.restarted) << "call " << i;
}

TEST(ReplayMemo, AFollowerAnswersFromTheMemoWhileItsCallsAreTheRecordedOnes) {
  const auto series = noisy_series(1);
  const CadenceNoiseParams p;
  CadenceNoise::Memo memo;
  CadenceNoise recorder, follower, alone;
  recorder.record_into(&memo);
  follower.follow(&memo);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto [step, x] = series[i];
    const NoiseAnswer r = answer(recorder, step, x, p);
    expect_same(answer(follower, step, x, p), r, static_cast<int>(i));
    expect_same(answer(alone, step, x, p), r, static_cast<int>(i));
  }
  EXPECT_EQ(memo.calls().size(), series.size());
  EXPECT_TRUE(follower.following_memo());
}

// A follower fed another series from call `from` on, or reset at call `reset_at`
// (the recording was not), or with other params: the same answers as a filter
// without a memo fed the same calls, and it leaves the memo at the first difference.
enum class Divergence { input, follower_reset, recording_reset, params };

void check_divergence(Divergence kind, std::size_t at) {
  const auto series = noisy_series(2), other = noisy_series(3);
  const CadenceNoiseParams p;
  CadenceNoiseParams q = p;
  q.clip = 3.0;
  CadenceNoise::Memo memo;
  CadenceNoise recorder;
  recorder.record_into(&memo);
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (kind == Divergence::recording_reset && i == at) recorder.reset();
    answer(recorder, series[i].first, series[i].second, p);
  }
  CadenceNoise follower, alone;
  follower.follow(&memo);
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (kind == Divergence::follower_reset && i == at) {
      follower.reset();
      alone.reset();
    }
    const double x = kind == Divergence::input && i >= at ? other[i].second : series[i].second;
    const CadenceNoiseParams& used = kind == Divergence::params && i >= at ? q : p;
    expect_same(answer(follower, series[i].first, x, used), answer(alone, series[i].first, x, used),
                static_cast<int>(i));
    EXPECT_EQ(follower.following_memo(), i < at) << "call " << i;
  }
}

TEST(ReplayMemo, AFollowerWhoseInputDiffersComputesFromThere) {
  for (std::size_t at : {0u, 1u, 30u, 160u, 299u}) check_divergence(Divergence::input, at);
}

TEST(ReplayMemo, AResetTheRecordingDidNotHaveIsADifference) {
  for (std::size_t at : {1u, 30u, 160u}) check_divergence(Divergence::follower_reset, at);
}

TEST(ReplayMemo, AResetOnlyTheRecordingHadIsADifference) {
  for (std::size_t at : {1u, 30u, 160u}) check_divergence(Divergence::recording_reset, at);
}

TEST(ReplayMemo, OtherParamsAreADifference) {
  for (std::size_t at : {0u, 30u, 160u}) check_divergence(Divergence::params, at);
}

TEST(ReplayMemo, ResetsAtTheSamePlacesKeepTheFollowerOnTheMemo) {
  const auto series = noisy_series(4);
  const CadenceNoiseParams p;
  CadenceNoise::Memo memo;
  CadenceNoise recorder, follower;
  recorder.record_into(&memo);
  follower.follow(&memo);
  for (std::size_t i = 0; i < series.size(); ++i) {
    if (i == 40 || i == 200) {
      recorder.reset();
      follower.reset();
    }
    expect_same(answer(follower, series[i].first, series[i].second, p),
                answer(recorder, series[i].first, series[i].second, p), static_cast<int>(i));
  }
  EXPECT_TRUE(follower.following_memo());
}

TEST(ReplayMemo, TheLossJumpDetectorFollowsItsMemo) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.9, 1.1);
  const LossJumpParams p{
      .ratio = 1.5, .grad_ratio = 4.0, .confirm_steps = 2, .arm_step = 10, .level_window = 5, .grad_window = 20};
  LossJumpDetector::Memo memo;
  LossJumpDetector recorder, follower, alone;
  recorder.record_into(&memo);
  follower.follow(&memo);
  for (int i = 0; i < 200; ++i) {
    const double loss = (i >= 60 && i < 66 ? 3.0 : 1.0) * u(rng);
    const std::optional<double> grad = i % 7 == 0 ? std::nullopt : std::optional<double>(u(rng) * (i == 61 ? 9 : 1));
    recorder.update(i, loss, grad, p);
    // From call 120 on the follower sees other losses: it must leave the memo.
    const double fed = i >= 120 ? 2.0 * loss : loss;
    const LossJumpStatus a = follower.update(i, fed, grad, p), b = alone.update(i, fed, grad, p);
    EXPECT_EQ(a.alarm, b.alarm) << i;
    EXPECT_EQ(a.jump, b.jump) << i;
    EXPECT_EQ(a.held_steps, b.held_steps) << i;
    EXPECT_TRUE(same_bits(a.ratio, b.ratio)) << i;
    EXPECT_TRUE(same_bits(a.floor, b.floor)) << i;
    EXPECT_TRUE(same_bits(a.grad_ratio, b.grad_ratio)) << i;
    EXPECT_EQ(follower.following_memo(), i < 120) << i;
  }
}

// A candidate that only switches early corroboration on must not be answered from a
// memo recorded with it off: the early jump at i 4 alarms only with it on.
TEST(ReplayMemo, TheLossJumpDetectorLeavesItsMemoWhenEarlyCorroborationDiffers) {
  const LossJumpParams off{.ratio = 1.5, .grad_ratio = 4.0, .confirm_steps = 2, .arm_step = 100};
  LossJumpParams on = off;
  on.early_corroborated = true;
  LossJumpDetector::Memo memo;
  LossJumpDetector recorder, follower, alone;
  recorder.record_into(&memo);
  follower.follow(&memo);
  bool alarmed = false;
  for (int i = 0; i < 10; ++i) {
    const double loss = i == 4 ? 8.0 : 1.0;
    const double grad = i == 4 ? 40.0 : 1.0;
    recorder.update(i, loss, grad, off);
    const LossJumpStatus a = follower.update(i, loss, grad, on), b = alone.update(i, loss, grad, on);
    EXPECT_EQ(a.alarm, b.alarm) << i;
    EXPECT_EQ(a.early, b.early) << i;
    alarmed = alarmed || b.alarm;
  }
  EXPECT_TRUE(alarmed);  // the scenario does reach the early alarm
  EXPECT_FALSE(follower.following_memo());
}

// A run with drift, a collapse and a NaN loss that the controller answers with
// rollbacks: the adapter restores (the steps go back) when a burn asks for it, so what
// the Navigator sees depends on its decisions, and those on the config. At i 150 the
// snapshots stop for an hour (the trends start over); at i `reconfigure_at` the
// Navigator gets `reconfigured`.
std::vector<Decision> drive(Navigator& nav, unsigned seed, int reconfigure_at = -1,
                            const NavigatorConfig* reconfigured = nullptr) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::vector<Decision> out;
  std::int64_t step = 0;
  for (int i = 0; i < 900; ++i, ++step) {
    const double x = static_cast<double>(i);
    if (i == reconfigure_at) nav.reconfigure(*reconfigured);
    Snapshot s = test::make_snapshot("memo", step, 3.0 + 0.03 * n01(rng), std::exp(0.1 * n01(rng)));
    if (i >= 150) s.time += 3600.0;
    const double h = 2.9 + 0.04 * n01(rng) - (i > 100 && i < 400 ? 0.005 * (x - 100) : 0.0);
    s.spectra["hidden.0"] = i >= 500 && i < 520 ? test::spectrum_with_dominant(0.92)
                                                : test::spectrum_with_entropy(std::max(h, 0.5));
    if (i % 5 == 0) s.loop_rate = std::clamp(0.05 + (i > 600 ? 0.001 * (x - 600) : 0.0), 0.0, 1.0);
    if (i == 700) s.loss = std::nan("");
    out.push_back(nav.on_snapshot(s));
    if (const auto& b = out.back().burn) {
      Ack ack;
      ack.run = "memo";
      ack.seq = b->seq;
      ack.step = step;
      if (b->rollback_to_step) {
        ack.restored_step = *b->rollback_to_step;
        step = *b->rollback_to_step;
      }
      nav.on_ack(ack);
    }
  }
  return out;
}

void expect_same(const std::vector<Decision>& a, const std::vector<Decision>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].observed_state, b[i].observed_state) << i;
    EXPECT_EQ(a[i].basin, b[i].basin) << i;
    EXPECT_EQ(a[i].events, b[i].events) << i;
    EXPECT_EQ(a[i].metrics, b[i].metrics) << i;
    EXPECT_TRUE(same_bits(a[i].lr_scale, b[i].lr_scale)) << i;
    ASSERT_EQ(a[i].burn.has_value(), b[i].burn.has_value()) << i;
    if (a[i].burn) {
      EXPECT_EQ(encode(*a[i].burn), encode(*b[i].burn)) << i;
    }
  }
}

TEST(ReplayMemo, ANavigatorFollowingAMemoOfAnotherConfigDecidesAsOneWithout) {
  NavigatorConfig recorded_config, other = test::roadmap_bands();
  other.filters.cusum_h = 6.0;
  other.zones.at("loss_z").band = {2.0, 3.0};
  other.filters.cadence_noise.clip = 3.0;     // the noise filters differ too: the memo is left
  NavigatorConfig patient = recorded_config;  // the hour without snapshots restarts no trend
  patient.stale_after_seconds = 1e6;
  const RunInfo info = test::run_info("memo", test::kAllActuators);
  for (const NavigatorConfig& config : {recorded_config, other, test::roadmap_bands(), patient}) {
    NavigatorMemo memo;
    {
      Navigator recorder(recorded_config, info, Mode::active);
      recorder.record_memo(&memo);
      drive(recorder, 7);
    }
    ASSERT_GT(memo.scalars.loss_noise.calls().size(), 500u);
    Navigator follower(config, info, Mode::active), alone(config, info, Mode::active);
    follower.follow_memo(&memo);
    const auto with = drive(follower, 7), without = drive(alone, 7);
    expect_same(with, without);
    // The rollback the run asks for shows: the calls went back at least once.
    EXPECT_GT(alone.rollbacks(), 0);
  }
}

TEST(ReplayMemo, ANavigatorReconfiguredWhileFollowingDecidesAsOneWithout) {
  const NavigatorConfig config = test::roadmap_bands();
  NavigatorConfig wider = config;
  wider.filters.trend_window = 2 * config.filters.trend_window + 1;
  const RunInfo info = test::run_info("memo", test::kAllActuators);
  NavigatorMemo memo;
  {
    Navigator recorder(config, info, Mode::active);
    recorder.record_memo(&memo);
    drive(recorder, 9);
  }
  for (const int at : {5, 200, 450}) {
    Navigator follower(config, info, Mode::active), alone(config, info, Mode::active);
    follower.follow_memo(&memo);
    expect_same(drive(follower, 9, at, &wider), drive(alone, 9, at, &wider));
  }
}

}  // namespace
}  // namespace orbit
