// SPDX-License-Identifier: Apache-2.0
// `orbit replay`: a journal through a controller config, in lockstep, as fast as it goes.

#include <cstdio>
#include <fstream>
#include <sstream>

#include "config/config_error.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/exit_codes.hpp"
#include "tools/html_report.hpp"
#include "tools/journal_paths.hpp"
#include "tools/progress.hpp"
#include "tools/replay.hpp"
#include "tools/replay_report.hpp"
#include "tools/replay_serve.hpp"

namespace orbit {

namespace fs = std::filesystem;

namespace {

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a(
        "orbit replay PATH [--config FILE] [--set key=value ...] [--out FILE.html|.json|.csv ...] "
        "[--serve HOST:PORT]",
        "Feeds every run of a journal (a run directory, or a journal root) through a controller\n"
        "config in lockstep, as fast as possible: the recorded config (each config record in\n"
        "turn), or --config instead, then every --set on top. Reports the state timeline, the\n"
        "burns, the first alarm before each failure and its lead in steps, and false alarms.\n"
        "With the recorded config it checks that the recorded burns come out bit for bit.\n"
        "Failures: labels.toml in the run directory (or --labels), else detected from the loss.");
    a.positional("PATH", "journal root or run directory");
    a.option("config", "FILE", "orbitd config (TOML) to use instead of the recorded one");
    a.option("set", "KEY=VALUE",
             "override one key (\"controller.pid.warning.kp=0.8\"; keys outside [daemon], [limits],\n"
             "[logging], [journal] may leave out \"controller.\")",
             true);
    a.option("out", "FILE",
             "write a report: .html (plots), .json (everything incl. timeline) or .csv (timeline;\n"
             "metric columns named metric.NAME)",
             true);
    a.option("serve", "HOST:PORT",
             "then serve the dashboard page (the one orbitd serves) over the replayed runs on this\n"
             "loopback address (port 0: any free one) until Ctrl-C");
    a.option("labels", "FILE", "failure labels (TOML) for a single run, instead of labels.toml / detection");
    a.option("alarm-level", "STATE", "lowest state that counts as an alarm: drifting | warning (default) | critical");
    a.option("failure-ratio", "R",
             "detected failure: loss above R x its baseline, the running minimum of its\n"
             "15-snapshot median (default 2)");
    a.option("lead-window", "N", "snapshots before a failure's peak in which an alarm counts (default 50)");
    a.option("mode", "MODE", "active | monitor: replay in this mode instead of the recorded one");
    a.option("run", "NAME", "only this run of a journal root", true);
    a.flag("skip-corrupt", "read past damaged records instead of stopping at the first");
    a.flag("verbose", "every state change and burn");
    a.flag("quiet", "no per-run text");
    a.flag("progress", "draw the progress bar on stderr even when it is not a terminal");
    a.flag("no-progress", "no progress bar (default: drawn when stderr is a terminal)");
    a.epilog(std::string("Exit 1 when a replay with the recorded config does not reproduce the recorded burns.\n") +
             kExitCodeHelp);
    return a;
  }();
  return p;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw JournalError("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw JournalError("cannot write " + path.string());
}

}  // namespace

