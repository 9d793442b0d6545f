// SPDX-License-Identifier: Apache-2.0
#include "tools/replay.hpp"

#include <chrono>
#include <map>

#include "config/config_error.hpp"
#include "protocol/codec.hpp"

namespace orbit {

std::optional<AlarmLevel> alarm_level_from_string(std::string_view name) {
  if (name == "drifting" || name == "DRIFTING") return AlarmLevel::drifting;
  if (name == "warning" || name == "WARNING") return AlarmLevel::warning;
  if (name == "critical" || name == "CRITICAL") return AlarmLevel::critical;
  return std::nullopt;
}

std::string_view to_string(AlarmLevel level) {
  switch (level) {
    case AlarmLevel::drifting: return "DRIFTING";
    case AlarmLevel::warning: return "WARNING";
    case AlarmLevel::critical: return "CRITICAL";
  }
  return "WARNING";
}

int state_severity(std::string_view state) {
  if (state == "DRIFTING") return 1;
  if (state == "WARNING") return 2;
  if (state == "CRITICAL") return 3;
  return 0;
}

DaemonConfig starting_config(const RecordedRun& recording, const ReplaySettings& settings, std::string* description) {
  std::string text;
  std::string source;
  std::string what;
  if (settings.config_text) {
    text = *settings.config_text;
    source = settings.config_source;
    what = source;
  } else {
    for (const auto& e : recording.entries)
      if (e.type == RecordType::config) {
        text = std::get<std::string>(e.value);
        source = recording.run + " (recorded config)";
        what = "recorded";
        break;
      }
    if (what.empty()) {
      source = "<built-in defaults>";
      what = "built-in defaults (the journal has no config record)";
    }
  }
  if (!settings.overrides.empty()) what += " + " + std::to_string(settings.overrides.size()) + " --set";
  if (description) *description = what;
  return config_with_overrides(text, settings.overrides, source);
}

std::vector<FailureEvent> failures_of(const RecordedRun& recording, const ReplaySettings& settings,
                                      std::string* source, bool* healthy) {
  std::optional<Labels> labels = settings.labels;
  if (!labels && !recording.dir.empty()) labels = labels_beside(recording.dir);
  if (labels) {
    if (source) *source = "labels " + labels->file.string();
    if (healthy) *healthy = labels->healthy;
    return labels->failures;
  }
  std::vector<LossPoint> points;
  for (const auto& e : recording.entries)
    if (e.type == RecordType::snapshot) {
      const auto& s = std::get<Snapshot>(e.value);
      if (s.rank == 0) points.push_back({s.step, s.loss});
    }
  if (source) {
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%g", settings.detect.ratio);
    *source = std::string("detected (non-finite loss, or loss > ") + ratio + "x the running minimum of its " +
              std::to_string(settings.detect.baseline_window) + "-snapshot median)";
  }
  if (healthy) *healthy = false;
  return detect_failures(points, settings.detect);
}

namespace {

RunReplay run_driver(const RecordedRun& recording, RunDriver::Options options, const ReplaySettings& settings) {
  options.report_metrics = settings.keep_timeline;  // only the timeline reads them
  options.follow_memo = recording.memo.get();  // tune records one per run (same decisions)
  RunReplay out;
  out.run = recording.run;
  out.journal = recording.report;
  out.undecodable = recording.undecodable;
  out.gaps = recording.gaps;
  RunDriver driver(std::move(options));
  const int alarm_severity = static_cast<int>(settings.alarm_level);
  out.steps.reserve(recording.snapshots);
  out.losses.reserve(recording.snapshots);
  out.alarms.reserve(recording.snapshots);
  if (settings.keep_timeline) out.timeline.reserve(recording.snapshots);
  std::int64_t last_step = 0;

  auto computed = [&](const Burn& b, bool forced, std::int64_t at_step) {
    out.burns.push_back(ReplayedBurn{b, forced, at_step, std::nullopt});
  };

  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& e : recording.entries) {
    if (e.type == RecordType::burn) {
      out.recorded_burns.push_back(std::get<Burn>(e.value));
      continue;
    }
    RunDriver::Output o = driver.feed(e);
    if (o.forced) computed(*o.forced, true, last_step);
    if (!o.decision) continue;
    const Decision& d = *o.decision;
    const Snapshot& s = *o.snapshot;
    if (d.burn) computed(*d.burn, false, s.step);
    // With several ranks only the snapshot that closes a step carries a decision; the
    // timeline keeps one point per closed step, in step order.
    if (!d.step_closed || (!out.steps.empty() && s.step < out.steps.back())) continue;
    last_step = s.step;
    const std::string& observed = d.observed_state.empty() ? d.state : d.observed_state;
    out.steps.push_back(s.step);
    out.losses.push_back(s.loss);
    out.alarms.push_back(state_severity(observed) >= alarm_severity ? 1 : 0);
    if (settings.keep_timeline) {
      TimelinePoint p;
      p.step = s.step;
      p.time = s.time;
      p.loss = s.loss;
      p.grad_norm = s.grad_norm;
      p.state = observed;
      p.basin = d.basin;
      p.forecast_basin = d.forecast_basin;
      p.basin_age_steps = d.basin_age_steps;
      p.lr_scale = d.lr_scale;
      p.metrics = d.metrics;
      if (d.burn) p.burn_seq = d.burn->seq;
      p.events = d.events;
      out.timeline.push_back(std::move(p));
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.orphan_snapshots = driver.orphan_snapshots();
  out.config = driver.config();

  // Pair computed and recorded burns by seq.
  std::map<std::int64_t, const Burn*> recorded;
  for (const auto& b : out.recorded_burns) recorded.emplace(b.seq, &b);
  for (auto& b : out.burns) {
    auto it = recorded.find(b.burn.seq);
    if (it == recorded.end()) {
      out.unrecorded_seqs.push_back(b.burn.seq);
      continue;
    }
    const bool same = encode(b.burn) == encode(*it->second);
    b.matches_recorded = same;
    if (same) ++out.burns_matching;
  }
  return out;
}

}  // namespace

RunReplay replay_run(const RecordedRun& recording, const ReplaySettings& settings) {
  std::string description;
  const DaemonConfig start = starting_config(recording, settings, &description);
  RunDriver::Options options;
  options.config = start.navigator;
  options.mode = settings.mode.value_or(parse_mode(start.mode).value_or(Mode::active));
  options.follow_config_records = !settings.config_text;
  options.follow_mode_records = !settings.mode;
  const Overrides overrides = settings.overrides;
  options.parse_config = [overrides, run = recording.run](const std::string& text) {
    return config_with_overrides(text, overrides, run + " (recorded config)").navigator;
  };
  RunReplay out = run_driver(recording, std::move(options), settings);
  out.config_description = description;
  out.used_recorded_config = !settings.config_text &&
                             std::any_of(recording.entries.begin(), recording.entries.end(),
                                         [](const RecordedEntry& e) { return e.type == RecordType::config; });
  out.overridden = settings.config_text.has_value() || !settings.overrides.empty() || settings.mode.has_value();
  out.failures = failures_of(recording, settings, &out.failure_source, &out.healthy_by_label);
  out.scoring = score_alarms(out.steps, out.alarms, out.failures, settings.score);
  return out;
}

RunReplay replay_fixed(const RecordedRun& recording, const NavigatorConfig& config, Mode mode,
                       const std::vector<FailureEvent>& failures, const ReplaySettings& settings) {
  RunDriver::Options options;
  options.config = config;
  options.mode = mode;
  options.follow_config_records = false;
  options.follow_mode_records = false;
  RunReplay out = run_driver(recording, std::move(options), settings);
  out.config_description = "fixed";
  out.overridden = true;
  out.failures = failures;
  out.scoring = score_alarms(out.steps, out.alarms, out.failures, settings.score);
  return out;
}

}  // namespace orbit
