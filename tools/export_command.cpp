// SPDX-License-Identifier: Apache-2.0
// `orbit export`: a journal as JSON lines (every record) or CSV (one row per snapshot
// and evaluation), for notebooks and spreadsheets.

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>

#include <msgpack.hpp>

#include "journal/journal_reader.hpp"
#include "journal/record_payloads.hpp"
#include "protocol/codec.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/exit_codes.hpp"
#include "tools/journal_paths.hpp"
#include "protocol/journal_record.hpp"
#include "protocol/json_writer.hpp"
#include "protocol/msgpack_json.hpp"

namespace orbit {

namespace fs = std::filesystem;

namespace {

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a("orbit export PATH --format jsonl|csv [--out FILE]",
                "Writes a journal (a run directory, or a journal root with one directory per run) as\n"
                "JSON lines - one object per record: run, type, timestamp_ns, segment, offset and the\n"
                "message (MessagePack maps as JSON; spectra as arrays of floats; config and mode records\n"
                "as text) - or as CSV with one row per snapshot and evaluation.");
    a.positional("PATH", "journal root or run directory");
    a.option("format", "FORMAT", "jsonl | csv (default jsonl)");
    a.option("out", "FILE", "write here instead of stdout");
    a.flag("skip-corrupt", "read past damaged records instead of stopping at the first");
    a.epilog(kExitCodeHelp);
    return a;
  }();
  return p;
}

bool text_record(RecordType t) { return t == RecordType::config || t == RecordType::mode; }

void export_jsonl(const fs::path& run_dir, std::ostream& out, ReadOptions ro, RecoveryReport& report) {
  const std::string run = run_dir.filename().string();
  report = for_each_record(run_dir, [&](const JournalRecord& r) {
    JsonWriter w;
    w.begin_object();
    w.field("run", run).field("type", to_string(r.type)).field("timestamp_ns", r.timestamp_ns);
    w.field("segment", static_cast<std::int64_t>(r.segment)).field("offset", static_cast<std::uint64_t>(r.offset));
    if (text_record(r.type)) {
      w.field("text", r.payload);
    } else {
      w.key("message");
      try {
        msgpack::object_handle h = msgpack::unpack(r.payload.data(), r.payload.size());
        to_json(h.get(), w);
      } catch (const std::exception&) {
        w.null();
      }
    }
    w.end_object();
    out << w.str() << '\n';
  }, ro);
}

std::string csv_cell(double v) { return format_double(v); }

std::string csv_quote(std::string_view s) {
  if (s.find_first_of(",\"\n") == std::string_view::npos) return std::string(s);
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

void export_csv(const std::vector<fs::path>& runs, std::ostream& out, ReadOptions ro,
                std::vector<RecoveryReport>& reports) {
  struct Row {
    std::string run, type;
    std::int64_t step = 0;
    std::map<std::string, double> values;
  };
  std::vector<Row> rows;
  std::vector<std::string> columns = {"time", "loss", "grad_norm", "lr", "tokens", "loop_rate"};
  std::set<std::string> extra;
  for (const auto& dir : runs) {
    const std::string run = dir.filename().string();
    reports.push_back(for_each_record(dir, [&](const JournalRecord& r) {
      if (r.type == RecordType::snapshot) {
        const DecodeResult d = decode(r.payload);
        if (!d.ok()) return;
        const auto& s = std::get<Snapshot>(*d.message);
        Row row{run, "snapshot", s.step, {}};
        row.values["time"] = s.time;
        row.values["loss"] = s.loss;
        if (s.grad_norm) row.values["grad_norm"] = *s.grad_norm;
        if (s.lr) row.values["lr"] = *s.lr;
        if (s.tokens) row.values["tokens"] = static_cast<double>(*s.tokens);
        if (s.loop_rate) row.values["loop_rate"] = *s.loop_rate;
        for (const auto& [k, v] : s.scalars) {
          row.values["scalar." + k] = v;
          extra.insert("scalar." + k);
        }
        for (const auto& [k, d2] : s.domains)
          if (d2.loss) {
            row.values["domain." + k] = *d2.loss;
            extra.insert("domain." + k);
          }
        rows.push_back(std::move(row));
      } else if (r.type == RecordType::evaluation) {
        const auto e = decode_evaluation(r.payload);
        if (!e) return;
        Row row{run, "evaluation", e->step, {}};
        row.values["time"] = e->time;
        for (const auto& [k, v] : e->metrics) {
          row.values["eval." + k] = v;
          extra.insert("eval." + k);
        }
        rows.push_back(std::move(row));
      }
    }, ro));
  }
  columns.insert(columns.end(), extra.begin(), extra.end());
  out << "run,type,step";
  for (const auto& c : columns) out << ',' << csv_quote(c);
  out << '\n';
  for (const auto& row : rows) {
    out << csv_quote(row.run) << ',' << row.type << ',' << row.step;
    for (const auto& c : columns) {
      out << ',';
      if (auto it = row.values.find(c); it != row.values.end()) out << csv_cell(it->second);
    }
    out << '\n';
  }
}

}  // namespace

int export_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  const std::string format = a.get("format", "jsonl");
  if (format != "jsonl" && format != "csv") throw UsageError("--format must be jsonl or csv, got '" + format + "'");
  const auto runs = find_run_dirs(a.positionals().at(0));
  ReadOptions ro;
  ro.skip_corrupt = a.has("skip-corrupt");

  std::ofstream file;
  std::ostream* out = &std::cout;
  if (auto path = a.maybe("out")) {
    file.open(*path, std::ios::binary | std::ios::trunc);
    if (!file) throw JournalError("cannot write " + *path);
    out = &file;
  }
  std::vector<RecoveryReport> reports;
  if (format == "jsonl") {
    for (const auto& dir : runs) {
      reports.emplace_back();
      export_jsonl(dir, *out, ro, reports.back());
    }
  } else {
    export_csv(runs, *out, ro, reports);
  }
  out->flush();
  if (!*out) throw JournalError("write failed");
  int rc = kExitOk;
  for (const auto& r : reports)
    if (!r.clean()) {
      std::fprintf(stderr, "orbit export: %s: %s\n", r.run_dir.c_str(), r.summary().c_str());
      rc = kExitData;
    }
  return rc;
}

}  // namespace orbit
