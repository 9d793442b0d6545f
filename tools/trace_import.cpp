// SPDX-License-Identifier: Apache-2.0
#include "tools/trace_import.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "protocol/codec.hpp"

namespace orbit {

namespace {

// ------------------------------------------------------------------ text helpers

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits into lines (without "\r\n" / "\n"), keeping 1-based numbers.
std::vector<std::pair<std::size_t, std::string_view>> split_lines(std::string_view text) {
  std::vector<std::pair<std::size_t, std::string_view>> out;
  std::size_t number = 0, start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.emplace_back(++number, line);
    start = end + 1;
  }
  return out;
}

// A whole cell as a number ("inf", "nan", "1e-3" included); nullopt otherwise.
std::optional<double> parse_number(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  std::string tmp(s);
  char* end = nullptr;
  const double v = std::strtod(tmp.c_str(), &end);
  if (end != tmp.c_str() + tmp.size()) return std::nullopt;
  return v;
}

// A step: a non-negative integer, optionally followed by "/total" ("step:12/20344").
std::optional<std::int64_t> parse_step(std::string_view s) {
  s = trim(s);
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || v < 0) {
    // "12.0" from float-typed CSV columns.
    if (auto d = parse_number(s); d && *d >= 0 && *d == std::floor(*d) && *d < 9.0e15)
      return static_cast<std::int64_t>(*d);
    return std::nullopt;
  }
  const std::string_view rest = trim(std::string_view(ptr, static_cast<std::size_t>(s.data() + s.size() - ptr)));
  if (!rest.empty() && rest.front() != '/') return std::nullopt;
  return v;
}

// Seconds from "81991ms", "12.5s" or "12.5".
std::optional<double> parse_seconds(std::string_view s) {
  s = trim(s);
  double scale = 1.0;
  if (s.ends_with("ms")) {
    s.remove_suffix(2);
    scale = 1e-3;
  } else if (s.ends_with("s")) {
    s.remove_suffix(1);
  }
  auto v = parse_number(s);
  if (!v || !std::isfinite(*v)) return std::nullopt;
  return *v * scale;
}

// "elapsed time per iteration (ms)" -> "elapsed_time_per_iteration_ms".
std::string scalar_name(std::string_view key) {
  std::string out;
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '/' || c == '.' || c == '-') {
      out += static_cast<char>(std::tolower(u));
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  if (out.size() > 128) out.resize(128);
  return out;
}

// ------------------------------------------------------------------ rows

struct Cell {
  std::string key;
  std::string_view value;
};

struct Row {
  std::size_t line = 0;
  std::vector<Cell> cells;
  std::optional<std::size_t> excerpt_line;  // "L<n>\t" prefix of chronicle excerpts
  std::optional<std::int64_t> step;         // set by formats that carry it outside the cells
};

std::vector<std::string_view> split_csv(std::string_view line, std::string& scratch, bool& ok) {
  // RFC 4180 quoting; unquoted cells point into the line, quoted ones into `scratch`.
  std::vector<std::string_view> cells;
  std::vector<std::pair<std::size_t, std::size_t>> quoted;  // (cell index, scratch offset)
  scratch.clear();
  ok = true;
  std::size_t i = 0;
  while (true) {
    if (i < line.size() && line[i] == '"') {
      const std::size_t begin = scratch.size();
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            scratch += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        scratch += line[i++];
      }
      if (!closed || (i < line.size() && line[i] != ',')) ok = false;
      quoted.emplace_back(cells.size(), begin);
      cells.emplace_back();  // filled below, once scratch stops moving
      scratch += '\0';
    } else {
      const std::size_t end = std::min(line.find(',', i), line.size());
      cells.push_back(line.substr(i, end - i));
      i = end;
    }
    if (i >= line.size()) break;
    ++i;  // the comma
    if (i == line.size()) {
      cells.emplace_back();
      break;
    }
  }
  for (auto [index, offset] : quoted) cells[index] = std::string_view(scratch.c_str() + offset);
  return cells;
}

// ------------------------------------------------------------------ fields

constexpr std::string_view kFields[] = {"step", "loss", "grad_norm", "lr", "time", "tokens", "loop_rate"};

