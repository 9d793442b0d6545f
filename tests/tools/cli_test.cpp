// SPDX-License-Identifier: Apache-2.0
// The real `orbit` binary: help and exit codes, import -> export -> import round trip,
// replay of a daemon-style journal reproducing its burns bit for bit (and saying so
// when it does not), --set, labels, reports, tune.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "controllers/navigator.hpp"
#include "config/config.hpp"
#include "journal/journal.hpp"
#include "journal/journal_replay.hpp"
#include "protocol/codec.hpp"
#include "run_command.hpp"
#include "temp_dir.hpp"
#include "tools/replay.hpp"
#include "tools/replay_report.hpp"
#include "tools/trace_import.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;
using detail::run_orbit;
using detail::TempDir;

const fs::path kTraces = ORBIT_TRACES_DIR;
const fs::path kWmtSpikes = kTraces / "algoperf_wmt_transformer_spikes/caspr_s3_t4_SPIKES_measurements.csv";
const fs::path kCriteo = kTraces / "algoperf_divergence_and_collapse/criteo_genadam_s1_t1_DIVERGE_measurements.csv";

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// Every `url(#ID)` in an HTML/SVG document whose ID no element declares (id='ID' or id="ID").
std::vector<std::string> dangling_url_references(const std::string& html) {
  std::set<std::string> ids;
  const std::regex id_attr(R"re(\sid=['"]([^'"]+)['"])re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), id_attr); it != std::sregex_iterator(); ++it)
    ids.insert((*it)[1].str());
  std::vector<std::string> dangling;
  const std::regex url_ref(R"re(url\(#([^)]+)\))re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url_ref); it != std::sregex_iterator(); ++it)
    if (!ids.contains((*it)[1].str())) dangling.push_back((*it)[1].str());
  return dangling;
}

std::size_t count_url_references(const std::string& html) {
  const std::regex url_ref(R"re(url\(#([^)]+)\))re");
  return static_cast<std::size_t>(std::distance(std::sregex_iterator(html.begin(), html.end(), url_ref), std::sregex_iterator()));
}

// Column names of a CSV header line that appear more than once.
std::vector<std::string> repeated_columns(const std::string& csv) {
  std::istringstream header(csv.substr(0, csv.find('\n')));
  std::set<std::string> seen;
  std::vector<std::string> repeated;
  for (std::string column; std::getline(header, column, ',');)
    if (!seen.insert(column).second) repeated.push_back(column);
  return repeated;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : " ") + i;
  return out;
}

TEST(OrbitCli, HelpAndUsageErrors) {
  auto r = run_orbit({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* cmd : {"replay", "tune", "import", "export", "watch", "status"}) {
    EXPECT_TRUE(contains(r.output, cmd)) << cmd;
    auto h = run_orbit({cmd, "--help"});
    EXPECT_EQ(h.code, 0) << cmd;
    EXPECT_TRUE(contains(h.output, "usage: orbit " + std::string(cmd))) << h.output;
    EXPECT_TRUE(contains(h.output, "exit codes")) << cmd;
  }
  EXPECT_EQ(run_orbit({}).code, 2);
  EXPECT_EQ(run_orbit({"frobnicate"}).code, 2);
  EXPECT_EQ(run_orbit({"replay"}).code, 2) << "missing PATH";
  EXPECT_EQ(run_orbit({"replay", "x", "--bogus"}).code, 2);
  EXPECT_EQ(run_orbit({"import", kCriteo.string()}).code, 2) << "--out is required";
  EXPECT_EQ(run_orbit({"import", kCriteo.string(), "--out", "/tmp/x", "--format", "xml"}).code, 2);
  EXPECT_EQ(run_orbit({"replay", "/nonexistent/journal"}).code, 3);
  EXPECT_EQ(run_orbit({"import", "/nonexistent/file.csv", "--out", "/tmp/x"}).code, 3);
  EXPECT_TRUE(contains(run_orbit({"--version"}).output, "orbit "));
}

TEST(OrbitCli, ImportReportsAndRefusesToOverwrite) {
  TempDir tmp;
  auto r = run_orbit({"import", kCriteo.string(), "--out", (tmp.path() / "j").string(), "--run", "criteo"});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "74 training rows")) << r.output;
  EXPECT_TRUE(contains(r.output, "criteo: 74 snapshots (steps 0..73)")) << r.output;
  EXPECT_TRUE(contains(r.output, "skipped (kept nothing): 26 rows at lines 77-102 (no training loss)")) << r.output;
  EXPECT_TRUE(fs::is_directory(tmp.path() / "j" / "criteo"));
  auto again = run_orbit({"import", kCriteo.string(), "--out", (tmp.path() / "j").string(), "--run", "criteo"});
  EXPECT_EQ(again.code, 3);
  EXPECT_TRUE(contains(again.output, "--force"));
  EXPECT_EQ(run_orbit({"import", kCriteo.string(), "--out", (tmp.path() / "j").string(), "--run", "criteo", "--force"})
                .code,
            0);
}

TEST(OrbitCli, ExportCsvImportsBackToTheSameSnapshots) {
  TempDir tmp;
  const auto j1 = tmp.path() / "j1";
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", j1.string(), "--run", "wmt"}).code, 0);
  const auto csv = tmp.path() / "wmt.csv";
  auto e = run_orbit({"export", (j1 / "wmt").string(), "--format", "csv", "--out", csv.string()});
  ASSERT_EQ(e.code, 0) << e.output;
  const auto j2 = tmp.path() / "j2";
  auto i = run_orbit({"import", csv.string(), "--format", "csv", "--out", j2.string(), "--run", "wmt"});
  ASSERT_EQ(i.code, 0) << i.output;

  const RecordedRun a = load_recorded_run(j1 / "wmt");
  const RecordedRun b = load_recorded_run(j2 / "wmt");
  ASSERT_EQ(a.snapshots, 699u);
  ASSERT_EQ(a.snapshots, b.snapshots);
  std::vector<const Snapshot*> sa, sb;
  for (const auto& x : a.entries) if (x.type == RecordType::snapshot) sa.push_back(&std::get<Snapshot>(x.value));
  for (const auto& x : b.entries) if (x.type == RecordType::snapshot) sb.push_back(&std::get<Snapshot>(x.value));
  for (std::size_t k = 0; k < sa.size(); ++k) {
    EXPECT_EQ(sa[k]->step, sb[k]->step);
    EXPECT_EQ(sa[k]->loss, sb[k]->loss) << "shortest round-trip formatting keeps every bit";
    EXPECT_EQ(sa[k]->grad_norm, sb[k]->grad_norm);
    EXPECT_EQ(sa[k]->time, sb[k]->time);
  }
}

TEST(OrbitCli, ExportJsonlHasOneLinePerRecord) {
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", kCriteo.string(), "--out", tmp.path().string(), "--run", "c"}).code, 0);
  auto e = run_orbit({"export", (tmp.path() / "c").string()});
  ASSERT_EQ(e.code, 0);
  std::istringstream in(e.output);
  std::string line;
  std::size_t n = 0, snapshots = 0;
  while (std::getline(in, line)) {
    ++n;
    ASSERT_TRUE(line.starts_with("{\"run\":\"c\",\"type\":\"")) << line;
    if (contains(line, "\"type\":\"snapshot\"")) ++snapshots;
  }
  EXPECT_EQ(n, 1u + 74u + 64u);  // hello, snapshots, evaluations
  EXPECT_EQ(snapshots, 74u);
  EXPECT_TRUE(contains(e.output, "\"loss\":\"inf\"")) << "a diverged loss stays visible";
}

// A journal written the way orbitd writes one: config, mode, hello, then every
// snapshot followed by the burn the Navigator answered with.
std::size_t write_daemon_style_journal(const fs::path& root, const std::string& run, bool tamper) {
  ImportOptions io;
  io.run = run;
  const ImportResult imported = import_trace(read(kWmtSpikes), io);
  const std::string config_text = read(fs::path(ORBIT_SOURCE_DIR) / "configs/default.toml");
  const DaemonConfig config = parse_daemon_config(config_text, "default.toml");
  Hello hello;
  hello.run = run;
  hello.adapter = "test";
  hello.adapter_version = "0";
  hello.versions = {1};
  hello.actuators = {"lr"};
  Navigator nav(config.navigator, RunInfo{run, 1, {}, {"lr"}, std::nullopt}, Mode::active);

  JournalOptions o;
  o.root = root;
  o.fsync = JournalOptions::never;
  Journal j = Journal::open(o);
  j.append(run, RecordType::config, 0, config_text);
  j.append(run, RecordType::mode, 0, "active");
  j.append(run, RecordType::hello, 0, encode(hello));
  std::size_t burns = 0;
  for (Snapshot s : imported.runs.at(0).snapshots) {
    s.run = run;
    j.append(run, RecordType::snapshot, 1, encode(s));
    const Decision d = nav.on_snapshot(s);
    if (d.burn) {
      Burn b = *d.burn;
      if (tamper && burns == 1) b.lr_scale *= 0.5;
      j.append(run, RecordType::burn, 1, encode(b));
      ++burns;
      Ack ack;
      ack.run = run;
      ack.seq = b.seq;
      ack.step = b.apply_at_step;
      j.append(run, RecordType::ack, 1, encode(ack));
      nav.on_ack(ack);
    }
  }
  return burns;
}

TEST(OrbitCli, ReplayReproducesRecordedBurnsAndSaysWhenNot) {
  TempDir tmp;
  const std::size_t burns = write_daemon_style_journal(tmp.path(), "live", false);
  ASSERT_GT(burns, 1u) << "the spiky WMT run must make the default controller act";
  auto r = run_orbit({"replay", (tmp.path() / "live").string()});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "config recorded")) << r.output;
  EXPECT_TRUE(contains(r.output, "recorded burns: " + std::to_string(burns) + ", all reproduced bit for bit"))
      << r.output;

  // Another config: replay runs, compares, and does not call it a failure.
  auto changed = run_orbit({"replay", (tmp.path() / "live").string(), "--set", "filters.cusum_h=1000",
                            "--set", "zones.loss_z.danger=60", "--set", "zones.loss_z.good=50",
                            "--set", "zones.grad_norm_z.good=50", "--set", "zones.grad_norm_z.danger=60"});
  EXPECT_EQ(changed.code, 0) << changed.output;
  EXPECT_TRUE(contains(changed.output, "recorded + 5 --set")) << changed.output;
  EXPECT_TRUE(contains(changed.output, "under the changed config")) << changed.output;

  // A bad override is a data error naming the key.
  auto bad = run_orbit({"replay", (tmp.path() / "live").string(), "--set", "filters.loss_alpha=7"});
  EXPECT_EQ(bad.code, 3) << bad.output;
  EXPECT_TRUE(contains(bad.output, "loss_alpha")) << bad.output;

  // A journal whose second burn differs from what the config computes.
  TempDir other;
  write_daemon_style_journal(other.path(), "live", true);
  auto t = run_orbit({"replay", (other.path() / "live").string()});
  EXPECT_EQ(t.code, 1) << t.output;
  EXPECT_TRUE(contains(t.output, "NOT reproduced")) << t.output;
  EXPECT_TRUE(contains(t.output, std::to_string(burns - 1) + " equal")) << t.output;
}

