// SPDX-License-Identifier: Apache-2.0
#include "controllers/curriculum.hpp"

#include <algorithm>

namespace orbit {

namespace {

std::string phase_label(const std::vector<CurriculumPhase>& phases, std::int64_t i) {
  const auto& name = phases[static_cast<std::size_t>(i)].name;
  return "phase " + std::to_string(i) + (name.empty() ? "" : " (" + name + ")");
}

}  // namespace

std::optional<std::string> Curriculum::update(OrbitState state, bool entered_critical,
                                              const std::vector<CurriculumPhase>& phases,
                                              const CurriculumParams& params) {
  if (phases.empty()) return std::nullopt;
  clamp_to(phases.size());
  if (entered_critical) {
    stable_run_ = 0;
    if (phase_ == 0) return std::nullopt;
    --phase_;
    return "curriculum back to " + phase_label(phases, phase_) + ": run went CRITICAL";
  }
  stable_run_ = state == OrbitState::stable ? stable_run_ + 1 : 0;
  const auto last = static_cast<std::int64_t>(phases.size()) - 1;
  if (phase_ < last && stable_run_ >= params.advance_after_stable_steps) {
    ++phase_;
    stable_run_ = 0;
    return "curriculum advances to " + phase_label(phases, phase_) + " after " +
           std::to_string(params.advance_after_stable_steps) + " stable steps";
  }
  return std::nullopt;
}

void Curriculum::clamp_to(std::size_t phases) {
  if (phases == 0) return;
  phase_ = std::clamp<std::int64_t>(phase_, 0, static_cast<std::int64_t>(phases) - 1);
}

}  // namespace orbit
