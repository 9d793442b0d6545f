// SPDX-License-Identifier: Apache-2.0
// orbitd as a process: real sockets, real signals, real bad input.

#include <cmath>
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include "controllers/spectral_metrics.hpp"
#include "support/control_client.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;
using test::make_hello;
using test::make_snapshot;
using test::OrbitdProcess;
using test::TestClient;

// Returns a copy: the optional is usually a temporary.
template <class T>
T expect_type(const std::optional<Message>& m) {
  if (!m) throw std::runtime_error("no reply within the deadline");
  if (!std::holds_alternative<T>(*m)) {
    throw std::runtime_error("unexpected reply type " + std::string(type_name(*m)) +
                             (std::holds_alternative<Error>(*m) ? ": " + std::get<Error>(*m).message : ""));
  }
  return std::get<T>(*m);
}

using Control = test::ControlClient;

const msgpack::object* get(const msgpack::object& map, std::string_view key) { return test::map_get(map, key); }

std::uint64_t counter(Control& control, const std::string& name) { return test::status_counter(control, name); }

std::string write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
  return p.string();
}

int run_command(const std::string& args) {
  const std::string cmd = std::string(std::getenv("ORBITD")) + " " + args + " >/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WEXITSTATUS(status);
}

TEST(Orbitd, HelpVersionAndCheckConfig) {
  EXPECT_EQ(run_command("--help"), 0);
  EXPECT_EQ(run_command("--version"), 0);
  EXPECT_EQ(run_command(std::string("--check-config ") + ORBIT_SOURCE_DIR + "/configs/default.toml"), 0);
  const auto dir = test::make_temp_dir("cfg");
  EXPECT_EQ(run_command("--check-config " + write_file(dir / "bad.toml", "[daemon]\nmode = 3\n")), 2);
  EXPECT_EQ(run_command("--no-such-flag"), 2);
  // A bad config stops orbitd before it binds anything.
  EXPECT_EQ(run_command("--config " + (dir / "bad.toml").string() + " --endpoint ipc://" + (dir / "x.sock").string()), 2);
  EXPECT_FALSE(std::filesystem::exists(dir / "x.sock"));
  std::filesystem::remove_all(dir);
}

TEST(Orbitd, CheckConfigRejectsAnInvertedZoneWithFileKeyAndReason) {
  const auto dir = test::make_temp_dir("cfg");
  const std::string file = write_file(dir / "inverted.toml", "[controller.zones.entropy]\ngood = 0.5\ndanger = 1.0\n");
  const std::string cmd = std::string(std::getenv("ORBITD")) + " --check-config " + file + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string output;
  char buf[512];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) output.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 2) << output;
  EXPECT_NE(output.find(file), std::string::npos) << output;
  EXPECT_NE(output.find("controller.zones.entropy"), std::string::npos) << output;
  EXPECT_NE(output.find("zone inverted: entropy is better higher"), std::string::npos) << output;
  // The same lines the right way round are accepted.
  EXPECT_EQ(run_command("--check-config " + write_file(dir / "upright.toml", "[controller.zones.entropy]\ngood = 1.0\n"
                                                                              "danger = 0.5\n")),
            0);
  std::filesystem::remove_all(dir);
}

TEST(Orbitd, HelloWelcomeSnapshotState) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("run-a"));
  const auto& welcome = expect_type<Welcome>(client.recv());
  EXPECT_EQ(welcome.run, "run-a");
  EXPECT_EQ(welcome.version, 1);
  EXPECT_EQ(welcome.mode, "monitor");
  EXPECT_FALSE(welcome.session.empty());

  Snapshot s = make_snapshot("run-a", 10);
  s.spectra["hidden.0"] = std::vector<float>(64, 0.5f);       // uniform: H = ln 64
  s.spectra["attn.0"] = {3.0f, 1.0f, 0.0f, 0.0f};             // p = (.75, .25)
  client.send(s);
  const auto& state = expect_type<State>(client.recv());
  EXPECT_EQ(state.run, "run-a");
  EXPECT_EQ(state.step, 10);
  EXPECT_NEAR(state.metrics.at("hidden.0.entropy"), std::log(64.0), 1e-9);
  EXPECT_NEAR(state.metrics.at("hidden.0.effective_rank"), 64.0, 1e-6);
  EXPECT_NEAR(state.metrics.at("attn.0.dominant_ratio"), 0.75, 1e-12);
  const double h = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  EXPECT_NEAR(state.metrics.at("attn.0.entropy"), h, 1e-9);
  EXPECT_NEAR(state.metrics.at("attn.0.phi_proximity"), std::max(0.0, 1 - std::abs(3.0 - kGoldenRatio) / kGoldenRatio), 1e-9);
  // The aggregate reads hidden-state spectra by default (attention false-alarms).
  EXPECT_NEAR(state.metrics.at("entropy"), std::log(64.0), 1e-9);
}

