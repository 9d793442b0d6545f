// SPDX-License-Identifier: Apache-2.0
// Port of ARM optimized-routines math/log.c, log_data.c ((c) 2018 Arm Ltd; MIT OR Apache-2.0 WITH LLVM-exception).
#include "controllers/vector_log.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 reads the AVX-512 headers' deliberately undefined vectors (_mm512_undefined_pd)
// as uninitialized wherever they inline: a known false positive, silenced for them only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#define ORBIT_VECTOR_LOG_X86 1
#endif

namespace orbit {

// Why a port and not a faster log: decisions must replay bit for bit, so every log
// must be the one glibc returns. glibc 2.36 picks its log by CPU at load time
// (ifunc): on CPUs with AVX2 and FMA it is __log_fma, the optimized-routines
// algorithm below (N = 128 table, degree-6 polynomial, a degree-12 one near 1.0)
// compiled with FMA contraction. This kernel repeats that variant's arithmetic,
// every fused multiply-add where glibc's binary has one, four lanes at a time.
// Elsewhere (no FMA: glibc's SSE2 variant, another libm) its bits are not
// promised, so log_like_libm uses it only on AVX2+FMA CPUs and only after a
// one-time comparison with std::log agreed; otherwise it calls std::log.

#ifdef ORBIT_VECTOR_LOG_X86
namespace {

struct LogTableEntry {
  double invc;  // 1/c, c near the centre of the subinterval
  double logc;  // (double)log(c)
};

constexpr int kTableBits = 7;
constexpr std::uint64_t kOff = 0x3fe6000000000000ULL;  // z = x / 2^k lies in [OFF, 2 OFF)
constexpr double kLn2hi = 0x1.62e42fefa3800p-1;
constexpr double kLn2lo = 0x1.ef35793c76730p-45;
// log1p(r) - r on |r| < 1/256 (the first coefficient, 1, is implicit).
constexpr double kA[5] = {-0x1.0000000000001p-1, 0x1.555555551305bp-2, -0x1.fffffffeb459p-3, 0x1.999b324f10111p-3,
                          -0x1.55575e506c89fp-3};
// log1p(r) near x == 1 (|r| < 1/16).
constexpr double kB[11] = {-0x1p-1,
                           0x1.5555555555577p-2,
                           -0x1.ffffffffffdcbp-3,
                           0x1.999999995dd0cp-3,
                           -0x1.55555556745a7p-3,
                           0x1.24924a344de3p-3,
                           -0x1.fffffa4423d65p-4,
                           0x1.c7184282ad6cap-4,
                           -0x1.999eb43b068ffp-4,
                           0x1.78182f7afd085p-4,
                           -0x1.5521375d145cdp-4};
// The near-1 band: asuint64(1 - 0x1p-4) <= ix < asuint64(1 + 0x1.09p-4).
constexpr std::int64_t kNearOneLo = 0x3fee000000000000LL;
constexpr std::int64_t kNearOneWidth = 0x3ff1090000000000LL - kNearOneLo;

alignas(64) constexpr LogTableEntry kTable[1 << kTableBits] = {
    {0x1.734f0c3e0de9fp+0, -0x1.7cc7f79e69000p-2}, {0x1.713786a2ce91fp+0, -0x1.76feec20d0000p-2},
    {0x1.6f26008fab5a0p+0, -0x1.713e31351e000p-2}, {0x1.6d1a61f138c7dp+0, -0x1.6b85b38287800p-2},
    {0x1.6b1490bc5b4d1p+0, -0x1.65d5590807800p-2}, {0x1.69147332f0cbap+0, -0x1.602d076180000p-2},
    {0x1.6719f18224223p+0, -0x1.5a8ca86909000p-2}, {0x1.6524f99a51ed9p+0, -0x1.54f4356035000p-2},
    {0x1.63356aa8f24c4p+0, -0x1.4f637c36b4000p-2}, {0x1.614b36b9ddc14p+0, -0x1.49da7fda85000p-2},
    {0x1.5f66452c65c4cp+0, -0x1.445923989a800p-2}, {0x1.5d867b5912c4fp+0, -0x1.3edf439b0b800p-2},
    {0x1.5babccb5b90dep+0, -0x1.396ce448f7000p-2}, {0x1.59d61f2d91a78p+0, -0x1.3401e17bda000p-2},
    {0x1.5805612465687p+0, -0x1.2e9e2ef468000p-2}, {0x1.56397cee76bd3p+0, -0x1.2941b3830e000p-2},
    {0x1.54725e2a77f93p+0, -0x1.23ec58cda8800p-2}, {0x1.52aff42064583p+0, -0x1.1e9e129279000p-2},
    {0x1.50f22dbb2bddfp+0, -0x1.1956d2b48f800p-2}, {0x1.4f38f4734ded7p+0, -0x1.141679ab9f800p-2},
    {0x1.4d843cfde2840p+0, -0x1.0edd094ef9800p-2}, {0x1.4bd3ec078a3c8p+0, -0x1.09aa518db1000p-2},
    {0x1.4a27fc3e0258ap+0, -0x1.047e65263b800p-2}, {0x1.4880524d48434p+0, -0x1.feb224586f000p-3},
    {0x1.46dce1b192d0bp+0, -0x1.f474a7517b000p-3}, {0x1.453d9d3391854p+0, -0x1.ea4443d103000p-3},
    {0x1.43a2744b4845ap+0, -0x1.e020d44e9b000p-3}, {0x1.420b54115f8fbp+0, -0x1.d60a22977f000p-3},
    {0x1.40782da3ef4b1p+0, -0x1.cc00104959000p-3}, {0x1.3ee8f5d57fe8fp+0, -0x1.c202956891000p-3},
    {0x1.3d5d9a00b4ce9p+0, -0x1.b81178d811000p-3}, {0x1.3bd60c010c12bp+0, -0x1.ae2c9ccd3d000p-3},
    {0x1.3a5242b75dab8p+0, -0x1.a45402e129000p-3}, {0x1.38d22cd9fd002p+0, -0x1.9a877681df000p-3},
    {0x1.3755bc5847a1cp+0, -0x1.90c6d69483000p-3}, {0x1.35dce49ad36e2p+0, -0x1.87120a645c000p-3},
    {0x1.34679984dd440p+0, -0x1.7d68fb4143000p-3}, {0x1.32f5cceffcb24p+0, -0x1.73cb83c627000p-3},
    {0x1.3187775a10d49p+0, -0x1.6a39a9b376000p-3}, {0x1.301c8373e3990p+0, -0x1.60b3154b7a000p-3},
    {0x1.2eb4ebb95f841p+0, -0x1.5737d76243000p-3}, {0x1.2d50a0219a9d1p+0, -0x1.4dc7b8fc23000p-3},
    {0x1.2bef9a8b7fd2ap+0, -0x1.4462c51d20000p-3}, {0x1.2a91c7a0c1babp+0, -0x1.3b08abc830000p-3},
    {0x1.293726014b530p+0, -0x1.31b996b490000p-3}, {0x1.27dfa5757a1f5p+0, -0x1.2875490a44000p-3},
    {0x1.268b39b1d3bbfp+0, -0x1.1f3b9f879a000p-3}, {0x1.2539d838ff5bdp+0, -0x1.160c8252ca000p-3},
    {0x1.23eb7aac9083bp+0, -0x1.0ce7f57f72000p-3}, {0x1.22a012ba940b6p+0, -0x1.03cdc49fea000p-3},
    {0x1.2157996cc4132p+0, -0x1.f57bdbc4b8000p-4}, {0x1.201201dd2fc9bp+0, -0x1.e370896404000p-4},
    {0x1.1ecf4494d480bp+0, -0x1.d17983ef94000p-4}, {0x1.1d8f5528f6569p+0, -0x1.bf9674ed8a000p-4},
    {0x1.1c52311577e7cp+0, -0x1.adc79202f6000p-4}, {0x1.1b17c74cb26e9p+0, -0x1.9c0c3e7288000p-4},
    {0x1.19e010c2c1ab6p+0, -0x1.8a646b372c000p-4}, {0x1.18ab07bb670bdp+0, -0x1.78d01b3ac0000p-4},
    {0x1.1778a25efbcb6p+0, -0x1.674f145380000p-4}, {0x1.1648d354c31dap+0, -0x1.55e0e6d878000p-4},
    {0x1.151b990275fddp+0, -0x1.4485cdea1e000p-4}, {0x1.13f0ea432d24cp+0, -0x1.333d94d6aa000p-4},
    {0x1.12c8b7210f9dap+0, -0x1.22079f8c56000p-4}, {0x1.11a3028ecb531p+0, -0x1.10e4698622000p-4},
    {0x1.107fbda8434afp+0, -0x1.ffa6c6ad20000p-5}, {0x1.0f5ee0f4e6bb3p+0, -0x1.dda8d4a774000p-5},
    {0x1.0e4065d2a9fcep+0, -0x1.bbcece4850000p-5}, {0x1.0d244632ca521p+0, -0x1.9a1894012c000p-5},
    {0x1.0c0a77ce2981ap+0, -0x1.788583302c000p-5}, {0x1.0af2f83c636d1p+0, -0x1.5715e67d68000p-5},
    {0x1.09ddb98a01339p+0, -0x1.35c8a49658000p-5}, {0x1.08cabaf52e7dfp+0, -0x1.149e364154000p-5},
    {0x1.07b9f2f4e28fbp+0, -0x1.e72c082eb8000p-6}, {0x1.06ab58c358f19p+0, -0x1.a55f152528000p-6},
    {0x1.059eea5ecf92cp+0, -0x1.63d62cf818000p-6}, {0x1.04949cdd12c90p+0, -0x1.228fb8caa0000p-6},
    {0x1.038c6c6f0ada9p+0, -0x1.c317b20f90000p-7}, {0x1.02865137932a9p+0, -0x1.419355daa0000p-7},
    {0x1.0182427ea7348p+0, -0x1.81203c2ec0000p-8}, {0x1.008040614b195p+0, -0x1.0040979240000p-9},
    {0x1.fe01ff726fa1ap-1, 0x1.feff384900000p-9},  {0x1.fa11cc261ea74p-1, 0x1.7dc41353d0000p-7},
    {0x1.f6310b081992ep-1, 0x1.3cea3c4c28000p-6},  {0x1.f25f63ceeadcdp-1, 0x1.b9fc114890000p-6},
    {0x1.ee9c8039113e7p-1, 0x1.1b0d8ce110000p-5},  {0x1.eae8078cbb1abp-1, 0x1.58a5bd001c000p-5},
    {0x1.e741aa29d0c9bp-1, 0x1.95c8340d88000p-5},  {0x1.e3a91830a99b5p-1, 0x1.d276aef578000p-5},
    {0x1.e01e009609a56p-1, 0x1.07598e598c000p-4},  {0x1.dca01e577bb98p-1, 0x1.253f5e30d2000p-4},
    {0x1.d92f20b7c9103p-1, 0x1.42edd8b380000p-4},  {0x1.d5cac66fb5ccep-1, 0x1.606598757c000p-4},
    {0x1.d272caa5ede9dp-1, 0x1.7da76356a0000p-4},  {0x1.cf26e3e6b2ccdp-1, 0x1.9ab434e1c6000p-4},
    {0x1.cbe6da2a77902p-1, 0x1.b78c7bb0d6000p-4},  {0x1.c8b266d37086dp-1, 0x1.d431332e72000p-4},
    {0x1.c5894bd5d5804p-1, 0x1.f0a3171de6000p-4},  {0x1.c26b533bb9f8cp-1, 0x1.067152b914000p-3},
    {0x1.bf583eeece73fp-1, 0x1.147858292b000p-3},  {0x1.bc4fd75db96c1p-1, 0x1.2266ecdca3000p-3},
    {0x1.b951e0c864a28p-1, 0x1.303d7a6c55000p-3},  {0x1.b65e2c5ef3e2cp-1, 0x1.3dfc33c331000p-3},
    {0x1.b374867c9888bp-1, 0x1.4ba366b7a8000p-3},  {0x1.b094b211d304ap-1, 0x1.5933928d1f000p-3},
    {0x1.adbe885f2ef7ep-1, 0x1.66acd2418f000p-3},  {0x1.aaf1d31603da2p-1, 0x1.740f8ec669000p-3},
    {0x1.a82e63fd358a7p-1, 0x1.815c0f51af000p-3},  {0x1.a5740ef09738bp-1, 0x1.8e92954f68000p-3},
    {0x1.a2c2a90ab4b27p-1, 0x1.9bb3602f84000p-3},  {0x1.a01a01393f2d1p-1, 0x1.a8bed1c2c0000p-3},
    {0x1.9d79f24db3c1bp-1, 0x1.b5b515c01d000p-3},  {0x1.9ae2505c7b190p-1, 0x1.c2967ccbcc000p-3},
    {0x1.9852ef297ce2fp-1, 0x1.cf635d5486000p-3},  {0x1.95cbaeea44b75p-1, 0x1.dc1bd3446c000p-3},
    {0x1.934c69de74838p-1, 0x1.e8c01b8cfe000p-3},  {0x1.90d4f2f6752e6p-1, 0x1.f5509c0179000p-3},
    {0x1.8e6528effd79dp-1, 0x1.00e6c121fb800p-2},  {0x1.8bfce9fcc007cp-1, 0x1.071b80e93d000p-2},
    {0x1.899c0dabec30ep-1, 0x1.0d46b9e867000p-2},  {0x1.87427aa2317fbp-1, 0x1.13687334bd000p-2},
    {0x1.84f00acb39a08p-1, 0x1.1980d67234800p-2},  {0x1.82a49e8653e55p-1, 0x1.1f8ffe0cc8000p-2},
    {0x1.8060195f40260p-1, 0x1.2595fd7636800p-2},  {0x1.7e22563e0a329p-1, 0x1.2b9300914a800p-2},
    {0x1.7beb377dcb5adp-1, 0x1.3187210436000p-2},  {0x1.79baa679725c2p-1, 0x1.377266dec1800p-2},
    {0x1.77907f2170657p-1, 0x1.3d54ffbaf3000p-2},  {0x1.756cadbd6130cp-1, 0x1.432eee32fe000p-2},
};

#define ORBIT_AVX2_FMA __attribute__((target("avx2,fma")))

// log1p(x - 1) for lanes near 1.0 (glibc's branch for |x - 1| < ~1/16).
ORBIT_AVX2_FMA inline __m256d log_near_one4(__m256d x) {
  const __m256d r = _mm256_sub_pd(x, _mm256_set1_pd(1.0));
  const __m256d r2 = _mm256_mul_pd(r, r);
  const __m256d r3 = _mm256_mul_pd(r, r2);
  const __m256d q = _mm256_fmadd_pd(r2, _mm256_set1_pd(kB[3]),
                                    _mm256_fmadd_pd(r, _mm256_set1_pd(kB[2]), _mm256_set1_pd(kB[1])));
  const __m256d s = _mm256_fmadd_pd(r2, _mm256_set1_pd(kB[6]),
                                    _mm256_fmadd_pd(r, _mm256_set1_pd(kB[5]), _mm256_set1_pd(kB[4])));
  __m256d t = _mm256_fmadd_pd(r2, _mm256_set1_pd(kB[9]),
                              _mm256_fmadd_pd(r, _mm256_set1_pd(kB[8]), _mm256_set1_pd(kB[7])));
  t = _mm256_fmadd_pd(r3, _mm256_set1_pd(kB[10]), t);
  const __m256d poly = _mm256_fmadd_pd(_mm256_fmadd_pd(t, r3, s), r3, q);
  // r split in halves whose square is exact: hi + lo = r - r^2 / 2 with little error.
  const __m256d two27 = _mm256_set1_pd(0x1p27);
  const __m256d rhi = _mm256_fnmadd_pd(two27, r, _mm256_fmadd_pd(r, two27, r));
  const __m256d rlo = _mm256_sub_pd(r, rhi);
  const __m256d rhi2 = _mm256_mul_pd(rhi, rhi);
  const __m256d hi = _mm256_fmadd_pd(rhi2, _mm256_set1_pd(kB[0]), r);
  __m256d lo = _mm256_fmadd_pd(rhi2, _mm256_set1_pd(kB[0]), _mm256_sub_pd(r, hi));
  lo = _mm256_fmadd_pd(_mm256_mul_pd(_mm256_set1_pd(kB[0]), rlo), _mm256_add_pd(r, rhi), lo);
  return _mm256_add_pd(hi, _mm256_fmadd_pd(poly, r3, lo));
}

// log(x) for positive normal finite lanes: x = 2^k z, log x = k ln2 + log c + log1p(z/c - 1).
ORBIT_AVX2_FMA inline __m256d log_table4(__m256i ix) {
  const __m256i tmp = _mm256_sub_epi64(ix, _mm256_set1_epi64x(static_cast<long long>(kOff)));
  const __m256i i = _mm256_and_si256(_mm256_srli_epi64(tmp, 52 - kTableBits),
                                     _mm256_set1_epi64x((1 << kTableBits) - 1));
  // k = tmp >> 52 (arithmetic): the top 32 bits of each lane shifted by 20.
  const __m256i tops = _mm256_permutevar8x32_epi32(tmp, _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7));
  const __m256d kd = _mm256_cvtepi32_pd(_mm_srai_epi32(_mm256_castsi256_si128(tops), 20));
  const __m256i iz = _mm256_sub_epi64(
      ix, _mm256_and_si256(tmp, _mm256_set1_epi64x(static_cast<long long>(0xfffULL << 52))));
  const __m256i slot = _mm256_slli_epi64(i, 1);  // two doubles per entry
  const __m256d invc = _mm256_i64gather_pd(&kTable[0].invc, slot, 8);
  const __m256d logc = _mm256_i64gather_pd(&kTable[0].logc, slot, 8);
  const __m256d z = _mm256_castsi256_pd(iz);
  const __m256d r = _mm256_fmadd_pd(z, invc, _mm256_set1_pd(-1.0));
  const __m256d w = _mm256_fmadd_pd(kd, _mm256_set1_pd(kLn2hi), logc);
  const __m256d hi = _mm256_add_pd(r, w);
  const __m256d lo = _mm256_fmadd_pd(kd, _mm256_set1_pd(kLn2lo), _mm256_add_pd(_mm256_sub_pd(w, hi), r));
  const __m256d r2 = _mm256_mul_pd(r, r);
  const __m256d r3 = _mm256_mul_pd(r, r2);
  const __m256d poly = _mm256_fmadd_pd(_mm256_fmadd_pd(r, _mm256_set1_pd(kA[4]), _mm256_set1_pd(kA[3])), r2,
                                       _mm256_fmadd_pd(r, _mm256_set1_pd(kA[2]), _mm256_set1_pd(kA[1])));
  return _mm256_add_pd(_mm256_fmadd_pd(r3, poly, _mm256_fmadd_pd(r2, _mm256_set1_pd(kA[0]), lo)), hi);
}

// Four logs; lanes outside glibc's main path (zero, negative, subnormal, inf, NaN)
// take std::log itself, so errno and exceptions are libm's too.
ORBIT_AVX2_FMA inline __m256d log4(__m256d x) {
  const __m256i ix = _mm256_castpd_si256(x);
  __m256d y = log_table4(ix);
  const __m256i d = _mm256_sub_epi64(ix, _mm256_set1_epi64x(kNearOneLo));
  const __m256i near_one = _mm256_and_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(kNearOneWidth), d),
                                            _mm256_cmpgt_epi64(d, _mm256_set1_epi64x(-1)));
  if (!_mm256_testz_si256(near_one, near_one)) y = _mm256_blendv_pd(y, log_near_one4(x), _mm256_castsi256_pd(near_one));
  // Special: the top 16 bits outside [0x0010, 0x7ff0), i.e. as signed ix < 2^52 or ix >= 0x7ff0 << 48.
  const __m256i special = _mm256_or_si256(_mm256_cmpgt_epi64(_mm256_set1_epi64x(0x0010000000000000LL), ix),
                                          _mm256_cmpgt_epi64(ix, _mm256_set1_epi64x(0x7fefffffffffffffLL)));
  const int lanes = _mm256_movemask_pd(_mm256_castsi256_pd(special));
  if (lanes == 0) return y;
  alignas(32) double in[4];
  alignas(32) double out[4];
  _mm256_store_pd(in, x);
  _mm256_store_pd(out, y);
  for (int l = 0; l < 4; ++l) {
    if (lanes & (1 << l)) out[l] = std::log(in[l]);
  }
  return _mm256_load_pd(out);
}

