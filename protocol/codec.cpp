// SPDX-License-Identifier: Apache-2.0
#include "protocol/codec.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>

#include <msgpack.hpp>

#include "protocol/control.hpp"
#include "protocol/mode.hpp"
#include "protocol/msgpack_string.hpp"

namespace orbit {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::bad_message: return "bad_message";
    case ErrorCode::unsupported_version: return "unsupported_version";
    case ErrorCode::unknown_type: return "unknown_type";
    case ErrorCode::invalid_field: return "invalid_field";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::not_registered: return "not_registered";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

std::optional<ErrorCode> error_code_from_string(std::string_view name) {
  for (auto c : {ErrorCode::bad_message, ErrorCode::unsupported_version, ErrorCode::unknown_type,
                 ErrorCode::invalid_field, ErrorCode::too_large, ErrorCode::not_registered,
                 ErrorCode::internal}) {
    if (to_string(c) == name) return c;
  }
  return std::nullopt;
}

std::string_view type_name(const Message& message) {
  static constexpr std::string_view names[] = {"hello", "welcome",   "snapshot", "state", "burn",
                                               "ack",   "heartbeat", "bye",      "error", "telemetry"};
  return names[message.index()];
}

bool valid_run_id(std::string_view run) {
  if (run.empty() || run.size() > 128) return false;
  return std::all_of(run.begin(), run.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// ---------------------------------------------------------------- encoding

namespace {

// Packs straight into the std::string the encoder returns (no sbuffer to copy out of).
struct StringSink {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};
using Packer = msgpack::packer<StringSink>;

void key(Packer& p, std::string_view k) { pack_string(p, k); }
void str(Packer& p, std::string_view s) { pack_string(p, s); }

void kv(Packer& p, std::string_view k, std::string_view v) { key(p, k); str(p, v); }
void kv(Packer& p, std::string_view k, std::int64_t v) { key(p, k); p.pack_int64(v); }
// Canonical floats are always float64. msgpack-c's pack_double writes integral values
// (and -0.0, losing its sign) as integers, so the nine bytes are written here.
void float64(Packer& p, double v) {
  const auto bits = std::bit_cast<std::uint64_t>(v);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  p.pack_str_body(buf, sizeof buf);  // appends raw bytes
}

void kv(Packer& p, std::string_view k, double v) { key(p, k); float64(p, v); }
void kv(Packer& p, std::string_view k, bool v) {
  key(p, k);
  if (v) p.pack_true(); else p.pack_false();
}

void head(Packer& p, std::size_t fields, std::string_view type) {
  p.pack_map(static_cast<uint32_t>(fields + 2));
  kv(p, "v", std::int64_t{kProtocolVersion});
  kv(p, "type", type);
}

template <class T>
std::size_t present(const std::optional<T>& o) { return o ? 1 : 0; }
template <class M>
std::size_t nonempty(const M& m) { return m.empty() ? 0 : 1; }

void float_map(Packer& p, const std::map<std::string, double>& m) {
  p.pack_map(static_cast<uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    str(p, k);
    float64(p, v);
  }
}

void str_array(Packer& p, const std::vector<std::string>& a) {
  p.pack_array(static_cast<uint32_t>(a.size()));
  for (const auto& s : a) str(p, s);
}

void pack(Packer& p, const Hello& m) {
  head(p, 6 + nonempty(m.domains) + nonempty(m.actuators) + present(m.base_lr) + present(m.replies), "hello");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
  kv(p, "world_size", m.world_size);
  kv(p, "adapter", m.adapter);
  kv(p, "adapter_version", m.adapter_version);
  key(p, "versions");
  p.pack_array(static_cast<uint32_t>(m.versions.size()));
  for (auto v : m.versions) p.pack_int64(v);
  if (!m.domains.empty()) { key(p, "domains"); str_array(p, m.domains); }
  if (!m.actuators.empty()) { key(p, "actuators"); str_array(p, m.actuators); }
  if (m.base_lr) kv(p, "base_lr", *m.base_lr);
  if (m.replies) kv(p, "replies", *m.replies);
}

void pack(Packer& p, const Welcome& m) {
  head(p, 6 + present(m.max_message_bytes) + present(m.replies), "welcome");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
  kv(p, "session", m.session);
  kv(p, "version", m.version);
  kv(p, "mode", m.mode);
  kv(p, "snapshot_every", m.snapshot_every);
  if (m.max_message_bytes) kv(p, "max_message_bytes", *m.max_message_bytes);
  if (m.replies) kv(p, "replies", *m.replies);
}

void pack(Packer& p, const Snapshot& m) {
  head(p, 5 + present(m.grad_norm) + present(m.lr) + present(m.schedule_lr) + present(m.tokens) + nonempty(m.domains) +
              nonempty(m.spectra) + present(m.loop_rate) + nonempty(m.scalars),
       "snapshot");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
  kv(p, "step", m.step);
  kv(p, "time", m.time);
  kv(p, "loss", m.loss);
  if (m.grad_norm) kv(p, "grad_norm", *m.grad_norm);
  if (m.lr) kv(p, "lr", *m.lr);
  if (m.schedule_lr) kv(p, "schedule_lr", *m.schedule_lr);
  if (m.tokens) kv(p, "tokens", *m.tokens);
  if (!m.domains.empty()) {
    key(p, "domains");
    p.pack_map(static_cast<uint32_t>(m.domains.size()));
    for (const auto& [name, d] : m.domains) {
      str(p, name);
      p.pack_map(static_cast<uint32_t>(present(d.loss) + present(d.weight)));
      if (d.loss) kv(p, "loss", *d.loss);
      if (d.weight) kv(p, "weight", *d.weight);
    }
  }
  if (!m.spectra.empty()) {
    key(p, "spectra");
    p.pack_map(static_cast<uint32_t>(m.spectra.size()));
    for (const auto& [name, values] : m.spectra) {
      str(p, name);
      const auto bytes = static_cast<uint32_t>(values.size() * sizeof(float));
      p.pack_bin(bytes);
      static_assert(std::numeric_limits<float>::is_iec559);
      // Little-endian hosts only (x86-64, aarch64): the in-memory floats are the wire bytes.
      p.pack_bin_body(reinterpret_cast<const char*>(values.data()), bytes);
    }
  }
  if (m.loop_rate) kv(p, "loop_rate", *m.loop_rate);
  if (!m.scalars.empty()) { key(p, "scalars"); float_map(p, m.scalars); }
}

void pack(Packer& p, const State& m) {
  head(p, 6 + present(m.basin_age_steps), "state");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
  kv(p, "step", m.step);
  kv(p, "state", m.state);
  kv(p, "basin", m.basin);
  key(p, "metrics");
  float_map(p, m.metrics);
  if (m.basin_age_steps) kv(p, "basin_age_steps", *m.basin_age_steps);
}

void pack(Packer& p, const Burn& m) {
  head(p, 9 + nonempty(m.domain_weights) + present(m.curriculum_phase) + nonempty(m.loss_weights) +
              present(m.rollback_to_step) + present(m.skip_batches) + present(m.basin_age_steps),
       "burn");
  kv(p, "run", m.run);
  kv(p, "seq", m.seq);
  kv(p, "state", m.state);
  kv(p, "basin", m.basin);
  kv(p, "reason", m.reason);
  kv(p, "for_step", m.for_step);
  kv(p, "apply_at_step", m.apply_at_step);
  kv(p, "expires_after_steps", m.expires_after_steps);
  kv(p, "lr_scale", m.lr_scale);
  if (!m.domain_weights.empty()) { key(p, "domain_weights"); float_map(p, m.domain_weights); }
  if (m.curriculum_phase) kv(p, "curriculum_phase", *m.curriculum_phase);
  if (!m.loss_weights.empty()) { key(p, "loss_weights"); float_map(p, m.loss_weights); }
  if (m.rollback_to_step) kv(p, "rollback_to_step", *m.rollback_to_step);
  if (m.skip_batches) kv(p, "skip_batches", *m.skip_batches);
  if (m.basin_age_steps) kv(p, "basin_age_steps", *m.basin_age_steps);
}

void pack(Packer& p, const Ack& m) {
  head(p, 5 + present(m.lr) + present(m.restored_step), "ack");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
  kv(p, "seq", m.seq);
  kv(p, "step", m.step);
  kv(p, "late", m.late);
  if (m.lr) kv(p, "lr", *m.lr);
  if (m.restored_step) kv(p, "restored_step", *m.restored_step);
}

void pack(Packer& p, const Heartbeat& m) {
  head(p, present(m.run) + present(m.rank), "heartbeat");
  if (m.run) kv(p, "run", *m.run);
  if (m.rank) kv(p, "rank", *m.rank);
}

void pack(Packer& p, const Bye& m) {
  head(p, 2, "bye");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
}

void pack(Packer& p, const Error& m) {
  head(p, 2 + present(m.ref), "error");
  kv(p, "code", to_string(m.code));
  kv(p, "message", m.message);
  if (m.ref) kv(p, "ref", *m.ref);
}

void pack(Packer& p, const Telemetry& m) {
  head(p, 11 + present(m.burn_seq) + present(m.basin_age_steps), "telemetry");
  kv(p, "run", m.run);
  kv(p, "rank", m.rank);
  kv(p, "step", m.step);
  kv(p, "time", m.time);
  kv(p, "mode", m.mode);
  kv(p, "state", m.state);
  kv(p, "basin", m.basin);
  kv(p, "forecast_basin", m.forecast_basin);
  kv(p, "lr_scale", m.lr_scale);
  key(p, "metrics");
  float_map(p, m.metrics);
  if (m.burn_seq) kv(p, "burn_seq", *m.burn_seq);
  kv(p, "reason", m.reason);
  if (m.basin_age_steps) kv(p, "basin_age_steps", *m.basin_age_steps);
}

template <class M>
std::string encode_one(const M& m) {
  std::string out;
  out.reserve(256);
  StringSink sink{out};
  Packer packer(sink);
  pack(packer, m);
  return out;
}

}  // namespace

std::string encode(const Message& message) {
  return std::visit([](const auto& m) { return encode_one(m); }, message);
}

std::string encode(const Hello& m) { return encode_one(m); }
std::string encode(const Welcome& m) { return encode_one(m); }
std::string encode(const Snapshot& m) { return encode_one(m); }
std::string encode(const State& m) { return encode_one(m); }
std::string encode(const Burn& m) { return encode_one(m); }
std::string encode(const Ack& m) { return encode_one(m); }
std::string encode(const Heartbeat& m) { return encode_one(m); }
std::string encode(const Bye& m) { return encode_one(m); }
std::string encode(const Error& m) { return encode_one(m); }
std::string encode(const Telemetry& m) { return encode_one(m); }

// ---------------------------------------------------------------- decoding

namespace {

using msgpack::object;
namespace mt = msgpack::type;

struct DecodeFailure {
  ErrorCode code;
  std::string message;
  std::string ref;
};

[[noreturn]] void fail(ErrorCode code, std::string message, std::string ref = {}) {
  throw DecodeFailure{code, std::move(message), std::move(ref)};
}

std::string_view as_sv(const object& o) { return {o.via.str.ptr, o.via.str.size}; }

const char* kind(const object& o) {
  switch (o.type) {
    case mt::NIL: return "nil";
    case mt::BOOLEAN: return "a boolean";
    case mt::POSITIVE_INTEGER:
    case mt::NEGATIVE_INTEGER: return "an integer";
    case mt::FLOAT32:
    case mt::FLOAT64: return "a float";
    case mt::STR: return "a string";
    case mt::BIN: return "binary";
    case mt::ARRAY: return "an array";
    case mt::MAP: return "a map";
    default: return "an extension";
  }
}

// A read-only view of one MessagePack map with typed, validating accessors.
class Fields {
 public:
  Fields(const object& map, std::string prefix) : map_(map), prefix_(std::move(prefix)) {}

  const object* find(std::string_view k) const {
    for (uint32_t i = 0; i < map_.via.map.size; ++i) {
      const auto& e = map_.via.map.ptr[i];
      if (e.key.type == mt::STR && as_sv(e.key) == k) return &e.val;
    }
    return nullptr;
  }
  const object& need(std::string_view k) const {
    const object* o = find(k);
    if (!o) fail(ErrorCode::invalid_field, "missing required field '" + name(k) + "'", name(k));
    return *o;
  }
  std::string name(std::string_view k) const { return prefix_.empty() ? std::string(k) : prefix_ + "." + std::string(k); }

  [[noreturn]] void wrong(std::string_view k, const object& o, const char* expected) const {
    fail(ErrorCode::invalid_field,
         "field '" + name(k) + "' must be " + expected + ", got " + kind(o), name(k));
  }

  std::int64_t integer(std::string_view k, const object& o) const {
    if (o.type == mt::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<uint64_t>(std::numeric_limits<std::int64_t>::max()))
        fail(ErrorCode::invalid_field, "field '" + name(k) + "' is out of the 64-bit signed range", name(k));
      return static_cast<std::int64_t>(o.via.u64);
    }
    if (o.type == mt::NEGATIVE_INTEGER) return o.via.i64;
    wrong(k, o, "an integer");
  }
  std::int64_t integer(std::string_view k) const { return integer(k, need(k)); }
  std::optional<std::int64_t> opt_integer(std::string_view k) const {
    const object* o = find(k);
    if (!o || o->type == mt::NIL) return std::nullopt;
    return integer(k, *o);
  }
  std::int64_t at_least(std::string_view k, std::int64_t v, std::int64_t lo) const {
    if (v < lo) fail(ErrorCode::invalid_field, "field '" + name(k) + "' must be >= " + std::to_string(lo) + ", got " + std::to_string(v), name(k));
    return v;
  }

  double number(std::string_view k, const object& o) const {
    switch (o.type) {
      case mt::FLOAT32:
      case mt::FLOAT64: return o.via.f64;
      case mt::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
      case mt::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
      default: wrong(k, o, "a number");
    }
  }
  double number(std::string_view k) const { return number(k, need(k)); }
  std::optional<double> opt_number(std::string_view k) const {
    const object* o = find(k);
    if (!o || o->type == mt::NIL) return std::nullopt;
    return number(k, *o);
  }
  double finite(std::string_view k, double v) const {
    if (!std::isfinite(v)) fail(ErrorCode::invalid_field, "field '" + name(k) + "' must be finite", name(k));
    return v;
  }

  std::string string(std::string_view k, const object& o) const {
    if (o.type != mt::STR) wrong(k, o, "a string");
    return std::string(as_sv(o));
  }
  std::string string(std::string_view k) const { return string(k, need(k)); }
  std::optional<std::string> opt_string(std::string_view k) const {
    const object* o = find(k);
    if (!o || o->type == mt::NIL) return std::nullopt;
    return string(k, *o);
  }

  bool boolean(std::string_view k) const {
    const object& o = need(k);
    if (o.type != mt::BOOLEAN) wrong(k, o, "a boolean");
    return o.via.boolean;
  }

  const object* opt_container(std::string_view k, mt::object_type t, const char* expected) const {
    const object* o = find(k);
    if (!o || o->type == mt::NIL) return nullptr;
    if (o->type != t) wrong(k, *o, expected);
    return o;
  }

 private:
  const object& map_;
  std::string prefix_;
};

std::string run_id(const Fields& f) {
  std::string run = f.string("run");
  if (!valid_run_id(run))
    fail(ErrorCode::invalid_field, "field 'run' must be 1-128 characters of [A-Za-z0-9._-]", "run");
  return run;
}

void check_name(std::string_view field, std::string_view n) {
  if (n.empty() || n.size() > 128)
    fail(ErrorCode::invalid_field, "names in '" + std::string(field) + "' must be 1-128 bytes", std::string(field));
}

// Implementations disagree on which of two equal keys wins, so a map that repeats a
// key is rejected rather than read one way here and another way elsewhere.
void check_unique_keys(const object& map, ErrorCode code, std::string_view field) {
  // Messages carry a dozen keys or so: compare pairwise without allocating, and
  // sort only big maps. Either way the duplicate named is the smallest one.
  if (map.via.map.size <= 24) {
    std::optional<std::string_view> dup;
    for (uint32_t i = 0; i < map.via.map.size; ++i) {
      const auto& a = map.via.map.ptr[i].key;
      if (a.type != mt::STR) continue;
      for (uint32_t j = i + 1; j < map.via.map.size; ++j) {
        const auto& b = map.via.map.ptr[j].key;
        if (b.type == mt::STR && as_sv(a) == as_sv(b) && (!dup || as_sv(a) < *dup)) dup = as_sv(a);
      }
    }
    if (!dup) return;
    const std::string name = field.empty() ? std::string(*dup) : std::string(field) + "." + std::string(*dup);
    fail(code, "key '" + name + "' appears more than once", name);
  }
  std::vector<std::string_view> keys;
  keys.reserve(map.via.map.size);
  for (uint32_t i = 0; i < map.via.map.size; ++i)
    if (map.via.map.ptr[i].key.type == mt::STR) keys.push_back(as_sv(map.via.map.ptr[i].key));
  std::sort(keys.begin(), keys.end());
  const auto dup = std::adjacent_find(keys.begin(), keys.end());
  if (dup == keys.end()) return;
  const std::string name = field.empty() ? std::string(*dup) : std::string(field) + "." + std::string(*dup);
  fail(code, "key '" + name + "' appears more than once", name);
}

void check_count(std::string_view field, std::size_t n, std::size_t max) {
  if (n > max)
    fail(ErrorCode::too_large, "'" + std::string(field) + "' has " + std::to_string(n) + " entries; the limit is " + std::to_string(max), std::string(field));
}

std::vector<std::string> string_array(const Fields& f, std::string_view k, std::size_t max) {
  std::vector<std::string> out;
  const object* a = f.opt_container(k, mt::ARRAY, "an array of strings");
  if (!a) return out;
  check_count(k, a->via.array.size, max);
  out.reserve(a->via.array.size);
  for (uint32_t i = 0; i < a->via.array.size; ++i) {
    const object& e = a->via.array.ptr[i];
    if (e.type != mt::STR) f.wrong(k, e, "an array of strings");
    check_name(k, as_sv(e));
    out.emplace_back(as_sv(e));
  }
  return out;
}

std::map<std::string, double> number_map(const Fields& f, std::string_view k, std::size_t max, bool require_finite) {
  std::map<std::string, double> out;
  const object* m = f.opt_container(k, mt::MAP, "a map of name to number");
  if (!m) return out;
  check_count(k, m->via.map.size, max);
  // Hot path (scalars, metrics): names are built only when something is wrong,
  // and the map's own insert detects duplicate keys.
  const Fields inner(*m, f.name(k));
  for (uint32_t i = 0; i < m->via.map.size; ++i) {
    const auto& e = m->via.map.ptr[i];
    if (e.key.type != mt::STR) f.wrong(k, e.key, "a map with string keys");
    const std::string_view key_name = as_sv(e.key);
    check_name(k, key_name);
    const double v = inner.number(key_name, e.val);
    if (require_finite && !std::isfinite(v)) {
      const std::string name = inner.name(key_name);
      fail(ErrorCode::invalid_field, "field '" + name + "' must be finite", name);
    }
    const std::size_t before = out.size();
    out.emplace_hint(out.end(), std::string(key_name), v);  // sorted input (canonical) inserts in O(1)
    if (out.size() == before) {
      const std::string name = inner.name(key_name);
      fail(ErrorCode::invalid_field, "key '" + name + "' appears more than once", name);
    }
  }
  return out;
}

// hello.replies and welcome.replies: "every" or "news" (SPEC.md 3), absent allowed.
std::optional<std::string> replies_field(const Fields& f) {
  auto replies = f.opt_string("replies");
  if (replies && *replies != kRepliesEvery && *replies != kRepliesNews)
    fail(ErrorCode::invalid_field, "field 'replies' must be 'every' or 'news'", "replies");
  return replies;
}

Hello decode_hello(const Fields& f, const DecodeLimits& limits) {
  Hello m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  m.world_size = f.at_least("world_size", f.integer("world_size"), 1);
  if (m.rank >= m.world_size)
    fail(ErrorCode::invalid_field, "field 'rank' (" + std::to_string(m.rank) + ") must be below 'world_size' (" + std::to_string(m.world_size) + ")", "rank");
  m.adapter = f.string("adapter");
  m.adapter_version = f.string("adapter_version");
  const object& versions = f.need("versions");
  if (versions.type != mt::ARRAY) f.wrong("versions", versions, "an array of integers");
  check_count("versions", versions.via.array.size, 64);
  for (uint32_t i = 0; i < versions.via.array.size; ++i) m.versions.push_back(f.integer("versions", versions.via.array.ptr[i]));
  // Negotiation: the daemon speaks only version 1, so a hello must offer it.
  if (std::find(m.versions.begin(), m.versions.end(), std::int64_t{kProtocolVersion}) == m.versions.end())
    fail(ErrorCode::unsupported_version, "'versions' does not offer protocol version 1, the only one this daemon speaks", "versions");
  m.domains = string_array(f, "domains", limits.max_domains);
  m.actuators = string_array(f, "actuators", std::size(kActuators));
  for (const auto& a : m.actuators) {
    if (std::find(std::begin(kActuators), std::end(kActuators), a) == std::end(kActuators))
      fail(ErrorCode::invalid_field, "unknown actuator '" + a + "'; known: lr, domain_weights, curriculum, loss_weights, rollback", "actuators");
  }
  if (auto lr = f.opt_number("base_lr")) {
    if (!std::isfinite(*lr) || *lr <= 0) fail(ErrorCode::invalid_field, "field 'base_lr' must be a finite number > 0", "base_lr");
    m.base_lr = lr;
  }
  m.replies = replies_field(f);
  return m;
}

Welcome decode_welcome(const Fields& f) {
  Welcome m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  m.session = f.string("session");
  m.version = f.integer("version");
  m.mode = f.string("mode");
  if (!parse_mode(m.mode))
    fail(ErrorCode::invalid_field, "field 'mode' must be 'active' or 'monitor'", "mode");
  m.snapshot_every = f.at_least("snapshot_every", f.integer("snapshot_every"), 1);
  if (auto b = f.opt_integer("max_message_bytes")) m.max_message_bytes = f.at_least("max_message_bytes", *b, 1024);
  m.replies = replies_field(f);
  return m;
}

std::vector<float> spectrum(const Fields& f, std::string_view name, const object& o, const DecodeLimits& limits) {
  std::vector<float> out;
  const auto field = [&] { return "spectra." + std::string(name); };  // built only for an error
  if (o.type == mt::BIN) {
    if (o.via.bin.size % sizeof(float) != 0)
      fail(ErrorCode::invalid_field, "spectrum '" + std::string(name) + "' is " + std::to_string(o.via.bin.size) + " bytes, not a whole number of float32 values", field());
    const std::size_t n = o.via.bin.size / sizeof(float);
    if (n > limits.max_spectrum_length)
      fail(ErrorCode::too_large, "spectrum '" + std::string(name) + "' has " + std::to_string(n) + " values; the limit is " + std::to_string(limits.max_spectrum_length), field());
    out.resize(n);
    if (n > 0) std::memcpy(out.data(), o.via.bin.ptr, o.via.bin.size);  // an empty vector's data() may be null
  } else if (o.type == mt::ARRAY) {
    const std::size_t n = o.via.array.size;
    if (n > limits.max_spectrum_length)
      fail(ErrorCode::too_large, "spectrum '" + std::string(name) + "' has " + std::to_string(n) + " values; the limit is " + std::to_string(limits.max_spectrum_length), field());
    out.reserve(n);
    Fields inner(o, "spectra");
    for (uint32_t i = 0; i < n; ++i) out.push_back(static_cast<float>(inner.number(name, o.via.array.ptr[i])));
  } else {
    f.wrong(name, o, "binary float32 or an array of numbers");
  }
  return out;
}

Snapshot decode_snapshot(const Fields& f, const DecodeLimits& limits) {
  Snapshot m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  m.step = f.at_least("step", f.integer("step"), 0);
  m.time = f.finite("time", f.number("time"));
  m.loss = f.number("loss");  // non-finite is a signal
  m.grad_norm = f.opt_number("grad_norm");
  if (auto lr = f.opt_number("lr")) {
    if (!std::isfinite(*lr) || *lr < 0) fail(ErrorCode::invalid_field, "field 'lr' must be a finite number >= 0", "lr");
    m.lr = lr;
  }
  if (auto lr = f.opt_number("schedule_lr")) {
    if (!std::isfinite(*lr) || *lr < 0) {
      fail(ErrorCode::invalid_field, "field 'schedule_lr' must be a finite number >= 0", "schedule_lr");
    }
    m.schedule_lr = lr;
  }
  if (auto t = f.opt_integer("tokens")) m.tokens = f.at_least("tokens", *t, 0);
  if (const object* d = f.opt_container("domains", mt::MAP, "a map of domain name to stats")) {
    check_count("domains", d->via.map.size, limits.max_domains);
    check_unique_keys(*d, ErrorCode::invalid_field, "domains");
    for (uint32_t i = 0; i < d->via.map.size; ++i) {
      const auto& e = d->via.map.ptr[i];
      if (e.key.type != mt::STR) f.wrong("domains", e.key, "a map with string keys");
      check_name("domains", as_sv(e.key));
      const std::string prefix = "domains." + std::string(as_sv(e.key));
      if (e.val.type != mt::MAP) Fields(*d, "domains").wrong(as_sv(e.key), e.val, "a map with 'loss' and 'weight'");
      check_unique_keys(e.val, ErrorCode::invalid_field, prefix);
      Fields stats(e.val, prefix);
      DomainStats s;
      s.loss = stats.opt_number("loss");
      if (auto w = stats.opt_number("weight")) {
        if (!std::isfinite(*w) || *w < 0) fail(ErrorCode::invalid_field, "field '" + prefix + ".weight' must be a finite number >= 0", prefix + ".weight");
        s.weight = w;
      }
      m.domains.emplace(std::string(as_sv(e.key)), s);
    }
  }
  if (const object* s = f.opt_container("spectra", mt::MAP, "a map of name to spectrum")) {
    check_count("spectra", s->via.map.size, limits.max_spectra);
    check_unique_keys(*s, ErrorCode::invalid_field, "spectra");
    Fields inner(*s, "spectra");
    for (uint32_t i = 0; i < s->via.map.size; ++i) {
      const auto& e = s->via.map.ptr[i];
      if (e.key.type != mt::STR) f.wrong("spectra", e.key, "a map with string keys");
      check_name("spectra", as_sv(e.key));
      m.spectra.emplace(std::string(as_sv(e.key)), spectrum(inner, as_sv(e.key), e.val, limits));
    }
  }
  if (auto r = f.opt_number("loop_rate")) {
    if (!(*r >= 0.0 && *r <= 1.0)) fail(ErrorCode::invalid_field, "field 'loop_rate' must be in [0, 1]", "loop_rate");
    m.loop_rate = r;
  }
  m.scalars = number_map(f, "scalars", limits.max_scalars, false);
  return m;
}

State decode_state(const Fields& f, const DecodeLimits& limits) {
  State m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  m.step = f.at_least("step", f.integer("step"), 0);
  m.state = f.string("state");
  m.basin = f.string("basin");
  // Five metrics per spectrum plus per-domain and scalar signals: a snapshot within
  // its own limits yields more than max_scalars of them, as telemetry does.
  m.metrics = number_map(f, "metrics", limits.max_scalars * 8, false);
  if (auto a = f.opt_integer("basin_age_steps")) m.basin_age_steps = f.at_least("basin_age_steps", *a, 0);
  return m;
}

Burn decode_burn(const Fields& f, const DecodeLimits& limits) {
  Burn m;
  m.run = run_id(f);
  m.seq = f.at_least("seq", f.integer("seq"), 0);
  m.state = f.string("state");
  m.basin = f.string("basin");
  m.reason = f.string("reason");
  m.for_step = f.at_least("for_step", f.integer("for_step"), 0);
  m.apply_at_step = f.at_least("apply_at_step", f.integer("apply_at_step"), 0);
  m.expires_after_steps = f.at_least("expires_after_steps", f.integer("expires_after_steps"), 0);
  m.lr_scale = f.number("lr_scale");
  if (!std::isfinite(m.lr_scale) || m.lr_scale <= 0) fail(ErrorCode::invalid_field, "field 'lr_scale' must be a finite number > 0", "lr_scale");
  m.domain_weights = number_map(f, "domain_weights", limits.max_domains, true);
  if (auto c = f.opt_integer("curriculum_phase")) m.curriculum_phase = f.at_least("curriculum_phase", *c, 0);
  m.loss_weights = number_map(f, "loss_weights", limits.max_scalars, true);
  if (auto r = f.opt_integer("rollback_to_step")) m.rollback_to_step = f.at_least("rollback_to_step", *r, 0);
  if (auto s = f.opt_integer("skip_batches")) m.skip_batches = f.at_least("skip_batches", *s, 0);
  if (auto a = f.opt_integer("basin_age_steps")) m.basin_age_steps = f.at_least("basin_age_steps", *a, 0);
  return m;
}

Ack decode_ack(const Fields& f) {
  Ack m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  m.seq = f.at_least("seq", f.integer("seq"), 0);
  m.step = f.at_least("step", f.integer("step"), 0);
  m.late = f.boolean("late");
  if (auto lr = f.opt_number("lr")) m.lr = f.finite("lr", *lr);
  if (auto r = f.opt_integer("restored_step")) m.restored_step = f.at_least("restored_step", *r, 0);
  return m;
}

Heartbeat decode_heartbeat(const Fields& f) {
  Heartbeat m;
  if (auto run = f.opt_string("run")) {
    if (!valid_run_id(*run)) fail(ErrorCode::invalid_field, "field 'run' must be 1-128 characters of [A-Za-z0-9._-]", "run");
    m.run = std::move(run);
  }
  if (auto r = f.opt_integer("rank")) m.rank = f.at_least("rank", *r, 0);
  return m;
}

Bye decode_bye(const Fields& f) {
  Bye m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  return m;
}

Error decode_error(const Fields& f) {
  Error m;
  const std::string code = f.string("code");
  auto c = error_code_from_string(code);
  m.code = c ? *c : ErrorCode::internal;
  m.message = f.string("message");
  m.ref = f.opt_string("ref");
  return m;
}

Telemetry decode_telemetry(const Fields& f, const DecodeLimits& limits) {
  Telemetry m;
  m.run = run_id(f);
  m.rank = f.at_least("rank", f.integer("rank"), 0);
  m.step = f.at_least("step", f.integer("step"), 0);
  m.time = f.number("time");
  m.mode = f.string("mode");
  m.state = f.string("state");
  m.basin = f.string("basin");
  m.forecast_basin = f.string("forecast_basin");
  m.lr_scale = f.number("lr_scale");
  m.metrics = number_map(f, "metrics", limits.max_scalars * 8, false);
  m.burn_seq = f.opt_integer("burn_seq");
  m.reason = f.string("reason");
  if (auto a = f.opt_integer("basin_age_steps")) m.basin_age_steps = f.at_least("basin_age_steps", *a, 0);
  return m;
}

Message decode_body(const std::string& type, const Fields& f, const DecodeLimits& limits) {
  if (type == "snapshot") return decode_snapshot(f, limits);
  if (type == "hello") return decode_hello(f, limits);
  if (type == "ack") return decode_ack(f);
  if (type == "heartbeat") return decode_heartbeat(f);
  if (type == "bye") return decode_bye(f);
  if (type == "state") return decode_state(f, limits);
  if (type == "burn") return decode_burn(f, limits);
  if (type == "welcome") return decode_welcome(f);
  if (type == "error") return decode_error(f);
  if (type == "telemetry") return decode_telemetry(f, limits);
  // The type is quoted at most 64 bytes long: an error never echoes a huge field.
  fail(ErrorCode::unknown_type, "unknown message type '" + (type.size() > 64 ? type.substr(0, 64) + "..." : type) + "'; protocol v1 knows hello, welcome, snapshot, state, burn, ack, heartbeat, bye, error, telemetry", "type");
}

bool reference_all(msgpack::type::object_type, std::size_t, void*) { return true; }

// Unpacks one MessagePack map within `limits` (sizes, nesting, trailing bytes,
// duplicate keys); throws DecodeFailure otherwise.
msgpack::object_handle unpack_map(std::string_view bytes, const DecodeLimits& limits) {
  if (bytes.size() > limits.max_message_bytes)
    fail(ErrorCode::too_large, "message is " + std::to_string(bytes.size()) + " bytes; the limit is " + std::to_string(limits.max_message_bytes));
  if (bytes.empty()) fail(ErrorCode::bad_message, "empty message; expected one MessagePack map");
  // Bound every container before anything is allocated for it.
  const std::size_t max_array = std::max<std::size_t>(limits.max_spectrum_length, 1024);
  const std::size_t max_map = std::max({limits.max_domains, limits.max_scalars, limits.max_spectra, limits.max_scalars * 8, std::size_t{64}});
  msgpack::unpack_limit bounds(max_array, max_map, bytes.size(), bytes.size(), bytes.size(), 8);
  std::size_t offset = 0;
  bool referenced = false;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(bytes.data(), bytes.size(), offset, referenced, reference_all, nullptr, bounds);
  } catch (const msgpack::depth_size_overflow&) {
    fail(ErrorCode::too_large, "MessagePack nesting is deeper than 8 levels");
  } catch (const msgpack::size_overflow&) {
    fail(ErrorCode::too_large, "a MessagePack container exceeds the configured limits");
  } catch (const std::bad_alloc&) {
    fail(ErrorCode::too_large, "message declares more data than it can hold");
  } catch (const std::exception& e) {
    fail(ErrorCode::bad_message, std::string("not valid MessagePack: ") + e.what());
  }
  if (offset != bytes.size())
    fail(ErrorCode::bad_message, std::to_string(bytes.size() - offset) + " trailing bytes after the MessagePack map");
  const object& root = handle.get();
  if (root.type != mt::MAP) fail(ErrorCode::bad_message, std::string("message must be a MessagePack map, got ") + kind(root));
  check_unique_keys(root, ErrorCode::bad_message, "");
  return handle;
}

double non_negative(const Fields& f, std::string_view k, double v) {
  if (!std::isfinite(v) || v < 0) fail(ErrorCode::invalid_field, "field '" + f.name(k) + "' must be a finite number >= 0", f.name(k));
  return v;
}

BurnCommand decode_burn_command(const Fields& f, const DecodeLimits& limits) {
  BurnCommand c;
  Burn& b = c.requested;
  b.run = run_id(f);
  if (auto lr = f.opt_number("lr_scale")) {
    if (!std::isfinite(*lr) || *lr <= 0) fail(ErrorCode::invalid_field, "field 'lr_scale' must be a finite number > 0", "lr_scale");
    b.lr_scale = *lr;
  }
  if (auto reason = f.opt_string("reason")) b.reason = *reason;
  if (auto e = f.opt_integer("expires_after_steps")) b.expires_after_steps = f.at_least("expires_after_steps", *e, 0);
  b.domain_weights = number_map(f, "domain_weights", limits.max_domains, true);
  for (const auto& [name, w] : b.domain_weights) non_negative(Fields(f.need("domain_weights"), "domain_weights"), name, w);
  b.loss_weights = number_map(f, "loss_weights", limits.max_scalars, true);
  for (const auto& [name, w] : b.loss_weights) non_negative(Fields(f.need("loss_weights"), "loss_weights"), name, w);
  if (auto phase = f.opt_integer("curriculum_phase")) b.curriculum_phase = f.at_least("curriculum_phase", *phase, 0);
  if (auto r = f.opt_integer("rollback_to_step")) b.rollback_to_step = f.at_least("rollback_to_step", *r, 0);
  if (auto n = f.opt_integer("skip_batches")) b.skip_batches = f.at_least("skip_batches", *n, 0);
  return c;
}

ControlCommand decode_control_body(const Fields& f, const DecodeLimits& limits) {
  const std::optional<std::string> cmd = f.opt_string("cmd");
  if (!cmd) fail(ErrorCode::invalid_field, "request has no 'cmd' (status, set_mode, burn, reload)", "cmd");
  if (*cmd == "status") return StatusCommand{};
  if (*cmd == "reload") return ReloadCommand{};
  if (*cmd == "set_mode") {
    SetModeCommand c;
    const std::optional<std::string> mode = f.opt_string("mode");
    const std::optional<Mode> parsed = mode ? parse_mode(*mode) : std::nullopt;
    if (!parsed) fail(ErrorCode::invalid_field, "set_mode needs 'mode': \"active\" or \"monitor\"", "mode");
    c.mode = *parsed;
    c.run = f.opt_string("run");
    return c;
  }
  if (*cmd == "burn") return decode_burn_command(f, limits);
  fail(ErrorCode::invalid_field, "unknown command '" + *cmd + "'; known: status, set_mode, burn, reload", "cmd");
}

}  // namespace

DecodeResult decode_reference(std::string_view bytes, const DecodeLimits& limits) {
  DecodeResult result;
  try {
    const msgpack::object_handle handle = unpack_map(bytes, limits);
    Fields f(handle.get(), "");
    const object* type = f.find("type");
    if (!type) fail(ErrorCode::bad_message, "message has no 'type' field", "type");
    if (type->type != mt::STR) f.wrong("type", *type, "a string");
    result.type = std::string(as_sv(*type));
    const object* v = f.find("v");
    if (!v) fail(ErrorCode::bad_message, "message has no protocol version 'v'", "v");
    const std::int64_t version = f.integer("v", *v);
    // A hello negotiates: any `v` is fine there; `versions` decides.
    if (version != kProtocolVersion && result.type != "hello")
      fail(ErrorCode::unsupported_version, "protocol version " + std::to_string(version) + " is not supported; this daemon speaks version 1", "v");
    result.message = decode_body(result.type, f, limits);
  } catch (const DecodeFailure& failure) {
    result.message.reset();
    result.error.code = failure.code;
    result.error.message = failure.message;
    if (!failure.ref.empty()) result.error.ref = failure.ref;
  } catch (const std::exception& e) {
    result.message.reset();
    result.error.code = ErrorCode::internal;
    result.error.message = std::string("internal decoder failure: ") + e.what();
  }
  return result;
}

// ---------------------------------------------------------------- snapshot fast path
//
// The snapshot is the message every adapter sends every step. This path reads it
// straight from the MessagePack bytes into a Snapshot, reusing that struct's
// strings, vectors and map nodes when the keys repeat (they do, step after step):
// no object tree, no allocation once warm. It takes only what it can prove valid
// and gives it exactly the value decode_reference() gives; anything else (another
// type, an error, a key it does not know, a non-canonical shape it does not read)
// makes it return false, and the caller asks decode_reference(), so every result
// and every error text stays the reference decoder's.

namespace {

class Cursor {
 public:
  explicit Cursor(std::string_view bytes)
      : p_(reinterpret_cast<const unsigned char*>(bytes.data())), end_(p_ + bytes.size()) {}

