// SPDX-License-Identifier: Apache-2.0
#pragma once
// Training logs recorded elsewhere, turned into Orbit snapshots so they can be
// journaled and replayed. Four formats:
//   csv       header row + one row per log point (AlgoPerf measurements.csv, W&B exports);
//   llmc      llm.c main.log lines "s:<step> trl:<loss> lr:<lr> norm:<grad norm>", "s:<step> tel:<val>";
//   steplog   "step:N/M train_loss:X train_time:Tms ..." (modded-nanogpt);
//   megatron  Megatron-LM / Megatron-DeepSpeed "iteration N/ M | lm loss: X | grad norm: Y | ..." lines.
// Every row becomes a training snapshot (it has a training loss), an evaluation record
// (no training loss but other metrics), or is skipped (nothing but a step/lr) or
// unparseable; skipped and unparseable rows are counted with their line numbers.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "journal/record_payloads.hpp"  // Evaluation
#include "protocol/messages.hpp"

namespace orbit {

enum class TraceFormat { csv, llmc, steplog, megatron };
std::string_view to_string(TraceFormat format);
std::optional<TraceFormat> trace_format_from_string(std::string_view name);
// Looks at the first non-empty lines; nullopt when no format fits.
std::optional<TraceFormat> detect_trace_format(std::string_view text);

// The input cannot be imported at all (no header, a --map naming a missing column).
class ImportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ImportOptions {
  std::optional<TraceFormat> format;  // detected when empty
  // Snapshot field -> column (csv) or key (text formats). Fields: step, loss, grad_norm,
  // lr, time, tokens, loop_rate, domain.<name> (that domain's loss), scalar.<name>.
  std::map<std::string, std::string> map;
  std::string run = "imported";  // run id; fragments get ".f1", ".f2", ...
};

// What one imported record came from.
struct ImportedItem {
  std::size_t line = 0;
  bool evaluation = false;
  std::size_t index = 0;  // into snapshots or evaluations
};

struct ImportedRun {
  std::string run;
  std::vector<Snapshot> snapshots;
  std::vector<Evaluation> evaluations;
  std::vector<ImportedItem> order;  // file order of snapshots and evaluations
};

struct LineProblem {
  std::size_t line = 0;  // 1-based line number in the input
  std::string reason;
};

struct ImportResult {
  TraceFormat format = TraceFormat::csv;
  std::vector<ImportedRun> runs;  // one, or one per fragment (steps restart, or a gap in a log excerpt)
  std::size_t lines = 0;          // non-empty data lines looked at
  std::size_t training_rows = 0;
  std::size_t evaluation_rows = 0;
  std::vector<LineProblem> skipped;      // no training loss and nothing else worth keeping
  std::vector<LineProblem> unparseable;  // could not be read
  std::map<std::string, std::string> fields;  // snapshot field -> column/key used
  std::vector<std::string> notes;             // e.g. how a quirk of the format was handled
};

ImportResult import_trace(std::string_view text, const ImportOptions& options);

// Run ids must be [A-Za-z0-9._-]{1,128}: other characters become '_'.
std::string sanitize_run_id(std::string_view name);

}  // namespace orbit
