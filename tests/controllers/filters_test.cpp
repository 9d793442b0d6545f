// SPDX-License-Identifier: Apache-2.0
// Every filter on its own: EWMA, robust statistics, trend + forecast, CUSUM,
// zones with hysteresis, the basin classifier and the orbit state machine.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "controllers/basin_classifier.hpp"
#include "controllers/change_detector.hpp"
#include "controllers/ewma.hpp"
#include "controllers/orbit_state_machine.hpp"
#include "controllers/robust_stats.hpp"
#include "controllers/trend.hpp"
#include "controllers/zones.hpp"

namespace orbit {
namespace {

TEST(Ewma, FirstSampleInitializesThenMovesByAlpha) {
  Ewma e(0.25);
  EXPECT_FALSE(e.initialized());
  EXPECT_EQ(e.update(8.0), 8.0);
  EXPECT_EQ(e.update(0.0), 6.0);
  EXPECT_EQ(e.update(6.0), 6.0);
  EXPECT_EQ(e.count(), 3);
  e.reset();
  EXPECT_EQ(e.update(-1.0), -1.0);
}

TEST(RobustStats, ZScoreOfASpikeAgainstTheStatsBeforeIt) {
  RobustStats s;
  const RobustStatsParams p{0.05, 20, 3.0, 1e-9, 0.0};
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(10.0, 0.5);
  for (int i = 0; i < 200; ++i) s.update(noise(rng), p);
  EXPECT_NEAR(s.mean(), 10.0, 0.3);
  EXPECT_NEAR(s.sd(p), 0.5, 0.2);
  const auto spike = s.update(20.0, p);
  ASSERT_TRUE(spike.ready);
  EXPECT_GT(spike.z, 12.0);
  EXPECT_TRUE(spike.clipped);
  // The spike entered only as 3 sd: the mean moved by at most alpha·3·sd.
  EXPECT_LT(spike.mean, 10.0 + 0.3 + 0.05 * 3.0 * 0.8);
  // And the next normal sample is not hidden by it.
  const auto after = s.update(10.0, p);
  EXPECT_LT(std::abs(after.z), 2.0);
}

TEST(RobustStats, WarmupAndFloorsAndNonFinite) {
  RobustStats s;
  const RobustStatsParams p{0.05, 5, 3.0, 1e-3, 0.01};
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(s.update(100.0, p).ready);  // warmup: 5 absorbed first
  const auto st = s.update(100.0, p);
  EXPECT_TRUE(st.ready);
  EXPECT_EQ(st.z, 0.0);
  EXPECT_NEAR(s.sd(p), 1.0, 1e-12);  // 1% of a flat mean of 100
  const auto big = s.update(103.0, p);
  EXPECT_NEAR(big.z, 3.0, 1e-9);
  const auto before = s.mean();
  s.update(std::numeric_limits<double>::quiet_NaN(), p);
  EXPECT_EQ(s.mean(), before);
}

// RobustStats::update as it was first written (sd() before and after each sample):
// the bits the one-square-root version must keep.
struct ReferenceRobustStats {
  double mean = 0.0, var = 0.0;
  std::int64_t count = 0;
  double sd(const RobustStatsParams& p) const {
    const double floor = std::max(p.min_sd, p.min_sd_rel * std::abs(mean));
    return std::max(std::sqrt(std::max(var, 0.0)), floor);
  }
  RobustStatsStatus update(double x, const RobustStatsParams& p) {
    RobustStatsStatus s;
    if (!std::isfinite(x)) {
      s.ready = count >= p.warmup;
      s.mean = mean;
      return s;
    }
    if (count == 0) {
      mean = x;
      var = 0.0;
      count = 1;
      s.mean = mean;
      return s;
    }
    const double sigma = sd(p);
    const double residual = x - mean;
    s.ready = count >= p.warmup;
    s.residual = residual;
    s.raw_sd = std::sqrt(std::max(var, 0.0));
    if (s.ready) s.z = residual / sigma;
    const double a = std::max(p.alpha, 1.0 / static_cast<double>(count + 1));
    double r = residual;
    if (s.ready && p.clip > 0.0 && std::abs(r) > p.clip * sigma) {
      r = std::copysign(p.clip * sigma, r);
      s.clipped = true;
    }
    mean += a * r;
    var = (1.0 - a) * (var + a * r * r);
    ++count;
    s.mean = mean;
    return s;
  }
};

TEST(RobustStats, UpdateIsTheReferenceBitForBit) {
  std::mt19937_64 rng(21);
  std::normal_distribution<double> noise(0.0, 1.0);
  auto bits = [](double v) { return std::bit_cast<std::uint64_t>(v); };
  for (int series = 0; series < 200; ++series) {
    const RobustStatsParams p{0.01 + 0.2 * static_cast<double>(rng() % 10) / 10.0,
                              static_cast<std::int64_t>(rng() % 30), static_cast<double>(rng() % 5),
                              series % 3 == 0 ? 0.0 : 1e-6, series % 2 == 0 ? 0.0 : 0.01};
    RobustStats fast;
    ReferenceRobustStats ref;
    double level = static_cast<double>(rng() % 100);
    for (int i = 0; i < 500; ++i) {
      double x = level + noise(rng) * (series % 4 == 0 ? 1e-9 : 0.5);
      if (rng() % 50 == 0) x += 20.0;                                     // a spike
      if (rng() % 97 == 0) x = std::numeric_limits<double>::quiet_NaN();  // not absorbed
      if (rng() % 89 == 0) x = level;                                     // flat
      const RobustStatsStatus a = fast.update(x, p), b = ref.update(x, p);
      ASSERT_EQ(bits(a.z), bits(b.z)) << "series " << series << " sample " << i;
      ASSERT_EQ(bits(a.residual), bits(b.residual)) << "series " << series << " sample " << i;
      ASSERT_EQ(bits(a.raw_sd), bits(b.raw_sd)) << "series " << series << " sample " << i;
      ASSERT_EQ(bits(a.mean), bits(b.mean)) << "series " << series << " sample " << i;
      ASSERT_EQ(a.ready, b.ready);
      ASSERT_EQ(a.clipped, b.clipped);
      ASSERT_EQ(bits(fast.sd(p)), bits(ref.sd(p)));
    }
  }
}

TEST(Trend, LeastSquaresSlopeAndForecast) {
  TrendWindow w(10);
  for (int i = 0; i < 30; ++i) w.push(i, 3.0 - 0.01 * i);  // only the last 10 stay
  const TrendFit f = w.fit();
  ASSERT_TRUE(f.valid);
  EXPECT_EQ(f.points, 10u);
  EXPECT_NEAR(f.slope, -0.01, 1e-12);
  EXPECT_NEAR(f.value, 3.0 - 0.29, 1e-12);
  EXPECT_EQ(f.last_x, 29.0);
  EXPECT_NEAR(*f.steps_until(1.5), (2.71 - 1.5) / 0.01, 1e-9);
  EXPECT_FALSE(f.steps_until(5.0));  // moving away from it
  EXPECT_TRUE(f.significant(3.0));   // noiseless: standard error 0
}

TEST(Trend, NoiseIsNotATrend) {
  TrendWindow w(30);
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 0.05);
  int significant = 0;
  for (int i = 0; i < 3000; ++i) {
    w.push(i, 2.8 + noise(rng));
    if (w.size() == 30 && w.fit().significant(3.0)) ++significant;
  }
  EXPECT_LT(significant, 30);  // ~0.3% expected for a 3-sigma test on white noise
}

TEST(Trend, CapacityChangeKeepsNewestPoints) {
  TrendWindow w(5);
  for (int i = 0; i < 5; ++i) w.push(i, i * 2.0);
  w.set_capacity(3);
  EXPECT_EQ(w.size(), 3u);
  EXPECT_EQ(w.fit().last_x, 4.0);
  EXPECT_NEAR(w.fit().slope, 2.0, 1e-12);
  w.set_capacity(8);
  w.push(5, 10.0);
  EXPECT_EQ(w.size(), 4u);
  EXPECT_NEAR(w.fit().slope, 2.0, 1e-12);
  EXPECT_FALSE(TrendWindow(4).fit().valid);
}

// The O(1) fit from running sums against the two-pass fit over the same ring:
// equal to rounding on long noisy, drifting, offset, flat and non-finite
// sequences, through capacity changes and restarts.
TEST(Trend, RunningSumsFitMatchesTheDirectFit) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::uniform_int_distribution<int> coin(0, 999);
  TrendWindow w(30);
  double x = 1000.0;
  double level = 2.5;
  std::size_t compared = 0;
  std::deque<double> live;  // the window's values, for the scale of rounding
  for (int i = 0; i < 20000; ++i) {
    const int c = coin(rng);
    if (c == 0) w.set_capacity(w.capacity() == 30 ? 200 : 30);
    if (c == 1) w.reset();     // (and `live` below)
    if (c == 2) level += 1e4;  // a jump: its points leave the sums with a large residue if unrebuilt
    const int phase = (i / 500) % 4;
    x += phase == 2 ? static_cast<double>(coin(rng) % 7) - 3.0 : 1.0;  // steps may go backwards
    double y = level + 0.001 * x;
    if (phase == 1) y += 0.05 * noise(rng);
    if (phase == 2) y = level;  // flat
    if (phase == 3 && i % 97 == 0) y = std::numeric_limits<double>::quiet_NaN();
    if (phase == 3) y += 1e6;  // a large offset
    w.push(x, y);
    if (c == 1) live.clear();
    live.push_back(y);
    while (live.size() > w.size()) live.pop_front();
    const auto [lo, hi] = std::minmax_element(live.begin(), live.end());
    const TrendFit a = w.fit();
    const TrendFit b = w.fit_direct();
    ASSERT_EQ(a.valid, b.valid) << "push " << i;
    ASSERT_EQ(a.points, b.points) << "push " << i;
    if (!b.valid) continue;
    ++compared;
    // Both fits round at ~1e-16 of the values' spread and size; allow 1e-11.
    const double scale = std::abs(b.value) + (*hi - *lo);
    ASSERT_EQ(a.last_x, b.last_x) << "push " << i;
    ASSERT_NEAR(a.slope, b.slope, 1e-9 * std::abs(b.slope) + 1e-11 * scale) << "push " << i;
    ASSERT_NEAR(a.value, b.value, 1e-11 * scale) << "push " << i;
    // On a noiseless line the standard error is rounding in both fits: ~sqrt(eps) of the slope.
    const double se_tolerance = 1e-6 * b.slope_se + 1e-7 * std::abs(b.slope) + 1e-11 * scale;
    ASSERT_NEAR(a.slope_se, b.slope_se, se_tolerance) << "push " << i;
    if (std::abs(std::abs(b.slope) - 3.0 * b.slope_se) > 3.0 * se_tolerance) {
      ASSERT_EQ(a.significant(3.0), b.significant(3.0)) << "push " << i;
    }
  }
  EXPECT_GT(compared, 15000u);
}

