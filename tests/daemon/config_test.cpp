// SPDX-License-Identifier: Apache-2.0
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config/config_error.hpp"

namespace orbit {
namespace {

ConfigError parse_error(const std::string& text) {
  try {
    parse_daemon_config(text, "test.toml");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return ConfigError("", "", "");
}

TEST(DaemonConfig, DefaultsEqualTheShippedDefaultFile) {
  const DaemonConfig builtin = parse_daemon_config("", "<defaults>");
  const DaemonConfig file = load_daemon_config(std::filesystem::path(ORBIT_SOURCE_DIR) / "configs/default.toml");
  EXPECT_EQ(builtin.mode, file.mode);
  EXPECT_EQ(builtin.endpoint, file.endpoint);
  EXPECT_EQ(builtin.snapshot_every, file.snapshot_every);
  EXPECT_EQ(builtin.session_timeout_s, file.session_timeout_s);
  EXPECT_EQ(builtin.send_hwm, file.send_hwm);
  EXPECT_EQ(builtin.limits.max_message_bytes, file.limits.max_message_bytes);
  EXPECT_EQ(builtin.limits.max_spectrum_length, file.limits.max_spectrum_length);
  EXPECT_EQ(builtin.limits.max_spectra, file.limits.max_spectra);
  EXPECT_EQ(builtin.log_level, file.log_level);
  EXPECT_EQ(builtin.journal.dir, file.journal.dir);
  EXPECT_EQ(builtin.journal.segment_bytes, file.journal.segment_bytes);
  EXPECT_EQ(builtin.journal.fsync, file.journal.fsync);
  EXPECT_EQ(builtin.journal.fsync_interval_ms, file.journal.fsync_interval_ms);
  EXPECT_EQ(builtin.dashboard.history_steps, file.dashboard.history_steps);
  EXPECT_EQ(builtin.dashboard.max_runs, file.dashboard.max_runs);
}

TEST(DaemonConfig, DashboardHistoryLimits) {
  const DaemonConfig c = parse_daemon_config("[dashboard]\nhistory_steps = 500\nmax_runs = 3\n", "t.toml");
  EXPECT_EQ(c.dashboard.history_steps, 500);
  EXPECT_EQ(c.dashboard.max_runs, 3);
  auto e = parse_error("[dashboard]\nhistory_steps = 0\n");
  EXPECT_EQ(e.key(), "dashboard.history_steps");
  EXPECT_NE(e.reason().find("got 0"), std::string::npos) << e.reason();
  e = parse_error("[dashboard]\nmax_runs = 5000\n");
  EXPECT_EQ(e.key(), "dashboard.max_runs");
  e = parse_error("[dashboard]\nhistory = 10\n");
  EXPECT_EQ(e.key(), "dashboard.history");
  EXPECT_NE(e.reason().find("unknown key"), std::string::npos);
}

TEST(DaemonConfig, ReadsValues) {
  const DaemonConfig c = parse_daemon_config(R"(
[daemon]
mode = "monitor"
endpoint = "tcp://127.0.0.1:7000"
snapshot_every = 5
session_timeout_s = 2
[limits]
max_spectrum_length = 1000
[logging]
format = "json"
[journal]
fsync = "always"
)", "t.toml");
  EXPECT_EQ(c.mode, "monitor");
  EXPECT_EQ(c.endpoint, "tcp://127.0.0.1:7000");
  EXPECT_EQ(c.snapshot_every, 5);
  EXPECT_DOUBLE_EQ(c.session_timeout_s, 2.0);
  EXPECT_EQ(c.limits.max_spectrum_length, 1000u);
  EXPECT_EQ(c.log_format, LogFormat::json);
  EXPECT_EQ(c.journal.fsync, FsyncPolicy::always);
}

TEST(DaemonConfig, ErrorsNameFileKeyAndReason) {
  auto e = parse_error("[daemon]\nmode = \"turbo\"\n");
  EXPECT_EQ(e.file(), "test.toml");
  EXPECT_EQ(e.key(), "daemon.mode");
  EXPECT_NE(e.reason().find("\"active\""), std::string::npos);

  e = parse_error("[daemon]\nsnapshot_every = 0\n");
  EXPECT_EQ(e.key(), "daemon.snapshot_every");
  EXPECT_NE(e.reason().find("got 0"), std::string::npos);

  e = parse_error("[daemon]\nsnapshot_every = \"ten\"\n");
  EXPECT_EQ(e.key(), "daemon.snapshot_every");
  EXPECT_NE(e.reason().find("integer"), std::string::npos);

  e = parse_error("[daemon]\nsnapshot_evry = 3\n");
  EXPECT_EQ(e.key(), "daemon.snapshot_evry");
  EXPECT_NE(e.reason().find("unknown key"), std::string::npos);

  e = parse_error("[deamon]\n");
  EXPECT_EQ(e.key(), "deamon");

  e = parse_error("[daemon\nmode = 1\n");
  EXPECT_NE(e.reason().find("line 1"), std::string::npos);

  e = parse_error("[journal]\nfsync = \"sometimes\"\n");
  EXPECT_EQ(e.key(), "journal.fsync");

  e = parse_error("[limits]\nmax_message_bytes = 10\n");
  EXPECT_EQ(e.key(), "limits.max_message_bytes");

  e = parse_error("[daemon]\nhttp = \"localhost\"\n");
  EXPECT_EQ(e.key(), "daemon.http");
  EXPECT_NE(e.reason().find("HOST:PORT"), std::string::npos);
  e = parse_error("[daemon]\nhttp = \"127.0.0.1:70000\"\n");
  EXPECT_EQ(e.key(), "daemon.http");
  EXPECT_NE(e.reason().find("port"), std::string::npos);
}

TEST(DaemonConfig, MissingFileIsAConfigError) {
  EXPECT_THROW(load_daemon_config("/nonexistent/orbit.toml"), ConfigError);
}

}  // namespace
}  // namespace orbit
