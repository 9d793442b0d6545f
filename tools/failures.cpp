// SPDX-License-Identifier: Apache-2.0
#include "tools/failures.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>

#include "config/toml_table.hpp"

namespace orbit {

namespace fs = std::filesystem;

Labels load_labels(const fs::path& file) {
  Labels labels;
  labels.file = file;
  try {
    const std::string path = file.string();
    const toml::table root = load_toml_file(path);
    TomlTable t(&root, "", path);
    t.boolean("healthy", labels.healthy);
    std::string ignored;
    t.string("source", ignored);
    t.string("note", ignored);
    if (const toml::array* failures = t.tables("failure")) {
      for (std::size_t i = 0; i < failures->size(); ++i) {
        TomlTable f((*failures)[i].as_table(), "failure[" + std::to_string(i) + "]", path);
        FailureEvent e;
        const std::int64_t none = std::numeric_limits<std::int64_t>::min();
        e.peak = none;
        f.integer("peak", e.peak, 0, std::numeric_limits<std::int64_t>::max());
        if (e.peak == none) f.fail("peak", "is required (an integer step)");
        e.onset = e.end = e.peak;
        f.integer("onset", e.onset, 0, e.peak);
        f.integer("end", e.end, e.peak, std::numeric_limits<std::int64_t>::max());
        e.kind = "failure";
        f.string("kind", e.kind);
        f.string("note", e.note);
        f.done();
        e.source = "labels";
        labels.failures.push_back(std::move(e));
      }
    }
    t.done();
  } catch (const ConfigError& e) {
    throw LabelsError(e.what());
  }
  if (labels.healthy && !labels.failures.empty())
    throw LabelsError(file.string() + ": healthy = true but failures are listed");
  std::sort(labels.failures.begin(), labels.failures.end(),
            [](const FailureEvent& a, const FailureEvent& b) { return a.peak < b.peak; });
  return labels;
}

std::optional<Labels> labels_beside(const fs::path& run_dir) {
  const fs::path file = run_dir / "labels.toml";
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  return load_labels(file);
}

std::vector<FailureEvent> detect_failures(std::span<const LossPoint> points, const DetectOptions& options) {
  std::vector<FailureEvent> out;
  // The baseline is the running minimum of the loss's running median, not of the raw
  // loss: one low outlier in a noisy per-batch loss (modded-nanogpt 1.5B: 0.91 among
  // ~2.8) would otherwise make every ordinary value after it a "failure" (254 on that
  // healthy trace with the raw minimum, 0 with a 15-snapshot median).
  double running_min = std::numeric_limits<double>::infinity();
  std::vector<double> recent;  // the last baseline_window ordinary losses, oldest first
  std::vector<double> sorted;
  std::optional<FailureEvent> open;
  double open_peak_loss = 0.0;
  bool open_peak_nonfinite = false;
  for (const auto& p : points) {
    const bool nonfinite = !std::isfinite(p.loss);
    const bool bad = nonfinite || (std::isfinite(running_min) && p.loss > options.ratio * running_min);
    if (bad) {
      if (!open) {
        open = FailureEvent{p.step, p.step, p.step, nonfinite ? "divergence" : "spike", "", "detected"};
        open_peak_loss = p.loss;
        open_peak_nonfinite = nonfinite;
      } else {
        open->end = p.step;
        if (!open_peak_nonfinite && (nonfinite || p.loss > open_peak_loss)) {
          open->peak = p.step;
          open_peak_loss = p.loss;
          open_peak_nonfinite = nonfinite;
          if (nonfinite) open->kind = "divergence";
        }
      }
      continue;
    }
    if (open) {
      out.push_back(*open);
      open.reset();
    }
    if (recent.size() >= std::max<std::size_t>(1, options.baseline_window)) recent.erase(recent.begin());
    recent.push_back(p.loss);
    sorted.assign(recent.begin(), recent.end());
    const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
    std::nth_element(sorted.begin(), middle, sorted.end());
    running_min = std::min(running_min, *middle);
  }
  if (open) out.push_back(*open);
  for (auto& f : out) {
    if (f.kind == "divergence") f.note = "non-finite loss";
    else f.note = "loss above " + std::to_string(options.ratio).substr(0, 4) + "x its baseline";
  }
  return out;
}

Scoring score_alarms(std::span<const std::int64_t> steps, std::span<const std::uint8_t> alarm,
                     const std::vector<FailureEvent>& failures, const ScoreOptions& options) {
  Scoring s;
  const std::size_t n = std::min(steps.size(), alarm.size());
  // Episodes as index ranges.
  std::vector<std::pair<std::size_t, std::size_t>> eps;
  for (std::size_t i = 0; i < n;) {
    if (!alarm[i]) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j + 1 < n && alarm[j + 1]) ++j;
    eps.emplace_back(i, j);
    i = j + 1;
  }
  auto index_at_or_after = [&](std::int64_t step) {
    return static_cast<std::size_t>(std::lower_bound(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(n), step) -
                                    steps.begin());
  };
  auto index_at_or_before = [&](std::int64_t step) -> std::ptrdiff_t {
    return std::upper_bound(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(n), step) - steps.begin() - 1;
  };
  // Each failure's window (first index that counts) and zone end (last index that counts).
  struct Zone {
    std::size_t window_start, peak, end, zone_end;
  };
  std::vector<Zone> zones;
  for (const auto& f : failures) {
    std::size_t peak = index_at_or_after(f.peak);
    if (peak >= n) peak = n ? n - 1 : 0;
    const std::size_t window_start = peak >= options.lead_window ? peak - options.lead_window : 0;
    const auto end = static_cast<std::size_t>(
        std::max<std::ptrdiff_t>(index_at_or_before(f.end), static_cast<std::ptrdiff_t>(peak)));
    zones.push_back({window_start, peak, end, end + options.settle});
  }
  // An episode belongs to the first failure it starts in (from the lead window to the
  // failure's end), else to the first whose settling time it starts in; one that starts
  // in no zone is a false alarm.
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> owner(eps.size(), kNone);
  for (std::size_t e = 0; e < eps.size(); ++e) {
    const std::size_t a = eps[e].first;
    for (std::size_t k = 0; k < zones.size() && owner[e] == kNone; ++k)
      if (a >= zones[k].window_start && a <= zones[k].end) owner[e] = k;
    for (std::size_t k = 0; k < zones.size() && owner[e] == kNone; ++k)
      if (a >= zones[k].window_start && a <= zones[k].zone_end) owner[e] = k;
  }
  std::vector<std::uint8_t> in_zone(n, 0);
  for (std::size_t k = 0; k < failures.size(); ++k) {
    const Zone& z = zones[k];
    Detection d;
    d.failure = failures[k];
    for (std::size_t i = z.window_start; i < n && i <= z.zone_end; ++i) in_zone[i] = 1;
    for (std::size_t e = 0; e < eps.size(); ++e) {
      const auto [a, b] = eps[e];
      // Alarms raised for an earlier failure do not detect this one; a false alarm that is
      // still up when this failure's window opens does (from the window start).
      if (b < z.window_start || a > z.zone_end || (owner[e] != k && owner[e] != kNone)) continue;
      const std::size_t first = std::max(a, z.window_start);
      d.first_alarm = steps[first];
      d.lead = d.failure.peak - steps[first];
      d.lead_snapshots = static_cast<std::int64_t>(z.peak) - static_cast<std::int64_t>(first);
      break;
    }
    if (!d.first_alarm) ++s.missed;
    else if (d.in_time()) ++s.in_time;
    else ++s.late;
    s.detections.push_back(std::move(d));
  }
  for (std::size_t i = 0; i < n; ++i)
    if (alarm[i] && !in_zone[i]) ++s.alarm_snapshots_outside;
  for (std::size_t e = 0; e < eps.size(); ++e) {
    AlarmEpisode ep{steps[eps[e].first], steps[eps[e].second], eps[e].second - eps[e].first + 1, owner[e] == kNone};
    if (ep.false_alarm) ++s.false_alarms;
    s.episodes.push_back(ep);
  }
  return s;
}

std::vector<std::uint8_t> baseline_mean_multiple(std::span<const double> losses, double multiple) {
  std::vector<std::uint8_t> out(losses.size(), 0);
  double sum = 0.0;
  std::size_t count = 0;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    const double l = losses[i];
    if (!std::isfinite(l)) {
      out[i] = 1;
      continue;
    }
    if (count > 0 && l > multiple * (sum / static_cast<double>(count))) out[i] = 1;
    sum += l;
    ++count;
  }
  return out;
}

std::vector<std::uint8_t> baseline_moving_average(std::span<const double> losses, double ratio, std::size_t window) {
  std::vector<std::uint8_t> out(losses.size(), 0);
  std::deque<double> recent;
  double sum = 0.0;
  for (std::size_t i = 0; i < losses.size(); ++i) {
    const double l = losses[i];
    if (!std::isfinite(l)) {
      out[i] = 1;
      continue;
    }
    if (recent.size() >= 5 && l > ratio * (sum / static_cast<double>(recent.size()))) out[i] = 1;
    recent.push_back(l);
    sum += l;
    if (recent.size() > window) {
      sum -= recent.front();
      recent.pop_front();
    }
  }
  return out;
}

}  // namespace orbit
