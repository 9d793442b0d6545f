// SPDX-License-Identifier: Apache-2.0
// Failure labels and detection, alarm scoring, the two baselines, --set overrides,
// the tune space and snippet.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include <toml++/toml.h>

#include "config/config_error.hpp"
#include "temp_dir.hpp"
#include "tools/config_overrides.hpp"
#include "tools/failures.hpp"
#include "tools/telemetry_view.hpp"
#include "tools/tune.hpp"
#include "tools/tune.hpp"

namespace orbit {
namespace {

using detail::TempDir;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::int64_t> steps_0_to(std::int64_t n) {
  std::vector<std::int64_t> s;
  for (std::int64_t i = 0; i < n; ++i) s.push_back(i);
  return s;
}

TEST(DetectFailures, SpikeAndDivergence) {
  std::vector<LossPoint> p;
  for (int i = 0; i < 50; ++i) p.push_back({i, 3.0 - 0.01 * i});
  p.push_back({50, 7.0});   // spike: > 2 x running min (2.51)
  p.push_back({51, 9.0});   // its peak
  p.push_back({52, 2.6});   // recovered
  for (int i = 53; i < 60; ++i) p.push_back({i, 2.5});
  p.push_back({60, std::numeric_limits<double>::infinity()});
  p.push_back({61, kNaN});
  const auto f = detect_failures(p);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].onset, 50);
  EXPECT_EQ(f[0].peak, 51);
  EXPECT_EQ(f[0].end, 51);
  EXPECT_EQ(f[0].kind, "spike");
  EXPECT_EQ(f[1].onset, 60);
  EXPECT_EQ(f[1].peak, 60) << "the first non-finite loss is the peak";
  EXPECT_EQ(f[1].kind, "divergence");
  // A noisy but healthy run has none.
  std::vector<LossPoint> healthy;
  for (int i = 0; i < 100; ++i) healthy.push_back({i, 3.0 + 0.5 * std::sin(i)});
  EXPECT_TRUE(detect_failures(healthy).empty());
}

TEST(DetectFailures, OneLowOutlierDoesNotMakeOrdinaryLossesFailures) {
  // A noisy per-batch loss around 3 with one batch at 1.2 (as modded-nanogpt 1.5B's
  // healthy trace has): against the raw running minimum every value above 2.4 after it
  // would be a failure.
  std::vector<LossPoint> p;
  for (int i = 0; i < 400; ++i) p.push_back({i, 3.0 + 0.7 * std::sin(0.7 * i)});
  p[100].loss = 1.2;
  EXPECT_TRUE(detect_failures(p).empty());
  DetectOptions raw;
  raw.baseline_window = 1;
  EXPECT_GT(detect_failures(p, raw).size(), 10u) << "the raw minimum is what counted them";
  // A real spike over that noise is still found.
  p[300].loss = 9.0;
  const auto f = detect_failures(p);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].peak, 300);
}

TEST(ScoreAlarms, InTimeLateMissedAndFalse) {
  const auto steps = steps_0_to(200);
  std::vector<std::uint8_t> alarm(200, 0);
  // Failure A peaks at 50: alarm 45-52 (in time, lead 5).
  for (int i = 45; i <= 52; ++i) alarm[i] = 1;
  // Failure B peaks at 100: alarm only at 103 (late by 3).
  alarm[103] = 1;
  // Failure C peaks at 180: nothing.
  // A false alarm at 140-141 (outside every zone with window 10).
  alarm[140] = alarm[141] = 1;
  const std::vector<FailureEvent> failures = {{48, 50, 55, "spike", "", "labels"},
                                              {100, 100, 101, "spike", "", "labels"},
                                              {180, 180, 180, "spike", "", "labels"}};
  const Scoring s = score_alarms(steps, alarm, failures, {.lead_window = 10, .settle = 10});
  ASSERT_EQ(s.detections.size(), 3u);
  EXPECT_EQ(s.detections[0].first_alarm, 45);
  EXPECT_EQ(s.detections[0].lead, 5);
  EXPECT_EQ(s.detections[0].lead_snapshots, 5);
  EXPECT_TRUE(s.detections[0].in_time());
  EXPECT_EQ(s.detections[1].lead, -3);
  EXPECT_FALSE(s.detections[1].in_time());
  EXPECT_FALSE(s.detections[2].first_alarm);
  EXPECT_EQ(s.in_time, 1u);
  EXPECT_EQ(s.late, 1u);
  EXPECT_EQ(s.missed, 1u);
  EXPECT_EQ(s.episodes.size(), 3u);
  EXPECT_EQ(s.false_alarms, 1u);
  EXPECT_TRUE(s.episodes[2].false_alarm);
  EXPECT_EQ(s.alarm_snapshots_outside, 2u);
}