// replay_journal() (orbit replay's path: records streamed, one reused Snapshot) gives
// what replay_run() of the loaded run gives, report for report (replay time aside),
// on a daemon-style journal with a burn that is not reproduced, and on one whose
// config record comes after the hello, with a record that does not decode and a gap.
TEST(OrbitReplay, StreamedReplayEqualsTheReplayOfTheLoadedRun) {
  TempDir tmp;
  write_daemon_style_journal(tmp.path(), "live", true);
  {
    ImportOptions io;
    io.run = "late";
    const ImportResult imported = import_trace(read(kWmtSpikes), io);
    Hello hello;
    hello.run = "late";
    hello.adapter = "test";
    hello.adapter_version = "0";
    hello.versions = {1};
    hello.actuators = {"lr"};
    JournalOptions o;
    o.root = tmp.path();
    o.fsync = JournalOptions::never;
    Journal j = Journal::open(o);
    j.append("late", RecordType::hello, 0, encode(hello));
    j.append("late", RecordType::config, 0, "[controller.filters]\ncusum_h = 3.0\n");
    std::size_t k = 0;
    for (Snapshot s : imported.runs.at(0).snapshots) {
      s.run = "late";
      j.append("late", RecordType::snapshot, 1, encode(s));
      if (++k == 100) j.append("late", RecordType::snapshot, 1, encode(Bye{"late", 0}));  // undecodable
      if (k == 200) j.append("late", RecordType::gap, 1, "3 records lost");
    }
  }
  const auto report = [](RunReplay r) {
    r.seconds = 0.0;
    return replay_json({&r}, true) + replay_text(r, true);
  };
  std::vector<ReplaySettings> variants(5);
  variants[1].mode = Mode::monitor;
  variants[2].config_text = "";
  variants[3].overrides = {{"filters.cusum_h", "1000"}};
  variants[4].keep_timeline = false;
  for (const char* run : {"live", "late"}) {
    const fs::path dir = tmp.path() / run;
    const RecordedRun loaded = load_recorded_run(dir);
    ASSERT_GT(loaded.snapshots, 600u);
    for (std::size_t v = 0; v < variants.size(); ++v) {
      const RunReplay streamed = replay_journal(dir, {}, variants[v]);
      const RunReplay from_loaded = replay_run(loaded, variants[v]);
      EXPECT_EQ(streamed.steps, from_loaded.steps) << run << " variant " << v;
      EXPECT_EQ(report(streamed), report(from_loaded)) << run << " variant " << v;
    }
  }
  EXPECT_FALSE(replay_run(load_recorded_run(tmp.path() / "live"), {}).reproduced()) << "the tampered burn is seen";
  EXPECT_EQ(load_recorded_run(tmp.path() / "late").undecodable.size(), 1u);
}

