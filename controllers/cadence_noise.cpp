// SPDX-License-Identifier: Apache-2.0
#include "controllers/cadence_noise.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "controllers/window_median.hpp"

namespace orbit {
namespace {

// The q-quantile (lower) of sorted values: the element std::nth_element would put at
// that index.
double quantile_of_sorted(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1))];
}

// The numbers of values below `a` and below `b` in sorted[0, n), n >= 1: std::lower_bound's
// indices, found by halving without branches (the selects compile to conditional
// moves), so a random value costs no mispredictions. The loop it replaced compared and
// counted all n values: about a quarter of CadenceNoise::update's perf samples
// (bench_tune). The two halvings run side by side, sharing the loop's arithmetic: one
// search after the other took ~20 % of the update's instructions.
void count_below_both(const double* sorted, std::size_t n, double a, double b, std::size_t& below_a,
                      std::size_t& below_b) {
  const double* base_a = sorted;
  const double* base_b = sorted;
  while (n > 1) {
    const std::size_t half = n / 2;
    base_a = base_a[half] < a ? base_a + half : base_a;
    base_b = base_b[half] < b ? base_b + half : base_b;
    n -= half;
  }
  below_a = static_cast<std::size_t>(base_a - sorted) + (*base_a < a ? 1 : 0);
  below_b = static_cast<std::size_t>(base_b - sorted) + (*base_b < b ? 1 : 0);
}

// Replaces one `old_value` of the sorted vector by `value`, keeping it sorted: both
// places are found without branches and the values between move by one (memmove).
// Insert-then-erase with binary searches cost ~16 % of a tune's CPU in mispredicted
// branches and two moves of the tail, and an insertion-sort walk from the old place
// mispredicted at its end. Gives the vector insert-then-erase gives: a sorted vector
// of the same values is unique, as the values are |differences| (no NaN, no -0.0:
// equal values are equal bits).
void replace_sorted(std::vector<double>& sorted, double old_value, double value) {
  double* v = sorted.data();
  const std::size_t n = sorted.size();
  std::size_t i = 0;  // v[i] == old_value, the first of its equals
  std::size_t j = 0;  // counts v[i] when value > old_value
  count_below_both(v, n, old_value, value, i, j);
  if (j > i) {  // moves up: v[i+1, j) shift down, value lands below the first value >= it
    std::memmove(v + i, v + i + 1, (j - 1 - i) * sizeof(double));
    v[j - 1] = value;
  } else {  // moves down or stays: v[j, i) shift up
    std::memmove(v + j + 1, v + j, (i - j) * sizeof(double));
    v[j] = value;
  }
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }

}  // namespace

bool same(const CadenceNoiseParams& a, const CadenceNoiseParams& b) {
  return a.level_window == b.level_window && a.noise_window == b.noise_window && a.warmup == b.warmup &&
         a.early_warmup == b.early_warmup && same_bits(a.clip, b.clip) && same_bits(a.min_noise, b.min_noise) &&
         same_bits(a.cadence_change, b.cadence_change);
}

bool same(const CadenceNoiseInput& a, const CadenceNoiseInput& b) { return a.step == b.step && same_bits(a.x, b.x); }

std::optional<double> CadenceNoise::update(std::int64_t step, double x, const CadenceNoiseParams& p) {
  const CadenceNoiseInput input{step, x};
  if (memo_.following()) {
    if (const CadenceNoiseOutput* o = memo_.recorded(input, p)) {
      restarted_ = o->restarted;
      early_z_ = o->early_z;
      rise_ = o->rise;
      return o->z;
    }
    memo_.leave([this](const CadenceNoiseInput& in, const CadenceNoiseParams& rp) { compute(in.step, in.x, rp); });
  }
  const std::optional<double> z = compute(step, x, p);
  memo_.computed(input, CadenceNoiseOutput{z, early_z_, rise_, restarted_}, p);
  return z;
}

std::optional<double> CadenceNoise::compute(std::int64_t step, double x, const CadenceNoiseParams& p) {
  restarted_ = false;
  early_z_.reset();
  rise_.reset();
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
    if (!diffs_.empty() && diffs_.size() >= p.warmup) {
      // The 90th percentile of |successive differences|, as a Gaussian σ (q90 of
      // |N(0, 2σ²)| is 1.6449·√2·σ). Not the median: noisy runs have heavy-tailed or
      // two-level losses (ImageNet ViT logged every 500 steps swings 2.9 <-> 4.3 on
      // ~15% of snapshots) and their routine swings must not read as spikes.
      const double noise =
          std::max(quantile_of_sorted(sorted_diffs_, 0.9) / (1.6449 * std::sqrt(2.0)), p.min_noise);
      z = (x - level) / noise;
      early_z_ = z;
      rise_ = x - level;
      accepted = level + std::clamp(x - level, -p.clip * noise, p.clip * noise);
    } else if (!diffs_.empty() && diffs_.size() >= p.early_warmup) {
      // Early, from a few differences: their 90th percentile is the largest one or
      // two, which at a run's start or a new cadence are the descent itself or a
      // spike that entered unclipped. Their median (as a Gaussian σ: the median of
      // |N(0, 2σ²)| is 0.6745·√2·σ) is what the run's wobble is.
      const double early_noise =
          std::max(quantile_of_sorted(sorted_diffs_, 0.5) / (0.6745 * std::sqrt(2.0)), p.min_noise);
      early_z_ = (x - level) / early_noise;
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
  memo_.on_reset();
  values_.clear();
  diffs_.clear();
  sorted_diffs_.clear();
  last_step_.reset();
  gap_ = 0;
  restarted_ = false;
  early_z_.reset();
  rise_.reset();
}

}  // namespace orbit
