// SPDX-License-Identifier: Apache-2.0
#pragma once
// Orbit for LibTorch training loops:
//
//   orbit::LibTorchOrbit orbit({.endpoint = "tcp://127.0.0.1:7070", .run = "lm-1"});
//   orbit.attach(model, optimizer);
//   for (std::int64_t step = 0; step < steps; ++step) {
//     ... forward, loss.backward(), optimizer.step() ...
//     if (orbit.probe_due(step)) orbit.probe_attention("0", probs);
//     orbit.step(step, loss.item<double>());
//   }
//
// Learning rate. The trainer owns the lr; a burn's lr_scale multiplies it and never
// compounds. The adapter remembers the lr the trainer last set in each param group
// and writes trainer_lr × scale into the group's options. It notices the trainer's
// own writes (options().set_lr(...) before backward) through a gradient hook on one
// parameter and in step(); trainers that set the lr after backward, or use a
// chainable torch::optim::LRScheduler, go through set_lr() / step_scheduler().
//
// Step numbering: step(s) comes after optimizer step s; the burns due at s+1 are
// applied there, so optimizer step apply_at_step runs with the new lr. A burn that
// arrives during the forward pass of step s+1 is still in time: the gradient hook
// reads the socket again and applies lr burns due at s+1 before optimizer.step()
// (burns that roll back wait for step(): parameters cannot change mid-backward).
//
// Fail-open: with orbitd absent, dead or slow, step() sends nothing it cannot queue
// at once, builds no snapshot and takes no checkpoint until a welcome arrives, and
// never throws because of the daemon.
//
// Not thread-safe: call everything from the training thread.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/schedulers/lr_scheduler.h>

#include "adapters/libtorch/adapter_client.hpp"
#include "adapters/libtorch/burn_schedule.hpp"
#include "adapters/libtorch/checkpoint_ring.hpp"
#include "adapters/libtorch/spectral_probes.hpp"

namespace orbit {

struct LibTorchOrbitOptions {
  // Every member has a default initializer, so designated initializers may name any
  // subset without -Wmissing-field-initializers.
  std::string endpoint{};  // empty: $ORBIT_ENDPOINT; neither set: the adapter stays off
  std::string run{};       // 1-128 characters of [A-Za-z0-9._-]
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
  std::vector<std::string> domains{};
  // The trainer samples by domain_weights() (declares the domain_weights actuator).
  bool applies_domain_weights = false;
  // Spectral probes run on snapshot steps that are also multiples of this.
  std::int64_t probe_every = 10;
  // In-memory checkpoints for rollback burns; 0 turns rollback off.
  std::int64_t checkpoint_every = 50;
  std::size_t checkpoints_kept = 8;  // thinned when full: the oldest always stays
  // Gradient norm of the attached parameters on snapshot steps, unless the trainer
  // hands one over with set_grad_norm().
  bool grad_norm = true;
  WeightProbeOptions weight_probe{};
  int send_queue = 64;
  std::chrono::milliseconds hello_retry{500};
  std::chrono::milliseconds heartbeat_every{1000};
  std::chrono::milliseconds reply_timeout{3000};
  // CURVE for a tcp endpoint under orbitd's [security] (AdapterClientOptions):
  // orbitd's public key (Z85 or NAME.pub) and this rank's NAME.key; empty ones take
  // $ORBIT_CURVE_SERVER_KEY / $ORBIT_CURVE_KEY.
  std::string curve_server_key{};
  std::string curve_key_file{};
};

// One applied burn, as acknowledged to the daemon. The ack goes out in the step()
// call of the first step it governs, with the lr that step really ran with.
struct BurnRecord {
  std::int64_t seq = 0;
  std::int64_t step = 0;  // first optimizer step it governs
  bool late = false;
  bool acked = false;
  double lr_scale = 1.0;
  double lr = 0.0;  // lr in effect in param group 0 at `step` (set when acked)
  std::string state;
  std::string basin;
  std::string reason;
  std::optional<std::int64_t> rollback_to_step;
  std::optional<std::int64_t> restored_step;
};

class LibTorchOrbit {
 public:
  explicit LibTorchOrbit(LibTorchOrbitOptions options);
  ~LibTorchOrbit();
  LibTorchOrbit(const LibTorchOrbit&) = delete;
  LibTorchOrbit& operator=(const LibTorchOrbit&) = delete;

  // The optimizer (and model) must outlive the adapter or be detached first.
  // With the model, checkpoints also cover its buffers.
  void attach(torch::optim::Optimizer& optimizer);
  void attach(torch::nn::Module& model, torch::optim::Optimizer& optimizer);
  void detach();