TEST(Cusum, SustainedShiftAlarmsSingleSpikeDoesNot) {
  Cusum c;
  const CusumParams p{1.0, 12.0, 4.0};
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(c.update(i % 2 ? 0.8 : -0.8, p).up);
  EXPECT_FALSE(c.update(50.0, p).up);  // clipped at 4: counts 3
  c.reset();
  int steps = 0;
  while (!c.update(2.5, p).up) ++steps;
  EXPECT_EQ(steps, 8);  // 1.5 per step: passes 12 on the 9th
  EXPECT_EQ(c.status().up_run, 9);
  Cusum down;
  for (int i = 0; i < 10; ++i) down.update(-3.0, p);
  EXPECT_TRUE(down.status().down);
  EXPECT_FALSE(down.status().up);
}

TEST(Zones, ClassifyBothOrientationsAndMargin) {
  const ZoneBand entropy{2.0, 1.5};  // higher is better
  EXPECT_EQ(entropy.classify(2.5), Zone::good);
  EXPECT_EQ(entropy.classify(2.0), Zone::good);
  EXPECT_EQ(entropy.classify(1.7), Zone::warning);
  EXPECT_EQ(entropy.classify(1.5), Zone::danger);
  EXPECT_EQ(entropy.classify(std::nan("")), Zone::danger);
  EXPECT_NEAR(entropy.margin(1.75), 0.5, 1e-12);
  EXPECT_EQ(entropy.margin(9.0), 2.0);
  EXPECT_EQ(entropy.margin(0.0), -1.0);
  EXPECT_EQ(entropy.danger_text(), "< 1.5");
  const ZoneBand dominant{0.4, 0.6};  // lower is better
  EXPECT_EQ(dominant.classify(0.3), Zone::good);
  EXPECT_EQ(dominant.classify(0.5), Zone::warning);
  EXPECT_EQ(dominant.classify(0.61), Zone::danger);
  EXPECT_NEAR(dominant.margin(0.5), 0.5, 1e-12);
  EXPECT_EQ(dominant.danger_text(), "> 0.6");
  EXPECT_EQ(zone_from_string("warning"), Zone::warning);
  EXPECT_FALSE(zone_from_string("bad"));
}

