// SPDX-License-Identifier: Apache-2.0
// The LibTorch adapter: its probes against spectra known in closed form, and the
// whole adapter against a real orbitd process ($ORBITD, set by ctest) driving a
// real small torch model — hello/welcome, snapshots with spectra, a forced burn
// changing the lr at its step and expiring, rollback, and the absent or dead daemon.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <msgpack.hpp>
#include <torch/torch.h>
#include <zmq.hpp>

#include "adapters/libtorch/libtorch_orbit.hpp"
#include "adapters/libtorch/spectral_probes.hpp"
#include "protocol/codec.hpp"
#include "support/control_client.hpp"
#include "support/orbitd_process.hpp"

namespace orbit {
namespace {

using namespace std::chrono_literals;

// ---- a real small model and its training step ----------------------------------

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl()
      : fc1(register_module("fc1", torch::nn::Linear(8, 32))),
        bn(register_module("bn", torch::nn::BatchNorm1d(32))),
        fc2(register_module("fc2", torch::nn::Linear(32, 4))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::relu(bn(fc1(x)))); }
  torch::nn::Linear fc1;
  torch::nn::BatchNorm1d bn;  // buffers (running stats) for the rollback test
  torch::nn::Linear fc2;
};
TORCH_MODULE(TinyNet);

// Owns model, optimizer and data; the lr schedule is the trainer's own and is
// written straight into the optimizer's options before the forward pass.
struct Trainer {
  explicit Trainer(std::uint64_t seed, double lr = 0.01, bool sgd = false) {
    torch::manual_seed(seed);
    model = TinyNet();
    if (sgd)
      optimizer = std::make_unique<torch::optim::SGD>(model->parameters(), torch::optim::SGDOptions(lr).momentum(0.9));
    else
      optimizer = std::make_unique<torch::optim::AdamW>(
          model->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.0));
    data = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
    target = torch::randn({8, 4}, data);
  }

  // One training step; returns the loss. `lr_in_effect` records what
  // optimizer.step() actually used.
  double train_step(std::int64_t step, LibTorchOrbit* orbit, std::function<double(std::int64_t)> schedule = {},
                    std::vector<double>* step_seconds = nullptr) {
    if (schedule)
      for (auto& g : optimizer->param_groups()) g.options().set_lr(schedule(step));
    auto x = torch::randn({16, 8}, data);
    auto y = x.matmul(target);
    auto loss = torch::mse_loss(model->forward(x), y);
    optimizer->zero_grad();
    loss.backward();
    lr_in_effect.push_back(optimizer->param_groups()[0].options().get_lr());
    optimizer->step();
    const double value = loss.item<double>();
    if (orbit) {
      const auto t0 = std::chrono::steady_clock::now();
      orbit->step(step, value);
      if (step_seconds)
        step_seconds->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return value;
  }

  TinyNet model{nullptr};
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  at::Generator data;
  torch::Tensor target;
  std::vector<double> lr_in_effect;
};

std::vector<torch::Tensor> state_tensors(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  for (auto& b : m.buffers()) out.push_back(b.detach().clone());
  return out;
}

std::vector<torch::Tensor> adam_moments(torch::optim::Optimizer& opt) {
  std::vector<torch::Tensor> out;
  for (auto& p : opt.param_groups()[0].params()) {
    auto& s = static_cast<torch::optim::AdamWParamState&>(
        *opt.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())));
    out.push_back(s.exp_avg().clone());
    out.push_back(s.exp_avg_sq().clone());
    out.push_back(torch::tensor(static_cast<double>(s.step())));
  }
  return out;
}

bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

// A TCP port on loopback that nothing listens on.
std::string unused_endpoint() {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind("tcp://127.0.0.1:*");
  std::string ep = s.get(zmq::sockopt::last_endpoint);
  s.close();
  return ep;
}

// ---- orbitd's control endpoint -------------------------------------------------

using Field = test::ControlField;
using Control = test::ControlClient;
using test::map_get;

std::uint64_t counter(Control& control, const std::string& name) { return test::status_counter(control, name); }

