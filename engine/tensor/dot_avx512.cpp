// AVX-512 (F/BW/VL/DQ/VNNI) dot products for the types where they beat AVX2 on real hardware (see
// avx512_dot), and the panel types' dots in the panels' float order (avx512_dot_canon); activations
// are prepared by the AVX2 code (same bytes). Q8_0: two 32-blocks per register, vpdpbusd (u8 x s8
// summed 4 at a time into i32). Q2_K/Q3_K/Q6_K: 64 quants per register, vpmaddubsw then vpdpwssd
// against the group scales spread over i16 lanes with vpermw. Integer sums per super-block equal the
// scalar reference's exactly.
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

// ---- dot products
//
// As in dot_avx2.cpp, each kernel is a template over N columns (prepared activation vectors) against
// one weight row, decoded once for all N; each column runs the instruction sequence of N = 1, so
// dot4 (N = 4) is bit-identical to four dots.

#define FOR_COL SLUICE_FOR_COL

// Q4_K / Q5_K: the AVX2 kernels' 256-bit code with vpdpwssd for the scale multiply-accumulate.
inline float hsum(__m256 v) { return hsum256(v); }
template <int N>
inline void act_cols(const void* const* acts, int64_t n, ActQ8x256* a) {
    FOR_COL(c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
}
#define SLUICE_K4_MADD_ACC(acc, p, s) _mm256_dpwssd_epi32(acc, p, s)
#include "engine/tensor/dot_k4_x86.inc"

// ---- float activations

template <int N, int WBytes, class Load16>
inline void dot_float(const void* w, const void* const* acts, int64_t n, float* out, Load16 load16) {
    const __mmask16 all = 0xFFFF;
    const float* x[N];
    __m512 acc[N][4];
    FOR_COL(c) {
        x[c] = static_cast<const float*>(acts[c]);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) acc[c][k] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        prefetch<kAheadFloat>(static_cast<const uint8_t*>(w) + i * WBytes, 64 * WBytes);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
            const __m512 wk = load16(i + 16 * k, all);
            FOR_COL(c) acc[c][k] = _mm512_fmadd_ps(wk, _mm512_loadu_ps(x[c] + i + 16 * k), acc[c][k]);
        }
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? all : __mmask16((1u << (n - i)) - 1);
        const __m512 wi = load16(i, m);
        FOR_COL(c) acc[c][0] = _mm512_fmadd_ps(wi, _mm512_maskz_loadu_ps(m, x[c] + i), acc[c][0]);
    }
    FOR_COL(c) {
        out[c] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[c][0], acc[c][1]), _mm512_add_ps(acc[c][2], acc[c][3])));
    }
}

template <int N>
void dot_f32(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const float*>(row);
    dot_float<N, 4>(w, acts, n, out, [w](int64_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, w + i); });
}

template <int N>
void dot_f16(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const uint16_t*>(row);
    dot_float<N, 2>(w, acts, n, out, [w](int64_t i, __mmask16 m) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i));
    });
}

template <int N>
void dot_bf16(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const uint16_t*>(row);
    dot_float<N, 2>(w, acts, n, out, [w](int64_t i, __mmask16 m) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, w + i)), 16));
    });
}

// ---- Q8_0

// lane indices i ^ 1, i ^ 2, i ^ 4 for vpermd
struct XorIdx {
    alignas(64) int32_t v[3][16] = {};
    constexpr XorIdx() {
        for (int k = 0; k < 3; ++k)
            for (int i = 0; i < 16; ++i) v[k][i] = i ^ (1 << k);
    }
};
constexpr XorIdx kXorIdx;
constexpr const int32_t (&kXor)[3][16] = kXorIdx.v;

