// SPDX-License-Identifier: Apache-2.0
#pragma once
// Driving a Navigator with a run's journal records exactly as orbitd did live, for
// crash recovery (rebuild the run's controller) and for `orbit replay`/`orbit tune`
// (the same records under another config). One place defines what each record
// means to the controller, so recovery and replay cannot drift apart:
//
//   config       reconfigure() with the [controller] of that TOML text
//                (the first one, before the run's first hello, is the config the
//                Navigator is built with)
//   mode         set_mode()
//   hello        the first builds the Navigator; later ones update_info()
//   snapshot     on_snapshot() -> Decision
//   ack          on_ack()
//   forced_burn  force_burn(requested)
//   rank_silent  on_rank_silent(rank, time)
//   burn, state, bye, evaluation: what was sent or observed; they change nothing here
//   gap          records the writer lost (a failing disk); nothing to feed, reported
//   (replay compares the recorded burns with the ones it computes).
//
// orbitd journals, per run: `config` (DaemonConfig::text) and `mode` when the run is
// created and on every reload / set_mode; every `hello`; every `snapshot` before it
// reaches the Navigator, then the `burn` (or `state`) sent; every `ack`;
// `forced_burn` with the operator's request, then the `burn` it produced;
// `rank_silent` whenever it calls on_rank_silent; `bye`.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "controllers/navigator.hpp"
#include "journal/journal_reader.hpp"
#include "journal/record_payloads.hpp"
#include "protocol/codec.hpp"
#include "protocol/journal_record.hpp"
#include "protocol/messages.hpp"

namespace orbit {

// One decoded journal record.
struct RecordedEntry {
  RecordType type = RecordType::snapshot;
  std::int64_t timestamp_ns = 0;
  // Hello / Snapshot / Burn (burn, forced_burn) / Ack / State / Bye; std::string for
  // config and mode text and for evaluation payloads; RankSilent; monostate when the
  // record type is unknown to this version.
  std::variant<std::monostate, Hello, Snapshot, Burn, Ack, State, Bye, std::string, RankSilent> value;
  // Snapshots only, after precompute_spectral_metrics(): the metrics of each spectrum
  // (map order) for φ target `spectral_phi_target`. RunDriver hands them to the
  // Navigator when its config has the same target, instead of computing them again.
  std::vector<SpectralMetrics> spectral;
  double spectral_phi_target = 0.0;
  // The same spectra's names, in RecordedRun::spectrum_names (hot in cache, unlike
  // the snapshot's map nodes when a replay reads the run again).
  std::vector<std::string_view> spectral_names;
};

struct RecordedRun {
  std::string run;  // the directory name
  std::filesystem::path dir;
  std::vector<RecordedEntry> entries;
  RecoveryReport report;                // how reading the journal went
  std::vector<std::string> undecodable;  // "segment N offset X: reason", records left out
  std::size_t snapshots = 0;
  std::size_t burns = 0;
  std::int64_t max_burn_seq = 0;  // over every burn record, the undecodable ones included
  std::vector<std::string> gaps;  // gap records: "segment N offset X: K records lost ..."
  // After record_filter_memo(): what the snapshot-only filters answered in one replay;
  // replay_run/replay_fixed (tools/replay.hpp) have their Navigators follow it.
  std::shared_ptr<const NavigatorMemo> memo;
  // After precompute_spectral_metrics(): each spectrum name once (entries' spectral_names
  // point into it; copies of the run share it).
  std::shared_ptr<std::set<std::string, std::less<>>> spectrum_names;
};

// Reads and decodes a run's records (throws JournalError when the directory is unreadable).
RecordedRun load_recorded_run(const std::filesystem::path& run_dir, ReadOptions options = {});

// The same records, decoded the same way, handed to `visit` one at a time and not
// kept: the returned run has everything load_recorded_run() sets but the entries.
// Every snapshot is decoded into one Snapshot reused from record to record (its
// strings, spectra and map nodes are kept while the keys repeat), so a replay that
// reads a run once allocates nothing per snapshot and its memory does not grow with
// the run. An entry is valid only during its call.
RecordedRun stream_recorded_run(const std::filesystem::path& run_dir, ReadOptions options,
                                const std::function<void(const RecordedEntry&)>& visit);

// The spectral metrics of every snapshot, once, for a run that is replayed many times
// under configs with this φ target (tune). Decisions are the same as without.
void precompute_spectral_metrics(RecordedRun& run, double phi_target);

// Replays the run once under `config` and `mode` (config and mode records not
// followed) and keeps what its snapshot-only filters answered in run.memo: every later
// replay of the run (tune's candidates) follows it. Decisions are the same as without.
void record_filter_memo(RecordedRun& run, const NavigatorConfig& config, Mode mode);

// [controller] of an orbitd config text -> NavigatorConfig; throws ConfigError.
using NavigatorConfigParser = std::function<NavigatorConfig(const std::string& toml_text)>;
NavigatorConfigParser default_navigator_config_parser();

class RunDriver {
 public:
  struct Options {
    NavigatorConfig config;            // until a config record says otherwise
    Mode mode = Mode::active;          // until a mode record says otherwise
    bool follow_config_records = true; // false: keep `config` (replay --config / tune)
    bool follow_mode_records = true;
    bool report_metrics = true;        // false: decisions without Decision::metrics (faster)
    bool metrics_in_sink = false;      // true: the metrics are read from Navigator::last_metrics()
    NavigatorConfigParser parse_config = default_navigator_config_parser();
    // The Navigator records into / follows this memo (Navigator::record_memo, follow_memo).
    NavigatorMemo* record_memo = nullptr;
    const NavigatorMemo* follow_memo = nullptr;
  };

