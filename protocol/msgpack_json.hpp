// SPDX-License-Identifier: Apache-2.0
#pragma once
// MessagePack -> JSON for exports, `orbit status --json` and orbitd's HTTP /status: maps and arrays as
// they are, `bin` as an array of little-endian float32 (how spectra travel), NaN and
// infinities as the strings "nan", "inf", "-inf" (JSON has no such numbers).

#include <msgpack.hpp>

#include "protocol/json_writer.hpp"

namespace orbit {

void to_json(const msgpack::object& o, JsonWriter& w);

}  // namespace orbit
