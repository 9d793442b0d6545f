// SPDX-License-Identifier: Apache-2.0
#pragma once
// The basins a run can head for (docs/controller.md, "Basins" and "States").

#include <optional>
#include <string_view>

namespace orbit {

enum class Basin {
  creative,        // healthy orbit
  semantic_loop,   // repetition
  token_collapse,  // entropy / rank collapse, a dominant eigenvalue takes over
  unknown,         // not enough evidence
};

// Upper case, as on the wire: "CREATIVE", "SEMANTIC_LOOP", "TOKEN_COLLAPSE", "UNKNOWN".
std::string_view to_string(Basin basin);
std::optional<Basin> basin_from_string(std::string_view name);

}  // namespace orbit