ORBIT_AVX2_FMA void log_avx2_fma_impl(const double* x, double* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(out + i, log4(_mm256_loadu_pd(x + i)));
  if (i < n) {
    double in[4] = {1.0, 1.0, 1.0, 1.0};
    double res[4];
    std::memcpy(in, x + i, (n - i) * sizeof(double));
    _mm256_storeu_pd(res, log4(_mm256_loadu_pd(in)));
    std::memcpy(out + i, res, (n - i) * sizeof(double));
  }
}

// h minus each lane of `terms`, lane 0 first: the plain loop's order of subtraction.
ORBIT_AVX2_FMA inline double subtract_in_order(double h, __m256d terms) {
  const __m128d low = _mm256_castpd256_pd128(terms);
  const __m128d high = _mm256_extractf128_pd(terms, 1);
  h -= _mm_cvtsd_f64(low);
  h -= _mm_cvtsd_f64(_mm_unpackhi_pd(low, low));
  h -= _mm_cvtsd_f64(high);
  h -= _mm_cvtsd_f64(_mm_unpackhi_pd(high, high));
  return h;
}

// Takes four values' terms -p ln p off h, in index order. Lanes that the plain loop
// skips (non-finite v, p == 0) take x = 1 and add 1 * log(1) = +0: h - (+0) is h to
// the bit.
ORBIT_AVX2_FMA inline double subtract_entropy_terms4(double h, __m128 values, __m256d total) {
  const __m256d a = _mm256_and_pd(_mm256_cvtps_pd(values),
                                  _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL)));
  const __m256d finite = _mm256_cmp_pd(a, _mm256_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ);
  const __m256d p = _mm256_and_pd(_mm256_div_pd(a, total), finite);
  const __m256d x = _mm256_blendv_pd(_mm256_set1_pd(1.0), p, _mm256_cmp_pd(p, _mm256_setzero_pd(), _CMP_GT_OQ));
  return subtract_in_order(h, _mm256_mul_pd(x, log4(x)));
}

