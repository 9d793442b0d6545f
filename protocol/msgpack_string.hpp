// SPDX-License-Identifier: Apache-2.0
#pragma once
// Writing a MessagePack str: the one helper every encoder uses (codec, journal
// records, control replies, tools), so strings are packed one way everywhere.

#include <cstdint>
#include <string_view>

#include <msgpack.hpp>

namespace orbit {

template <class Buffer>
void pack_string(msgpack::packer<Buffer>& p, std::string_view s) {
  p.pack_str(static_cast<std::uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

}  // namespace orbit