TEST(OrbitCli, ReplayUsesLabelsAndWritesReports) {
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", tmp.path().string(), "--run", "wmt"}).code, 0);
  std::ofstream(tmp.path() / "wmt" / "labels.toml")
      << "[[failure]]\nonset = 7000\npeak = 7100\nend = 9000\nkind = \"spike\"\n"
         "[[failure]]\nonset = 13300\npeak = 13800\nend = 14000\nkind = \"spike\"\n";
  const auto html = tmp.path() / "r.html", json = tmp.path() / "r.json", csv = tmp.path() / "r.csv";
  auto r = run_orbit({"replay", tmp.path().string(), "--out", html.string(), "--out", json.string(), "--out",
                      csv.string()});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "failures: 2 (labels")) << r.output;
  EXPECT_TRUE(contains(r.output, "spike peak at step 7100 (steps 7000-9000)")) << r.output;
  const std::string h = read(html);
  EXPECT_TRUE(h.starts_with("<!DOCTYPE html>"));
  EXPECT_TRUE(contains(h, "<svg")) << "inline SVG plots";
  EXPECT_FALSE(contains(h, "<script")) << "self-contained, no scripts";
  EXPECT_FALSE(contains(h, "http://") && contains(h, "src=")) << "no external resources";
  EXPECT_GT(count_url_references(h), 0u) << "every chart clips its plot area";
  EXPECT_TRUE(dangling_url_references(h).empty()) << "url(#id) naming no element: " << joined(dangling_url_references(h));
  const std::string js = read(json);
  EXPECT_TRUE(contains(js, "\"peak\": 7100"));
  EXPECT_TRUE(contains(js, "\"timeline\""));
  const std::string c = read(csv);
  EXPECT_TRUE(c.starts_with("run,step,time,loss,grad_norm,state,basin,forecast_basin,lr_scale,alarm,burn_seq"));
  EXPECT_TRUE(contains(c.substr(0, c.find('\n')), ",metric.loss_z")) << "health metrics follow, prefixed";
  EXPECT_TRUE(repeated_columns(c).empty()) << "repeated CSV columns: " << joined(repeated_columns(c));
  EXPECT_EQ(std::count(c.begin(), c.end(), '\n'), 700) << "header + 699 snapshots";
  EXPECT_EQ(run_orbit({"replay", tmp.path().string(), "--out", (tmp.path() / "r.pdf").string()}).code, 2);
}

