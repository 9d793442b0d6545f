// SPDX-License-Identifier: Apache-2.0
#pragma once
// Penalty weights for the adapter's basin-aware loss: `collapse` (weight of
// max(0, h0 - H)) and `phi` (weight of the φ-drift penalty). Each rises linearly
// with its pressure (0 on the good line of its metrics, 1 on the danger line) up
// to its maximum; both are exactly zero while the run is STABLE.

#include <map>
#include <string>

#include "controllers/orbit_state_machine.hpp"

namespace orbit {

struct LossWeightParams {
  double collapse_max = 0.1;
  double phi_max = 0.05;
  double quantum = 0.005;  // weights are rounded to this, so tiny wiggles send no burn
};

class LossWeightScheduler {
 public:
  // Pressures in [0, 1] (clamped). Returns {"collapse": w, "phi": w}.
  const std::map<std::string, double>& update(OrbitState state, double collapse_pressure, double phi_pressure,
                                              const LossWeightParams& params);
  const std::map<std::string, double>& weights() const { return weights_; }
  bool zero() const;

 private:
  std::map<std::string, double> weights_{{"collapse", 0.0}, {"phi", 0.0}};
};

}  // namespace orbit
