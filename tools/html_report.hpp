// SPDX-License-Identifier: Apache-2.0
#pragma once
// Self-contained HTML reports (inline SVG and CSS, no scripts, no external files)
// for replay and tune: per run, the loss with failures and alarms, the state bands,
// every zoned metric over its good/warning/danger zones, burns, the lr scale and the
// domain weights over steps.

#include <string>
#include <vector>

#include "tools/replay.hpp"

namespace orbit {

struct ReportSection {
  std::string heading;  // e.g. "before" / "after" in tune reports ("" for none)
  const RunReplay* replay = nullptr;
};

// `intro_html` goes above the plots (a summary table, the TOML snippet ...).
std::string html_report(const std::string& title, const std::string& intro_html,
                        const std::vector<ReportSection>& sections);

// The summary table of replays, as HTML.
std::string replay_summary_html(const std::vector<const RunReplay*>& runs);

std::string html_escape(std::string_view text);

}  // namespace orbit