// The entropy loop with four shares and logs at a time, the sum still scalar.
ORBIT_AVX2_FMA double entropy_of_shares_avx2(const float* v, std::size_t n, double total) {
  const __m256d totals = _mm256_set1_pd(total);
  double h = 0.0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) h = subtract_entropy_terms4(h, _mm_loadu_ps(v + i), totals);
  if (i < n) {
    float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // past the end: p = 0, skipped
    std::memcpy(tail, v + i, (n - i) * sizeof(float));
    h = subtract_entropy_terms4(h, _mm_loadu_ps(tail), totals);
  }
  return h;
}

// The same kernel eight lanes wide, for CPUs with AVX-512 (F, DQ): the same
// operations in the same order, each fused multiply-add where the four-lane one has
// it, so each lane's bits are the same; half the instructions per log.
#define ORBIT_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))

ORBIT_AVX512 inline __m512d log_near_one8(__m512d x) {
  const __m512d r = _mm512_sub_pd(x, _mm512_set1_pd(1.0));
  const __m512d r2 = _mm512_mul_pd(r, r);
  const __m512d r3 = _mm512_mul_pd(r, r2);
  const __m512d q = _mm512_fmadd_pd(r2, _mm512_set1_pd(kB[3]),
                                    _mm512_fmadd_pd(r, _mm512_set1_pd(kB[2]), _mm512_set1_pd(kB[1])));
  const __m512d s = _mm512_fmadd_pd(r2, _mm512_set1_pd(kB[6]),
                                    _mm512_fmadd_pd(r, _mm512_set1_pd(kB[5]), _mm512_set1_pd(kB[4])));
  __m512d t = _mm512_fmadd_pd(r2, _mm512_set1_pd(kB[9]),
                              _mm512_fmadd_pd(r, _mm512_set1_pd(kB[8]), _mm512_set1_pd(kB[7])));
  t = _mm512_fmadd_pd(r3, _mm512_set1_pd(kB[10]), t);
  const __m512d poly = _mm512_fmadd_pd(_mm512_fmadd_pd(t, r3, s), r3, q);
  const __m512d two27 = _mm512_set1_pd(0x1p27);
  const __m512d rhi = _mm512_fnmadd_pd(two27, r, _mm512_fmadd_pd(r, two27, r));
  const __m512d rlo = _mm512_sub_pd(r, rhi);
  const __m512d rhi2 = _mm512_mul_pd(rhi, rhi);
  const __m512d hi = _mm512_fmadd_pd(rhi2, _mm512_set1_pd(kB[0]), r);
  __m512d lo = _mm512_fmadd_pd(rhi2, _mm512_set1_pd(kB[0]), _mm512_sub_pd(r, hi));
  lo = _mm512_fmadd_pd(_mm512_mul_pd(_mm512_set1_pd(kB[0]), rlo), _mm512_add_pd(r, rhi), lo);
  return _mm512_add_pd(hi, _mm512_fmadd_pd(poly, r3, lo));
}