// Spectra come on probe steps only. The steps between (and the burns decided on
// them, after a recovery too) report the basin of the last spectral evidence with
// its age, never UNKNOWN; a run that never sent a spectrum stays UNKNOWN, ageless.
TEST(Orbitd, BasinHoldsFromTheLastSpectralEvidenceWithItsAge) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("probed"));
  expect_type<Welcome>(client.recv());
  client.send(make_snapshot("probed", 10));  // a uniform hidden spectrum: evidence of a healthy orbit
  const State probe = expect_type<State>(client.recv());
  ASSERT_NE(probe.basin, "UNKNOWN");
  ASSERT_TRUE(probe.basin_age_steps.has_value());
  EXPECT_EQ(*probe.basin_age_steps, 0);
  for (std::int64_t step = 11; step <= 13; ++step) {
    Snapshot scalars_only = make_snapshot("probed", step);
    scalars_only.spectra.clear();
    client.send(scalars_only);
    const State between = expect_type<State>(client.recv());
    EXPECT_EQ(between.basin, probe.basin) << "step " << step;
    ASSERT_TRUE(between.basin_age_steps.has_value()) << "step " << step;
    EXPECT_EQ(*between.basin_age_steps, step - 10);
  }

  client.send(make_hello("scalars"));
  expect_type<Welcome>(client.recv());
  Snapshot scalars = make_snapshot("scalars", 1);
  scalars.spectra.clear();
  client.send(scalars);
  const State never = expect_type<State>(client.recv());
  EXPECT_EQ(never.basin, "UNKNOWN");
  EXPECT_FALSE(never.basin_age_steps.has_value());
}

TEST(Orbitd, SnapshotWithoutHelloIsNotRegistered) {
  OrbitdProcess orbitd;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_snapshot("nobody", 1));
  const auto& error = expect_type<Error>(client.recv());
  EXPECT_EQ(error.code, ErrorCode::not_registered);
  EXPECT_NE(error.message.find("hello"), std::string::npos);
}

TEST(Orbitd, EveryKindOfBadInputGetsItsErrorCode) {
  OrbitdProcess orbitd;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  auto expect_code = [&](std::string_view bytes, ErrorCode code) {
    client.send_raw(bytes);
    const auto& error = expect_type<Error>(client.recv());
    EXPECT_EQ(error.code, code) << error.message;
    EXPECT_FALSE(error.message.empty());
  };
  expect_code("\xc1 not msgpack", ErrorCode::bad_message);
  expect_code("\x93\x01\x02\x03", ErrorCode::bad_message);  // an array, not a map

  Hello hello = make_hello("r");
  hello.versions = {7};
  client.send(hello);
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::unsupported_version);

  std::string snapshot_v2 = encode(make_snapshot("r", 1));
  ASSERT_EQ(snapshot_v2[3], 1);
  snapshot_v2[3] = 2;  // {"v": 1 -> 2 ...}: fixmap, fixstr "v" (2 bytes), then the version byte
  expect_code(snapshot_v2, ErrorCode::unsupported_version);

  hello = make_hello("bad run id!");
  client.send(hello);
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::invalid_field);

  client.send(make_hello("r"));
  expect_type<Welcome>(client.recv());
  Snapshot big = make_snapshot("r", 1);
  big.spectra["hidden.0"] = std::vector<float>(200000, 1.0f);
  client.send(big);
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::too_large);

  client.send(State{"r", 0, 1, "STABLE", "CREATIVE", {}, std::nullopt});
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::unknown_type);

  // Non-finite loss is a signal (the loudest: a burn in active mode), not an error.
  Snapshot nan = make_snapshot("r", 2);
  nan.loss = std::nan("");
  client.send(nan);
  auto reply = client.recv();
  ASSERT_TRUE(reply);
  EXPECT_TRUE(std::holds_alternative<Burn>(*reply) || std::holds_alternative<State>(*reply)) << type_name(*reply);
}

