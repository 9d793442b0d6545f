// SPDX-License-Identifier: Apache-2.0
#pragma once
// Curriculum over phases of domain sets: advance one phase after enough stable
// steps in a row, step back one phase when the run goes CRITICAL.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "controllers/orbit_state_machine.hpp"

namespace orbit {

struct CurriculumPhase {
  std::string name;
  std::vector<std::string> domains;  // the domains the adapter may draw in this phase
};

struct CurriculumParams {
  std::int64_t advance_after_stable_steps = 500;
};

class Curriculum {
 public:
  // One call per closed step. Returns a readable event when the phase moves.
  std::optional<std::string> update(OrbitState state, bool entered_critical, const std::vector<CurriculumPhase>& phases,
                                    const CurriculumParams& params);
  std::int64_t phase() const { return phase_; }
  std::int64_t stable_run() const { return stable_run_; }
  // A new phase list may be shorter: stay inside it.
  void clamp_to(std::size_t phases);

 private:
  std::int64_t phase_ = 0;
  std::int64_t stable_run_ = 0;
};

}  // namespace orbit
