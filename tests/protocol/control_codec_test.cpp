// SPDX-License-Identifier: Apache-2.0
// Control endpoint requests through the protocol codec: round trip, and the
// sentences a bad request gets back.
#include <gtest/gtest.h>
#include <limits>

#include "protocol/control.hpp"
#include "raw_msgpack.hpp"

namespace orbit {
namespace {

using detail::F64;
using detail::I;
using detail::M;
using detail::S;

// {"v": 1, "type": "control", ...pairs}
std::string request(detail::Pairs pairs) {
  pairs.insert(pairs.begin(), {"type", S("control")});
  pairs.insert(pairs.begin(), {"v", I(1)});
  return M(pairs);
}

TEST(ControlCodec, EveryCommandRoundTrips) {
  BurnCommand command;
  Burn& burn = command.requested;
  burn.run = "r1";
  burn.lr_scale = 0.25;
  burn.reason = "test";
  burn.expires_after_steps = 50;
  burn.domain_weights = {{"web", 0.7}, {"code", 0.3}};
  burn.loss_weights = {{"phi", 0.01}};
  burn.curriculum_phase = 1;
  burn.rollback_to_step = 100;
  burn.skip_batches = 3;
  const auto back = decode_control(encode_control(command));
  ASSERT_TRUE(back.command) << back.error;
  const Burn& b = std::get<BurnCommand>(*back.command).requested;
  EXPECT_EQ(b.run, "r1");
  EXPECT_EQ(b.lr_scale, 0.25);
  EXPECT_EQ(b.reason, "test");
  EXPECT_EQ(b.expires_after_steps, 50);
  EXPECT_EQ(b.domain_weights, burn.domain_weights);
  EXPECT_EQ(b.loss_weights, burn.loss_weights);
  EXPECT_EQ(b.curriculum_phase, 1);
  EXPECT_EQ(b.rollback_to_step, 100);
  EXPECT_EQ(b.skip_batches, 3);

  const auto mode = decode_control(encode_control(SetModeCommand{Mode::monitor, "r1"}));
  ASSERT_TRUE(mode.command);
  EXPECT_EQ(std::get<SetModeCommand>(*mode.command).mode, Mode::monitor);
  EXPECT_EQ(std::get<SetModeCommand>(*mode.command).run, "r1");
  EXPECT_TRUE(std::holds_alternative<StatusCommand>(*decode_control(encode_control(StatusCommand{})).command));
  EXPECT_TRUE(std::holds_alternative<ReloadCommand>(*decode_control(encode_control(ReloadCommand{})).command));
}

TEST(ControlCodec, BadRequestsAreNamed) {
  auto error_of = [](const std::string& bytes) {
    const auto r = decode_control(bytes);
    EXPECT_FALSE(r.command);
    return r.error;
  };
  EXPECT_EQ(error_of(request({})), "request has no 'cmd' (status, set_mode, burn, reload)");
  EXPECT_EQ(error_of(M({{"v", I(1)}, {"type", S("snapshot")}, {"cmd", S("status")}})),
            "request must have 'type': \"control\"");
  EXPECT_EQ(error_of(request({{"cmd", S("fly")}})), "unknown command 'fly'; known: status, set_mode, burn, reload");
  EXPECT_EQ(error_of(request({{"cmd", S("set_mode")}, {"mode", S("sideways")}})),
            "set_mode needs 'mode': \"active\" or \"monitor\"");
  auto burn = [](const char* key, const std::string& value) {
    return request({{"cmd", S("burn")}, {"run", S("r1")}, {key, value}});
  };
  EXPECT_EQ(error_of(burn("curriculum_phase", I(-1))), "field 'curriculum_phase' must be >= 0, got -1");
  EXPECT_EQ(error_of(burn("lr_scale", F64(-0.5))), "field 'lr_scale' must be a finite number > 0");
  EXPECT_EQ(error_of(burn("skip_batches", F64(1.5))), "field 'skip_batches' must be an integer, got a float");
  EXPECT_EQ(error_of(burn("domain_weights", M({{"web", F64(-0.1)}}))),
            "field 'domain_weights.web' must be a finite number >= 0");
  EXPECT_EQ(error_of(burn("loss_weights", M({{"phi", F64(std::numeric_limits<double>::infinity())}}))),
            "field 'loss_weights.phi' must be finite");
  EXPECT_EQ(error_of(request({{"cmd", S("burn")}, {"run", S("a b")}})),
            "field 'run' must be 1-128 characters of [A-Za-z0-9._-]");
}

TEST(ControlCodec, ErrorReplyIsAControlReply) {
  const std::string bytes = encode_control_error("no run named 'x'");
  EXPECT_EQ(bytes, M({{"v", I(1)}, {"type", S("control_reply")}, {"ok", detail::kFalse},
                      {"error", S("no run named 'x'")}}));
}

}  // namespace
}  // namespace orbit
