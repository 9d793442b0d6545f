// SPDX-License-Identifier: Apache-2.0
#include "adapters/libtorch/spectral_probes.hpp"

#include <algorithm>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace orbit {
namespace {

std::vector<float> to_vector(const torch::Tensor& values) {
  torch::Tensor v = values.to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
}

// Evenly spaced rows: a deterministic subsample, no RNG touched.
torch::Tensor take_rows(const torch::Tensor& x, std::int64_t max_rows) {
  if (x.size(0) <= max_rows) return x;
  auto index = torch::linspace(0, static_cast<double>(x.size(0) - 1), max_rows,
                               torch::TensorOptions().dtype(torch::kFloat64))
                   .round()
                   .to(torch::kLong);
  return x.index_select(0, index);
}

}  // namespace

std::vector<float> weight_singular_values(const torch::Tensor& weight,
                                          const WeightProbeOptions& options) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(weight.dim() >= 2, "weight_singular_values needs a matrix, got ",
              weight.dim(), " dimensions");
  torch::Tensor w = weight.detach().to(torch::kCPU, torch::kFloat32).reshape({weight.size(0), -1});
  const std::int64_t small = std::min(w.size(0), w.size(1));
  const std::int64_t k = std::min(options.top_k, small);
  if (small <= options.exact_limit || k + options.oversample >= small) {
    return to_vector(torch::linalg_svdvals(w).slice(0, 0, k));
  }
  // Randomized range finder with power iterations, then the exact SVD of the
  // small projected matrix. The generator is private: the trainer's RNG stream
  // is untouched.
  if (w.size(0) < w.size(1)) w = w.t();  // tall: m >= n
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  torch::Tensor omega = torch::randn({w.size(1), k + options.oversample}, gen,
                                     torch::TensorOptions().dtype(torch::kFloat32));
  torch::Tensor q = std::get<0>(torch::linalg_qr(w.matmul(omega)));
  for (std::int64_t i = 0; i < options.power_iterations; ++i) {
    q = std::get<0>(torch::linalg_qr(w.t().matmul(q)));
    q = std::get<0>(torch::linalg_qr(w.matmul(q)));
  }
  return to_vector(torch::linalg_svdvals(q.t().matmul(w)).slice(0, 0, k));
}

std::vector<float> hidden_covariance_eigenvalues(const torch::Tensor& hidden,
                                                 std::int64_t max_rows) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(hidden.dim() >= 2, "hidden_covariance_eigenvalues needs [..., d], got ",
              hidden.dim(), " dimensions");
  torch::Tensor x = hidden.detach().to(torch::kCPU, torch::kFloat64).reshape({-1, hidden.size(-1)});
  x = take_rows(x, max_rows);
  TORCH_CHECK(x.size(0) >= 2, "hidden_covariance_eigenvalues needs at least 2 rows");
  x = x - x.mean(0, /*keepdim=*/true);
  torch::Tensor cov = x.t().matmul(x) / static_cast<double>(x.size(0) - 1);
  torch::Tensor eig = torch::linalg_eigvalsh(cov, "L").flip(0).clamp_min(0.0);
  return to_vector(eig);
}

AttentionSpectrum attention_spectrum(const torch::Tensor& probabilities, std::int64_t max_maps) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(probabilities.dim() >= 2, "attention_spectrum needs [..., T_q, T_k], got ",
              probabilities.dim(), " dimensions");
  const auto tq = probabilities.size(-2);
  const auto tk = probabilities.size(-1);
  torch::Tensor p = probabilities.detach().to(torch::kCPU, torch::kFloat32).reshape({-1, tq, tk});
  p = take_rows(p, max_maps);
  AttentionSpectrum out;
  // 0·ln 0 = 0: masked positions contribute nothing.
  torch::Tensor plogp = torch::xlogy(p, p);
  out.entropy = -plogp.sum(-1).mean().item<double>();
  out.singular_values = to_vector(torch::linalg_svdvals(p).mean(0));
  return out;
}

}  // namespace orbit
