// Q4_K / Q5_K / Q6_K / Q8_0 prompt products over repacked weights (AVX-512 BW/VNNI): 8 weight rows interleaved
// 8 bytes at a time, so one activation load (8 bytes broadcast) and one vpmaddubsw serve all 8 rows.
// The products of a 32-quant group (4 vpmaddubsw; Q6_K's groups of 16: 2) add up in i16 before one
// vpdpwssd applies the group scales: 5 multiply instructions per 256 products, where the dot / tile
// kernels need 16 (on this kind of Xeon 512-bit integer multiplies issue on one port: that count is
// the speed). Q8_0: 4 vpdpbusd per 32-block and row group (quants stored + 128).
// Integer sums per super-block equal the reference's, and the float operations per super-block are
// those of the AVX-512 table's dots (the "canonical" order): bit-identical to vec_dot.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

using namespace blocks;

namespace {

// One super-block of 8 rows of Q4_K or Q5_K, every quant decoded to a byte when packing (the
// nibbles left packed measured 10-15% slower: the shifts share the multiplies' port). qs[4g + k]
// holds, for row r at bytes 8r..8r+7, elements 32g + 8k .. of group g. Scales and mins as i16, lane
// 4r + g % 4 of half g / 4 (vpermw spreads them); d and dmin as floats in lanes 2r and 2r + 1 (the
// i32 sums' layout).
struct alignas(64) K32Panel {
    uint8_t qs[32][64];
    int16_t sc[2][32];
    int16_t mn[2][32];
    float d[16], dmin[16];
};
// Q6_K: qs[2g + k] = elements 16g + 8k .. as u8 (6 bits, before the - 32); the 16 scales as i16,
// lane 4r + g % 4 of quarter g / 4.
struct alignas(64) Q6KPanel {
    uint8_t qs[32][64];
    int16_t sc[4][32];
    float d[16];
};
// Q8_0: one 32-block of 8 rows, quants + 128 as u8 (vpdpbusd's unsigned side; the 128 * sum of the
// activations' block comes off after), d as floats in lanes 2r and 2r + 1.
struct alignas(64) Q80Panel {
    uint8_t qs[4][64];
    float d[16];
};
static_assert(sizeof(K32Panel) == 2432 && sizeof(Q6KPanel) == 2368 && sizeof(Q80Panel) == 320);

// vpermw indices: kSc[g % 4] puts group g's scale of row r in lanes 4r..4r+3 (a maddubs result's
// lanes of row r); kMn[k % 2] puts groups 2k and 2k + 1's mins in lanes 4r, 4r+1 and 4r+2, 4r+3
// (against four 16-quant sums broadcast per row).
struct Indices {
    alignas(64) uint16_t sc[4][32] = {};
    alignas(64) uint16_t mn[2][32] = {};
    constexpr Indices() {
        for (int g = 0; g < 4; ++g)
            for (int l = 0; l < 32; ++l) sc[g][l] = uint16_t(l / 4 * 4 + g);
        for (int h = 0; h < 2; ++h)
            for (int l = 0; l < 32; ++l) mn[h][l] = uint16_t(l / 4 * 4 + 2 * h + (l % 4) / 2);
    }
};
constexpr Indices kIdx;

inline __m512i bcast8(const void* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
}

// i16 shift counts: c0 for the low 256 bits, c1 for the high 256 bits
inline __m512i counts(int c0, int c1) {
    return _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(short(c0)), _mm512_set1_epi16(short(c1)));
}

