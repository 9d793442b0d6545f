// SPDX-License-Identifier: Apache-2.0
#include "journal/record_payloads.hpp"

#include <exception>

#include <msgpack.hpp>

#include "protocol/msgpack_string.hpp"

namespace orbit {

std::string encode_rank_silent(const RankSilent& event) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(2);
  pack_string(p, "rank");
  p.pack_int64(event.rank);
  pack_string(p, "time");
  p.pack_double(event.time);
  return {buf.data(), buf.size()};
}

std::optional<RankSilent> decode_rank_silent(std::string_view payload) {
  try {
    msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    const msgpack::object& o = h.get();
    if (o.type != msgpack::type::MAP) return std::nullopt;
    RankSilent e;
    bool rank = false, time = false;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      const std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
      if (k == "rank") {
        e.rank = kv.val.as<std::int64_t>();
        rank = true;
      } else if (k == "time") {
        e.time = kv.val.as<double>();
        time = true;
      }
    }
    if (!rank || !time) return std::nullopt;
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string encode_evaluation(const Evaluation& e) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  auto str = [&](std::string_view s) { pack_string(p, s); };
  p.pack_map(3);
  str("step");
  p.pack_int64(e.step);
  str("time");
  p.pack_double(e.time);
  str("metrics");
  p.pack_map(static_cast<uint32_t>(e.metrics.size()));
  for (const auto& [k, v] : e.metrics) {
    str(k);
    p.pack_double(v);
  }
  return {buf.data(), buf.size()};
}

std::optional<Evaluation> decode_evaluation(std::string_view payload) {
  try {
    msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    const msgpack::object& o = h.get();
    if (o.type != msgpack::type::MAP) return std::nullopt;
    Evaluation e;
    for (uint32_t i = 0; i < o.via.map.size; ++i) {
      const auto& kv = o.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) continue;
      const std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
      if (k == "step") e.step = kv.val.as<std::int64_t>();
      else if (k == "time") e.time = kv.val.as<double>();
      else if (k == "metrics" && kv.val.type == msgpack::type::MAP)
        for (uint32_t j = 0; j < kv.val.via.map.size; ++j) {
          const auto& m = kv.val.via.map.ptr[j];
          if (m.key.type == msgpack::type::STR)
            e.metrics.emplace(std::string(m.key.via.str.ptr, m.key.via.str.size), m.val.as<double>());
        }
    }
    return e;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace orbit
