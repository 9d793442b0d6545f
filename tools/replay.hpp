// SPDX-License-Identifier: Apache-2.0
#pragma once
// `orbit replay`'s engine: a recorded run fed through a Navigator config in lockstep,
// as fast as it goes (PX4's log replay is the model): the recorded config (each
// config record in turn), or --config instead, then --set on top. Reports the state
// timeline, the burns (and whether they equal the recorded ones), and how the alarms
// score against the run's failures (failures.hpp).

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controllers/navigator.hpp"
#include "journal/journal_replay.hpp"
#include "tools/config_overrides.hpp"
#include "tools/failures.hpp"
#include "tools/timeline_metrics.hpp"

namespace orbit {

// Which state counts as an alarm (and everything worse).
enum class AlarmLevel { drifting = 1, warning = 2, critical = 3 };
std::optional<AlarmLevel> alarm_level_from_string(std::string_view name);
std::string_view to_string(AlarmLevel level);
// Severity of a state name: DRIFTING 1, WARNING 2, CRITICAL 3, anything else 0.
int state_severity(std::string_view state);

struct ReplaySettings {
  std::optional<std::string> config_text;  // --config: replaces every recorded config
  std::string config_source = "<recorded>";
  Overrides overrides;                     // --set, on top of whichever config
  std::optional<Mode> mode;                // force a mode (default: recorded, else the config's)
  AlarmLevel alarm_level = AlarmLevel::warning;
  std::optional<Labels> labels;            // else labels.toml beside the journal, else detection
  DetectOptions detect;
  ScoreOptions score;
  bool keep_timeline = true;               // false: only what scoring needs (tune)
};

struct TimelinePoint {
  std::int64_t step = 0;
  double time = 0.0;
  double loss = 0.0;
  std::optional<double> grad_norm;
  std::string state;     // observed state (also in monitor mode)
  std::string basin;
  std::string forecast_basin;
  std::optional<std::int64_t> basin_age_steps;  // steps since the spectral evidence that named basin
  double lr_scale = 1.0;
  TimelineMetrics metrics;  // Decision::metrics
  std::optional<std::int64_t> burn_seq;
  std::vector<std::string> events;
};

struct ReplayedBurn {
  Burn burn;
  bool forced = false;
  std::int64_t at_step = 0;              // the snapshot step that produced it
  std::optional<bool> matches_recorded;  // set when the journal has a burn at this position
};

struct RunReplay {
  std::string run;
  std::string config_description;  // "recorded", "recorded + 2 --set", "FILE", ...
  bool used_recorded_config = false;
  bool overridden = false;         // --config or --set changed what was recorded
  NavigatorConfig config;          // the config in force at the end
  std::vector<TimelinePoint> timeline;  // keep_timeline only
  std::vector<std::int64_t> steps;      // one per snapshot fed
  std::vector<double> losses;
  std::vector<std::uint8_t> alarms;
  std::vector<ReplayedBurn> burns;
  std::vector<Burn> recorded_burns;
  // Computed and recorded burns are paired by seq. A computed burn whose seq has no
  // record is what a crash between journaling a snapshot and journaling its burn
  // leaves (the restarted daemon goes on with the next seq, so the recorded seqs
  // have a gap there): listed, not counted against reproduction.
  std::size_t burns_matching = 0;
  std::vector<std::int64_t> unrecorded_seqs;
  // With the recorded config: every recorded burn recomputed bit for bit.
  bool reproduced() const { return burns_matching == recorded_burns.size(); }
  std::vector<FailureEvent> failures;
  std::string failure_source;  // "labels FILE", "detected: ..."
  bool healthy_by_label = false;
  Scoring scoring;
  RecoveryReport journal;
  std::vector<std::string> undecodable;
  std::vector<std::string> gaps;  // journal gap records: records the daemon could not write
  std::size_t orphan_snapshots = 0;
  double seconds = 0.0;  // wall time of the lockstep loop
};

// Throws ConfigError for a config that does not parse, LabelsError for bad labels.
RunReplay replay_run(const RecordedRun& recording, const ReplaySettings& settings);
// The same replay read straight off the run's journal (what `orbit replay` does): no
// RecordedRun is kept, each snapshot is decoded into one reused Snapshot and fed, so
// memory does not grow with the run. The result is replay_run(load_recorded_run(
// run_dir, read), settings)'s, but for `seconds`, which here includes the reading.
RunReplay replay_journal(const std::filesystem::path& run_dir, ReadOptions read, const ReplaySettings& settings);
// With a ready NavigatorConfig and mode (tune): config and mode records are not followed;
// `failures` are given (no labels lookup, no detection).
RunReplay replay_fixed(const RecordedRun& recording, const NavigatorConfig& config, Mode mode,
                       const std::vector<FailureEvent>& failures, const ReplaySettings& settings);

// The failures of a recorded run: settings.labels, else labels.toml beside it, else detected.
std::vector<FailureEvent> failures_of(const RecordedRun& recording, const ReplaySettings& settings,
                                      std::string* source, bool* healthy);

// The config a replay starts from: --config, else the first recorded config record,
// else the built-in defaults; overrides applied. `description` says which.
DaemonConfig starting_config(const RecordedRun& recording, const ReplaySettings& settings, std::string* description);

}  // namespace orbit
