// SPDX-License-Identifier: Apache-2.0
#include "tools/import_journal.hpp"

#include <cmath>

#include "journal/journal.hpp"
#include "journal/record_payloads.hpp"
#include "protocol/codec.hpp"

namespace orbit {

void write_import_journal(ImportResult& result, const std::filesystem::path& root, const ImportOptions& options) {
  JournalOptions jo;
  jo.root = root;
  jo.fsync = JournalOptions::never;
  Journal journal = Journal::open(jo);
  for (const auto& run : result.runs) {
    Hello hello;
    hello.run = run.run;
    hello.adapter = "orbit-import";
    hello.adapter_version = ORBIT_VERSION;
    hello.versions = {kProtocolVersion};
    for (const auto& [field, column] : options.map)
      if (field.starts_with("domain.")) hello.domains.push_back(field.substr(7));
    hello.actuators = {"lr"};
    // The peak of the recorded schedule stands for the trainer's base lr.
    for (const auto& s : run.snapshots)
      if (s.lr && *s.lr > 0 && (!hello.base_lr || *s.lr > *hello.base_lr)) hello.base_lr = s.lr;
    const double t0 = run.snapshots.empty() ? 0.0 : run.snapshots.front().time;
    const std::string hello_bytes = encode(hello);
    if (const DecodeResult check = decode(hello_bytes); !check.ok())
      throw ImportError("the run's hello does not validate: " + check.error.message);
    journal.append(run.run, RecordType::hello, static_cast<std::int64_t>(t0 * 1e9), hello_bytes);
    for (const auto& item : run.order) {
      if (item.evaluation) {
        const Evaluation& e = run.evaluations[item.index];
        journal.append(run.run, RecordType::evaluation, static_cast<std::int64_t>(std::llround(e.time * 1e9)),
                       encode_evaluation(e));
      } else {
        const Snapshot& s = run.snapshots[item.index];
        const std::string bytes = encode(s);
        if (const DecodeResult check = decode(bytes); !check.ok()) {
          result.unparseable.push_back({item.line, "not a valid snapshot: " + check.error.message});
          continue;
        }
        journal.append(run.run, RecordType::snapshot, static_cast<std::int64_t>(std::llround(s.time * 1e9)), bytes);
      }
    }
  }
  journal.flush();
}

}  // namespace orbit