// v[r] lane i -> v[i] lane r (8 x 8 of u64): pairs by unpack, then 128-bit lanes twice.
inline void transpose8(__m512i* v) {
    __m512i u[8], x[8];
    for (int r = 0; r < 8; r += 2) {
        u[r] = _mm512_unpacklo_epi64(v[r], v[r + 1]);      // rows r, r+1: words 0 | 2 | 4 | 6
        u[r + 1] = _mm512_unpackhi_epi64(v[r], v[r + 1]);  // words 1 | 3 | 5 | 7
    }
    for (int h = 0; h < 2; ++h)      // rows 4h .. 4h + 3
        for (int e = 0; e < 2; ++e) {  // even / odd words
            const __m512i a = u[4 * h + e], b = u[4 * h + 2 + e];
            x[4 * h + 2 * e] = _mm512_shuffle_i64x2(a, b, 0x88);      // words 0 | 4 (e = 0), 1 | 5
            x[4 * h + 2 * e + 1] = _mm512_shuffle_i64x2(a, b, 0xDD);  // words 2 | 6, 3 | 7
        }
    // x[2e + k] (rows 0-3) and x[4 + 2e + k] (rows 4-7): words e + 2k (low) and e + 2k + 4 (high)
    for (int e = 0; e < 2; ++e)
        for (int k = 0; k < 2; ++k) {
            v[e + 2 * k] = _mm512_shuffle_i64x2(x[2 * e + k], x[4 + 2 * e + k], 0x88);
            v[e + 2 * k + 4] = _mm512_shuffle_i64x2(x[2 * e + k], x[4 + 2 * e + k], 0xDD);
        }
}

// Pieces of a super-block: zmm q of row r holds its decoded elements 64q .. 64q + 63 (dec(r, q));
// piece 8q + i of the panel is word i of those 8 rows.
template <class Dec>
inline void put_pieces(uint8_t (*qs)[64], Dec dec) {
    for (int q = 0; q < 4; ++q) {
        __m512i v[8];
        for (int r = 0; r < 8; ++r) v[r] = dec(r, q);
        transpose8(v);
        for (int i = 0; i < 8; ++i) _mm512_store_si512(qs[8 * q + i], v[i]);
    }
}

// 64 quant bytes of a Q4_K / Q5_K block (groups 4p .. 4p + 3) as elements: low nibbles are groups
// 4p | 4p + 2, high nibbles 4p + 1 | 4p + 3 (256-bit halves); (lo, hi) -> elements 64q .. for q = 2p
// and 2p + 1.
inline __m512i k4_elements(__m512i lo, __m512i hi, int q) {
    return q % 2 ? _mm512_shuffle_i64x2(lo, hi, 0xEE) : _mm512_shuffle_i64x2(lo, hi, 0x44);
}

// Row r of a Q4_K / Q5_K block: scales, mins (6 bits each, 12 bytes) as i16 at lanes 4r..4r+3 of
// each half, d, dmin.
template <class P, class B>
inline void put_k4_scales(P& o, int r, const B& w) {
    uint32_t u[3];
    std::memcpy(u, w.scales, 12);
    const uint32_t sc_lo = u[0] & 0x3f3f3f3f, m_lo = u[1] & 0x3f3f3f3f;
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | ((u[0] >> 6) & 0x03030303) << 4;
    const uint32_t m_hi = ((u[2] >> 4) & 0x0f0f0f0f) | ((u[1] >> 6) & 0x03030303) << 4;
    alignas(32) int16_t v[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), _mm256_cvtepu8_epi16(_mm_setr_epi32(int(sc_lo), int(sc_hi), int(m_lo), int(m_hi))));
    std::memcpy(&o.sc[0][4 * r], v, 8);
    std::memcpy(&o.sc[1][4 * r], v + 4, 8);
    std::memcpy(&o.mn[0][4 * r], v + 8, 8);
    std::memcpy(&o.mn[1][4 * r], v + 12, 8);
    o.d[2 * r] = o.d[2 * r + 1] = _cvtsh_ss(w.d);
    o.dmin[2 * r] = o.dmin[2 * r + 1] = _cvtsh_ss(w.dmin);
}

// Packing reads the weights from DRAM (a prompt chunk's first touch of them): 8 rows are 8 streams,
// so each row's block two ahead is requested explicitly (B30-shaped layers in the page cache, 512
// tokens: the experts' products 1.69-1.79 s vs 1.84-1.92 without, 12 layers).
template <class B>
inline void prefetch_rows(const B* const* w, int64_t b, int64_t nb) {
    if (b + 2 >= nb) return;
    for (int r = 0; r < 8; ++r)
        for (int o = 0; o < int(sizeof(B)); o += 64) _mm_prefetch(reinterpret_cast<const char*>(w[r] + b + 2) + o, _MM_HINT_T0);
}

template <class B>
inline const B* panel_row(const void* row, int64_t stride, int rows, int r) {
    return reinterpret_cast<const B*>(static_cast<const uint8_t*>(row) + std::min(r, rows - 1) * stride);
}

