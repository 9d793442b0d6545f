// SPDX-License-Identifier: Apache-2.0
// The vector log must give std::log's bits for every input the entropy can feed it
// (and the rest): 10^7 random values in (0, 1], every table interval's edges at
// several exponents, the near-1 band, powers of two, subnormals and specials.
#include "controllers/vector_log.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "tests/controllers/plain_entropy.hpp"

namespace orbit {
namespace {

// Runs `kernel` over `in` and reports the first input whose bits differ from std::log.
template <class Kernel>
void expect_bits_of_std_log(const std::vector<double>& in, Kernel&& kernel, const char* what) {
  std::vector<double> got(in.size());
  kernel(in.data(), got.data(), in.size());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const double want = std::log(in[i]);
    if (std::bit_cast<std::uint64_t>(want) == std::bit_cast<std::uint64_t>(got[i])) continue;
    if (++mismatches <= 5) {
      ADD_FAILURE() << what << ": log(" << std::hexfloat << in[i] << ") = " << got[i] << ", std::log gives " << want;
    }
  }
  EXPECT_EQ(mismatches, 0u) << what << ", of " << in.size();
}

std::vector<double> random_unit_interval(std::size_t n) {
  std::mt19937_64 rng(20261207);
  std::vector<double> v(n);
  for (auto& x : v) x = static_cast<double>((rng() >> 11) + 1) * 0x1p-53;  // (0, 1]
  return v;
}

// Both edges of each of the 128 table intervals, z / 2^e for several e, and values
// spread over the near-1 band (asuint64(1 - 2^-4) .. asuint64(1 + 0x1.09p-4)).
std::vector<double> edges_and_near_one() {
  std::vector<double> v;
  const std::uint64_t off = 0x3fe6000000000000ULL;
  for (std::uint64_t i = 0; i < 128; ++i) {
    for (int e = -1000; e <= 1020; e += 5) {
      const auto base = static_cast<std::uint64_t>(static_cast<std::int64_t>(off) - e * (std::int64_t{1} << 52));
      for (std::uint64_t d : {0ULL, 1ULL}) v.push_back(std::bit_cast<double>(base + (i << 45) + d));
      for (std::uint64_t d : {1ULL, 2ULL}) v.push_back(std::bit_cast<double>(base + ((i + 1) << 45) - d));
    }
  }
  const std::uint64_t lo = std::bit_cast<std::uint64_t>(1.0 - 0x1p-4),
                      hi = std::bit_cast<std::uint64_t>(1.0 + 0x1.09p-4);
  for (std::uint64_t b = lo - 64; b <= lo + 64; ++b) v.push_back(std::bit_cast<double>(b));
  for (std::uint64_t b = hi - 64; b <= hi + 64; ++b) v.push_back(std::bit_cast<double>(b));
  std::mt19937_64 rng(7);
  for (int k = 0; k < 1'000'000; ++k) v.push_back(std::bit_cast<double>(lo + rng() % (hi - lo)));
  for (int k = -2000; k <= 2000; ++k) v.push_back(1.0 + k * 0x1p-52);
  return v;
}

std::vector<double> powers_subnormals_specials() {
  std::vector<double> v;
  for (int e = -1074; e <= 1023; ++e) v.push_back(std::ldexp(1.0, e));
  std::mt19937_64 rng(11);
  for (int k = 0; k < 10'000; ++k) v.push_back(std::bit_cast<double>(rng() & 0x000fffffffffffffULL));   // subnormal
  for (int k = 0; k < 100'000; ++k) v.push_back(std::bit_cast<double>(rng() & 0x7fffffffffffffffULL));  // any positive
  const double inf = std::numeric_limits<double>::infinity();
  for (double x : {0.0, 1.0, inf, -1.0, -inf, 0x1p-1022, std::numeric_limits<double>::max()}) v.push_back(x);
  return v;
}

TEST(VectorLog, KernelGivesStdLogBits) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2+FMA: the kernel is never used here";
  expect_bits_of_std_log(random_unit_interval(10'000'000), log_avx2_fma, "random (0, 1]");
  expect_bits_of_std_log(edges_and_near_one(), log_avx2_fma, "table edges and near 1");
  expect_bits_of_std_log(powers_subnormals_specials(), log_avx2_fma, "powers, subnormals, specials");
}

// The eight-lane kernel, on the same inputs (and lengths that leave a masked tail).
TEST(VectorLog, WideKernelGivesStdLogBits) {
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512: the eight-lane kernel is never used here";
  EXPECT_TRUE(wide_vector_log_in_use()) << "the one-time self-check disagreed with std::log";
  expect_bits_of_std_log(random_unit_interval(10'000'000), log_avx512, "random (0, 1]");
  expect_bits_of_std_log(edges_and_near_one(), log_avx512, "table edges and near 1");
  expect_bits_of_std_log(powers_subnormals_specials(), log_avx512, "powers, subnormals, specials");
  for (std::size_t n = 0; n <= 17; ++n) {
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 0.07 * static_cast<double>(i + 1);
    expect_bits_of_std_log(x, log_avx512, "short lengths");
  }
}

// What the entropy calls: the kernel where it was proven equal, else std::log.
TEST(VectorLog, DispatchGivesStdLogBits) {
  if (cpu_has_avx2_fma()) {
    EXPECT_TRUE(vector_log_in_use()) << "the one-time self-check disagreed with std::log";
  }
  expect_bits_of_std_log(random_unit_interval(100'000), log_like_libm, "random (0, 1]");
  expect_bits_of_std_log(powers_subnormals_specials(), log_like_libm, "powers, subnormals, specials");
}

// Lengths that are not a multiple of four, and out == in.
TEST(VectorLog, AnyLengthInPlace) {
  for (std::size_t n = 0; n <= 9; ++n) {
    std::vector<double> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = 0.1 * static_cast<double>(i + 1);
    std::vector<double> y = x;
    log_like_libm(y.data(), y.data(), n);
    for (std::size_t i = 0; i < n; ++i)
      EXPECT_EQ(std::bit_cast<std::uint64_t>(y[i]), std::bit_cast<std::uint64_t>(std::log(x[i])));
  }
}

// The entropy sum over spectra whose shares reach every path: a dominant value (p
// in the near-1 band), zeros, subnormal floats, NaN and inf, lengths 0 to 300; with
// each kernel this CPU can run, and with the one entropy_of_shares() picks.
TEST(VectorLog, EntropyOfSharesIsThePlainLoopsBits) {
  std::vector<EntropyKernel> kernels{EntropyKernel::plain};
  if (cpu_has_avx2_fma()) kernels.push_back(EntropyKernel::avx2);
  if (cpu_has_avx512()) kernels.push_back(EntropyKernel::avx512);
  std::mt19937_64 rng(5);
  std::lognormal_distribution<float> magnitude(0.0f, 3.0f);
  for (int trial = 0; trial < 5000; ++trial) {
    std::vector<float> v(rng() % 301);
    for (auto& x : v) {
      x = magnitude(rng);
      const auto kind = rng() % 40;
      if (kind == 0) x = 0.0f;
      if (kind == 1) x = std::numeric_limits<float>::quiet_NaN();
      if (kind == 2) x = -std::numeric_limits<float>::infinity();
      if (kind == 3) x = std::numeric_limits<float>::denorm_min() * static_cast<float>(rng() % 1000);
      if (kind == 4) x = -x;
    }
    if (!v.empty() && trial % 2 == 0) v[rng() % v.size()] = 1e6f * static_cast<float>(v.size());  // p near 1
    double total = 0.0;
    for (float x : v) {
      if (std::isfinite(x)) total += std::abs(static_cast<double>(x));
    }
    const double h = plain_entropy(v, total);
    ASSERT_EQ(std::bit_cast<std::uint64_t>(entropy_of_shares(v.data(), v.size(), total)),
              std::bit_cast<std::uint64_t>(h))
        << "trial " << trial << ", " << v.size() << " values";
    for (const EntropyKernel kernel : kernels) {
      ASSERT_EQ(std::bit_cast<std::uint64_t>(entropy_of_shares_with(kernel, v.data(), v.size(), total)),
                std::bit_cast<std::uint64_t>(h))
          << "kernel " << static_cast<int>(kernel) << ", trial " << trial << ", " << v.size() << " values";
    }
  }
}

// The widest kernel the CPU has is the one in use (its self-check passed).
TEST(VectorLog, EntropyUsesTheWidestKernel) {
  const EntropyKernel want = cpu_has_avx512()     ? EntropyKernel::avx512
                             : cpu_has_avx2_fma() ? EntropyKernel::avx2
                                                  : EntropyKernel::plain;
  EXPECT_EQ(static_cast<int>(entropy_kernel_in_use()), static_cast<int>(want));
}

}  // namespace
}  // namespace orbit