  bool done() const { return p_ == end_; }

  bool nil() {
    if (p_ < end_ && *p_ == 0xc0) {
      ++p_;
      return true;
    }
    return false;
  }
  bool map_header(std::uint32_t& n) {
    if (p_ >= end_) return false;
    const unsigned char t = *p_;
    if ((t & 0xf0) == 0x80) {
      ++p_;
      n = t & 0x0f;
      return true;
    }
    if (t == 0xde) return big(2, n);
    if (t == 0xdf) return big(4, n);
    return false;
  }
  bool array_header(std::uint32_t& n) {
    if (p_ >= end_) return false;
    const unsigned char t = *p_;
    if ((t & 0xf0) == 0x90) {
      ++p_;
      n = t & 0x0f;
      return true;
    }
    if (t == 0xdc) return big(2, n);
    if (t == 0xdd) return big(4, n);
    return false;
  }
  bool str(std::string_view& s) {
    if (p_ >= end_) return false;
    const unsigned char t = *p_;
    std::uint32_t n = 0;
    if ((t & 0xe0) == 0xa0) {
      ++p_;
      n = t & 0x1f;
    } else if (t == 0xd9) {
      if (!big(1, n)) return false;
    } else if (t == 0xda) {
      if (!big(2, n)) return false;
    } else if (t == 0xdb) {
      if (!big(4, n)) return false;
    } else {
      return false;
    }
    return body(n, s);
  }
  bool bin(std::string_view& s) {
    if (p_ >= end_) return false;
    std::uint32_t n = 0;
    switch (*p_) {
      case 0xc4: if (!big(1, n)) return false; break;
      case 0xc5: if (!big(2, n)) return false; break;
      case 0xc6: if (!big(4, n)) return false; break;
      default: return false;
    }
    return body(n, s);
  }
  bool is_bin() const { return p_ < end_ && (*p_ == 0xc4 || *p_ == 0xc5 || *p_ == 0xc6); }

