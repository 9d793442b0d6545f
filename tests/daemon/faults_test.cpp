// SPDX-License-Identifier: Apache-2.0
// Regressions of issue 16 (defects found by fault injection), each against a real
// orbitd process over real sockets.

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include "journal/background_sync.hpp"
#include "journal/journal.hpp"
#include "journal/journal_replay.hpp"
#include "support/control_client.hpp"
#include "support/http_client.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;
using test::make_hello;
using test::make_snapshot;
using test::OrbitdProcess;
using test::TestClient;
using Control = test::ControlClient;

template <class T>
T expect_type(const std::optional<Message>& m) {
  if (!m) throw std::runtime_error("no reply within the deadline");
  if (!std::holds_alternative<T>(*m)) {
    throw std::runtime_error("unexpected reply type " + std::string(type_name(*m)) +
                             (std::holds_alternative<Error>(*m) ? ": " + std::get<Error>(*m).message : ""));
  }
  return std::get<T>(*m);
}

std::uint64_t counter(Control& control, const std::string& name) { return test::status_counter(control, name); }

std::string write_config(const std::filesystem::path& dir, const std::string& text) {
  const auto p = dir / "orbitd.toml";
  std::ofstream(p) << text;
  return p.string();
}

// Item 1: a hello declaring 2^40 ranks froze orbitd; it is now refused before it
// changes anything, and the daemon keeps answering.
TEST(OrbitdFaults, HugeWorldSizeIsRefusedBeforeAnyStateChanges) {
  const auto journal = test::make_temp_dir("journal");
  OrbitdProcess orbitd({"--journal-dir", journal.string()});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("huge", 0, std::int64_t{1} << 40));
  const auto error = expect_type<Error>(client.recv());
  EXPECT_EQ(error.code, ErrorCode::too_large);
  EXPECT_EQ(error.ref, "world_size");
  EXPECT_NE(error.message.find("daemon.max_world_size"), std::string::npos) << error.message;
  Control control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(counter(control, "runs_active"), 0u);
  EXPECT_EQ(counter(control, "sessions_active"), 0u);
  EXPECT_FALSE(std::filesystem::exists(journal / "huge"));  // nothing journaled either

  // Within the limit it works, and the daemon answers at once.
  client.send(make_hello("huge", 0, 1024));
  expect_type<Welcome>(client.recv());
  client.send(make_snapshot("huge", 1));
  expect_type<State>(client.recv(2s));
  std::filesystem::remove_all(journal);
}

TEST(OrbitdFaults, MaxWorldSizeIsAConfigKey) {
  const auto dir = test::make_temp_dir("cfg");
  OrbitdProcess orbitd({"--config", write_config(dir, "[daemon]\nmax_world_size = 4\n")});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("w", 0, 5));
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::too_large);
  client.send(make_hello("w", 0, 4));
  expect_type<Welcome>(client.recv());
  std::filesystem::remove_all(dir);
}

// Item 3: a session belongs to the connection that said hello.
TEST(OrbitdFaults, AnotherConnectionCannotActForASession) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  TestClient victim(ctx, orbitd.endpoints().adapters);
  TestClient intruder(ctx, orbitd.endpoints().adapters);
  Control control(ctx, orbitd.endpoints().control);
  victim.send(make_hello("v"));
  const auto welcome = expect_type<Welcome>(victim.recv());

  intruder.send(make_snapshot("v", 1));
  auto error = expect_type<Error>(intruder.recv());
  EXPECT_EQ(error.code, ErrorCode::not_registered);
  EXPECT_NE(error.message.find("another connection"), std::string::npos) << error.message;

  intruder.send(make_hello("v"));  // the victim is still connected: no takeover
  EXPECT_EQ(expect_type<Error>(intruder.recv()).code, ErrorCode::not_registered);

  Ack ack;
  ack.run = "v";
  ack.seq = 1;
  ack.step = 1;
  intruder.send(ack);
  EXPECT_EQ(expect_type<Error>(intruder.recv()).code, ErrorCode::not_registered);

  Heartbeat hb;
  hb.run = "v";
  hb.rank = 0;
  intruder.send(hb);
  EXPECT_EQ(expect_type<Error>(intruder.recv()).code, ErrorCode::not_registered);

  Bye bye;
  bye.run = "v";
  intruder.send(bye);  // no answer; must not close the victim's session

  // The intruder's hello made the daemon probe the victim's connection: a
  // heartbeat echo, which adapters take at any time.
  EXPECT_EQ(expect_type<Heartbeat>(victim.recv()).run, "v");
  // The victim's session is untouched and its answers still reach it.
  victim.send(make_snapshot("v", 2));
  EXPECT_EQ(expect_type<State>(victim.recv()).step, 2);
  EXPECT_EQ(counter(control, "foreign_rejected"), 5u);
  EXPECT_EQ(counter(control, "sessions_active"), 1u);
  EXPECT_EQ(counter(control, "sessions_opened"), 1u);
  EXPECT_FALSE(intruder.recv(200ms));  // nothing of the victim's went to the intruder
  (void)welcome;
}