int replay_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  ReplaySettings settings;
  if (auto f = a.maybe("config")) {
    settings.config_text = read_text(*f);
    settings.config_source = *f;
  }
  for (const auto& s : a.all("set")) settings.overrides.push_back(split_assignment(s, "set"));
  if (auto l = a.maybe("alarm-level")) {
    auto level = alarm_level_from_string(*l);
    if (!level) throw UsageError("--alarm-level must be drifting, warning or critical");
    settings.alarm_level = *level;
  }
  settings.detect.ratio = a.number("failure-ratio", 2.0);
  if (!(settings.detect.ratio > 1.0)) throw UsageError("--failure-ratio must be > 1");
  const long long window = a.integer("lead-window", 50);
  if (window < 0) throw UsageError("--lead-window must be >= 0");
  settings.score.lead_window = static_cast<std::size_t>(window);
  settings.score.settle = static_cast<std::size_t>(window);
  if (auto m = a.maybe("mode")) {
    const std::optional<Mode> mode = parse_mode(*m);
    if (!mode) throw UsageError("--mode must be active or monitor");
    settings.mode = *mode;
  }
  for (const auto& out : a.all("out")) {
    const auto ext = fs::path(out).extension();
    if (ext != ".html" && ext != ".json" && ext != ".csv")
      throw UsageError("--out " + out + ": the name must end in .html, .json or .csv");
  }

  auto runs = find_run_dirs(a.positionals().at(0));
  if (!a.all("run").empty()) {
    std::vector<fs::path> chosen;
    for (const auto& name : a.all("run")) {
      auto it = std::find_if(runs.begin(), runs.end(), [&](const fs::path& p) { return p.filename() == name; });
      if (it == runs.end()) throw UsageError("no run named '" + name + "' under " + a.positionals().at(0));
      chosen.push_back(*it);
    }
    runs = chosen;
  }
  if (auto l = a.maybe("labels")) {
    if (runs.size() != 1) throw UsageError("--labels needs a single run (use --run NAME)");
    settings.labels = load_labels(*l);
  }
  ReadOptions ro;
  ro.skip_corrupt = a.has("skip-corrupt");

  const std::optional<std::string> serve = a.maybe("serve");
  std::vector<RunReplay> results;
  results.reserve(runs.size());
  std::vector<RecordedRun> recordings;  // kept for --serve (the latest spectrum of each run)
  int rc = kExitOk;
  ProgressBar progress("replay", runs.size(), progress_display(a));
  for (const auto& dir : runs) {
    try {
      if (serve) {
        // --serve keeps each run's records (the page shows its latest spectrum).
        RecordedRun recording = load_recorded_run(dir, ro);
        results.push_back(replay_run(recording, settings));
        recordings.push_back(std::move(recording));
      } else {
        results.push_back(replay_journal(dir, ro, settings));  // straight off the journal, nothing kept
      }
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "orbit replay: %s: %s\n", dir.filename().string().c_str(), e.what());
      return kExitData;
    }
    const RunReplay& r = results.back();
    // A gap is records the daemon could not write: the journal is incomplete.
    if (!r.journal.clean() || !r.gaps.empty()) rc = std::max(rc, static_cast<int>(kExitData));
    if (!r.overridden && (r.used_recorded_config || !r.recorded_burns.empty()) && !r.reproduced())
      rc = std::max(rc, static_cast<int>(kExitFinding));
    progress.advance();
  }
  progress.finish();

  std::vector<const RunReplay*> views;
  for (const auto& r : results) views.push_back(&r);
  if (!a.has("quiet"))
    for (const auto& r : results) std::fputs(replay_text(r, a.has("verbose")).c_str(), stdout);

  for (const auto& out : a.all("out")) {
    const auto ext = fs::path(out).extension();
    if (ext == ".json") {
      write_text(out, replay_json(views, true));
    } else if (ext == ".csv") {
      write_text(out, replay_csv(views));
    } else {
      std::vector<ReportSection> sections;
      for (const auto* r : views) sections.push_back({"", r});
      write_text(out, html_report("orbit replay: " + a.positionals().at(0), replay_summary_html(views), sections));
    }
    if (!a.has("quiet")) std::printf("wrote %s\n", out.c_str());
  }
  if (serve) {
    std::vector<const RecordedRun*> recorded;
    for (const auto& r : recordings) recorded.push_back(&r);
    try {
      serve_replays(*serve, "orbit replay " + a.positionals().at(0), views, recorded);
    } catch (const std::runtime_error& e) {
      throw UsageError(e.what());
    }
  }
  // A damaged journal is reported above; its readable part was still replayed.
  return rc == kExitData ? kExitData : rc;
}

}  // namespace orbit
