// SPDX-License-Identifier: Apache-2.0
// Determinism (bit for bit, through orbit::encode), a property test over random
// inputs, distributed runs (quorum, deadline, stale ranks), ACKs, forced burns.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "controllers/metric_report.hpp"
#include "controllers/navigator.hpp"
#include "protocol/codec.hpp"
#include "scenario.hpp"

namespace orbit {
namespace {

using test::kAllActuators;
using test::make_snapshot;
using test::run_info;
using test::spectrum_with_dominant;
using test::spectrum_with_entropy;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// One mixed, noisy scenario: drift, a collapse, a NaN, loops; acks from an
// adapter that restores on rollbacks.
struct Transcript {
  std::vector<std::string> burns;  // encoded bytes
  std::vector<std::string> states;
  std::vector<std::map<std::string, double>> metrics;
  std::vector<std::vector<std::string>> events;
};

// `report_metrics` off: Decision::metrics left empty. `precomputed`: the spectra's
// metrics handed in (as tune does) instead of computed by the Navigator, with their
// names on every other snapshot. `recycle`:
// each decision's metrics map handed back (Navigator::recycle_metrics, as orbitd does).
// `in_sink`: the metrics read from Navigator::last_metrics() (orbit replay's timeline);
// Decision::metrics must then be empty.
Transcript mixed_run(unsigned seed, bool report_metrics = true, bool precomputed = false, bool recycle = false,
                     bool in_sink = false) {
  NavigatorConfig cfg;
  cfg.basin_map["web"] = {{Basin::semantic_loop}, Verdict::reduce, std::nullopt, ""};
  cfg.basin_map["books"] = {{Basin::creative}, Verdict::increase, std::nullopt, ""};
  Navigator nav(cfg, run_info("det", kAllActuators, {"web", "books", "code"}), Mode::active);
  nav.set_report_metrics(report_metrics);
  nav.set_metrics_in_sink(in_sink);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  Transcript t;
  std::int64_t step = 0;
  for (int i = 0; i < 900; ++i, ++step) {
    const double x = static_cast<double>(i);
    Snapshot s = make_snapshot("det", step, 3.0 + 0.03 * n01(rng), std::exp(0.1 * n01(rng)));
    double h = 2.9 + 0.04 * n01(rng) - (i > 100 && i < 400 ? 0.005 * (x - 100) : 0.0);
    s.spectra["hidden.0"] = i >= 500 && i < 520 ? spectrum_with_dominant(0.92) : spectrum_with_entropy(std::max(h, 0.5));
    if (i % 5 == 0) s.loop_rate = std::clamp(0.05 + (i > 600 ? 0.001 * (x - 600) : 0.0), 0.0, 1.0);
    if (i == 700) s.loss = kNaN;
    s.domains["web"] = {3.1, 0.4};
    s.domains["books"] = {2.9, 0.4};
    s.domains["code"] = {3.0, 0.2};
    if (i % 3 == 0) s.spectra["attn.0"] = spectrum_with_entropy(1.0 + 0.1 * n01(rng));
    std::vector<SpectralMetrics> spectral;
    std::vector<std::string_view> names;  // every other snapshot: the names handed in too (tune)
    for (const auto& [name, values] : s.spectra) {
      spectral.push_back(spectral_metrics(values, cfg.signals.phi_target));
      names.push_back(name);
    }
    Decision d = precomputed ? nav.on_snapshot(s, spectral, i % 2 ? &names : nullptr) : nav.on_snapshot(s);
    if (d.burn) {
      t.burns.push_back(encode(*d.burn));
      Ack ack;
      ack.run = "det";
      ack.seq = d.burn->seq;
      ack.step = step;
      ack.late = i % 7 == 0;
      if (d.burn->rollback_to_step) {
        ack.restored_step = *d.burn->rollback_to_step;
        step = *d.burn->rollback_to_step;
      }
      nav.on_ack(ack);
    }
    t.states.push_back(d.state);
    if (in_sink) {
      EXPECT_TRUE(d.metrics.empty());
      const MetricSink& sink = nav.last_metrics();
      auto& m = t.metrics.emplace_back();
      for (std::size_t k = 0; k < sink.size(); ++k) {
        EXPECT_TRUE(k == 0 || sink.name(k - 1) < sink.name(k)) << "name order";
        m[sink.name(k)] = sink.value(k);
      }
    } else {
      t.metrics.push_back(d.metrics);
    }
    t.events.push_back(d.events);
    if (recycle) nav.recycle_metrics(std::move(d.metrics));
  }
  return t;
}

TEST(Determinism, SameInputTwiceGivesIdenticalBurnsBitForBit) {
  const Transcript a = mixed_run(77);
  const Transcript b = mixed_run(77);
  ASSERT_GT(a.burns.size(), 10u);
  ASSERT_EQ(a.burns.size(), b.burns.size());
  for (std::size_t i = 0; i < a.burns.size(); ++i) EXPECT_EQ(a.burns[i], b.burns[i]) << "burn " << i;
  EXPECT_EQ(a.states, b.states);
  EXPECT_EQ(a.events, b.events);
  ASSERT_EQ(a.metrics.size(), b.metrics.size());
  for (std::size_t i = 0; i < a.metrics.size(); ++i) {
    ASSERT_EQ(a.metrics[i].size(), b.metrics[i].size());
    for (const auto& [k, v] : a.metrics[i]) {
      EXPECT_EQ(std::memcmp(&v, &b.metrics[i].at(k), sizeof v), 0) << k;  // bits, not "near"
    }
  }
  // And the check is not vacuous: different noise gives different burns.
  EXPECT_NE(a.burns, mixed_run(78).burns);
}

// The fast paths decide exactly as the full one: without the metrics map (replay
// without a timeline, tune) and with the spectral metrics computed beforehand.
TEST(Determinism, DecisionsWithoutMetricsAndWithPrecomputedSpectraAreIdentical) {
  const Transcript full = mixed_run(91);
  for (const auto& [report, precomputed] : {std::pair{false, false}, std::pair{true, true}, std::pair{false, true}}) {
    const Transcript fast = mixed_run(91, report, precomputed);
    ASSERT_GT(full.burns.size(), 10u);
    EXPECT_EQ(fast.burns, full.burns) << report << precomputed;
    EXPECT_EQ(fast.states, full.states);
    EXPECT_EQ(fast.events, full.events);
    for (std::size_t i = 0; i < fast.metrics.size(); ++i) {
      if (report) {
        ASSERT_EQ(fast.metrics[i].size(), full.metrics[i].size());
        for (const auto& [k, v] : full.metrics[i]) EXPECT_EQ(std::memcmp(&v, &fast.metrics[i].at(k), sizeof v), 0) << k;
      } else {
        EXPECT_TRUE(fast.metrics[i].empty());
      }
    }
  }
}

// A recycled map's nodes are refilled: metrics that come and go (a spectrum every
// third step, loop_rate every fifth, a NaN loss) must not linger from an earlier decision.
TEST(Determinism, RecycledMetricsMapsGiveTheSameMetricsBitForBit) {
  const Transcript full = mixed_run(93);
  const Transcript recycled = mixed_run(93, true, false, true);
  ASSERT_GT(full.burns.size(), 10u);
  EXPECT_EQ(recycled.burns, full.burns);
  EXPECT_EQ(recycled.states, full.states);
  EXPECT_EQ(recycled.events, full.events);
  ASSERT_EQ(recycled.metrics.size(), full.metrics.size());
  std::size_t sizes_vary = 0;
  for (std::size_t i = 0; i < full.metrics.size(); ++i) {
    sizes_vary += i > 0 && full.metrics[i].size() != full.metrics[i - 1].size();
    ASSERT_EQ(recycled.metrics[i].size(), full.metrics[i].size()) << "decision " << i;
    for (const auto& [k, v] : full.metrics[i]) {
      ASSERT_TRUE(recycled.metrics[i].count(k)) << k;
      EXPECT_EQ(std::memcmp(&v, &recycled.metrics[i].at(k), sizeof v), 0) << k;
    }
  }
  EXPECT_GT(sizes_vary, 100u);  // the metrics present do change from decision to decision
}

// Read from the sink instead of a map (orbit replay's timeline): the same metrics, bit
// for bit, decision by decision, and the same decisions.
TEST(Determinism, MetricsReadFromTheSinkAreTheMapsBitForBit) {
  const Transcript full = mixed_run(95);
  const Transcript sunk = mixed_run(95, true, false, false, true);
  ASSERT_GT(full.burns.size(), 10u);
  EXPECT_EQ(sunk.burns, full.burns);
  EXPECT_EQ(sunk.states, full.states);
  EXPECT_EQ(sunk.events, full.events);
  ASSERT_EQ(sunk.metrics.size(), full.metrics.size());
  for (std::size_t i = 0; i < full.metrics.size(); ++i) {
    ASSERT_EQ(sunk.metrics[i].size(), full.metrics[i].size()) << "decision " << i;
    for (const auto& [k, v] : full.metrics[i]) {
      ASSERT_TRUE(sunk.metrics[i].count(k)) << k;
      EXPECT_EQ(std::memcmp(&v, &sunk.metrics[i].at(k), sizeof v), 0) << k;
    }
  }
}

// MetricSink against plain map writes (m[name] = value, finite values only): names
// that come and go, repeat within a decision, change order, are too long; the map
// handed to finish() empty, recycled from the last decision, or holding other names.
TEST(MetricSink, GivesTheMapPlainWritesGive) {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> pick(0, 11);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<std::string> names;
  for (int i = 0; i < 11; ++i) names.push_back("metric." + std::to_string(i * 7 % 11));
  names.push_back(std::string(kMaxMetricName + 1, 'x'));
  MetricSink sink;
  std::map<std::string, double> recycled;
  std::size_t assigned_in_place = 0;
  for (int decision = 0; decision < 2000; ++decision) {
    sink.begin();
    std::map<std::string, double> want;
    // Most decisions write the same names in the same order; the others vary.
    const bool plain = u(rng) < 0.7;
    const int writes = decision % 50 == 0 ? 0 : plain ? 11 : 3 + pick(rng);
    for (int w = 0; w < writes; ++w) {
      const std::string& name =
          names[plain || u(rng) < 0.8 ? static_cast<std::size_t>(w % 11) : static_cast<std::size_t>(pick(rng))];
      const double x = u(rng);
      const double value = plain ? x : x < 0.1 ? kNaN : x < 0.15 ? kInf : x;
      sink.put(name, value);
      if (std::isfinite(value) && name.size() <= kMaxMetricName) want[name] = value;
    }
    sink.seal();
    ASSERT_EQ(sink.size(), want.size()) << "decision " << decision;
    std::size_t k = 0;
    for (const auto& [name, value] : want) {
      EXPECT_EQ(sink.name(k), name);
      EXPECT_EQ(sink.value(k), value);
      ++k;
    }
    std::map<std::string, double> fresh;
    sink.finish(fresh);
    EXPECT_EQ(fresh, want) << "decision " << decision;
    // The same names as the last decision: the recycled map keeps its nodes.
    const bool same_names = !want.empty() && want.size() == recycled.size() &&
                            std::equal(want.begin(), want.end(), recycled.begin(),
                                       [](const auto& a, const auto& b) { return a.first == b.first; });
    const auto first = recycled.empty() ? nullptr : &*recycled.begin();
    sink.finish(recycled);
    EXPECT_EQ(recycled, want) << "decision " << decision;
    if (same_names) {
      EXPECT_EQ(&*recycled.begin(), first) << "decision " << decision;
      ++assigned_in_place;
    }
    std::map<std::string, double> other{{"zzz", 1.0}};
    sink.finish(other);
    EXPECT_EQ(other, want);
  }
  EXPECT_GT(assigned_in_place, 500u);  // the case is exercised
}

TEST(Determinism, PrecomputedSpectralMetricsAreWhatTheNavigatorReads) {
  // Handed-in metrics are used as given: a collapsed "hidden" spectrum reported for a
  // healthy one moves the run, and a count that does not match is ignored.
  NavigatorConfig cfg;
  Navigator given(cfg, run_info("pre", {"lr"}, {}), Mode::active);
  Navigator ignored(cfg, run_info("pre", {"lr"}, {}), Mode::active);
  const SpectralMetrics collapsed = spectral_metrics(spectrum_with_dominant(0.95), cfg.signals.phi_target);
  std::string given_state, ignored_state;
  for (std::int64_t step = 0; step < 60; ++step) {
    Snapshot s = make_snapshot("pre", step, 3.0, 1.0);
    s.spectra["hidden.0"] = spectrum_with_entropy(3.0);
    given_state = given.on_snapshot(s, {collapsed}).state;
    ignored_state = ignored.on_snapshot(s, {collapsed, collapsed}).state;
  }
  EXPECT_EQ(given_state, "CRITICAL");
  EXPECT_EQ(ignored_state, "STABLE");
}

// Random everything: spectra of random sizes with zeros and non-finite values,
// losses with NaN/inf and spikes, acks (some late), forced burns with wild
// values, mode switches. Every burn must stay inside BurnLimits.
TEST(Properties, NoBurnLeavesItsBoundsUnderRandomInputs) {
  std::size_t burns_seen = 0;
  for (unsigned seed = 1; seed <= 25; ++seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    std::normal_distribution<double> n01(0.0, 1.0);
    NavigatorConfig cfg;
    cfg.limits.lr_scale_min = 0.02 + 0.2 * u01(rng);
    cfg.limits.lr_scale_max = cfg.limits.lr_scale_min + 2.0 * u01(rng);
    cfg.limits.max_lr_change = 1.05 + 2.0 * u01(rng);
    cfg.limits.weight_floor = 0.1 * u01(rng);
    cfg.limits.expiry_steps = 40 + static_cast<std::int64_t>(200 * u01(rng));
    cfg.reweight.rate = u01(rng);
    cfg.basin_map["d0"] = {{Basin::semantic_loop}, Verdict::remove, std::nullopt, ""};
    cfg.basin_map["d1"] = {{Basin::token_collapse}, Verdict::reduce, 0.5, ""};
    cfg.basin_map["d2"] = {{Basin::creative}, Verdict::increase, std::nullopt, ""};
    cfg.curriculum.phases = {{"a", {"d0"}}, {"b", {"d0", "d1"}}};
    cfg.curriculum.advance_after_stable_steps = 30;
    ASSERT_TRUE(cfg.validate().empty());
    const std::vector<std::string> domains = {"d0", "d1", "d2", "d3", "d4"};
    Navigator nav(cfg, run_info("prop", kAllActuators, domains), Mode::active);

    std::optional<Burn> previous;
    std::int64_t seq = 0;
    std::int64_t max_step = -1;
    auto check = [&](const Burn& b, bool forced) {
      ++burns_seen;
      EXPECT_EQ(b.seq, ++seq);
      EXPECT_EQ(b.run, "prop");
      EXPECT_GE(b.lr_scale, cfg.limits.lr_scale_min * (1 - 1e-12));
      EXPECT_LE(b.lr_scale, cfg.limits.lr_scale_max * (1 + 1e-12));
      // Largest change per burn, against what the adapter applies now (the last
      // burn until it expires, then the trainer's own schedule, scale 1); a
      // rollback's cut is exempt (it restarts the run from a checkpoint).
      double applied = 1.0;
      if (previous && max_step < previous->apply_at_step + previous->expires_after_steps) applied = previous->lr_scale;
      const double ratio = std::max(b.lr_scale / applied, applied / b.lr_scale);
      if (applied >= cfg.limits.lr_scale_min && applied <= cfg.limits.lr_scale_max &&
          !(b.rollback_to_step && b.lr_scale < applied)) {
        EXPECT_LE(ratio, cfg.limits.max_lr_change * (1 + 1e-12)) << "seed " << seed << " seq " << b.seq;
      }
      EXPECT_GE(b.apply_at_step, b.for_step);
      EXPECT_GE(b.expires_after_steps, 1);
      EXPECT_LE(b.expires_after_steps, cfg.limits.expiry_steps);
      if (!b.domain_weights.empty()) {
        double sum = 0.0;
        for (const auto& [d, w] : b.domain_weights) {
          EXPECT_GE(w, std::min(cfg.limits.weight_floor, 1.0 / static_cast<double>(b.domain_weights.size())) - 1e-12);
          sum += w;
        }
        EXPECT_NEAR(sum, 1.0, 1e-9);
      }
      for (const auto& [k, w] : b.loss_weights) {
        EXPECT_GE(w, 0.0);
        EXPECT_LE(w, std::max(cfg.loss_weights.collapse_max, cfg.loss_weights.phi_max) + 1e-12);
      }
      if (b.curriculum_phase) {
        EXPECT_GE(*b.curriculum_phase, 0);
        EXPECT_LT(*b.curriculum_phase, 2);
      }
      if (!forced) {
        EXPECT_EQ(b.expires_after_steps, cfg.limits.expiry_steps);
      }
      previous = b;
    };

    for (std::int64_t step = 0; step < 400; ++step) {
      max_step = step;
      double loss = 3.0 + 0.1 * n01(rng);
      const double r = u01(rng);
      if (r < 0.01) loss = kNaN;
      else if (r < 0.02) loss = kInf;
      else if (r < 0.05) loss *= 1.0 + 20.0 * u01(rng);
      Snapshot s = make_snapshot("prop", step, loss, u01(rng) < 0.02 ? kInf : std::exp(2.0 * n01(rng)));
      const int spectra = static_cast<int>(4 * u01(rng));
      for (int k = 0; k < spectra; ++k) {
        std::vector<float> v(1 + static_cast<std::size_t>(100 * u01(rng)));
        for (float& x : v) {
          const double pick = u01(rng);
          x = pick < 0.02 ? std::numeric_limits<float>::quiet_NaN()
              : pick < 0.2 ? 0.0f
                           : static_cast<float>(std::exp(5.0 * n01(rng)));
        }
        s.spectra[(k % 2 ? "hidden." : "attn.") + std::to_string(k)] = std::move(v);
      }
      if (u01(rng) < 0.3) s.loop_rate = u01(rng);
      for (const auto& d : domains) {
        if (u01(rng) < 0.5) s.domains[d] = {3.0 * u01(rng), u01(rng)};
      }
      const Decision d = nav.on_snapshot(s);
      if (d.burn) check(*d.burn, false);
      EXPECT_TRUE(std::isfinite(d.lr_scale));
      for (const auto& [k, v] : d.metrics) EXPECT_TRUE(std::isfinite(v)) << k;
      if (d.burn && u01(rng) < 0.8) {
        Ack ack;
        ack.run = "prop";
        ack.seq = d.burn->seq;
        ack.step = step;
        ack.late = u01(rng) < 0.2;
        nav.on_ack(ack);
      }
      if (u01(rng) < 0.02) {
        Burn wild;
        wild.lr_scale = std::exp(6.0 * n01(rng));
        wild.domain_weights = {{"d0", 5.0 * u01(rng)}, {"d3", 0.0}, {"d4", u01(rng)}};
        wild.loss_weights = {{"collapse", 100.0 * n01(rng)}, {"phi", kNaN}};
        wild.curriculum_phase = static_cast<std::int64_t>(10 * u01(rng));
        wild.expires_after_steps = static_cast<std::int64_t>(1000 * u01(rng));
        if (auto b = nav.force_burn(wild)) check(*b, true);
      }
      if (u01(rng) < 0.01) nav.set_mode(nav.mode() == Mode::active ? Mode::monitor : Mode::active);
    }
  }
  EXPECT_GT(burns_seen, 500u);
}

TEST(Properties, MonitorModeNeverBurnsWhateverComes) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n01(0.0, 1.0);
  Navigator nav(NavigatorConfig{}, run_info("mon", kAllActuators, {"a"}), Mode::monitor);
  for (std::int64_t step = 0; step < 500; ++step) {
    Snapshot s = make_snapshot("mon", step, step % 50 == 0 ? kNaN : 3.0 + n01(rng), std::exp(3.0 * n01(rng)));
    s.spectra["hidden.0"] = spectrum_with_dominant(std::clamp(0.5 + 0.3 * n01(rng), 0.01, 0.99));
    const Decision d = nav.on_snapshot(s);
    EXPECT_FALSE(d.burn);
    EXPECT_EQ(d.state, "MONITOR");
  }
  EXPECT_EQ(nav.last_seq(), 0);
}

// ---------------------------------------------------------------- distributed

Snapshot rank_snapshot(std::int64_t rank, std::int64_t step, double loss = 3.0, double dominant = -1.0) {
  Snapshot s = make_snapshot("dist", step, loss, 1.0, rank);
  s.spectra["hidden.0"] = dominant > 0 ? spectrum_with_dominant(dominant) : spectrum_with_entropy(2.9);
  return s;
}

// These tests collapse a run within its first steps to exercise other rules; the
// early-training hold on spectral alarms (signals.signature_early_steps) is off.
NavigatorConfig acts_at_once() {
  NavigatorConfig cfg;
  cfg.signals.signature_early_steps = 0;
  return cfg;
}

TEST(Distributed, OneDecisionPerStepOnceAllRanksReported) {
  Navigator nav(acts_at_once(), run_info("dist", {"lr"}, {}, 2), Mode::active);
  for (std::int64_t step = 0; step < 50; ++step) {
    const Decision a = nav.on_snapshot(rank_snapshot(0, step));
    EXPECT_FALSE(a.step_closed);
    const Decision b = nav.on_snapshot(rank_snapshot(1, step));
    EXPECT_TRUE(b.step_closed);
  }
  EXPECT_EQ(nav.closed_steps(), 50);
  // A collapse on one rank only: the worst rank's spectrum decides (aggregation
  // worst), one burn for the step, in the decision that closed it.
  const Decision a = nav.on_snapshot(rank_snapshot(0, 50, 3.0, 0.95));
  EXPECT_FALSE(a.burn);
  const Decision b = nav.on_snapshot(rank_snapshot(1, 50));
  EXPECT_TRUE(b.step_closed);
  EXPECT_EQ(b.observed_state, "CRITICAL");
  ASSERT_TRUE(b.burn);
  EXPECT_EQ(b.burn->for_step, 50);
  EXPECT_EQ(b.burn->apply_at_step, 50 + NavigatorConfig{}.limits.apply_lead_steps);
  // A NaN on one rank is the step's loss.
  nav.on_snapshot(rank_snapshot(0, 51, kNaN));
  const Decision c = nav.on_snapshot(rank_snapshot(1, 51));
  bool nan = false;
  for (const auto& e : c.events) nan |= e.find("loss is NaN") != std::string::npos;
  EXPECT_TRUE(nan);
}

TEST(Distributed, StepDeadlineClosesWhenARankLags) {
  Navigator nav(NavigatorConfig{}, run_info("dist", {"lr"}, {}, 2), Mode::active);
  nav.on_snapshot(rank_snapshot(0, 0));
  nav.on_snapshot(rank_snapshot(1, 0));
  EXPECT_FALSE(nav.on_snapshot(rank_snapshot(0, 1)).step_closed);
  EXPECT_FALSE(nav.on_snapshot(rank_snapshot(0, 2)).step_closed);
  const Decision d = nav.on_snapshot(rank_snapshot(0, 3));  // step 1 is now 2 steps behind
  EXPECT_TRUE(d.step_closed);
  EXPECT_EQ(nav.closed_steps(), 2);
  // The laggard's snapshot for a decided step is reported, not acted on.
  const Decision late = nav.on_snapshot(rank_snapshot(1, 1));
  EXPECT_FALSE(late.step_closed);
  bool said = false;
  for (const auto& e : late.events) said |= e.find("came after that step was decided") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(Distributed, SilentRankIsStaleOthersKeepControlAllSilentIsStale) {
  Navigator nav(NavigatorConfig{}, run_info("dist", {"lr"}, {}, 2), Mode::active);
  for (std::int64_t step = 0; step < 5; ++step) {
    nav.on_snapshot(rank_snapshot(0, step));
    nav.on_snapshot(rank_snapshot(1, step));
  }
  nav.on_rank_silent(1, 1000.0);
  const Decision d = nav.on_snapshot(rank_snapshot(0, 5));
  EXPECT_TRUE(d.step_closed);  // rank 0 alone is the quorum of live ranks
  EXPECT_EQ(d.observed_state, "STABLE");
  bool said = false;
  for (const auto& e : d.events) said |= e.find("rank 1 silent") != std::string::npos;
  EXPECT_TRUE(said);
  nav.on_rank_silent(0, 1001.0);
  EXPECT_EQ(nav.state(), OrbitState::stale);
  const Decision back = nav.on_snapshot(rank_snapshot(0, 6));
  EXPECT_NE(back.observed_state, "STALE");
  bool fresh = false;
  for (const auto& e : back.events) fresh |= e.find("STALE -> STABLE") != std::string::npos;
  EXPECT_TRUE(fresh);
  // Snapshot time also makes a rank stale: rank 1 has not reported for 70 s.
  Snapshot far = rank_snapshot(0, 7);
  far.time += 70.0;
  nav.on_snapshot(rank_snapshot(1, 6));
  const Decision e = nav.on_snapshot(far);
  bool stale = false;
  for (const auto& ev : e.events) stale |= ev.find("rank 1 stale") != std::string::npos;
  EXPECT_TRUE(stale);
}

// ---------------------------------------------------------------- ACKs and forced burns

TEST(Acks, LateApplyRaisesTheLeadOncePerBurn) {
  NavigatorConfig cfg = acts_at_once();
  Navigator nav(cfg, run_info("ack", {"lr"}), Mode::active);
  std::int64_t step = 0;
  for (; step < 30; ++step) nav.on_snapshot(rank_snapshot(0, step));
  const Decision d = nav.on_snapshot(rank_snapshot(0, step++, 3.0, 0.95));
  ASSERT_TRUE(d.burn);
  Ack ack;
  ack.run = "ack";
  ack.seq = d.burn->seq;
  ack.late = true;
  nav.on_ack(ack);
  nav.on_ack(ack);  // another rank reporting the same late burn
  EXPECT_EQ(nav.apply_lead_steps(), cfg.limits.apply_lead_steps + 1);
  ack.seq = 99;  // unknown burn: ignored
  nav.on_ack(ack);
  EXPECT_EQ(nav.apply_lead_steps(), cfg.limits.apply_lead_steps + 1);
  const Decision next = nav.on_snapshot(rank_snapshot(0, step, 3.0, 0.95));
  ASSERT_TRUE(next.burn);
  EXPECT_EQ(next.burn->apply_at_step, step + cfg.limits.apply_lead_steps + 1);
}

TEST(ForcedBurn, ClampedToLimitsAndHeldWhileStable) {
  NavigatorConfig cfg;
  Navigator nav(cfg, run_info("force", {"lr", "domain_weights"}, {"a", "b"}), Mode::active);
  for (std::int64_t step = 0; step < 20; ++step) nav.on_snapshot(rank_snapshot(0, step));
  Burn wish;
  wish.run = "ignored";
  wish.lr_scale = 0.01;  // below the slew from 1.0 and below lr_scale_min
  wish.domain_weights = {{"a", 1.0}, {"b", 0.0}};
  wish.rollback_to_step = 3;  // not declared: dropped
  auto b = nav.force_burn(wish);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->run, "force");
  EXPECT_EQ(b->seq, 1);
  EXPECT_EQ(b->lr_scale, 1.0 / cfg.limits.max_lr_change);
  EXPECT_NEAR(b->domain_weights.at("b"), cfg.limits.weight_floor, 1e-12);
  EXPECT_NEAR(b->domain_weights.at("a") + b->domain_weights.at("b"), 1.0, 1e-12);
  EXPECT_FALSE(b->rollback_to_step);
  EXPECT_EQ(b->apply_at_step, 19 + cfg.limits.apply_lead_steps);
  EXPECT_EQ(b->reason, "forced by operator");
  EXPECT_EQ(nav.last_seq(), 1);
  // A calm run leaves the operator's burn alone until it expires ...
  std::int64_t step = 20;
  for (; step < b->apply_at_step + b->expires_after_steps; ++step) {
    const Decision d = nav.on_snapshot(rank_snapshot(0, step));
    EXPECT_FALSE(d.burn) << step;
    EXPECT_EQ(d.lr_scale, 0.5);
  }
  // ... then the adapter is back on its schedule and so is the controller.
  const Decision after = nav.on_snapshot(rank_snapshot(0, step));
  EXPECT_FALSE(after.burn);
  EXPECT_EQ(after.lr_scale, 1.0);
  // Forced burns also work in monitor mode (an operator's explicit request).
  nav.set_mode(Mode::monitor);
  Burn up;
  up.lr_scale = 5.0;
  auto c = nav.force_burn(up);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->lr_scale, cfg.limits.lr_scale_max);
  EXPECT_EQ(c->seq, 2);
}

