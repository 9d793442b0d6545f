// SPDX-License-Identifier: Apache-2.0
#include "config/config.hpp"

#include "protocol/journal_record.hpp"

#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <spdlog/common.h>
#include <toml++/toml.h>

#include "config/config_error.hpp"
#include "config/endpoints.hpp"
#include "config/navigator_config_toml.hpp"

namespace orbit {
namespace {

// Typed access to one TOML table that remembers which keys were read, so that
// a misspelt key is an error instead of a silently ignored setting.
class Section {
 public:
  Section(const toml::table* table, std::string name, const std::string& file)
      : table_(table), name_(std::move(name)), file_(file) {}

  std::string key(std::string_view k) const { return name_ + "." + std::string(k); }
  [[noreturn]] void fail(std::string_view k, const std::string& why) const { throw ConfigError(file_, key(k), why); }

  template <class T>
  std::optional<T> get(std::string_view k, const char* expected) {
    known_.insert(std::string(k));
    if (!table_) return std::nullopt;
    const toml::node* node = table_->get(k);
    if (!node) return std::nullopt;
    if constexpr (std::is_same_v<T, double>) {
      if (auto v = node->value<double>()) return *v;  // accepts integers too
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
      if (node->is_integer()) return node->as_integer()->get();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (node->is_string()) return node->as_string()->get();
    } else if constexpr (std::is_same_v<T, bool>) {
      if (node->is_boolean()) return node->as_boolean()->get();
    }
    fail(k, std::string("must be ") + expected);
  }

  void string(std::string_view k, std::string& out) {
    if (auto v = get<std::string>(k, "a string")) out = *v;
  }
  void boolean(std::string_view k, bool& out) {
    if (auto v = get<bool>(k, "true or false")) out = *v;
  }
  void choice(std::string_view k, std::string& out, std::initializer_list<std::string_view> allowed) {
    auto v = get<std::string>(k, "a string");
    if (!v) return;
    for (auto a : allowed) {
      if (*v == a) {
        out = *v;
        return;
      }
    }
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string("\"") + std::string(a) + "\"";
    fail(k, "must be one of " + list + ", got \"" + *v + "\"");
  }
  template <class Int>
  void integer(std::string_view k, Int& out, std::int64_t lo, std::int64_t hi) {
    auto v = get<std::int64_t>(k, "an integer");
    if (!v) return;
    if (*v < lo || *v > hi) fail(k, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(*v));
    out = static_cast<Int>(*v);
  }
  void number(std::string_view k, double& out, double lo, double hi) {
    auto v = get<double>(k, "a number");
    if (!v) return;
    if (!(*v >= lo && *v <= hi)) {
      std::ostringstream s;
      s << "must be in [" << lo << ", " << hi << "], got " << *v;
      fail(k, s.str());
    }
    out = *v;
  }

  void reject_unknown() const {
    if (!table_) return;
    for (const auto& [k, v] : *table_) {
      if (!known_.count(std::string(k.str()))) fail(k.str(), "unknown key (misspelt? see configs/default.toml)");
    }
  }

 private:
  const toml::table* table_;
  std::string name_;
  const std::string& file_;
  std::set<std::string> known_;
};

const toml::table* subtable(const toml::table& root, std::string_view name, const std::string& file) {
  const toml::node* node = root.get(name);
  if (!node) return nullptr;
  if (!node->is_table()) throw ConfigError(file, std::string(name), "must be a table ([" + std::string(name) + "])");
  return node->as_table();
}

}  // namespace

DaemonConfig parse_daemon_config(std::string_view toml_text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << "line " << e.source().begin.line << ", column " << e.source().begin.column;
    throw ConfigError(source, "", "TOML syntax error at " + where.str() + ": " + std::string(e.description()));
  }

  DaemonConfig c;
  c.source = source;
  c.text = std::string(toml_text);

  static const std::set<std::string, std::less<>> tables = {"daemon", "limits", "logging", "journal", "controller"};
  for (const auto& [k, v] : root) {
    if (!tables.count(k.str())) {
      throw ConfigError(source, std::string(k.str()),
                        "unknown section; known sections are [daemon], [limits], [logging], [journal], [controller]");
    }
  }

  Section d(subtable(root, "daemon", source), "daemon", source);
  d.choice("mode", c.mode, {"active", "monitor"});
  d.string("endpoint", c.endpoint);
  d.string("telemetry", c.telemetry);
  d.string("control", c.control);
  d.string("http", c.http);
  if (!c.http.empty()) {
    try {
      parse_http_address(c.http);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(source, "daemon.http", e.what());
    }
  }
  d.integer("snapshot_every", c.snapshot_every, 1, 1'000'000);
  d.number("session_timeout_s", c.session_timeout_s, 0.1, 86400.0);
  d.integer("send_hwm", c.send_hwm, 1, 10'000'000);
  d.integer("max_runs", c.max_runs, 1, 1'000'000);
  d.integer("max_sessions", c.max_sessions, 1, 10'000'000);
  d.integer("max_world_size", c.max_world_size, 1, 1'000'000);
  d.number("run_idle_timeout_s", c.run_idle_timeout_s, 1.0, 31'536'000.0);
  d.boolean("allow_exposed_control", c.allow_exposed_control);
  d.boolean("allow_exposed_http", c.allow_exposed_http);
  d.reject_unknown();

  Section l(subtable(root, "limits", source), "limits", source);
  // Every message is journaled as it came: no larger than a journal record may be.
  l.integer("max_message_bytes", c.limits.max_message_bytes, 1024, kMaxRecordPayload);
  l.integer("max_spectrum_length", c.limits.max_spectrum_length, 2, 1 << 24);
  l.integer("max_spectra", c.limits.max_spectra, 1, 4096);
  l.integer("max_domains", c.limits.max_domains, 1, 65536);
  l.integer("max_scalars", c.limits.max_scalars, 1, 65536);
  l.reject_unknown();

  Section g(subtable(root, "logging", source), "logging", source);
  g.choice("level", c.log_level, {"trace", "debug", "info", "warn", "error", "critical", "off"});
  std::string format = "text";
  g.choice("format", format, {"text", "json"});
  c.log_format = format == "json" ? LogFormat::json : LogFormat::text;
  g.reject_unknown();

  Section j(subtable(root, "journal", source), "journal", source);
  j.string("dir", c.journal.dir);
  j.integer("segment_bytes", c.journal.segment_bytes, 4096, 1ll << 40);
  std::string fsync = "interval";
  j.choice("fsync", fsync, {"always", "interval", "never"});
  c.journal.fsync = fsync == "always" ? FsyncPolicy::always : fsync == "never" ? FsyncPolicy::never : FsyncPolicy::interval;
  j.integer("fsync_interval_ms", c.journal.fsync_interval_ms, 1, 3'600'000);
  j.integer("max_open_files", c.journal.max_open_files, 1, 1'000'000);
  j.reject_unknown();

  c.navigator = load_navigator_config(root, source);
  return c;
}

DaemonConfig load_daemon_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string(), "", "cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(file.string(), "", "read error");
  return parse_daemon_config(text.str(), file.string());
}

}  // namespace orbit