  // msgpack-c's view of an integer: non-negative values (whatever their encoding) are
  // POSITIVE_INTEGER in a uint64, negative ones NEGATIVE_INTEGER in an int64.
  enum class Kind { none, positive, negative, floating };
  struct Number {
    Kind kind = Kind::none;
    std::uint64_t u = 0;
    std::int64_t i = 0;
    double f = 0.0;
    double as_double() const {
      return kind == Kind::floating ? f : kind == Kind::positive ? static_cast<double>(u) : static_cast<double>(i);
    }
  };
  bool number(Number& out) {
    if (p_ >= end_) return false;
    const unsigned char t = *p_;
    if (t <= 0x7f) {
      ++p_;
      out.kind = Kind::positive;
      out.u = t;
      return true;
    }
    if (t >= 0xe0) {
      ++p_;
      signed_value(static_cast<std::int8_t>(t), out);
      return true;
    }
    std::uint64_t v = 0;
    switch (t) {
      case 0xca:
        if (!raw(4, v)) return false;
        out.kind = Kind::floating;
        out.f = static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(v)));
        return true;
      case 0xcb:
        if (!raw(8, v)) return false;
        out.kind = Kind::floating;
        out.f = std::bit_cast<double>(v);
        return true;
      case 0xcc: if (!raw(1, v)) return false; out.kind = Kind::positive; out.u = v; return true;
      case 0xcd: if (!raw(2, v)) return false; out.kind = Kind::positive; out.u = v; return true;
      case 0xce: if (!raw(4, v)) return false; out.kind = Kind::positive; out.u = v; return true;
      case 0xcf: if (!raw(8, v)) return false; out.kind = Kind::positive; out.u = v; return true;
      case 0xd0: if (!raw(1, v)) return false; signed_value(static_cast<std::int8_t>(v), out); return true;
      case 0xd1: if (!raw(2, v)) return false; signed_value(static_cast<std::int16_t>(v), out); return true;
      case 0xd2: if (!raw(4, v)) return false; signed_value(static_cast<std::int32_t>(v), out); return true;
      case 0xd3: if (!raw(8, v)) return false; signed_value(static_cast<std::int64_t>(v), out); return true;
      default: return false;
    }
  }
  // An integer in the signed 64-bit range (what Fields::integer accepts).
  bool integer(std::int64_t& out) {
    Number n;
    if (!number(n)) return false;
    if (n.kind == Kind::positive) {
      if (n.u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
      out = static_cast<std::int64_t>(n.u);
      return true;
    }
    if (n.kind == Kind::negative) {
      out = n.i;
      return true;
    }
    return false;
  }
  bool real(double& out) {
    // float64, the canonical encoding of every float: one load, no Number.
    if (end_ - p_ >= 9 && *p_ == 0xcb) {
      std::uint64_t bits = 0;
      std::memcpy(&bits, p_ + 1, sizeof bits);
      if constexpr (std::endian::native == std::endian::little) bits = __builtin_bswap64(bits);
      out = std::bit_cast<double>(bits);
      p_ += 9;
      return true;
    }
    Number n;
    if (!number(n)) return false;
    out = n.as_double();
    return true;
  }

 private:
  static void signed_value(std::int64_t v, Number& out) {
    if (v >= 0) {
      out.kind = Kind::positive;
      out.u = static_cast<std::uint64_t>(v);
    } else {
      out.kind = Kind::negative;
      out.i = v;
    }
  }
  // Big-endian unsigned of `width` bytes after the type byte. Always inlined: with the
  // width a constant at each call it folds to one load; left to GCC it was not inlined
  // everywhere once the encoders in this file grew (decode 10-15 % slower, bench_micro).
  [[gnu::always_inline]] bool raw(int width, std::uint64_t& v) {
    if (end_ - p_ < 1 + width) return false;
    ++p_;
    v = 0;
    for (int k = 0; k < width; ++k) v = (v << 8) | p_[k];
    p_ += width;
    return true;
  }
  bool big(int width, std::uint32_t& n) {
    std::uint64_t v = 0;
    if (!raw(width, v)) return false;
    n = static_cast<std::uint32_t>(v);
    return true;
  }
  bool body(std::uint32_t n, std::string_view& s) {
    if (static_cast<std::size_t>(end_ - p_) < n) return false;
    s = {reinterpret_cast<const char*>(p_), n};
    p_ += n;
    return true;
  }

  const unsigned char* p_;
  const unsigned char* end_;
};

bool name_ok(std::string_view n) { return !n.empty() && n.size() <= 128; }

// Fills `out` (a std::map) from `count` entries read by `entry(key, value&)`,
// overwriting the nodes already there while the keys arrive in the map's own order
// (the canonical encoding sorts them) and inserting otherwise. False on a repeated
// key or when `entry` refuses.
template <class Map, class Entry>
bool fill_map(Cursor& c, std::uint32_t count, Map& out, Entry&& entry) {
  auto it = out.begin();
  bool in_place = true;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string_view key;
    if (!c.str(key) || !name_ok(key)) return false;
    if (in_place && it != out.end() && it->first == key) {
      if (!entry(it->second)) return false;
      ++it;
      continue;
    }
    if (in_place) {
      out.erase(it, out.end());
      in_place = false;
    }
    const std::size_t before = out.size();
    const auto slot = out.try_emplace(out.end(), std::string(key));
    if (out.size() == before || !entry(slot->second)) return false;  // a repeated key: the reference names it
  }
  if (in_place) out.erase(it, out.end());
  return true;
}


