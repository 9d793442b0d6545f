// SPDX-License-Identifier: Apache-2.0
#include "config/config.hpp"

#include "protocol/journal_record.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <spdlog/common.h>
#include <toml++/toml.h>

#include "config/config_error.hpp"
#include "config/endpoints.hpp"
#include "config/navigator_config_toml.hpp"
#include "config/toml_table.hpp"

namespace orbit {
namespace {

const toml::table* subtable(const toml::table& root, std::string_view name, const std::string& file) {
  const toml::node* node = root.get(name);
  if (!node) return nullptr;
  if (!node->is_table()) throw ConfigError(file, std::string(name), "must be a table ([" + std::string(name) + "])");
  return node->as_table();
}

}  // namespace

DaemonConfig parse_daemon_config(std::string_view toml_text, const std::string& source) {
  const toml::table root = parse_toml(toml_text, source);

  DaemonConfig c;
  c.source = source;
  c.text = std::string(toml_text);

  static const std::set<std::string, std::less<>> tables = {"daemon",   "limits",    "logging",   "journal",
                                                             "security", "dashboard", "controller"};
  for (const auto& [k, v] : root) {
    if (!tables.count(k.str())) {
      throw ConfigError(source, std::string(k.str()),
                        "unknown section; known sections are [daemon], [limits], [logging], [journal], [security], "
                        "[dashboard], [controller]");
    }
  }

  TomlTable d(subtable(root, "daemon", source), "daemon", source);
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
  d.done();

  TomlTable l(subtable(root, "limits", source), "limits", source);
  // Every message is journaled as it came: no larger than a journal record may be.
  l.integer("max_message_bytes", c.limits.max_message_bytes, 1024, kMaxRecordPayload);
  l.integer("max_spectrum_length", c.limits.max_spectrum_length, 2, 1 << 24);
  l.integer("max_spectra", c.limits.max_spectra, 1, 4096);
  l.integer("max_domains", c.limits.max_domains, 1, 65536);
  l.integer("max_scalars", c.limits.max_scalars, 1, 65536);
  l.done();

  TomlTable g(subtable(root, "logging", source), "logging", source);
  g.choice("level", c.log_level, {"trace", "debug", "info", "warn", "error", "critical", "off"});
  std::string format = "text";
  g.choice("format", format, {"text", "json"});
  c.log_format = format == "json" ? LogFormat::json : LogFormat::text;
  g.done();

  TomlTable j(subtable(root, "journal", source), "journal", source);
  j.string("dir", c.journal.dir);
  j.integer("segment_bytes", c.journal.segment_bytes, 4096, 1ll << 40);
  std::string fsync = "interval";
  j.choice("fsync", fsync, {"always", "interval", "never"});
  c.journal.fsync = fsync == "always" ? FsyncPolicy::always : fsync == "never" ? FsyncPolicy::never : FsyncPolicy::interval;
  j.integer("fsync_interval_ms", c.journal.fsync_interval_ms, 1, 3'600'000);
  j.integer("max_open_files", c.journal.max_open_files, 1, 1'000'000);
  j.done();

  TomlTable s(subtable(root, "security", source), "security", source);
  // Key files sit beside the config that names them: relative paths start there.
  const std::filesystem::path base =
      source.empty() || source.front() == '<' ? std::filesystem::path() : std::filesystem::path(source).parent_path();
  auto path_key = [&](std::string_view key, std::string& out) {
    s.string(key, out);
    if (!out.empty() && std::filesystem::path(out).is_relative()) out = (base / out).lexically_normal().string();
  };
  path_key("curve_secret_key_file", c.security.curve_secret_key_file);
  path_key("adapter_keys_file", c.security.adapter_keys_file);
  path_key("control_keys_file", c.security.control_keys_file);
  path_key("http_token_file", c.security.http_token_file);
  s.done();
  for (const char* key : {"adapter_keys_file", "control_keys_file"}) {
    const std::string& v = std::string_view(key) == "adapter_keys_file" ? c.security.adapter_keys_file
                                                                         : c.security.control_keys_file;
    if (!v.empty() && !c.security.curve()) {
      throw ConfigError(source, std::string("security.") + key,
                        "an allow-list without security.curve_secret_key_file would never be consulted; name "
                        "orbitd's key pair too (orbit keygen)");
    }
  }

  TomlTable b(subtable(root, "dashboard", source), "dashboard", source);
  b.integer("history_steps", c.dashboard.history_steps, 1, 1'000'000);
  b.integer("max_runs", c.dashboard.max_runs, 1, 4096);
  b.done();

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
