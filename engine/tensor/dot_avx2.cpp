// AVX2 activation quantizers and dot products. Integer kernels multiply unsigned weight quants by
// signed 8-bit activations with maddubs (pairs of u8*s8 summed to i16; no saturation: |a| <= 127 and
// the weight quants are at most 63, or 127 via the sign trick), then madd by the group scales to i32.
// Per block the integer sums equal the scalar reference's; only the float combination order differs.
#include <immintrin.h>

#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

using namespace blocks;

namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Weights stream from RAM once per token: prefetching ahead lets the loads of the next rows overlap
// this row's arithmetic. Measured here (2 threads, cold 4096x2048): Q8_0 and Q4_K gain 10-25% at
// 2 KiB, F16 does best at 1 KiB. `bytes` is what one loop step consumes; one prefetch per line.
constexpr int kAheadQuant = 2048, kAheadFloat = 1024;
template <int Ahead>
inline void prefetch(const void* p, int bytes) {
    for (int o = 0; o < bytes; o += 64) _mm_prefetch(static_cast<const char*>(p) + Ahead + o, _MM_HINT_T0);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline int hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

inline float hmax_abs(const float* x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 32 floats * id -> 32 int8 (round to nearest even, clamped to +-127); returns their sum.
inline int quantize32(const float* x, float id, int8_t* q) {
    const __m256 vid = _mm256_set1_ps(id);
    const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
    __m256i v[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
        __m256i i = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid));
        v[k] = _mm256_max_epi32(_mm256_min_epi32(i, lim), nlim);
    }
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
    // packs work per 128-bit lane; the permute puts the 4-byte groups back in element order.
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
    return hsum_i32(sum);
}

void prepare_q8x32(const float* x, void* act, int64_t n) {
    ActQ8x32 a = act_q8x32(act, n);
    for (int64_t b = 0; b < n / QK; ++b) {
        const float amax = hmax_abs(x + b * QK, QK);
        const float id = amax >= kActTiny ? 127.f / amax : 0.f;
        a.d[b] = amax / 127.f;
        a.sum[b] = quantize32(x + b * QK, id, a.qs + b * QK);
    }
}

void prepare_q8x256(const float* x, void* act, int64_t n) {
    ActQ8x256 a = act_q8x256(act, n);
    for (int64_t b = 0; b < n / QKK; ++b) {
        const float* xb = x + b * QKK;
        const float amax = hmax_abs(xb, QKK);
        const float id = amax >= kActTiny ? 127.f / amax : 0.f;
        a.d[b] = amax / 127.f;
        for (int k = 0; k < QKK / 32; ++k) quantize32(xb + 32 * k, id, a.qs + b * QKK + 32 * k);
        // Sums of 16: widen to i16 and add neighbours with madd against ones.
        for (int k = 0; k < QKK / 32; ++k) {
            __m256i w0 = _mm256_cvtepi8_epi16(load128(a.qs + b * QKK + 32 * k));
            __m256i w1 = _mm256_cvtepi8_epi16(load128(a.qs + b * QKK + 32 * k + 16));
            a.bsums[b * 16 + 2 * k] = int16_t(hsum_i32(_mm256_madd_epi16(w0, _mm256_set1_epi16(1))));
            a.bsums[b * 16 + 2 * k + 1] = int16_t(hsum_i32(_mm256_madd_epi16(w1, _mm256_set1_epi16(1))));
        }
    }
}

// ---- float activations

inline float bf16(uint16_t h) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(h) << 16))); }

// 4 accumulators of 8 lanes hide the FMA latency; the tail (n % 8) is scalar.
template <int WBytes, class Load8, class Load1>
inline float dot_float(const void* w, const float* x, int64_t n, Load8 load8, Load1 load1) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        prefetch<kAheadFloat>(static_cast<const uint8_t*>(w) + i * WBytes, 32 * WBytes);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
            acc[k] = _mm256_fmadd_ps(load8(i + 8 * k), _mm256_loadu_ps(x + i + 8 * k), acc[k]);
    }
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load8(i), _mm256_loadu_ps(x + i), acc[0]);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < n; ++i) sum += load1(i) * x[i];
    return sum;
}

float dot_f32(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const float*>(row);
    return dot_float<4>(w, static_cast<const float*>(act), n, [w](int64_t i) { return _mm256_loadu_ps(w + i); },
                     [w](int64_t i) { return w[i]; });
}

float dot_f16(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const uint16_t*>(row);
    return dot_float<2>(w, static_cast<const float*>(act), n, [w](int64_t i) { return _mm256_cvtph_ps(load128(w + i)); },
                     [w](int64_t i) { return half(w[i]); });
}

float dot_bf16(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const uint16_t*>(row);
    return dot_float<2>(
        w, static_cast<const float*>(act), n,
        [w](int64_t i) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(w + i)), 16)); },
        [w](int64_t i) { return bf16(w[i]); });
}

// ---- 32-element blocks