TEST(Navigator, ReconfigureAndUpdateInfoKeepState) {
  Navigator nav(acts_at_once(), run_info("keep", {"lr"}), Mode::active);
  std::int64_t step = 0;
  for (; step < 40; ++step) nav.on_snapshot(rank_snapshot(0, step));
  nav.on_snapshot(rank_snapshot(0, step++, 3.0, 0.95));
  EXPECT_EQ(nav.state(), OrbitState::critical);
  NavigatorConfig other = acts_at_once();
  other.filters.trend_window = 10;
  other.limits.lr_scale_min = 0.2;
  nav.reconfigure(other);
  EXPECT_EQ(nav.state(), OrbitState::critical);
  EXPECT_EQ(nav.config().limits.lr_scale_min, 0.2);
  nav.update_info(run_info("renamed?", {"lr", "rollback"}, {"x"}, 1));
  EXPECT_EQ(nav.info().run, "keep");  // the run id never changes
  const Decision d = nav.on_snapshot(rank_snapshot(0, step, 3.0, 0.95));
  EXPECT_EQ(d.observed_state, "CRITICAL");
  bool reloaded = false;
  for (const auto& e : d.events) reloaded |= e.find("configuration reloaded") != std::string::npos;
  EXPECT_TRUE(reloaded);
  if (d.burn) {
    EXPECT_GE(d.burn->lr_scale, 0.2);
  }
}

TEST(Navigator, StepGoingBackStartsANewBranch) {
  Navigator nav(NavigatorConfig{}, run_info("branch", {"lr"}), Mode::active);
  for (std::int64_t step = 0; step < 40; ++step) nav.on_snapshot(rank_snapshot(0, step));
  const Decision d = nav.on_snapshot(rank_snapshot(0, 10));  // a resumed job from an old checkpoint
  EXPECT_TRUE(d.step_closed);
  bool said = false;
  for (const auto& e : d.events) said |= e.find("step went back from 39 to 10") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_TRUE(nav.on_snapshot(rank_snapshot(0, 11)).step_closed);
}

}  // namespace
}  // namespace orbit
