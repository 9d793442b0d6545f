// SPDX-License-Identifier: Apache-2.0
// CURVE on orbitd's tcp endpoints, against a real orbitd: clients on the allow-list
// are served; unknown keys and plain (unauthenticated) clients get nothing, and the
// refusals are counted by endpoint.

#include <fstream>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zmq.h>

#include "protocol/curve_keys.hpp"
#include "support/control_client.hpp"
#include "support/orbitd_process.hpp"
#include "support/test_client.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;
using test::ControlClient;
using test::make_hello;
using test::OrbitdProcess;
using test::TestClient;

CurveKeyPair new_keys() {
  char pub[41] = {}, sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed");
  return {pub, sec};
}

void write(const std::filesystem::path& path, const std::string& text, mode_t mode = 0600) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

// orbitd's keys, an allowed adapter, an allowed operator and a stranger, as files.
struct KeyRing {
  std::filesystem::path dir = test::make_temp_dir("curve");
  CurveKeyPair server = new_keys(), adapter = new_keys(), op = new_keys(), stranger = new_keys();

  KeyRing() {
    write(dir / "orbitd.key", format_secret_key_file(server));
    write(dir / "adapters.allow", format_public_key_file(adapter.public_key), 0644);
    write(dir / "operators.allow", "# operators\n" + op.public_key + "\n", 0644);
  }
  ~KeyRing() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  // A config naming the files, relative to its own directory.
  std::string config(const std::string& security) const {
    const auto path = dir / "orbitd.toml";
    write(path, "[security]\n" + security, 0644);
    return path.string();
  }
  std::string full_config() const {
    return config("curve_secret_key_file = \"orbitd.key\"\nadapter_keys_file = \"adapters.allow\"\n"
                  "control_keys_file = \"operators.allow\"\n");
  }
  std::function<void(zmq::socket_t&)> as(const CurveKeyPair& client) const {
    return [server_public = server.public_key, client](zmq::socket_t& s) {
      s.set(zmq::sockopt::curve_serverkey, server_public);
      s.set(zmq::sockopt::curve_publickey, client.public_key);
      s.set(zmq::sockopt::curve_secretkey, client.secret_key);
    };
  }
};

std::uint64_t counter(ControlClient& control, const std::string& name) { return test::status_counter(control, name); }

TEST(Curve, AllowedClientIsServedUnknownAndPlainClientsGetNothingAndAreCounted) {
  KeyRing keys;
  OrbitdProcess orbitd({"--config", keys.full_config()});
  zmq::context_t ctx;
  const std::string ep = orbitd.endpoints().adapters;

  TestClient allowed(ctx, ep, zmq::socket_type::dealer, keys.as(keys.adapter));
  allowed.send(make_hello("curve-run"));
  auto welcome = allowed.recv(5s);
  ASSERT_TRUE(welcome && std::holds_alternative<Welcome>(*welcome)) << orbitd.log();

  TestClient stranger(ctx, ep, zmq::socket_type::dealer, keys.as(keys.stranger));
  stranger.send(make_hello("stolen-run"));
  TestClient plain(ctx, ep);
  plain.send(make_hello("plain-run"));
  EXPECT_FALSE(stranger.recv_raw(1500ms)) << "an unknown key was served";
  EXPECT_FALSE(plain.recv_raw(500ms)) << "a client without CURVE was served";

  ControlClient control(ctx, orbitd.endpoints().control, keys.as(keys.op));
  EXPECT_GE(counter(control, "auth_refused_adapters"), 1u);  // the stranger (a plain client fails before ZAP)
  EXPECT_GE(counter(control, "auth_accepted_adapters"), 1u);
  EXPECT_GE(counter(control, "auth_accepted_control"), 1u);
  EXPECT_EQ(counter(control, "hellos"), 1u) << "only the allowed client's hello reached the daemon";
  EXPECT_EQ(counter(control, "runs_opened"), 1u);

  // An adapter key is not an operator key: the control endpoint refuses it.
  ControlClient adapter_as_operator(ctx, orbitd.endpoints().control, keys.as(keys.adapter), 1500);
  EXPECT_THROW(adapter_as_operator.call({{"cmd", std::string("status")}}), std::runtime_error);
  EXPECT_GE(counter(control, "auth_refused_control"), 1u);
  // And a plain control client gets nothing either.
  ControlClient plain_operator(ctx, orbitd.endpoints().control, {}, 1000);
  EXPECT_THROW(plain_operator.call({{"cmd", std::string("status")}}), std::runtime_error);
  EXPECT_TRUE(orbitd.alive());
}

TEST(Curve, TelemetryIsOnlyForListedKeys) {
  KeyRing keys;
  OrbitdProcess orbitd({"--config", keys.full_config()});
  zmq::context_t ctx;
  auto subscriber = [&](const std::function<void(zmq::socket_t&)>& configure) {
    auto s = std::make_unique<TestClient>(ctx, orbitd.endpoints().telemetry, zmq::socket_type::sub, configure);
    s->socket().set(zmq::sockopt::subscribe, "");
    return s;
  };
  auto op = subscriber(keys.as(keys.op));
  auto stranger = subscriber(keys.as(keys.stranger));
  std::this_thread::sleep_for(500ms);  // subscriptions travel before the snapshot
  TestClient adapter(ctx, orbitd.endpoints().adapters, zmq::socket_type::dealer, keys.as(keys.adapter));
  adapter.send(make_hello("watched"));
  ASSERT_TRUE(adapter.recv());
  adapter.send(test::make_snapshot("watched", 1));
  ASSERT_TRUE(adapter.recv());
  EXPECT_TRUE(op->recv_raw(3s)) << "an operator key reads telemetry";
  EXPECT_FALSE(stranger->recv_raw(500ms)) << "an unknown key read telemetry";
  ControlClient control(ctx, orbitd.endpoints().control, keys.as(keys.op));
  EXPECT_GE(counter(control, "auth_refused_telemetry"), 1u);
}

