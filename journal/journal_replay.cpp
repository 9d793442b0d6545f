// SPDX-License-Identifier: Apache-2.0
#include "journal/journal_replay.hpp"

#include <algorithm>
#include <cstdint>
#include <optional>

#include <msgpack.hpp>

#include "config/config.hpp"
#include "protocol/codec.hpp"

namespace orbit {

namespace fs = std::filesystem;

DecodeLimits journal_decode_limits() {
  DecodeLimits l;
  l.max_message_bytes = kMaxRecordPayload;
  l.max_spectrum_length = 1u << 24;
  l.max_spectra = 4096;
  l.max_domains = 65536;
  l.max_scalars = 65536;
  return l;
}

namespace {

RunInfo info_of(const Hello& h) { return RunInfo{h.run, h.world_size, h.domains, h.actuators, h.base_lr}; }

// The `seq` of a burn record's payload read without the codec, for records the
// codec refuses (an operator's out-of-range field): their seq was still spent.
std::optional<std::int64_t> raw_burn_seq(std::string_view payload) {
  try {
    const msgpack::object_handle h = msgpack::unpack(payload.data(), payload.size());
    const msgpack::object& root = h.get();
    if (root.type != msgpack::type::MAP) return std::nullopt;
    for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
      const auto& kv = root.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == "seq" &&
          kv.val.type == msgpack::type::POSITIVE_INTEGER && kv.val.via.u64 <= static_cast<std::uint64_t>(INT64_MAX)) {
        return static_cast<std::int64_t>(kv.val.via.u64);
      }
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// The run's segment bytes, for sizing the entries up front; 0 when a size is unreadable.
std::uint64_t segment_bytes(const fs::path& run_dir) {
  std::uint64_t total = 0;
  for (const fs::path& segment : list_segments(run_dir)) {
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(segment, ec);
    if (ec) return 0;
    total += size;
  }
  return total;
}

// After this many records the entries are reserved for the whole run, estimated from
// the bytes read so far: growing a vector of 100k entries by doubling moved each
// entry about twice and page-faulted twice its final size (~20 % of a replay's load).
constexpr std::size_t kRecordsBeforeReserve = 1024;

template <class T>
bool take(const DecodeResult& d, RecordedEntry& e) {
  if (!d.ok() || !std::holds_alternative<T>(*d.message)) return false;
  e.value = std::get<T>(std::move(*d.message));
  return true;
}

}  // namespace

namespace {

// Reads the run's records in order, decoding each into an entry, and hands every
// decodable one to `visit(entry, record)`; fills `out`'s counters and lists but not
// its entries. Snapshots are decoded into one entry kept across records, so a
// visitor that only looks reuses its Snapshot's strings, vectors and map nodes while
// the keys repeat; one that moves the entry out gets a fresh decode next time.
template <class Visit>
void read_entries(const fs::path& run_dir, ReadOptions options, RecordedRun& out, Visit&& visit) {
  out.dir = run_dir;
  out.run = run_dir.filename().string();
  const DecodeLimits limits = journal_decode_limits();
  JournalReader reader(run_dir, options);
  RecordedEntry snapshot_entry;
  RecordedEntry other;  // every other record's, made fresh for it (not per snapshot: ~70 instructions)
  DecodeResult failed;  // why a snapshot record did not decode (decode_snapshot_into sets it then)
  while (auto r = reader.next()) {
    const bool snapshot = r->type == RecordType::snapshot;
    if (!snapshot) other = RecordedEntry{};
    RecordedEntry& e = snapshot ? snapshot_entry : other;
    e.type = r->type;
    e.timestamp_ns = r->timestamp_ns;
    bool ok = true;
    std::string why;
    switch (r->type) {
      case RecordType::config:
      case RecordType::mode:
      case RecordType::evaluation: e.value = std::string(r->payload); break;
      case RecordType::gap:
        e.value = std::string(r->payload);
        out.gaps.push_back("segment " + std::to_string(r->segment) + " offset " + std::to_string(r->offset) + ": " +
                           std::string(r->payload));
        break;
      case RecordType::rank_silent:
        if (auto s = decode_rank_silent(r->payload)) e.value = *s;
        else ok = false;
        break;
      case RecordType::snapshot: {
        // Straight into the entry: no DecodeResult, no Message variant to move out of.
        Snapshot* into = std::get_if<Snapshot>(&e.value);
        ok = decode_snapshot_into(r->payload, into ? *into : e.value.emplace<Snapshot>(), failed, limits);
        if (!ok) {
          e.value.emplace<std::monostate>();
          why = failed.ok() ? "payload is a '" + std::string(type_name(*failed.message)) + "' message"
                            : failed.error.message;
        }
        break;
      }
      default: {
        if (!known_record_type(static_cast<std::uint8_t>(r->type))) break;  // newer writer: keep, ignore
        const DecodeResult d = decode(r->payload, limits);
        switch (r->type) {
          case RecordType::hello: ok = take<Hello>(d, e); break;
          case RecordType::burn:
          case RecordType::forced_burn: ok = take<Burn>(d, e); break;
          case RecordType::ack: ok = take<Ack>(d, e); break;
          case RecordType::state: ok = take<State>(d, e); break;
          case RecordType::bye: ok = take<Bye>(d, e); break;
          default: break;
        }
        if (!ok) why = d.ok() ? "payload is a '" + std::string(type_name(*d.message)) + "' message" : d.error.message;
      }
    }
    if (r->type == RecordType::burn) {
      const std::optional<std::int64_t> seq =
          ok ? std::optional<std::int64_t>(std::get<Burn>(e.value).seq) : raw_burn_seq(r->payload);
      if (seq) out.max_burn_seq = std::max(out.max_burn_seq, *seq);
    }
    if (!ok) {
      out.undecodable.push_back("segment " + std::to_string(r->segment) + " offset " + std::to_string(r->offset) +
                                ": " + std::string(to_string(r->type)) + " record " +
                                (why.empty() ? "does not decode" : why));
      continue;
    }
    if (e.type == RecordType::snapshot) ++out.snapshots;
    if (e.type == RecordType::burn) ++out.burns;
    visit(e, *r);
  }
  out.report = reader.report();
}

}  // namespace

RecordedRun load_recorded_run(const fs::path& run_dir, ReadOptions options) {
  RecordedRun out;
  const std::uint64_t total_bytes = segment_bytes(run_dir);
  std::uint64_t read_bytes = kSegmentHeaderBytes;
  std::size_t records = 0;
  read_entries(run_dir, options, out, [&](RecordedEntry& e, const JournalRecord& r) {
    read_bytes += kRecordHeaderBytes + r.payload.size();
    if (++records == kRecordsBeforeReserve && total_bytes > read_bytes) {
      // A few per cent over, so a run of even records does not grow once at its end;
      // a run whose later records are smaller grows as before.
      const double estimate = 1.03 * static_cast<double>(out.entries.size()) * static_cast<double>(total_bytes) /
                              static_cast<double>(read_bytes);
      out.entries.reserve(static_cast<std::size_t>(estimate) + 16);
    }
    out.entries.push_back(std::move(e));
  });
  return out;
}

RecordedRun stream_recorded_run(const fs::path& run_dir, ReadOptions options,
                                const std::function<void(const RecordedEntry&)>& visit) {
  RecordedRun out;
  read_entries(run_dir, options, out, [&](const RecordedEntry& e, const JournalRecord&) { visit(e); });
  return out;
}

void precompute_spectral_metrics(RecordedRun& run, double phi_target) {
  if (!run.spectrum_names) run.spectrum_names = std::make_shared<std::set<std::string, std::less<>>>();
  for (auto& e : run.entries) {
    if (e.type != RecordType::snapshot) continue;
    const auto& snapshot = std::get<Snapshot>(e.value);
    e.spectral.clear();
    e.spectral.reserve(snapshot.spectra.size());
    e.spectral_names.clear();
    e.spectral_names.reserve(snapshot.spectra.size());
    for (const auto& [name, values] : snapshot.spectra) {
      e.spectral.push_back(spectral_metrics(values, phi_target));
      e.spectral_names.push_back(*run.spectrum_names->insert(name).first);
    }
    e.spectral_phi_target = phi_target;
  }
}

void record_filter_memo(RecordedRun& run, const NavigatorConfig& config, Mode mode) {
  auto memo = std::make_shared<NavigatorMemo>();
  RunDriver::Options options;
  options.config = config;
  options.mode = mode;
  options.follow_config_records = false;
  options.follow_mode_records = false;
  options.report_metrics = false;
  options.record_memo = memo.get();
  RunDriver driver(std::move(options));
  for (const auto& e : run.entries) driver.feed(e);
  run.memo = std::move(memo);
}

NavigatorConfigParser default_navigator_config_parser() {
  return [](const std::string& text) { return parse_daemon_config(text, "<journal config record>").navigator; };
}

RunDriver::RunDriver(Options options) : options_(std::move(options)) {}

RunDriver::Output RunDriver::feed(const RecordedEntry& entry) {
  Output out;
  switch (entry.type) {
    case RecordType::config: {
      const auto& text = std::get<std::string>(entry.value);
      config_text_ = text;
      if (!options_.follow_config_records) break;
      options_.config = options_.parse_config(text);
      if (navigator_) navigator_->reconfigure(options_.config);
      break;
    }
    case RecordType::mode: {
      if (!options_.follow_mode_records) break;
      const auto& text = std::get<std::string>(entry.value);
      const std::optional<Mode> mode = parse_mode(text);
      if (!mode) break;
      options_.mode = *mode;
      if (navigator_) navigator_->set_mode(options_.mode);
      break;
    }
    case RecordType::hello: {
      const auto& hello = std::get<Hello>(entry.value);
      if (!navigator_) {
        navigator_ = std::make_unique<Navigator>(options_.config, info_of(hello), options_.mode);
        navigator_->set_report_metrics(options_.report_metrics);
        navigator_->set_metrics_in_sink(options_.metrics_in_sink);
        if (options_.record_memo) navigator_->record_memo(options_.record_memo);
        if (options_.follow_memo) navigator_->follow_memo(options_.follow_memo);
      } else navigator_->update_info(info_of(hello));
      break;
    }
    case RecordType::snapshot: {
      const auto& snapshot = std::get<Snapshot>(entry.value);
      if (!navigator_) {
        ++orphans_;
        break;
      }
      last_step_ = std::max(last_step_, snapshot.step);
      out.snapshot = &snapshot;
      // Bit-equal targets: the precomputed metrics are exactly what the Navigator would compute.
      const bool precomputed = !entry.spectral.empty() &&
                               entry.spectral_phi_target == navigator_->config().signals.phi_target;
      const bool named = entry.spectral_names.size() == entry.spectral.size();
      clear_decision(decision_);
      navigator_->on_snapshot_into(snapshot, precomputed ? &entry.spectral : nullptr,
                                   precomputed && named ? &entry.spectral_names : nullptr, decision_);
      out.decision = &decision_;
      break;
    }
    case RecordType::ack:
      if (navigator_) navigator_->on_ack(std::get<Ack>(entry.value));
      break;
    case RecordType::forced_burn:
      if (navigator_ && (forced_ = navigator_->force_burn(std::get<Burn>(entry.value)))) out.forced = &*forced_;
      break;
    case RecordType::rank_silent:
      if (navigator_) {
        const auto& s = std::get<RankSilent>(entry.value);
        navigator_->on_rank_silent(s.rank, s.time);
      }
      break;
    default: break;
  }
  return out;
}

RecoveredRun recover_run(const fs::path& run_dir, RunDriver::Options options) {
  RecoveredRun out;
  // Past a damaged record: stopping there would drop everything the daemon journaled
  // after it, on this restart and every later one.
  out.recording = load_recorded_run(run_dir, ReadOptions{.repair = true, .skip_corrupt = true});
  RunDriver driver(std::move(options));
  for (const auto& e : out.recording.entries) driver.feed(e);
  out.mode = driver.mode();
  out.config_text = driver.config_text();
  out.last_step = driver.last_step();
  out.navigator = driver.release();
  // Every burn record spent its seq, also one replay could not decode (and so
  // could not reproduce): the next burn must not reuse it.
  if (out.navigator) out.navigator->reserve_seq(out.recording.max_burn_seq);
  return out;
}

}  // namespace orbit