  // What one record produced. The decision and the forced burn are the driver's own,
  // reused from record to record (no ~900-byte Decision built and destroyed per
  // snapshot): valid, and the caller's to move from, until the next feed().
  struct Output {
    Decision* decision = nullptr;        // snapshot records
    const Burn* forced = nullptr;        // forced_burn records that produced one
    const Snapshot* snapshot = nullptr;  // the snapshot fed (snapshot records)
  };

  explicit RunDriver(Options options);

  // Throws ConfigError when a config record does not parse (with follow_config_records).
  Output feed(const RecordedEntry& entry);

  Navigator* navigator() { return navigator_.get(); }
  const Navigator* navigator() const { return navigator_.get(); }
  // The Navigator, handed over (recovery): nullptr when the run never said hello.
  std::unique_ptr<Navigator> release() { return std::move(navigator_); }

  const NavigatorConfig& config() const { return options_.config; }
  Mode mode() const { return options_.mode; }
  std::int64_t last_step() const { return last_step_; }
  // Snapshots before the first hello, which the live daemon answered with not_registered.
  std::size_t orphan_snapshots() const { return orphans_; }
  const std::optional<std::string>& config_text() const { return config_text_; }

 private:
  Options options_;
  std::unique_ptr<Navigator> navigator_;
  std::optional<std::string> config_text_;
  Decision decision_;            // Output::decision
  std::optional<Burn> forced_;   // Output::forced
  std::int64_t last_step_ = -1;
  std::size_t orphans_ = 0;
};

// Crash recovery of one run: read (cutting a torn tail, reading past damaged records,
// both reported in recording.report), rebuild the Navigator.
struct RecoveredRun {
  RecordedRun recording;
  std::unique_ptr<Navigator> navigator;  // nullptr when the journal has no hello
  Mode mode = Mode::active;
  std::optional<std::string> config_text;  // the last config record
  std::int64_t last_step = -1;
};
RecoveredRun recover_run(const std::filesystem::path& run_dir, RunDriver::Options options);

// The DecodeLimits used for journal payloads: as large as a record may be.
DecodeLimits journal_decode_limits();

}  // namespace orbit