// Q8_0 in the panels' float order (panel_avx512.cpp run_q8_0): per block the exact integer sum, then
// one fma with d * dx on one float.
template <int N>
void dot_q8_0_canon(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q8_0*>(row);
    ActQ8x32 a[N];
    FOR_COL(c) a[c] = act_q8x32(const_cast<void*>(acts[c]), n);
    const __m512i zero = _mm512_setzero_si512();
    __m128 acc[N];
    FOR_COL(c) acc[c] = _mm_setzero_ps();
    const __m512i x4 = load512(kXor[2]), x2 = load512(kXor[1]), x1 = load512(kXor[0]);
    const int64_t nb = n / QK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {  // two blocks per register; each 256-bit half reduced to its sum
        if (b % 4 == 0) prefetch<kAheadQuant>(w + b, 4 * int(sizeof *w));
        const __m512i q = join(load256(w[b].qs), load256(w[b + 1].qs)), aq = _mm512_abs_epi8(q);
        const __mmask64 neg = _mm512_movepi8_mask(q);
        const float d0 = half(w[b].d), d1 = half(w[b + 1].d);
        FOR_COL(c) {
            const __m512i x = load512(a[c].qs + b * QK);
            __m512i s = _mm512_dpbusd_epi32(zero, aq, _mm512_mask_sub_epi8(x, neg, zero, x));
            // lanes 0 and 8: the two sums (lane i meets i ^ 4, i ^ 2, i ^ 1)
            s = _mm512_add_epi32(s, _mm512_permutexvar_epi32(x4, s));
            s = _mm512_add_epi32(s, _mm512_permutexvar_epi32(x2, s));
            s = _mm512_add_epi32(s, _mm512_permutexvar_epi32(x1, s));
            const __m512 f = _mm512_cvtepi32_ps(s);
            acc[c] = _mm_fmadd_ss(_mm512_castps512_ps128(f), _mm_set_ss(d0 * a[c].d[b]), acc[c]);
            acc[c] = _mm_fmadd_ss(_mm512_extractf32x4_ps(f, 2), _mm_set_ss(d1 * a[c].d[b + 1]), acc[c]);
        }
    }
    if (b < nb) {
        const __m256i q = load256(w[b].qs), aq = _mm256_sign_epi8(q, q);
        const float d = half(w[b].d);
        FOR_COL(c) {
            const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), aq, _mm256_sign_epi8(load256(a[c].qs + b * QK), q));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            h = _mm_hadd_epi32(h, h);
            h = _mm_hadd_epi32(h, h);
            acc[c] = _mm_fmadd_ss(_mm_cvtepi32_ps(h), _mm_set_ss(d * a[c].d[b]), acc[c]);
        }
    }
    FOR_COL(c) out[c] = _mm_cvtss_f32(acc[c]);
}

// ---- K-quants

// Q2_K / Q3_K / Q6_K super-block b for every column: 16 groups of 16 with i16 scales sc16,
// quants(h, p) gives elements 128h + 64p .. +63 as u8. A constant in the quants (q - 2^OffsetLog2)
// is folded into lanes 0-7 as -2^OffsetLog2 * sum_g scale_g * bsum_g; OffsetLog2 < 0: none.
// Canon: the super-block's sum reduced to one exact integer T, acc = fma(T, da * d, acc) on lane 0
// (the float order of the Q6_K panels); otherwise 16 float lanes, added at the end.
template <int N, int OffsetLog2, bool Canon, class Quants>
inline void k16_block(__m256i sc16, float d, const ActQ8x256* a, int64_t b, __m512* acc, Quants quants) {
    const __m512i sc = zext(sc16);
    __m512i isum[N];
    FOR_COL(c) {
        if constexpr (OffsetLog2 >= 0) {
            const __m256i corr = _mm256_madd_epi16(sc16, load256(a[c].bsums + b * 16));
            isum[c] = _mm512_sub_epi32(_mm512_setzero_si512(), zext(_mm256_slli_epi32(corr, OffsetLog2)));
        } else {
            isum[c] = _mm512_setzero_si512();
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h)
#pragma GCC unroll 2
        for (int p = 0; p < 2; ++p) {
            const __m512i u = quants(h, p), ss = spread(kIdx.g16[2 * h + p], sc);
            FOR_COL(c) {
                const __m512i pr = _mm512_maddubs_epi16(u, load512(a[c].qs + b * QKK + 128 * h + 64 * p));
                isum[c] = _mm512_dpwssd_epi32(isum[c], pr, ss);
            }
        }
    FOR_COL(c) {
        if constexpr (Canon) {  // lane 0 only (the rest is never read)
            const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(isum[c]), _mm512_extracti64x4_epi64(isum[c], 1));
            __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
            q = _mm_hadd_epi32(q, q);
            const __m128 t = _mm_cvtepi32_ps(_mm_hadd_epi32(q, q));
            acc[c] = _mm512_castps128_ps512(_mm_fmadd_ss(t, _mm_set_ss(a[c].d[b] * d), _mm512_castps512_ps128(acc[c])));
        } else {
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_set1_ps(a[c].d[b] * d), acc[c]);
        }
    }
}

// Q6_K in the panels' float order (panel_avx512.cpp run_q6_K): per super-block the exact integer
// sum, then one fma.
template <int N>
void dot_q6_K(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q6_K*>(row);
    ActQ8x256 a[N];
    FOR_COL(c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
    const __m512i c01 = counts(0, 2), c23 = counts(4, 6);
    __m512 acc[N];
    FOR_COL(c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        k16_block<N, 5, true>(_mm256_cvtepi8_epi16(load128(w[b].scales)), half(w[b].d), a, b, acc, [&](int h, int p) {
            // 64 ql bytes: low nibbles are slices 0|1, high nibbles slices 2|3 of this 128.
            const __m512i l = load512(w[b].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(load256(w[b].qh + 32 * h));
            const __m512i lo = _mm512_and_si512(p ? _mm512_srli_epi16(l, 4) : l, m4);
            return _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, p ? c23 : c01), m3), 4));
        });
    }
    FOR_COL(c) out[c] = _mm_cvtss_f32(_mm512_castps512_ps128(acc[c]));
}