// Forces a burn; returns the burn as orbitd will send it.
Burn force_burn(Control& control, std::map<std::string, Field> fields) {
  fields["cmd"] = std::string("burn");
  auto h = control.call(fields);
  const auto* ok = map_get(h.get(), "ok");
  if (!ok || !ok->as<bool>()) {
    const auto* err = map_get(h.get(), "error");
    throw std::runtime_error("burn refused: " + (err ? err->as<std::string>() : std::string("?")));
  }
  const auto* b = map_get(h.get(), "burn");
  if (!b) throw std::runtime_error("burn reply has no burn");
  msgpack::sbuffer buf;
  msgpack::pack(buf, *b);
  DecodeResult r = decode(std::string_view(buf.data(), buf.size()));
  if (!r.ok()) throw std::runtime_error("burn reply does not decode: " + r.error.message);
  return std::get<Burn>(*r.message);
}

// Lock-step helper: polls until every snapshot sent has its answer.
bool wait_answered(LibTorchOrbit& orbit, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    orbit.poll();
    if (orbit.unanswered() == 0) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
}

template <class Predicate>
bool eventually(Predicate p, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!p()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// ---- probes --------------------------------------------------------------------

torch::Tensor random_orthogonal(std::int64_t n, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return std::get<0>(torch::linalg_qr(torch::randn({n, n}, gen, torch::kFloat64)));
}

TEST(SpectralProbes, WeightSingularValuesMatchAKnownSpectrum) {
  const std::vector<double> s = {5.0, 3.0, 2.0, 1.0, 0.5, 0.25};
  auto u = random_orthogonal(6, 1), v = random_orthogonal(6, 2);
  auto w = u.matmul(torch::diag(torch::tensor(s, torch::kFloat64))).matmul(v.t()).to(torch::kFloat32);
  auto got = weight_singular_values(w, {.top_k = 4});
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(got[i], s[i], 1e-5) << i;
}

TEST(SpectralProbes, RandomizedTopKOfALargeMatrixMatchesTheExactOneAndLeavesTheGlobalRngAlone) {
  // 600 x 400 with a decaying spectrum: the randomized path (smaller side > 256).
  const std::int64_t m = 600, n = 400;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto u = std::get<0>(torch::linalg_qr(torch::randn({m, n}, gen, torch::kFloat64)));
  auto v = random_orthogonal(n, 8);
  auto s = torch::pow(0.8, torch::arange(n, torch::kFloat64)) * 10.0;
  auto w = u.matmul(torch::diag(s)).matmul(v.t()).to(torch::kFloat32);

  torch::manual_seed(123);
  auto expected_next = torch::randn({4});
  torch::manual_seed(123);
  auto got = weight_singular_values(w, {.top_k = 8});
  auto next = torch::randn({4});
  EXPECT_TRUE(torch::equal(next, expected_next)) << "the probe consumed the global RNG";

  ASSERT_EQ(got.size(), 8u);
  for (std::int64_t i = 0; i < 8; ++i) EXPECT_NEAR(got[i], s[i].item<double>(), 1e-3 * s[0].item<double>()) << i;
}

TEST(SpectralProbes, HiddenCovarianceEigenvaluesOfAKnownCloud) {
  // Rows ±a·e1 and ±b·e2 (mean 0): covariance diag(2a²/3, 2b²/3, 0), sorted down.
  const double a = 3.0, b = 1.0;
  auto x = torch::tensor({a, 0.0, 0.0, -a, 0.0, 0.0, 0.0, b, 0.0, 0.0, -b, 0.0}).view({1, 4, 3});
  auto got = hidden_covariance_eigenvalues(x);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NEAR(got[0], 2 * a * a / 3, 1e-6);
  EXPECT_NEAR(got[1], 2 * b * b / 3, 1e-6);
  EXPECT_NEAR(got[2], 0.0, 1e-6);
}

TEST(SpectralProbes, AttentionEntropyAndSpectrumOfCausalUniformAttention) {
  // Row i attends uniformly to positions 0..i: entropy ln(i+1).
  const std::int64_t t = 8;
  auto p = torch::tril(torch::ones({t, t}));
  p = p / p.sum(-1, true);
  auto probs = p.expand({2, 3, t, t});
  auto got = attention_spectrum(probs);
  double expected = 0.0;
  for (std::int64_t i = 0; i < t; ++i) expected += std::log(double(i + 1));
  EXPECT_NEAR(got.entropy, expected / t, 1e-6);
  auto exact = torch::linalg_svdvals(p);
  ASSERT_EQ(got.singular_values.size(), static_cast<std::size_t>(t));
  for (std::int64_t i = 0; i < t; ++i) EXPECT_NEAR(got.singular_values[i], exact[i].item<double>(), 1e-5);

  // Fully collapsed attention (every row on token 0): entropy 0, one singular value.
  auto collapsed = torch::zeros({t, t});
  collapsed.index_put_({torch::indexing::Slice(), 0}, 1.0);
  auto c = attention_spectrum(collapsed);
  EXPECT_NEAR(c.entropy, 0.0, 1e-9);
  EXPECT_NEAR(c.singular_values[0], std::sqrt(double(t)), 1e-5);
  EXPECT_NEAR(c.singular_values[1], 0.0, 1e-5);
}

TEST(CheckpointRing, ThinsOutKeepingTheOldestAndTheNewest) {
  auto w = torch::zeros({3});
  CheckpointTargets targets{{w}, {}, nullptr};
  CheckpointRing ring(4);
  for (std::int64_t step = 0; step <= 100; step += 10) {
    w.fill_(static_cast<double>(step));
    ring.save(step, targets);
    ASSERT_LE(ring.size(), 4u);
  }
  const auto steps = ring.steps();
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps.front(), 0);
  EXPECT_EQ(steps.back(), 100);
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
  // Denser near the present: the newest gap is no wider than the oldest.
  EXPECT_LE(steps[3] - steps[2], steps[1] - steps[0]);
  EXPECT_EQ(ring.restore(5, targets), 0);
  EXPECT_TRUE(torch::equal(w, torch::zeros({3})));
  EXPECT_EQ(ring.steps(), std::vector<std::int64_t>{0});  // newer ones were the abandoned path
}