// Item 3: a restarted adapter (a new connection) takes its session over once the
// old connection is closed.
TEST(OrbitdFaults, ARestartedAdapterTakesItsSessionOver) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  Control control(ctx, orbitd.endpoints().control);
  {
    TestClient first(ctx, orbitd.endpoints().adapters);
    first.send(make_hello("r"));
    expect_type<Welcome>(first.recv());
    first.send(make_snapshot("r", 1));
    expect_type<State>(first.recv());
  }  // closed, as by a crash
  TestClient second(ctx, orbitd.endpoints().adapters);
  // The daemon may see the new connection before the old one's close: an adapter
  // answers not_registered with another hello, as this loop does.
  bool welcomed = false;
  for (int i = 0; i < 50 && !welcomed; ++i) {
    second.send(make_hello("r"));
    auto reply = second.recv();
    ASSERT_TRUE(reply);
    welcomed = std::holds_alternative<Welcome>(*reply);
    if (!welcomed) std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(welcomed);
  second.send(make_snapshot("r", 2));
  EXPECT_EQ(expect_type<State>(second.recv()).step, 2);
  EXPECT_EQ(counter(control, "sessions_taken_over"), 1u);
}

// Item 9: a refused hello changes nothing.
TEST(OrbitdFaults, ARefusedHelloCreatesNoRun) {
  const auto dir = test::make_temp_dir("cfg");
  const auto journal = dir / "journal";
  OrbitdProcess orbitd(
      {"--config", write_config(dir, "[daemon]\nmax_sessions = 1\n"), "--journal-dir", journal.string()});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  Control control(ctx, orbitd.endpoints().control);
  client.send(make_hello("first"));
  expect_type<Welcome>(client.recv());
  client.send(make_hello("second"));
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::too_large);
  EXPECT_EQ(counter(control, "runs_active"), 1u);
  EXPECT_FALSE(std::filesystem::exists(journal / "second"));
  // A refused hello of a known run does not change its world size either.
  TestClient other(ctx, orbitd.endpoints().adapters);
  other.send(make_hello("first", 3, 8));
  EXPECT_EQ(expect_type<Error>(other.recv()).code, ErrorCode::too_large);
  auto status = control.call({{"cmd", std::string("status")}});
  const auto* runs = test::map_get(status.get(), "runs");
  ASSERT_TRUE(runs && runs->type == msgpack::type::ARRAY && runs->via.array.size == 1);
  EXPECT_EQ(test::map_get(runs->via.array.ptr[0], "world_size")->as<std::int64_t>(), 1);
  std::filesystem::remove_all(dir);
}