ORBIT_AVX512 inline __m512d log_table8(__m512i ix) {
  const __m512i tmp = _mm512_sub_epi64(ix, _mm512_set1_epi64(static_cast<long long>(kOff)));
  const __m512i i = _mm512_and_si512(_mm512_srli_epi64(tmp, 52 - kTableBits), _mm512_set1_epi64((1 << kTableBits) - 1));
  // k = tmp >> 52 (arithmetic), a small integer: its conversion is exact either way.
  const __m512d kd = _mm512_cvtepi64_pd(_mm512_srai_epi64(tmp, 52));
  const __m512i iz = _mm512_sub_epi64(ix,
                                      _mm512_and_si512(tmp, _mm512_set1_epi64(static_cast<long long>(0xfffULL << 52))));
  const __m512i slot = _mm512_slli_epi64(i, 1);  // two doubles per entry
  const __m512d invc = _mm512_i64gather_pd(slot, &kTable[0].invc, 8);
  const __m512d logc = _mm512_i64gather_pd(slot, &kTable[0].logc, 8);
  const __m512d z = _mm512_castsi512_pd(iz);
  const __m512d r = _mm512_fmadd_pd(z, invc, _mm512_set1_pd(-1.0));
  const __m512d w = _mm512_fmadd_pd(kd, _mm512_set1_pd(kLn2hi), logc);
  const __m512d hi = _mm512_add_pd(r, w);
  const __m512d lo = _mm512_fmadd_pd(kd, _mm512_set1_pd(kLn2lo), _mm512_add_pd(_mm512_sub_pd(w, hi), r));
  const __m512d r2 = _mm512_mul_pd(r, r);
  const __m512d r3 = _mm512_mul_pd(r, r2);
  const __m512d poly = _mm512_fmadd_pd(_mm512_fmadd_pd(r, _mm512_set1_pd(kA[4]), _mm512_set1_pd(kA[3])), r2,
                                       _mm512_fmadd_pd(r, _mm512_set1_pd(kA[2]), _mm512_set1_pd(kA[1])));
  return _mm512_add_pd(_mm512_fmadd_pd(r3, poly, _mm512_fmadd_pd(r2, _mm512_set1_pd(kA[0]), lo)), hi);
}