  // Waits up to `timeout` for the daemon's welcome (optional; step() connects
  // on its own). Returns connected().
  bool connect(std::chrono::milliseconds timeout);

  // Reads the daemon's replies now and applies the burns due at the next step
  // (step() does this too). For trainers that wait between steps.
  void poll();

  // Once per training step, after optimizer.step().
  void step(std::int64_t step, double loss);
  void step(std::int64_t step, const torch::Tensor& loss);

  // Extras for the next snapshot (cleared by step()).
  void set_grad_norm(double norm) { grad_norm_ = norm; }
  void set_tokens(std::int64_t tokens) { tokens_ = tokens; }
  void set_domain_loss(const std::string& domain, double loss);
  void set_scalar(const std::string& name, double value) { scalars_[name] = value; }
  void set_loop_rate(double rate) { loop_rate_ = rate; }

  // Probes. Call them only when probe_due(step): they cost real compute. Each
  // stages a spectrum for the snapshot of the next step() call.
  bool probe_due(std::int64_t step) const;
  void probe_weight(const std::string& name, const torch::Tensor& weight);   // "weight.<name>"
  void probe_weights(const torch::nn::Module& model);  // every parameter with 2+ dims
  void probe_hidden(const std::string& layer, const torch::Tensor& hidden);  // "hidden.<layer>"
  // Also stages the scalar "attn_entropy.<layer>".
  void probe_attention(const std::string& layer, const torch::Tensor& probabilities);  // "attn.<layer>"
  void add_spectrum(const std::string& name, std::vector<float> values);

  // The trainer's lr (unscaled). set_lr writes trainer lr × current scale.
  void set_lr(double lr);
  void set_lr(std::size_t group, double lr);
  double trainer_lr(std::size_t group = 0) const;
  double lr(std::size_t group = 0) const;  // in effect: what the optimizer will use
  // Steps a chainable torch scheduler on the unscaled lr, then re-applies the scale.
  void step_scheduler(torch::optim::LRScheduler& scheduler);
  double lr_scale() const { return schedule_.lr_scale(); }

  // Burns.
  const std::vector<BurnRecord>& applied_burns() const { return applied_; }
  const std::optional<AppliedBurn>& active_burn() const { return schedule_.active(); }
  // The governing burn's weights (empty when none, or when it carries none).
  std::map<std::string, double> domain_weights() const;
  std::map<std::string, double> loss_weights() const;
  // Batches a rollback burn asked the trainer to skip; resets the count.
  std::int64_t take_skip_batches() { return std::exchange(skip_batches_, 0); }

  bool enabled() const { return !endpoint_.empty(); }
  bool connected() const { return client_ && client_->registered(); }
  const std::optional<State>& last_state() const;
  AdapterClientCounters counters() const;
  // Snapshots sent in this session still waiting for their answer.
  std::size_t unanswered() const { return client_ ? client_->unanswered() : 0; }
  const CheckpointRing& checkpoints() const { return checkpoints_; }
  // Exceptions caught inside step() (never rethrown): the last one's message.
  std::uint64_t internal_errors() const { return internal_errors_; }
  const std::string& last_internal_error() const { return last_internal_error_; }

 private:
  AdapterClient& client();
  void on_backward();
  void take_burns();
  void reconcile_lr();
  void write_lrs();
  void exchange(std::int64_t step, double loss, double lr_in_effect, double schedule_lr);
  void prepare_step(std::int64_t next_step);
  void send_acks(std::int64_t step, double lr_in_effect);
  void clear_staged();
  std::optional<double> attached_grad_norm() const;

  LibTorchOrbitOptions options_;
  std::string endpoint_;
  std::unique_ptr<AdapterClient> client_;

  torch::optim::Optimizer* optimizer_ = nullptr;
  CheckpointTargets targets_;
  torch::Tensor hooked_;  // the parameter carrying the lr-reconciling gradient hook
  std::optional<unsigned> hook_;
  std::vector<double> trainer_lr_;
  std::vector<double> written_lr_;

  BurnSchedule schedule_;
  CheckpointRing checkpoints_;
  std::vector<BurnRecord> applied_;
  std::size_t acked_ = 0;  // applied_[0, acked_) have been acknowledged
  std::int64_t skip_batches_ = 0;
  std::optional<std::int64_t> next_step_;  // the optimizer step about to run

  std::optional<double> grad_norm_;
  std::optional<std::int64_t> tokens_;
  std::optional<double> loop_rate_;
  std::map<std::string, DomainStats> domains_;
  std::map<std::string, double> scalars_;
  std::map<std::string, std::vector<float>> spectra_;

  std::uint64_t internal_errors_ = 0;
  std::string last_internal_error_;
};

}  // namespace orbit
