// SPDX-License-Identifier: Apache-2.0
#include "controllers/spectral_metrics.hpp"

#include <algorithm>
#include <cmath>

#include "controllers/vector_log.hpp"

namespace orbit {

SpectralMetrics spectral_metrics(Eigen::Ref<const Eigen::VectorXf> spectrum, double phi_target) {
  SpectralMetrics m;
  m.size = static_cast<std::size_t>(spectrum.size());
  // Two passes in double: the sum of magnitudes, then entropy. The top two
  // magnitudes are tracked on the way, so no sort is needed.
  double total = 0.0;
  double first = 0.0;
  double second = 0.0;
  for (Eigen::Index i = 0; i < spectrum.size(); ++i) {
    const double v = spectrum[i];
    if (!std::isfinite(v)) {
      ++m.nonfinite;
      continue;
    }
    const double a = std::abs(v);
    ++m.used;
    total += a;
    if (a > first) {
      second = first;
      first = a;
    } else if (a > second) {
      second = a;
    }
  }
  if (!(total > 0.0) || !std::isfinite(total)) return m;  // no mass: not valid
  m.valid = true;
  // The logs four at a time with std::log's own bits (controllers/vector_log.hpp:
  // Eigen's packet log measured slower and is not bit-identical); the sum stays in
  // index order, so h is the plain loop's to the bit.
  const double h = entropy_of_shares(spectrum.data(), static_cast<std::size_t>(spectrum.size()), total);
  m.entropy = std::max(0.0, h);
  m.effective_rank = std::exp(m.entropy);
  m.normalized_entropy = m.used > 1 ? m.entropy / std::log(static_cast<double>(m.used)) : 0.0;
  m.dominant_ratio = first / total;
  if (second > 0.0 && phi_target > 0.0) {
    m.phi_proximity = std::max(0.0, 1.0 - std::abs(first / second - phi_target) / phi_target);
  }
  return m;
}

SpectralMetrics spectral_metrics(const std::vector<float>& spectrum, double phi_target) {
  return spectral_metrics(
      Eigen::Map<const Eigen::VectorXf>(spectrum.data(), static_cast<Eigen::Index>(spectrum.size())), phi_target);
}

void SpectralAggregator::add(const SpectralMetrics& m) {
  out_.size += m.size;
  out_.used += m.used;
  out_.nonfinite += m.nonfinite;
  if (!m.valid) return;
  if (n_ == 0) {
    out_.entropy = m.entropy;
    out_.effective_rank = m.effective_rank;
    out_.normalized_entropy = m.normalized_entropy;
    out_.dominant_ratio = m.dominant_ratio;
    out_.phi_proximity = m.phi_proximity;
  } else if (how_ == Aggregation::mean) {
    out_.entropy += m.entropy;
    out_.effective_rank += m.effective_rank;
    out_.normalized_entropy += m.normalized_entropy;
    out_.dominant_ratio += m.dominant_ratio;
    out_.phi_proximity += m.phi_proximity;
  } else {
    out_.entropy = std::min(out_.entropy, m.entropy);
    out_.effective_rank = std::min(out_.effective_rank, m.effective_rank);
    out_.normalized_entropy = std::min(out_.normalized_entropy, m.normalized_entropy);
    out_.dominant_ratio = std::max(out_.dominant_ratio, m.dominant_ratio);
    out_.phi_proximity = std::min(out_.phi_proximity, m.phi_proximity);
  }
  ++n_;
}

SpectralMetrics SpectralAggregator::result() const {
  SpectralMetrics out = out_;
  if (n_ == 0) return out;
  out.valid = true;
  if (how_ == Aggregation::mean) {
    const double k = static_cast<double>(n_);
    out.entropy /= k;
    out.effective_rank /= k;
    out.normalized_entropy /= k;
    out.dominant_ratio /= k;
    out.phi_proximity /= k;
  }
  return out;
}

SpectralMetrics aggregate(const std::map<std::string, SpectralMetrics>& per_spectrum, Aggregation how) {
  SpectralAggregator agg(how);
  for (const auto& [name, m] : per_spectrum) agg.add(m);
  return agg.result();
}

}  // namespace orbit