enum SnapshotKey : unsigned {
  k_none = 0, k_v = 1u << 0, k_type = 1u << 1, k_run = 1u << 2, k_rank = 1u << 3, k_step = 1u << 4, k_time = 1u << 5,
  k_loss = 1u << 6, k_grad_norm = 1u << 7, k_lr = 1u << 8, k_schedule_lr = 1u << 9, k_tokens = 1u << 10,
  k_domains = 1u << 11, k_spectra = 1u << 12, k_loop_rate = 1u << 13, k_scalars = 1u << 14,
};

// The bit of the snapshot key `key`, or 0 for a key the fast path does not read. By
// length first: each key costs one fixed-size compare or two, not a walk down the list.
template <std::size_t N>
bool same_key(std::string_view key, const char (&name)[N]) {
  return std::memcmp(key.data(), name, N - 1) == 0;  // key.size() == N - 1 here
}
SnapshotKey snapshot_key(std::string_view key) {
  switch (key.size()) {
    case 1: return same_key(key, "v") ? k_v : k_none;
    case 2: return same_key(key, "lr") ? k_lr : k_none;
    case 3: return same_key(key, "run") ? k_run : k_none;
    case 4:
      return same_key(key, "type")   ? k_type
             : same_key(key, "rank") ? k_rank
             : same_key(key, "step") ? k_step
             : same_key(key, "time") ? k_time
             : same_key(key, "loss") ? k_loss
                                     : k_none;
    case 6: return same_key(key, "tokens") ? k_tokens : k_none;
    case 7:
      return same_key(key, "domains")   ? k_domains
             : same_key(key, "spectra") ? k_spectra
             : same_key(key, "scalars") ? k_scalars
                                        : k_none;
    case 9: return same_key(key, "grad_norm") ? k_grad_norm : same_key(key, "loop_rate") ? k_loop_rate : k_none;
    case 11: return same_key(key, "schedule_lr") ? k_schedule_lr : k_none;
    default: return k_none;
  }
}

