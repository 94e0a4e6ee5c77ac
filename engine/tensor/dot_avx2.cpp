// AVX2 activation quantizers and dot products. Integer kernels multiply unsigned weight quants by
// signed 8-bit activations with maddubs (pairs of u8*s8 summed to i16; no saturation: |a| <= 127 and
// the weight quants are at most 63, or 127 via the sign trick), then madd by the group scales to i32.
// Per block the integer sums equal the scalar reference's; only the float combination order differs.
#include <immintrin.h>

#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/iq2.h"
#include "engine/tensor/kernels_iq13.h"
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

// ---- dot products
//
// Each kernel is a template over N columns: N prepared activation vectors against one weight row.
// The row's blocks are decoded once for all N; every column keeps its own accumulators and runs the
// instruction sequence of N = 1, so dot4 (N = 4) is bit-identical to four dots (N = 1). See
// kernels_isa.h for the adapters to the table's entries.

#define FOR_COL SLUICE_FOR_COL

template <int N>
inline void act_cols(const void* const* acts, int64_t n, ActQ8x32* a) {
    FOR_COL(c) a[c] = act_q8x32(const_cast<void*>(acts[c]), n);
}
template <int N>
inline void act_cols(const void* const* acts, int64_t n, ActQ8x256* a) {
    FOR_COL(c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
}

// ---- float activations

inline float bf16(uint16_t h) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(h) << 16))); }

// 4 accumulators of 8 lanes per column hide the FMA latency; the tail (n % 8) is scalar.
template <int N, int WBytes, class Load8, class Load1>
inline void dot_float(const void* w, const void* const* acts, int64_t n, float* out, Load8 load8, Load1 load1) {
    const float* x[N];
    __m256 acc[N][4];
    FOR_COL(c) {
        x[c] = static_cast<const float*>(acts[c]);
        for (int k = 0; k < 4; ++k) acc[c][k] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        prefetch<kAheadFloat>(static_cast<const uint8_t*>(w) + i * WBytes, 32 * WBytes);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
            const __m256 wk = load8(i + 8 * k);
            FOR_COL(c) acc[c][k] = _mm256_fmadd_ps(wk, _mm256_loadu_ps(x[c] + i + 8 * k), acc[c][k]);
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 wi = load8(i);
        FOR_COL(c) acc[c][0] = _mm256_fmadd_ps(wi, _mm256_loadu_ps(x[c] + i), acc[c][0]);
    }
    FOR_COL(c) out[c] = hsum(_mm256_add_ps(_mm256_add_ps(acc[c][0], acc[c][1]), _mm256_add_ps(acc[c][2], acc[c][3])));
    for (; i < n; ++i) {
        const float wi = load1(i);
        FOR_COL(c) out[c] += wi * x[c][i];
    }
}

template <int N>
void dot_f32(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const float*>(row);
    dot_float<N, 4>(w, acts, n, out, [w](int64_t i) { return _mm256_loadu_ps(w + i); }, [w](int64_t i) { return w[i]; });
}

template <int N>
void dot_f16(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const uint16_t*>(row);
    dot_float<N, 2>(w, acts, n, out, [w](int64_t i) { return _mm256_cvtph_ps(load128(w + i)); },
                    [w](int64_t i) { return half(w[i]); });
}

template <int N>
void dot_bf16(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const uint16_t*>(row);
    dot_float<N, 2>(
        w, acts, n, out,
        [w](int64_t i) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(w + i)), 16)); },
        [w](int64_t i) { return bf16(w[i]); });
}

// ---- 32-element blocks: even blocks into acc0, odd ones into acc1 (two FMA chains per column).

template <int N, class Block>
inline void blocks32(const void* w, int64_t nb, int bytes, float* out, Block block) {
    __m256 acc0[N], acc1[N];
    FOR_COL(c) acc0[c] = acc1[c] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        if (b % 4 == 0) prefetch<kAheadQuant>(static_cast<const uint8_t*>(w) + b * bytes, 4 * bytes);
        block(b, acc0);
        block(b + 1, acc1);
    }
    if (b < nb) block(b, acc0);
    FOR_COL(c) out[c] = hsum(_mm256_add_ps(acc0[c], acc1[c]));
}