ORBIT_AVX512 inline __m512d log8(__m512d x) {
  const __m512i ix = _mm512_castpd_si512(x);
  __m512d y = log_table8(ix);
  // asuint64(x) - kNearOneLo below kNearOneWidth, unsigned: the near-1 band.
  const __mmask8 near_one = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(ix, _mm512_set1_epi64(kNearOneLo)),
                                                    _mm512_set1_epi64(kNearOneWidth));
  if (near_one) y = _mm512_mask_blend_pd(near_one, y, log_near_one8(x));
  const __mmask8 special = _mm512_cmplt_epi64_mask(ix, _mm512_set1_epi64(0x0010000000000000LL)) |
                           _mm512_cmpgt_epi64_mask(ix, _mm512_set1_epi64(0x7fefffffffffffffLL));
  if (special == 0) return y;
  alignas(64) double in[8];
  alignas(64) double out[8];
  _mm512_store_pd(in, x);
  _mm512_store_pd(out, y);
  for (int l = 0; l < 8; ++l) {
    if (special & (1u << l)) out[l] = std::log(in[l]);
  }
  return _mm512_load_pd(out);
}

ORBIT_AVX512 void log_avx512_impl(const double* x, double* out, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm512_storeu_pd(out + i, log8(_mm512_loadu_pd(x + i)));
  if (i < n) {
    const auto lanes = static_cast<__mmask8>((1u << (n - i)) - 1);
    _mm512_mask_storeu_pd(out + i, lanes, log8(_mm512_mask_loadu_pd(_mm512_set1_pd(1.0), lanes, x + i)));
  }
}