// ---- fail-open without a daemon ------------------------------------------------

TEST(LibTorchOrbitFailOpen, AbsentDaemonCostsMicrosecondsAndLeavesTrainingUnchanged) {
  Trainer plain(3), controlled(3);
  LibTorchOrbit orbit({.endpoint = unused_endpoint(), .run = "absent"});
  orbit.attach(*controlled.model, *controlled.optimizer);
  auto schedule = [](std::int64_t s) { return 0.01 / (1.0 + 0.01 * double(s)); };
  std::vector<double> seconds;
  for (std::int64_t step = 0; step < 1000; ++step) {
    plain.train_step(step, nullptr, schedule);
    controlled.train_step(step, &orbit, schedule, &seconds);
  }
  const double p50 = percentile(seconds, 0.5), p99 = percentile(seconds, 0.99);
  std::printf("absent daemon: orbit.step p50 %.1f us, p99 %.1f us over %zu steps\n", p50 * 1e6, p99 * 1e6,
              seconds.size());
  RecordProperty("step_p50_us", std::to_string(p50 * 1e6));
  RecordProperty("step_p99_us", std::to_string(p99 * 1e6));
  EXPECT_LT(p99, 1e-3);
  EXPECT_FALSE(orbit.connected());
  EXPECT_EQ(orbit.counters().snapshots_sent, 0u);
  EXPECT_EQ(orbit.internal_errors(), 0u) << orbit.last_internal_error();
  // Bit for bit the same training, lr schedule included.
  EXPECT_EQ(plain.lr_in_effect, controlled.lr_in_effect);
  EXPECT_TRUE(all_equal(state_tensors(*plain.model), state_tensors(*controlled.model)));
}

// ---- against a real orbitd -----------------------------------------------------