TEST(ScoreAlarms, AnAlarmAlreadyUpDetectsButIsStillFalse) {
  const auto steps = steps_0_to(100);
  std::vector<std::uint8_t> always(100, 1);
  const Scoring s = score_alarms(steps, always, {{80, 80, 80, "spike", "", "labels"}}, {.lead_window = 10, .settle = 5});
  EXPECT_EQ(s.in_time, 1u);
  EXPECT_EQ(s.detections[0].lead, 10) << "counted from the window start, not from step 0";
  EXPECT_EQ(s.false_alarms, 1u) << "raised at step 0 with no failure near";
  EXPECT_EQ(s.alarm_snapshots_outside, 84u) << "steps 0-69 and 86-99";
}

TEST(ScoreAlarms, AnAlarmForOneFailureDoesNotDetectTheNext) {
  const auto steps = steps_0_to(200);
  std::vector<std::uint8_t> alarm(200, 0);
  for (int i = 51; i <= 95; ++i) alarm[i] = 1;   // raised for the failure at 50, up for a long time
  for (int i = 121; i <= 125; ++i) alarm[i] = 1;  // the second failure's own alarm, late
  const std::vector<FailureEvent> failures = {{50, 50, 60, "spike", "", "labels"},
                                              {120, 120, 121, "spike", "", "labels"}};
  const Scoring s = score_alarms(steps, alarm, failures, {.lead_window = 50, .settle = 50});
  EXPECT_EQ(s.detections[0].lead, -1);
  EXPECT_EQ(s.detections[1].first_alarm, 121) << "not 70, the start of the second window";
  EXPECT_EQ(s.detections[1].lead, -1);
  EXPECT_EQ(s.false_alarms, 0u);
}

TEST(ScoreAlarms, AnAlarmBeforeAPeakIsAboutThatPeak) {
  // Failure 1 settles until 47 + 20; failure 2 peaks at 56: an alarm from 49 is about 56.
  const auto steps = steps_0_to(57);
  std::vector<std::uint8_t> alarm(57, 0);
  for (int i = 30; i <= 33; ++i) alarm[i] = 1;
  for (int i = 49; i <= 56; ++i) alarm[i] = 1;
  const std::vector<FailureEvent> failures = {{22, 30, 47, "spikes", "", "labels"},
                                              {48, 56, 56, "divergence", "", "labels"}};
  const Scoring s = score_alarms(steps, alarm, failures, {.lead_window = 20, .settle = 20});
  EXPECT_EQ(s.detections[0].lead, 0);
  EXPECT_EQ(s.detections[1].first_alarm, 49);
  EXPECT_EQ(s.detections[1].lead, 7);
  EXPECT_EQ(s.false_alarms, 0u);
}

TEST(ScoreAlarms, ALateAlarmIsNotEarlyWarningOfTheNextSpike) {
  // Spikes at 100 (over by 102) and 107: an alarm from 101 is late for the first.
  const auto steps = steps_0_to(200);
  std::vector<std::uint8_t> alarm(200, 0);
  alarm[101] = alarm[102] = 1;
  const std::vector<FailureEvent> failures = {{100, 100, 102, "spike", "", "labels"},
                                              {107, 107, 107, "spike", "", "labels"}};
  const Scoring s = score_alarms(steps, alarm, failures, {.lead_window = 50, .settle = 50});
  EXPECT_EQ(s.detections[0].lead, -1);
  EXPECT_FALSE(s.detections[1].first_alarm);
  EXPECT_EQ(s.missed, 1u);
}

TEST(ScoreAlarms, HealthyRunEveryAlarmIsFalse) {
  const auto steps = steps_0_to(30);
  std::vector<std::uint8_t> alarm(30, 0);
  alarm[3] = alarm[20] = alarm[21] = 1;
  const Scoring s = score_alarms(steps, alarm, {});
  EXPECT_EQ(s.false_alarms, 2u);
  EXPECT_EQ(s.alarm_snapshots_outside, 3u);
}