// 10,000 random and mutated messages from several peers; afterwards a
// well-behaved client must still get exactly the right replies.
TEST(Orbitd, SurvivesTenThousandMalformedMessages) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  std::mt19937_64 rng(1234);
  std::vector<std::string> seeds;
  {
    Snapshot s = make_snapshot("fuzz", 3);
    s.domains["web"] = {2.0, 0.5};
    s.scalars["x"] = 1.0;
    s.loop_rate = 0.1;
    seeds = {encode(make_hello("fuzz")), encode(s), encode(Ack{"fuzz", 0, 1, 3, false, 0.1, std::nullopt}),
             encode(Heartbeat{std::string("fuzz"), 0}), encode(Bye{"fuzz", 0})};
  }
  std::vector<std::unique_ptr<TestClient>> peers;
  for (int i = 0; i < 4; ++i) peers.push_back(std::make_unique<TestClient>(ctx, orbitd.endpoints().adapters));
  peers[0]->send(make_hello("fuzz"));
  std::size_t sent = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string m;
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {  // pure noise
      m.resize(rng() % 512);
      for (auto& c : m) c = static_cast<char>(rng());
    } else {  // a valid message with bytes flipped, cut or appended
      m = seeds[rng() % seeds.size()];
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !m.empty(); ++e) {
        const auto pos = rng() % m.size();
        switch (rng() % 3) {
          case 0: m[pos] = static_cast<char>(rng()); break;
          case 1: m.resize(pos); break;
          default: m.insert(pos, 1, static_cast<char>(rng())); break;
        }
      }
    }
    peers[i % peers.size()]->send_raw(m);
    ++sent;
  }
  // Drain what came back so the daemon never sees full queues from us.
  for (auto& p : peers) while (p->recv_raw(50ms)) {}

  ASSERT_TRUE(orbitd.alive()) << orbitd.log();
  TestClient good(ctx, orbitd.endpoints().adapters);
  good.send(make_hello("after-fuzz"));
  EXPECT_EQ(expect_type<Welcome>(good.recv()).run, "after-fuzz");
  for (int step = 0; step < 20; ++step) {
    good.send(make_snapshot("after-fuzz", step));
    const auto& state = expect_type<State>(good.recv());
    EXPECT_EQ(state.step, step);
    EXPECT_NEAR(state.metrics.at("hidden.0.entropy"), std::log(64.0), 1e-9);
  }
  Control control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(counter(control, "messages_received"), sent + 1 + 21);
  EXPECT_GT(counter(control, "error_bad_message") + counter(control, "error_invalid_field"), 1000u);
}

TEST(Orbitd, PublishesTelemetryPerSnapshot) {
  OrbitdProcess orbitd;
  zmq::context_t ctx;
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "tele");
  sub.set(zmq::sockopt::rcvtimeo, 5000);
  sub.connect(orbitd.endpoints().telemetry);
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("tele"));
  expect_type<Welcome>(client.recv());
  // PUB/SUB joins asynchronously: send until the subscription is live.
  std::optional<Telemetry> got;
  for (int step = 0; step < 200 && !got; ++step) {
    client.send(make_snapshot("tele", step));
    client.recv();
    zmq::message_t topic, body;
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 20ms) > 0 && sub.recv(topic) && sub.recv(body)) {
      EXPECT_EQ(topic.to_string(), "tele");
      DecodeResult r = decode(body.to_string());
      ASSERT_TRUE(r.ok()) << r.error.message;
      got = std::get<Telemetry>(*r.message);
    }
  }
  ASSERT_TRUE(got);
  EXPECT_EQ(got->run, "tele");
  EXPECT_FALSE(got->state.empty());
  EXPECT_NEAR(got->metrics.at("hidden.0.entropy"), std::log(64.0), 1e-9);
}