TEST(Zones, TrackerLeavesAWorseZoneOnlyPastTheHysteresis) {
  const ZoneBand band{2.0, 1.5};
  ZoneTracker t;
  EXPECT_EQ(t.update(1.9, band, 0.1), Zone::warning);
  EXPECT_EQ(t.update(2.02, band, 0.1), Zone::warning);  // within 0.05 of the line
  EXPECT_EQ(t.update(2.06, band, 0.1), Zone::good);
  EXPECT_EQ(t.update(1.4, band, 0.1), Zone::danger);
  EXPECT_EQ(t.update(1.53, band, 0.1), Zone::danger);
  EXPECT_EQ(t.update(1.6, band, 0.1), Zone::warning);
  EXPECT_EQ(t.update(1.4, band, 0.1), Zone::danger);
  EXPECT_EQ(t.update(2.04, band, 0.1), Zone::warning);  // far past danger, not past good + pad
}

TEST(BasinClassifier, RulesOverZones) {
  const std::vector<BasinRule> rules = {{Basin::token_collapse, {"dominant_ratio", "entropy"}, Zone::warning},
                                        {Basin::semantic_loop, {"loop_rate"}, Zone::warning}};
  EXPECT_EQ(classify_basin(rules, {}).basin, Basin::unknown);
  EXPECT_EQ(classify_basin(rules, {{"loss_z", Zone::danger}}).basin, Basin::unknown);
  EXPECT_EQ(classify_basin(rules, {{"entropy", Zone::good}}).basin, Basin::creative);
  auto call = classify_basin(rules, {{"entropy", Zone::warning}, {"loop_rate", Zone::danger}});
  EXPECT_EQ(call.basin, Basin::semantic_loop);
  EXPECT_EQ(call.metric, "loop_rate");
  // Ties go to the earlier rule.
  EXPECT_EQ(classify_basin(rules, {{"entropy", Zone::warning}, {"loop_rate", Zone::warning}}).basin,
            Basin::token_collapse);
  const std::vector<BasinRule> strict = {{Basin::semantic_loop, {"loop_rate"}, Zone::danger}};
  EXPECT_EQ(classify_basin(strict, {{"loop_rate", Zone::warning}}).basin, Basin::creative);
  EXPECT_EQ(to_string(Basin::token_collapse), "TOKEN_COLLAPSE");
  EXPECT_EQ(basin_from_string("SEMANTIC_LOOP"), Basin::semantic_loop);
  EXPECT_FALSE(basin_from_string("semantic_loop"));
}

