// SPDX-License-Identifier: Apache-2.0
#pragma once
// Health metrics of one spectrum (eigenvalues or singular values), protocol/SPEC.md 5.4.1.
// Pure functions: no state, no allocation beyond the result.

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "controllers/vector_log.hpp"

namespace orbit {

inline constexpr double kGoldenRatio = 1.6180339887498949;

struct SpectralMetrics {
  std::size_t size = 0;             // values received
  std::size_t used = 0;             // finite values that entered the metrics
  std::size_t nonfinite = 0;        // NaN or infinite values (ignored, and a signal of their own)
  double entropy = 0.0;             // H = -sum p ln p, nats, p_i = |l_i| / sum |l_j|
  double effective_rank = 0.0;      // exp(H)
  double normalized_entropy = 0.0;  // H / ln(used); 0 for a single value
  double dominant_ratio = 0.0;      // p_1, the largest share
  double phi_proximity = 0.0;       // max(0, 1 - |l1/l2 - target| / target)
  // False when no finite mass is left (empty, all zeros, all non-finite): the
  // numbers above are then 0 and must not be read as "collapsed".
  bool valid = false;
};

// The first pass over a spectrum: the sum of the finite magnitudes in index order,
// their count, and the largest two (with multiplicity; 0 while there are fewer).
struct SpectralMass {
  double total = 0.0;
  double first = 0.0;
  double second = 0.0;
  std::size_t used = 0;
};

// The first pass by one kernel, for tests: each must give the plain loop's bits, and
// spectral_metrics() runs only the widest the CPU has. avx2 only where
// cpu_has_avx2_fma(), avx512 only where cpu_has_avx512() (controllers/vector_log.hpp).
SpectralMass spectral_mass_with(EntropyKernel kernel, const float* v, std::size_t n);

// `phi_target` is the ratio λ1/λ2 that φ-proximity measures against (config key).
SpectralMetrics spectral_metrics(Eigen::Ref<const Eigen::VectorXf> spectrum, double phi_target = kGoldenRatio);
SpectralMetrics spectral_metrics(const std::vector<float>& spectrum, double phi_target = kGoldenRatio);

// Aggregate over several named spectra: the worst value of each metric (lowest
// entropy/effective rank/normalized entropy/φ-proximity, highest dominant ratio)
// or the mean, over the valid spectra only.
enum class Aggregation { worst, mean };
SpectralMetrics aggregate(const std::map<std::string, SpectralMetrics>& per_spectrum, Aggregation how);

// The same aggregate, one spectrum at a time (no container needed): add() in the
// order the map version iterates gives bit-identical results.
class SpectralAggregator {
 public:
  explicit SpectralAggregator(Aggregation how) : how_(how) {}
  void add(const SpectralMetrics& m);
  SpectralMetrics result() const;

 private:
  Aggregation how_;
  SpectralMetrics out_;
  std::size_t n_ = 0;
};

}  // namespace orbit