void pack_q4_K(const void* row, int64_t stride, int rows, int64_t n, void* out) {
    auto* p = static_cast<K32Panel*>(out);
    const Q4_K* w[8];
    for (int r = 0; r < 8; ++r) w[r] = panel_row<Q4_K>(row, stride, rows, r);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch_rows(w, b, n / QKK);
        put_pieces(p[b].qs, [&](int r, int q) {
            const __m512i raw = _mm512_loadu_si512(w[r][b].qs + 64 * (q / 2));
            return k4_elements(_mm512_and_si512(raw, m4), _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4), q);
        });
        for (int r = 0; r < 8; ++r) put_k4_scales(p[b], r, w[r][b]);
    }
}

void pack_q5_K(const void* row, int64_t stride, int rows, int64_t n, void* out) {
    auto* p = static_cast<K32Panel*>(out);
    const Q5_K* w[8];
    for (int r = 0; r < 8; ++r) w[r] = panel_row<Q5_K>(row, stride, rows, r);
    const __m512i m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch_rows(w, b, n / QKK);
        put_pieces(p[b].qs, [&](int r, int q) {
            // the fifth bit of element 32g + l is bit g of qh[l]; groups as in k4_elements
            const int g0 = 4 * (q / 2);
            const __m512i raw = _mm512_loadu_si512(w[r][b].qs + 64 * (q / 2));
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][b].qh)));
            const __m512i hl = _mm512_and_si512(_mm512_srlv_epi16(qh, counts(g0, g0 + 2)), one);
            const __m512i hh = _mm512_and_si512(_mm512_srlv_epi16(qh, counts(g0 + 1, g0 + 3)), one);
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(raw, m4), _mm512_slli_epi16(hl, 4));
            const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(raw, 4), m4), _mm512_slli_epi16(hh, 4));
            return k4_elements(lo, hi, q);
        });
        for (int r = 0; r < 8; ++r) put_k4_scales(p[b], r, w[r][b]);
    }
}

void pack_q6_K(const void* row, int64_t stride, int rows, int64_t n, void* out) {
    auto* p = static_cast<Q6KPanel*>(out);
    const Q6_K* w[8];
    for (int r = 0; r < 8; ++r) w[r] = panel_row<Q6_K>(row, stride, rows, r);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3);
    for (int64_t b = 0; b < n / QKK; ++b) {
        prefetch_rows(w, b, n / QKK);
        put_pieces(p[b].qs, [&](int r, int q) {
            // elements 128h + 32s + l (h = q / 2): low 4 bits in ql[64h + l + 32 (s & 1)] (low nibble
            // for s < 2), high 2 bits at bits 2s of qh[32h + l]; q even: slices 0 | 1, odd: 2 | 3
            const int h = q / 2, s0 = 2 * (q % 2);
            const __m512i l = _mm512_loadu_si512(w[r][b].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r][b].qh + 32 * h)));
            const __m512i lo = _mm512_and_si512(q % 2 ? _mm512_srli_epi16(l, 4) : l, m4);
            const __m512i hi = _mm512_and_si512(_mm512_srlv_epi16(qh, counts(2 * s0, 2 * s0 + 2)), m3);
            return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
        });
        for (int r = 0; r < 8; ++r) {
            alignas(32) int16_t v[16];
            _mm256_store_si256(reinterpret_cast<__m256i*>(v),
                               _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r][b].scales))));
            for (int k = 0; k < 4; ++k) std::memcpy(&p[b].sc[k][4 * r], v + 4 * k, 8);
            p[b].d[2 * r] = p[b].d[2 * r + 1] = _cvtsh_ss(w[r][b].d);
        }
    }
}

void pack_q8_0(const void* row, int64_t stride, int rows, int64_t n, void* out) {
    auto* p = static_cast<Q80Panel*>(out);
    const Q8_0* w[8];
    for (int r = 0; r < 8; ++r) w[r] = panel_row<Q8_0>(row, stride, rows, r);
    for (int64_t b = 0; b < n / QK; ++b) {
        prefetch_rows(w, b, n / QK);
        for (int r = 0; r < 8; ++r) {
            for (int k = 0; k < 4; ++k) {
                uint64_t v;
                std::memcpy(&v, w[r][b].qs + 8 * k, 8);
                v ^= 0x8080808080808080ull;  // q + 128
                std::memcpy(&p[b].qs[k][8 * r], &v, 8);
            }
            p[b].d[2 * r] = p[b].d[2 * r + 1] = _cvtsh_ss(w[r][b].d);
        }
    }
}

