// SPDX-License-Identifier: Apache-2.0
// The scalar spike detector's noise model (cadence_noise) and what it changes in
// ScalarSignals: z-scores against the run's own snapshot-to-snapshot noise, a new
// warm-up when the logging cadence changes, and a loss-jump alarm that clears once
// the run settles.
#include <gtest/gtest.h>

#include <array>
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "controllers/cadence_noise.hpp"
#include "controllers/scalar_signals.hpp"
#include "controllers/window_median.hpp"

namespace orbit {
namespace {

// A deterministic wobble of +-amp around `level` (period 4: 0, +, 0, -).
double wobble(int i, double level, double amp) {
  static constexpr double kShape[4] = {0.0, 1.0, 0.0, -1.0};
  return level + amp * kShape[i % 4];
}

TEST(CadenceNoise, AZScoreIsMeasuredAgainstTheRunsOwnNoise) {
  const CadenceNoiseParams p;
  CadenceNoise quiet, noisy;
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(quiet.update(100 * i, wobble(i, 1.0, 0.01), p).has_value(), i > static_cast<int>(p.warmup));
    noisy.update(100 * i, wobble(i, 1.0, 0.3), p);
  }
  // The same step of +0.4 is a spike in the quiet run, routine in the noisy one.
  const auto zq = quiet.update(4000, 1.4, p), zn = noisy.update(4000, 1.4, p);
  ASSERT_TRUE(zq && zn);
  EXPECT_GT(*zq, 10.0);
  EXPECT_LT(*zn, 4.0);
}

TEST(CadenceNoise, ACadenceChangeStartsTheWarmUpAgain) {
  const CadenceNoiseParams p;
  CadenceNoise n;
  std::int64_t step = 0;
  for (int i = 0; i < 30; ++i) n.update(step++, wobble(i, 1.0, 0.01), p);  // per step
  ASSERT_TRUE(n.update(step, 1.0, p));
  step += 500;  // from here every 500 steps (AlgoPerf after its first 100 steps)
  EXPECT_FALSE(n.update(step, 1.3, p)) << "a 500-step move is not judged by per-step noise";
  EXPECT_TRUE(n.restarted());
  for (std::size_t i = 1; i < p.warmup; ++i) {
    step += 500;
    EXPECT_FALSE(n.update(step, wobble(static_cast<int>(i), 1.3, 0.05), p)) << "warming up at the new cadence";
    EXPECT_FALSE(n.restarted());
  }
  step += 500;
  EXPECT_TRUE(n.update(step, 1.3, p));
}

TEST(CadenceNoise, AnEarlyZIsGivenFromEarlyWarmupDifferencesAndIsTheZOnceWarm) {
  const CadenceNoiseParams p;
  CadenceNoise n;
  for (int i = 0; i < 40; ++i) {
    const auto z = n.update(100 * i, wobble(i, 1.0, 0.2), p);  // i values before: i - 1 differences
    EXPECT_EQ(n.early_z().has_value(), i > static_cast<int>(p.early_warmup)) << i;
    if (z) {
      EXPECT_EQ(*z, *n.early_z());
    }
  }
}

// A noisy run logged every 100 steps (AlgoPerf fastMRI: the batch loss wobbles
// 0.21-0.42) reads one 1.55x snapshot 15 snapshots in, while its noise is still
// warming up: it is within the run's routine wobble (~4.5 noise units of its
// differences so far), not a jump. A 3x jump at the same place (~11 units) still
// alarms. With the noise check waiting for the full warm-up, the 1.55x outlier was
// a critical jump. The first difference, the run's descent from 1.0, is ~11 noise
// units: the early noise is their median, which it does not move.
TEST(ScalarSignals, ALossJumpWhileTheNoiseWarmsUpIsJudgedByTheEarlyNoise) {
  const FilterConfig fc;  // jump armed at step 500, warm-up 20 differences, early 5
  auto jump_alarm_at_outlier = [&](double outlier) {
    ScalarSignals s;
    std::vector<Finding> findings;
    std::int64_t step = 0;
    s.update(step, 1.0, 2.0, 100, fc, nullptr, findings);  // the run's first snapshot, before its descent
    for (int i = 1; i < 15; ++i) {
      step += 100;
      const double loss = 0.28 * (1.0 + 0.1 * (wobble(i, 0.0, 1.0)));
      const auto r = s.update(step, loss, 0.2, 100, fc, nullptr, findings);
      EXPECT_FALSE(r.jump && r.jump->alarm) << "the run's wobble at step " << step;
      EXPECT_FALSE(r.loss_z) << "the zones' z still warms up";
    }
    const auto r = s.update(step + 100, 0.28 * outlier, 0.2, 100, fc, nullptr, findings);
    EXPECT_TRUE(r.jump && r.jump->jump) << "over its floor by the ratio";
    return r.jump && r.jump->alarm;
  };
  EXPECT_FALSE(jump_alarm_at_outlier(1.55)) << "a 1.55x snapshot of a run that wobbles +-10 %";
  EXPECT_TRUE(jump_alarm_at_outlier(3.0)) << "a 3x jump stands far outside the same wobble";
}

// Two 3x spikes 400 steps apart in the warm-up (AlgoPerf criteo1tb jax nadamp, 1000
// and 1300): the first entered the differences unclipped, twice (up and down). With
// the 90th percentile of 12 differences as the early noise, those two were the noise
// and the second spike read 2 units; their median keeps it ~10 units out.
TEST(ScalarSignals, ASpikeInTheWarmUpDoesNotHideTheNextOne) {
  const FilterConfig fc;
  ScalarSignals s;
  std::vector<Finding> findings;
  auto jump_alarm = [&](std::int64_t step, double loss) {
    const auto r = s.update(step, loss, 0.2, 100, fc, nullptr, findings);
    return r.jump && r.jump->alarm;
  };
  jump_alarm(0, 1.0);
  for (int i = 1; i < 13; ++i) {
    const bool spike = i == 8 || i == 12;
    const double loss = spike ? 0.28 * 3.0 : 0.28 * (1.0 + 0.1 * (wobble(i, 0.0, 1.0)));
    EXPECT_EQ(jump_alarm(100 * i, loss), spike) << "step " << 100 * i;
  }
}

// A loss that jumps and then stays at its new level (AlgoPerf WMT after a spike):
// the jump alarms, and the alarm clears once the new level is the run's own. With
// the loss jump's running-minimum floor alone it alarmed for as long as the run lasted.
TEST(ScalarSignals, ALossJumpAlarmClearsOnceTheRunSettlesAtItsNewLevel) {
  const FilterConfig fc;
  ScalarSignals s;
  std::vector<Finding> findings;
  std::int64_t step = 0;
  for (int i = 0; i < 60; ++i, step += 100) s.update(step, wobble(i, 3.0, 0.03), 1.0, 100, fc, nullptr, findings);
  findings.clear();
  auto jump_alarm = [&](int i) {
    findings.clear();
    const auto r = s.update(step, wobble(i, 4.8, 0.05), 1.0, 100, fc, nullptr, findings);
    step += 100;
    return r.jump && r.jump->alarm;
  };
  EXPECT_TRUE(jump_alarm(0)) << "1.6x its floor, far outside the run's noise";
  int alarmed = 1;
  for (int i = 1; i < 200 && jump_alarm(i); ++i) ++alarmed;
  // This run's noise is 0.4 %, the jump 110 noise units: the level climbs 4 noise
  // units a snapshot while the noise estimate widens, so clearing takes ~80 snapshots.
  EXPECT_LT(alarmed, 100) << "the alarm must clear once the new level is the run's own";
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(jump_alarm(i)) << "and stay clear";
}

// A run logged every 100 steps (AlgoPerf OGBG) whose grad norm reads 7x for one
// snapshot while its loss does not move: one step's gradient, not a failure. The
// grad norm z counts once it holds spike_confirm_steps snapshots, or at once when
// the loss stands out with it.
TEST(ScalarSignals, AGradNormBurstTheLossDoesNotShowMustHoldSnapshotsNotSteps) {
  const FilterConfig fc;  // spike_confirm_steps 2: one 100-step snapshot spans it
  auto run = [&](int burst_snapshots, double loss_in_burst) {
    ScalarSignals s;
    std::vector<Finding> findings;
    std::int64_t step = 0;
    for (int i = 0; i < 60; ++i, step += 100) {
      s.update(step, wobble(i, 0.045, 0.003), wobble(i + 1, 0.033, 0.002), 100, fc, nullptr, findings);
    }
    std::optional<double> held;
    for (int i = 0; i < burst_snapshots; ++i, step += 100) {
      const auto r = s.update(step, loss_in_burst, 0.033 * 7.0, 100, fc, nullptr, findings);
      EXPECT_TRUE(r.grad_norm_z && *r.grad_norm_z > 6.0) << "a 7x burst is in the grad norm's danger zone";
      held = s.held_grad_norm_z(fc.spike_confirm_steps);
    }
    return held;
  };
  const auto one = run(1, 0.045);  // held over the burst and the calm snapshot before it
  ASSERT_TRUE(one);
  EXPECT_LT(*one, 3.0) << "one snapshot, the loss flat: not held";
  const auto two = run(2, 0.045);
  ASSERT_TRUE(two) << "two snapshots: held";
  EXPECT_GT(*two, 6.0);
  const auto with_loss = run(1, 0.3);
  ASSERT_TRUE(with_loss) << "the loss 7x too: held at once";
  EXPECT_GT(*with_loss, 6.0);
}

// [controller.filters.cadence_noise] reaches the detector: with warmup = 5 the loss
// has a noise z from its 7th snapshot on, with the default 20 not yet.
TEST(ScalarSignals, TheCadenceNoiseComesFromTheFilterConfig) {
  FilterConfig quick;
  quick.cadence_noise.warmup = 5;
  const FilterConfig standard;
  ScalarSignals a, b;
  std::vector<Finding> findings;
  MetricSink sa, sb;
  for (int i = 0; i < 8; ++i) {
    sa.begin();
    sb.begin();
    a.update(i * 100, wobble(i, 3.0, 0.03), 1.0, 100, quick, &sa, findings);
    b.update(i * 100, wobble(i, 3.0, 0.03), 1.0, 100, standard, &sb, findings);
  }
  std::map<std::string, double> ma, mb;
  sa.seal();
  sb.seal();
  sa.finish(ma);
  sb.finish(mb);
  EXPECT_TRUE(ma.count("loss_noise_z"));
  EXPECT_FALSE(mb.count("loss_noise_z"));
}

// The noise model as it was before the sorted window (nth_element on a copy per
// update): the reference the incremental version must match bit for bit.
class ReferenceCadenceNoise {
 public:
  std::optional<double> update(std::int64_t step, double x, const CadenceNoiseParams& p) {
    restarted = false;
    if (!std::isfinite(x)) return std::nullopt;
    if (last_step) {
      const std::int64_t gap = std::max<std::int64_t>(step - *last_step, 1);
      const double change =
          gap_ > 0 ? static_cast<double>(std::max(gap, gap_)) / static_cast<double>(std::min(gap, gap_)) : 1.0;
      if (change > p.cadence_change) {
        diffs.clear();
        restarted = true;
      }
      if (diffs.empty()) gap_ = gap;
    }
    last_step = step;
    std::optional<double> z;
    double accepted = x;
    if (!values.empty()) {
      const double level = median_of(std::vector<double>(
          values.end() - static_cast<std::ptrdiff_t>(std::min(values.size(), p.level_window)), values.end()));
      if (diffs.size() >= p.warmup) {
        const double noise =
            std::max(quantile_of({diffs.begin(), diffs.end()}, 0.9) / (1.6449 * std::sqrt(2.0)), p.min_noise);
        z = (x - level) / noise;
        accepted = level + std::clamp(x - level, -p.clip * noise, p.clip * noise);
      }
      diffs.push_back(std::abs(accepted - values.back()));
      while (diffs.size() > p.noise_window) diffs.pop_front();
    }
    values.push_back(accepted);
    while (values.size() > p.level_window) values.pop_front();
    return z;
  }
  bool restarted = false;

