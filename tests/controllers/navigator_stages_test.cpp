// SPDX-License-Identifier: Apache-2.0
// The stages Navigator::decide() is made of, each on its own: signals (scalars,
// collapse signature), zones and health, basin pressure, and what is worth a burn.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "controllers/basin_classifier.hpp"
#include "controllers/burn_changes.hpp"
#include "controllers/collapse_signature.hpp"
#include "controllers/early_corroboration.hpp"
#include "controllers/scalar_signals.hpp"
#include "controllers/zoned_metrics.hpp"

namespace orbit {
namespace {

constexpr auto kEntropy = static_cast<std::size_t>(zone_metric_index("entropy"));
constexpr auto kDominant = static_cast<std::size_t>(zone_metric_index("dominant_ratio"));
constexpr auto kLossZ = static_cast<std::size_t>(zone_metric_index("loss_z"));
constexpr auto kLoopRate = static_cast<std::size_t>(zone_metric_index("loop_rate"));

const Finding* find_key(const std::vector<Finding>& findings, const std::string& key) {
  for (const auto& f : findings) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

PerZoneMetric<ZoneConfig> zone_config(const NavigatorConfig& cfg) {
  PerZoneMetric<ZoneConfig> out;
  for (const auto& [name, zone] : cfg.zones) {
    if (const int i = zone_metric_index(name); i >= 0) out[static_cast<std::size_t>(i)] = zone;
  }
  return out;
}

// ---- signals: scalars

TEST(ScalarSignals, NonFiniteLossAndGradNormAreCriticalFindings) {
  ScalarSignals signals;
  std::vector<Finding> findings;
  const auto r = signals.update(1, std::nan(""), std::numeric_limits<double>::infinity(), 1, FilterConfig{}, nullptr,
                                findings);
  EXPECT_TRUE(r.nonfinite);
  ASSERT_NE(find_key(findings, "loss_nonfinite"), nullptr);
  EXPECT_EQ(find_key(findings, "loss_nonfinite")->reason, "loss is NaN");
  ASSERT_NE(find_key(findings, "grad_norm_nonfinite"), nullptr);
  EXPECT_EQ(find_key(findings, "grad_norm_nonfinite")->severity, Severity::critical);
  EXPECT_EQ(find_key(findings, "grad_norm_nonfinite")->reason, "grad norm is +inf");
}

TEST(ScalarSignals, ASpikeHoldsOnlyOnceItCoversTheConfirmationSteps) {
  const FilterConfig fc;  // spike_confirm_steps = 2
  auto warm = [&](ScalarSignals& s) {
    std::vector<Finding> ignored;
    for (int i = 0; i < 40; ++i) s.update(i, 2.0 + 0.01 * (i % 3), 1.0, 1, fc, nullptr, ignored);
  };
  MetricSink metrics;
  std::vector<Finding> findings;
  ScalarSignals per_step;
  warm(per_step);
  const auto r = per_step.update(40, 5.0, 1.0, 1, fc, &metrics, findings);
  ASSERT_TRUE(r.loss_z);
  EXPECT_GT(*r.loss_z, 6.0);
  EXPECT_EQ(metrics.at("loss_z"), *r.loss_z);
  // Held is the smallest z over the last 2 steps: the calm step before speaks.
  ASSERT_TRUE(per_step.held_loss_z(fc.spike_confirm_steps));
  EXPECT_LT(*per_step.held_loss_z(fc.spike_confirm_steps), 3.0) << "one step of a per-step cadence is not enough";

  ScalarSignals coarse;  // the same spike in a snapshot that stands for 10 steps
  warm(coarse);
  coarse.update(40, 5.0, 1.0, 10, fc, nullptr, findings);
  ASSERT_TRUE(coarse.held_loss_z(fc.spike_confirm_steps));
  EXPECT_GT(*coarse.held_loss_z(fc.spike_confirm_steps), 6.0);

  coarse.reset();
  EXPECT_FALSE(coarse.held_loss_z(fc.spike_confirm_steps));
  const auto after = coarse.update(41, 5.0, 1.0, 1, fc, nullptr, findings);
  EXPECT_FALSE(after.loss_z) << "statistics warm up again after a reset";
}

TEST(ScalarSignals, ASpikeMustBeMaterialAsWellAsUnusual) {
  // A very smooth run logged every 100 steps (the held-out AlgoPerf librispeech
  // conformer's 0.3% noise): a 4% one-snapshot blip stands far out in noise units,
  // but under the 1% spike floor it stays below the danger line; a 10% rise does not.
  auto held_z_after_rise = [](double rise, double spike_floor) {
    FilterConfig fc;
    fc.loss_spike_min_sd_rel = spike_floor;
    ScalarSignals s;
    std::vector<Finding> findings;
    std::int64_t step = 0;
    for (int i = 0; i < 60; ++i, step += 100) s.update(step, 5.45 * (1.0 + 0.001 * (i % 3)), 1.0, 100, fc, nullptr, findings);
    s.update(step, 5.45 * (1.0 + rise), 1.0, 100, fc, nullptr, findings);
    return s.held_loss_z(fc.spike_confirm_steps).value_or(0.0);
  };
  EXPECT_LT(held_z_after_rise(0.04, 0.01), 6.0);
  EXPECT_GT(held_z_after_rise(0.04, 0.005), 6.0) << "the spike floor, not the noise, keeps the blip out";
  EXPECT_GT(held_z_after_rise(0.10, 0.01), 6.0);

  // Per step, persistence is the evidence: a 5% rise held 2 steps keeps the finer floor.
  FilterConfig fc;
  ScalarSignals per_step;
  std::vector<Finding> findings;
  for (int i = 0; i < 60; ++i) per_step.update(i, 5.45 * (1.0 + 0.001 * (i % 3)), 1.0, 1, fc, nullptr, findings);
  per_step.update(60, 5.45 * 1.05, 1.0, 1, fc, nullptr, findings);
  per_step.update(61, 5.45 * 1.05, 1.0, 1, fc, nullptr, findings);
  EXPECT_GT(per_step.held_loss_z(fc.spike_confirm_steps).value_or(0.0), 6.0);
}

TEST(ScalarSignals, ACusumAlarmLowersHealthThroughItsMargin) {
  FilterConfig fc;
  ScalarSignals signals;
  std::vector<Finding> findings;
  for (int i = 0; i < 30; ++i) signals.update(i, 2.0 + 0.01 * (i % 3), 1.0, 1, fc, nullptr, findings);
  const NavigatorConfig cfg;
  EXPECT_TRUE(signals.alarm_margins(zone_config(cfg), fc, std::nullopt).empty());
  // A steady creep upward: each loss a little above the last.
  for (int i = 30; i < 80 && !find_key(findings, "loss_cusum"); ++i) {
    signals.update(i, 2.0 + 0.02 * (i - 30), 1.0, 1, fc, nullptr, findings);
  }
  ASSERT_NE(find_key(findings, "loss_cusum"), nullptr);
  EXPECT_EQ(find_key(findings, "loss_cusum")->severity, Severity::warning);
  const auto margins = signals.alarm_margins(zone_config(cfg), fc, std::nullopt);
  ASSERT_EQ(margins.size(), 1u);
  EXPECT_LE(margins[0], 1.0);
  EXPECT_GE(margins[0], -1.0);
}

// ---- signals: the collapse signature

TEST(CollapseSignature, SightingNamesTheSpectrumAndTheLine) {
  SignalConfig sc;
  SpectralMetrics m;
  m.valid = true;
  m.dominant_ratio = 0.95;
  m.effective_rank = 10.0;
  EXPECT_EQ(CollapseSignature::sighting("hidden.3", m, sc), "hidden.3 dominant ratio 0.95 > 0.9");
  m.dominant_ratio = 0.5;
  m.effective_rank = 1.5;
  EXPECT_EQ(CollapseSignature::sighting("hidden.3", m, sc), "hidden.3 effective rank 1.5 < 2.2");
  m.effective_rank = 5.0;
  EXPECT_FALSE(CollapseSignature::sighting("hidden.3", m, sc));
}

TEST(CollapseSignature, EarlySightingsMustHoldLaterOnesCountAtOnce) {
  SignalConfig sc;  // early below step 150, hold 20 steps
  CollapseSignature sig;
  std::vector<Finding> findings;
  MetricSink metrics;
  auto r = sig.update(10, true, "hidden.0 x", sc, &metrics, findings);
  EXPECT_FALSE(r.confirmed);
  EXPECT_EQ(metrics.at("signature_held_steps"), 0.0);
  r = sig.update(20, true, "hidden.0 x", sc, &metrics, findings);
  EXPECT_FALSE(r.confirmed);
  EXPECT_EQ(metrics.at("signature_held_steps"), 10.0);
  EXPECT_TRUE(findings.empty());
  r = sig.update(30, true, "hidden.0 x", sc, nullptr, findings);
  EXPECT_TRUE(r.confirmed);
  ASSERT_EQ(findings.size(), 1u);
  EXPECT_EQ(findings[0].reason, "collapse signature: hidden.0 x (held 20 steps)");
  EXPECT_EQ(sig.since(), 10);

  // A probe without the signature breaks the run; a step that went back restarts it.
  sig.update(31, true, std::nullopt, sc, nullptr, findings);
  EXPECT_FALSE(sig.since());
  findings.clear();
  r = sig.update(200, true, "hidden.0 y", sc, nullptr, findings);
  EXPECT_TRUE(r.confirmed) << "past the early phase one sighting counts";
  EXPECT_EQ(findings.at(0).reason, "collapse signature: hidden.0 y");
  sig.update(100, false, std::nullopt, sc, nullptr, findings);
  EXPECT_FALSE(sig.since()) << "the step went back";
}

TEST(EarlyCorroboration, AFallingLossContradictsAnEarlyAlarmAStalledOneOrAttnGrowthCorroborates) {
  const EarlyCorroborationConfig cfg;  // 3 % over 20 steps
  EarlyCorroboration falling, flat, attn;
  for (int step = 0; step <= 40; ++step) {
    const double level = 3.4 - 0.01 * step;  // 3.2 -> 3.0 over steps 20-40: 6.25 %
    falling.update(step, level, std::nullopt, cfg);
    flat.update(step, 3.4 - 0.001 * step, std::nullopt, cfg);  // 0.7 %
    attn.update(step, level, step % 10 == 0 ? std::optional<bool>(step >= 30) : std::nullopt, cfg);
    if (step < 20) {
      EXPECT_FALSE(falling.loss_fall()) << step;
      EXPECT_TRUE(falling.corroborated(cfg)) << "no reference yet: " << step;
    }
  }
  ASSERT_TRUE(falling.loss_fall());
  EXPECT_NEAR(*falling.loss_fall(), 1.0 - 3.0 / 3.2, 1e-12);
  EXPECT_FALSE(falling.corroborated(cfg));
  EXPECT_TRUE(flat.corroborated(cfg));
  EXPECT_TRUE(attn.corroborated(cfg)) << "attention-logit growth in danger at its last reading";
  EarlyCorroborationConfig off = cfg;
  off.loss_fall = 0.0;
  EXPECT_TRUE(falling.corroborated(off));
  falling.update(5, 3.3, std::nullopt, cfg);  // the step went back: start over
  EXPECT_FALSE(falling.loss_fall());
  EXPECT_TRUE(falling.corroborated(cfg));
}

TEST(CollapseSignature, AnEarlySightingTheRunDoesNotCorroborateWaits) {
  const SignalConfig sc;
  CollapseSignature sig;
  std::vector<Finding> findings;
  sig.update(20, true, "hidden.0 x", sc, nullptr, findings, false);
  auto r = sig.update(40, true, "hidden.0 x", sc, nullptr, findings, false);
  EXPECT_FALSE(r.confirmed);
  EXPECT_TRUE(findings.empty());
  r = sig.update(50, true, "hidden.0 x", sc, nullptr, findings, true);  // the loss stalled
  EXPECT_TRUE(r.confirmed);
  EXPECT_EQ(findings.at(0).reason, "collapse signature: hidden.0 x (held 30 steps)");
  findings.clear();
  r = sig.update(200, true, "hidden.0 x", sc, nullptr, findings, false);
  EXPECT_TRUE(r.confirmed) << "past the early phase the run is not asked";
}

// ---- zones and health

TEST(ZonedMetrics, DangerIsCriticalAndHealthIsTheWorstMargin) {
  NavigatorConfig cfg;
  const auto zc = zone_config(cfg);
  const ZoneBand entropy = cfg.zones.at("entropy").band;
  ZonedMetrics zones(cfg.filters.health_window);
  std::vector<Finding> findings;
  MetricSink metrics;
  PerZoneMetric<double> values;
  values[kEntropy] = entropy.good + 1.0;                        // good
  values[kDominant] = cfg.zones.at("dominant_ratio").band.danger + 0.05;  // raw danger
  const auto r = zones.update(500, values, zc, cfg, {}, false, &metrics, findings);
  EXPECT_EQ(r.now[kEntropy], Zone::good);
  EXPECT_EQ(r.now[kDominant], Zone::danger);
  ASSERT_NE(find_key(findings, "dominant_ratio:danger"), nullptr);
  EXPECT_EQ(find_key(findings, "dominant_ratio:danger")->severity, Severity::critical);
  ASSERT_TRUE(r.health);
  EXPECT_DOUBLE_EQ(*r.health, *r.margins[kDominant]);
  EXPECT_LT(*r.health, 0.0);
  EXPECT_EQ(metrics.at("health"), *r.health);

  // Other alarms' margins weigh in; a non-finite value is health -1.
  values[kDominant] = 0.0;
  const auto calm = zones.update(501, values, zc, cfg, {0.25}, false, nullptr, findings);
  EXPECT_DOUBLE_EQ(*calm.health, 0.25);
  const auto nan = zones.update(502, values, zc, cfg, {}, true, nullptr, findings);
  EXPECT_DOUBLE_EQ(*nan.health, -1.0);
}

TEST(ZonedMetrics, AFallingTrendForecastsDangerBeforeItIsThere) {
  NavigatorConfig cfg;
  const auto zc = zone_config(cfg);
  const ZoneBand band = cfg.zones.at("entropy").band;
  ZonedMetrics zones(cfg.filters.health_window);
  std::vector<Finding> findings;
  ZoneReading r;
  const double slope = (band.good - band.danger) / 150.0;  // reaches danger well within the horizon
  for (std::int64_t s = 1000; s < 1000 + cfg.filters.trend_window + 5; ++s) {
    PerZoneMetric<double> values;
    values[kEntropy] = band.good + 0.5 * (band.good - band.danger) - slope * static_cast<double>(s - 1000);
    findings.clear();
    r = zones.update(s, values, zc, cfg, {}, false, nullptr, findings);
  }
  EXPECT_EQ(r.now[kEntropy], Zone::good);
  EXPECT_EQ(r.forecast[kEntropy], Zone::danger);
  ASSERT_NE(find_key(findings, "entropy:drift"), nullptr);
  EXPECT_EQ(find_key(findings, "entropy:drift")->severity, Severity::drift);
  EXPECT_LT(r.health_slope, 0.0) << "health falls with the metric";

  zones.reset();
  PerZoneMetric<double> values;
  values[kEntropy] = band.good + 1.0;
  findings.clear();
  r = zones.update(2000, values, zc, cfg, {}, false, nullptr, findings);
  EXPECT_EQ(r.forecast[kEntropy], Zone::good) << "the trend starts over after a reset";
  EXPECT_EQ(r.health_slope, 0.0);
}

TEST(ZonedMetrics, ZScoresAreNotSmoothed) {
  NavigatorConfig cfg;
  const auto zc = zone_config(cfg);
  ZonedMetrics zones(cfg.filters.health_window);
  std::vector<Finding> findings;
  PerZoneMetric<double> values;
  values[kLossZ] = 0.0;
  zones.update(10, values, zc, cfg, {}, false, nullptr, findings);
  values[kLossZ] = cfg.zones.at("loss_z").band.danger + 1.0;
  const auto r = zones.update(11, values, zc, cfg, {}, false, nullptr, findings);
  EXPECT_EQ(r.now[kLossZ], Zone::danger) << "a held z-score speaks at once";
}

// A held loss z between the warning and danger lines warns while it grows; once it
// falls the loss has stopped rising and the statistics are taking in a level it
// stepped to (a new regime): no warning. Past the danger line it is CRITICAL as ever.
TEST(ZonedMetrics, AWarningLossZWarnsWhileItGrowsNotOnceItFalls) {
  NavigatorConfig cfg;
  const auto zc = zone_config(cfg);
  const ZoneBand band = cfg.zones.at("loss_z").band;
  ASSERT_EQ(band.good, 3.0);
  ASSERT_EQ(band.danger, 6.0);
  ZonedMetrics zones(cfg.filters.health_window);
  std::vector<Finding> findings;
  auto held = [&](std::int64_t step, double z) {
    PerZoneMetric<double> values;
    values[kLossZ] = z;
    findings.clear();
    return zones.update(step, values, zc, cfg, {}, false, nullptr, findings);
  };
  held(100, 0.0);
  EXPECT_EQ(held(101, 3.5).now[kLossZ], Zone::warning);
  EXPECT_NE(find_key(findings, "loss_z:warning"), nullptr) << "a rise into the warning zone warns";
  held(102, 4.5);
  EXPECT_NE(find_key(findings, "loss_z:warning"), nullptr) << "still growing";
  // The per-step criteo1tb step at 95 (fresh part): 5.3, then 2.7 (warning by hysteresis).
  held(103, 5.3);
  EXPECT_NE(find_key(findings, "loss_z:warning"), nullptr);
  EXPECT_EQ(held(104, 4.0).now[kLossZ], Zone::warning) << "the zone is still reported";
  EXPECT_EQ(find_key(findings, "loss_z:warning"), nullptr) << "a falling z is a level being taken in";
  held(105, 2.8);
  EXPECT_EQ(find_key(findings, "loss_z:warning"), nullptr);
  held(106, 3.6);
  EXPECT_NE(find_key(findings, "loss_z:warning"), nullptr) << "rising again warns again";
  held(107, 3.2);
  held(108, band.danger + 0.5);
  ASSERT_NE(find_key(findings, "loss_z:danger"), nullptr);
  held(109, band.danger + 0.2);
  ASSERT_NE(find_key(findings, "loss_z:danger"), nullptr) << "danger alarms whether it grows or not";
  // A snapshot without a held z (a break in the confirmation) leaves nothing to compare.
  findings.clear();
  zones.update(110, PerZoneMetric<double>{}, zc, cfg, {}, false, nullptr, findings);
  held(111, 4.0);
  EXPECT_NE(find_key(findings, "loss_z:warning"), nullptr) << "compared with the snapshot just before only";
}

// On a sparse snapshot (one alone spans the confirmation) a loss z in danger is weighed
// by size too: under filters.loss_spike_min_ratio x its level, and with no grad norm
// standing out (ScalarSignals then gives no ratio), it is no spike and raises nothing,
// neither CRITICAL nor a warning; from the ratio on, or without a ratio (per step, or
// the grad norm corroborates), it is CRITICAL at once.
TEST(ZonedMetrics, ASparseLossZInDangerIsCriticalOnlyWhenTheLossRiseIsMaterial) {
  NavigatorConfig cfg;
  ASSERT_EQ(cfg.filters.loss_spike_min_ratio, 1.3);
  const auto zc = zone_config(cfg);
  const double danger = cfg.zones.at("loss_z").band.danger;
  ZonedMetrics zones(cfg.filters.health_window);
  std::vector<Finding> findings;
  auto sparse = [&](std::int64_t step, double z, std::optional<double> ratio) {
    PerZoneMetric<double> values;
    values[kLossZ] = z;
    findings.clear();
    return zones.update(step, values, zc, cfg, {}, false, nullptr, findings, true, ratio);
  };
  sparse(100, 0.0, 1.0);
  // AlgoPerf deepspeech jax caspr trial 1 (fresh4, healthy) at 25800: z 6.1, 1.15x.
  const ZoneReading outlier = sparse(200, danger + 1.0, 1.15);
  EXPECT_EQ(find_key(findings, "loss_z:danger"), nullptr) << "a 1.15x rise is no spike however many noise units";
  EXPECT_EQ(find_key(findings, "loss_z:warning"), nullptr) << "and not a warning either";
  EXPECT_EQ(outlier.now[kLossZ], Zone::warning);
  ASSERT_TRUE(outlier.margins[kLossZ]);
  EXPECT_GE(*outlier.margins[kLossZ], 0.0) << "health does not read it as danger";
  sparse(300, 0.0, 1.0);
  sparse(400, danger + 1.0, 1.3);
  EXPECT_NE(find_key(findings, "loss_z:danger"), nullptr) << "from the ratio on it is a spike";
  sparse(500, 0.0, 1.0);
  sparse(600, danger + 1.0, std::nullopt);
  EXPECT_NE(find_key(findings, "loss_z:danger"), nullptr) << "no ratio (per step, or grad norm corroborated)";
  cfg.filters.loss_spike_min_ratio = 1.0;  // off
  sparse(700, 0.0, 1.0);
  sparse(800, danger + 1.0, 1.15);
  EXPECT_NE(find_key(findings, "loss_z:danger"), nullptr) << "1 switches the size check off";
}

// Loop-rate readings come one sampled generation at a time (every 200 steps in the
// efficacy suite), most snapshots carry none: a single reading past the danger
// line is a warning, the second in a row is CRITICAL, a good one in between
// starts the count over.
TEST(ZonedMetrics, ALoopRateInDangerCountsOnlyOnceItHeldOnConsecutiveReadings) {
  NavigatorConfig cfg;
  ASSERT_EQ(cfg.signals.loop_rate_confirm_readings, 2);
  const auto zc = zone_config(cfg);
  const ZoneBand band = cfg.zones.at("loop_rate").band;
  ZonedMetrics zones(cfg.filters.health_window);
  std::vector<Finding> findings;
  auto read = [&](std::int64_t step, std::optional<double> loop) {
    PerZoneMetric<double> values;
    if (loop) values[kLoopRate] = *loop;
    findings.clear();
    return zones.update(step, values, zc, cfg, {}, false, nullptr, findings);
  };
  read(200, 0.1);
  auto r = read(400, band.danger + 0.01);  // healthy H seed 5002 read 0.508 once at step 600
  EXPECT_EQ(r.now[kLoopRate], Zone::warning);
  EXPECT_EQ(find_key(findings, "loop_rate:danger"), nullptr);
  ASSERT_NE(find_key(findings, "loop_rate:warning"), nullptr);
  EXPECT_EQ(find_key(findings, "loop_rate:warning")->severity, Severity::warning);
  ASSERT_TRUE(r.health);
  EXPECT_GE(*r.health, 0.0);
  r = read(401, std::nullopt);  // snapshots without a reading neither confirm nor clear it
  EXPECT_EQ(find_key(findings, "loop_rate:danger"), nullptr);
  r = read(600, 0.1);
  r = read(800, band.danger + 0.01);
  EXPECT_EQ(find_key(findings, "loop_rate:danger"), nullptr) << "a good reading in between starts over";
  r = read(1000, 0.9);  // a model stuck repeating a phrase: the second reading in a row
  EXPECT_EQ(r.now[kLoopRate], Zone::danger);
  ASSERT_NE(find_key(findings, "loop_rate:danger"), nullptr);
  EXPECT_EQ(find_key(findings, "loop_rate:danger")->severity, Severity::critical);
  EXPECT_LT(*r.health, 0.0);

  // 1: at once, as before.
  cfg.signals.loop_rate_confirm_readings = 1;
  ZonedMetrics at_once(cfg.filters.health_window);
  PerZoneMetric<double> values;
  values[kLoopRate] = band.danger + 0.01;
  findings.clear();
  at_once.update(200, values, zc, cfg, {}, false, nullptr, findings);
  ASSERT_NE(find_key(findings, "loop_rate:danger"), nullptr);
}

// ---- basin pressure

TEST(BasinPressure, OneMinusTheMarginOfTheBasinsMetricsClamped) {
  const std::vector<BasinRule> rules = {{Basin::token_collapse, {"entropy", "dominant_ratio"}, Zone::warning},
                                        {Basin::semantic_loop, {"loop_rate"}, Zone::warning}};
  const std::vector<std::vector<int>> idx = {{zone_metric_index("entropy"), zone_metric_index("dominant_ratio")},
                                             {zone_metric_index("loop_rate")}};
  PerZoneMetric<double> margins;
  EXPECT_EQ(basin_pressure(Basin::token_collapse, rules, idx, margins), 0.0);
  margins[kEntropy] = 0.75;
  margins[kDominant] = 0.25;
  margins[static_cast<std::size_t>(zone_metric_index("loop_rate"))] = -3.0;
  EXPECT_DOUBLE_EQ(basin_pressure(Basin::token_collapse, rules, idx, margins), 0.75);
  EXPECT_DOUBLE_EQ(basin_pressure(Basin::semantic_loop, rules, idx, margins), 1.0);
  margins[kDominant] = 1.5;
  EXPECT_DOUBLE_EQ(basin_pressure(Basin::token_collapse, rules, idx, margins), 0.25);
}

// ---- burn: what is worth sending

TEST(BurnChanges, DeadbandsHoldSmallMovesButReturnsLandExactly) {
  const BurnLimits lim;  // lr deadband 5 %, weight deadband 0.005
  ActuatorSettings base;
  base.domain_weights = {{"a", 0.5}, {"b", 0.5}};
  ActuatorSettings applied = base;
  applied.lr_scale = 0.5;
  ActuatorSettings want = applied;

  want.lr_scale = 0.51;  // 2 %: inside the deadband
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).lr);
  want.lr_scale = 0.6;
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).lr);
  applied.lr_scale = 0.99;
  want.lr_scale = 1.0;  // 1 % but back to 1.0
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).lr);
  applied.lr_scale = 0.49;
  want.lr_scale = 0.5;  // 2 % but onto a lowered ceiling
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 0.5).lr);
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).lr);

  applied = base;
  want = base;
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).any_moved());
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).off_default);
  want.domain_weights = {{"a", 0.502}, {"b", 0.498}};
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).domain_weights);
  want.domain_weights = {{"a", 0.6}, {"b", 0.4}};
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).domain_weights);
  applied.domain_weights = {{"a", 0.502}, {"b", 0.498}};
  want.domain_weights = base.domain_weights;  // a tiny move, but home
  const BurnChanges home = burn_changes(want, applied, base, lim, 1.0);
  EXPECT_TRUE(home.domain_weights);
  EXPECT_TRUE(home.off_default);

  applied = base;
  want = base;
  want.curriculum_phase = 1;
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).curriculum_phase);
  want.curriculum_phase.reset();
  want.loss_weights = {{"collapse", 0.1}, {"phi", 0.0}};
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).loss_weights);
}

