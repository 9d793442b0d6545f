// SPDX-License-Identifier: Apache-2.0
#pragma once
// The hello a bench client (or a synthetic journal) opens a run with: protocol
// version 1, the lr actuator, one rank unless told otherwise.

#include <cstdint>
#include <optional>
#include <string>

#include "protocol/messages.hpp"

namespace orbit::bench {

inline Hello lr_hello(const std::string& run, const std::string& adapter, std::optional<double> base_lr,
                      std::int64_t rank = 0, std::int64_t world_size = 1) {
  Hello h;
  h.run = run;
  h.rank = rank;
  h.world_size = world_size;
  h.adapter = adapter;
  h.adapter_version = "0";
  h.versions = {1};
  h.actuators = {"lr"};
  h.base_lr = base_lr;
  return h;
}

}  // namespace orbit::bench
