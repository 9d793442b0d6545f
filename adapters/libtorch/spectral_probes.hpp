// SPDX-License-Identifier: Apache-2.0
#pragma once
// Spectra the adapter sends, computed from tensors the trainer hands over. Every
// probe runs under NoGradGuard on a detached float32 copy and draws randomness only
// from its own seeded generator, so probing never changes the training computation
// (the global RNG stream included).

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace orbit {

struct WeightProbeOptions {
  std::int64_t top_k = 32;  // singular values kept (largest first)
  // Matrices whose smaller side exceeds this go through a randomized SVD
  // (Halko, Martinsson & Tropp 2011) instead of a full one.
  std::int64_t exact_limit = 256;
  std::int64_t oversample = 8;
  std::int64_t power_iterations = 2;
  std::uint64_t seed = 0x0b17;
};

// Largest singular values of a weight, descending. Tensors with more than two
// dimensions are flattened to (size(0), rest), as for a conv kernel.
std::vector<float> weight_singular_values(const torch::Tensor& weight,
                                          const WeightProbeOptions& options = {});

// Eigenvalues of the covariance of hidden states [..., d] (rows are samples),
// descending and clamped at 0: the spectrum behind effective rank (RankMe).
// `max_rows` rows are taken evenly when there are more.
std::vector<float> hidden_covariance_eigenvalues(const torch::Tensor& hidden,
                                                 std::int64_t max_rows = 4096);

// Attention probabilities [..., T_q, T_k] whose rows sum to 1 (a causal mask's
// zeros included).
struct AttentionSpectrum {
  std::vector<float> singular_values;  // mean over maps of each map's sorted singular values
  double entropy = 0.0;                // mean row entropy, nats
};
AttentionSpectrum attention_spectrum(const torch::Tensor& probabilities,
                                     std::int64_t max_maps = 64);

}  // namespace orbit
