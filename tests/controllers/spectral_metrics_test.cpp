// SPDX-License-Identifier: Apache-2.0
// Spectral metrics against hand-computed values (protocol/SPEC.md 5.4.1).
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "controllers/spectral_metrics.hpp"
#include "tests/controllers/plain_entropy.hpp"

namespace orbit {
namespace {

// Random lengths, with zeros, negative zeros, negatives and non-finite values; every
// third trial from seven levels (many equal magnitudes: the top two with ties), every
// tenth longer than the table of logs of counts.
std::vector<float> random_spectrum(std::mt19937_64& rng, int trial) {
  std::uniform_real_distribution<float> value(-2.0f, 5.0f);
  const std::size_t n = trial % 10 == 9 ? 1000 + rng() % 100 : 1 + rng() % 200;
  std::vector<float> v(n);
  for (auto& x : v) {
    x = trial % 3 == 1 ? static_cast<float>(static_cast<int>(rng() % 7) - 3) : std::pow(value(rng), 3.0f);
    const auto kind = rng() % 50;
    if (kind == 0) x = 0.0f;
    if (kind == 1) x = std::numeric_limits<float>::infinity();
    if (kind == 2) x = std::numeric_limits<float>::quiet_NaN();
    if (kind == 3) x = -std::numeric_limits<float>::infinity();
    if (kind == 4) x = -0.0f;
  }
  return v;
}

// The first pass as a plain loop: finite magnitudes summed in index order, the top two
// by comparison.
SpectralMass plain_mass(const std::vector<float>& v) {
  SpectralMass m;
  for (float x : v) {
    if (!std::isfinite(x)) continue;
    const double a = std::abs(static_cast<double>(x));
    ++m.used;
    m.total += a;
    if (a > m.first) {
      m.second = m.first;
      m.first = a;
    } else if (a > m.second) {
      m.second = a;
    }
  }
  return m;
}

TEST(SpectralMetrics, UniformSpectrumHasMaximalEntropy) {
  const std::vector<float> v(16, 2.5f);
  const auto m = spectral_metrics(v);
  ASSERT_TRUE(m.valid);
  EXPECT_NEAR(m.entropy, std::log(16.0), 1e-12);
  EXPECT_NEAR(m.effective_rank, 16.0, 1e-9);
  EXPECT_NEAR(m.normalized_entropy, 1.0, 1e-12);
  EXPECT_NEAR(m.dominant_ratio, 1.0 / 16.0, 1e-12);
  // λ1/λ2 = 1: proximity 1 - |1 - φ|/φ.
  EXPECT_NEAR(m.phi_proximity, 1.0 - (kGoldenRatio - 1.0) / kGoldenRatio, 1e-12);
  EXPECT_EQ(m.size, 16u);
  EXPECT_EQ(m.used, 16u);
}

TEST(SpectralMetrics, OneHotSpectrumIsFullyCollapsed) {
  std::vector<float> v(8, 0.0f);
  v[3] = 7.0f;
  const auto m = spectral_metrics(v);
  ASSERT_TRUE(m.valid);
  EXPECT_EQ(m.entropy, 0.0);
  EXPECT_EQ(m.effective_rank, 1.0);
  EXPECT_EQ(m.normalized_entropy, 0.0);
  EXPECT_EQ(m.dominant_ratio, 1.0);
  EXPECT_EQ(m.phi_proximity, 0.0);  // no second value: no ratio
}

TEST(SpectralMetrics, AllZerosIsNotValid) {
  const auto m = spectral_metrics(std::vector<float>(10, 0.0f));
  EXPECT_FALSE(m.valid);
  EXPECT_EQ(m.effective_rank, 0.0);
  EXPECT_FALSE(spectral_metrics(std::vector<float>{}).valid);
}

TEST(SpectralMetrics, SingleValue) {
  const auto m = spectral_metrics(std::vector<float>{3.0f});
  ASSERT_TRUE(m.valid);
  EXPECT_EQ(m.entropy, 0.0);
  EXPECT_EQ(m.effective_rank, 1.0);
  EXPECT_EQ(m.normalized_entropy, 0.0);
  EXPECT_EQ(m.dominant_ratio, 1.0);
}

TEST(SpectralMetrics, HandComputedTwoValues) {
  // p = (0.75, 0.25): H = -(0.75 ln 0.75 + 0.25 ln 0.25).
  const auto m = spectral_metrics(std::vector<float>{3.0f, 1.0f});
  const double h = -(0.75 * std::log(0.75) + 0.25 * std::log(0.25));
  EXPECT_NEAR(m.entropy, h, 1e-12);
  EXPECT_NEAR(m.effective_rank, std::exp(h), 1e-12);
  EXPECT_NEAR(m.normalized_entropy, h / std::log(2.0), 1e-12);
  EXPECT_NEAR(m.dominant_ratio, 0.75, 1e-12);
  EXPECT_NEAR(m.phi_proximity, 1.0 - std::abs(3.0 - kGoldenRatio) / kGoldenRatio, 1e-12);
}

TEST(SpectralMetrics, NegativeValuesCountByMagnitude) {
  const auto a = spectral_metrics(std::vector<float>{3.0f, -1.0f});
  const auto b = spectral_metrics(std::vector<float>{3.0f, 1.0f});
  EXPECT_EQ(a.entropy, b.entropy);
  EXPECT_EQ(a.dominant_ratio, b.dominant_ratio);
}

TEST(SpectralMetrics, HundredThousandValues) {
  std::vector<float> v(100000, 1.0f);
  auto m = spectral_metrics(v);
  EXPECT_NEAR(m.entropy, std::log(100000.0), 1e-9);
  EXPECT_NEAR(m.effective_rank, 100000.0, 1e-4);
  EXPECT_NEAR(m.normalized_entropy, 1.0, 1e-10);
  // Half of the mass in one value.
  v[0] = 99999.0f;
  m = spectral_metrics(v);
  EXPECT_NEAR(m.dominant_ratio, 0.5, 1e-9);
  const double h = -(0.5 * std::log(0.5) + 99999.0 * (0.5 / 99999.0) * std::log(0.5 / 99999.0));
  EXPECT_NEAR(m.entropy, h, 1e-9);
}

TEST(SpectralMetrics, NonFiniteValuesAreCountedAndIgnored) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const auto m = spectral_metrics(std::vector<float>{1.0f, nan, 1.0f, inf, -inf});
  ASSERT_TRUE(m.valid);
  EXPECT_EQ(m.size, 5u);
  EXPECT_EQ(m.used, 2u);
  EXPECT_EQ(m.nonfinite, 3u);
  EXPECT_NEAR(m.entropy, std::log(2.0), 1e-12);
  EXPECT_FALSE(spectral_metrics(std::vector<float>{nan, inf}).valid);
}

TEST(SpectralMetrics, PhiProximityPeaksAtTheTargetRatio) {
  const float l2 = 1.0f;
  const auto at_phi = spectral_metrics(std::vector<float>{static_cast<float>(kGoldenRatio), l2, 0.1f});
  EXPECT_NEAR(at_phi.phi_proximity, 1.0, 1e-6);  // float32 rounding of φ
  const auto far = spectral_metrics(std::vector<float>{10.0f, 1.0f});
  EXPECT_EQ(far.phi_proximity, 0.0);  // |10 - φ| > φ: clamped at 0
  const auto near = spectral_metrics(std::vector<float>{2.0f, 1.0f});
  EXPECT_NEAR(near.phi_proximity, 1.0 - (2.0 - kGoldenRatio) / kGoldenRatio, 1e-12);
  // The target is a parameter, not a constant.
  const auto other = spectral_metrics(std::vector<float>{2.0f, 1.0f}, 2.0);
  EXPECT_NEAR(other.phi_proximity, 1.0, 1e-12);
}

// Every metric is the bits of the plain loop (|v| / total, then -p ln p summed in
// order, glibc's log; the top two magnitudes by comparison): decisions were tuned on
// them, so a faster spectral_metrics() must keep them (spectra from random_spectrum()).
TEST(SpectralMetrics, EveryMetricIsThePlainLoopsBits) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 3000; ++trial) {
    const std::vector<float> v = random_spectrum(rng, trial);
    const std::size_t n = v.size();
    const SpectralMass plain = plain_mass(v);
    const double total = plain.total, first = plain.first, second = plain.second;
    const std::size_t used = plain.used;
    const double h = plain_entropy(v, total);
    const SpectralMetrics m = spectral_metrics(v, 1.618);
    ASSERT_EQ(m.size, n);
    ASSERT_EQ(m.used, used) << "trial " << trial;
    ASSERT_EQ(m.nonfinite, n - used) << "trial " << trial;
    if (!(total > 0.0)) {
      ASSERT_FALSE(m.valid);
      continue;
    }
    auto bits = [](double x) { return std::bit_cast<std::uint64_t>(x); };
    const double entropy = std::max(0.0, h);
    ASSERT_TRUE(m.valid);
    ASSERT_EQ(bits(m.entropy), bits(entropy)) << "trial " << trial;
    ASSERT_EQ(bits(m.effective_rank), bits(std::exp(entropy)));
    ASSERT_EQ(bits(m.normalized_entropy), bits(used > 1 ? entropy / std::log(static_cast<double>(used)) : 0.0));
    ASSERT_EQ(bits(m.dominant_ratio), bits(first / total)) << "trial " << trial;
    const double phi = second > 0.0 ? std::max(0.0, 1.0 - std::abs(first / second - 1.618) / 1.618) : 0.0;
    ASSERT_EQ(bits(m.phi_proximity), bits(phi)) << "trial " << trial;
  }
}

