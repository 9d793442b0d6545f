// SPDX-License-Identifier: Apache-2.0
// Authorization of the control endpoint on ipc, against a real orbitd: the socket
// file is private, and a peer of another user is refused by its credentials
// (SO_PEERCRED, checked by the ZAP handler) even where it can reach the socket.

#include <filesystem>

#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "support/control_client.hpp"
#include "support/orbitd_process.hpp"

namespace orbit {
namespace {

using test::ControlClient;
using test::OrbitdProcess;

std::uint64_t counter(ControlClient& control, const std::string& name) { return test::status_counter(control, name); }

TEST(Authz, TheIpcControlSocketFileIsPrivate) {
  const auto dir = test::make_temp_dir("authz");
  OrbitdProcess orbitd({"--endpoint", "ipc://" + (dir / "orbitd.sock").string()}, /*default_endpoints=*/false);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "control.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  zmq::context_t ctx;
  ControlClient control(ctx, orbitd.endpoints().control);
  EXPECT_EQ(counter(control, "auth_accepted_control"), 1u);  // the owner, let in by its user id
  EXPECT_EQ(counter(control, "auth_refused_control"), 0u);
  std::filesystem::remove_all(dir);
}

// In a child process running as `uid`: sends `status` to `endpoint`; exits 0 when
// no reply came within the timeout, 1 when one came, 2 when it could not switch user.
int status_reply_as(uid_t uid, const std::string& endpoint) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(uid) != 0 || ::setuid(uid) != 0) std::_Exit(2);
    zmq::context_t ctx;
    ControlClient control(ctx, endpoint, {}, 1500);
    try {
      control.call({{"cmd", std::string("status")}});
    } catch (const std::exception&) {
      std::_Exit(0);
    }
    std::_Exit(1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

// An abstract ipc socket has no directory to keep others out (hence
// --allow-exposed-control): the peer's user id still decides.
TEST(Authz, AnotherUserIsRefusedOnTheIpcControlSocket) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
  const auto dir = test::make_temp_dir("authz");
  const std::string control_ep = "ipc://@orbit-authz-" + std::to_string(::getpid());
  OrbitdProcess orbitd(
      {"--endpoint", "ipc://" + (dir / "orbitd.sock").string(), "--control", control_ep, "--allow-exposed-control"},
      /*default_endpoints=*/false);
  EXPECT_EQ(status_reply_as(65534, control_ep), 0) << "a user other than orbitd's got a control reply";
  zmq::context_t ctx;
  ControlClient control(ctx, orbitd.endpoints().control);
  EXPECT_GE(counter(control, "auth_refused_control"), 1u);
  EXPECT_GE(counter(control, "auth_accepted_control"), 1u);
  EXPECT_EQ(counter(control, "control_requests"), 3u) << "only the owner's requests reached the daemon";
  EXPECT_NE(orbitd.log().find("auth: refused a control client"), std::string::npos) << orbitd.log();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace orbit