// Column/key names recognised without --map, best first. `loss` comes before
// `train/loss`: in AlgoPerf logs `loss` is the per-step training loss and
// `train/loss` an evaluation-time number.
const std::map<std::string_view, std::vector<std::string_view>>& aliases() {
  static const std::map<std::string_view, std::vector<std::string_view>> a = {
      {"step", {"step", "global_step", "iteration", "iter", "s", "_step", "trainer/global_step", "steps"}},
      {"loss", {"loss", "train_loss", "trl", "lm loss", "lm_loss", "training_loss", "train/loss_step", "train/loss"}},
      {"grad_norm", {"grad_norm", "grad norm", "gradnorm", "grad_norm_total", "norm", "gnorm", "train/grad_norm"}},
      {"lr", {"lr", "learning_rate", "learning rate", "train/lr", "train/learning_rate"}},
      {"time", {"time", "timestamp", "wall_time", "walltime", "train_time", "_timestamp"}},
      {"tokens", {"tokens", "consumed tokens", "num_tokens", "tokens_seen"}},
      {"loop_rate", {"loop_rate"}},
  };
  return a;
}

bool known_field(std::string_view f) {
  return std::find(std::begin(kFields), std::end(kFields), f) != std::end(kFields) || f.starts_with("domain.") ||
         f.starts_with("scalar.");
}

class FieldMap {
 public:
  explicit FieldMap(const std::map<std::string, std::string>& user) : user_(user) {
    for (const auto& [field, column] : user)
      if (!known_field(field))
        throw ImportError("--map " + field + "=" + column +
                          ": unknown field; fields are step, loss, grad_norm, lr, time, tokens, loop_rate, "
                          "domain.<name>, scalar.<name>");
  }

  // Key of `field` among `keys` (lower-cased comparison for aliases, exact for --map).
  std::optional<std::string> resolve(std::string_view field, const std::vector<std::string>& keys) const {
    if (auto it = user_.find(std::string(field)); it != user_.end()) {
      if (std::find(keys.begin(), keys.end(), it->second) != keys.end()) return it->second;
      return std::nullopt;
    }
    auto a = aliases().find(field);
    if (a == aliases().end()) return std::nullopt;
    for (std::string_view alias : a->second)
      for (const auto& k : keys)
        if (lower(trim(k)) == alias) return k;
    return std::nullopt;
  }

  const std::map<std::string, std::string>& user() const { return user_; }

 private:
  const std::map<std::string, std::string>& user_;
};

// Which key each field uses in one row (CSV: the same for every row).
struct Resolved {
  std::map<std::string, std::string> key_of;  // field -> key
  std::set<std::string> used;                 // keys taken by a field
};

Resolved resolve_all(const FieldMap& fields, const std::vector<std::string>& keys) {
  Resolved r;
  for (std::string_view f : kFields)
    if (auto k = fields.resolve(f, keys)) {
      r.key_of[std::string(f)] = *k;
      r.used.insert(*k);
    }
  for (const auto& [field, column] : fields.user())
    if (field.starts_with("domain.") || field.starts_with("scalar.")) {
      if (std::find(keys.begin(), keys.end(), column) != keys.end()) {
        r.key_of[field] = column;
        r.used.insert(column);
      }
    }
  return r;
}

// ------------------------------------------------------------------ the importer

class Importer {
 public:
  Importer(const ImportOptions& options, ImportResult& result)
      : options_(options), result_(result), fields_(options.map) {}

  // CSV: the header fixes the columns for every row.
  void csv(std::string_view text) {
    const auto lines = split_lines(text);
    std::size_t i = 0;
    while (i < lines.size() && trim(lines[i].second).empty()) ++i;
    if (i == lines.size()) throw ImportError("the file is empty");
    std::string scratch;
    bool ok = true;
    std::vector<std::string> header;
    for (auto cell : split_csv(lines[i].second, scratch, ok)) header.emplace_back(trim(cell));
    if (!ok) throw ImportError("line " + std::to_string(lines[i].first) + ": the header is not valid CSV");
    const Resolved resolved = resolve_all(fields_, header);
    check_user_columns(resolved, header, "column", "the header has: " + join(header));
    if (!resolved.key_of.count("step")) throw ImportError("no step column (looked for step, global_step, iteration, iter); use --map step=COLUMN");
    if (!resolved.key_of.count("loss")) throw ImportError("no training loss column (looked for loss, train_loss, lm loss, ...); use --map loss=COLUMN");
    result_.fields = resolved.key_of;
    for (++i; i < lines.size(); ++i) {
      const auto [number, line] = lines[i];
      if (trim(line).empty()) continue;
      ++result_.lines;
      const auto cells = split_csv(line, scratch, ok);
      if (!ok || cells.size() != header.size()) {
        unparseable(number, ok ? std::to_string(cells.size()) + " cells; the header has " + std::to_string(header.size())
                               : std::string("unbalanced quotes"));
        continue;
      }
      Row row;
      row.line = number;
      for (std::size_t c = 0; c < cells.size(); ++c) row.cells.push_back({header[c], cells[c]});
      take(row, resolved, /*evaluations=*/true);
    }
  }

