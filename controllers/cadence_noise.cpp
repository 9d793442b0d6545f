// SPDX-License-Identifier: Apache-2.0
#include "controllers/cadence_noise.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "controllers/window_median.hpp"

namespace orbit {
namespace {

// The q-quantile (lower) of sorted values: the element std::nth_element would put at
// that index.
double quantile_of_sorted(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
}

// Replaces one `old_value` of the sorted vector by `value`, keeping it sorted, in one
// pass: the old value's place is counted (no branches), then the new value moves from
// there to its own place as in an insertion sort. Insert-then-erase with binary searches
// cost ~16 % of a tune's CPU in mispredicted branches and two moves of the tail. Gives
// the vector insert-then-erase gives: a sorted vector of the same values is unique,
// as the values are |differences| (no NaN, no -0.0: equal values are equal bits).
void replace_sorted(std::vector<double>& sorted, double old_value, double value) {
  const std::size_t n = sorted.size();
  double* v = sorted.data();
  // Four counts side by side: the compiler packs them into vector compares.
  std::size_t c[4] = {0, 0, 0, 0};
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (std::size_t k = 0; k < 4; ++k) c[k] += v[j + k] < old_value;
  std::size_t i = c[0] + c[1] + c[2] + c[3];
  for (; j < n; ++j) i += v[j] < old_value;  // now v[i] == old_value
  if (value >= old_value) {
    for (; i + 1 < n && v[i + 1] < value; ++i) v[i] = v[i + 1];
  } else {
    for (; i > 0 && v[i - 1] > value; --i) v[i] = v[i - 1];
  }
  v[i] = value;
}

}  // namespace

std::optional<double> CadenceNoise::update(std::int64_t step, double x, const CadenceNoiseParams& p) {
  restarted_ = false;
  early_z_.reset();
  if (!std::isfinite(x)) return std::nullopt;
  if (last_step_) {
    const std::int64_t gap = std::max<std::int64_t>(step - *last_step_, 1);
    const double change = gap_ > 0 ? static_cast<double>(std::max(gap, gap_)) / static_cast<double>(std::min(gap, gap_)) : 1.0;
    if (change > p.cadence_change) {  // another cadence: learn its noise afresh, keep the level
      diffs_.clear();
      sorted_diffs_.clear();
      restarted_ = true;
    }
    if (diffs_.empty()) gap_ = gap;
  }
  last_step_ = step;
  std::optional<double> z;
  double accepted = x;
  if (!values_.empty()) {
    const std::size_t n = std::min(values_.size(), p.level_window);
    const double level = median_of_last(values_, n);
    if (!diffs_.empty() && diffs_.size() >= std::min(p.early_warmup, p.warmup)) {
      // The 90th percentile of |successive differences|, as a Gaussian σ (q90 of
      // |N(0, 2σ²)| is 1.6449·√2·σ). Not the median: noisy runs have heavy-tailed or
      // two-level losses (ImageNet ViT logged every 500 steps swings 2.9 <-> 4.3 on
      // ~15% of snapshots) and their routine swings must not read as spikes.
      const double noise =
          std::max(quantile_of_sorted(sorted_diffs_, 0.9) / (1.6449 * std::sqrt(2.0)), p.min_noise);
      if (diffs_.size() >= p.warmup) {
        z = (x - level) / noise;
        early_z_ = z;
        accepted = level + std::clamp(x - level, -p.clip * noise, p.clip * noise);
      } else {
        // Early, from a few differences: their 90th percentile is the largest one or
        // two, which at a run's start or a new cadence are the descent itself or a
        // spike that entered unclipped. Their median (as a Gaussian σ: the median of
        // |N(0, 2σ²)| is 0.6745·√2·σ) is what the run's wobble is.
        const double early_noise =
            std::max(quantile_of_sorted(sorted_diffs_, 0.5) / (0.6745 * std::sqrt(2.0)), p.min_noise);
        early_z_ = (x - level) / early_noise;
      }
    }
    const double diff = std::abs(accepted - values_.back());
    if (!diffs_.empty() && diffs_.size() >= p.noise_window) {  // full: the oldest leaves as this one enters
      replace_sorted(sorted_diffs_, diffs_.front(), diff);
      diffs_.pop_front();
    } else {
      sorted_diffs_.insert(std::upper_bound(sorted_diffs_.begin(), sorted_diffs_.end(), diff), diff);
    }
    diffs_.push_back(diff);
    while (diffs_.size() > p.noise_window) {
      sorted_diffs_.erase(std::lower_bound(sorted_diffs_.begin(), sorted_diffs_.end(), diffs_.front()));
      diffs_.pop_front();
    }
  }
  values_.push_back(accepted);
  while (values_.size() > p.level_window) values_.pop_front();
  return z;
}

void CadenceNoise::reset() {
  values_.clear();
  diffs_.clear();
  sorted_diffs_.clear();
  last_step_.reset();
  gap_ = 0;
  restarted_ = false;
  early_z_.reset();
}

}  // namespace orbit
