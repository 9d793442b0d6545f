// SPDX-License-Identifier: Apache-2.0
#pragma once
// Good / warning / danger zones of one metric (docs/controller.md), the margin of
// a value inside its band, and a tracker that only leaves a worse zone once the
// value is back by a hysteresis margin (so a metric on a line does not chatter).

#include <optional>
#include <string>
#include <string_view>

namespace orbit {

enum class Zone { good = 0, warning = 1, danger = 2 };

std::string_view to_string(Zone zone);
std::optional<Zone> zone_from_string(std::string_view name);

// A band is oriented by its two lines: good > danger means higher is better
// (entropy), good < danger means lower is better (dominant ratio). Between the
// lines lies the warning zone.
struct ZoneBand {
  double good = 0.0;
  double danger = 0.0;

  bool higher_is_better() const { return good > danger; }
  double width() const { return good > danger ? good - danger : danger - good; }
  // NaN is danger: a metric that cannot be computed is not good news.
  Zone classify(double value) const;
  // 1 on the good line, 0 on the danger line, linear between, clamped to [-1, 2].
  double margin(double value) const;
  // "< 1.50" / "> 0.60": the danger side, for readable reasons.
  std::string danger_text() const;
};

class ZoneTracker {
 public:
  // `hysteresis` is the share of the band's width by which a value must be back on
  // the better side of a line before the better zone is entered again.
  Zone update(double value, const ZoneBand& band, double hysteresis);
  Zone zone() const { return zone_; }
  void reset() { zone_ = Zone::good; }

 private:
  Zone zone_ = Zone::good;
};

}  // namespace orbit