// An optional number: nil leaves it empty, as Fields::opt_number does.
bool opt_real(Cursor& c, std::optional<double>& out) {
  if (c.nil()) {
    out.reset();
    return true;
  }
  double v = 0.0;
  if (!c.real(v)) return false;
  out = v;
  return true;
}

bool spectrum_values(Cursor& c, const DecodeLimits& limits, std::size_t max_array, std::vector<float>& out) {
  if (c.is_bin()) {
    std::string_view b;
    if (!c.bin(b) || b.size() % sizeof(float) != 0) return false;
    const std::size_t n = b.size() / sizeof(float);
    if (n > limits.max_spectrum_length) return false;
    out.resize(n);
    if (n > 0) std::memcpy(out.data(), b.data(), b.size());
    return true;
  }
  std::uint32_t n = 0;
  if (!c.array_header(n) || n > max_array || n > limits.max_spectrum_length) return false;
  out.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    double v = 0.0;
    if (!c.real(v)) return false;
    out[i] = static_cast<float>(v);
  }
  return true;
}

bool domain_stats(Cursor& c, std::size_t max_map, DomainStats& out) {
  std::uint32_t n = 0;
  if (!c.map_header(n) || n > max_map) return false;
  unsigned seen = 0;
  out.loss.reset();
  out.weight.reset();
  for (std::uint32_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!c.str(key)) return false;
    if (key == "loss") {
      if ((seen & 1u) != 0 || !opt_real(c, out.loss)) return false;
      seen |= 1u;
    } else if (key == "weight") {
      if ((seen & 2u) != 0 || !opt_real(c, out.weight)) return false;
      if (out.weight && (!std::isfinite(*out.weight) || *out.weight < 0)) return false;
      seen |= 2u;
    } else {
      return false;
    }
  }
  return true;
}

