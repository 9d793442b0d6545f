// SPDX-License-Identifier: Apache-2.0
#include "controllers/spectral_metrics.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "controllers/vector_log.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 reads the AVX-512 headers' deliberately undefined vectors (_mm512_undefined_pd)
// as uninitialized wherever they inline: a known false positive, silenced for them only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define ORBIT_SPECTRAL_X86 1
#endif

namespace orbit {
namespace {

using Mass = SpectralMass;

void take_top_two(double a, Mass& m) {
  if (a > m.first) {
    m.second = m.first;
    m.first = a;
  } else if (a > m.second) {
    m.second = a;
  }
}

Mass mass_plain(const float* v, std::size_t n) {
  Mass m;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = v[i];
    if (!std::isfinite(x)) continue;
    const double a = std::abs(x);
    ++m.used;
    m.total += a;
    take_top_two(a, m);
  }
  return m;
}

#ifdef ORBIT_SPECTRAL_X86
// The same four values at a time. The sum stays scalar and in index order (a
// non-finite value adds +0.0, which leaves a sum of magnitudes unchanged), so it is
// the plain loop's to the bit; each lane keeps its own top two, and the top two of
// all are the top two of the lanes' (no NaN here, and equal values have equal bits).
struct MassLanes {
  __m256d first, second;  // each lane's top two
};

// m.total plus each lane of `a`, lane 0 first (the plain loop's order).
__attribute__((target("avx2"))) inline void add_in_order(__m256d a, Mass& m) {
  const __m128d low = _mm256_castpd256_pd128(a);
  const __m128d high = _mm256_extractf128_pd(a, 1);
  m.total += _mm_cvtsd_f64(low);
  m.total += _mm_cvtsd_f64(_mm_unpackhi_pd(low, low));
  m.total += _mm_cvtsd_f64(high);
  m.total += _mm_cvtsd_f64(_mm_unpackhi_pd(high, high));
}

// The top two of all values from each lane's top two (equal values have equal bits,
// so the order they are taken in does not matter).
Mass top_two_of_lanes(const double* firsts, const double* seconds, int lanes) {
  Mass best;
  for (int k = 0; k < lanes; ++k) {
    take_top_two(firsts[k], best);
    take_top_two(seconds[k], best);
  }
  return best;
}

__attribute__((target("avx2"))) inline void add_four(__m128 values, int lanes, MassLanes& top, Mass& m) {
  const __m256d sign_off = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  __m256d a = _mm256_and_pd(_mm256_cvtps_pd(values), sign_off);
  const __m256d finite = _mm256_cmp_pd(a, _mm256_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ);
  a = _mm256_and_pd(a, finite);
  m.used += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(_mm256_movemask_pd(finite) & lanes)));
  top.second = _mm256_max_pd(top.second, _mm256_min_pd(top.first, a));
  top.first = _mm256_max_pd(top.first, a);
  add_in_order(a, m);
}

__attribute__((target("avx2"))) Mass mass_avx2(const float* v, std::size_t n) {
  MassLanes top{_mm256_setzero_pd(), _mm256_setzero_pd()};
  Mass m;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) add_four(_mm_loadu_ps(v + i), 0xf, top, m);
  if (i < n) {
    float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // zeros: no mass, below every top value, not counted
    std::memcpy(tail, v + i, (n - i) * sizeof(float));
    add_four(_mm_loadu_ps(tail), (1 << (n - i)) - 1, top, m);
  }
  alignas(32) double firsts[4], seconds[4];
  _mm256_store_pd(firsts, top.first);
  _mm256_store_pd(seconds, top.second);
  const Mass best = top_two_of_lanes(firsts, seconds, 4);
  m.first = best.first;
  m.second = best.second;
  return m;
}

// The same eight values at a time (AVX-512): the sum still scalar and in index order,
// each of the eight lanes its own top two.
#define ORBIT_SPECTRAL_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2")))