TEST(Orbitd, StatusCountsByName) {
  OrbitdProcess orbitd;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("counted"));
  expect_type<Welcome>(client.recv());
  for (int i = 0; i < 5; ++i) {
    client.send(make_snapshot("counted", i));
    client.recv();
  }
  client.send_raw("garbage");
  client.recv();
  Control control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(counter(control, "hellos"), 1u);
  EXPECT_EQ(counter(control, "snapshots"), 5u);
  EXPECT_EQ(counter(control, "error_bad_message"), 1u);
  EXPECT_EQ(counter(control, "runs_active"), 1u);
  auto h = control.call({{"cmd", "nope"}});
  EXPECT_FALSE(get(h.get(), "ok")->via.boolean);
}

// hello.replies "news" (SPEC.md 3): an adapter that asks gets a `state` reply only
// when it says something new or a refresh is due, and always every burn; one that
// does not ask (an older adapter) still gets exactly one reply per snapshot.
TEST(Orbitd, NewsOnlyRepliesLeaveOutStatesThatSayNothingNew) {
  OrbitdProcess orbitd({"--mode", "monitor"});
  zmq::context_t ctx;
  auto scalars_only = [](const std::string& run, std::int64_t step) {
    Snapshot s = make_snapshot(run, step);
    s.spectra.clear();
    return s;
  };
  TestClient old_style(ctx, orbitd.endpoints().adapters);
  old_style.send(make_hello("every"));
  EXPECT_FALSE(expect_type<Welcome>(old_style.recv()).replies.has_value());
  old_style.send(make_snapshot("every", 1));
  EXPECT_EQ(expect_type<State>(old_style.recv()).step, 1);
  for (std::int64_t step = 2; step <= 13; ++step) {
    old_style.send(scalars_only("every", step));
    EXPECT_EQ(expect_type<State>(old_style.recv()).step, step);
  }

  TestClient news(ctx, orbitd.endpoints().adapters);
  Hello hello = make_hello("news");
  hello.replies = std::string(kRepliesNews);
  news.send(hello);
  EXPECT_EQ(expect_type<Welcome>(news.recv()).replies, std::optional<std::string>("news"));
  // The daemon answers a connection in order: a ping's echo comes after any reply to
  // the snapshots sent before it.
  auto answer_then_echo = [&](const Snapshot& s) {
    news.send(s);
    news.send(Heartbeat{});
    std::vector<Message> got;
    for (;;) {
      auto m = news.recv();
      if (!m) throw std::runtime_error("no echo within the deadline");
      if (std::holds_alternative<Heartbeat>(*m)) return got;
      got.push_back(std::move(*m));
    }
  };
  auto one_state = [](const std::vector<Message>& got) {
    if (got.size() != 1) throw std::runtime_error(std::to_string(got.size()) + " replies, not one");
    return expect_type<State>(got.front());
  };
  const State first = one_state(answer_then_echo(make_snapshot("news", 1)));  // nothing told yet
  EXPECT_EQ(first.step, 1);
  for (std::int64_t step = 2; step <= 10; ++step)
    EXPECT_TRUE(answer_then_echo(scalars_only("news", step)).empty()) << "step " << step;
  EXPECT_EQ(one_state(answer_then_echo(scalars_only("news", 11))).step, 11);  // the 10th: a refresh
  EXPECT_TRUE(answer_then_echo(scalars_only("news", 12)).empty());
  EXPECT_EQ(one_state(answer_then_echo(make_snapshot("news", 13))).step, 13);  // spectra: new metrics

  Control control(ctx, orbitd.endpoints().control);
  auto forced = control.call({{"cmd", std::string("burn")}, {"run", std::string("news")}, {"lr_scale", 0.5}});
  ASSERT_TRUE(get(forced.get(), "ok")->via.boolean);
  EXPECT_EQ(expect_type<Burn>(news.recv()).lr_scale, 0.5);
  EXPECT_EQ(counter(control, "states_withheld"), 10u);
  EXPECT_EQ(counter(control, "states_sent"), 13u + 3u);
}

