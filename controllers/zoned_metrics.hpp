// SPDX-License-Identifier: Apache-2.0
#pragma once
// The zoned metrics of one run and the health they add up to: the Navigator's
// "zones" stage. Per metric (kZoneMetrics): EWMA smoothing, the zone with
// hysteresis, a least-squares trend and its forecast of a danger crossing, and
// the early-training hold on spectral metrics. Health is the smallest margin of
// the metrics that alarm (1 on the good line, 0 on the danger line), and its
// slope over filters.health_window points is the PID's derivative input.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "controllers/ewma.hpp"
#include "controllers/finding.hpp"
#include "controllers/metric_report.hpp"
#include "controllers/navigator_config.hpp"
#include "controllers/trend.hpp"
#include "controllers/zone_metric.hpp"
#include "controllers/zones.hpp"

namespace orbit {

struct ZoneReading {
  PerZoneMetric<Zone> now;       // the zone each metric is in (raw danger counts at once)
  PerZoneMetric<Zone> forecast;  // danger where the trend crosses into it within forecast_horizon
  PerZoneMetric<double> margins;  // per metric, what health reads (see ZoneBand::margin)
  std::optional<double> health;        // none when no alarming metric had a value
  std::optional<double> health_ahead;  // the trends' health pid.lookahead_steps from now
  double health_slope = 0.0;           // health per training step (0 until the window has a fit)
};

// The trends of the metrics that read only the snapshots (the spectral ones, loop
// rate, attention-logit growth; not the z-scores, not health), recorded in one replay
// (replay_memo.hpp), one memo per kZoneMetrics index.
struct ZonedMetricsMemo {
  std::array<TrendMemo, kZoneMetricCount> trends;
};

class ZonedMetrics {
 public:
  explicit ZonedMetrics(std::int64_t health_window)
      : health_trend_(static_cast<std::size_t>(health_window)) {}

  // One closed step. `values`: this step's value per metric (z-scores only once
  // they held); `extra_margins`: margins of alarms that are not zones (CUSUM, loss
  // jump), which weigh on health too; `nonfinite`: health is -1;
  // `early_corroborated`: the run corroborates an early spectral alarm at this step
  // (EarlyCorroboration; without it one that held still waits); `sparse_loss_ratio`:
  // ScalarReading's, the loss over its level when this snapshot alone confirmed
  // loss_z. Appends danger, warning and drift findings; writes `health` to `metrics`
  // (when not null).
  ZoneReading update(std::int64_t step, const PerZoneMetric<double>& values, const PerZoneMetric<ZoneConfig>& zones,
                     const NavigatorConfig& config, const std::vector<double>& extra_margins, bool nonfinite,
                     MetricSink* metrics, std::vector<Finding>& findings, bool early_corroborated = true,
                     std::optional<double> sparse_loss_ratio = std::nullopt);

  void set_windows(std::int64_t trend_window, std::int64_t health_window);  // a new config
  void restart_trends();  // a gap in the snapshots: trends start over, smoothing and zones stay
  void reset();           // a new branch: every filter starts over

  // Records the metric trends into `memo`, or answers them from it where the pushes
  // are the recorded ones; only before the first update.
  void record_into(ZonedMetricsMemo* memo);
  void follow(const ZonedMetricsMemo* memo);

 private:
  struct MetricTrack {
    Ewma ewma;
    ZoneTracker zone;
    TrendWindow trend;
    std::optional<std::int64_t> danger_since;  // spectral metrics: early-training hold
    std::int64_t danger_readings = 0;          // loop_rate: consecutive raw readings in danger
    std::optional<double> last_value;          // z-scores: the held value of the snapshot before, if it had one
  };
  // push(step, value) and fit() of a metric's trend, answered from the memo when it can.
  TrendFit push_trend(std::size_t metric, TrendWindow& trend, double step, double value);
  // A change the memo does not record (new capacity): the trends leave it first.
  void leave_trend_memos();

  PerZoneMetric<MetricTrack> tracks_;  // by kZoneMetrics index
  std::array<TrendMemoCursor, kZoneMetricCount> trend_memo_;  // outlives the tracks (reset)
  TrendWindow health_trend_;
};

}  // namespace orbit