 private:
  static double quantile_of(std::vector<double> v, double q) {
    const auto k = v.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), k, v.end());
    return *k;
  }
  static double median_of(std::vector<double> v) {
    const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    if (v.size() % 2 == 1) return *mid;
    return 0.5 * (*mid + *std::max_element(v.begin(), mid));
  }
  std::deque<double> values, diffs;
  std::optional<std::int64_t> last_step;
  std::int64_t gap_ = 0;
};

bool same_bits(const std::optional<double>& a, const std::optional<double>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || std::memcmp(&*a, &*b, sizeof(double)) == 0;
}

TEST(CadenceNoise, MatchesTheSelectionPerUpdateBitForBit) {
  // Random series with repeated values (ties in the sorted window), spikes, non-finite
  // values, cadence changes and windows that change mid-run (also past 64 values).
  std::mt19937_64 rng(12);
  std::size_t compared = 0;
  for (int series = 0; series < 60; ++series) {
    CadenceNoiseParams p;
    p.level_window = std::uniform_int_distribution<std::size_t>(1, 80)(rng);
    p.noise_window = std::uniform_int_distribution<std::size_t>(1, 60)(rng);
    p.warmup = std::uniform_int_distribution<std::size_t>(1, 25)(rng);
    CadenceNoise fast;
    ReferenceCadenceNoise ref;
    std::int64_t step = 0;
    std::int64_t gap = 1;
    for (int i = 0; i < 800; ++i) {
      if (i % 200 == 199) gap = std::uniform_int_distribution<std::int64_t>(1, 500)(rng);
      if (i % 300 == 150) p.noise_window = std::uniform_int_distribution<std::size_t>(1, 60)(rng);
      if (i % 300 == 250) p.level_window = std::uniform_int_distribution<std::size_t>(1, 80)(rng);
      step += gap;
      const int kind = std::uniform_int_distribution<int>(0, 99)(rng);
      double x = std::round(std::normal_distribution<double>(2.0, 0.05)(rng) * 400.0) / 400.0;  // ties
      if (kind == 0) x = std::nan("");
      if (kind == 1) x += 3.0;  // a spike
      const auto a = fast.update(step, x, p);
      const auto b = ref.update(step, x, p);
      ASSERT_TRUE(same_bits(a, b)) << "series " << series << " update " << i;
      ASSERT_EQ(fast.restarted(), ref.restarted) << "series " << series << " update " << i;
      compared += a.has_value();
    }
  }
  EXPECT_GT(compared, 10000u);
}