// Operator burns are validated like adapter messages (issue 16 item 8): a value out
// of range gets an error reply naming the field, nothing is sent or journaled, and
// the run and the daemon carry on; a valid burn still goes through.
TEST(Orbitd, OperatorBurnsWithOutOfRangeValuesGetAnErrorReply) {
  const auto dir = test::make_temp_dir("opburn");
  const auto cfg = dir / "orbitd.toml";
  write_file(cfg,
             "[[controller.curriculum.phases]]\nname = \"easy\"\ndomains = [\"web\"]\n"
             "[[controller.curriculum.phases]]\nname = \"hard\"\ndomains = [\"web\", \"code\"]\n");
  OrbitdProcess orbitd({"--config", cfg.string()});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  Hello hello = make_hello("ops");
  hello.actuators = {"lr", "curriculum"};
  hello.domains = {"web", "code"};
  client.send(hello);
  expect_type<Welcome>(client.recv());
  client.send(make_snapshot("ops", 1));
  client.recv();

  Control control(ctx, orbitd.endpoints().control);
  auto refused = [&](std::map<std::string, test::ControlField> fields, const std::string& says) {
    fields["cmd"] = std::string("burn");
    fields.emplace("run", std::string("ops"));
    auto h = control.call(fields);
    ASSERT_FALSE(get(h.get(), "ok")->via.boolean) << says;
    const auto* error = get(h.get(), "error");
    ASSERT_NE(error, nullptr);
    const std::string text(error->via.str.ptr, error->via.str.size);
    EXPECT_NE(text.find(says), std::string::npos) << text;
  };
  refused({{"curriculum_phase", std::int64_t{-1}}}, "curriculum_phase' must be >= 0");
  refused({{"curriculum_phase", std::int64_t{2}}}, "curriculum_phase 2 does not exist (phases 0-1)");
  refused({{"lr_scale", 0.0}}, "lr_scale' must be a finite number > 0");
  refused({{"lr_scale", std::string("half")}}, "lr_scale' must be a number, got a string");
  refused({{"expires_after_steps", std::int64_t{-5}}}, "expires_after_steps' must be >= 0");
  refused({{"rollback_to_step", std::int64_t{-1}}}, "rollback_to_step' must be >= 0");
  refused({{"skip_batches", std::int64_t{-2}}}, "skip_batches' must be >= 0");
  refused({{"run", std::string("nobody")}}, "no run named 'nobody'");
  EXPECT_EQ(counter(control, "control_errors"), 8u);
  EXPECT_EQ(counter(control, "burns_forced"), 0u);

  // Nothing reached the adapter; the run goes on, and a valid burn still works.
  client.send(make_snapshot("ops", 2));
  const auto answer = client.recv();
  ASSERT_TRUE(answer);
  EXPECT_FALSE(std::holds_alternative<Burn>(*answer));
  auto ok = control.call({{"cmd", std::string("burn")}, {"run", std::string("ops")}, {"curriculum_phase", std::int64_t{1}},
                          {"lr_scale", 0.5}});
  ASSERT_TRUE(get(ok.get(), "ok")->via.boolean);
  const Burn sent = expect_type<Burn>(client.recv());
  EXPECT_EQ(sent.curriculum_phase, 1);
  EXPECT_EQ(sent.lr_scale, 0.5);
  EXPECT_EQ(counter(control, "burns_forced"), 1u);
  EXPECT_EQ(orbitd.stop(SIGTERM), 0);
  std::filesystem::remove_all(dir);
}

