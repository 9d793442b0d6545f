// SPDX-License-Identifier: Apache-2.0
#pragma once
// Natural log of many doubles at once with exactly the bits std::log gives here,
// so the spectral entropy (and every decision after it) stays bit-identical.

#include <cstddef>

namespace orbit {

// out[i] = std::log(x[i]) bit for bit, for i < n (out may be x). Eight or four lanes
// at a time on CPUs where that is proven equal (see wide_vector_log_in_use,
// vector_log_in_use); else std::log.
void log_like_libm(const double* x, double* out, std::size_t n);

// The spectral entropy -sum p ln p, p = |v[i]| / total over the finite v[i] with
// p > 0, summed in index order: the plain loop's bits, with its logs (and shares)
// eight or four at a time where log_like_libm's are (entropy_kernel_in_use()).
double entropy_of_shares(const float* v, std::size_t n, double total);

// The loops entropy_of_shares() picks from; each gives the plain loop's bits.
enum class EntropyKernel { plain, avx2, avx512 };
EntropyKernel entropy_kernel_in_use();
// One of them, for tests and benches: avx2 only where cpu_has_avx2_fma(), avx512 only
// where cpu_has_avx512().
double entropy_of_shares_with(EntropyKernel kernel, const float* v, std::size_t n, double total);

// True when log_like_libm runs the AVX2/FMA kernel: the CPU has AVX2 and FMA and a
// one-time comparison with std::log on fixed inputs agreed bit for bit.
bool vector_log_in_use();

// The CPU has AVX2 and FMA, the features the kernel needs.
bool cpu_has_avx2_fma();

// The eight-lane kernel (AVX-512 F, DQ and VL, besides AVX2 and FMA): in use when the
// four-lane one is and its own one-time comparison with std::log agreed too.
bool cpu_has_avx512();
bool wide_vector_log_in_use();
void log_avx512(const double* x, double* out, std::size_t n);

// The AVX2/FMA kernel itself, for tests and benches: only when cpu_has_avx2_fma().
void log_avx2_fma(const double* x, double* out, std::size_t n);

}  // namespace orbit
