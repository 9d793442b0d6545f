// SPDX-License-Identifier: Apache-2.0
#pragma once
// Imported training logs -> journals: the one way `orbit import` (and the real-trace
// benchmark, which must take the user's path) writes them.

#include <filesystem>

#include "tools/trace_import.hpp"

namespace orbit {

// Appends each run of `result` under `root`: a hello (adapter "orbit-import", the
// recorded schedule's peak lr as base_lr, domains from `options.map`), then its
// snapshots and evaluation records in file order. A snapshot that does not validate
// is moved to result.unparseable with its line; a hello that does not validate
// throws ImportError. Flushes before returning.
void write_import_journal(ImportResult& result, const std::filesystem::path& root, const ImportOptions& options);

}  // namespace orbit