// As subtract_entropy_terms4, eight values; the terms still leave h one at a time.
ORBIT_AVX512 inline double subtract_entropy_terms8(double h, __m256 values, __m512d total) {
  const __m512d a = _mm512_abs_pd(_mm512_cvtps_pd(values));
  const __mmask8 finite = _mm512_cmp_pd_mask(a, _mm512_set1_pd(std::numeric_limits<double>::infinity()), _CMP_LT_OQ);
  const __m512d p = _mm512_maskz_div_pd(finite, a, total);
  const __m512d x = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(p, _mm512_setzero_pd(), _CMP_GT_OQ), _mm512_set1_pd(1.0),
                                         p);
  const __m512d terms = _mm512_mul_pd(x, log8(x));
  h = subtract_in_order(h, _mm512_castpd512_pd256(terms));
  return subtract_in_order(h, _mm512_extractf64x4_pd(terms, 1));
}

ORBIT_AVX512 double entropy_of_shares_avx512(const float* v, std::size_t n, double total) {
  const __m512d totals = _mm512_set1_pd(total);
  double h = 0.0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) h = subtract_entropy_terms8(h, _mm256_loadu_ps(v + i), totals);
  if (i < n) {  // past the end: 0, p = 0, skipped
    const auto lanes = static_cast<__mmask8>((1u << (n - i)) - 1);
    h = subtract_entropy_terms8(h, _mm256_maskz_loadu_ps(lanes, v + i), totals);
  }
  return h;
}