// median_of_last sorts small windows by insertion instead of nth_element: the median
// must be nth_element's to the bit for every window length, with ties, infinities,
// signed zeros and NaN among the values.
TEST(WindowMedian, SmallWindowsGiveNthElementsMedianBitForBit) {
  std::mt19937_64 rng(12);
  const double specials[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1.0, 1.0, -2.5};
  for (int trial = 0; trial < 20000; ++trial) {
    RingDeque<double> values;
    // Values pushed and dropped first, so the window wraps around its ring.
    for (std::size_t i = rng() % 64; i > 0; --i) values.push_back(-7.0);
    while (!values.empty()) values.pop_front();
    const std::size_t size = 1 + rng() % 40;
    for (std::size_t i = 0; i < size; ++i) {
      const auto pick = rng() % 20;
      values.push_back(pick < 3 ? specials[rng() % std::size(specials)]
                                : std::ldexp(static_cast<double>(rng() % 2000) - 1000.0, -static_cast<int>(rng() % 8)));
    }
    const std::size_t n = 1 + rng() % size;
    std::vector<double> copy(values.end() - static_cast<std::ptrdiff_t>(n), values.end());
    const double want = detail::median_in_place(copy.begin(), copy.end());
    const double got = median_of_last(values, n);
    std::uint64_t want_bits = 0, got_bits = 0;
    std::memcpy(&want_bits, &want, 8);
    std::memcpy(&got_bits, &got, 8);
    ASSERT_EQ(got_bits, want_bits) << "trial " << trial << " n " << n << ": " << got << " vs " << want;
  }
}

