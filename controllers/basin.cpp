// SPDX-License-Identifier: Apache-2.0
#include "controllers/basin.hpp"

namespace orbit {

std::string_view to_string(Basin basin) {
  switch (basin) {
    case Basin::creative: return "CREATIVE";
    case Basin::semantic_loop: return "SEMANTIC_LOOP";
    case Basin::token_collapse: return "TOKEN_COLLAPSE";
    case Basin::unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

std::optional<Basin> basin_from_string(std::string_view name) {
  if (name == "CREATIVE") return Basin::creative;
  if (name == "SEMANTIC_LOOP") return Basin::semantic_loop;
  if (name == "TOKEN_COLLAPSE") return Basin::token_collapse;
  if (name == "UNKNOWN") return Basin::unknown;
  return std::nullopt;
}

}  // namespace orbit