// Row r's two i32 lanes (2r, 2r + 1) added into lane 2r: the super-block's exact integer sums, so
// the float operations per super-block are those of the canonical dots (dot_k4_x86.inc Canon,
// dot_avx512.cpp k16_block): panels and decode give the same bits. Lanes 2r + 1 are left unused.
inline __m512i pair_sums(__m512i v) { return _mm512_add_epi32(v, _mm512_srli_epi64(v, 32)); }

template <int C>
inline void store_rows(const __m512* acc, float* out) {
    for (int c = 0; c < C; ++c) {
        alignas(64) float t[16];
        _mm512_store_ps(t, acc[c]);
        for (int r = 0; r < 8; ++r) out[c * 8 + r] = t[2 * r];
    }
}

// out[c * 8 + r] = dot(row r, acts[c]) for C columns: Q4_K / Q5_K (groups of 32 with scales and mins).
template <int C>
void run_k32(const void* panel, const void* const* acts, int64_t n, float* out) {
    const auto* p = static_cast<const K32Panel*>(panel);
    ActQ8x256 a[C];
    for (int c = 0; c < C; ++c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        const K32Panel& w = p[b];
        __m512i isum[C];
        for (int c = 0; c < C; ++c) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; ++g) {
            __m512i q[4];
            for (int k = 0; k < 4; ++k) q[k] = _mm512_load_si512(w.qs[4 * g + k]);
            const __m512i s = _mm512_permutexvar_epi16(_mm512_load_si512(kIdx.sc[g % 4]), _mm512_load_si512(w.sc[g / 4]));
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                const int8_t* x = a[c].qs + b * QKK + 32 * g;
                // four 8-quant products per lane pair of one group: |sum| <= 4 * 2 * 31 * 127 fits i16
                __m512i t = _mm512_maddubs_epi16(q[0], bcast8(x));
                t = _mm512_add_epi16(t, _mm512_maddubs_epi16(q[1], bcast8(x + 8)));
                t = _mm512_add_epi16(t, _mm512_maddubs_epi16(q[2], bcast8(x + 16)));
                t = _mm512_add_epi16(t, _mm512_maddubs_epi16(q[3], bcast8(x + 24)));
                isum[c] = _mm512_dpwssd_epi32(isum[c], t, s);
                SLUICE_KEEP(isum[c]);
            }
        }
        // mins: lane 2r + p = sum over groups 2k + p of m * (the group's two 16-quant sums)
        __m512i mk[4];
        for (int k = 0; k < 4; ++k)
            mk[k] = _mm512_permutexvar_epi16(_mm512_load_si512(kIdx.mn[k % 2]), _mm512_load_si512(w.mn[k / 2]));
        const __m512 d = _mm512_load_ps(w.d), dmin = _mm512_load_ps(w.dmin);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            const int16_t* bs = a[c].bsums + b * 16;
            __m512i im = _mm512_setzero_si512();
            for (int k = 0; k < 4; ++k) im = _mm512_dpwssd_epi32(im, mk[k], bcast8(bs + 4 * k));
            const __m512 da = _mm512_set1_ps(a[c].d[b]);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pair_sums(isum[c])), _mm512_mul_ps(d, da), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(pair_sums(im)), _mm512_mul_ps(dmin, da), acc[c]);
        }
    }
    store_rows<C>(acc, out);
}