// The whole snapshot or false; `m` is unspecified after false.
bool fast_snapshot(std::string_view bytes, const DecodeLimits& limits, Snapshot& m) {
  if (bytes.empty() || bytes.size() > limits.max_message_bytes) return false;
  // The container bounds unpack_map() gives msgpack-c.
  const std::size_t max_array = std::max<std::size_t>(limits.max_spectrum_length, 1024);
  const std::size_t max_map = std::max({limits.max_domains, limits.max_scalars, limits.max_spectra,
                                        limits.max_scalars * 8, std::size_t{64}});
  Cursor c(bytes);
  std::uint32_t fields = 0;
  if (!c.map_header(fields) || fields > max_map) return false;
  unsigned seen = 0;
  for (std::uint32_t i = 0; i < fields; ++i) {
    std::string_view key;
    if (!c.str(key)) return false;
    const SnapshotKey bit = snapshot_key(key);
    switch (bit) {
      case k_v: {
        std::int64_t v = 0;
        if (!c.integer(v) || v != kProtocolVersion) return false;
        break;
      }
      case k_type: {
        std::string_view t;
        if (!c.str(t) || t != "snapshot") return false;
        break;
      }
      case k_run: {
        std::string_view r;
        if (!c.str(r) || !valid_run_id(r)) return false;
        if (m.run != r) m.run.assign(r);  // a reused Snapshot usually holds this run's id already
        break;
      }
      case k_rank:
        if (!c.integer(m.rank) || m.rank < 0) return false;
        break;
      case k_step:
        if (!c.integer(m.step) || m.step < 0) return false;
        break;
      case k_time:
        if (!c.real(m.time) || !std::isfinite(m.time)) return false;
        break;
      case k_loss:
        if (!c.real(m.loss)) return false;
        break;
      case k_grad_norm:
        if (!opt_real(c, m.grad_norm)) return false;
        break;
      case k_lr:
      case k_schedule_lr: {
        std::optional<double>& lr = bit == k_lr ? m.lr : m.schedule_lr;
        if (!opt_real(c, lr) || (lr && !(std::isfinite(*lr) && *lr >= 0))) return false;
        break;
      }
      case k_tokens:
        if (c.nil()) {
          m.tokens.reset();
        } else {
          std::int64_t t = 0;
          if (!c.integer(t) || t < 0) return false;
          m.tokens = t;
        }
        break;
      case k_loop_rate:
        if (!opt_real(c, m.loop_rate) || (m.loop_rate && !(*m.loop_rate >= 0.0 && *m.loop_rate <= 1.0))) return false;
        break;
      case k_domains:
        if (c.nil()) {
          m.domains.clear();
        } else {
          std::uint32_t n = 0;
          if (!c.map_header(n) || n > max_map || n > limits.max_domains) return false;
          if (!fill_map(c, n, m.domains, [&](DomainStats& s) { return domain_stats(c, max_map, s); })) return false;
        }
        break;
      case k_spectra:
        if (c.nil()) {
          m.spectra.clear();
        } else {
          std::uint32_t n = 0;
          if (!c.map_header(n) || n > max_map || n > limits.max_spectra) return false;
          if (!fill_map(c, n, m.spectra,
                        [&](std::vector<float>& v) { return spectrum_values(c, limits, max_array, v); }))
            return false;
        }
        break;
      case k_scalars:
        if (c.nil()) {
          m.scalars.clear();
        } else {
          std::uint32_t n = 0;
          if (!c.map_header(n) || n > max_map || n > limits.max_scalars) return false;
          if (!fill_map(c, n, m.scalars, [&](double& v) { return c.real(v); })) return false;
        }
        break;
      default: return false;  // a key the fast path does not read (the reference ignores it)
    }
    if ((seen & bit) != 0) return false;  // repeated key
    seen |= bit;
  }
  if (!c.done()) return false;  // trailing bytes
  constexpr unsigned required = k_v | k_type | k_run | k_rank | k_step | k_time | k_loss;
  if ((seen & required) != required) return false;
  // Absent optionals are empty, as in a freshly decoded Snapshot.
  if (!(seen & k_grad_norm)) m.grad_norm.reset();
  if (!(seen & k_lr)) m.lr.reset();
  if (!(seen & k_schedule_lr)) m.schedule_lr.reset();
  if (!(seen & k_tokens)) m.tokens.reset();
  if (!(seen & k_loop_rate)) m.loop_rate.reset();
  if (!(seen & k_domains)) m.domains.clear();
  if (!(seen & k_spectra)) m.spectra.clear();
  if (!(seen & k_scalars)) m.scalars.clear();
  return true;
}

}  // namespace