// The level windows' usual length, five, takes a min/max network: every ordering of
// every multiset of five values from five levels (ties included), and random values
// with signed zeros and NaN mixed in, give nth_element's median bit for bit.
TEST(WindowMedian, FiveValueNetworkGivesNthElementsMedianBitForBit) {
  auto check = [](const std::array<double, 5>& v, const char* what) {
    RingDeque<double> values;
    values.push_back(3.0);  // pushed and dropped: the window starts mid-ring
    values.pop_front();
    for (double x : v) values.push_back(x);
    std::vector<double> copy(v.begin(), v.end());
    const double want = detail::median_in_place(copy.begin(), copy.end());
    const double got = median_of_last(values, 5);
    std::uint64_t want_bits = 0, got_bits = 0;
    std::memcpy(&want_bits, &want, 8);
    std::memcpy(&got_bits, &got, 8);
    EXPECT_EQ(got_bits, want_bits) << what << ": " << v[0] << " " << v[1] << " " << v[2] << " " << v[3] << " " << v[4]
                                   << " -> " << got << " vs " << want;
    return got_bits == want_bits;
  };
  const double levels[] = {-1.5, 0.25, 1.0, 2.0, 7.0};
  std::size_t failures = 0;
  for (int code = 0; code < 5 * 5 * 5 * 5 * 5; ++code) {
    std::array<double, 5> v{};
    for (int i = 0, c = code; i < 5; ++i, c /= 5) v[static_cast<std::size_t>(i)] = levels[c % 5];
    failures += !check(v, "levels");
  }
  std::mt19937_64 rng(5);
  const double specials[] = {0.0, -0.0, NAN, INFINITY, -INFINITY};
  for (int trial = 0; trial < 100000; ++trial) {
    std::array<double, 5> v{};
    for (double& x : v) {
      x = rng() % 10 == 0 ? specials[rng() % std::size(specials)]
                          : std::ldexp(static_cast<double>(rng() % 200) - 100.0, -3);
    }
    failures += !check(v, "random");
    if (failures > 10) break;
  }
  EXPECT_EQ(failures, 0u);
}

}  // namespace
}  // namespace orbit