TEST(LiveOrbitdDefaults, HelloWelcomeThenEverySnapshotWithSpectraGetsItsAnswer) {
  // orbitd with its default config: the controller reads the spectra and may act.
  test::OrbitdProcess orbitd;
  zmq::context_t ctx;
  Control control(ctx, orbitd.endpoints().control);
  Trainer t(5);
  LibTorchOrbit orbit({.endpoint = orbitd.endpoints().adapters, .run = "lt-hello", .probe_every = 1});
  orbit.attach(*t.model, *t.optimizer);
  ASSERT_TRUE(orbit.connect(10s)) << orbitd.log();
  EXPECT_EQ(orbit.counters().welcomes, 1u);
  // Hidden states spread evenly over 4 of 16 directions: covariance eigenvalues
  // (c, c, c, c, 0, ...), effective rank exactly 4 — what orbitd must compute back.
  auto hidden = torch::zeros({8, 16});
  for (std::int64_t k = 0; k < 4; ++k) {
    hidden[2 * k][k] = 1.0;
    hidden[2 * k + 1][k] = -1.0;
  }
  const std::int64_t steps = 12;
  for (std::int64_t step = 0; step < steps; ++step) {
    t.train_step(step, nullptr);
    ASSERT_TRUE(orbit.probe_due(step));
    orbit.probe_weights(*t.model);
    orbit.probe_hidden("0", hidden);
    orbit.probe_attention("0", torch::softmax(torch::randn({2, 4, 8, 8}), -1));
    orbit.step(step, 1.0 / double(step + 1));
  }
  ASSERT_TRUE(wait_answered(orbit)) << orbitd.log();
  const auto c = orbit.counters();
  EXPECT_EQ(c.snapshots_sent, static_cast<std::uint64_t>(steps));
  EXPECT_EQ(c.states + c.burns, static_cast<std::uint64_t>(steps));  // one answer each
  EXPECT_EQ(c.errors, 0u);
  EXPECT_EQ(c.dropped, 0u);
  ASSERT_TRUE(orbit.last_state());
  EXPECT_EQ(orbit.last_state()->step, steps - 1);
  EXPECT_EQ(orbit.last_state()->run, "lt-hello");
  // The spectra arrived intact and orbitd computed its metrics from them.
  const auto& metrics = orbit.last_state()->metrics;
  ASSERT_TRUE(metrics.count("hidden.0.effective_rank"));
  EXPECT_NEAR(metrics.at("hidden.0.effective_rank"), 4.0, 1e-3);
  for (const char* key : {"attn.0.entropy", "weight.fc1.weight.entropy", "weight.fc2.weight.entropy"})
    EXPECT_TRUE(metrics.count(key)) << key;
  EXPECT_EQ(counter(control, "snapshots"), static_cast<std::uint64_t>(steps));
  EXPECT_EQ(counter(control, "error_invalid_field") + counter(control, "error_too_large"), 0u);
  EXPECT_EQ(orbit.internal_errors(), 0u) << orbit.last_internal_error();
}

// These tests check the adapter's mechanics, so every burn in them is forced
// through the control endpoint: the controller is given nothing to act on (no
// spectrum feeds its metrics, z-scores never leave warm-up) and stays quiet
// whatever the tiny model's loss does. The controller has its own tests.
std::string inert_controller_config(const std::string& extra = "") {
  return extra +
         "[controller.signals]\n"
         "spectra = [\"inert.\"]\n"
         "signature_spectra = [\"inert.\"]\n"
         "[controller.filters]\n"
         "warmup_steps = 1000000\n";
}

// A temporary directory holding an orbitd config file.
struct ConfigFile {
  explicit ConfigFile(const std::string& text) : dir(test::make_temp_dir("lt-config")) {
    std::ofstream(path()) << text;
  }
  ~ConfigFile() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string path() const { return (dir / "orbitd.toml").string(); }
  std::filesystem::path dir;
};

class LiveOrbitd : public ::testing::Test {
 protected:
  void SetUp() override {
    orbitd_ = std::make_unique<test::OrbitdProcess>(std::vector<std::string>{"--config", config_.path()});
    control_ = std::make_unique<Control>(ctx_, orbitd_->endpoints().control);
  }
  const std::string& endpoint() const { return orbitd_->endpoints().adapters; }