TEST(Orbitd, SighupReloadsValidConfigAndKeepsOldOnInvalid) {
  const auto dir = test::make_temp_dir("reload");
  const auto cfg = dir / "orbitd.toml";
  write_file(cfg, "[daemon]\nmode = \"active\"\n");
  OrbitdProcess orbitd({"--config", cfg.string()});
  zmq::context_t ctx;
  // A hello for a run whose last client just closed may reach orbitd before ZeroMQ
  // has torn that connection down; orbitd then refuses it as another connection's
  // (not_registered), by design. A restarted adapter is far slower; here, retry.
  auto welcome_mode = [&](const std::string& run) {
    for (int attempt = 0;; ++attempt) {
      TestClient c(ctx, orbitd.endpoints().adapters);
      c.send(make_hello(run));
      const auto reply = c.recv();
      if (attempt < 100 && reply && std::holds_alternative<Error>(*reply) &&
          std::get<Error>(*reply).code == ErrorCode::not_registered) {
        std::this_thread::sleep_for(10ms);
        continue;
      }
      return expect_type<Welcome>(reply).mode;
    }
  };
  EXPECT_EQ(welcome_mode("r1"), "active");

  write_file(cfg, "[daemon]\nmode = \"monitor\"\n");
  ::kill(orbitd.pid(), SIGHUP);
  Control control(ctx, orbitd.endpoints().control);
  for (int i = 0; i < 200 && counter(control, "config_reloads") < 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(welcome_mode("r2"), "monitor");
  EXPECT_EQ(welcome_mode("r1"), "monitor");  // existing runs switch too, keeping their state

  write_file(cfg, "[daemon]\nmode = \"sideways\"\n");
  ::kill(orbitd.pid(), SIGHUP);
  for (int i = 0; i < 200 && counter(control, "config_reload_failures") < 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(counter(control, "config_reload_failures"), 1u);
  EXPECT_EQ(welcome_mode("r3"), "monitor");
  EXPECT_NE(orbitd.log().find("daemon.mode"), std::string::npos);
  EXPECT_EQ(orbitd.stop(SIGTERM), 0);
  std::filesystem::remove_all(dir);
}

TEST(Orbitd, SigtermExitsCleanly) {
  OrbitdProcess orbitd;
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("bye"));
  expect_type<Welcome>(client.recv());
  EXPECT_EQ(orbitd.stop(SIGTERM), 0);
}

TEST(Orbitd, DefaultIpcDirectoryIsPrivate) {
  const auto dir = test::make_temp_dir("xdg");
  ::setenv("XDG_RUNTIME_DIR", dir.c_str(), 1);
  {
    OrbitdProcess orbitd({}, /*default_endpoints=*/false);
    EXPECT_EQ(orbitd.endpoints().adapters, "ipc://" + (dir / "orbit" / "orbitd.sock").string());
    const auto perms = std::filesystem::status(dir / "orbit").permissions();
    EXPECT_EQ(perms & std::filesystem::perms::all, std::filesystem::perms::owner_all);
    zmq::context_t ctx;
    TestClient client(ctx, orbitd.endpoints().adapters);
    client.send(make_hello("ipc"));
    expect_type<Welcome>(client.recv());
  }
  // A directory others can enter is refused.
  std::filesystem::permissions(dir / "orbit", std::filesystem::perms::all);
  EXPECT_THROW(OrbitdProcess({}, false), std::runtime_error);
  ::unsetenv("XDG_RUNTIME_DIR");
  std::filesystem::remove_all(dir);
}

TEST(Orbitd, SilentSessionsExpire) {
  const auto dir = test::make_temp_dir("expire");
  const auto cfg = write_file(dir / "c.toml", "[daemon]\nsession_timeout_s = 0.3\n");
  OrbitdProcess orbitd({"--config", cfg});
  zmq::context_t ctx;
  TestClient client(ctx, orbitd.endpoints().adapters);
  client.send(make_hello("quiet"));
  expect_type<Welcome>(client.recv());
  std::this_thread::sleep_for(1s);
  client.send(make_snapshot("quiet", 1));
  EXPECT_EQ(expect_type<Error>(client.recv()).code, ErrorCode::not_registered);
  Control control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(counter(control, "sessions_expired"), 1u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orbit