  // llm.c and step logs: whitespace-separated key:value tokens.
  void key_values(std::string_view text) {
    for (const auto& [number, line] : split_lines(text)) {
      if (trim(line).empty()) continue;
      ++result_.lines;
      Row row;
      row.line = number;
      bool bad = false;
      std::size_t i = 0;
      const std::string_view l = trim(line);
      while (i < l.size()) {
        while (i < l.size() && std::isspace(static_cast<unsigned char>(l[i]))) ++i;
        std::size_t end = i;
        while (end < l.size() && !std::isspace(static_cast<unsigned char>(l[end]))) ++end;
        if (end == i) break;
        const std::string_view token = l.substr(i, end - i);
        const auto colon = token.find(':');
        if (colon == std::string_view::npos || colon == 0) bad = true;
        else row.cells.push_back({std::string(token.substr(0, colon)), token.substr(colon + 1)});
        i = end;
      }
      if (bad || row.cells.empty()) {
        unparseable(number, "not a line of key:value tokens");
        continue;
      }
      take(row, resolve_row(row), /*evaluations=*/true);
    }
  }

  // Megatron: "iteration N/ M | key: value | ...", possibly after a prefix
  // ("[default7]:", or "L<n>\t" for excerpts quoted from a document).
  void megatron(std::string_view text) {
    result_.notes.push_back(
        "megatron: 'grad norm: 0.000' is read as not logged (Megatron prints 0 when it does not compute it)");
    for (const auto& [number, line] : split_lines(text)) {
      if (trim(line).empty()) continue;
      ++result_.lines;
      Row row;
      row.line = number;
      std::string_view l = line;
      if (l.size() > 1 && l[0] == 'L' && std::isdigit(static_cast<unsigned char>(l[1]))) {
        const auto tab = l.find_first_of("\t ");
        if (auto n = parse_step(l.substr(1, tab == std::string_view::npos ? 0 : tab - 1)))
          row.excerpt_line = static_cast<std::size_t>(*n);
      }
      const auto at = l.find("iteration");
      if (at == std::string_view::npos) {
        unparseable(number, "no 'iteration N/ M' field");
        continue;
      }
      std::string_view rest = l.substr(at + 9);
      const auto bar = rest.find('|');
      const std::string_view iteration = trim(rest.substr(0, bar));
      row.step = parse_step(iteration);
      if (!row.step || iteration.find('/') == std::string_view::npos) {
        unparseable(number, "no 'iteration N/ M' field");
        continue;
      }
      rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
      while (!rest.empty()) {
        const auto next = rest.find('|');
        const std::string_view part = trim(rest.substr(0, next));
        const auto colon = part.rfind(':');
        if (colon != std::string_view::npos) {
          std::string key(trim(part.substr(0, colon)));
          std::string_view value = trim(part.substr(colon + 1));
          if (lower(key) == "grad norm" && parse_number(value) == 0.0) value = {};
          row.cells.push_back({std::move(key), value});
        }
        if (next == std::string_view::npos) break;
        rest = rest.substr(next + 1);
      }
      take(row, resolve_row(row), /*evaluations=*/false);
    }
  }

  void finish() {
    for (auto& run : runs_) {
      if (run.order.empty()) continue;
      result_.runs.push_back(std::move(run));
    }
    if (result_.runs.size() > 1) {
      for (std::size_t i = 0; i < result_.runs.size(); ++i)
        result_.runs[i].run = sanitize_run_id(options_.run + ".f" + std::to_string(i + 1));
      result_.notes.push_back("split into " + std::to_string(result_.runs.size()) +
                              " runs: a new one starts where the step does not increase" +
                              std::string(result_.format == TraceFormat::megatron
                                              ? " or an excerpt skips more than 20 lines of its source"
                                              : ""));
    } else if (result_.runs.size() == 1) {
      result_.runs[0].run = sanitize_run_id(options_.run);
    }
  }