template <int N>
void dot_q4_0(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q4_0*>(row);
    ActQ8x32 a[N];
    act_cols<N>(acts, n, a);
    const __m256i m4 = _mm256_set1_epi8(0xF), ones = _mm256_set1_epi16(1);
    blocks32<N>(w, n / QK, int(sizeof *w), out, [&](int64_t b, __m256* acc) {
        const __m128i q = load128(w[b].qs);
        const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
        const float d = half(w[b].d);
        FOR_COL(c) {
            __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(nib, load256(a[c].qs + b * QK)), ones);
            s = _mm256_sub_epi32(s, _mm256_zextsi128_si256(_mm_cvtsi32_si128(8 * a[c].sum[b])));  // lane 0 takes the -8*sum
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[c].d[b]), acc[c]);
        }
    });
}

// 32 bits -> 32 bytes, byte e 0xFF where bit e is set: each byte gets its source byte of x, every
// bit but its own forced on, then all-ones compares equal only if its own was set.
inline __m256i bytes_from_bits32(uint32_t x) {
    const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
    const __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x)), spread);
    return _mm256_cmpeq_epi8(_mm256_or_si256(v, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)), _mm256_set1_epi64x(-1));
}

// Q5_0 / Q5_1 quants 0..31 as u8, element e in byte e: Q4_0's nibbles | 16 where qh's bit e is set.
inline __m256i q5_quants(const uint8_t* qs, const uint8_t* qh) {
    const __m128i q = load128(qs);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
    return _mm256_or_si256(nib, _mm256_and_si256(bytes_from_bits32(q5_qh(qh)), _mm256_set1_epi8(0x10)));
}

// As Q4_0: quants 0..31 (maddubs pairs <= 2 * 31 * 127), the "- 16" as -16 * sum in lane 0.
template <int N>
void dot_q5_0(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q5_0*>(row);
    ActQ8x32 a[N];
    act_cols<N>(acts, n, a);
    const __m256i ones = _mm256_set1_epi16(1);
    blocks32<N>(w, n / QK, int(sizeof *w), out, [&](int64_t b, __m256* acc) {
        const __m256i q = q5_quants(w[b].qs, w[b].qh);
        const float d = half(w[b].d);
        FOR_COL(c) {
            __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(a[c].qs + b * QK)), ones);
            s = _mm256_sub_epi32(s, _mm256_zextsi128_si256(_mm_cvtsi32_si128(16 * a[c].sum[b])));
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[c].d[b]), acc[c]);
        }
    });
}

// d_a * (d * sum(q_w q_a) + m * sum(q_a)) per block, the min term in lane 0.
template <int N>
void dot_q5_1(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q5_1*>(row);
    ActQ8x32 a[N];
    act_cols<N>(acts, n, a);
    const __m256i ones = _mm256_set1_epi16(1);
    blocks32<N>(w, n / QK, int(sizeof *w), out, [&](int64_t b, __m256* acc) {
        const __m256i q = q5_quants(w[b].qs, w[b].qh);
        const float d = half(w[b].d), m = half(w[b].m);
        FOR_COL(c) {
            const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(q, load256(a[c].qs + b * QK)), ones);
            const __m256 mins = _mm256_zextps128_ps256(_mm_set_ss(m * float(a[c].sum[b])));
            const __m256 t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d), mins);
            acc[c] = _mm256_fmadd_ps(t, _mm256_set1_ps(a[c].d[b]), acc[c]);
        }
    });
}