template <int N>
void dot_q2_K(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q2_K*>(row);
    ActQ8x256 a[N];
    FOR_COL(c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    const __m128i m4 = _mm_set1_epi8(0xF);
    const __m512i m3 = _mm512_set1_epi8(3), c01 = counts(0, 2), c23 = counts(4, 6);
    __m512 acc[N];
    __m256 accm[N];
    FOR_COL(c) acc[c] = _mm512_setzero_ps(), accm[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const __m128i raw = load128(w[b].scales);
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        const float dmin = half(w[b].dmin);
        FOR_COL(c) {
            const __m256i imin = _mm256_madd_epi16(m16, load256(a[c].bsums + b * 16));
            accm[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(a[c].d[b] * dmin), accm[c]);
        }
        k16_block<N, -1, false>(_mm256_cvtepu8_epi16(_mm_and_si128(raw, m4)), half(w[b].d), a, b, acc, [&](int h, int p) {
            const __m512i qs = _mm512_broadcast_i64x4(load256(w[b].qs + 32 * h));
            return _mm512_and_si512(_mm512_srlv_epi16(qs, p ? c23 : c01), m3);  // slices 0|1 or 2|3
        });
    }
    FOR_COL(c) out[c] = _mm512_reduce_add_ps(acc[c]) + hsum256(accm[c]);
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

// q = lo + 4*hbit - 4
template <int N>
void dot_q3_K(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q3_K*>(row);
    ActQ8x256 a[N];
    FOR_COL(c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    const __m512i m3 = _mm512_set1_epi8(3), one = _mm512_set1_epi8(1);
    const __m512i c01 = counts(0, 2), c23 = counts(4, 6);
    const __m512i hc[4] = {counts(0, 1), counts(2, 3), counts(4, 5), counts(6, 7)};  // hmask bits per slice pair
    __m512 acc[N];
    FOR_COL(c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const __m512i hm = _mm512_broadcast_i64x4(load256(w[b].hmask));
        k16_block<N, 2, false>(_mm256_cvtepi8_epi16(q3k_scales(w[b].scales)), half(w[b].d), a, b, acc, [&](int h, int p) {
            const __m512i qs = _mm512_broadcast_i64x4(load256(w[b].qs + 32 * h));
            const __m512i lo = _mm512_and_si512(_mm512_srlv_epi16(qs, p ? c23 : c01), m3);
            const __m512i hb = _mm512_and_si512(_mm512_srlv_epi16(hm, hc[2 * h + p]), one);
            return _mm512_or_si512(lo, _mm512_slli_epi16(hb, 2));
        });
    }
    FOR_COL(c) out[c] = _mm512_reduce_add_ps(acc[c]);
}

}  // namespace

PrepareFn avx512_prepare(GgmlType) { return nullptr; }  // the AVX2 quantizers are memory-bound already

DotFn avx512_dot(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dot1<dot_f32<1>>;
        case GgmlType::F16: return dot1<dot_f16<1>>;
        case GgmlType::BF16: return dot1<dot_bf16<1>>;
        case GgmlType::Q2_K: return dot1<dot_q2_K<1>>;
        case GgmlType::Q3_K: return dot1<dot_q3_K<1>>;
        // Q4_K, Q5_K, Q6_K, Q8_0 have panels (panel_avx512.cpp): the table takes the dots in their
        // float order (avx512_dot_canon, avx2_dot_canon). Q4_0: AVX2's dot (512-bit integer
        // multiplies issue on one port on a Sapphire Rapids-class Xeon: Q4_K in cache measured 16.9 vs
        // 20.0 GB/s on 1 thread before the panels); Q5_0 / Q5_1 / IQ4_NL / IQ4_XS and the IQ2 types the
        // same, for the same reason (unmeasured).
        // IQ3_XXS / IQ3_S / IQ1_S / IQ1_M: AVX2's (dot_iq13_avx2.cpp; no 512-bit versions written).
        default: return nullptr;
    }
}

// Only for the types avx512_dot has (the table pairs a dot4 with its ISA's dot).
Dot4Fn avx512_dot4(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dot_f32<4>;
        case GgmlType::F16: return dot_f16<4>;
        case GgmlType::BF16: return dot_bf16<4>;
        case GgmlType::Q2_K: return dot_q2_K<4>;
        case GgmlType::Q3_K: return dot_q3_K<4>;
        default: return nullptr;
    }
}

Tile avx512_tile(GgmlType) { return {}; }

DotFn avx512_dot_canon(GgmlType t) {
    switch (t) {
        case GgmlType::Q6_K: return dot1<dot_q6_K<1>>;
        case GgmlType::Q8_0: return dot1<dot_q8_0_canon<1>>;
        default: return nullptr;
    }
}

Dot4Fn avx512_dot4_canon(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_K: return dot_q4_K<4, true>;
        case GgmlType::Q5_K: return dot_q5_K<4, true>;
        case GgmlType::Q6_K: return dot_q6_K<4>;
        case GgmlType::Q8_0: return dot_q8_0_canon<4>;
        default: return nullptr;
    }
}

}  // namespace sluice::detail
