// SPDX-License-Identifier: Apache-2.0
// `orbit tune`: search controller gains over recorded runs; print paste-ready TOML.

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>
#include <tuple>

#include "config/config_error.hpp"
#include "tools/cli_args.hpp"
#include "tools/commands.hpp"
#include "tools/exit_codes.hpp"
#include "tools/html_report.hpp"
#include "tools/journal_paths.hpp"
#include "protocol/json_writer.hpp"
#include "tools/progress.hpp"
#include "tools/tune.hpp"

namespace orbit {

namespace fs = std::filesystem;

namespace {

const ArgParser& parser() {
  static const ArgParser p = [] {
    ArgParser a("orbit tune PATH... --space FILE [--objective open-loop|closed-loop] [--budget N] [--jobs N] [--seed S]\n"
                "           [--held-out F] [--split-seed S]",
                "Searches controller gains over one or more journals: random search, then Nelder-Mead from\n"
                "the best points, candidates evaluated in parallel. Prints the best gains as TOML ready\n"
                "to paste into the orbitd config, and a before/after table.\n"
                "A share of the runs (--held-out, by run, healthy and failing runs split apart) is held out:\n"
                "the search never sees them; the starting and the best config are scored on them at the\n"
                "end, and a best config that raises more false alarms than the starting one on a held-out\n"
                "healthy run is refused (exit 1, no gains printed).\n"
                "open-loop: earliest alarms before each failure, no false alarms (failures from\n"
                "labels.toml beside each run, else detected from the loss). closed-loop: the controller\n"
                "against a plant model fitted to each run (loss answering the lr; see tools/README.md).");
    a.positional("PATH", "journal roots or run directories", 1, 1000);
    a.option("space", "FILE",
             "search space (TOML): [[param]] key = \"pid.warning.kp\", min, max, log = bool, integer = bool");
    a.option("objective", "NAME", "open-loop (default) | closed-loop");
    a.option("budget", "N", "candidate evaluations, the starting config included (default 200)");
    a.option("jobs", "N", "threads (default: the number of cores)");
    a.option("seed", "S", "random seed (default 1)");
    a.option("held-out", "F", "share of the runs held out, in [0, 0.9] (default 0.25; 0: none)");
    a.option("split-seed", "S", "seed of the held-out split (default 1)");
    a.option("config", "FILE", "starting orbitd config (default: the first run's recorded config, else defaults)");
    a.option("out", "FILE", "write an HTML report (.html) or the result as JSON (.json)", true);
    a.option("alarm-level", "STATE", "lowest state that counts as an alarm: drifting | warning (default) | critical");
    a.option("lead-window", "N", "snapshots before a failure's peak in which an alarm counts (default 50)");
    a.option("failure-ratio", "R", "detected failure: loss above R x its baseline, the running minimum of its\n"
             "15-snapshot median (default 2)");
    a.flag("progress", "draw the progress bar on stderr even when it is not a terminal");
    a.flag("no-progress", "no progress bar (default: drawn when stderr is a terminal)");
    a.epilog(std::string("Exit 1 when no candidate beats the starting config on the tuning runs, or when the\n"
                         "best adds false alarms on held-out healthy runs.\n") +
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

std::string mean_lead(const RunScore& r) {
  if (r.leads.empty()) return "-";
  double sum = 0;
  for (auto l : r.leads) sum += static_cast<double>(l);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", sum / static_cast<double>(r.leads.size()));
  return buf;
}

std::string table(const Candidate& before, const Candidate& after, bool closed_loop) {
  std::string s;
  char line[512];
  if (closed_loop) {
    std::snprintf(line, sizeof line, "%-40s %12s %12s %8s %8s\n", "run", "cost before", "cost after", "burns b", "burns a");
    s += line;
  } else {
    std::snprintf(line, sizeof line, "%-40s %-32s | %s\n", "", "before", "after");
    s += line;
    std::snprintf(line, sizeof line, "%-40s %4s %5s %4s %6s %3s %5s | %4s %5s %4s %6s %3s %5s\n", "run", "fail", "ontim",
                  "late", "missed", "FA", "lead", "fail", "ontim", "late", "missed", "FA", "lead");
    s += line;
  }
  for (std::size_t i = 0; i < before.runs.size() && i < after.runs.size(); ++i) {
    const RunScore& b = before.runs[i];
    const RunScore& a = after.runs[i];
    const std::string name = b.run.size() > 40 ? b.run.substr(0, 37) + "..." : b.run;
    if (closed_loop)
      std::snprintf(line, sizeof line, "%-40s %12.4g %12.4g %8zu %8zu\n", name.c_str(), b.cost, a.cost, b.burns, a.burns);
    else
      std::snprintf(line, sizeof line, "%-40s %4zu %5zu %4zu %6zu %3zu %5s | %4zu %5zu %4zu %6zu %3zu %5s\n", name.c_str(),
                    b.failures, b.in_time, b.late, b.missed, b.false_alarms, mean_lead(b).c_str(), a.failures, a.in_time,
                    a.late, a.missed, a.false_alarms, mean_lead(a).c_str());
    s += line;
  }
  return s;
}

}  // namespace

int tune_command(std::span<const std::string> args) {
  const ParsedArgs a = parser().parse(args);
  if (a.help()) {
    std::fputs(parser().help_text().c_str(), stdout);
    return kExitOk;
  }
  if (!a.has("space")) throw UsageError("--space FILE is required");
  TuneOptions options;
  const std::string objective = a.get("objective", "open-loop");
  if (objective == "open-loop") options.objective = Objective::open_loop;
  else if (objective == "closed-loop") options.objective = Objective::closed_loop;
  else throw UsageError("--objective must be open-loop or closed-loop");
  const long long budget = a.integer("budget", 200);
  if (budget < 2) throw UsageError("--budget must be >= 2");
  options.budget = static_cast<std::size_t>(budget);
  const long long jobs = a.integer("jobs", std::max(1u, std::thread::hardware_concurrency()));
  if (jobs < 1 || jobs > 1024) throw UsageError("--jobs must be in [1, 1024]");
  options.jobs = static_cast<std::size_t>(jobs);
  options.seed = static_cast<std::uint64_t>(a.integer("seed", 1));
  const double held_out_fraction = a.number("held-out", 0.25);
  if (!(held_out_fraction >= 0.0 && held_out_fraction <= 0.9)) throw UsageError("--held-out must be in [0, 0.9]");
  const auto split_seed = static_cast<std::uint64_t>(a.integer("split-seed", 1));
  if (auto l = a.maybe("alarm-level")) {
    auto level = alarm_level_from_string(*l);
    if (!level) throw UsageError("--alarm-level must be drifting, warning or critical");
    options.replay.alarm_level = *level;
  }
  const long long window = a.integer("lead-window", 50);
  if (window < 0) throw UsageError("--lead-window must be >= 0");
  options.replay.score.lead_window = options.replay.score.settle = static_cast<std::size_t>(window);
  options.replay.detect.ratio = a.number("failure-ratio", 2.0);
  for (const auto& out : a.all("out")) {
    const auto ext = fs::path(out).extension();
    if (ext != ".html" && ext != ".json") throw UsageError("--out " + out + ": the name must end in .html or .json");
  }

  std::vector<TuneParam> params;
  try {
    params = load_space(a.get("space"));
  } catch (const SpaceError& e) {
    std::fprintf(stderr, "orbit tune: %s\n", e.what());
    return kExitData;
  }

  std::vector<TuneRun> runs;
  std::size_t snapshots = 0;
  for (const auto& path : a.positionals())
    for (const auto& dir : find_run_dirs(path)) {
      TuneRun run;
      run.recording = load_recorded_run(dir);
      run.failures = failures_of(run.recording, options.replay, &run.failure_source, nullptr);
      snapshots += run.recording.snapshots;
      runs.push_back(std::move(run));
    }
  if (auto f = a.maybe("config")) {
    options.base_text = read_text(*f);
    options.base_source = *f;
  } else {
    for (const auto& r : runs) {
      for (const auto& e : r.recording.entries)
        if (e.type == RecordType::config) {
          options.base_text = std::get<std::string>(e.value);
          options.base_source = r.recording.run + " (recorded config)";
          break;
        }
      if (!options.base_text.empty()) break;
    }
  }

  // The split is by run: a run's snapshots are all on one side.
  const RunSplit split = split_runs(runs, held_out_fraction, split_seed);
  std::vector<TuneRun> held_out;
  {
    std::vector<TuneRun> tuning;
    for (std::size_t i : split.tuning) tuning.push_back(std::move(runs[i]));
    for (std::size_t i : split.held_out) held_out.push_back(std::move(runs[i]));
    runs = std::move(tuning);
  }

  ProgressBar progress("tune", options.budget, progress_display(a));
  options.progress = [&](std::size_t n) { progress.set(n); };
  TuneResult result;
  try {
    result = tune(runs, params, options, &held_out);
  } catch (const SpaceError& e) {
    std::fprintf(stderr, "orbit tune: %s\n", e.what());
    return kExitData;
  }
  progress.finish();
  if (!result.before.valid) {
    std::fprintf(stderr, "orbit tune: the starting config is not valid: %s\n", result.before.problem.c_str());
    return kExitData;
  }

  const bool closed = options.objective == Objective::closed_loop;
  std::printf("tuned %zu parameter%s over %zu run%s (%zu snapshots), %s objective: %zu candidates in %.2f s on %zu thread%s\n",
              params.size(), params.size() == 1 ? "" : "s", runs.size() + held_out.size(),
              runs.size() + held_out.size() == 1 ? "" : "s", snapshots,
              objective.c_str(), result.evaluations, result.seconds, options.jobs, options.jobs == 1 ? "" : "s");
  if (held_out.empty())
    std::printf("held out: none (--held-out %g over %zu run%s; each kind, healthy or failing, needs two runs to split)\n",
                held_out_fraction, runs.size(), runs.size() == 1 ? "" : "s");
  else
    std::printf("held out: %zu run%s (%zu healthy; --held-out %g, --split-seed %llu), not seen by the search\n",
                held_out.size(), held_out.size() == 1 ? "" : "s", result.held_out_healthy_runs, held_out_fraction,
                static_cast<unsigned long long>(split_seed));
  for (const auto& n : result.notes) std::printf("note: %s\n", n.c_str());
  const bool lower = result.best.valid && result.best.cost < result.before.cost;
  const bool refused = lower && result.adds_false_alarms();
  const bool better = lower && !refused;
  std::printf("\ntuning runs\n%s", table(result.before, result.best, closed).c_str());
  if (!held_out.empty())
    std::printf("\nheld-out runs\n%s", table(result.before_held_out, result.best_held_out, closed).c_str());
  std::printf("\ncost (lower is better): tuning before %.4g, after %.4g", result.before.cost, result.best.cost);
  if (!held_out.empty())
    std::printf("; held-out before %.4g, after %.4g", result.before_held_out.cost, result.best_held_out.cost);
  std::printf("\n");
  std::printf("\nstarting config: %s\n", options.base_source.c_str());
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::printf("  %-40s %12s -> %.6g\n", full_config_key(params[i].key).c_str(),
                params[i].start ? std::to_string(*params[i].start).c_str() : "(default)",
                result.best.values.empty() ? 0.0 : result.best.values[i]);
  }
  const std::string snippet = result.best.values.empty() ? "" : toml_snippet(params, result.best.values);
  if (better) {
    std::printf("\n# best gains: paste into the orbitd config\n%s", snippet.c_str());
  } else if (refused) {
    std::printf("\nrefused: the lowest-cost candidate raises %zu false alarm%s on %zu held-out healthy run%s where the\n"
                "starting config raises %zu; it is not offered as gains (more runs, or a narrower space, may help)\n",
                result.held_out_false_alarms_best, result.held_out_false_alarms_best == 1 ? "" : "s",
                result.held_out_healthy_runs, result.held_out_healthy_runs == 1 ? "" : "s",
                result.held_out_false_alarms_before);
  } else {
    std::printf("\nno candidate beat the starting config\n");
  }

  for (const auto& out : a.all("out")) {
    const auto ext = fs::path(out).extension();
    std::string text;
    if (ext == ".json") {
      JsonWriter w(true);
      w.begin_object();
      w.field("objective", objective).field("evaluations", static_cast<std::uint64_t>(result.evaluations));
      w.field("seconds", result.seconds).field("cost_before", result.before.cost).field("cost_after", result.best.cost);
      w.field("held_out_fraction", held_out_fraction).field("split_seed", static_cast<std::uint64_t>(split_seed));
      w.key("held_out_runs").begin_array();
      for (const auto& r : held_out) w.value(r.recording.run);
      w.end_array();
      if (!held_out.empty())
        w.field("held_out_cost_before", result.before_held_out.cost).field("held_out_cost_after", result.best_held_out.cost);
      w.field("held_out_healthy_runs", static_cast<std::uint64_t>(result.held_out_healthy_runs));
      w.field("held_out_false_alarms_before", static_cast<std::uint64_t>(result.held_out_false_alarms_before));
      w.field("held_out_false_alarms_after", static_cast<std::uint64_t>(result.held_out_false_alarms_best));
      w.field("refused", refused);
      w.field("improved", better).field("snippet", better ? snippet : std::string());
      w.key("params").begin_array();
      for (std::size_t i = 0; i < params.size(); ++i) {
        w.begin_object().field("key", full_config_key(params[i].key));
        if (params[i].start) w.field("before", *params[i].start); else w.key("before").null();
        if (!result.best.values.empty()) w.field("after", result.best.values[i]);
        w.end_object();
      }
      w.end_array();
      w.key("runs").begin_array();
      std::vector<std::tuple<const RunScore*, const RunScore*, bool>> scored;
      for (std::size_t i = 0; i < result.before.runs.size() && i < result.best.runs.size(); ++i)
        scored.emplace_back(&result.before.runs[i], &result.best.runs[i], false);
      for (std::size_t i = 0; i < result.before_held_out.runs.size() && i < result.best_held_out.runs.size(); ++i)
        scored.emplace_back(&result.before_held_out.runs[i], &result.best_held_out.runs[i], true);
      for (const auto& [bp, ap, is_held_out] : scored) {
        const auto& b = *bp;
        const auto& af = *ap;
        w.begin_object().field("run", b.run).field("held_out", is_held_out);
        for (const auto& [label, r] : {std::pair<const char*, const RunScore*>{"before", &b}, {"after", &af}}) {
          w.key(label).begin_object();
          w.field("cost", r->cost).field("failures", static_cast<std::uint64_t>(r->failures));
          w.field("in_time", static_cast<std::uint64_t>(r->in_time)).field("late", static_cast<std::uint64_t>(r->late));
          w.field("missed", static_cast<std::uint64_t>(r->missed));
          w.field("false_alarms", static_cast<std::uint64_t>(r->false_alarms));
          w.field("burns", static_cast<std::uint64_t>(r->burns));
          w.end_object();
        }
        w.end_object();
      }
      w.end_array();
      w.end_object();
      text = w.take() + "\n";
    } else {
      // Replays with timelines for the plots: the starting config and the best one.
      ReplaySettings settings = options.replay;
      settings.keep_timeline = true;
      std::vector<RunReplay> replays;
      const NavigatorConfig before =
          config_with_overrides(options.base_text, {}, options.base_source).navigator;
      const NavigatorConfig after = config_with_overrides(
          options.base_text, candidate_overrides(params, result.best.values), options.base_source).navigator;
      std::vector<const TuneRun*> all;
      for (const auto& run : runs) all.push_back(&run);
      for (const auto& run : held_out) all.push_back(&run);
      replays.reserve(2 * all.size());
      for (const TuneRun* run_ptr : all) {
        const TuneRun& run = *run_ptr;
        replays.push_back(replay_fixed(run.recording, before, Mode::active, run.failures, settings));
        replays.back().config_description = "starting config";
        replays.back().failure_source = run.failure_source;
        replays.push_back(replay_fixed(run.recording, after, Mode::active, run.failures, settings));
        replays.back().config_description = "tuned";
        replays.back().failure_source = run.failure_source;
      }
      std::vector<ReportSection> sections;
      for (std::size_t i = 0; i < replays.size(); ++i) sections.push_back({i % 2 ? "tuned" : "before", &replays[i]});
      std::string intro = "<p>" + std::to_string(result.evaluations) + " candidates, " + objective + " objective, " +
                          std::to_string(options.jobs) + " threads, " + std::to_string(result.seconds).substr(0, 5) +
                          " s. Starting config: " + html_escape(options.base_source) + ".</p>";
      if (better) intro += "<h3>Best gains (paste into the orbitd config)</h3><pre>" + html_escape(snippet) + "</pre>";
      else if (refused) intro += "<h3>Refused: the best candidate adds false alarms on held-out healthy runs</h3>";
      intro += "<h3>Before / after, tuning runs</h3><pre>" + html_escape(table(result.before, result.best, closed)) + "</pre>";
      if (!held_out.empty())
        intro += "<h3>Before / after, held-out runs</h3><pre>" +
                 html_escape(table(result.before_held_out, result.best_held_out, closed)) + "</pre>";
      text = html_report("orbit tune", intro, sections);
    }
    std::ofstream f(out, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f) throw JournalError("cannot write " + out);
    std::printf("wrote %s\n", out.c_str());
  }
  return better ? kExitOk : kExitFinding;
}

}  // namespace orbit