TEST(OrbitCli, ReplayDetectsFailuresWithoutLabels) {
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", kCriteo.string(), "--out", tmp.path().string(), "--run", "criteo"}).code, 0);
  auto r = run_orbit({"replay", tmp.path().string()});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "failures: 1 (detected")) << r.output;
  EXPECT_TRUE(contains(r.output, "divergence peak at step 73 (steps 71-73)")) << r.output;
}

TEST(OrbitCli, TuneFindsGainsAndPrintsToml) {
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", tmp.path().string(), "--run", "wmt"}).code, 0);
  const auto space = tmp.path() / "space.toml";
  std::ofstream(space) << "[[param]]\nkey = \"zones.loss_z.good\"\nmin = 1.0\nmax = 5.0\n"
                          "[[param]]\nkey = \"filters.cusum_h\"\nmin = 2.0\nmax = 40.0\nlog = true\n";
  const auto html = tmp.path() / "t.html", json = tmp.path() / "t.json";
  auto r = run_orbit({"tune", tmp.path().string(), "--space", space.string(), "--budget", "24", "--jobs", "2",
                      "--seed", "7", "--out", html.string(), "--out", json.string()});
  ASSERT_TRUE(r.code == 0 || r.code == 1) << r.output;
  EXPECT_TRUE(contains(r.output, "24 candidates")) << r.output;
  EXPECT_TRUE(contains(r.output, "before")) << r.output;
  if (r.code == 0) {
    EXPECT_TRUE(contains(r.output, "[controller.zones.loss_z]\ngood = ")) << r.output;
    EXPECT_TRUE(contains(r.output, "[controller.filters]\ncusum_h = ")) << r.output;
  }
  EXPECT_TRUE(contains(read(html), "<svg"));
  EXPECT_TRUE(dangling_url_references(read(html)).empty()) << joined(dangling_url_references(read(html)));
  EXPECT_TRUE(contains(read(json), "\"evaluations\": 24"));
  // Same seed, same answer.
  auto again = run_orbit({"tune", tmp.path().string(), "--space", space.string(), "--budget", "24", "--jobs", "2",
                          "--seed", "7"});
  const auto snippet = [](const std::string& out) {
    const auto from = out.find("starting config:");
    return out.substr(from, out.find("wrote ") == std::string::npos ? std::string::npos : out.find("wrote ") - from);
  };
  EXPECT_EQ(snippet(again.output), snippet(r.output));
}

