// SPDX-License-Identifier: Apache-2.0
// The control endpoint: operator commands against a running orbitd.
//
// Request: one MessagePack map {"v": 1, "type": "control", "cmd": NAME, ...}.
// Reply:   {"v": 1, "type": "control_reply", "ok": bool, "error": str (when !ok), ...}.
//   status                 -> "daemon" (version, mode, uptime_s, config, endpoints), "stats" (every
//                             DaemonStats counter by name), "runs" (array, one map per run),
//                             "sessions" (array of {run, rank, session, idle_s, snapshots})
//   set_mode {mode, run?}  -> switches one run, or every run and the default for new ones
//   burn {run, lr_scale?, reason?, expires_after_steps?, domain_weights?, loss_weights?,
//         curriculum_phase?, rollback_to_step?, skip_batches?}
//                          -> "burn": the burn as sent (clamped to the config's bounds)
//   reload                 -> reloads the config file orbitd was started with
#include <cmath>

#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include "daemon/server.hpp"
#include "protocol/codec.hpp"

namespace orbit {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;
namespace mt = msgpack::type;

void str(Packer& p, std::string_view s) {
  p.pack_str(static_cast<uint32_t>(s.size()));
  p.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
}

const msgpack::object* field(const msgpack::object& map, std::string_view key) {
  for (uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (kv.key.type == mt::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) return &kv.val;
  }
  return nullptr;
}

std::optional<std::string> opt_string(const msgpack::object& map, std::string_view key) {
  const auto* o = field(map, key);
  if (!o || o->type != mt::STR) return std::nullopt;
  return std::string(o->via.str.ptr, o->via.str.size);
}

std::optional<double> opt_number(const msgpack::object& map, std::string_view key) {
  const auto* o = field(map, key);
  if (!o) return std::nullopt;
  if (o->type == mt::FLOAT32 || o->type == mt::FLOAT64) return o->via.f64;
  if (o->type == mt::POSITIVE_INTEGER) return static_cast<double>(o->via.u64);
  if (o->type == mt::NEGATIVE_INTEGER) return static_cast<double>(o->via.i64);
  return std::nullopt;
}

std::optional<std::int64_t> opt_int(const msgpack::object& map, std::string_view key) {
  const auto* o = field(map, key);
  if (!o) return std::nullopt;
  if (o->type == mt::POSITIVE_INTEGER) return static_cast<std::int64_t>(o->via.u64);
  if (o->type == mt::NEGATIVE_INTEGER) return o->via.i64;
  return std::nullopt;
}

std::map<std::string, double> number_map(const msgpack::object& map, std::string_view key) {
  std::map<std::string, double> out;
  const auto* o = field(map, key);
  if (!o || o->type != mt::MAP) return out;
  for (uint32_t i = 0; i < o->via.map.size; ++i) {
    const auto& kv = o->via.map.ptr[i];
    if (kv.key.type != mt::STR) continue;
    double v = 0;
    if (kv.val.type == mt::FLOAT32 || kv.val.type == mt::FLOAT64) v = kv.val.via.f64;
    else if (kv.val.type == mt::POSITIVE_INTEGER) v = static_cast<double>(kv.val.via.u64);
    else continue;
    out.emplace(std::string(kv.key.via.str.ptr, kv.key.via.str.size), v);
  }
  return out;
}

std::string reply_error(const std::string& message) {
  msgpack::sbuffer buf;
  Packer p(buf);
  p.pack_map(4);
  str(p, "v"); p.pack_int(kProtocolVersion);
  str(p, "type"); str(p, "control_reply");
  str(p, "ok"); p.pack_false();
  str(p, "error"); str(p, message);
  return {buf.data(), buf.size()};
}

void head(Packer& p, std::size_t extra) {
  p.pack_map(static_cast<uint32_t>(3 + extra));
  str(p, "v"); p.pack_int(kProtocolVersion);
  str(p, "type"); str(p, "control_reply");
  str(p, "ok"); p.pack_true();
}

void pack_metrics(Packer& p, const std::map<std::string, double>& m) {
  p.pack_map(static_cast<uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    str(p, k);
    p.pack_double(v);
  }
}

}  // namespace

