// SPDX-License-Identifier: Apache-2.0
#pragma once
// Two-sided CUSUM change detector over a standardized series (z-scores): catches a
// sustained shift that no single sample makes obvious, e.g. a gradient norm that
// creeps up a little every step while the loss barely moves.

#include <cstdint>

namespace orbit {

struct CusumParams {
  double k = 1.0;   // allowance: drift per sample (in sd) that is ignored
  double h = 12.0;  // alarm when a cumulative sum passes h
  double clip = 4.0;  // each sample counts at most this much (one spike cannot alarm alone)
};

struct CusumStatus {
  double upper = 0.0;  // evidence of an upward shift
  double lower = 0.0;  // evidence of a downward shift (>= 0)
  bool up = false;     // upper > h
  bool down = false;   // lower > h
  std::int64_t up_run = 0;    // samples since upper was last 0
  std::int64_t down_run = 0;  // samples since lower was last 0
};

class Cusum {
 public:
  CusumStatus update(double z, const CusumParams& params);
  void reset() { status_ = {}; }
  const CusumStatus& status() const { return status_; }

 private:
  CusumStatus status_;
};

}  // namespace orbit
