// SPDX-License-Identifier: Apache-2.0
// The control endpoint: operator commands against a running orbitd. Requests are
// decoded and validated by the protocol codec (protocol/control.hpp, SPEC.md
// section 9); this file carries them out and packs the replies.
//   status    -> "daemon" (version, mode, uptime_s, config, endpoints), "stats" (every
//                DaemonStats counter by name), "runs" (array, one map per run),
//                "sessions" (array of {run, rank, session, idle_s, snapshots})
//   set_mode  -> switches one run, or every run and the default for new ones
//   burn      -> "burn": the burn as sent (clamped to the config's bounds)
//   reload    -> reloads the config file orbitd was started with
#include <variant>

#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include "daemon/server.hpp"
#include "protocol/codec.hpp"
#include "protocol/control.hpp"
#include "protocol/msgpack_string.hpp"

namespace orbit {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;
namespace mt = msgpack::type;

void str(Packer& p, std::string_view s) { pack_string(p, s); }

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
  if (http_) {
    stats_.http_rejected = http_->counters().rejected;
    stats_.http_unauthorized = http_->counters().unauthorized;
  }
  msgpack::sbuffer buf;
  Packer p(buf);
  const double now = clock_.now();
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
    str(p, "mode"); str(p, to_string(run.navigator->mode()));
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
  ControlDecodeResult decoded = decode_control(request);
  if (!decoded.command) {
    ++stats_.control_errors;
    return encode_control_error(decoded.error);
  }
  msgpack::sbuffer buf;
  Packer p(buf);
  if (std::holds_alternative<StatusCommand>(*decoded.command)) {
    return status_reply();
  } else if (const auto* set = std::get_if<SetModeCommand>(&*decoded.command)) {
    if (!set_mode(set->run, set->mode)) {
      ++stats_.control_errors;
      return encode_control_error("no run named '" + set->run.value_or("") + "'");
    }
    head(p, 1);
    str(p, "mode"); str(p, to_string(set->mode));
  } else if (const auto* command = std::get_if<BurnCommand>(&*decoded.command)) {
    const Burn& requested = command->requested;
    auto it = runs_.find(requested.run);
    if (it == runs_.end()) {
      ++stats_.control_errors;
      return encode_control_error("no run named '" + requested.run + "'");
    }
    if (auto problem = it->second.navigator->operator_burn_problem(requested)) {
      ++stats_.control_errors;
      return encode_control_error("burn: " + *problem);
    }
    auto sent = force_burn(requested);
    if (!sent) {
      ++stats_.control_errors;
      return encode_control_error("burn for run '" + requested.run + "' was not made");
    }
    head(p, 1);
    str(p, "burn");
    // Embed the burn as a nested map, exactly as adapters receive it.
    msgpack::object_handle burn_obj = msgpack::unpack(sent->data(), sent->size());
    p.pack(burn_obj.get());
  } else {
    const std::string problem = reload_from_source();
    if (!problem.empty()) {
      ++stats_.control_errors;
      return encode_control_error(problem);
    }
    head(p, 1);
    str(p, "config"); str(p, config_.source);
  }
  return {buf.data(), buf.size()};
}

}  // namespace orbit