// Item 9: idle runs retire (freeing max_runs), come back from their journal on
// hello, and stay retired across a restart.
TEST(OrbitdFaults, IdleRunsRetireAndComeBackFromTheirJournal) {
  const auto dir = test::make_temp_dir("cfg");
  const auto journal = dir / "journal";
  const std::string config = write_config(dir, "[daemon]\nmax_runs = 1\nrun_idle_timeout_s = 1.0\n");
  zmq::context_t ctx;
  {
    OrbitdProcess orbitd({"--config", config, "--journal-dir", journal.string(), "--mode", "monitor"});
    TestClient client(ctx, orbitd.endpoints().adapters);
    Control control(ctx, orbitd.endpoints().control);
    client.send(make_hello("a"));
    expect_type<Welcome>(client.recv());
    client.send(make_snapshot("a", 7));
    expect_type<State>(client.recv());
    client.send(make_hello("b"));  // max_runs = 1
    EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::too_large);
    Bye bye;
    bye.run = "a";
    client.send(bye);
    // No session and idle for 1 s: retired at the next housekeeping pass.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (counter(control, "runs_retired") == 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(counter(control, "runs_retired"), 1u);
    EXPECT_EQ(counter(control, "runs_active"), 0u);
    client.send(make_hello("b"));
    expect_type<Welcome>(client.recv());
    client.send(bye);  // bye for "a" has no session any more: ignored
    Bye bye_b;
    bye_b.run = "b";
    client.send(bye_b);
    while (counter(control, "runs_retired") < 2 && std::chrono::steady_clock::now() < deadline + 10s) {
      std::this_thread::sleep_for(100ms);
    }
    // "a" comes back from its journal: its step is the one it had.
    client.send(make_hello("a"));
    expect_type<Welcome>(client.recv());
    auto status = control.call({{"cmd", std::string("status")}});
    const auto* runs = test::map_get(status.get(), "runs");
    ASSERT_TRUE(runs && runs->type == msgpack::type::ARRAY && runs->via.array.size == 1);
    EXPECT_EQ(test::map_get(runs->via.array.ptr[0], "step")->as<std::int64_t>(), 7);
    client.send(bye);
  }
  std::this_thread::sleep_for(1200ms);
  // After a restart, runs idle longer than the timeout stay retired: max_runs is free.
  OrbitdProcess orbitd({"--config", config, "--journal-dir", journal.string(), "--mode", "monitor"});
  Control control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(counter(control, "runs_active"), 0u);
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("c"));
  expect_type<Welcome>(client.recv());
  std::filesystem::remove_all(dir);
}

