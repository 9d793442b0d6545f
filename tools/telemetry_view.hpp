// SPDX-License-Identifier: Apache-2.0
#pragma once
// Text rendering of telemetry for `orbit watch`: one line per run, and a detail tree.

#include <cstdint>
#include <map>
#include <string>

#include "protocol/messages.hpp"

namespace orbit {

struct ViewStyle {
  bool color = false;  // ANSI colours for states
  int bar_width = 10;
};

// A run's telemetry with each metric's last value held: spectral metrics arrive only
// on probe steps, so most messages carry the scalar ones alone.
class HeldTelemetry {
 public:
  // Takes the newer message's fields and metrics; a metric it lacks keeps its last value
  // and the step that value came from.
  void update(const Telemetry& t);
  const Telemetry& latest() const { return latest_; }  // latest fields, every held metric
  // Steps since a metric's value arrived (0 when it came with the latest message).
  std::int64_t age(const std::string& metric) const;

 private:
  Telemetry latest_;
  std::map<std::string, std::int64_t> metric_step_;
};

// "run-a  step 1840  entropy 2.31  φ-prox 0.87  ███████░░░ DRIFTING". The bar shows the
// run's health in [0, 1] (metric "health"; else φ-proximity), "-" for missing metrics.
std::string run_line(const Telemetry& t, const ViewStyle& style, std::size_t run_width = 0);
// The same with held values; a value from an earlier step shows its age: "entropy 2.31 (10 ago)".
std::string run_line(const HeldTelemetry& t, const ViewStyle& style, std::size_t run_width = 0);

// The detail tree under a run line: loss, basin (and forecast), health metrics,
// lr scale, last reason.
std::string run_tree(const Telemetry& t, const ViewStyle& style);
std::string run_tree(const HeldTelemetry& t, const ViewStyle& style);

}  // namespace orbit