// IQ4_NL / IQ4_XS: 32 quants (16 bytes, Q4_0's nibble order) as their int8 levels, element e in byte
// e: the nibbles index the table with pshufb (in both 128-bit lanes).
inline __m256i iq4_levels(const uint8_t* qs, __m256i table) {
    const __m128i q = load128(qs);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
    return _mm256_shuffle_epi8(table, nib);
}
inline __m256i iq4_table() {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4Levels)));
}

// As Q8_0, the levels standing for the weights' quants (|level| <= 127: maddubs pairs fit i16).
template <int N>
void dot_iq4_nl(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const IQ4_NL*>(row);
    ActQ8x32 a[N];
    act_cols<N>(acts, n, a);
    const __m256i table = iq4_table(), ones = _mm256_set1_epi16(1);
    blocks32<N>(w, n / QK, int(sizeof *w), out, [&](int64_t b, __m256* acc) {
        const __m256i q = iq4_levels(w[b].qs, table), aq = _mm256_sign_epi8(q, q);
        const float d = half(w[b].d);
        FOR_COL(c) {
            const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(load256(a[c].qs + b * QK), q));
            const __m256i s = _mm256_madd_epi16(p, ones);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[c].d[b]), acc[c]);
        }
    });
}

// Group g of super-block b against activation block 8b + g: the group's ls - 32 multiplies the i16
// pair sums in madd (exact, as the scalar's integer product), d * d_a in float; even groups into acc0,
// odd into acc1.
template <int N>
void dot_iq4_xs(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const IQ4_XS*>(row);
    ActQ8x32 a[N];
    act_cols<N>(acts, n, a);
    const __m256i table = iq4_table();
    __m256 acc0[N], acc1[N];
    FOR_COL(c) acc0[c] = acc1[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const float d = half(w[b].d);
#pragma GCC unroll 8
        for (int g = 0; g < QKK / QK; ++g) {
            const __m256i q = iq4_levels(w[b].qs + QK / 2 * g, table), aq = _mm256_sign_epi8(q, q);
            const __m256i ls = _mm256_set1_epi16(int16_t(scale_iq4xs(g, w[b])));
            const int64_t k = b * (QKK / QK) + g;
            __m256* acc = g % 2 ? acc1 : acc0;
            FOR_COL(c) {
                const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(load256(a[c].qs + k * QK), q));
                const __m256i s = _mm256_madd_epi16(p, ls);
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[c].d[k]), acc[c]);
            }
        }
    }
    FOR_COL(c) out[c] = hsum(_mm256_add_ps(acc0[c], acc1[c]));
}

// signed * signed via maddubs: |w| as the unsigned operand, a with w's sign applied.
template <int N>
void dot_q8_0(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q8_0*>(row);
    ActQ8x32 a[N];
    act_cols<N>(acts, n, a);
    const __m256i ones = _mm256_set1_epi16(1);
    blocks32<N>(w, n / QK, int(sizeof *w), out, [&](int64_t b, __m256* acc) {
        const __m256i q = load256(w[b].qs), aq = _mm256_sign_epi8(q, q);
        const float d = half(w[b].d);
        FOR_COL(c) {
            const __m256i p = _mm256_maddubs_epi16(aq, _mm256_sign_epi8(load256(a[c].qs + b * QK), q));
            const __m256i s = _mm256_madd_epi16(p, ones);
            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * a[c].d[b]), acc[c]);
        }
    });
}

// ---- K-quants

// Masks, Q4_K and Q5_K: shared with dot_avx512.cpp, which builds them with vpdpwssd (VNNI) for the
// scale multiply-accumulate; the integer sums, so the results, are the same.
#define SLUICE_K4_MADD_ACC(acc, p, s) _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
#include "engine/tensor/dot_k4_x86.inc"

