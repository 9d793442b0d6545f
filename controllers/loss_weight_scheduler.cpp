// SPDX-License-Identifier: Apache-2.0
#include "controllers/loss_weight_scheduler.hpp"

#include <algorithm>
#include <cmath>

namespace orbit {

namespace {

double quantize(double value, double quantum) {
  return quantum > 0.0 ? std::round(value / quantum) * quantum : value;
}

}  // namespace

const std::map<std::string, double>& LossWeightScheduler::update(OrbitState state, double collapse_pressure,
                                                                 double phi_pressure,
                                                                 const LossWeightParams& params) {
  const bool calm = state == OrbitState::stable;
  auto weight = [&](double pressure, double max) {
    if (calm || !std::isfinite(pressure)) return 0.0;
    return std::min(max, quantize(std::clamp(pressure, 0.0, 1.0) * max, params.quantum));
  };
  weights_["collapse"] = weight(collapse_pressure, params.collapse_max);
  weights_["phi"] = weight(phi_pressure, params.phi_max);
  return weights_;
}

bool LossWeightScheduler::zero() const {
  return std::all_of(weights_.begin(), weights_.end(), [](const auto& kv) { return kv.second == 0.0; });
}

}  // namespace orbit
