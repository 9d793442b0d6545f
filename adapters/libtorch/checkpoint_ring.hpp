// SPDX-License-Identifier: Apache-2.0
#pragma once
// In-memory checkpoints for rollback burns: deep CPU copies of parameters, buffers
// and the optimizer state (serialized through torch's own archive, so every
// optimizer type round-trips), at most `capacity` of them, oldest first. A full
// ring thins out instead of forgetting its past (see evict_one).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

namespace torch::optim {
class Optimizer;
}

namespace orbit {

// What a checkpoint covers: the tensors are restored in place (copy_), so the
// trainer's module and optimizer keep their identity.
struct CheckpointTargets {
  std::vector<torch::Tensor> parameters;
  std::vector<torch::Tensor> buffers;
  torch::optim::Optimizer* optimizer = nullptr;
};

class CheckpointRing {
 public:
  explicit CheckpointRing(std::size_t capacity) : capacity_(capacity) {}

  // Saves the state after optimizer step `step`, thinning the ring when full.
  void save(std::int64_t step, const CheckpointTargets& targets);

  // Restores the newest checkpoint at or before `step` and drops the ones after it
  // (they belong to the abandoned trajectory). Returns its step, or nothing when no
  // checkpoint is old enough. The optimizer's param-group options come back too;
  // the caller re-imposes the lr it wants.
  std::optional<std::int64_t> restore(std::int64_t step, const CheckpointTargets& targets);

  std::size_t size() const { return ring_.size(); }
  std::size_t capacity() const { return capacity_; }
  std::optional<std::int64_t> newest_step() const;
  std::vector<std::int64_t> steps() const;
  std::size_t bytes() const;
  void clear() { ring_.clear(); }

 private:
  struct Checkpoint {
    std::int64_t step = 0;
    std::vector<torch::Tensor> parameters;
    std::vector<torch::Tensor> buffers;
    std::string optimizer;  // torch::serialize archive bytes
  };
  void evict_one();

  std::size_t capacity_;
  std::deque<Checkpoint> ring_;
};

}  // namespace orbit
