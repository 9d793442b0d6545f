// SPDX-License-Identifier: Apache-2.0
#pragma once
// orbitd's configuration: the TOML file (configs/default.toml documents every
// key) merged over built-in defaults that equal that file.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "controllers/navigator_config.hpp"
#include "protocol/codec.hpp"

namespace orbit {

enum class LogFormat { text, json };
enum class FsyncPolicy { always, interval, never };

struct JournalSettings {
  std::string dir;                            // "" disables journaling
  std::uint64_t segment_bytes = 64ull << 20;  // rotate segment files at this size
  FsyncPolicy fsync = FsyncPolicy::interval;
  std::uint32_t fsync_interval_ms = 200;
  std::uint32_t max_open_files = 256;  // segment files open at once; the least recently used is closed
};

// [security]: who may talk to orbitd over TCP and HTTP. Paths are absolute, or
// relative to the config file's directory (made absolute when the file is read).
struct SecuritySettings {
  std::string curve_secret_key_file;  // orbitd's key pair (orbit keygen); "" = no CURVE
  std::string adapter_keys_file;      // public keys of adapters (and telemetry watchers)
  std::string control_keys_file;      // public keys of operators: control (and telemetry)
  std::string http_token_file;        // bearer token every HTTP request must carry; "" = none

  bool curve() const { return !curve_secret_key_file.empty(); }
};

// [dashboard]: what the page served with http keeps in memory (DashboardFeed).
struct DashboardSettings {
  std::int64_t history_steps = 20000;  // decided steps kept per run; older ones leave the history
  std::int64_t max_runs = 16;          // runs kept; the least recently updated leaves first
};

struct DaemonConfig {
  std::string source = "<defaults>";  // the file it came from
  std::string text;                   // the TOML text, journaled with each run

  // [daemon]
  std::string mode = "active";  // mode of new runs: "active" | "monitor"
  std::string endpoint = "auto";
  std::string telemetry = "auto";
  std::string control = "auto";
  std::string http;  // "HOST:PORT" for GET /metrics and /status; "" = off
  std::int64_t snapshot_every = 1;
  double session_timeout_s = 60.0;
  std::int32_t send_hwm = 10000;
  std::int64_t max_runs = 1024;
  std::int64_t max_sessions = 4096;
  std::int64_t max_world_size = 1024;  // a hello declaring more ranks is refused
  double run_idle_timeout_s = 3600.0;  // a run without sessions this long is unloaded
  bool allow_exposed_control = false;  // a control endpoint other than ipc in a private directory
  bool allow_exposed_http = false;     // an HTTP address other than loopback

  // [limits]
  DecodeLimits limits;

  // [logging]
  std::string log_level = "info";
  LogFormat log_format = LogFormat::text;

  // [journal]
  JournalSettings journal;

  // [security]
  SecuritySettings security;

  // [dashboard]
  DashboardSettings dashboard;

  // [controller] and its sub-tables (config/navigator_config_toml.cpp)
  NavigatorConfig navigator;
};

// Throws ConfigError naming the file, the key and what is wrong.
DaemonConfig load_daemon_config(const std::filesystem::path& file);
DaemonConfig parse_daemon_config(std::string_view toml_text, const std::string& source);

}  // namespace orbit