TEST(Baselines, MeanMultipleAndMovingAverage) {
  std::vector<double> loss(60, 2.0);
  loss[30] = 5.0;   // 2.5 x: moving-average alarm only
  loss[40] = 25.0;  // 12.5 x: both
  loss[50] = kNaN;  // both
  const auto mean = baseline_mean_multiple(loss, 10.0);
  const auto ma = baseline_moving_average(loss, 1.5, 20);
  EXPECT_FALSE(mean[30]);
  EXPECT_TRUE(mean[40]);
  EXPECT_TRUE(mean[50]);
  EXPECT_TRUE(ma[30]);
  EXPECT_TRUE(ma[40]);
  EXPECT_TRUE(ma[50]);
  EXPECT_FALSE(ma[31]);
  EXPECT_FALSE(mean[0]);
  EXPECT_FALSE(ma[2]) << "no moving-average alarm before 5 points";
}

TEST(Labels, LoadsAndRejects) {
  TempDir tmp;
  const auto file = tmp.path() / "labels.toml";
  std::ofstream(file) << "[[failure]]\npeak = 300\nonset = 290\nend = 320\nkind = \"spike\"\n[[failure]]\npeak = 100\n";
  const Labels l = load_labels(file);
  ASSERT_EQ(l.failures.size(), 2u);
  EXPECT_EQ(l.failures[0].peak, 100) << "sorted by peak";
  EXPECT_EQ(l.failures[0].onset, 100);
  EXPECT_EQ(l.failures[1].onset, 290);
  EXPECT_EQ(l.failures[1].kind, "spike");
  EXPECT_TRUE(labels_beside(tmp.path()).has_value());
  std::ofstream(file) << "[[failure]]\npeak = 10\nonset = 20\n";
  EXPECT_THROW(load_labels(file), LabelsError);
  std::ofstream(file) << "healthy = true\nfailures = 3\n";
  EXPECT_THROW(load_labels(file), LabelsError);
  std::ofstream(file) << "healthy = true\n";
  EXPECT_TRUE(load_labels(file).healthy);
}