 private:
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  }

  void check_user_columns(const Resolved& r, const std::vector<std::string>&, const char* what,
                          const std::string& available) {
    for (const auto& [field, column] : options_.map)
      if (!r.key_of.count(field))
        throw ImportError("--map " + field + "=" + column + ": no " + what + " '" + column + "'; " + available);
  }

  Resolved resolve_row(const Row& row) {
    std::vector<std::string> keys;
    keys.reserve(row.cells.size());
    for (const auto& c : row.cells) keys.push_back(c.key);
    Resolved r = resolve_all(fields_, keys);
    for (const auto& [field, key] : r.key_of) result_.fields.emplace(field, key);
    return r;
  }

  void unparseable(std::size_t line, std::string reason) { result_.unparseable.push_back({line, std::move(reason)}); }
  void skipped(std::size_t line, std::string reason) { result_.skipped.push_back({line, std::move(reason)}); }

  std::string_view cell(const Row& row, const Resolved& r, const std::string& field) const {
    auto it = r.key_of.find(field);
    if (it == r.key_of.end()) return {};
    for (const auto& c : row.cells)
      if (c.key == it->second) return trim(c.value);
    return {};
  }

  ImportedRun& current(std::int64_t step, const Row& row, bool training) {
    bool split = runs_.empty();
    if (!split && training && have_last_step_ && step <= last_step_) split = true;
    if (!split && row.excerpt_line && last_excerpt_line_ && *row.excerpt_line > *last_excerpt_line_ + 20)
      split = true;
    if (split) {
      runs_.emplace_back();
      have_last_step_ = false;
    }
    if (row.excerpt_line) last_excerpt_line_ = row.excerpt_line;
    if (training) {
      have_last_step_ = true;
      last_step_ = step;
    }
    return runs_.back();
  }

  void take(const Row& row, const Resolved& r, bool evaluations) {
    std::optional<std::int64_t> step = row.step;
    if (!step) {
      const std::string_view s = cell(row, r, "step");
      if (s.empty()) {
        unparseable(row.line, "no step");
        return;
      }
      step = parse_step(s);
      if (!step) {
        unparseable(row.line, "step '" + std::string(s) + "' is not a non-negative integer");
        return;
      }
    }
    double time = static_cast<double>(row_index_);
    if (const std::string_view t = cell(row, r, "time"); !t.empty())
      if (auto secs = parse_seconds(t)) time = *secs;
    ++row_index_;

    const std::string_view loss_text = cell(row, r, "loss");
    if (!loss_text.empty()) {
      const auto loss = parse_number(loss_text);
      if (!loss) {
        unparseable(row.line, "loss '" + std::string(loss_text) + "' is not a number");
        return;
      }
      Snapshot s;
      s.step = *step;
      s.time = time;
      s.loss = *loss;
      if (auto v = parse_number(cell(row, r, "grad_norm"))) s.grad_norm = *v;
      if (auto v = parse_number(cell(row, r, "lr")); v && std::isfinite(*v) && *v >= 0) s.lr = *v;
      if (auto v = parse_number(cell(row, r, "tokens")); v && *v >= 0 && std::isfinite(*v))
        s.tokens = static_cast<std::int64_t>(*v);
      if (auto v = parse_number(cell(row, r, "loop_rate")); v && *v >= 0 && *v <= 1) s.loop_rate = *v;
      for (const auto& [field, key] : r.key_of) {
        if (field.starts_with("domain.")) {
          if (auto v = parse_number(cell(row, r, field))) s.domains[field.substr(7)].loss = *v;
        } else if (field.starts_with("scalar.")) {
          if (auto v = parse_number(cell(row, r, field)); v && std::isfinite(*v)) s.scalars[field.substr(7)] = *v;
        }
      }
      // Remaining numeric cells of a training row travel as scalars.
      for (const auto& c : row.cells) {
        if (r.used.count(c.key) || s.scalars.size() >= 256) continue;
        if (auto v = parse_number(c.value); v && std::isfinite(*v)) {
          const std::string name = scalar_name(c.key);
          if (!name.empty()) s.scalars.emplace(name, *v);
        }
      }
      ImportedRun& run = current(*step, row, true);
      s.run = "x";  // set when written; the run id is final only after splitting
      run.order.push_back({row.line, false, run.snapshots.size()});
      run.snapshots.push_back(std::move(s));
      ++result_.training_rows;
      return;
    }

    Evaluation e;
    e.step = *step;
    e.time = time;
    if (evaluations) {
      static const std::set<std::string> not_metrics = {"step", "time", "lr", "grad_norm"};
      for (const auto& c : row.cells) {
        bool excluded = false;
        for (const auto& f : not_metrics)
          if (auto it = r.key_of.find(f); it != r.key_of.end() && it->second == c.key) excluded = true;
        if (excluded) continue;
        if (auto v = parse_number(c.value); v && std::isfinite(*v)) e.metrics.emplace(c.key, *v);
      }
    }
    if (e.metrics.empty()) {
      skipped(row.line, "no training loss");
      return;
    }
    ImportedRun& run = current(*step, row, false);
    run.order.push_back({row.line, true, run.evaluations.size()});
    run.evaluations.push_back(std::move(e));
    ++result_.evaluation_rows;
  }

  const ImportOptions& options_;
  ImportResult& result_;
  FieldMap fields_;
  std::vector<ImportedRun> runs_;
  bool have_last_step_ = false;
  std::int64_t last_step_ = 0;
  std::optional<std::size_t> last_excerpt_line_;
  std::size_t row_index_ = 0;
};

}  // namespace

