// SPDX-License-Identifier: Apache-2.0
// A consumer of Orbit::libtorch_adapter that needs no torch headers itself: a burn
// scheduled at step 10 for 5 steps governs steps 10-14 and then lets go.
// Linking it pulls in LibTorch through the adapter target.
#include <cstdio>

#include "adapters/libtorch/burn_schedule.hpp"

int main() {
  orbit::Burn burn;
  burn.run = "consumer-run";
  burn.seq = 1;
  burn.apply_at_step = 10;
  burn.expires_after_steps = 5;
  burn.lr_scale = 0.5;
  orbit::BurnSchedule schedule;
  schedule.add(burn);
  const bool waits = schedule.advance(9).empty() && schedule.lr_scale() == 1.0;
  const bool applies = schedule.advance(10).size() == 1 && schedule.lr_scale() == 0.5;
  schedule.advance(15);
  const bool expires = schedule.lr_scale() == 1.0;
  std::printf("burn schedule: waits %d, applies %d, expires %d\n", waits, applies, expires);
  return waits && applies && expires ? 0 : 1;
}