// The Navigator's indexed call (names resolved once per config) agrees with the
// name-keyed one on every combination of zones, unknown rule metrics included.
TEST(BasinClassifier, IndexedZonesAgreeWithNamedZones) {
  const std::vector<BasinRule> rules = {
      {Basin::token_collapse, {"dominant_ratio", "not_a_metric", "entropy"}, Zone::warning},
      {Basin::semantic_loop, {"loop_rate", "loss_z"}, Zone::danger}};
  std::vector<std::vector<int>> indices;
  for (const auto& rule : rules) {
    auto& row = indices.emplace_back();
    for (const auto& m : rule.metrics) row.push_back(zone_metric_index(m));
  }
  EXPECT_EQ(indices[0][1], -1);
  const char* names[] = {"dominant_ratio", "entropy", "loop_rate", "loss_z"};
  std::size_t matched = 0;
  for (int code = 0; code < 256; ++code) {
    std::map<std::string, Zone> named;
    PerZoneMetric<Zone> indexed;
    for (int k = 0, c = code; k < 4; ++k, c /= 4) {
      if (c % 4 == 0) continue;  // no value this step
      const auto zone = static_cast<Zone>(c % 4 - 1);
      named[names[k]] = zone;
      indexed[static_cast<std::size_t>(zone_metric_index(names[k]))] = zone;
    }
    const BasinCall a = classify_basin(rules, named);
    const BasinCall b = classify_basin(rules, indices, indexed);
    EXPECT_EQ(a.basin, b.basin) << code;
    EXPECT_EQ(a.metric, b.metric) << code;
    EXPECT_EQ(a.zone, b.zone) << code;
    matched += !a.metric.empty();
    // Both calls in one pass (the Navigator's): each the indexed call's, with every
    // other combination as the second set of zones.
    PerZoneMetric<Zone> other;
    for (int k = 0, c = 255 - code; k < 4; ++k, c /= 4) {
      if (c % 4 != 0) other[static_cast<std::size_t>(zone_metric_index(names[k]))] = static_cast<Zone>(c % 4 - 1);
    }
    const BasinCall b2 = classify_basin(rules, indices, other);
    BasinCall now, forecast;
    classify_basins(rules, basin_terms(rules, indices), indexed, other, now, forecast);
    EXPECT_EQ(now.basin, b.basin) << code;
    EXPECT_EQ(now.metric, b.metric) << code;
    EXPECT_EQ(now.zone, b.zone) << code;
    EXPECT_EQ(forecast.basin, b2.basin) << code;
    EXPECT_EQ(forecast.metric, b2.metric) << code;
    EXPECT_EQ(forecast.zone, b2.zone) << code;
  }
  EXPECT_GT(matched, 100u);  // the comparison covers matches, not only CREATIVE/UNKNOWN
}