// Fixed inputs covering every path: each table interval's two edges (several
// exponents), the near-1 band and its edges, powers of two, subnormals, specials,
// and a spread of pseudo-random values in (0, 1].
bool kernel_matches_std_log(void (*kernel)(const double*, double*, std::size_t)) {
  constexpr std::size_t kMax = 4096;
  static double in[kMax];
  std::size_t n = 0;
  auto push = [&](double v) {
    if (n < kMax) in[n++] = v;
  };
  auto from_bits = [](std::uint64_t b) {
    double v;
    std::memcpy(&v, &b, sizeof v);
    return v;
  };
  for (std::uint64_t i = 0; i < (1u << kTableBits); ++i) {
    for (std::int64_t e : {-3, -1, 0, 1, 2, 30, 700}) {  // x = z / 2^e
      const std::uint64_t base = static_cast<std::uint64_t>(static_cast<std::int64_t>(kOff) -
                                                            e * (std::int64_t{1} << 52));
      push(from_bits(base + (i << (52 - kTableBits))));
      push(from_bits(base + ((i + 1) << (52 - kTableBits)) - 1));
    }
  }
  const std::uint64_t lo = static_cast<std::uint64_t>(kNearOneLo), hi = lo + static_cast<std::uint64_t>(kNearOneWidth);
  for (std::uint64_t b : {lo - 1, lo, lo + 1, hi - 1, hi, hi + 1}) push(from_bits(b));
  for (int k = -8; k <= 8; ++k) push(1.0 + k * 0x1p-52), push(1.0 + k * 0x1p-7);
  for (int e = -1074; e <= 1023; e += 7) push(std::ldexp(1.0, e));
  for (double v : {0x1p-1074, 0x1.8p-1060, 0x1.fffffffffffffp-1023, 0x1p-1022, 1.0, 2.0, 0.5, 1e300}) push(v);
  std::uint64_t s = 0x9e3779b97f4a7c15ULL;  // splitmix64
  while (n < kMax) {
    s += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    push(static_cast<double>((z >> 11) + 1) * 0x1p-53);  // (0, 1]
  }
  static double got[kMax];
  kernel(in, got, n);
  for (std::size_t i = 0; i < n; ++i) {
    const double want = std::log(in[i]);
    if (std::memcmp(&want, &got[i], sizeof want) != 0) return false;
  }
  return true;
}

}  // namespace
#endif  // ORBIT_VECTOR_LOG_X86

