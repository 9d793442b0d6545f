// SPDX-License-Identifier: Apache-2.0
#include "protocol/msgpack_json.hpp"

#include <cmath>
#include <cstring>

namespace orbit {

void to_json(const msgpack::object& o, JsonWriter& w) {
  namespace mt = msgpack::type;
  switch (o.type) {
    case mt::NIL: w.null(); break;
    case mt::BOOLEAN: w.value(o.via.boolean); break;
    case mt::POSITIVE_INTEGER: w.value(static_cast<std::uint64_t>(o.via.u64)); break;
    case mt::NEGATIVE_INTEGER: w.value(static_cast<std::int64_t>(o.via.i64)); break;
    case mt::FLOAT32:
    case mt::FLOAT64:
      // JSON has no NaN/inf: write them as strings so a diverged loss stays visible.
      if (std::isfinite(o.via.f64)) w.value(o.via.f64); else w.value(format_double(o.via.f64));
      break;
    case mt::STR: w.value(std::string_view(o.via.str.ptr, o.via.str.size)); break;
    case mt::BIN: {
      // Spectra: little-endian float32.
      w.begin_array();
      for (uint32_t i = 0; i + 4 <= o.via.bin.size; i += 4) {
        float f;
        std::memcpy(&f, o.via.bin.ptr + i, 4);
        if (std::isfinite(f)) w.value(static_cast<double>(f)); else w.value(format_double(f));
      }
      w.end_array();
      break;
    }
    case mt::ARRAY:
      w.begin_array();
      for (uint32_t i = 0; i < o.via.array.size; ++i) to_json(o.via.array.ptr[i], w);
      w.end_array();
      break;
    case mt::MAP:
      w.begin_object();
      for (uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type == mt::STR) w.key(std::string_view(kv.key.via.str.ptr, kv.key.via.str.size));
        else w.key("?");
        to_json(kv.val, w);
      }
      w.end_object();
      break;
    default: w.null();
  }
}

}  // namespace orbit