// spectral_metrics() runs only the widest first pass the CPU has, so each narrower
// kernel is checked here on its own: the AVX2 pass on an AVX-512 machine included.
TEST(SpectralMetrics, EveryFirstPassKernelTheCpuHasGivesThePlainLoopsBits) {
  std::vector<EntropyKernel> kernels{EntropyKernel::plain};
  if (cpu_has_avx2_fma()) kernels.push_back(EntropyKernel::avx2);
  if (cpu_has_avx512()) kernels.push_back(EntropyKernel::avx512);
  auto bits = [](double x) { return std::bit_cast<std::uint64_t>(x); };
  for (const EntropyKernel kernel : kernels) {
    std::mt19937_64 rng(12);
    for (int trial = 0; trial < 3000; ++trial) {
      const std::vector<float> v = random_spectrum(rng, trial);
      for (std::size_t n : {v.size(), v.size() % 17}) {  // short lengths: every tail
        const SpectralMass want = plain_mass(std::vector<float>(v.begin(), v.begin() + n));
        const SpectralMass got = spectral_mass_with(kernel, v.data(), n);
        ASSERT_EQ(got.used, want.used) << "kernel " << static_cast<int>(kernel) << " trial " << trial;
        ASSERT_EQ(bits(got.total), bits(want.total)) << "kernel " << static_cast<int>(kernel) << " trial " << trial;
        ASSERT_EQ(bits(got.first), bits(want.first)) << "kernel " << static_cast<int>(kernel) << " trial " << trial;
        ASSERT_EQ(bits(got.second), bits(want.second)) << "kernel " << static_cast<int>(kernel) << " trial " << trial;
      }
    }
  }
}

