// SPDX-License-Identifier: Apache-2.0
#include "controllers/zones.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace orbit {

std::string_view to_string(Zone zone) {
  switch (zone) {
    case Zone::good: return "good";
    case Zone::warning: return "warning";
    case Zone::danger: return "danger";
  }
  return "danger";
}

std::optional<Zone> zone_from_string(std::string_view name) {
  if (name == "good") return Zone::good;
  if (name == "warning") return Zone::warning;
  if (name == "danger") return Zone::danger;
  return std::nullopt;
}

Zone ZoneBand::classify(double value) const {
  if (std::isnan(value)) return Zone::danger;
  // Signed distance toward the good side, so one set of comparisons serves both
  // orientations.
  const double sign = higher_is_better() ? 1.0 : -1.0;
  if (sign * (value - good) >= 0.0) return Zone::good;
  if (sign * (value - danger) > 0.0) return Zone::warning;
  return Zone::danger;
}

double ZoneBand::margin(double value) const {
  if (std::isnan(value)) return -1.0;
  const double span = good - danger;
  if (span == 0.0) return classify(value) == Zone::good ? 2.0 : -1.0;
  return std::clamp((value - danger) / span, -1.0, 2.0);
}

std::string ZoneBand::danger_text() const {
  char text[48];
  std::snprintf(text, sizeof text, "%s %.3g", higher_is_better() ? "<" : ">", danger);
  return text;
}

Zone ZoneTracker::update(double value, const ZoneBand& band, double hysteresis) {
  const Zone raw = band.classify(value);
  if (raw >= zone_) {
    zone_ = raw;  // worse (or same): at once
    return zone_;
  }
  // Better: only once the value is past the line by the hysteresis margin.
  const double sign = band.higher_is_better() ? 1.0 : -1.0;
  const double pad = hysteresis * band.width();
  const double line = zone_ == Zone::danger ? band.danger : band.good;
  if (sign * (value - line) > pad) {
    zone_ = zone_ == Zone::danger && raw == Zone::good && sign * (value - band.good) <= pad ? Zone::warning : raw;
  }
  return zone_;
}

}  // namespace orbit