float dot_q4_0(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q4_0*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    auto block = [&](int64_t b, __m256& acc) {
        const __m128i q = load128(w[b].qs);
        const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(nib, load256(a.qs + b * QK)), ones);
        s = _mm256_sub_epi32(s, _mm256_zextsi128_si256(_mm_cvtsi32_si128(8 * a.sum[b])));  // lane 0 takes the -8*sum
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(half(w[b].d) * a.d[b]), acc);
    };
    const int64_t nb = n / QK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        if (b % 4 == 0) prefetch<kAheadQuant>(w + b, 4 * int(sizeof *w));
        block(b, acc0);
        block(b + 1, acc1);
    }
    if (b < nb) block(b, acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
}

// signed * signed via maddubs: |w| as the unsigned operand, a with w's sign applied.
float dot_q8_0(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q8_0*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    auto block = [&](int64_t b, __m256& acc) {
        const __m256i q = load256(w[b].qs), x = load256(a.qs + b * QK);
        const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
        const __m256i s = _mm256_madd_epi16(p, ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(half(w[b].d) * a.d[b]), acc);
    };
    const int64_t nb = n / QK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        if (b % 4 == 0) prefetch<kAheadQuant>(w + b, 4 * int(sizeof *w));
        block(b, acc0);
        block(b + 1, acc1);
    }
    if (b < nb) block(b, acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
}

// ---- K-quants

// Shuffle masks over 8 i16 scales held in both 128-bit lanes: kBcast[k] puts scale k in all 16
// lanes; kPair[s] puts scale 2s in the low 8 lanes and 2s+1 in the high 8 (a 32-quant maddubs
// result covers two groups of 16, one per 128-bit lane).
// constexpr: built at compile time, so no code from this file runs before dispatch picks it.
struct Masks {
    alignas(32) uint8_t bcast[8][32] = {};
    alignas(32) uint8_t pair[4][32] = {};
    constexpr Masks() {
        for (int k = 0; k < 8; ++k)
            for (int i = 0; i < 32; ++i) bcast[k][i] = uint8_t(2 * k + (i & 1));
        for (int s = 0; s < 4; ++s)
            for (int i = 0; i < 32; ++i) pair[s][i] = uint8_t(2 * (2 * s + (i >= 16)) + (i & 1));
    }
};
constexpr Masks kMasks;

inline __m256i shuffle(__m256i v, const uint8_t* mask) { return _mm256_shuffle_epi8(v, load256(mask)); }

// 16 u8 scales (nibbles already split) -> both halves as i16 in both lanes
inline __m256i scales_i16(__m128i sc8, int half_index) {
    __m128i h = half_index ? _mm_unpackhi_epi64(sc8, sc8) : sc8;
    return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(h));
}

// 6-bit scales and mins of Q4_K/Q5_K: 8 scale bytes then 8 min bytes
inline __m128i k4_scales(const uint8_t* s12) {
    uint32_t u[3];
    std::memcpy(u, s12, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3f, m_lo = u[1] & 0x3f3f3f3f;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | ((u[0] >> 6) & 0x03030303) << 4;
    const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 6) & 0x03030303) << 4;
    return _mm_setr_epi32(int(sc_lo), int(sc_hi), int(m_lo), int(m_hi));
}

// sum_g m_g * (bsum_2g + bsum_2g+1): mins duplicated to 16 i16 lanes, madd with the 16 bsums.
inline __m256i k4_mins(__m128i scm, const int16_t* bsums) {
    const __m128i dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(scm, dup));
    return _mm256_madd_epi16(m16, load256(bsums));
}

float dot_q4_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q4_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m256i m4 = _mm256_set1_epi8(0xF);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m128i scm = k4_scales(w[b].scales);
        const __m256i sc = scales_i16(scm, 0);
        const __m256i imin = k4_mins(scm, a.bsums + b * 16);
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const __m256i qs = load256(w[b].qs + 32 * j);
            const __m256i lo = _mm256_and_si256(qs, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qs, 4), m4);
            const __m256i p0 = _mm256_maddubs_epi16(lo, load256(q8 + 64 * j));
            const __m256i p1 = _mm256_maddubs_epi16(hi, load256(q8 + 64 * j + 32));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, shuffle(sc, kMasks.bcast[2 * j])));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, shuffle(sc, kMasks.bcast[2 * j + 1])));
        }
        const float da = a.d[b];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(da * half(w[b].d)), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(da * half(w[b].dmin)), acc);
    }
    return hsum(acc);
}