TEST(OrbitStateMachine, ConfirmationDwellAndRecovery) {
  OrbitStateMachine m;
  std::int64_t s = 0;  // one snapshot per training step
  const StateMachineParams p{2, 3, 4};
  EXPECT_FALSE(m.update(++s, Severity::drift, "forecast", p));  // needs 2 in a row
  auto t = m.update(++s, Severity::drift, "forecast", p);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, OrbitState::drifting);
  EXPECT_EQ(t->reason, "forecast");
  EXPECT_FALSE(m.update(++s, Severity::warning, "warn", p));
  EXPECT_EQ(m.update(++s, Severity::warning, "warn", p)->to, OrbitState::warning);
  // CRITICAL at once.
  t = m.update(++s, Severity::critical, "nan", p);
  EXPECT_EQ(t->from, OrbitState::warning);
  EXPECT_EQ(t->to, OrbitState::critical);
  // Down only after min_dwell calm steps.
  EXPECT_FALSE(m.update(++s, Severity::none, "", p));
  EXPECT_FALSE(m.update(++s, Severity::none, "", p));
  t = m.update(++s, Severity::none, "", p);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, OrbitState::recovering);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(m.update(++s, Severity::none, "", p));
  t = m.update(++s, Severity::none, "", p);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, OrbitState::stable);
  EXPECT_FALSE(m.alarmed());
}

