// AVX-512 (F/BW/VL/DQ/VNNI) dot products for the types where they beat AVX2 on real hardware (see
// avx512_dot); activations are prepared by the AVX2 code (same bytes). Q8_0: two 32-blocks per
// register, vpdpbusd (u8 x s8 summed 4 at a time into i32). Q2_K/Q3_K/Q6_K: 64 quants per register,
// vpmaddubsw then vpdpwssd against the group scales spread over i16 lanes with vpermw. Integer sums
// per super-block equal the scalar reference's exactly.
// GCC 12 warns about the _mm512_undefined_* placeholders inside its own intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

using namespace blocks;

namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
inline __m512i zext(__m256i v) { return _mm512_zextsi256_si512(v); }

// i16 shift counts: c0 for the low 256 bits, c1 for the high 256 bits
inline __m512i counts(int c0, int c1) {
    return _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(short(c0)), _mm512_set1_epi16(short(c1)));
}

inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// See dot_avx2.cpp: prefetch distances measured for streaming weights.
constexpr int kAheadQuant = 2048, kAheadFloat = 1024;
template <int Ahead>
inline void prefetch(const void* p, int bytes) {
    for (int o = 0; o < bytes; o += 64) _mm_prefetch(static_cast<const char*>(p) + Ahead + o, _MM_HINT_T0);
}

// vpermw indices spreading scales over the 32 i16 lanes of a maddubs result: g16[k] gives the
// 16-element groups 4k..4k+3 (8 lanes each).
// constexpr: built at compile time, so no code from this file runs before dispatch picks it.
struct Indices {
    alignas(64) uint16_t g16[4][32] = {};
    constexpr Indices() {
        for (int j = 0; j < 4; ++j)
            for (int i = 0; i < 32; ++i) g16[j][i] = uint16_t(4 * j + i / 8);
    }
};
constexpr Indices kIdx;

inline __m512i spread(const uint16_t* idx, __m512i scales16) {
    return _mm512_permutexvar_epi16(_mm512_load_si512(idx), scales16);
}

// ---- float activations

template <int WBytes, class Load16>
inline float dot_float(const void* w, const float* x, int64_t n, Load16 load16) {
    const __mmask16 all = 0xFFFF;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        prefetch<kAheadFloat>(static_cast<const uint8_t*>(w) + i * WBytes, 64 * WBytes);
        a0 = _mm512_fmadd_ps(load16(i, all), _mm512_loadu_ps(x + i), a0);
        a1 = _mm512_fmadd_ps(load16(i + 16, all), _mm512_loadu_ps(x + i + 16), a1);
        a2 = _mm512_fmadd_ps(load16(i + 32, all), _mm512_loadu_ps(x + i + 32), a2);
        a3 = _mm512_fmadd_ps(load16(i + 48, all), _mm512_loadu_ps(x + i + 48), a3);
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? all : __mmask16((1u << (n - i)) - 1);
        a0 = _mm512_fmadd_ps(load16(i, m), _mm512_maskz_loadu_ps(m, x + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

float dot_f32(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const float*>(row);
    return dot_float<4>(w, static_cast<const float*>(act), n,
                        [w](int64_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, w + i); });
}

float dot_f16(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const uint16_t*>(row);
    return dot_float<2>(w, static_cast<const float*>(act), n, [w](int64_t i, __mmask16 m) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i));
    });
}

float dot_bf16(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const uint16_t*>(row);
    return dot_float<2>(w, static_cast<const float*>(act), n, [w](int64_t i, __mmask16 m) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + i)), 16));
    });
}

// ---- Q8_0: two blocks per register; an odd last block takes the 256-bit path.

inline __m512 pair_scales(float s0, float s1) {
    return _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(s0), _mm512_set1_ps(s1));
}

float dot_q8_0(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q8_0*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
    // signed x signed: |w| as the unsigned operand, a negated where w < 0
    auto pair = [&](int64_t b, __m512& acc) {
        const __m512i q = join(load256(w[b].qs), load256(w[b + 1].qs)), x = load512(a.qs + b * QK);
        const __m512i sx = _mm512_mask_sub_epi8(x, _mm512_movepi8_mask(q), zero, x);
        const __m512i s = _mm512_dpbusd_epi32(zero, _mm512_abs_epi8(q), sx);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
                              pair_scales(half(w[b].d) * a.d[b], half(w[b + 1].d) * a.d[b + 1]), acc);
    };
    const int64_t nb = n / QK;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        prefetch<kAheadQuant>(w + b, 4 * int(sizeof *w));
        pair(b, acc0);
        pair(b + 2, acc1);
    }
    for (; b + 2 <= nb; b += 2) pair(b, acc0);
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    if (b < nb) {
        const __m256i q = load256(w[b].qs), x = load256(a.qs + b * QK);
        const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
        sum += half(w[b].d) * a.d[b] * hsum256(_mm256_cvtepi32_ps(s));
    }
    return sum;
}

// ---- K-quants