  ConfigFile config_{inert_controller_config()};
  zmq::context_t ctx_;
  std::unique_ptr<test::OrbitdProcess> orbitd_;
  std::unique_ptr<Control> control_;
};

TEST_F(LiveOrbitd, ForcedBurnScalesTheTrainersLrFromApplyAtStepAndExpiryHandsItBack) {
  Trainer t(6);
  LibTorchOrbit orbit({.endpoint = endpoint(), .run = "lt-burn"});
  orbit.attach(*t.model, *t.optimizer);
  ASSERT_TRUE(orbit.connect(10s)) << orbitd_->log();
  auto schedule = [](std::int64_t s) { return 0.02 * (1.0 - double(s) / 100.0); };

  std::int64_t step = 0;
  for (; step < 5; ++step) {
    t.train_step(step, &orbit, schedule);
    ASSERT_TRUE(wait_answered(orbit));
  }
  const std::int64_t expires = 6;
  const Burn sent = force_burn(*control_, {{"run", std::string("lt-burn")},
                                            {"lr_scale", 0.5},
                                            {"expires_after_steps", expires},
                                            {"reason", std::string("test")}});
  ASSERT_LT(sent.lr_scale, 1.0);  // orbitd may clamp the requested 0.5 to its bounds
  const std::int64_t end = sent.apply_at_step + expires + 4;
  for (; step < end; ++step) {
    t.train_step(step, &orbit, schedule);
    ASSERT_TRUE(wait_answered(orbit));
  }
  ASSERT_EQ(orbit.applied_burns().size(), 1u);
  const BurnRecord& r = orbit.applied_burns()[0];
  EXPECT_EQ(r.seq, sent.seq);
  EXPECT_EQ(r.step, sent.apply_at_step) << "lock-step delivery leaves time to apply on schedule";
  EXPECT_FALSE(r.late);
  EXPECT_TRUE(r.acked);
  EXPECT_DOUBLE_EQ(r.lr, schedule(r.step) * sent.lr_scale);
  for (std::int64_t s = 0; s < end; ++s) {
    const bool burning = s >= sent.apply_at_step && s < sent.apply_at_step + expires;
    EXPECT_DOUBLE_EQ(t.lr_in_effect[s], schedule(s) * (burning ? sent.lr_scale : 1.0)) << "step " << s;
  }
  EXPECT_EQ(orbit.lr_scale(), 1.0);
  EXPECT_TRUE(eventually([&] { return counter(*control_, "acks") == 1; })) << orbitd_->log();
}

TEST(LiveOrbitdSparseSnapshots, BurnArrivingAfterStepIsAppliedByTheGradientHookBeforeOptimizerStep) {
  // With snapshot_every = 2, orbitd's newest step lags the trainer by one, so a
  // burn forced after odd step s is due at s + 1 and arrives after step(s)
  // returned: only the gradient hook of step s + 1 can apply it in time. The
  // trainer sets its lr once, so a compounding scale would show too.
  ConfigFile config(inert_controller_config("[daemon]\nsnapshot_every = 2\n"));
  test::OrbitdProcess orbitd({"--config", config.path()});
  zmq::context_t ctx;
  Control control(ctx, orbitd.endpoints().control);

  Trainer t(7);
  LibTorchOrbit orbit({.endpoint = orbitd.endpoints().adapters, .run = "lt-hook"});
  orbit.attach(*t.model, *t.optimizer);
  ASSERT_TRUE(orbit.connect(10s));
  std::int64_t step = 0;
  for (; step < 6; ++step) {
    t.train_step(step, &orbit);
    ASSERT_TRUE(wait_answered(orbit));
  }
  EXPECT_EQ(orbit.counters().snapshots_sent, 3u);  // steps 0, 2, 4
  const Burn sent = force_burn(control, {{"run", std::string("lt-hook")},
                                          {"lr_scale", 0.25},
                                          {"expires_after_steps", std::int64_t{100}}});
  ASSERT_EQ(sent.apply_at_step, step) << "newest step 4 + apply lead 2";
  std::this_thread::sleep_for(200ms);  // the burn arrives; nothing reads it before the next backward
  for (; step < 10; ++step) t.train_step(step, &orbit);
  ASSERT_EQ(orbit.applied_burns().size(), 1u) << orbitd.log();
  const BurnRecord& r = orbit.applied_burns()[0];
  EXPECT_EQ(r.step, sent.apply_at_step);
  EXPECT_FALSE(r.late);
  ASSERT_LT(sent.lr_scale, 1.0);
  for (std::int64_t s = 0; s < step; ++s)
    EXPECT_DOUBLE_EQ(t.lr_in_effect[s], s >= sent.apply_at_step ? 0.01 * sent.lr_scale : 0.01) << "step " << s;
}