DecodeResult decode(std::string_view bytes, const DecodeLimits& limits) {
  DecodeResult result;
  Snapshot s;
  if (fast_snapshot(bytes, limits, s)) {
    result.type = "snapshot";
    result.message.emplace(std::move(s));
    return result;
  }
  return decode_reference(bytes, limits);
}

bool decode_snapshot_into(std::string_view bytes, Snapshot& into, DecodeResult& other, const DecodeLimits& limits) {
  if (fast_snapshot(bytes, limits, into)) return true;
  other = decode_reference(bytes, limits);
  if (other.ok() && std::holds_alternative<Snapshot>(*other.message)) {
    into = std::move(std::get<Snapshot>(*other.message));
    other = DecodeResult{};
    return true;
  }
  return false;
}

DecodeResult decode(std::span<const std::byte> bytes, const DecodeLimits& limits) {
  return decode(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), limits);
}

// ---------------------------------------------------------------- control endpoint

ControlDecodeResult decode_control(std::string_view bytes, const DecodeLimits& limits) {
  ControlDecodeResult result;
  try {
    const msgpack::object_handle handle = unpack_map(bytes, limits);
    Fields f(handle.get(), "");
    const std::optional<std::string> type = f.opt_string("type");
    if (type != "control") fail(ErrorCode::bad_message, "request must have 'type': \"control\"", "type");
    const std::int64_t version = f.integer("v");
    if (version != kProtocolVersion)
      fail(ErrorCode::unsupported_version, "protocol version " + std::to_string(version) + " is not supported; this daemon speaks version 1", "v");
    result.command = decode_control_body(f, limits);
  } catch (const DecodeFailure& failure) {
    result.command.reset();
    result.error = failure.message;
  } catch (const std::exception& e) {
    result.command.reset();
    result.error = std::string("internal decoder failure: ") + e.what();
  }
  return result;
}

