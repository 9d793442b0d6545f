// SPDX-License-Identifier: Apache-2.0
#pragma once
// Robust running statistics of a scalar series (loss, log gradient norm): EWMA mean
// and variance, and the z-score of each new sample against the statistics *before*
// it. A sample far out is absorbed only up to `clip` standard deviations, so one
// spike neither hides the next nor inflates the variance for hundreds of steps.

#include <cstdint>

namespace orbit {

struct RobustStatsParams {
  double alpha = 0.05;       // weight of a new sample in mean and variance
  std::int64_t warmup = 20;  // samples before z-scores are trusted
  double clip = 3.0;         // residuals beyond clip·sd are absorbed as clip·sd
  double min_sd = 1e-6;      // absolute floor on the standard deviation
  double min_sd_rel = 0.0;   // floor as a share of |mean| (series with a scale)
};

struct RobustStatsStatus {
  double z = 0.0;         // (x - mean) / sd before this sample; 0 until ready
  double residual = 0.0;  // x - mean before this sample
  double raw_sd = 0.0;    // the standard deviation before this sample, without the floors
  bool ready = false;     // warmup done
  bool clipped = false;
  double mean = 0.0;  // after this sample (its sd, when wanted: RobustStats::sd)
};

class RobustStats {
 public:
  // Non-finite samples are not absorbed (the caller treats them as alarms).
  RobustStatsStatus update(double x, const RobustStatsParams& params);
  void reset();

  double mean() const { return mean_; }
  double sd(const RobustStatsParams& params) const;
  std::int64_t count() const { return count_; }
  bool ready(const RobustStatsParams& params) const { return count_ >= params.warmup; }

 private:
  double mean_ = 0.0;
  double var_ = 0.0;
  std::int64_t count_ = 0;
};

}  // namespace orbit