TEST_F(LiveOrbitd, ChainableSchedulerSteppedThroughTheAdapterIsScaledNotCompounded) {
  // SGD + StepLR: StepLR multiplies whatever lr it finds, so it must see the
  // trainer's own lr, never the scaled one.
  Trainer t(10, 0.1, /*sgd=*/true);
  torch::optim::StepLR scheduler(*t.optimizer, /*step_size=*/3, /*gamma=*/0.5);
  LibTorchOrbit orbit({.endpoint = endpoint(), .run = "lt-steplr"});
  orbit.attach(*t.model, *t.optimizer);
  ASSERT_TRUE(orbit.connect(10s));
  auto one_step = [&](std::int64_t step) {
    t.train_step(step, &orbit);
    orbit.step_scheduler(scheduler);
    ASSERT_TRUE(wait_answered(orbit));
  };
  std::int64_t step = 0;
  for (; step < 4; ++step) one_step(step);
  const std::int64_t expires = 7;
  const Burn sent = force_burn(*control_, {{"run", std::string("lt-steplr")},
                                            {"lr_scale", 0.5},
                                            {"expires_after_steps", expires}});
  ASSERT_LT(sent.lr_scale, 1.0);
  for (; step < sent.apply_at_step + expires + 5; ++step) one_step(step);
  ASSERT_EQ(orbit.applied_burns().size(), 1u);
  // The same trainer and scheduler without Orbit give the reference schedule.
  Trainer reference(10, 0.1, /*sgd=*/true);
  torch::optim::StepLR reference_scheduler(*reference.optimizer, 3, 0.5);
  for (std::int64_t s = 0; s < step; ++s) {
    reference.train_step(s, nullptr);
    reference_scheduler.step();
  }
  ASSERT_LT(reference.lr_in_effect.back(), reference.lr_in_effect.front());  // it did decay
  for (std::int64_t s = 0; s < step; ++s) {
    const bool burning = s >= sent.apply_at_step && s < sent.apply_at_step + expires;
    EXPECT_DOUBLE_EQ(t.lr_in_effect[s], reference.lr_in_effect[s] * (burning ? sent.lr_scale : 1.0)) << "step " << s;
  }
}

TEST_F(LiveOrbitd, RollbackRestoresParametersBuffersAndOptimizerStateBitForBit) {
  Trainer t(8);
  LibTorchOrbit orbit({.endpoint = endpoint(), .run = "lt-rollback", .checkpoint_every = 5,
                       .checkpoints_kept = 3});
  orbit.attach(*t.model, *t.optimizer);
  ASSERT_TRUE(orbit.connect(10s));
  std::vector<torch::Tensor> at10_model, at10_adam;
  std::int64_t step = 0;
  for (; step <= 13; ++step) {
    t.train_step(step, &orbit);
    ASSERT_TRUE(wait_answered(orbit));
    if (step == 10) {
      at10_model = state_tensors(*t.model);
      at10_adam = adam_moments(*t.optimizer);
    }
  }
  ASSERT_FALSE(all_equal(state_tensors(*t.model), at10_model));
  ASSERT_EQ(orbit.checkpoints().newest_step(), 10);
  const Burn sent = force_burn(*control_, {{"run", std::string("lt-rollback")},
                                            {"lr_scale", 1.0},
                                            {"expires_after_steps", std::int64_t{5}},
                                            {"rollback_to_step", std::int64_t{12}},
                                            {"skip_batches", std::int64_t{2}}});
  // Step until the rollback has been applied, checking state right after it.
  bool restored = false;
  for (; step < 40 && !restored; ++step) {
    t.train_step(step, &orbit);
    ASSERT_TRUE(wait_answered(orbit));  // poll() applies burns due next step
    if (!orbit.applied_burns().empty()) {
      restored = true;
      EXPECT_TRUE(all_equal(state_tensors(*t.model), at10_model)) << "parameters/buffers not restored";
      EXPECT_TRUE(all_equal(adam_moments(*t.optimizer), at10_adam)) << "optimizer state not restored";
    }
  }
  ASSERT_TRUE(restored) << orbitd_->log();
  const BurnRecord& r = orbit.applied_burns()[0];
  EXPECT_EQ(r.seq, sent.seq);
  ASSERT_TRUE(r.restored_step);
  EXPECT_EQ(*r.restored_step, 10);  // newest checkpoint at or before 12
  EXPECT_EQ(orbit.take_skip_batches(), 2);
  EXPECT_EQ(orbit.take_skip_batches(), 0);
  EXPECT_DOUBLE_EQ(t.optimizer->param_groups()[0].options().get_lr(), 0.01);
  t.train_step(step, &orbit);  // training goes on from the restored state
  EXPECT_TRUE(eventually([&] { return counter(*control_, "acks") == 1; }));
}