std::string encode_control(const ControlCommand& command) {
  std::string out;
  StringSink sink{out};
  Packer p(sink);
  std::visit(
      [&](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, StatusCommand>) {
          head(p, 1, "control");
          kv(p, "cmd", std::string_view("status"));
        } else if constexpr (std::is_same_v<T, ReloadCommand>) {
          head(p, 1, "control");
          kv(p, "cmd", std::string_view("reload"));
        } else if constexpr (std::is_same_v<T, SetModeCommand>) {
          head(p, 2 + present(c.run), "control");
          kv(p, "cmd", std::string_view("set_mode"));
          kv(p, "mode", to_string(c.mode));
          if (c.run) kv(p, "run", std::string_view(*c.run));
        } else {
          const Burn& b = c.requested;
          head(p, 5 + nonempty(b.domain_weights) + nonempty(b.loss_weights) + present(b.curriculum_phase) +
                      present(b.rollback_to_step) + present(b.skip_batches),
               "control");
          kv(p, "cmd", std::string_view("burn"));
          kv(p, "run", std::string_view(b.run));
          kv(p, "lr_scale", b.lr_scale);
          kv(p, "reason", std::string_view(b.reason));
          kv(p, "expires_after_steps", b.expires_after_steps);
          if (!b.domain_weights.empty()) { key(p, "domain_weights"); float_map(p, b.domain_weights); }
          if (!b.loss_weights.empty()) { key(p, "loss_weights"); float_map(p, b.loss_weights); }
          if (b.curriculum_phase) kv(p, "curriculum_phase", *b.curriculum_phase);
          if (b.rollback_to_step) kv(p, "rollback_to_step", *b.rollback_to_step);
          if (b.skip_batches) kv(p, "skip_batches", *b.skip_batches);
        }
      },
      command);
  return out;
}

std::string encode_control_error(std::string_view message) {
  std::string out;
  StringSink sink{out};
  Packer p(sink);
  head(p, 2, "control_reply");
  kv(p, "ok", false);
  kv(p, "error", message);
  return out;
}

}  // namespace orbit