TEST(OrbitStateMachine, NoChatterOnAnAlternatingSignal) {
  OrbitStateMachine m;
  std::int64_t s = 0;  // one snapshot per training step
  const StateMachineParams p{2, 10, 20};
  int transitions = 0;
  for (int i = 0; i < 200; ++i) {
    if (m.update(++s, i % 2 ? Severity::warning : Severity::none, "edge", p)) ++transitions;
  }
  EXPECT_EQ(transitions, 0);  // never two warnings in a row
  for (int i = 0; i < 200; ++i) {
    if (m.update(++s, i % 3 ? Severity::warning : Severity::none, "edge", p)) ++transitions;
  }
  EXPECT_EQ(transitions, 1);  // into WARNING, then held: never 10 calm steps
  EXPECT_EQ(m.state(), OrbitState::warning);
}

TEST(OrbitStateMachine, RecoveringBackToWarningAndCriticalToWarning) {
  OrbitStateMachine m;
  std::int64_t s = 0;  // one snapshot per training step
  const StateMachineParams p{1, 2, 5};
  m.update(++s, Severity::critical, "x", p);
  m.update(++s, Severity::warning, "w", p);
  auto t = m.update(++s, Severity::warning, "w", p);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, OrbitState::warning);  // CRITICAL steps down to WARNING when warnings remain
  m.update(++s, Severity::none, "", p);
  EXPECT_EQ(m.update(++s, Severity::none, "", p)->to, OrbitState::recovering);
  EXPECT_EQ(m.update(++s, Severity::warning, "again", p)->to, OrbitState::warning);
}

TEST(OrbitStateMachine, StaleRestoresTheInterruptedState) {
  OrbitStateMachine m;
  std::int64_t s = 0;  // one snapshot per training step
  const StateMachineParams p{1, 2, 5};
  m.update(++s, Severity::warning, "w", p);
  EXPECT_EQ(m.mark_stale("silent")->to, OrbitState::stale);
  EXPECT_FALSE(m.update(++s, Severity::critical, "ignored while stale", p));
  EXPECT_EQ(m.mark_fresh("back")->to, OrbitState::warning);
  EXPECT_EQ(to_string(OrbitState::recovering), "RECOVERING");
  EXPECT_EQ(orbit_state_from_string("MONITOR"), OrbitState::monitor);
}

// The dwell and the recovery period count training steps: a run logged every 500
// steps clears a CRITICAL after one calm snapshot (500 >= min_dwell 10) and is
// STABLE after the next (500 >= recovery 20), not after 10 + 20 snapshots (15,000 steps).
TEST(OrbitStateMachine, DwellAndRecoveryCountTrainingStepsAtASparseCadence) {
  OrbitStateMachine m;
  const StateMachineParams p{2, 10, 20};
  EXPECT_EQ(m.update(1000, Severity::critical, "spike", p)->to, OrbitState::critical);
  auto t = m.update(1500, Severity::none, "", p);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, OrbitState::recovering);
  EXPECT_EQ(t->reason, "calm for 500 steps (no metric in danger)");
  t = m.update(2000, Severity::none, "", p);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, OrbitState::stable);
  // The same at a 5-step cadence: 2 calm snapshots (10 steps) to RECOVERING, 4 (20) to STABLE.
  EXPECT_EQ(m.update(3000, Severity::critical, "spike", p)->to, OrbitState::critical);
  EXPECT_FALSE(m.update(3005, Severity::none, "", p));
  EXPECT_EQ(m.update(3010, Severity::none, "", p)->to, OrbitState::recovering);
  for (std::int64_t s = 3015; s < 3030; s += 5) EXPECT_FALSE(m.update(s, Severity::none, "", p));
  EXPECT_EQ(m.update(3030, Severity::none, "", p)->to, OrbitState::stable);
  // A step that goes back (a rollback's new branch) counts one step, not a negative gap.
  EXPECT_EQ(m.update(3100, Severity::critical, "spike", p)->to, OrbitState::critical);
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(m.update(2000 + i, Severity::none, "", p));
  EXPECT_EQ(m.update(2009, Severity::none, "", p)->to, OrbitState::recovering);
}

}  // namespace
}  // namespace orbit
