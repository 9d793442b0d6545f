// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: orbitd's config loader (TOML text -> DaemonConfig, every section
// including [controller]). Any input must give a config or a ConfigError naming
// file, key and reason; any other exception, crash or sanitizer report is a finding.
// Seeds: configs/ (default.toml and the example profiles).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>

#include "config/config.hpp"
#include "config/config_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;  // configs are small; long inputs only slow the search
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)orbit::parse_daemon_config(text, "<fuzz>");
  } catch (const orbit::ConfigError&) {
    // The expected answer to a bad config.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "config loader threw something other than ConfigError: %s\n", e.what());
    std::abort();
  }
  return 0;
}
