// SPDX-License-Identifier: Apache-2.0
#pragma once
// `orbit tune`: a search over controller gains on recorded runs.
//
// The space file (TOML) lists the keys to search, each a dotted config key as for
// `orbit replay --set`, with its range:
//
//   [[param]]
//   key = "filters.loss_alpha"   # = controller.filters.loss_alpha
//   min = 0.01
//   max = 0.3
//   log = true                   # search log(value) uniformly (default false)
//   integer = false              # round to an integer (default false)
//
// Search: the starting config is evaluated first; then random search (60 % of the
// budget, uniform in the normalised box); then Nelder-Mead from the best random points,
// one simplex per job with an equal share of the rest of the budget; budget a simplex
// leaves when it converges goes to more random points. Candidates are evaluated on
// `jobs` threads; with the same seed and jobs the result is the same.
//
// Objectives (lower is better):
//   open-loop    per failure: 1 when missed; 0.6 + 0.4 min(1, k/W) when flagged k snapshots
//                late; 0.5 / (1 + k) when flagged k snapshots before its peak (W = lead
//                window). Plus 1 per false alarm, plus 2 x the share of snapshots in alarm
//                outside every failure's zone (so "always alarm" is not a way out).
//   closed-loop  the controller against a plant fitted to each run (plant_model.hpp):
//                loss[t+1] = a loss[t] + b u[t] + c + e[t], u = ln(lr scale of the recording
//                x the controller's scale), e = the recorded residuals (so the recorded spikes
//                come back as disturbances). Cost: mean squared relative excess (capped
//                at 10) of the loss over 1.05 x its recorded running minimum, plus
//                0.1 x mean (ln scale)^2 (an lr cut for nothing slows training). Needs runs
//                whose lr moved (an lr column or burns); the model is linear around the
//                recording and cannot know how the run answers an lr it never saw.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "journal/journal_replay.hpp"
#include "tools/config_overrides.hpp"
#include "tools/failures.hpp"
#include "tools/replay.hpp"

namespace orbit {

struct TuneParam {
  std::string key;  // as given
  double min = 0, max = 1;
  bool log = false;
  bool integer = false;
  std::optional<double> start;  // its value in the starting config, when it has one

  double value_at(double unit) const;  // unit in [0, 1] -> value
  double unit_of(double value) const;  // inverse, clamped to [0, 1]
};

class SpaceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::vector<TuneParam> load_space(const std::filesystem::path& file);  // throws SpaceError

enum class Objective { open_loop, closed_loop };

// A prepared run: decoded records and its failures.
struct TuneRun {
  RecordedRun recording;
  std::vector<FailureEvent> failures;
  std::string failure_source;
};

// Held-out check: the runs are split by run (never by snapshot) into a tuning set,
// which the search sees, and a held-out set, which scores only the starting and the
// best config. The split is a fixed function of (run names, fraction, seed): runs
// ordered by a hash of (seed, name), healthy runs (no failures) and runs with
// failures split separately so each side gets both kinds where a kind has two runs.
struct RunSplit {
  std::vector<std::size_t> tuning, held_out;  // indices into the runs, in input order
};
RunSplit split_runs(const std::vector<TuneRun>& runs, double held_out_fraction, std::uint64_t seed);

struct TuneOptions {
  Objective objective = Objective::open_loop;
  std::size_t budget = 200;  // candidate evaluations, the starting config included
  std::size_t jobs = 2;
  std::uint64_t seed = 1;
  ReplaySettings replay;     // alarm level, lead window; replay.keep_timeline is ignored
  std::string base_text;     // starting orbitd config text
  std::string base_source = "<built-in defaults>";
  std::function<void(std::size_t done)> progress;  // called from worker threads
};

struct RunScore {
  std::string run;
  std::size_t failures = 0, in_time = 0, late = 0, missed = 0, false_alarms = 0, burns = 0;
  std::vector<std::int64_t> leads;  // steps, per detected failure
  double cost = 0;
};

struct Candidate {
  std::vector<double> values;  // one per TuneParam
  double cost = 0;
  std::vector<RunScore> runs;
  bool valid = true;
  std::string problem;  // why the config was rejected
};

struct TuneResult {
  Candidate before;  // the starting config, on the tuning runs
  Candidate best;    // the lowest tuning cost
  // The same two configs on the held-out runs (no runs: nothing held out).
  Candidate before_held_out, best_held_out;
  // False alarms on held-out healthy runs (no failures): the starting config's and the
  // best's. More with the best is a refusal: it would add false alarms on healthy runs.
  std::size_t held_out_healthy_runs = 0;
  std::size_t held_out_false_alarms_before = 0, held_out_false_alarms_best = 0;
  bool adds_false_alarms() const { return held_out_false_alarms_best > held_out_false_alarms_before; }
  std::size_t evaluations = 0;
  double seconds = 0;
  std::vector<std::string> notes;  // e.g. runs without a plant fit
};

// Precomputes each recording's spectral metrics first (precompute_spectral_metrics):
// they do not depend on the gains, so every candidate reuses them. Open loop, it also
// records the snapshot-only filters' answers under the starting config
// (record_filter_memo), which every candidate follows where its calls are the same.
// `held_out` runs never guide the search; they score `before` and `best` at the end.
TuneResult tune(std::vector<TuneRun>& runs, std::vector<TuneParam>& params, const TuneOptions& options,
                std::vector<TuneRun>* held_out = nullptr);

// The overrides a candidate stands for.
Overrides candidate_overrides(const std::vector<TuneParam>& params, const std::vector<double>& values);
// Paste-ready TOML: one table per section, keys in the order of the space.
std::string toml_snippet(const std::vector<TuneParam>& params, const std::vector<double>& values);

}  // namespace orbit
