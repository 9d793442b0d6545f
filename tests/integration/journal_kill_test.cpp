// SPDX-License-Identifier: Apache-2.0
// kill -9 of a journaling orbitd at random moments while a client streams a run.
//
// A client streams a spiky real trace (WMT, loss spikes to 55) snapshot by snapshot,
// acking every burn. orbitd is SIGKILLed at random moments and restarted on the same
// journal each time; the client says hello again when told not_registered, as
// adapters do. A kill lands at one of four kinds of moment, drawn at random: right
// after a snapshot went out (decode / journal write / decide), after a pause of up to
// 400 us or up to 3 ms, or right after the client got its answer and sent the ack
// (the ack's journal write). Afterwards:
//   - every snapshot the client got an answer for is in the journal, in order;
//   - every burn the client received is in the journal, byte for byte;
//   - burn seqs never repeat across restarts;
//   - replaying the whole journal through one uninterrupted Navigator computes every
//     recorded burn bit for bit (a recovered daemon continues the same trajectory),
//     checked in-process and by the real `orbit replay` (exit 0, "reproduced bit for bit").
// ctest runs 12 kills; scripts/crash-kill runs 100 or more (env ORBIT_KILLS, ORBIT_KILL_SEED,
// ORBIT_KILL_JSON: where to write the figures as JSON).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <cstdlib>

#include <zmq.hpp>

#include "journal/journal_replay.hpp"
#include "protocol/codec.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"
#include "tools/replay.hpp"
#include "tools/run_command.hpp"
#include "tools/trace_import.hpp"

