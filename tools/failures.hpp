// SPDX-License-Identifier: Apache-2.0
#pragma once
// What counts as a failure of a run, and how alarms are scored against failures.
//
// Failures come from a labels file (labels.toml in the run directory, or --labels):
//
//   healthy = false              # true: the run has no failures (every alarm is false)
//   [[failure]]
//   peak = 30300                 # the loss peak, or the first non-finite loss (required)
//   onset = 30200                # first abnormal step (default: peak)
//   end = 30600                  # recovered by (default: peak)
//   kind = "spike"               # spike | divergence | collapse | ...
//   note = "loss 9.34, grad norm 8.44"
//
// or are detected from the loss: a non-finite loss, or a loss above `ratio` times its
// baseline, the running minimum of the median of the last `baseline_window` ordinary
// losses (a median, so one-step outliers of a noisy loss move it little); consecutive
// such snapshots are one failure, peaking at the highest (or first non-finite) loss.
//
// Scoring: an alarm is a snapshot whose state is at or above the alarm level; alarm
// episodes are runs of consecutive alarm snapshots. Each failure has a zone: from
// `lead_window` snapshots before its peak to `settle` snapshots after its end. An
// episode belongs to the first failure it starts in (lead window to the failure's
// end), else to the first whose settling time it starts in; one that starts in no zone
// is a false alarm. A failure is detected by the first episode of its own (or a
// false alarm still up when its zone opens, counted from there) that overlaps its
// zone: lead = peak step - first alarm step (>= 0: flagged no later than the peak,
// < 0: late). An alarm raised for one failure never counts for the next.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace orbit {

struct FailureEvent {
  std::int64_t onset = 0;
  std::int64_t peak = 0;
  std::int64_t end = 0;
  std::string kind;
  std::string note;
  std::string source;  // "labels" | "detected"
};

struct Labels {
  bool healthy = false;
  std::vector<FailureEvent> failures;
  std::filesystem::path file;
};

class LabelsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Labels load_labels(const std::filesystem::path& file);  // throws LabelsError
// <run_dir>/labels.toml when it exists.
std::optional<Labels> labels_beside(const std::filesystem::path& run_dir);

struct LossPoint {
  std::int64_t step = 0;
  double loss = 0.0;
};

struct DetectOptions {
  double ratio = 2.0;                // loss above ratio x baseline is a failure
  std::size_t baseline_window = 15;  // snapshots in the baseline's running median (1: raw loss)
};
std::vector<FailureEvent> detect_failures(std::span<const LossPoint> points, const DetectOptions& options = {});

struct ScoreOptions {
  std::size_t lead_window = 50;  // snapshots up to the peak in which an alarm counts as in time
  std::size_t settle = 50;       // snapshots after a failure's end in which alarms are not false
};

struct AlarmEpisode {
  std::int64_t start = 0;  // step of the first alarm snapshot
  std::int64_t end = 0;    // step of the last
  std::size_t snapshots = 0;
  bool false_alarm = false;
};

struct Detection {
  FailureEvent failure;
  std::optional<std::int64_t> first_alarm;  // step
  std::optional<std::int64_t> lead;         // peak - first_alarm (negative: late)
  std::int64_t lead_snapshots = 0;          // the same, counted in snapshots
  bool in_time() const { return lead && *lead >= 0; }
};

struct Scoring {
  std::vector<Detection> detections;
  std::vector<AlarmEpisode> episodes;
  std::size_t false_alarms = 0;
  std::size_t in_time = 0;  // failures flagged no later than their peak
  std::size_t late = 0;     // flagged after the peak
  std::size_t missed = 0;
  std::size_t alarm_snapshots_outside = 0;  // alarm snapshots in no failure's zone
};

// steps[i] and alarm[i] describe snapshot i (steps non-decreasing).
Scoring score_alarms(std::span<const std::int64_t> steps, std::span<const std::uint8_t> alarm,
                     const std::vector<FailureEvent>& failures, const ScoreOptions& options = {});

// The two simple detectors large-model teams use, as baselines (a non-finite loss
// always alarms):
//   mean multiple:  loss > multiple x the mean of every earlier finite loss;
//   moving average: loss > ratio x the mean of the previous `window` finite losses
//                   (from the 5th loss on).
std::vector<std::uint8_t> baseline_mean_multiple(std::span<const double> losses, double multiple = 10.0);
std::vector<std::uint8_t> baseline_moving_average(std::span<const double> losses, double ratio = 1.5,
                                                  std::size_t window = 50);

}  // namespace orbit