float dot_q6_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q6_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
    const __m512i c01 = counts(0, 2), c23 = counts(4, 6);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(w[b].scales));
        const __m512i sc = zext(sc16);
        // The "- 32" of every quant: -32 * sum_g scale_g * bsum_g, folded into lanes 0-7.
        const __m256i corr = _mm256_madd_epi16(sc16, load256(a.bsums + b * 16));
        __m512i isum = _mm512_sub_epi32(_mm512_setzero_si512(), zext(_mm256_slli_epi32(corr, 5)));
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            // 64 ql bytes: low nibbles are slices 0|1, high nibbles slices 2|3 of this 128.
            const __m512i l = load512(w[b].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(load256(w[b].qh + 32 * h));
            const __m512i u01 = _mm512_or_si512(_mm512_and_si512(l, m4),
                                                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, c01), m3), 4));
            const __m512i u23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
                                                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, c23), m3), 4));
            const __m512i p01 = _mm512_maddubs_epi16(u01, load512(q8 + 128 * h));
            const __m512i p23 = _mm512_maddubs_epi16(u23, load512(q8 + 128 * h + 64));
            isum = _mm512_dpwssd_epi32(isum, p01, spread(kIdx.g16[2 * h], sc));
            isum = _mm512_dpwssd_epi32(isum, p23, spread(kIdx.g16[2 * h + 1], sc));
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(a.d[b] * half(w[b].d)), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

float dot_q2_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q2_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    const __m128i m4 = _mm_set1_epi8(0xF);
    const __m512i m3 = _mm512_set1_epi8(3), c01 = counts(0, 2), c23 = counts(4, 6);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m128i raw = load128(w[b].scales);
        const __m512i sc = zext(_mm256_cvtepu8_epi16(_mm_and_si128(raw, m4)));
        const __m128i m8 = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        const __m256i imin = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m8), load256(a.bsums + b * 16));
        __m512i isum = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m512i qs = _mm512_broadcast_i64x4(load256(w[b].qs + 32 * h));
            const __m512i u01 = _mm512_and_si512(_mm512_srlv_epi16(qs, c01), m3);  // slices 0|1
            const __m512i u23 = _mm512_and_si512(_mm512_srlv_epi16(qs, c23), m3);  // slices 2|3
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u01, load512(q8 + 128 * h)),
                                       spread(kIdx.g16[2 * h], sc));
            isum = _mm512_dpwssd_epi32(isum, _mm512_maddubs_epi16(u23, load512(q8 + 128 * h + 64)),
                                       spread(kIdx.g16[2 * h + 1], sc));
        }
        const float da = a.d[b];
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(da * half(w[b].d)), acc);
        accm = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(da * half(w[b].dmin)), accm);
    }
    return _mm512_reduce_add_ps(acc) + hsum256(accm);
}

// Q3_K's 16 6-bit scales from 12 bytes, minus 32, as int8 (see blocks::scale_q3k).
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
    const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
    const __m512i c01 = counts(0, 2), c23 = counts(4, 6);
    const __m512i hc[4] = {counts(0, 1), counts(2, 3), counts(4, 5), counts(6, 7)};  // hmask bits per slice pair
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const int8_t* q8 = a.qs + b * QKK;
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales(w[b].scales));
        const __m512i sc = zext(sc16);
        // q = lo + 4*hbit - 4: the "- 4" as -4 * sum_g scale_g * bsum_g, folded into lanes 0-7.
        const __m256i corr = _mm256_madd_epi16(sc16, load256(a.bsums + b * 16));
        __m512i isum = _mm512_sub_epi32(_mm512_setzero_si512(), zext(_mm256_slli_epi32(corr, 2)));
        const __m512i hm = _mm512_broadcast_i64x4(load256(w[b].hmask));
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            const __m512i qs = _mm512_broadcast_i64x4(load256(w[b].qs + 32 * h));
#pragma GCC unroll 2
            for (int p = 0; p < 2; ++p) {
                const __m512i lo = _mm512_and_si512(_mm512_srlv_epi16(qs, p ? c23 : c01), m3);
                const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hm, hc[2 * h + p]), one);
                const __m512i u = _mm512_or_si512(lo, _mm512_slli_epi16(hb, 2));
                const __m512i pr = _mm512_maddubs_epi16(u, load512(q8 + 128 * h + 64 * p));
                isum = _mm512_dpwssd_epi32(isum, pr, spread(kIdx.g16[2 * h + p], sc));
            }
        }
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(a.d[b] * half(w[b].d)), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

}  // namespace

PrepareFn avx512_prepare(GgmlType) { return nullptr; }  // the AVX2 quantizers are memory-bound already

DotFn avx512_dot(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dot_f32;
        case GgmlType::F16: return dot_f16;
        case GgmlType::BF16: return dot_bf16;
        case GgmlType::Q8_0: return dot_q8_0;
        case GgmlType::Q2_K: return dot_q2_K;
        case GgmlType::Q3_K: return dot_q3_K;
        case GgmlType::Q6_K: return dot_q6_K;
        // Q4_0, Q4_K, Q5_K: 512-bit versions (vpmaddubsw + vpdpwssd) measured slower than the AVX2
        // ones on a Sapphire Rapids-class Xeon (Q4_K in cache: 16.9 vs 20.0 GB/s on 1 thread; equal
        // from RAM), since 512-bit integer multiplies issue on one port there. The AVX2 ones are used.
        default: return nullptr;
    }
}

Dot4Fn avx512_dot4(GgmlType) { return nullptr; }

}  // namespace sluice::detail