namespace orbit {
namespace {

namespace fs = std::filesystem;

std::vector<Snapshot> trace_snapshots(const std::string& run) {
  std::ifstream in(fs::path(ORBIT_TRACES_DIR) / "algoperf_wmt_transformer_spikes/caspr_s3_t4_SPIKES_measurements.csv");
  std::ostringstream text;
  text << in.rdbuf();
  ImportOptions o;
  o.run = run;
  auto snapshots = import_trace(text.str(), o).runs.at(0).snapshots;
  for (auto& s : snapshots) s.run = run;
  return snapshots;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::stoull(v) : fallback;
}

TEST(JournalKill, Kill9AtRandomMomentsLosesNothingAnsweredAndKeepsTheTrajectory) {
  const std::string run = "kill-run";
  const auto snapshots = trace_snapshots(run);
  ASSERT_GT(snapshots.size(), 600u);
  const int kKills = static_cast<int>(env_number("ORBIT_KILLS", 12));
  const std::uint64_t seed = env_number("ORBIT_KILL_SEED", 20240611);
  ASSERT_GE(kKills, 1);
  ASSERT_LE(static_cast<std::size_t>(kKills) * 3, snapshots.size()) << "at most one kill per 3 snapshots of the trace";
  const auto started = std::chrono::steady_clock::now();

  const fs::path dir = test::make_temp_dir("kill");
  const fs::path journal = dir / "journal";
  const std::string endpoint = "ipc://" + (dir / "orbitd.sock").string();
  const std::vector<std::string> args = {"--journal-dir", journal.string(), "--endpoint", endpoint, "--telemetry",
                                         "ipc://" + (dir / "telemetry.sock").string(), "--control",
                                         "ipc://" + (dir / "control.sock").string()};
  auto daemon = std::make_unique<test::OrbitdProcess>(args, false);

  zmq::context_t ctx(1);
  test::TestClient client(ctx, endpoint);
  auto hello = [&] {
    client.send(test::make_hello(run));
    for (int i = 0; i < 50; ++i) {  // stale replies to snapshots sent before the restart come first
      auto m = client.recv(std::chrono::seconds(10));
      if (!m) return false;
      if (std::holds_alternative<Welcome>(*m)) return true;
    }
    return false;
  };
  ASSERT_TRUE(hello());

  std::mt19937_64 rng(seed);
  const std::size_t per_kill = snapshots.size() / (kKills + 1);
  std::vector<std::int64_t> answered;  // steps whose snapshot got a state or burn back
  std::vector<Burn> received;
  int kills = 0, unanswered = 0;
  int kills_by_moment[4] = {0, 0, 0, 0};
  auto kill_and_restart = [&](int moment) {
    daemon->stop(SIGKILL);
    ++kills;
    ++kills_by_moment[moment];
    daemon = std::make_unique<test::OrbitdProcess>(args, false);
  };
  auto on_reply = [&](std::size_t i, const Message& reply) {
    if (auto* b = std::get_if<Burn>(&reply)) {
      received.push_back(*b);
      answered.push_back(snapshots[i].step);
      Ack ack;
      ack.run = run;
      ack.seq = b->seq;
      ack.step = b->apply_at_step;
      client.send(ack);
      return true;
    }
    if (std::holds_alternative<State>(reply)) {
      answered.push_back(snapshots[i].step);
      return true;
    }
    return false;
  };
  std::size_t next_kill_at = per_kill / 2 + rng() % per_kill;

  for (std::size_t i = 0; i < snapshots.size(); ++i) {
    client.send(snapshots[i]);
    if (i == next_kill_at && kills < kKills) {
      next_kill_at = i + 1 + per_kill / 2 + rng() % per_kill;
      const int moment = static_cast<int>(rng() % 4);
      if (moment == 3) {
        // After the answer: the client acks a burn and the daemon dies journaling it.
        auto reply = client.recv(std::chrono::seconds(10));
        ASSERT_TRUE(reply) << "no reply to snapshot " << i;
        ASSERT_TRUE(on_reply(i, *reply)) << "unexpected " << type_name(*reply) << " to snapshot " << i;
        kill_and_restart(moment);
      } else {
        // Mid-flight: right away, or after a pause of up to 400 us or 3 ms.
        const auto pause = std::chrono::microseconds(moment == 0 ? 0 : rng() % (moment == 1 ? 400 : 3000));
        if (pause.count()) std::this_thread::sleep_for(pause);
        kill_and_restart(moment);
        ++unanswered;  // whatever the killed daemon did with it, it is not counted as answered
      }
      ASSERT_TRUE(hello()) << "no welcome after restart " << kills << "\n" << daemon->log();
      continue;
    }
    auto reply = client.recv(std::chrono::seconds(10));
    ASSERT_TRUE(reply) << "no reply to snapshot " << i;
    if (on_reply(i, *reply)) continue;
    if (auto* e = std::get_if<Error>(&*reply)) {
      ASSERT_EQ(e->code, ErrorCode::not_registered) << e->message;
      ASSERT_TRUE(hello());
    }
  }
  daemon->stop(SIGTERM);
  EXPECT_EQ(kills, kKills);

  const RecordedRun recording = load_recorded_run(journal / run, {.repair = false});
  EXPECT_TRUE(recording.report.corruptions.empty()) << recording.report.summary();
  EXPECT_TRUE(recording.undecodable.empty());

  // Every answered snapshot is journaled, in the order it was answered.
  std::vector<std::int64_t> journaled;
  std::map<std::int64_t, const Burn*> burns_by_seq;
  for (const auto& e : recording.entries) {
    if (e.type == RecordType::snapshot) journaled.push_back(std::get<Snapshot>(e.value).step);
    if (e.type == RecordType::burn) {
      const Burn& b = std::get<Burn>(e.value);
      EXPECT_TRUE(burns_by_seq.emplace(b.seq, &b).second) << "burn seq " << b.seq << " twice";
    }
  }
  std::size_t j = 0, answered_missing = 0;
  for (auto step : answered) {
    std::size_t k = j;
    while (k < journaled.size() && journaled[k] != step) ++k;
    if (k == journaled.size()) {
      ++answered_missing;
      ADD_FAILURE() << "answered snapshot at step " << step << " is missing from the journal (or out of order)";
    } else {
      j = k + 1;
    }
  }
  ASSERT_GE(received.size(), 3u) << "the spiky trace must make the controller burn";
  std::size_t burns_missing = 0;
  for (const auto& b : received) {
    auto it = burns_by_seq.find(b.seq);
    if (it == burns_by_seq.end()) {
      ++burns_missing;
      ADD_FAILURE() << "received burn #" << b.seq << " is not journaled";
    } else if (encode(*it->second) != encode(b)) {
      ++burns_missing;
      ADD_FAILURE() << "received burn #" << b.seq << " differs from its journal record";
    }
  }

  // One uninterrupted Navigator fed the same journal computes every recorded burn.
  const RunReplay replay = replay_run(recording, ReplaySettings{});
  EXPECT_FALSE(replay.overridden);
  EXPECT_EQ(replay.burns_matching, replay.recorded_burns.size())
      << replay.burns_matching << " of " << replay.recorded_burns.size() << " recorded burns reproduced";
  EXPECT_TRUE(replay.reproduced());
  for (const auto& b : replay.burns)
    if (b.matches_recorded && !*b.matches_recorded) {
      const auto it = burns_by_seq.find(b.burn.seq);
      ADD_FAILURE() << "first differing burn #" << b.burn.seq << "\n  replayed: " << b.burn.reason << " lr "
                    << b.burn.lr_scale << " apply " << b.burn.apply_at_step << "\n  recorded: " << it->second->reason
                    << " lr " << it->second->lr_scale << " apply " << it->second->apply_at_step;
      break;
    }
  // The real command line: `orbit replay` on the run directory reproduces every burn.
  const detail::CommandResult cli = detail::run_orbit({"replay", (journal / run).string(), "--no-progress"});
  EXPECT_EQ(cli.code, 0) << cli.output;
  EXPECT_NE(cli.output.find("all reproduced bit for bit with the recorded config"), std::string::npos) << cli.output;

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("[ journal ] %d kills (moments %d/%d/%d/%d), %zu snapshots answered, %zu journaled, %zu burns received, "
              "%zu recorded, %zu reproduced, %zu computed without a record; orbit replay exit %d; %.1f s\n",
              kills, kills_by_moment[0], kills_by_moment[1], kills_by_moment[2], kills_by_moment[3], answered.size(),
              journaled.size(), received.size(), replay.recorded_burns.size(), replay.burns_matching,
              replay.unrecorded_seqs.size(), cli.code, seconds);
  if (const char* out = std::getenv("ORBIT_KILL_JSON"); out && *out) {
    std::ofstream json(out, std::ios::trunc);
    json << "{\n  \"kills\": " << kills << ",\n  \"seed\": " << seed << ",\n  \"kills_by_moment\": {\"after_send\": "
         << kills_by_moment[0] << ", \"pause_400us\": " << kills_by_moment[1] << ", \"pause_3ms\": " << kills_by_moment[2]
         << ", \"after_answer\": " << kills_by_moment[3] << "},\n  \"snapshots_sent\": " << snapshots.size()
         << ",\n  \"snapshots_answered\": " << answered.size() << ",\n  \"snapshots_journaled\": " << journaled.size()
         << ",\n  \"answered_missing_from_journal\": " << answered_missing << ",\n  \"burns_received\": " << received.size()
         << ",\n  \"burns_received_missing_or_different\": " << burns_missing
         << ",\n  \"burns_recorded\": " << replay.recorded_burns.size()
         << ",\n  \"burns_reproduced\": " << replay.burns_matching
         << ",\n  \"orbit_replay_exit\": " << cli.code << ",\n  \"passed\": "
         << (::testing::Test::HasFailure() ? "false" : "true") << ",\n  \"seconds\": " << seconds << "\n}\n";
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// A journal with a byte flipped in the middle: orbitd reports it, recovers what is
// before it, and keeps serving.
TEST(JournalKill, FlippedByteIsReportedAndTheRestReplays) {
  const std::string run = "flip-run";
  const auto snapshots = trace_snapshots(run);
  const fs::path dir = test::make_temp_dir("flip");
  const fs::path journal = dir / "journal";
  const std::vector<std::string> args = {"--journal-dir", journal.string(), "--log-level", "info"};
  std::size_t states = 0;
  {
    test::OrbitdProcess daemon(args);
    zmq::context_t ctx(1);
    test::TestClient client(ctx, daemon.endpoints().adapters);
    client.send(test::make_hello(run));
    ASSERT_TRUE(client.recv());
    for (std::size_t i = 0; i < 200; ++i) {
      client.send(snapshots[i]);
      ASSERT_TRUE(client.recv());
      ++states;
    }
    daemon.stop(SIGTERM);
  }
  const auto segments = list_segments(journal / run);
  ASSERT_EQ(segments.size(), 1u);
  // Flip a byte inside the 100th snapshot record.
  std::uint64_t offset = 0;
  std::size_t seen = 0;
  for_each_record(journal / run, [&](const JournalRecord& r) {
    if (r.type == RecordType::snapshot && ++seen == 100) offset = r.offset;
  }, {});
  ASSERT_GT(offset, 0u);
  {
    std::fstream f(segments[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset + kRecordHeaderBytes + 20));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(offset + kRecordHeaderBytes + 20));
    c = static_cast<char>(c ^ 0x10);
    f.write(&c, 1);
  }
  test::OrbitdProcess daemon(args);
  const std::string log = daemon.log();
  EXPECT_NE(log.find("corruption at " + segments[0].filename().string() + ":" + std::to_string(offset)),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("skipped"), std::string::npos) << "recovery reads past the damaged record\n" << log;
  const RecordedRun recording = load_recorded_run(journal / run);
  EXPECT_EQ(recording.snapshots, 99u) << "everything before the flipped byte is still read";
  ASSERT_EQ(recording.report.corruptions.size(), 1u);
  EXPECT_EQ(recording.report.corruptions[0].offset, offset);
  // The daemon still serves the run.
  zmq::context_t ctx(1);
  test::TestClient client(ctx, daemon.endpoints().adapters);
  client.send(test::make_hello(run));
  auto w = client.recv();
  ASSERT_TRUE(w && std::holds_alternative<Welcome>(*w));
  client.send(snapshots[200]);
  EXPECT_TRUE(client.recv());
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace orbit