// Runs `command` under script(1): stdin, stdout and stderr on a pseudo-terminal unless
// the command redirects them. Returns what reached the terminal.
std::optional<std::string> on_a_terminal(const std::string& command) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) return std::nullopt;
  const std::string cmd = "script -qec " + detail::shell_quote(command) + " /dev/null </dev/null 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(OrbitCli, ProgressGoesToStderrWhenItIsATerminal) {
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", tmp.path().string(), "--run", "wmt"}).code, 0);
  const std::string orbit = detail::shell_quote(ORBIT_CLI), dir = detail::shell_quote(tmp.path().string());
  const auto stdout_file = tmp.path() / "out.txt";
  // stdout to a file (as `orbit tune ... > tuned.toml`), stderr still the terminal.
  const auto terminal = on_a_terminal(orbit + " replay " + dir + " --quiet > " + detail::shell_quote(stdout_file.string()));
  if (!terminal) GTEST_SKIP() << "script(1) (util-linux) is not installed";
  EXPECT_TRUE(contains(*terminal, "replay ")) << *terminal;
  EXPECT_TRUE(contains(*terminal, "100% 1/1")) << "the bar reached the terminal on stderr\n" << *terminal;
  const std::string result = read(stdout_file);
  EXPECT_FALSE(contains(result, "100%")) << "nothing of the bar on stdout\n" << result;
  EXPECT_FALSE(contains(result, "\r")) << result;
  // --no-progress: nothing on the terminal either.
  const auto quiet = on_a_terminal(orbit + " replay " + dir + " --quiet --no-progress > " +
                                   detail::shell_quote(stdout_file.string()));
  ASSERT_TRUE(quiet);
  EXPECT_FALSE(contains(*quiet, "100%")) << *quiet;
  // --progress draws it when stderr is not a terminal; stdout still has none of it.
  auto forced = run_orbit({"replay", tmp.path().string(), "--quiet", "--progress"});
  EXPECT_TRUE(contains(forced.output, "100% 1/1")) << forced.output;
  // Not a terminal and not asked: nothing.
  EXPECT_FALSE(contains(run_orbit({"replay", tmp.path().string(), "--quiet"}).output, "100%"));
  EXPECT_EQ(run_orbit({"replay", tmp.path().string(), "--progress", "--no-progress"}).code, 2);
}

