// SPDX-License-Identifier: Apache-2.0
#pragma once
// Natural log of many doubles at once with exactly the bits std::log gives here,
// so the spectral entropy (and every decision after it) stays bit-identical.

#include <cstddef>

namespace orbit {

// out[i] = std::log(x[i]) bit for bit, for i < n (out may be x). Four lanes at a
// time on CPUs where that is proven equal (see vector_log_in_use); else std::log.
void log_like_libm(const double* x, double* out, std::size_t n);

// The spectral entropy -sum p ln p, p = |v[i]| / total over the finite v[i] with
// p > 0, summed in index order: the plain loop's bits, with its logs (and shares)
// four at a time where log_like_libm's are.
double entropy_of_shares(const float* v, std::size_t n, double total);

// True when log_like_libm runs the AVX2/FMA kernel: the CPU has AVX2 and FMA and a
// one-time comparison with std::log on fixed inputs agreed bit for bit.
bool vector_log_in_use();

// The CPU has AVX2 and FMA, the features the kernel needs.
bool cpu_has_avx2_fma();

// The AVX2/FMA kernel itself, for tests and benches: only when cpu_has_avx2_fma().
void log_avx2_fma(const double* x, double* out, std::size_t n);

}  // namespace orbit