TEST(SpectralMetrics, AggregateWorstAndMean) {
  std::map<std::string, SpectralMetrics> per;
  per["hidden.0"] = spectral_metrics(std::vector<float>(4, 1.0f));     // H = ln 4, dominant 0.25
  per["hidden.1"] = spectral_metrics(std::vector<float>{3.0f, 1.0f});  // H ≈ 0.562, dominant 0.75
  per["empty"] = spectral_metrics(std::vector<float>(3, 0.0f));        // not valid: ignored
  const auto worst = aggregate(per, Aggregation::worst);
  ASSERT_TRUE(worst.valid);
  EXPECT_EQ(worst.entropy, per["hidden.1"].entropy);
  EXPECT_EQ(worst.dominant_ratio, 0.75);
  EXPECT_EQ(worst.effective_rank, per["hidden.1"].effective_rank);
  EXPECT_EQ(worst.phi_proximity, std::min(per["hidden.0"].phi_proximity, per["hidden.1"].phi_proximity));
  const auto mean = aggregate(per, Aggregation::mean);
  EXPECT_NEAR(mean.entropy, 0.5 * (std::log(4.0) + per["hidden.1"].entropy), 1e-12);
  EXPECT_NEAR(mean.dominant_ratio, 0.5, 1e-12);
  EXPECT_EQ(mean.size, 4u + 2u + 3u);
  EXPECT_FALSE(aggregate({}, Aggregation::worst).valid);
}

}  // namespace
}  // namespace orbit