TEST_F(LiveOrbitd, DeadDaemonKeepsStepCheapAndARestartedOneTakesControlBack) {
  Trainer t(9);
  const std::string ep = endpoint();
  LibTorchOrbit orbit({.endpoint = ep, .run = "lt-dead", .reply_timeout = 500ms});
  orbit.attach(*t.model, *t.optimizer);
  ASSERT_TRUE(orbit.connect(10s));
  std::int64_t step = 0;
  for (; step < 5; ++step) t.train_step(step, &orbit);
  ASSERT_TRUE(wait_answered(orbit));

  orbitd_->stop(SIGKILL);
  std::vector<double> seconds;
  for (const std::int64_t end = step + 1000; step < end; ++step) t.train_step(step, &orbit, {}, &seconds);
  const double p99 = percentile(seconds, 0.99);
  std::printf("dead daemon: orbit.step p50 %.1f us, p99 %.1f us\n", percentile(seconds, 0.5) * 1e6, p99 * 1e6);
  EXPECT_LT(p99, 1e-3);
  EXPECT_EQ(orbit.internal_errors(), 0u) << orbit.last_internal_error();
  for (double lr : t.lr_in_effect) EXPECT_EQ(lr, 0.01);

  // A new orbitd on the same endpoint: the adapter says hello again by itself.
  test::OrbitdProcess again({"--config", config_.path(), "--endpoint", ep, "--control", "tcp://127.0.0.1:*",
                             "--allow-exposed-control", "--telemetry", "tcp://127.0.0.1:*"},
                            /*default_endpoints=*/false);
  bool back = false;
  for (const std::int64_t end = step + 2000; step < end && !back; ++step) {
    t.train_step(step, &orbit);
    back = orbit.connected() && orbit.counters().welcomes >= 2;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_TRUE(back) << again.log();
  // The new orbitd has seen a snapshot of this run before the burn is forced: a
  // burn forced before that is placed at step 0 + lead, and its 1000 steps would
  // already have expired when it arrives (a flake under load).
  t.train_step(step++, &orbit);
  ASSERT_TRUE(wait_answered(orbit));
  Control control(ctx_, again.endpoints().control);
  const Burn sent = force_burn(control, {{"run", std::string("lt-dead")},
                                         {"lr_scale", 0.5},
                                         {"expires_after_steps", std::int64_t{1000}}});
  for (const std::int64_t end = step + 200; step < end && orbit.applied_burns().empty(); ++step) {
    t.train_step(step, &orbit);
    ASSERT_TRUE(wait_answered(orbit));
  }
  ASSERT_EQ(orbit.applied_burns().size(), 1u) << again.log();
  EXPECT_EQ(orbit.applied_burns()[0].seq, sent.seq);
  EXPECT_DOUBLE_EQ(orbit.lr(), 0.01 * sent.lr_scale);
}

}  // namespace
}  // namespace orbit