// Q2_K / Q3_K / Q6_K super-block b for every column: 16 groups of 16 with i8 scales sc8 (signed),
// quants(h, s) gives elements 128h + 32s .. +31 as u8. A constant in the quants (q - 2^OffsetLog2)
// is folded in as -2^OffsetLog2 * sum_g scale_g * bsum_g; OffsetLog2 < 0: none.
template <int N, int OffsetLog2, class Quants>
inline void k16_block(__m128i sc8, float d, const ActQ8x256* a, int64_t b, __m256* acc, Quants quants) {
    __m256i isum[N];
    FOR_COL(c) isum[c] = _mm256_setzero_si256();
    if constexpr (OffsetLog2 >= 0) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        FOR_COL(c) {
            const __m256i corr = _mm256_madd_epi16(sc16, load256(a[c].bsums + b * 16));
            isum[c] = _mm256_sub_epi32(isum[c], _mm256_slli_epi32(corr, OffsetLog2));
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_unpackhi_epi64(sc8, sc8) : sc8));
#pragma GCC unroll 4
        for (int s = 0; s < 4; ++s) {
            const __m256i u = quants(h, s), ss = shuffle(sc, kMasks.pair[s]);
            FOR_COL(c) {
                const __m256i p = _mm256_maddubs_epi16(u, load256(a[c].qs + b * QKK + 128 * h + 32 * s));
                isum[c] = _mm256_add_epi32(isum[c], _mm256_madd_epi16(p, ss));
                SLUICE_KEEP(isum[c]);
            }
        }
    }
    FOR_COL(c) acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[c]), _mm256_set1_ps(a[c].d[b] * d), acc[c]);
}

template <int N>
void dot_q6_K(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q6_K*>(row);
    ActQ8x256 a[N];
    act_cols<N>(acts, n, a);
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3);
    __m256 acc[N];
    FOR_COL(c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        k16_block<N, 5>(load128(w[b].scales), half(w[b].d), a, b, acc, [&](int h, int s) {
            const __m256i l = load256(w[b].ql + 64 * h + 32 * (s & 1)), qh = load256(w[b].qh + 32 * h);
            const __m256i lo = _mm256_and_si256(s >= 2 ? _mm256_srli_epi16(l, 4) : l, m4);
            return _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * s), m3), 4));
        });
    }
    FOR_COL(c) out[c] = hsum(acc[c]);
}

template <int N>
void dot_q2_K(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q2_K*>(row);
    ActQ8x256 a[N];
    act_cols<N>(acts, n, a);
    const __m128i m4 = _mm_set1_epi8(0xF);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[N];
    FOR_COL(c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const __m128i raw = load128(w[b].scales);
        k16_block<N, -1>(_mm_and_si128(raw, m4), half(w[b].d), a, b, acc, [&](int h, int s) {
            return _mm256_and_si256(_mm256_srli_epi16(load256(w[b].qs + 32 * h), 2 * s), m3);
        });
        // The mins: - dmin * sum_g m_g * bsum_g.
        const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), m4));
        const float dmin = half(w[b].dmin);
        FOR_COL(c) {
            const __m256i imin = _mm256_madd_epi16(m16, load256(a[c].bsums + b * 16));
            acc[c] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(imin), _mm256_set1_ps(a[c].d[b] * dmin), acc[c]);
        }
    }
    FOR_COL(c) out[c] = hsum(acc[c]);
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

// q = lo + 4*hbit - 4
template <int N>
void dot_q3_K(const void* row, const void* const* acts, int64_t n, float* out) {
    auto* w = static_cast<const Q3_K*>(row);
    ActQ8x256 a[N];
    act_cols<N>(acts, n, a);
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    __m256 acc[N];
    FOR_COL(c) acc[c] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch<kAheadQuant>(w + b, int(sizeof *w));
        const __m256i hm = load256(w[b].hmask);  // bit 4h+s of hmask[l]: high bit of element 128h + 32s + l
        k16_block<N, 2>(q3k_scales(w[b].scales), half(w[b].d), a, b, acc, [&](int h, int s) {
            const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(load256(w[b].qs + 32 * h), 2 * s), m3);
            const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + s), one);
            return _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));
        });
    }
    FOR_COL(c) out[c] = hsum(acc[c]);
}

}  // namespace