// Loss weights are rounded to a quantum of 0.005; a pressure wobbling on a
// rounding edge moves them by one quantum every step. That is inside
// limits.loss_weight_deadband (0.0075) and sends nothing; two quanta, the return
// to zero and a changed set of weights are sent.
TEST(BurnChanges, LossWeightsHaveADeadbandButTheReturnToZeroLands) {
  const BurnLimits lim;
  ActuatorSettings base;
  base.loss_weights = {{"collapse", 0.0}, {"phi", 0.0}};
  ActuatorSettings applied = base;
  applied.loss_weights = {{"collapse", 0.05}, {"phi", 0.0}};
  ActuatorSettings want = applied;
  want.loss_weights = {{"collapse", 0.055}, {"phi", 0.0}};  // one quantum up
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).loss_weights);
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).any_moved());
  want.loss_weights = {{"collapse", 0.05}, {"phi", 0.005}};  // one quantum on another weight
  EXPECT_FALSE(burn_changes(want, applied, base, lim, 1.0).loss_weights);
  want.loss_weights = {{"collapse", 0.06}, {"phi", 0.0}};  // two quanta
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).loss_weights);
  applied.loss_weights = {{"collapse", 0.005}, {"phi", 0.0}};
  want.loss_weights = base.loss_weights;  // one quantum, but home
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).loss_weights);
  want.loss_weights = {{"collapse", 0.005}};  // the set changed
  EXPECT_TRUE(burn_changes(want, applied, base, lim, 1.0).loss_weights);
}

}  // namespace
}  // namespace orbit