TEST(Curve, StartIsRefusedWithoutAnAllowListOrWithAReadableSecretKey) {
  KeyRing keys;
  // CURVE on, but nobody named for the tcp adapter endpoint.
  try {
    OrbitdProcess orbitd({"--config", keys.config("curve_secret_key_file = \"orbitd.key\"\n"
                                                  "control_keys_file = \"operators.allow\"\n")});
    FAIL() << "orbitd started with a tcp adapter endpoint and no adapter allow-list";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter_keys_file"), std::string::npos) << e.what();
  }
  ::chmod((keys.dir / "orbitd.key").c_str(), 0644);
  try {
    OrbitdProcess orbitd({"--config", keys.full_config()});
    FAIL() << "orbitd started with a secret key others may read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
  }
}

TEST(Curve, TcpControlUnderCurveNeedsNoExposedFlag) {
  KeyRing keys;
  // No --allow-exposed-control: CURVE with an operator allow-list is what guards tcp control.
  OrbitdProcess orbitd({"--config", keys.full_config(), "--endpoint", "tcp://127.0.0.1:*", "--telemetry",
                        "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*"},
                       false);
  zmq::context_t ctx;
  ControlClient control(ctx, orbitd.endpoints().control, keys.as(keys.op));
  EXPECT_EQ(counter(control, "auth_refused_control"), 0u);
}

// Authorization: a run belongs to the adapter key that opened it. Another allowed
// key (another job) can neither join it as a new rank nor act for its sessions.
TEST(Curve, ARunBelongsToTheKeyThatOpenedIt) {
  KeyRing keys;
  const CurveKeyPair other_job = new_keys();
  write(keys.dir / "adapters.allow", keys.adapter.public_key + "\n" + other_job.public_key + "\n", 0644);
  OrbitdProcess orbitd({"--config", keys.full_config(), "--mode", "monitor"});
  zmq::context_t ctx;
  const std::string ep = orbitd.endpoints().adapters;
  ControlClient control(ctx, orbitd.endpoints().control, keys.as(keys.op));

  TestClient owner(ctx, ep, zmq::socket_type::dealer, keys.as(keys.adapter));
  owner.send(make_hello("job-a", 0, 2));
  auto reply = owner.recv(5s);
  ASSERT_TRUE(reply && std::holds_alternative<Welcome>(*reply)) << orbitd.log();

  TestClient intruder(ctx, ep, zmq::socket_type::dealer, keys.as(other_job));
  intruder.send(make_hello("job-a", 1, 2));  // a free rank of the run
  reply = intruder.recv(5s);
  ASSERT_TRUE(reply && std::holds_alternative<Error>(*reply));
  const Error error = std::get<Error>(*reply);
  EXPECT_EQ(error.code, ErrorCode::invalid_field);
  EXPECT_EQ(error.ref, "run");
  EXPECT_NE(error.message.find("another client key"), std::string::npos) << error.message;
  intruder.send(test::make_snapshot("job-a", 5, 1));  // so it has no session to poison the run with
  reply = intruder.recv(5s);
  ASSERT_TRUE(reply && std::holds_alternative<Error>(*reply));
  EXPECT_EQ(std::get<Error>(*reply).code, ErrorCode::not_registered);
  EXPECT_EQ(counter(control, "foreign_key_rejected"), 1u);
  EXPECT_EQ(counter(control, "sessions_active"), 1u);

  // The same key on another connection joins (the run's second rank), and the
  // other key opens runs of its own.
  TestClient second_rank(ctx, ep, zmq::socket_type::dealer, keys.as(keys.adapter));
  second_rank.send(make_hello("job-a", 1, 2));
  reply = second_rank.recv(5s);
  ASSERT_TRUE(reply && std::holds_alternative<Welcome>(*reply));
  intruder.send(make_hello("job-b"));
  reply = intruder.recv(5s);
  ASSERT_TRUE(reply && std::holds_alternative<Welcome>(*reply));
  EXPECT_EQ(counter(control, "foreign_key_rejected"), 1u);
  EXPECT_EQ(counter(control, "sessions_active"), 3u);
  EXPECT_EQ(counter(control, "runs_active"), 2u);
}

TEST(Curve, KeyFilesAreCheckedWithTheirLine) {
  KeyRing keys;
  write(keys.dir / "bad.allow", "# fine\n" + keys.adapter.public_key + "\nnot-a-key\n", 0644);
  try {
    read_allowed_keys_file(keys.dir / "bad.allow");
    FAIL() << "a malformed key was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.allow:3"), std::string::npos) << e.what();
  }
  write(keys.dir / "secret.allow", format_secret_key_file(keys.adapter), 0644);
  EXPECT_THROW(read_allowed_keys_file(keys.dir / "secret.allow"), std::runtime_error);
  const auto both = read_secret_key_file(keys.dir / "orbitd.key");
  EXPECT_EQ(both.public_key, keys.server.public_key);
  EXPECT_EQ(both.secret_key, keys.server.secret_key);
  EXPECT_EQ(read_allowed_keys_file(keys.dir / "adapters.allow"), std::vector<std::string>{keys.adapter.public_key});
}

}  // namespace
}  // namespace orbit