PrepareFn avx2_prepare(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_0:
        case GgmlType::Q5_0:
        case GgmlType::Q5_1:
        case GgmlType::Q8_0:
        case GgmlType::IQ4_NL:
        case GgmlType::IQ4_XS: return prepare_q8x32;
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
        case GgmlType::Q6_K:
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S: return prepare_q8x256;
        case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S:
        case GgmlType::IQ1_S:
        case GgmlType::IQ1_M: return prepare_q8x256;
        default: return nullptr;  // float activations: a copy
    }
}

DotFn avx2_dot(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return dot1<dot_f32<1>>;
        case GgmlType::F16: return dot1<dot_f16<1>>;
        case GgmlType::BF16: return dot1<dot_bf16<1>>;
        case GgmlType::Q4_0: return dot1<dot_q4_0<1>>;
        case GgmlType::Q5_0: return dot1<dot_q5_0<1>>;
        case GgmlType::Q5_1: return dot1<dot_q5_1<1>>;
        case GgmlType::Q8_0: return dot1<dot_q8_0<1>>;
        case GgmlType::IQ4_NL: return dot1<dot_iq4_nl<1>>;
        case GgmlType::IQ4_XS: return dot1<dot_iq4_xs<1>>;
        case GgmlType::Q2_K: return dot1<dot_q2_K<1>>;
        case GgmlType::Q3_K: return dot1<dot_q3_K<1>>;
        case GgmlType::Q4_K: return dot1<dot_q4_K<1>>;
        case GgmlType::Q5_K: return dot1<dot_q5_K<1>>;
        case GgmlType::Q6_K: return dot1<dot_q6_K<1>>;
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S: return avx2_dot_iq2(t);  // dot_iq2_avx2.cpp
        case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S:
        case GgmlType::IQ1_S:
        case GgmlType::IQ1_M: return avx2_iq13_dot(t);
        default: return nullptr;
    }
}

DotFn avx2_dot_canon(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_K: return dot1<dot_q4_K<1, true>>;
        case GgmlType::Q5_K: return dot1<dot_q5_K<1, true>>;
        default: return nullptr;
    }
}

Dot4Fn avx2_dot4(GgmlType t) {
    switch (t) {
        // Float rows: four columns want 16 accumulators, all of AVX2's registers; two columns at a
        // time measured as fast or faster (768x2048 F16, 32 columns: 45 vs 42 GFLOP/s).
        case GgmlType::F32: return pairs<dot_f32<2>>;
        case GgmlType::F16: return pairs<dot_f16<2>>;
        case GgmlType::BF16: return pairs<dot_bf16<2>>;
        case GgmlType::Q4_0: return dot_q4_0<4>;
        case GgmlType::Q5_0: return dot_q5_0<4>;
        case GgmlType::Q5_1: return dot_q5_1<4>;
        case GgmlType::Q8_0: return dot_q8_0<4>;
        case GgmlType::IQ4_NL: return dot_iq4_nl<4>;
        case GgmlType::IQ4_XS: return dot_iq4_xs<4>;
        case GgmlType::Q2_K: return dot_q2_K<4>;
        case GgmlType::Q3_K: return dot_q3_K<4>;
        case GgmlType::Q4_K: return dot_q4_K<4>;
        case GgmlType::Q5_K: return dot_q5_K<4>;
        case GgmlType::Q6_K: return dot_q6_K<4>;
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S: return avx2_dot4_iq2(t);
        case GgmlType::IQ3_XXS:
        case GgmlType::IQ3_S:
        case GgmlType::IQ1_S:
        case GgmlType::IQ1_M: return avx2_iq13_dot4(t);
        default: return nullptr;
    }
}

// 2 rows x 4 columns: what AVX2's 16 registers hold (see dot_k4_x86.inc).
Tile avx2_tile(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_K: return {tile_q4_K<2, 4>, 2, 4};
        default: return {};
    }
}

}  // namespace sluice::detail