// Labels are read by the one TOML reader: a misspelt key inside a [[failure]] table
// (which used to be ignored, leaving the default) is an error naming file, key and reason.
TEST(Labels, UnknownKeysAnywhereAreErrorsThatNameTheKey) {
  TempDir tmp;
  const auto file = tmp.path() / "labels.toml";
  auto error_of = [&](const std::string& text) -> std::string {
    std::ofstream(file) << text;
    try {
      load_labels(file);
    } catch (const LabelsError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_EQ(error_of("[[failure]]\npeak = 300\nkinds = \"spike\"\n"),
            file.string() + ": key 'failure[0].kinds': unknown key; known keys here: end, kind, note, onset, peak");
  EXPECT_EQ(error_of("[[failure]]\nonset = 3\n"), file.string() + ": key 'failure[0].peak': is required (an integer step)");
  EXPECT_EQ(error_of("[[failure]]\npeak = 10\nend = 5\n"),
            file.string() + ": key 'failure[0].end': must be in [10, 9223372036854775807], got 5");
  EXPECT_NE(error_of("healty = true\n").find("key 'healty': unknown key"), std::string::npos);
}

TEST(ConfigOverrides, ShorthandTypesAndErrors) {
  EXPECT_EQ(full_config_key("pid.warning.kp"), "controller.pid.warning.kp");
  EXPECT_EQ(full_config_key("journal.fsync"), "journal.fsync");
  const std::string text = apply_overrides("[daemon]\nmode = \"active\"\n",
                                           {{"daemon.mode", "monitor"}, {"filters.loss_alpha", "0.125"},
                                            {"signals.spectra", "[\"hidden\", \"attn\"]"}},
                                           "test");
  const toml::table t = toml::parse(text);
  EXPECT_EQ(t.at_path("daemon.mode").value<std::string>(), "monitor") << "not TOML: taken as a string";
  EXPECT_EQ(t.at_path("controller.filters.loss_alpha").value<double>(), 0.125);
  EXPECT_EQ(t.at_path("controller.signals.spectra").as_array()->size(), 2u);
  EXPECT_THROW(apply_overrides("[daemon]\nmode = 1\n", {{"daemon.mode.x", "1"}}, "t"), ConfigError);
  EXPECT_THROW(apply_overrides("", {{"controller..x", "1"}}, "t"), ConfigError);
}

TEST(TuneSpace, ValuesSnippetAndErrors) {
  TempDir tmp;
  const auto file = tmp.path() / "space.toml";
  std::ofstream(file) << "[[param]]\nkey = \"filters.loss_alpha\"\nmin = 0.01\nmax = 1.0\nlog = true\n"
                         "[[param]]\nkey = \"controller.filters.warmup_steps\"\nmin = 5\nmax = 50\ninteger = true\n";
  auto params = load_space(file);
  ASSERT_EQ(params.size(), 2u);
  EXPECT_NEAR(params[0].value_at(0.5), 0.1, 1e-12) << "log scale: the middle is the geometric mean";
  EXPECT_NEAR(params[0].unit_of(0.1), 0.5, 1e-12);
  EXPECT_EQ(params[1].value_at(0.5), 28.0);
  const std::string snippet = toml_snippet(params, {0.1, 28.0});
  EXPECT_EQ(snippet, "[controller.filters]\nloss_alpha = 0.1\nwarmup_steps = 28\n");
  // The snippet parses as TOML with the same values.
  const toml::table t = toml::parse(snippet);
  EXPECT_EQ(t.at_path("controller.filters.warmup_steps").value<std::int64_t>(), 28);
  std::ofstream(file) << "[[param]]\nkey = \"x\"\nmin = 1\nmax = 1\n";
  EXPECT_THROW(load_space(file), SpaceError);
  std::ofstream(file) << "[[param]]\nkey = \"x\"\nmin = 0\nmax = 1\nlog = true\n";
  EXPECT_THROW(load_space(file), SpaceError);
  // A whole-number float keeps its decimal point (TOML would read "2" as an integer).
  std::ofstream(file) << "[[param]]\nkey = \"x\"\nmin = 1\nmax = 3\n";
  auto one = load_space(file);
  EXPECT_EQ(candidate_overrides(one, {2.0}).at(0).second, "2.0");
}

// A misspelt key is an error naming the file, the key and the reason; it never
// silently drops the setting (here `log`, which would search linearly instead).
TEST(TuneSpace, UnknownKeysAreErrorsNamingFileAndKey) {
  TempDir tmp;
  const auto file = tmp.path() / "space.toml";
  auto message = [&](const std::string& text) -> std::string {
    std::ofstream(file) << text;
    try {
      load_space(file);
    } catch (const SpaceError& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string ok = "[[param]]\nkey = \"filters.loss_alpha\"\nmin = 0.01\nmax = 0.3\n";
  std::string m = message(ok + "lg = true\n");
  EXPECT_NE(m.find(file.string()), std::string::npos) << m;
  EXPECT_NE(m.find("key 'param[0].lg': unknown key"), std::string::npos) << m;
  m = message(ok + "[[param]]\nkey = \"x\"\nmin = 1\nmaximum = 2\n");
  EXPECT_NE(m.find("key 'param[1].maximum': unknown key"), std::string::npos) << m;
  m = message("seed = 3\n" + ok);
  EXPECT_NE(m.find("key 'seed': unknown key"), std::string::npos) << m;
  m = message(ok + "log = \"yes\"\n");
  EXPECT_NE(m.find("key 'param[0].log': must be true or false"), std::string::npos) << m;
  m = message("[[param]]\nkey = \"x\"\nmax = 2\n");
  EXPECT_NE(m.find("key 'param[0].min': is required"), std::string::npos) << m;
  EXPECT_EQ(message(ok), "no error");
}

TEST(TelemetryView, LineAndTree) {
  Telemetry t;
  t.run = "run-a";
  t.step = 1840;
  t.state = "DRIFTING";
  t.basin = "CREATIVE";
  t.forecast_basin = "TOKEN_COLLAPSE";
  t.lr_scale = 0.8;
  t.metrics = {{"entropy", 2.31}, {"phi_proximity", 0.87}, {"health", 0.7}, {"loss", 3.25}};
  t.reason = "entropy trend reaches danger in 120 steps";
  const std::string line = run_line(t, {});
  EXPECT_EQ(line, "run-a  step 1840  entropy 2.31  \u03c6-prox 0.87  "
                  "\u2588\u2588\u2588\u2588\u2588\u2588\u2588\u2591\u2591\u2591 DRIFTING");
  const std::string tree = run_tree(t, {});
  EXPECT_NE(tree.find("loss       3.25"), std::string::npos) << tree;
  EXPECT_NE(tree.find("CREATIVE (heading for TOKEN_COLLAPSE)"), std::string::npos) << tree;
  EXPECT_NE(tree.find("lr scale   0.800"), std::string::npos) << tree;
  EXPECT_NE(tree.find("entropy trend reaches danger"), std::string::npos) << tree;
  ViewStyle color;
  color.color = true;
  EXPECT_NE(run_line(t, color).find("\x1b[33mDRIFTING\x1b[0m"), std::string::npos);
}

TEST(TelemetryView, HeldValuesBetweenProbeSteps) {
  // A probe step carries the spectral metrics; the nine steps after it carry loss alone.
  Telemetry probe;
  probe.run = "run-a";
  probe.step = 100;
  probe.state = "STABLE";
  probe.metrics = {{"entropy", 2.31}, {"phi_proximity", 0.87}, {"health", 0.7}, {"loss", 3.5}};
  HeldTelemetry held;
  held.update(probe);
  EXPECT_EQ(run_line(held, {}), "run-a  step 100  entropy 2.31  \u03c6-prox 0.87  "
                                "\u2588\u2588\u2588\u2588\u2588\u2588\u2588\u2591\u2591\u2591 STABLE");
  Telemetry between = probe;
  between.step = 110;
  between.state = "DRIFTING";
  between.metrics = {{"loss", 3.25}};
  held.update(between);
  EXPECT_EQ(run_line(held, {}), "run-a  step 110  entropy 2.31 (10 ago)  \u03c6-prox 0.87 (10 ago)  "
                                "\u2588\u2588\u2588\u2588\u2588\u2588\u2588\u2591\u2591\u2591 DRIFTING");
  EXPECT_EQ(held.age("loss"), 0);
  EXPECT_EQ(held.age("entropy"), 10);
  const std::string tree = run_tree(held, {});
  EXPECT_NE(tree.find("loss       3.25\n"), std::string::npos) << tree;
  EXPECT_NE(tree.find("entropy 2.31 (10 ago)"), std::string::npos) << tree;
  // The message alone, as before: nothing held.
  EXPECT_NE(run_line(between, {}).find("entropy -"), std::string::npos);
  // A new probe refreshes the value and its age.
  Telemetry next = probe;
  next.step = 120;
  next.metrics = {{"entropy", 2.0}};
  held.update(next);
  EXPECT_NE(run_line(held, {}).find("entropy 2.00  \u03c6-prox 0.87 (20 ago)"), std::string::npos) << run_line(held, {});
}

TEST(TuneSplit, ByRunDeterministicAndBothKindsOnEachSide) {
  std::vector<TuneRun> runs(8);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    runs[i].recording.run = "run-" + std::to_string(i);
    if (i % 2) runs[i].failures.push_back(FailureEvent{10, 10, 10, "spike", "", "detected"});
  }
  const RunSplit split = split_runs(runs, 0.25, 1);
  ASSERT_EQ(split.held_out.size(), 2u);  // one of four healthy, one of four failing
  EXPECT_EQ(split.tuning.size(), 6u);
  std::size_t healthy_held_out = 0;
  for (std::size_t i : split.held_out) healthy_held_out += runs[i].failures.empty();
  EXPECT_EQ(healthy_held_out, 1u);
  // The same inputs, the same split; the order of the runs does not matter.
  const RunSplit again = split_runs(runs, 0.25, 1);
  EXPECT_EQ(again.held_out, split.held_out);
  std::vector<TuneRun> reversed(runs.rbegin(), runs.rend());
  const RunSplit mirrored = split_runs(reversed, 0.25, 1);
  std::vector<std::string> a, b;
  for (std::size_t i : split.held_out) a.push_back(runs[i].recording.run);
  for (std::size_t i : mirrored.held_out) b.push_back(reversed[i].recording.run);
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
  // Another seed draws (across seeds) other runs.
  bool differs = false;
  for (std::uint64_t seed = 2; seed < 10 && !differs; ++seed) differs = split_runs(runs, 0.25, seed).held_out != split.held_out;
  EXPECT_TRUE(differs);
  // Nothing held out: fraction 0, or a kind with a single run.
  EXPECT_TRUE(split_runs(runs, 0.0, 1).held_out.empty());
  std::vector<TuneRun> two(runs.begin(), runs.begin() + 2);  // one healthy, one failing
  EXPECT_TRUE(split_runs(two, 0.5, 1).held_out.empty());
}

}  // namespace
}  // namespace orbit
