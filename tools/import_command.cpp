// SPDX-License-Identifier: Apache-2.0
// `orbit import`: a training log recorded elsewhere -> a journal that replay can read.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "journal/journal.hpp"  // JournalError
#include "protocol/codec.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/exit_codes.hpp"
#include "tools/import_journal.hpp"
#include "tools/trace_import.hpp"

#ifndef ORBIT_VERSION
#define ORBIT_VERSION "0.0.0"
#endif

namespace orbit {

namespace fs = std::filesystem;

namespace {

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a("orbit import [--format FORMAT] FILE --out DIR [--map field=column ...] [--run NAME]",
                "Turns a training log recorded elsewhere into a journal (one run directory under DIR)\n"
                "that `orbit replay` and `orbit tune` read. Every row becomes a snapshot record (it has a\n"
                "training loss), an evaluation record (no training loss, other metrics), or is counted as\n"
                "skipped or unparseable and listed with its line number.");
    a.positional("FILE", "the log to import");
    a.option("format", "FORMAT",
             "csv | llmc | steplog | megatron; detected from the first lines when left out\n"
             "csv: header row, common names recognised (step/global_step/iteration, loss/train_loss,\n"
             "     grad_norm, lr/learning_rate, time); llmc: llm.c main.log \"s:N trl:X lr:Y norm:Z\";\n"
             "steplog: \"step:N/M train_loss:X train_time:Tms\"; megatron: \"iteration N/ M | lm loss: X | ...\"");
    a.option("out", "DIR", "journal root to write into (created when missing)");
    a.option("map", "FIELD=COLUMN",
             "take a snapshot field from a column/key; fields: step loss grad_norm lr time tokens\n"
             "loop_rate domain.<name> scalar.<name>",
             true);
    a.option("run", "NAME", "run id (default: the file name without extension); fragments get .f1, .f2, ...");
    a.flag("force", "replace run directories that already exist");
    a.flag("quiet", "print only problems");
    a.epilog(std::string("Time of each record: the log's time column when it has one, else the row index in\n"
                         "seconds. Evaluation records hold {step, time, metrics}.\n") +
             kExitCodeHelp);
    return a;
  }();
  return p;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw JournalError("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void list_lines(const char* what, const std::vector<LineProblem>& problems) {
  if (problems.empty()) return;
  std::printf("  %s: %zu row%s", what, problems.size(), problems.size() == 1 ? "" : "s");
  // Runs of consecutive lines with one reason print as ranges: "74-97 (no training loss)".
  std::string out;
  std::size_t shown = 0;
  for (std::size_t i = 0; i < problems.size() && shown < 12;) {
    std::size_t j = i;
    while (j + 1 < problems.size() && problems[j + 1].line == problems[j].line + 1 &&
           problems[j + 1].reason == problems[i].reason)
      ++j;
    out += shown ? ", " : " at lines ";
    out += std::to_string(problems[i].line);
    // Appended piece by piece: GCC 12 at -O3 misreads `"-" + std::to_string(..)` as an
    // overlapping memcpy (-Wrestrict false positive, GCC PR 105651).
    if (j > i) out.append("-").append(std::to_string(problems[j].line));
    out.append(" (").append(problems[i].reason).append(")");
    ++shown;
    i = j + 1;
    if (shown == 12 && i < problems.size()) out += ", ...";
  }
  std::printf("%s\n", out.c_str());
}

}  // namespace

int import_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  const fs::path file = a.positionals().at(0);
  if (!a.has("out")) throw UsageError("--out DIR is required");
  ImportOptions options;
  if (auto f = a.maybe("format")) {
    options.format = trace_format_from_string(*f);
    if (!options.format) throw UsageError("--format must be csv, llmc, steplog or megatron, got '" + *f + "'");
  }
  for (const auto& m : a.all("map")) {
    auto [field, column] = split_assignment(m, "map");
    options.map[field] = column;
  }
  options.run = sanitize_run_id(a.get("run", file.stem().string()));

  const std::string text = read_file(file);
  ImportResult result;
  try {
    result = import_trace(text, options);
  } catch (const ImportError& e) {
    std::fprintf(stderr, "orbit import: %s: %s\n", file.c_str(), e.what());
    return kExitData;
  }
  if (result.runs.empty()) {
    std::fprintf(stderr, "orbit import: %s: no row had a step and a training loss or evaluation metrics\n",
                 file.c_str());
    list_lines("unparseable", result.unparseable);
    return kExitData;
  }

  const fs::path out = a.get("out");
  for (const auto& run : result.runs) {
    const fs::path dir = out / run.run;
    std::error_code ec;
    if (fs::exists(dir, ec)) {
      if (!a.has("force")) {
        std::fprintf(stderr, "orbit import: %s exists; pass --force to replace it\n", dir.c_str());
        return kExitData;
      }
      fs::remove_all(dir, ec);
    }
  }

  write_import_journal(result, out, options);

  const bool quiet = a.has("quiet");
  if (!quiet) {
    std::printf("imported %s (%s): %zu training rows, %zu evaluation rows -> %zu run%s under %s\n", file.c_str(),
                std::string(to_string(result.format)).c_str(), result.training_rows, result.evaluation_rows,
                result.runs.size(), result.runs.size() == 1 ? "" : "s", out.c_str());
    for (const auto& run : result.runs) {
      std::printf("  %s: %zu snapshots", run.run.c_str(), run.snapshots.size());
      if (!run.snapshots.empty())
        std::printf(" (steps %lld..%lld)", static_cast<long long>(run.snapshots.front().step),
                    static_cast<long long>(run.snapshots.back().step));
      std::printf(", %zu evaluations\n", run.evaluations.size());
    }
    std::string fields;
    for (const auto& [f, c] : result.fields) fields += (fields.empty() ? "" : ", ") + f + "=" + c;
    std::printf("  fields: %s\n", fields.c_str());
    for (const auto& n : result.notes) std::printf("  note: %s\n", n.c_str());
  }
  list_lines("skipped (kept nothing)", result.skipped);
  list_lines("unparseable", result.unparseable);
  return kExitOk;
}

}  // namespace orbit