std::string_view to_string(TraceFormat format) {
  switch (format) {
    case TraceFormat::csv: return "csv";
    case TraceFormat::llmc: return "llmc";
    case TraceFormat::steplog: return "steplog";
    case TraceFormat::megatron: return "megatron";
  }
  return "csv";
}

std::optional<TraceFormat> trace_format_from_string(std::string_view name) {
  for (auto f : {TraceFormat::csv, TraceFormat::llmc, TraceFormat::steplog, TraceFormat::megatron})
    if (to_string(f) == name) return f;
  return std::nullopt;
}

std::optional<TraceFormat> detect_trace_format(std::string_view text) {
  std::size_t seen = 0;
  std::size_t llmc = 0, steplog = 0, megatron = 0, csv = 0;
  for (const auto& [number, raw] : split_lines(text.substr(0, 1 << 16))) {
    const std::string_view line = trim(raw);
    if (line.empty()) continue;
    if (++seen > 50) break;
    if (line.starts_with("s:") && line.find(' ') != std::string_view::npos) ++llmc;
    else if (line.starts_with("step:")) ++steplog;
    else if (line.find("iteration") != std::string_view::npos && line.find('|') != std::string_view::npos) ++megatron;
    else if (seen == 1 && line.find(',') != std::string_view::npos) ++csv;
  }
  if (seen == 0) return std::nullopt;
  if (csv) return TraceFormat::csv;
  const std::size_t best = std::max({llmc, steplog, megatron});
  if (best == 0 || 2 * best < seen) return std::nullopt;
  if (best == llmc) return TraceFormat::llmc;
  if (best == steplog) return TraceFormat::steplog;
  return TraceFormat::megatron;
}

std::string sanitize_run_id(std::string_view name) {
  std::string out;
  for (char c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    out += ok ? c : '_';
  }
  if (out.size() > 128) out.resize(128);
  if (out.empty() || out == "." || out == "..") out = "run";
  return out;
}

ImportResult import_trace(std::string_view text, const ImportOptions& options) {
  ImportResult result;
  const auto format = options.format ? options.format : detect_trace_format(text);
  if (!format) throw ImportError("cannot tell the format; pass --format csv|llmc|steplog|megatron");
  result.format = *format;
  Importer importer(options, result);
  switch (*format) {
    case TraceFormat::csv: importer.csv(text); break;
    case TraceFormat::llmc:
    case TraceFormat::steplog: importer.key_values(text); break;
    case TraceFormat::megatron: importer.megatron(text); break;
  }
  importer.finish();
  for (auto& run : result.runs)
    for (auto& s : run.snapshots) s.run = run.run;
  if (format != TraceFormat::csv)
    for (const auto& [field, column] : options.map)
      if (!result.fields.count(field))
        throw ImportError("--map " + field + "=" + column + ": no line has the key '" + column + "'");
  return result;
}

}  // namespace orbit