TEST(OrbitCli, ReplayFindsNoFailureInTheNoisyHealthyTrace) {
  // modded-nanogpt 1.5B: healthy, with one-step outliers of its per-batch loss (0.91
  // among ~2.8). Against the raw running minimum that was 254 detected failures.
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", (kTraces / "modded_nanogpt_1p5B_noisy_healthy/87bd51fd_steps_only.txt").string(),
                       "--out", tmp.path().string(), "--run", "nanogpt"})
                .code,
            0);
  auto r = run_orbit({"replay", tmp.path().string(), "--no-progress"});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "failures: 0 (detected")) << r.output;
}

TEST(OrbitCli, TuneRefusesAConfigThatAddsFalseAlarmsOnHeldOutHealthyRuns) {
  // "a": WMT with three loss spikes. "b": the same log labelled healthy, so every alarm
  // on it is false: a config that alarms more on "a" alarms more on "b". "h": WMT's
  // healthy run. The split (seed 1) holds "b" out; the search sees "a" and "h".
  TempDir tmp;
  const fs::path wmt_healthy = kTraces / "algoperf_wmt_transformer_spikes/caspr_s3_t1_HEALTHY_measurements.csv";
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", tmp.path().string(), "--run", "a"}).code, 0);
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", tmp.path().string(), "--run", "b"}).code, 0);
  ASSERT_EQ(run_orbit({"import", wmt_healthy.string(), "--out", tmp.path().string(), "--run", "h"}).code, 0);
  std::ofstream(tmp.path() / "b" / "labels.toml") << "healthy = true\n";
  // A dull starting config (alarms only at the spikes' peaks, late) and a space of keener
  // loss zones. (With good = 30 its warnings, which no longer hold on a falling z, split
  // into as many alarms on "b" as the keener configs raise: nothing to refuse.)
  const auto start = tmp.path() / "start.toml", space = tmp.path() / "space.toml";
  std::ofstream(start) << "[controller.zones.loss_z]\ngood = 60.0\ndanger = 120.0\n"
                          "[controller.zones.grad_norm_z]\ngood = 30.0\ndanger = 60.0\n"
                          "[controller.filters]\nloss_jump_ratio = 0.0\n";
  std::ofstream(space) << "[[param]]\nkey = \"zones.loss_z.good\"\nmin = 1.0\nmax = 4.0\n"
                          "[[param]]\nkey = \"zones.loss_z.danger\"\nmin = 4.5\nmax = 8.0\n";
  const auto json = tmp.path() / "t.json";
  const std::vector<std::string> common = {"tune", tmp.path().string(), "--space", space.string(), "--config",
                                           start.string(), "--budget", "20", "--jobs", "2", "--lead-window", "100",
                                           "--no-progress"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return run_orbit(args);
  };
  auto r = with({"--split-seed", "1", "--out", json.string()});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "held out: 1 run (1 healthy")) << r.output;
  EXPECT_TRUE(contains(r.output, "held-out runs\n")) << r.output;
  EXPECT_TRUE(contains(r.output, "; held-out before ")) << "held-out cost beside the tuning cost\n" << r.output;
  EXPECT_TRUE(contains(r.output, "refused: the lowest-cost candidate raises 6 false alarms on 1 held-out healthy run "
                                 "where the\nstarting config raises 3"))
      << r.output;
  EXPECT_FALSE(contains(r.output, "# best gains")) << r.output;
  const std::string js = read(json);
  EXPECT_TRUE(contains(js, "\"refused\": true")) << js;
  EXPECT_TRUE(contains(js, "\"run\": \"b\",\n      \"held_out\": true")) << js;
  // "refused" is printed only for a candidate whose tuning cost is lower: the search
  // alone would have offered it. With "b" in the tuning set its false alarms count there.
  auto unsplit = with({"--held-out", "0"});
  EXPECT_EQ(unsplit.code, 1) << unsplit.output;
  EXPECT_TRUE(contains(unsplit.output, "held out: none")) << unsplit.output;
  EXPECT_TRUE(contains(unsplit.output, "no candidate beat the starting config")) << unsplit.output;
}