bool cpu_has_avx2_fma() {
#ifdef ORBIT_VECTOR_LOG_X86
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#ifdef ORBIT_VECTOR_LOG_X86
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool vector_log_in_use() {
#ifdef ORBIT_VECTOR_LOG_X86
  static const bool in_use = cpu_has_avx2_fma() && kernel_matches_std_log(log_avx2_fma_impl);
  return in_use;
#else
  return false;
#endif
}

bool wide_vector_log_in_use() {
#ifdef ORBIT_VECTOR_LOG_X86
  static const bool in_use = vector_log_in_use() && cpu_has_avx512() && kernel_matches_std_log(log_avx512_impl);
  return in_use;
#else
  return false;
#endif
}

void log_avx2_fma(const double* x, double* out, std::size_t n) {
#ifdef ORBIT_VECTOR_LOG_X86
  log_avx2_fma_impl(x, out, n);
#else
  for (std::size_t i = 0; i < n; ++i) out[i] = std::log(x[i]);
#endif
}

void log_avx512(const double* x, double* out, std::size_t n) {
#ifdef ORBIT_VECTOR_LOG_X86
  log_avx512_impl(x, out, n);
#else
  for (std::size_t i = 0; i < n; ++i) out[i] = std::log(x[i]);
#endif
}

double entropy_of_shares_with(EntropyKernel kernel, const float* v, std::size_t n, double total) {
#ifdef ORBIT_VECTOR_LOG_X86
  if (kernel == EntropyKernel::avx512) return entropy_of_shares_avx512(v, n, total);
  if (kernel == EntropyKernel::avx2) return entropy_of_shares_avx2(v, n, total);
#endif
  double h = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double x = v[i];
    if (!std::isfinite(x)) continue;
    const double p = std::abs(x) / total;
    if (p > 0.0) h -= p * std::log(p);
  }
  return h;
}

EntropyKernel entropy_kernel_in_use() {
  static const EntropyKernel kernel = wide_vector_log_in_use() ? EntropyKernel::avx512
                                      : vector_log_in_use()    ? EntropyKernel::avx2
                                                               : EntropyKernel::plain;
  return kernel;
}

double entropy_of_shares(const float* v, std::size_t n, double total) {
  return entropy_of_shares_with(entropy_kernel_in_use(), v, n, total);
}

void log_like_libm(const double* x, double* out, std::size_t n) {
  if (wide_vector_log_in_use()) {
    log_avx512(x, out, n);
    return;
  }
  if (vector_log_in_use()) {
    log_avx2_fma(x, out, n);
    return;
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = std::log(x[i]);
}

}  // namespace orbit
