// SPDX-License-Identifier: Apache-2.0
#include "controllers/change_detector.hpp"

#include <algorithm>
#include <cmath>

namespace orbit {

CusumStatus Cusum::update(double z, const CusumParams& params) {
  if (!std::isfinite(z)) return status_;  // non-finite input is an alarm elsewhere
  const double c = std::clamp(z, -params.clip, params.clip);
  status_.upper = std::max(0.0, status_.upper + c - params.k);
  status_.lower = std::max(0.0, status_.lower - c - params.k);
  status_.up_run = status_.upper > 0.0 ? status_.up_run + 1 : 0;
  status_.down_run = status_.lower > 0.0 ? status_.down_run + 1 : 0;
  status_.up = status_.upper > params.h;
  status_.down = status_.lower > params.h;
  return status_;
}

}  // namespace orbit
