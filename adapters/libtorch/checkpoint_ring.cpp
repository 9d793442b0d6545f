// SPDX-License-Identifier: Apache-2.0
#include "adapters/libtorch/checkpoint_ring.hpp"

#include <sstream>

#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

namespace orbit {
namespace {

std::vector<torch::Tensor> cpu_copies(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  out.reserve(tensors.size());
  for (const auto& t : tensors)
    out.push_back(t.device().is_cpu() ? t.detach().clone() : t.detach().to(torch::kCPU));
  return out;
}

void copy_back(const std::vector<torch::Tensor>& saved, const std::vector<torch::Tensor>& live) {
  TORCH_CHECK(saved.size() == live.size(), "checkpoint holds ", saved.size(),
              " tensors but the model now has ", live.size());
  for (std::size_t i = 0; i < saved.size(); ++i) {
    torch::Tensor target = live[i].detach();
    target.copy_(saved[i]);
  }
}

}  // namespace

void CheckpointRing::save(std::int64_t step, const CheckpointTargets& targets) {
  if (capacity_ == 0) return;
  torch::NoGradGuard no_grad;
  Checkpoint c;
  c.step = step;
  c.parameters = cpu_copies(targets.parameters);
  c.buffers = cpu_copies(targets.buffers);
  if (targets.optimizer) {
    torch::serialize::OutputArchive archive;
    targets.optimizer->save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    c.optimizer = std::move(bytes).str();
  }
  // A rollback may have rewound the trainer's model behind its step counter; keep
  // the ring ordered by step anyway.
  while (!ring_.empty() && ring_.back().step >= step) ring_.pop_back();
  ring_.push_back(std::move(c));
  while (ring_.size() > capacity_) evict_one();
}

void CheckpointRing::evict_one() {
  // As the Python adapter's ring: the oldest and the newest stay; the one whose
  // removal leaves the smallest gap relative to its age goes, so history stays
  // dense near the present and still reaches back to the start.
  if (ring_.size() <= 2) {
    ring_.pop_front();
    return;
  }
  const double newest = static_cast<double>(ring_.back().step);
  std::size_t victim = 1;
  double best = 0.0;
  for (std::size_t i = 1; i + 1 < ring_.size(); ++i) {
    const double gap = static_cast<double>(ring_[i + 1].step - ring_[i - 1].step);
    const double age = newest - static_cast<double>(ring_[i].step) + 1.0;
    const double cost = gap / age;
    if (i == 1 || cost < best) {
      best = cost;
      victim = i;
    }
  }
  ring_.erase(ring_.begin() + static_cast<std::ptrdiff_t>(victim));
}

std::optional<std::int64_t> CheckpointRing::restore(std::int64_t step,
                                                    const CheckpointTargets& targets) {
  while (!ring_.empty() && ring_.back().step > step) ring_.pop_back();
  if (ring_.empty()) return std::nullopt;
  const Checkpoint& c = ring_.back();
  torch::NoGradGuard no_grad;
  copy_back(c.parameters, targets.parameters);
  copy_back(c.buffers, targets.buffers);
  if (targets.optimizer && !c.optimizer.empty()) {
    // load() only overwrites entries it has; start from an empty state so the
    // restored state is exactly the saved one.
    targets.optimizer->state().clear();
    torch::serialize::InputArchive archive;
    archive.load_from(c.optimizer.data(), c.optimizer.size());
    targets.optimizer->load(archive);
  }
  return c.step;
}

std::optional<std::int64_t> CheckpointRing::newest_step() const {
  if (ring_.empty()) return std::nullopt;
  return ring_.back().step;
}

std::vector<std::int64_t> CheckpointRing::steps() const {
  std::vector<std::int64_t> out;
  for (const auto& c : ring_) out.push_back(c.step);
  return out;
}

std::size_t CheckpointRing::bytes() const {
  std::size_t total = 0;
  for (const auto& c : ring_) {
    for (const auto& t : c.parameters) total += t.numel() * t.element_size();
    for (const auto& t : c.buffers) total += t.numel() * t.element_size();
    total += c.optimizer.size();
  }
  return total;
}

}  // namespace orbit
