// SPDX-License-Identifier: Apache-2.0
#include "adapters/libtorch/libtorch_orbit.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <torch/torch.h>

#include "protocol/codec.hpp"

namespace orbit {
namespace {

// DecodeLimits::max_spectra: the daemon refuses snapshots with more.
constexpr std::size_t kMaxSpectra = 64;

double unix_seconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

LibTorchOrbit::LibTorchOrbit(LibTorchOrbitOptions options)
    : options_(std::move(options)), checkpoints_(options_.checkpoints_kept) {
  endpoint_ = options_.endpoint;
  if (endpoint_.empty()) {
    if (const char* env = std::getenv("ORBIT_ENDPOINT")) endpoint_ = env;
  }
  if (!enabled()) return;
  if (!valid_run_id(options_.run))
    throw std::invalid_argument("orbit: run id '" + options_.run +
                                "' must be 1-128 characters of [A-Za-z0-9._-]");
  if (options_.rank < 0 || options_.world_size < 1 || options_.rank >= options_.world_size)
    throw std::invalid_argument("orbit: rank must be in [0, world_size)");
  if (options_.probe_every < 1) options_.probe_every = 1;
}

LibTorchOrbit::~LibTorchOrbit() { detach(); }

AdapterClient& LibTorchOrbit::client() {
  if (!client_) {
    AdapterClientOptions c;
    c.endpoint = endpoint_;
    c.run = options_.run;
    c.rank = options_.rank;
    c.world_size = options_.world_size;
    c.domains = options_.domains;
    c.actuators.clear();
    if (optimizer_) {
      c.actuators.push_back("lr");
      if (options_.checkpoint_every > 0 && options_.checkpoints_kept > 0) c.actuators.push_back("rollback");
      c.base_lr = trainer_lr_.at(0);
    }
    if (options_.applies_domain_weights) c.actuators.push_back("domain_weights");
    c.send_queue = options_.send_queue;
    c.hello_retry = options_.hello_retry;
    c.heartbeat_every = options_.heartbeat_every;
    c.reply_timeout = options_.reply_timeout;
    c.curve_server_key = options_.curve_server_key;
    c.curve_key_file = options_.curve_key_file;
    client_ = std::make_unique<AdapterClient>(std::move(c));
  }
  return *client_;
}

void LibTorchOrbit::attach(torch::optim::Optimizer& optimizer) {
  detach();
  std::vector<double> lrs;
  for (auto& group : optimizer.param_groups()) {
    try {
      lrs.push_back(group.options().get_lr());
    } catch (const c10::Error&) {
      throw std::invalid_argument(
          "orbit: this optimizer's options do not expose an lr (get_lr/set_lr)");
    }
  }
  if (lrs.empty()) throw std::invalid_argument("orbit: the optimizer has no param groups");
  optimizer_ = &optimizer;
  trainer_lr_ = lrs;
  written_lr_ = std::move(lrs);
  targets_ = {};
  targets_.optimizer = &optimizer;
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params()) targets_.parameters.push_back(p);
  // The trainer may set the lr directly at the start of a step; by backward time it
  // has, so the hook re-applies the scale before optimizer.step() reads it.
  for (auto& p : optimizer.param_groups()[0].params()) {
    if (!p.requires_grad()) continue;
    hooked_ = p;
    hook_ = p.register_hook([this](torch::Tensor) { on_backward(); });
    break;
  }
}

void LibTorchOrbit::attach(torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  attach(optimizer);
  // Checkpoints follow the module's own parameter and buffer order.
  targets_.parameters.clear();
  for (auto& p : model.parameters(/*recurse=*/true)) targets_.parameters.push_back(p);
  for (auto& b : model.buffers(/*recurse=*/true)) targets_.buffers.push_back(b);
}

void LibTorchOrbit::detach() {
  if (hook_ && hooked_.defined()) hooked_.remove_hook(*hook_);
  hook_.reset();
  hooked_ = torch::Tensor();
  if (optimizer_) {
    // Hand the optimizer back with the trainer's own lr.
    auto& groups = optimizer_->param_groups();
    for (std::size_t g = 0; g < groups.size() && g < trainer_lr_.size(); ++g) {
      if (groups[g].options().get_lr() == written_lr_[g]) groups[g].options().set_lr(trainer_lr_[g]);
    }
  }
  optimizer_ = nullptr;
  targets_ = {};
  trainer_lr_.clear();
  written_lr_.clear();
  checkpoints_.clear();
}

bool LibTorchOrbit::connect(std::chrono::milliseconds timeout) {
  if (!enabled()) return false;
  try {
    return client().wait_registered(timeout);
  } catch (const std::exception& e) {
    ++internal_errors_;
    last_internal_error_ = e.what();
    return false;
  }
}

void LibTorchOrbit::take_burns() {
  AdapterClient& c = client();
  c.poll();
  for (auto& burn : c.take_burns()) schedule_.add(std::move(burn));
}

void LibTorchOrbit::poll() {
  if (!enabled()) return;
  try {
    reconcile_lr();
    take_burns();
    if (next_step_) prepare_step(*next_step_);
  } catch (const std::exception& e) {
    ++internal_errors_;
    last_internal_error_ = e.what();
  }
}

void LibTorchOrbit::on_backward() {
  try {
    reconcile_lr();
    if (!enabled() || !client_ || !next_step_) return;
    take_burns();
    if (!schedule_.rollback_due(*next_step_)) prepare_step(*next_step_);
  } catch (const std::exception& e) {
    ++internal_errors_;
    last_internal_error_ = e.what();
  }
}

void LibTorchOrbit::reconcile_lr() {
  if (!optimizer_) return;
  auto& groups = optimizer_->param_groups();
  const double scale = schedule_.lr_scale();
  for (std::size_t g = 0; g < groups.size() && g < trainer_lr_.size(); ++g) {
    auto& options = groups[g].options();
    const double current = options.get_lr();
    if (current != written_lr_[g]) trainer_lr_[g] = current;  // the trainer set a new lr
    const double wanted = trainer_lr_[g] * scale;
    if (wanted != current) options.set_lr(wanted);
    written_lr_[g] = wanted;
  }
}

void LibTorchOrbit::write_lrs() {
  if (!optimizer_) return;
  auto& groups = optimizer_->param_groups();
  const double scale = schedule_.lr_scale();
  for (std::size_t g = 0; g < groups.size() && g < trainer_lr_.size(); ++g) {
    written_lr_[g] = trainer_lr_[g] * scale;
    groups[g].options().set_lr(written_lr_[g]);
  }
}

void LibTorchOrbit::set_lr(double lr) {
  for (std::size_t g = 0; g < trainer_lr_.size(); ++g) set_lr(g, lr);
}

void LibTorchOrbit::set_lr(std::size_t group, double lr) {
  if (!optimizer_) return;
  reconcile_lr();
  trainer_lr_.at(group) = lr;
  written_lr_[group] = lr * schedule_.lr_scale();
  optimizer_->param_groups()[group].options().set_lr(written_lr_[group]);
}

double LibTorchOrbit::trainer_lr(std::size_t group) const {
  return group < trainer_lr_.size() ? trainer_lr_[group] : 0.0;
}

double LibTorchOrbit::lr(std::size_t group) const {
  if (!optimizer_ || group >= optimizer_->param_groups().size()) return 0.0;
  return optimizer_->param_groups()[group].options().get_lr();
}

void LibTorchOrbit::step_scheduler(torch::optim::LRScheduler& scheduler) {
  if (!optimizer_) {
    scheduler.step();
    return;
  }
  reconcile_lr();
  // Chainable schedulers read the current lr: let them see the trainer's own.
  auto& groups = optimizer_->param_groups();
  for (std::size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(trainer_lr_[g]);
  scheduler.step();
  for (std::size_t g = 0; g < groups.size(); ++g) trainer_lr_[g] = groups[g].options().get_lr();
  write_lrs();
}

void LibTorchOrbit::set_domain_loss(const std::string& domain, double loss) {
  domains_[domain].loss = loss;
}

bool LibTorchOrbit::probe_due(std::int64_t step) const {
  if (!connected()) return false;
  const std::int64_t every = std::max<std::int64_t>(client_->welcome()->snapshot_every, 1);
  return step % every == 0 && step % options_.probe_every == 0;
}

void LibTorchOrbit::add_spectrum(const std::string& name, std::vector<float> values) {
  if (spectra_.size() >= kMaxSpectra && !spectra_.count(name)) return;
  spectra_[name] = std::move(values);
}

void LibTorchOrbit::probe_weight(const std::string& name, const torch::Tensor& weight) {
  if (!connected()) return;
  try {
    add_spectrum("weight." + name, weight_singular_values(weight, options_.weight_probe));
  } catch (const std::exception& e) {
    ++internal_errors_;
    last_internal_error_ = e.what();
  }
}

void LibTorchOrbit::probe_weights(const torch::nn::Module& model) {
  if (!connected()) return;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    if (item.value().dim() >= 2) probe_weight(item.key(), item.value());
  }
}

void LibTorchOrbit::probe_hidden(const std::string& layer, const torch::Tensor& hidden) {
  if (!connected()) return;
  try {
    add_spectrum("hidden." + layer, hidden_covariance_eigenvalues(hidden));
  } catch (const std::exception& e) {
    ++internal_errors_;
    last_internal_error_ = e.what();
  }
}

void LibTorchOrbit::probe_attention(const std::string& layer, const torch::Tensor& probabilities) {
  if (!connected()) return;
  try {
    AttentionSpectrum a = attention_spectrum(probabilities);
    add_spectrum("attn." + layer, std::move(a.singular_values));
    scalars_["attn_entropy." + layer] = a.entropy;
  } catch (const std::exception& e) {
    ++internal_errors_;
    last_internal_error_ = e.what();
  }
}

std::optional<double> LibTorchOrbit::attached_grad_norm() const {
  torch::NoGradGuard no_grad;
  double sum = 0.0;
  bool any = false;
  for (const auto& p : targets_.parameters) {
    const auto& g = p.grad();
    if (!g.defined()) continue;
    const double n = g.norm().item<double>();
    sum += n * n;
    any = true;
  }
  if (!any) return std::nullopt;
  return std::sqrt(sum);
}

void LibTorchOrbit::step(std::int64_t step, const torch::Tensor& loss) {
  this->step(step, loss.detach().item<double>());
}

void LibTorchOrbit::step(std::int64_t step, double loss) {
  // The lr this optimizer step ran with, before anything here changes it.
  const double lr_in_effect = lr(0);
  try {
    reconcile_lr();
    send_acks(step, lr_in_effect);
    // The trainer's own lr for that step (reconcile_lr picked up any change it made).
    const double schedule_lr = trainer_lr(0);
    if (enabled()) exchange(step, loss, lr_in_effect, schedule_lr);
    next_step_ = step + 1;
    prepare_step(step + 1);
  } catch (const std::exception& e) {
    // Fail-open: a problem on Orbit's side never stops training.
    ++internal_errors_;
    last_internal_error_ = e.what();
  }
  clear_staged();
}

void LibTorchOrbit::exchange(std::int64_t step, double loss, double lr_in_effect, double schedule_lr) {
  take_burns();
  AdapterClient& c = client();
  if (!c.registered()) return;

  const std::int64_t every = std::max<std::int64_t>(c.welcome()->snapshot_every, 1);
  if (step % every == 0) {
    Snapshot s;
    s.run = options_.run;
    s.rank = options_.rank;
    s.step = step;
    s.time = unix_seconds();
    s.loss = loss;
    s.grad_norm = grad_norm_;
    if (!s.grad_norm && options_.grad_norm && optimizer_) s.grad_norm = attached_grad_norm();
    if (optimizer_) {
      s.lr = lr_in_effect;
      s.schedule_lr = schedule_lr;
    }
    s.tokens = tokens_;
    s.domains = domains_;
    s.spectra = std::move(spectra_);
    s.loop_rate = loop_rate_;
    s.scalars = scalars_;
    c.send_snapshot(s);
  }
  if (optimizer_ && options_.checkpoint_every > 0 && step % options_.checkpoint_every == 0)
    checkpoints_.save(step, targets_);
}

void LibTorchOrbit::prepare_step(std::int64_t next_step) {
  for (const auto& a : schedule_.advance(next_step)) {
    BurnRecord r;
    r.seq = a.burn.seq;
    r.step = a.step;
    r.late = a.late;
    r.lr_scale = a.burn.lr_scale;
    r.state = a.burn.state;
    r.basin = a.burn.basin;
    r.reason = a.burn.reason;
    r.rollback_to_step = a.burn.rollback_to_step;
    if (a.burn.rollback_to_step && optimizer_) r.restored_step = checkpoints_.restore(*a.burn.rollback_to_step, targets_);
    if (a.burn.skip_batches) skip_batches_ += *a.burn.skip_batches;
    applied_.push_back(std::move(r));
  }
  // Always write: a restored optimizer brings back its old lr, and an expired burn
  // hands the trainer's own lr back.
  write_lrs();
}

void LibTorchOrbit::send_acks(std::int64_t step, double lr_in_effect) {
  // Acknowledged once the step they govern has run, with the lr it really ran
  // with (the trainer may set its lr after the burn was applied).
  for (; acked_ < applied_.size() && applied_[acked_].step <= step; ++acked_) {
    BurnRecord& r = applied_[acked_];
    if (optimizer_) r.lr = lr_in_effect;
    r.acked = true;
    if (!client_) continue;
    Ack ack;
    ack.run = options_.run;
    ack.rank = options_.rank;
    ack.seq = r.seq;
    ack.step = r.step;
    ack.late = r.late;
    if (optimizer_) ack.lr = r.lr;
    ack.restored_step = r.restored_step;
    client_->send_ack(ack);
  }
}

void LibTorchOrbit::clear_staged() {
  grad_norm_.reset();
  tokens_.reset();
  loop_rate_.reset();
  domains_.clear();
  scalars_.clear();
  spectra_.clear();
}

std::map<std::string, double> LibTorchOrbit::domain_weights() const {
  const auto& a = schedule_.active();
  return a ? a->burn.domain_weights : std::map<std::string, double>{};
}

std::map<std::string, double> LibTorchOrbit::loss_weights() const {
  const auto& a = schedule_.active();
  return a ? a->burn.loss_weights : std::map<std::string, double>{};
}

const std::optional<State>& LibTorchOrbit::last_state() const {
  static const std::optional<State> none;
  return client_ ? client_->last_state() : none;
}

AdapterClientCounters LibTorchOrbit::counters() const {
  return client_ ? client_->counters() : AdapterClientCounters{};
}

}  // namespace orbit