ORBIT_SPECTRAL_AVX512 inline void add_eight(__m256 values, __mmask8 lanes, __m512d& first, __m512d& second, Mass& m) {
  const __m512d a_all = _mm512_abs_pd(_mm512_cvtps_pd(values));
  const __mmask8 finite = _mm512_cmp_pd_mask(a_all, _mm512_set1_pd(std::numeric_limits<double>::infinity()),
                                             _CMP_LT_OQ);
  const __m512d a = _mm512_maskz_mov_pd(finite, a_all);
  m.used += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(finite & lanes)));
  second = _mm512_max_pd(second, _mm512_min_pd(first, a));
  first = _mm512_max_pd(first, a);
  add_in_order(_mm512_castpd512_pd256(a), m);
  add_in_order(_mm512_extractf64x4_pd(a, 1), m);
}

ORBIT_SPECTRAL_AVX512 Mass mass_avx512(const float* v, std::size_t n) {
  __m512d first = _mm512_setzero_pd(), second = _mm512_setzero_pd();
  Mass m;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) add_eight(_mm256_loadu_ps(v + i), 0xff, first, second, m);
  if (i < n) {  // past the end: zeros, no mass, below every top value, not counted
    const auto lanes = static_cast<__mmask8>((1u << (n - i)) - 1);
    add_eight(_mm256_maskz_loadu_ps(lanes, v + i), lanes, first, second, m);
  }
  alignas(64) double firsts[8], seconds[8];
  _mm512_store_pd(firsts, first);
  _mm512_store_pd(seconds, second);
  const Mass best = top_two_of_lanes(firsts, seconds, 8);
  m.first = best.first;
  m.second = best.second;
  return m;
}
#endif

Mass mass_of(const float* v, std::size_t n) {
#ifdef ORBIT_SPECTRAL_X86
  static const bool avx512 = cpu_has_avx512();
  if (avx512) return mass_avx512(v, n);
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return mass_avx2(v, n);
#endif
  return mass_plain(v, n);
}

// std::log of a value count, from a table for the usual spectrum sizes (filled by
// std::log itself, so the same bits) instead of a libm call per spectrum.
double log_of_count(std::size_t n) {
  static const std::array<double, 1025> table = [] {
    std::array<double, 1025> t{};
    for (std::size_t i = 1; i < t.size(); ++i) t[i] = std::log(static_cast<double>(i));
    return t;
  }();
  return n < table.size() ? table[n] : std::log(static_cast<double>(n));
}

}  // namespace

SpectralMass spectral_mass_with(EntropyKernel kernel, const float* v, std::size_t n) {
#ifdef ORBIT_SPECTRAL_X86
  if (kernel == EntropyKernel::avx512 && cpu_has_avx512()) return mass_avx512(v, n);
  if (kernel == EntropyKernel::avx2 && __builtin_cpu_supports("avx2")) return mass_avx2(v, n);
#endif
  (void)kernel;
  return mass_plain(v, n);
}

SpectralMetrics spectral_metrics(Eigen::Ref<const Eigen::VectorXf> spectrum, double phi_target) {
  SpectralMetrics m;
  m.size = static_cast<std::size_t>(spectrum.size());
  // Two passes in double: the sum of magnitudes, then entropy. The top two
  // magnitudes are tracked on the way, so no sort is needed.
  const Mass mass = mass_of(spectrum.data(), m.size);
  const double total = mass.total, first = mass.first, second = mass.second;
  m.used = mass.used;
  m.nonfinite = m.size - mass.used;
  if (!(total > 0.0) || !std::isfinite(total)) return m;  // no mass: not valid
  m.valid = true;
  // The logs four at a time with std::log's own bits (controllers/vector_log.hpp:
  // Eigen's packet log measured slower and is not bit-identical); the sum stays in
  // index order, so h is the plain loop's to the bit.
  const double h = entropy_of_shares(spectrum.data(), static_cast<std::size_t>(spectrum.size()), total);
  m.entropy = std::max(0.0, h);
  m.effective_rank = std::exp(m.entropy);
  m.normalized_entropy = m.used > 1 ? m.entropy / log_of_count(m.used) : 0.0;
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