// Q6_K: groups of 16, signed scales, quants stored + 32 (taken off as 32 * scale * the group's sum).
template <int C>
void run_q6_K(const void* panel, const void* const* acts, int64_t n, float* out) {
    const auto* p = static_cast<const Q6KPanel*>(panel);
    ActQ8x256 a[C];
    for (int c = 0; c < C; ++c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        const Q6KPanel& w = p[b];
        __m512i isum[C];
        for (int c = 0; c < C; ++c) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 16
        for (int g = 0; g < 16; ++g) {
            const __m512i q0 = _mm512_load_si512(w.qs[2 * g]), q1 = _mm512_load_si512(w.qs[2 * g + 1]);
            const __m512i s = _mm512_permutexvar_epi16(_mm512_load_si512(kIdx.sc[g % 4]), _mm512_load_si512(w.sc[g / 4]));
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                const int8_t* x = a[c].qs + b * QKK + 16 * g;
                // two 8-quant products per lane pair: |sum| <= 2 * 2 * 63 * 127 fits i16
                const __m512i t = _mm512_add_epi16(_mm512_maddubs_epi16(q0, bcast8(x)), _mm512_maddubs_epi16(q1, bcast8(x + 8)));
                isum[c] = _mm512_dpwssd_epi32(isum[c], t, s);
                SLUICE_KEEP(isum[c]);
            }
        }
        const __m512 d = _mm512_load_ps(w.d);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            // lane 2r + p: sum over groups 4k + 2p, 4k + 2p + 1 of scale * the group's sum
            const int16_t* bs = a[c].bsums + b * 16;
            __m512i io = _mm512_setzero_si512();
            for (int k = 0; k < 4; ++k) io = _mm512_dpwssd_epi32(io, _mm512_load_si512(w.sc[k]), bcast8(bs + 4 * k));
            const __m512i tot = pair_sums(_mm512_sub_epi32(isum[c], _mm512_slli_epi32(io, 5)));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_mul_ps(d, _mm512_set1_ps(a[c].d[b])), acc[c]);
        }
    }
    store_rows<C>(acc, out);
}

// Q8_0: per 32-block and row the exact sum of q * x (vpdpbusd of q + 128 and x, less 128 * sum x),
// then one fma with d * dx: the canonical dot's order (dot_avx512.cpp dot_q8_0_canon).
template <int C>
void run_q8_0(const void* panel, const void* const* acts, int64_t n, float* out) {
    const auto* p = static_cast<const Q80Panel*>(panel);
    ActQ8x32 a[C];
    for (int c = 0; c < C; ++c) a[c] = act_q8x32(const_cast<void*>(acts[c]), n);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QK; ++b) {
        const Q80Panel& w = p[b];
        const __m512i q0 = _mm512_load_si512(w.qs[0]), q1 = _mm512_load_si512(w.qs[1]);
        const __m512i q2 = _mm512_load_si512(w.qs[2]), q3 = _mm512_load_si512(w.qs[3]);
        const __m512 d = _mm512_load_ps(w.d);
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            const int8_t* x = a[c].qs + b * QK;
            __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q0, bcast8(x));
            s = _mm512_dpbusd_epi32(s, q1, bcast8(x + 8));
            s = _mm512_dpbusd_epi32(s, q2, bcast8(x + 16));
            s = _mm512_dpbusd_epi32(s, q3, bcast8(x + 24));
            const __m512i t = _mm512_sub_epi32(pair_sums(s), _mm512_set1_epi32(128 * a[c].sum[b]));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(d, _mm512_set1_ps(a[c].d[b])), acc[c]);
        }
    }
    store_rows<C>(acc, out);
}

}  // namespace

// min_cols from bench_kernels BM_Matmul (768x2048, 1 thread): at 8 activations the panels are 1.3-1.4x
// the dot4s (Q5_K 1.3x), at 4 about even (Q5_K 0.85x).
Panel avx512_panel(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_K:
            return {[](int64_t n) { return size_t(n / QKK) * sizeof(K32Panel); }, pack_q4_K,
                    {run_k32<1>, run_k32<2>, run_k32<4>, run_k32<8>}, 8};
        case GgmlType::Q5_K:
            return {[](int64_t n) { return size_t(n / QKK) * sizeof(K32Panel); }, pack_q5_K,
                    {run_k32<1>, run_k32<2>, run_k32<4>, run_k32<8>}, 8};
        case GgmlType::Q6_K:
            return {[](int64_t n) { return size_t(n / QKK) * sizeof(Q6KPanel); }, pack_q6_K,
                    {run_q6_K<1>, run_q6_K<2>, run_q6_K<4>, run_q6_K<8>}, 8};
        case GgmlType::Q8_0:
            return {[](int64_t n) { return size_t(n / QK) * sizeof(Q80Panel); }, pack_q8_0,
                    {run_q8_0<1>, run_q8_0<2>, run_q8_0<4>, run_q8_0<8>}, 8};
        default: return {};
    }
}

}  // namespace sluice::detail