// Item 5: a second orbitd on the same ipc endpoint or the same journal refuses
// to start and names the first one's pid; the first keeps working.
std::string second_daemon_refusal(std::vector<std::string> args) {
  try {
    OrbitdProcess second(std::move(args), /*default_endpoints=*/false);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(OrbitdFaults, ASecondDaemonOnTheSameEndpointRefusesToStart) {
  const auto dir = test::make_temp_dir("sock");
  const std::string endpoint = "ipc://" + (dir / "orbitd.sock").string();
  OrbitdProcess first({"--endpoint", endpoint}, /*default_endpoints=*/false);
  // Telemetry and control sockets default to the adapter socket's directory.
  EXPECT_EQ(first.endpoints().control, "ipc://" + (dir / "control.sock").string());
  EXPECT_EQ(first.endpoints().telemetry, "ipc://" + (dir / "telemetry.sock").string());
  const std::string why = second_daemon_refusal({"--endpoint", endpoint});
  EXPECT_NE(why.find("pid " + std::to_string(first.pid())), std::string::npos) << why;
  EXPECT_NE(why.find("orbitd.sock"), std::string::npos) << why;
  zmq::context_t ctx;
  TestClient client(ctx, first.endpoints().adapters);
  client.send(make_hello("still-mine"));
  expect_type<Welcome>(client.recv());
  // A restart after the first one is gone is not blocked by the lock file it left.
  first.stop();
  OrbitdProcess again({"--endpoint", endpoint}, /*default_endpoints=*/false);
  EXPECT_TRUE(again.alive());
  std::filesystem::remove_all(dir);
}

TEST(OrbitdFaults, ASecondDaemonOnTheSameJournalRefusesToStart) {
  const auto journal = test::make_temp_dir("journal");
  OrbitdProcess first({"--journal-dir", journal.string()});
  std::vector<std::string> args{"--journal-dir", journal.string(), "--allow-exposed-control"};
  for (const char* flag : {"--endpoint", "--telemetry", "--control"}) {
    args.push_back(flag);
    args.push_back("tcp://127.0.0.1:*");
  }
  const std::string why = second_daemon_refusal(args);
  EXPECT_NE(why.find("pid " + std::to_string(first.pid())), std::string::npos) << why;
  EXPECT_NE(why.find("journal"), std::string::npos) << why;
  std::filesystem::remove_all(journal);
}

// Item 8: a burn record that replay cannot decode still spent its seq; after a
// restart the next burn must not reuse it.
TEST(OrbitdFaults, RecoveryNeverReusesTheSeqOfAnUndecodableBurn) {
  const auto journal = test::make_temp_dir("journal");
  {
    JournalOptions options;
    options.root = journal;
    Journal j = Journal::open(options);
    const std::int64_t ns = static_cast<std::int64_t>(::time(nullptr)) * 1'000'000'000;
    Hello hello = make_hello("r");
    j.append("r", RecordType::hello, ns, encode(hello));
    Burn burn;
    burn.run = "r";
    burn.seq = 5;
    burn.for_step = 1;
    burn.apply_at_step = 2;
    burn.lr_scale = 0.5;
    burn.expires_after_steps = 10;
    burn.state = "STABLE";
    burn.basin = "UNKNOWN";
    burn.reason = "forced by operator";
    burn.curriculum_phase = -1;  // out of range: the decoder refuses the record
    const std::string wire = encode(burn);
    ASSERT_FALSE(decode(wire, DecodeLimits{}).ok());
    j.append("r", RecordType::burn, ns, wire);
  }
  OrbitdProcess orbitd({"--journal-dir", journal.string()});
  zmq::context_t ctx;
  Control control(ctx, orbitd.endpoints().control);
  auto reply = control.call({{"cmd", std::string("burn")}, {"run", std::string("r")}, {"lr_scale", 0.8}});
  const auto* ok = test::map_get(reply.get(), "ok");
  ASSERT_TRUE(ok && ok->as<bool>());
  const auto* sent = test::map_get(reply.get(), "burn");
  ASSERT_TRUE(sent);
  EXPECT_EQ(test::map_get(*sent, "seq")->as<std::int64_t>(), 6);
  std::filesystem::remove_all(journal);
}

// A small tmpfs (needs root; the test is skipped without it): a disk that fills up.
class SmallDisk {
 public:
  explicit SmallDisk(const std::string& size) : dir_(test::make_temp_dir("disk")) {
    mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0700").c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  bool mounted() const { return mounted_; }
  const std::filesystem::path& dir() const { return dir_; }
  // Writes a filler file until the disk is full.
  void fill() {
    const int fd = ::open((dir_ / "filler").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    std::string chunk(65536, 'x');
    for (std::size_t n = chunk.size(); n > 0; n /= 2) {
      while (::write(fd, chunk.data(), n) == static_cast<ssize_t>(n)) {
      }
    }
    ::close(fd);
  }
  void free_space() { std::filesystem::remove(dir_ / "filler"); }

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
};

std::size_t segment_files(const std::filesystem::path& run_dir) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(run_dir)) n += e.path().extension() == ".orbj";
  return n;
}

bool status_journal_ok(Control& control) {
  auto status = control.call({{"cmd", std::string("status")}});
  const auto* daemon = test::map_get(status.get(), "daemon");
  const auto* ok = daemon ? test::map_get(*daemon, "journal_ok") : nullptr;
  if (!ok) throw std::runtime_error("status has no daemon.journal_ok");
  return ok->as<bool>();
}

// Item 4: a full disk (ENOSPC on a real tmpfs) is surfaced (log, status, the counters in
// status and in /metrics, a gap record replay reports), costs no reply and no controller
// state (the run's step and the session's snapshot count go on through the failure),
// and a rotation that fails leaves no storm of empty segments.
TEST(OrbitdFaults, AFullDiskIsSurfacedAndLeavesAGapRecord) {
  SmallDisk disk("2m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  const auto cfg = test::make_temp_dir("cfg");
  const auto journal = disk.dir() / "journal";
  // One-page segments: appends inside a segment's page still succeed on a full
  // tmpfs, so the failures come from the rotations (a new segment needs a page).
  OrbitdProcess orbitd({"--config", write_config(cfg, "[journal]\nsegment_bytes = 4096\nfsync = \"never\"\n"),
                        "--journal-dir", journal.string(), "--mode", "monitor", "--http", "127.0.0.1:0"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  Control control(ctx, orbitd.endpoints().control);
  client.send(make_hello("full"));
  expect_type<Welcome>(client.recv());
  std::int64_t step = 0;
  for (; step < 30; ++step) {
    client.send(make_snapshot("full", step));
    expect_type<State>(client.recv());
  }
  EXPECT_TRUE(status_journal_ok(control));
  disk.fill();
  const std::size_t before = segment_files(journal / "full");
  // Pipelined bursts of 10: whole batches fail (one commit) as well as single records.
  for (const std::int64_t end = step + 300; step < end; step += 10) {
    for (int k = 0; k < 10; ++k) client.send(make_snapshot("full", step + k));
    for (int k = 0; k < 10; ++k) expect_type<State>(client.recv());  // every snapshot still answered
  }
  EXPECT_FALSE(status_journal_ok(control));
  const auto lost = counter(control, "journal_records_lost");
  EXPECT_GT(lost, 250u);
  // Rotations were due many times; none left an empty segment behind.
  EXPECT_LE(segment_files(journal / "full"), before + 1);
  EXPECT_NE(orbitd.log().find("JOURNAL FAILING"), std::string::npos);
  // The same failure in /metrics, for whoever scrapes it.
  const test::HttpReply metrics = test::http_get(orbitd.endpoints().http, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(test::prometheus_sample(metrics.body, "orbitd_journal_records_lost_total"), std::to_string(lost)) << metrics.body;
  const auto errors = test::prometheus_sample(metrics.body, "orbitd_journal_errors_total");
  ASSERT_TRUE(errors) << metrics.body;
  EXPECT_GE(std::stoull(*errors), lost);
  // No controller state lost: the run saw every snapshot, journaled or not.
  {
    auto status = control.call({{"cmd", std::string("status")}});
    const auto* runs = test::map_get(status.get(), "runs");
    ASSERT_TRUE(runs && runs->type == msgpack::type::ARRAY && runs->via.array.size == 1);
    EXPECT_EQ(test::map_get(runs->via.array.ptr[0], "step")->as<std::int64_t>(), step - 1);
    const auto* sessions = test::map_get(status.get(), "sessions");
    ASSERT_TRUE(sessions && sessions->type == msgpack::type::ARRAY && sessions->via.array.size == 1);
    EXPECT_EQ(test::map_get(sessions->via.array.ptr[0], "snapshots")->as<std::uint64_t>(),
              static_cast<std::uint64_t>(step));
  }

  disk.free_space();
  client.send(make_snapshot("full", step++));
  expect_type<State>(client.recv());
  EXPECT_TRUE(status_journal_ok(control));
  // One gap record per stretch of failures (a nearly full disk may take a record
  // now and then); together they count every record lost.
  const auto gaps = counter(control, "journal_gaps");
  EXPECT_GE(gaps, 1u);
  orbitd.stop();
  const RecordedRun recorded = load_recorded_run(journal / "full");
  ASSERT_EQ(recorded.gaps.size(), gaps);
  std::uint64_t lost_in_gaps = 0;
  for (const auto& gap : recorded.gaps) {
    const auto at = gap.find(": ");
    ASSERT_NE(at, std::string::npos) << gap;
    EXPECT_NE(gap.find(" records lost between daemon times "), std::string::npos) << gap;
    lost_in_gaps += std::stoull(gap.substr(at + 2));
  }
  EXPECT_EQ(lost_in_gaps, lost);
  EXPECT_TRUE(recorded.undecodable.empty());
  EXPECT_TRUE(recorded.report.clean()) << recorded.report.summary();
  std::filesystem::remove_all(cfg);
}

// Item 2: orbitd raises its open-file limit to the hard limit, so many
// connections under a low soft limit no longer abort it ...
TEST(OrbitdFaults, ManyConnectionsUnderALowSoftLimit) {
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  if (original.rlim_max != RLIM_INFINITY && original.rlim_max < 1024) GTEST_SKIP() << "hard open-file limit below 1024";
  const auto dir = test::make_temp_dir("cfg");
  const std::string config = write_config(dir, "[daemon]\nmax_sessions = 400\n");
  rlimit low = original;
  low.rlim_cur = 256;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::optional<OrbitdProcess> orbitd;
  try {
    orbitd.emplace(std::vector<std::string>{"--config", config, "--mode", "monitor"});  // inherits the 256 soft limit
  } catch (...) {
    ::setrlimit(RLIMIT_NOFILE, &original);
    throw;
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
  zmq::context_t ctx;
  std::vector<std::unique_ptr<TestClient>> peers;
  for (int i = 0; i < 300; ++i) {
    peers.push_back(std::make_unique<TestClient>(ctx, orbitd->endpoints().adapters));
    peers.back()->send(make_hello("many", i, 300));
  }
  int welcomed = 0;
  for (auto& peer : peers) welcomed += std::holds_alternative<Welcome>(peer->recv().value_or(Message{Heartbeat{}}));
  EXPECT_EQ(welcomed, 300);
  EXPECT_TRUE(orbitd->alive()) << orbitd->log();
  std::filesystem::remove_all(dir);
}

// ... and refuses, with a clear message, caps that cannot fit under the hard limit.
TEST(OrbitdFaults, CapsThatCannotFitTheFdLimitAreRefused) {
  const auto dir = test::make_temp_dir("cfg");
  const std::string log = (dir / "log").string();
  const std::string cmd = "ulimit -n 512 && exec timeout 10 " + std::string(std::getenv("ORBITD")) +
                          " --endpoint tcp://127.0.0.1:* --telemetry tcp://127.0.0.1:* --control tcp://127.0.0.1:* "
                          "--allow-exposed-control 2>" + log;
  const int status = std::system(("sh -c '" + cmd + "'").c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream in(log);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("file descriptors"), std::string::npos) << text;
  EXPECT_NE(text.find("daemon.max_sessions 4096"), std::string::npos) << text;
  EXPECT_NE(text.find("512"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
}

// Item 2: the journal keeps at most max_open_files segment files open.
std::size_t open_files_under(const std::filesystem::path& root) {
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec);
    if (!ec && target.string().rfind(root.string() + "/", 0) == 0 && target.extension() == ".orbj") ++n;
  }
  return n;
}

TEST(OrbitdFaults, TheJournalClosesIdleFiles) {
  const auto root = test::make_temp_dir("journal");
  JournalOptions options;
  options.root = root;
  options.max_open_files = 2;
  options.fsync = JournalOptions::never;
  {
    Journal j = Journal::open(options);
    for (int round = 0; round < 3; ++round) {
      for (int r = 0; r < 6; ++r) {
        j.append("run-" + std::to_string(r), RecordType::mode, 1000 * round + r, round % 2 ? "active" : "monitor");
        EXPECT_LE(open_files_under(root), 2u);
      }
    }
    EXPECT_GT(j.stats().idle_closes, 0u);
  }
  for (int r = 0; r < 6; ++r) {
    const RecordedRun run = load_recorded_run(root / ("run-" + std::to_string(r)));
    EXPECT_EQ(run.entries.size(), 3u);
    EXPECT_TRUE(run.report.clean()) << run.report.summary();
    EXPECT_EQ(list_segments(root / ("run-" + std::to_string(r))).size(), 1u);  // reopened, not a new segment
  }
  std::filesystem::remove_all(root);
}

// Runs orbitd (10 s at most) and returns its exit status and stderr.
std::pair<int, std::string> run_orbitd(const std::string& args) {
  const auto dir = test::make_temp_dir("run");
  const std::string log = (dir / "log").string();
  const int status =
      std::system(("timeout 10 " + std::string(std::getenv("ORBITD")) + " " + args + " 2>" + log + " >/dev/null").c_str());
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  return {WEXITSTATUS(status), text};
}

// Item 6: a control endpoint others could reach, or HTTP off loopback, needs an
// explicit flag; without it orbitd refuses to start and says why.
TEST(OrbitdFaults, ExposedControlAndHttpNeedAnExplicitFlag) {
  const auto dir = test::make_temp_dir("sock");
  const std::string ipc = "--endpoint ipc://" + (dir / "a.sock").string() + " ";
  auto [rc, text] = run_orbitd(ipc + "--control 'tcp://127.0.0.1:*'");
  EXPECT_EQ(rc, 1) << text;
  EXPECT_NE(text.find("--allow-exposed-control"), std::string::npos) << text;
  std::tie(rc, text) = run_orbitd(ipc + "--control ipc://@orbit-faults-" + std::to_string(::getpid()));
  EXPECT_EQ(rc, 1) << text;
  EXPECT_NE(text.find("not an ipc socket in a private directory"), std::string::npos) << text;
  std::tie(rc, text) = run_orbitd(ipc + "--http 0.0.0.0:0");
  EXPECT_EQ(rc, 1) << text;
  EXPECT_NE(text.find("--allow-exposed-http"), std::string::npos) << text;
  EXPECT_FALSE(std::filesystem::exists(dir / "a.sock"));  // refused before binding anything

  // Allowed explicitly, both start.
  OrbitdProcess exposed({"--endpoint", "ipc://" + (dir / "b.sock").string(), "--control", "tcp://127.0.0.1:*",
                         "--allow-exposed-control", "--http", "0.0.0.0:0", "--allow-exposed-http"},
                        /*default_endpoints=*/false);
  EXPECT_TRUE(exposed.alive());
  EXPECT_EQ(exposed.endpoints().control.rfind("tcp://127.0.0.1:", 0), 0u);
  std::filesystem::remove_all(dir);
}

// Item 10: an unknown type is not echoed back in full.
TEST(OrbitdFaults, AnUnknownTypeIsNotEchoedInFull) {
  OrbitdProcess orbitd;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> p(buf);
  p.pack_map(2);
  p.pack(std::string("v"));
  p.pack(1);
  p.pack(std::string("type"));
  p.pack(std::string(1 << 20, 'x'));
  client.send_raw(std::string_view(buf.data(), buf.size()));
  const auto error = expect_type<Error>(client.recv());
  EXPECT_EQ(error.code, ErrorCode::unknown_type);
  EXPECT_LT(error.message.size(), 512u);
}

// Item 10: max_message_bytes cannot exceed what one journal record holds.
TEST(OrbitdFaults, MaxMessageBytesFitsAJournalRecord) {
  const auto dir = test::make_temp_dir("cfg");
  auto [rc, text] = run_orbitd("--check-config " + write_config(dir, "[limits]\nmax_message_bytes = 1073741824\n"));
  EXPECT_EQ(rc, 2) << text;
  EXPECT_NE(text.find("limits.max_message_bytes"), std::string::npos) << text;
  std::tie(rc, text) = run_orbitd("--check-config " + write_config(dir, "[limits]\nmax_message_bytes = 67108864\n"));
  EXPECT_EQ(rc, 0) << text;
  std::filesystem::remove_all(dir);
}

// Item 10: interval syncs run on a worker thread; a failed one is reported to
// the caller on its next call, never lost.
TEST(OrbitdFaults, BackgroundSyncReportsFailuresLater) {
  BackgroundSync syncer;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  const auto dir = test::make_temp_dir("sync");
  const int file = ::open((dir / "f").c_str(), O_WRONLY | O_CREAT, 0600);
  ASSERT_GE(file, 0);
  ASSERT_EQ(::write(file, "x", 1), 1);
  syncer.submit(file, "a real file");
  syncer.drain();
  EXPECT_EQ(syncer.take_error(), "");
  syncer.submit(pipe_fds[0], "the pipe");  // fdatasync on a pipe fails (EINVAL)
  syncer.drain();
  const std::string error = syncer.take_error();
  EXPECT_NE(error.find("cannot sync the pipe"), std::string::npos) << error;
  EXPECT_EQ(syncer.take_error(), "");  // reported once
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------- batched journal writes

// Snapshots sent while orbitd is stopped (SIGSTOP) reach it as one backlog, so its
// drains are large batches whatever the machine's load.
void send_backlog(OrbitdProcess& orbitd, TestClient& client, const std::string& run, std::int64_t first, int n) {
  ASSERT_EQ(::kill(orbitd.pid(), SIGSTOP), 0);
  for (int i = 0; i < n; ++i) client.send(make_snapshot(run, first + i));
  std::this_thread::sleep_for(50ms);  // the bytes reach orbitd's socket buffers
  ASSERT_EQ(::kill(orbitd.pid(), SIGCONT), 0);
}

// A backlog of `n` snapshots (steps 0..n-1), each answered with its state, in order.
void expect_backlog_answered(OrbitdProcess& orbitd, TestClient& client, const std::string& run, int n) {
  send_backlog(orbitd, client, run, 0, n);
  for (int i = 0; i < n; ++i) EXPECT_EQ(expect_type<State>(client.recv()).step, i);
}

std::vector<std::int64_t> journaled_steps(const std::filesystem::path& run_dir) {
  std::vector<std::int64_t> steps;
  for (const auto& e : load_recorded_run(run_dir).entries)
    if (e.type == RecordType::snapshot) steps.push_back(std::get<Snapshot>(e.value).step);
  return steps;
}

// A batch of pipelined snapshots costs one journal write(2) per run, not one per record.
TEST(OrbitdJournalBatch, PipelinedSnapshotsTakeFewerWritesThanRecords) {
  const auto journal = test::make_temp_dir("journal");
  OrbitdProcess orbitd({"--journal-dir", journal.string(), "--mode", "monitor"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  Control control(ctx, orbitd.endpoints().control);
  client.send(make_hello("batched"));
  expect_type<Welcome>(client.recv());
  const auto records_before = counter(control, "journal_records");
  const auto writes_before = counter(control, "journal_writes");
  EXPECT_EQ(writes_before, 1u) << "a hello's three records (config, mode, hello) in one write";
  constexpr int kSnapshots = 600;
  expect_backlog_answered(orbitd, client, "batched", kSnapshots);
  const auto records = counter(control, "journal_records") - records_before;
  const auto writes = counter(control, "journal_writes") - writes_before;
  EXPECT_EQ(records, static_cast<std::uint64_t>(kSnapshots));
  EXPECT_LT(writes, records);
  EXPECT_LE(writes * 8, records) << writes << " writes for " << records << " records";
  orbitd.stop();
  std::vector<std::int64_t> want(kSnapshots);
  for (int i = 0; i < kSnapshots; ++i) want[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(journaled_steps(journal / "batched"), want);
  std::filesystem::remove_all(journal);
}

// Without a journal too, the replies of a batch go to ZeroMQ back to back (one wake of
// its I/O thread, not one per reply), in order.
TEST(OrbitdReplyBatch, PipelinedRepliesWithoutJournalGoOutInBatches) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  Control control(ctx, orbitd.endpoints().control);
  client.send(make_hello("replies"));
  expect_type<Welcome>(client.recv());
  const auto batches_before = counter(control, "reply_batches");
  EXPECT_EQ(batches_before, 1u) << "the welcome, alone in its batch";
  constexpr int kSnapshots = 600;
  expect_backlog_answered(orbitd, client, "replies", kSnapshots);
  const auto batches = counter(control, "reply_batches") - batches_before;
  EXPECT_GE(batches, static_cast<std::uint64_t>(kSnapshots / 32));
  EXPECT_LE(batches * 8, static_cast<std::uint64_t>(kSnapshots)) << batches << " batches for " << kSnapshots << " replies";
}

// No reply precedes its record: orbitd is killed (-9) the moment the first answer of
// a large batch arrives, before it could have written a record sent after it; every
// answered snapshot is in the journal all the same.
TEST(OrbitdJournalBatch, Kill9RightAfterTheFirstReplyOfABatchLosesNoAnsweredRecord) {
  const auto dir = test::make_temp_dir("kill-batch");
  const auto journal = dir / "journal";
  std::vector<std::int64_t> answered;
  for (int round = 0; round < 6; ++round) {
    OrbitdProcess orbitd({"--journal-dir", journal.string(), "--mode", "monitor"});
    zmq::context_t ctx;
    TestClient client(ctx, orbitd.endpoints().adapters);
    client.send(make_hello("killed"));
    expect_type<Welcome>(client.recv());
    const std::int64_t first = round * 1000;
    send_backlog(orbitd, client, "killed", first, 250);
    const State state = expect_type<State>(client.recv());
    orbitd.stop(SIGKILL);
    answered.push_back(state.step);
    // Whatever else arrived before the kill was answered too.
    while (auto more = client.recv(0ms))
      if (auto* s = std::get_if<State>(&*more)) answered.push_back(s->step);
  }
  const auto steps = journaled_steps(journal / "killed");
  const std::set<std::int64_t> journaled(steps.begin(), steps.end());
  for (const auto step : answered) EXPECT_TRUE(journaled.count(step)) << "answered step " << step << " not journaled";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orbit