std::string Server::status_reply() {
  if (http_) stats_.http_rejected = http_->counters().rejected;
  msgpack::sbuffer buf;
  Packer p(buf);
  const double now = clock_();
  head(p, 4);
  str(p, "daemon");
  p.pack_map(6);
  str(p, "version"); str(p, ORBIT_VERSION);
  str(p, "journal_ok"); p.pack(journal_ok_);
  str(p, "mode"); str(p, config_.mode);
  str(p, "uptime_s"); p.pack_double(now - started_at_);
  str(p, "config"); str(p, config_.source);
  str(p, "endpoints");
  p.pack_map(4);
  str(p, "adapters"); str(p, bound_.adapters);
  str(p, "telemetry"); str(p, bound_.telemetry);
  str(p, "control"); str(p, bound_.control);
  str(p, "http"); str(p, bound_.http);

  str(p, "stats");
  std::size_t n = 0;
  stats_.for_each([&](const char*, std::uint64_t) { ++n; });
  p.pack_map(static_cast<uint32_t>(n + 2));
  stats_.for_each([&](const char* name, std::uint64_t v) {
    str(p, name);
    p.pack_uint64(v);
  });
  str(p, "sessions_active"); p.pack_uint64(sessions_.size());
  str(p, "runs_active"); p.pack_uint64(runs_.size());

  str(p, "runs");
  p.pack_array(static_cast<uint32_t>(runs_.size()));
  for (const auto& [name, run] : runs_) {
    p.pack_map(11);
    str(p, "run"); str(p, name);
    str(p, "mode"); str(p, run.navigator->mode() == Mode::active ? "active" : "monitor");
    str(p, "world_size"); p.pack_int64(run.info.world_size);
    str(p, "step"); p.pack_int64(run.last_step);
    str(p, "state"); str(p, run.last.state.empty() ? std::string(to_string(run.navigator->state())) : run.last.state);
    str(p, "basin"); str(p, run.last.basin.empty() ? "UNKNOWN" : run.last.basin);
    str(p, "forecast_basin"); str(p, run.last.forecast_basin.empty() ? "UNKNOWN" : run.last.forecast_basin);
    str(p, "lr_scale"); p.pack_double(run.last.lr_scale);
    str(p, "burns"); p.pack_int64(run.navigator->last_seq());
    str(p, "reason"); str(p, run.last_reason);
    str(p, "metrics"); pack_metrics(p, run.last.metrics);
  }

  str(p, "sessions");
  p.pack_array(static_cast<uint32_t>(sessions_.size()));
  for (const auto& [key, s] : sessions_.all()) {
    p.pack_map(5);
    str(p, "run"); str(p, s.run);
    str(p, "rank"); p.pack_int64(s.rank);
    str(p, "session"); str(p, s.id);
    str(p, "idle_s"); p.pack_double(now - s.last_seen);
    str(p, "snapshots"); p.pack_uint64(s.snapshots);
  }
  return {buf.data(), buf.size()};
}

std::string Server::handle_control(std::string_view request) {
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(request.data(), request.size());
  } catch (const std::exception& e) {
    ++stats_.control_errors;
    return reply_error(std::string("request is not valid MessagePack: ") + e.what());
  }
  const msgpack::object& req = handle.get();
  if (req.type != mt::MAP) {
    ++stats_.control_errors;
    return reply_error("request must be a MessagePack map with 'cmd'");
  }
  const auto cmd = opt_string(req, "cmd");
  if (!cmd) {
    ++stats_.control_errors;
    return reply_error("request has no 'cmd' (status, set_mode, burn, reload)");
  }

  msgpack::sbuffer buf;
  Packer p(buf);
  if (*cmd == "status") {
    return status_reply();
  } else if (*cmd == "set_mode") {
    const auto mode = opt_string(req, "mode");
    if (!mode || (*mode != "active" && *mode != "monitor")) {
      ++stats_.control_errors;
      return reply_error("set_mode needs 'mode': \"active\" or \"monitor\"");
    }
    const auto run = opt_string(req, "run");
    if (!set_mode(run, *mode == "active" ? Mode::active : Mode::monitor)) {
      ++stats_.control_errors;
      return reply_error("no run named '" + run.value_or("") + "'");
    }
    head(p, 1);
    str(p, "mode"); str(p, *mode);
  } else if (*cmd == "burn") {
    Burn requested;
    const auto run = opt_string(req, "run");
    if (!run) {
      ++stats_.control_errors;
      return reply_error("burn needs 'run'");
    }
    requested.run = *run;
    requested.lr_scale = opt_number(req, "lr_scale").value_or(1.0);
    if (!std::isfinite(requested.lr_scale) || requested.lr_scale <= 0) {
      ++stats_.control_errors;
      return reply_error("burn: 'lr_scale' must be a finite number > 0");
    }
    requested.reason = opt_string(req, "reason").value_or("operator burn");
    requested.expires_after_steps = opt_int(req, "expires_after_steps").value_or(0);
    requested.domain_weights = number_map(req, "domain_weights");
    requested.loss_weights = number_map(req, "loss_weights");
    requested.curriculum_phase = opt_int(req, "curriculum_phase");
    requested.rollback_to_step = opt_int(req, "rollback_to_step");
    requested.skip_batches = opt_int(req, "skip_batches");
    auto burn = force_burn(requested);
    if (!burn) {
      ++stats_.control_errors;
      return reply_error("no run named '" + *run + "' (or it is in monitor mode)");
    }
    head(p, 1);
    str(p, "burn");
    const std::string wire = encode(*burn);
    // Embed the burn as a nested map, exactly as adapters receive it.
    msgpack::object_handle burn_obj = msgpack::unpack(wire.data(), wire.size());
    p.pack(burn_obj.get());
  } else if (*cmd == "reload") {
    const std::string problem = reload_from_source();
    if (!problem.empty()) {
      ++stats_.control_errors;
      return reply_error(problem);
    }
    head(p, 1);
    str(p, "config"); str(p, config_.source);
  } else {
    ++stats_.control_errors;
    return reply_error("unknown command '" + *cmd + "'; known: status, set_mode, burn, reload");
  }
  return {buf.data(), buf.size()};
}

}  // namespace orbit
