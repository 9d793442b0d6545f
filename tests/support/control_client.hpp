// SPDX-License-Identifier: Apache-2.0
#pragma once
// A REQ client for orbitd's control endpoint (protocol/SPEC.md section 9), shared
// by the daemon and adapter tests: requests are plain MessagePack maps, replies
// come back as msgpack objects, counters are read by name from `status`.

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include <msgpack.hpp>
#include <zmq.hpp>

namespace orbit::test {

using ControlField = std::variant<std::string, double, std::int64_t>;

class ControlClient {
 public:
  // `configure` runs before connect (socket options such as CURVE keys).
  ControlClient(zmq::context_t& ctx, const std::string& endpoint,
                const std::function<void(zmq::socket_t&)>& configure = {}, int timeout_ms = 5000)
      : socket_(ctx, zmq::socket_type::req) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::rcvtimeo, timeout_ms);
    if (configure) configure(socket_);
    socket_.connect(endpoint);
  }

  msgpack::object_handle call(const std::map<std::string, ControlField>& fields) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> p(buf);
    p.pack_map(static_cast<std::uint32_t>(fields.size() + 2));
    p.pack(std::string("v"));
    p.pack(1);
    p.pack(std::string("type"));
    p.pack(std::string("control"));
    for (const auto& [k, v] : fields) {
      p.pack(k);
      std::visit([&](const auto& x) { p.pack(x); }, v);
    }
    socket_.send(zmq::buffer(buf.data(), buf.size()));
    zmq::message_t reply;
    if (!socket_.recv(reply)) throw std::runtime_error("control: no reply");
    return msgpack::unpack(static_cast<const char*>(reply.data()), reply.size());
  }

 private:
  zmq::socket_t socket_;
};

// The value under `key` in a MessagePack map, or nullptr.
inline const msgpack::object* map_get(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

// One DaemonStats counter, by name, from `status`.
inline std::uint64_t status_counter(ControlClient& control, const std::string& name) {
  auto h = control.call({{"cmd", std::string("status")}});
  const auto* stats = map_get(h.get(), "stats");
  if (!stats) throw std::runtime_error("status has no stats");
  const auto* v = map_get(*stats, name);
  if (!v) throw std::runtime_error("status has no counter " + name);
  return v->as<std::uint64_t>();
}

}  // namespace orbit::test