float dot_q5_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q5_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m256i m4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m128i scm = k4_scales(w[b].scales);
        const __m256i sc = scales_i16(scm, 0);
        const __m256i imin = k4_mins(scm, a.bsums + b * 16);
        // Bit g of qh[l] is the fifth bit of element 32g + l: shift right g, mask bit 0, move to bit 4.
        __m256i hb = load256(w[b].qh);
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const __m256i qs = load256(w[b].qs + 32 * j);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(qs, m4), _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hb = _mm256_srli_epi16(hb, 1);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
            hb = _mm256_srli_epi16(hb, 1);
            const __m256i p0 = _mm256_maddubs_epi16(lo, load256(q8 + 64 * j));
            const __m256i p1 = _mm256_maddubs_epi16(hi, load256(q8 + 64 * j + 32));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, shuffle(sc, kMasks.bcast[2 * j])));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, shuffle(sc, kMasks.bcast[2 * j + 1])));
        }
        const float da = a.d[b];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(da * half(w[b].d)), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(da * half(w[b].dmin)), acc);
    }
    return hsum(acc);
}

float dot_q6_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q6_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m128i sc8 = load128(w[b].scales);
        // The "- 32" of every quant, as -32 * sum_g scale_g * bsum_g.
        const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), load256(a.bsums + b * 16));
        __m256i isum = _mm256_slli_epi32(corr, 5);
        isum = _mm256_sub_epi32(_mm256_setzero_si256(), isum);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
            const __m256i l0 = load256(w[b].ql + 64 * h), l1 = load256(w[b].ql + 64 * h + 32);
            __m256i qh = load256(w[b].qh + 32 * h);
            const __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                                   _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) {
                const __m256i u = _mm256_or_si256(lo[s], _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
                qh = _mm256_srli_epi16(qh, 2);
                const __m256i p = _mm256_maddubs_epi16(u, load256(q8 + 128 * h + 32 * s));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, shuffle(sc, kMasks.pair[s])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a.d[b] * half(w[b].d)), acc);
    }
    return hsum(acc);
}

float dot_q2_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q2_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m128i m4 = _mm_set1_epi8(0xF);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m128i raw = load128(w[b].scales);
        const __m128i sc8 = _mm_and_si128(raw, m4), m8 = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        const __m256i imin = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m8), load256(a.bsums + b * 16));
        __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m256i sc = scales_i16(sc8, h);
            __m256i qs = load256(w[b].qs + 32 * h);
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) {
                const __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(qs, m3), load256(q8 + 128 * h + 32 * s));
                qs = _mm256_srli_epi16(qs, 2);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, shuffle(sc, kMasks.pair[s])));
            }
        }
        const float da = a.d[b];
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(da * half(w[b].d)), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(da * half(w[b].dmin)), acc);
    }
    return hsum(acc);
}

// Q3_K's 16 6-bit scales from 12 bytes, minus 32, as int8.
inline __m128i q3k_scales(const uint8_t* s12) {
    uint32_t u[3];
    std::memcpy(u, s12, 12);
    const uint32_t k4 = 0x0f0f0f0f, k2 = 0x03030303;
    const __m128i v = _mm_setr_epi32(int((u[0] & k4) | (u[2] & k2) << 4), int((u[1] & k4) | ((u[2] >> 2) & k2) << 4),
                                     int(((u[0] >> 4) & k4) | ((u[2] >> 4) & k2) << 4),
                                     int(((u[1] >> 4) & k4) | ((u[2] >> 6) & k2) << 4));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

float dot_q3_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q3_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m128i sc8 = q3k_scales(w[b].scales);
        // q = lo + 4*hbit - 4: the "- 4" as -4 * sum_g scale_g * bsum_g.
        const __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), load256(a.bsums + b * 16));
        __m256i isum = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 2));
        __m256i hm = load256(w[b].hmask);  // bit s of hmask[l]: high bit of element 32s + l
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
            __m256i qs = load256(w[b].qs + 32 * h);
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) {
                const __m256i u = _mm256_or_si256(_mm256_and_si256(qs, m3), _mm256_slli_epi16(_mm256_and_si256(hm, one), 2));
                qs = _mm256_srli_epi16(qs, 2);
                hm = _mm256_srli_epi16(hm, 1);
                const __m256i p = _mm256_maddubs_epi16(u, load256(q8 + 128 * h + 32 * s));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, shuffle(sc, kMasks.pair[s])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(a.d[b] * half(w[b].d)), acc);
    }
    return hsum(acc);
}

}  // namespace

PrepareFn avx2_prepare(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_0:
        case GgmlType::Q8_0: return prepare_q8x32;
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
        case GgmlType::Q6_K: return prepare_q8x256;
        default: return nullptr;  // float activations: a copy
    }
}

DotFn avx2_dot(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dot_f32;
        case GgmlType::F16: return dot_f16;
        case GgmlType::BF16: return dot_bf16;
        case GgmlType::Q4_0: return dot_q4_0;
        case GgmlType::Q8_0: return dot_q8_0;
        case GgmlType::Q2_K: return dot_q2_K;
        case GgmlType::Q3_K: return dot_q3_K;
        case GgmlType::Q4_K: return dot_q4_K;
        case GgmlType::Q5_K: return dot_q5_K;
        case GgmlType::Q6_K: return dot_q6_K;
        default: return nullptr;
    }
}

Dot4Fn avx2_dot4(GgmlType) { return nullptr; }

}  // namespace sluice::detail
