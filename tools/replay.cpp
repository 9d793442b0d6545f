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

namespace {

// starting_config() given the run's first config record (nullopt when it has none).
DaemonConfig starting_config_from(const std::optional<std::string>& recorded_config, const std::string& run,
                                  const ReplaySettings& settings, std::string* description) {
  std::string text;
  std::string source;
  std::string what;
  if (settings.config_text) {
    text = *settings.config_text;
    source = settings.config_source;
    what = source;
  } else if (recorded_config) {
    text = *recorded_config;
    source = run + " (recorded config)";
    what = "recorded";
  } else {
    source = "<built-in defaults>";
    what = "built-in defaults (the journal has no config record)";
  }
  if (!settings.overrides.empty()) what += " + " + std::to_string(settings.overrides.size()) + " --set";
  if (description) *description = what;
  return config_with_overrides(text, settings.overrides, source);
}

// failures_of() given the run's rank-0 (step, loss) points in record order.
std::vector<FailureEvent> failures_from(const std::filesystem::path& dir, const std::vector<LossPoint>& points,
                                        const ReplaySettings& settings, std::string* source, bool* healthy) {
  std::optional<Labels> labels = settings.labels;
  if (!labels && !dir.empty()) labels = labels_beside(dir);
  if (labels) {
    if (source) *source = "labels " + labels->file.string();
    if (healthy) *healthy = labels->healthy;
    return labels->failures;
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

}  // namespace

DaemonConfig starting_config(const RecordedRun& recording, const ReplaySettings& settings, std::string* description) {
  std::optional<std::string> recorded;
  for (const auto& e : recording.entries)
    if (e.type == RecordType::config) {
      recorded = std::get<std::string>(e.value);
      break;
    }
  return starting_config_from(recorded, recording.run, settings, description);
}

std::vector<FailureEvent> failures_of(const RecordedRun& recording, const ReplaySettings& settings,
                                      std::string* source, bool* healthy) {
  std::vector<LossPoint> points;  // read only when there are no labels
  for (const auto& e : recording.entries)
    if (e.type == RecordType::snapshot) {
      const auto& s = std::get<Snapshot>(e.value);
      if (s.rank == 0) points.push_back({s.step, s.loss});
    }
  return failures_from(recording.dir, points, settings, source, healthy);
}

namespace {

// The lockstep loop: one entry at a time, from a loaded run or straight off the journal.
class ReplayLoop {
 public:
  ReplayLoop(RunDriver::Options options, const ReplaySettings& settings, const NavigatorMemo* memo,
             std::size_t snapshots_hint)
      : settings_(settings), driver_(prepared(std::move(options), settings, memo)),
        alarm_severity_(static_cast<int>(settings.alarm_level)), t0_(std::chrono::steady_clock::now()) {
    out_.steps.reserve(snapshots_hint);
    out_.losses.reserve(snapshots_hint);
    out_.alarms.reserve(snapshots_hint);
    if (settings.keep_timeline) out_.timeline.reserve(snapshots_hint);
  }

  void feed(const RecordedEntry& e) {
    if (e.type == RecordType::burn) {
      out_.recorded_burns.push_back(std::get<Burn>(e.value));
      return;
    }
    RunDriver::Output o = driver_.feed(e);
    if (o.forced) computed(*o.forced, true, last_step_);
    if (!o.decision) return;
    Decision& d = *o.decision;  // the driver's until its next feed: its events move to the timeline
    const Snapshot& s = *o.snapshot;
    if (d.burn) computed(*d.burn, false, s.step);
    // With several ranks only the snapshot that closes a step carries a decision; the
    // timeline keeps one point per closed step, in step order.
    if (!d.step_closed || (!out_.steps.empty() && s.step < out_.steps.back())) return;
    last_step_ = s.step;
    const std::string& observed = d.observed_state.empty() ? d.state : d.observed_state;
    out_.steps.push_back(s.step);
    out_.losses.push_back(s.loss);
    out_.alarms.push_back(state_severity(observed) >= alarm_severity_ ? 1 : 0);
    if (settings_.keep_timeline) {
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
      p.metrics = TimelineMetrics(driver_.navigator()->last_metrics(), metric_names_version_, metric_names_);
      if (d.burn) p.burn_seq = d.burn->seq;
      p.events = std::move(d.events);
      out_.timeline.push_back(std::move(p));
    }
  }

  // The replay, with what reading the journal reported (`recording` less its entries will do).
  RunReplay finish(const RecordedRun& recording) {
    RunReplay out = std::move(out_);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    out.run = recording.run;
    out.journal = recording.report;
    out.undecodable = recording.undecodable;
    out.gaps = recording.gaps;
    out.orphan_snapshots = driver_.orphan_snapshots();
    out.config = driver_.config();

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

 private:
  static RunDriver::Options prepared(RunDriver::Options options, const ReplaySettings& settings,
                                     const NavigatorMemo* memo) {
    options.report_metrics = settings.keep_timeline;  // only the timeline reads them
    options.metrics_in_sink = settings.keep_timeline;  // ... from the Navigator's sink, not a map
    options.follow_memo = memo;                       // tune records one per run (same decisions)
    return options;
  }
  void computed(const Burn& b, bool forced, std::int64_t at_step) {
    out_.burns.push_back(ReplayedBurn{b, forced, at_step, std::nullopt});
  }

  const ReplaySettings& settings_;
  RunDriver driver_;
  const int alarm_severity_;
  std::chrono::steady_clock::time_point t0_;
  RunReplay out_;
  std::int64_t last_step_ = 0;
  std::shared_ptr<const TimelineMetrics::Names> metric_names_;  // the last point's
  std::uint64_t metric_names_version_ = 0;                      // ... and their MetricSink::names_version()
};

RunReplay run_driver(const RecordedRun& recording, RunDriver::Options options, const ReplaySettings& settings) {
  ReplayLoop loop(std::move(options), settings, recording.memo.get(), recording.snapshots);
  for (const auto& e : recording.entries) loop.feed(e);
  return loop.finish(recording);
}

// What replay_run() sets up from the starting config: the driver's options.
RunDriver::Options replay_options(const DaemonConfig& start, const std::string& run, const ReplaySettings& settings) {
  RunDriver::Options options;
  options.config = start.navigator;
  options.mode = settings.mode.value_or(parse_mode(start.mode).value_or(Mode::active));
  options.follow_config_records = !settings.config_text;
  options.follow_mode_records = !settings.mode;
  const Overrides overrides = settings.overrides;
  options.parse_config = [overrides, run](const std::string& text) {
    return config_with_overrides(text, overrides, run + " (recorded config)").navigator;
  };
  return options;
}

// The first config record of a run, read without decoding anything else (orbitd
// writes it first, so this usually reads one record).
std::optional<std::string> first_config_record(const std::filesystem::path& run_dir, ReadOptions options) {
  JournalReader reader(run_dir, options);
  while (auto r = reader.next())
    if (r->type == RecordType::config) return std::string(r->payload);
  return std::nullopt;
}

}  // namespace

RunReplay replay_run(const RecordedRun& recording, const ReplaySettings& settings) {
  std::string description;
  const DaemonConfig start = starting_config(recording, settings, &description);
  RunReplay out = run_driver(recording, replay_options(start, recording.run, settings), settings);
  out.config_description = description;
  out.used_recorded_config = !settings.config_text &&
                             std::any_of(recording.entries.begin(), recording.entries.end(),
                                         [](const RecordedEntry& e) { return e.type == RecordType::config; });
  out.overridden = settings.config_text.has_value() || !settings.overrides.empty() || settings.mode.has_value();
  out.failures = failures_of(recording, settings, &out.failure_source, &out.healthy_by_label);
  out.scoring = score_alarms(out.steps, out.alarms, out.failures, settings.score);
  return out;
}

RunReplay replay_journal(const std::filesystem::path& run_dir, ReadOptions read, const ReplaySettings& settings) {
  const std::string run = run_dir.filename().string();
  // The starting config comes first: the framing is read up to the first config record
  // (repairing nothing; the replay's own read does that), not at all with --config.
  ReadOptions look = read;
  look.repair = false;
  const std::optional<std::string> recorded = settings.config_text ? std::nullopt : first_config_record(run_dir, look);
  std::string description;
  const DaemonConfig start = starting_config_from(recorded, run, settings, &description);
  ReplayLoop loop(replay_options(start, run, settings), settings, nullptr, 0);
  std::vector<LossPoint> points;
  bool has_config = false;
  const RecordedRun read_back = stream_recorded_run(run_dir, read, [&](const RecordedEntry& e) {
    if (e.type == RecordType::config) has_config = true;
    if (e.type == RecordType::snapshot) {
      const auto& s = std::get<Snapshot>(e.value);
      if (s.rank == 0) points.push_back({s.step, s.loss});
    }
    loop.feed(e);
  });
  RunReplay out = loop.finish(read_back);
  out.config_description = description;
  out.used_recorded_config = !settings.config_text && has_config;
  out.overridden = settings.config_text.has_value() || !settings.overrides.empty() || settings.mode.has_value();
  out.failures = failures_from(read_back.dir, points, settings, &out.failure_source, &out.healthy_by_label);
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