TEST(OrbitCli, TuneClosedLoopFitsPlantsWhereTheLrMoved) {
  TempDir tmp;
  ASSERT_EQ(run_orbit({"import", kCriteo.string(), "--out", tmp.path().string(), "--run", "criteo"}).code, 0);
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", tmp.path().string(), "--run", "wmt"}).code, 0);
  const auto space = tmp.path() / "space.toml";
  std::ofstream(space) << "[[param]]\nkey = \"pid.critical.kp\"\nmin = 0.1\nmax = 5.0\nlog = true\n";
  auto r = run_orbit({"tune", tmp.path().string(), "--space", space.string(), "--objective", "closed-loop",
                      "--budget", "12", "--jobs", "2", "--held-out", "0"});
  ASSERT_TRUE(r.code == 0 || r.code == 1) << r.output;
  EXPECT_TRUE(contains(r.output, "closed-loop objective: 12 candidates")) << r.output;
  EXPECT_TRUE(contains(r.output, "wmt: left out of the closed loop: no plant fit")) << r.output;
  EXPECT_TRUE(contains(r.output, "criteo ")) << "the criteo run has an lr warm-up to fit\n" << r.output;
  // Only runs without a fit: a data error that says why.
  TempDir flat;
  ASSERT_EQ(run_orbit({"import", kWmtSpikes.string(), "--out", flat.path().string(), "--run", "wmt"}).code, 0);
  auto none = run_orbit({"tune", flat.path().string(), "--space", space.string(), "--objective", "closed-loop",
                         "--budget", "4"});
  EXPECT_EQ(none.code, 3) << none.output;
  EXPECT_TRUE(contains(none.output, "no run has a plant fit")) << none.output;
}

}  // namespace
}  // namespace orbit
