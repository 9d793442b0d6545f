// SPDX-License-Identifier: Apache-2.0
#pragma once
// Text rendering of telemetry for `orbit watch`: one line per run, and a detail tree.

#include <string>

#include "protocol/messages.hpp"

namespace orbit {

struct ViewStyle {
  bool color = false;  // ANSI colours for states
  int bar_width = 10;
};

// "run-a  step 1840  entropy 2.31  φ-prox 0.87  ███████░░░ DRIFTING". The bar shows the
// run's health in [0, 1] (metric "health"; else φ-proximity), "-" for missing metrics.
std::string run_line(const Telemetry& t, const ViewStyle& style, std::size_t run_width = 0);

// The detail tree under a run line: loss, basin (and forecast), health metrics,
// lr scale, last reason.
std::string run_tree(const Telemetry& t, const ViewStyle& style);

}  // namespace orbit
