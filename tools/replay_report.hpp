// SPDX-License-Identifier: Apache-2.0
#pragma once
// Replay results as text (terminal), JSON and CSV.

#include <string>
#include <vector>

#include "tools/replay.hpp"

namespace orbit {

std::string replay_text(const RunReplay& r, bool verbose);
std::string replay_json(const std::vector<const RunReplay*>& runs, bool timeline);
std::string replay_csv(const std::vector<const RunReplay*>& runs);

}  // namespace orbit
