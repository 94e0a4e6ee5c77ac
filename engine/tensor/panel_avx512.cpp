// Q4_K prompt products over repacked weights (AVX-512 BW/VNNI): 8 weight rows interleaved 8 bytes at a
// time, so one activation load (8 bytes broadcast) and one vpmaddubsw serve all 8 rows. The products
// of a 32-quant group (4 vpmaddubsw) add up in i16 before one vpdpwssd applies the group scales: 5
// multiply instructions per 256 products, where the dot / tile kernels need 2 per 32 x 8 = 16 (on
// this kind of Xeon 512-bit integer multiplies issue on one port: that count is the speed).
// Integer sums per super-block equal the reference's; the float accumulation runs in another order
// than vec_dot's, so results differ from it by float rounding only.
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

// One super-block of 8 rows. qs[4j + k] holds, for row r at bytes 8r..8r+7, the 8 bytes of the
// row's qs[32j + 8k ..]: low nibbles are elements 64j + 8k + i (group 2j), high nibbles 64j + 32
// + 8k + i (group 2j + 1). Scales and mins as i16, lane 4r + g % 4 of half g / 4 (vpermw spreads
// them); d and dmin as floats in lanes 2r and 2r + 1 (the i32 sums' layout).
struct alignas(64) Q4KPanel {
    uint8_t qs[16][64];
    int16_t sc[2][32];
    int16_t mn[2][32];
    float d[16], dmin[16];
};
static_assert(sizeof(Q4KPanel) == 1408);

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

inline __m512i bcast8(const int8_t* p) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return _mm512_set1_epi64(v);
}

void pack_q4_K(const void* row, int64_t stride, int rows, int64_t n, void* out) {
    auto* p = static_cast<Q4KPanel*>(out);
    for (int r = 0; r < 8; ++r) {
        const auto* w = reinterpret_cast<const Q4_K*>(static_cast<const uint8_t*>(row) + std::min(r, rows - 1) * stride);
        for (int64_t b = 0; b < n / QKK; ++b) {
            Q4KPanel& o = p[b];
            for (int q = 0; q < 16; ++q) std::memcpy(&o.qs[q][8 * r], w[b].qs + 8 * q, 8);
            for (int g = 0; g < 8; ++g) {
                int sc, m;
                scale_min_k4(g, w[b].scales, sc, m);
                o.sc[g / 4][4 * r + g % 4] = int16_t(sc);
                o.mn[g / 4][4 * r + g % 4] = int16_t(m);
            }
            o.d[2 * r] = o.d[2 * r + 1] = _cvtsh_ss(w[b].d);
            o.dmin[2 * r] = o.dmin[2 * r + 1] = _cvtsh_ss(w[b].dmin);
        }
    }
}

// out[c * 8 + r] = dot(row r, acts[c]) for C columns.
template <int C>
void run_q4_K(const void* panel, const void* const* acts, int64_t n, float* out) {
    const auto* p = static_cast<const Q4KPanel*>(panel);
    ActQ8x256 a[C];
    for (int c = 0; c < C; ++c) a[c] = act_q8x256(const_cast<void*>(acts[c]), n);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[C];
    for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n / QKK; ++b) {
        const Q4KPanel& w = p[b];
        __m512i isum[C];
        for (int c = 0; c < C; ++c) isum[c] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                const int g = 2 * j + h;
                __m512i q[4];
                for (int k = 0; k < 4; ++k) {
                    const __m512i raw = _mm512_load_si512(w.qs[4 * j + k]);
                    q[k] = _mm512_and_si512(h ? _mm512_srli_epi16(raw, 4) : raw, m4);
                }
                const __m512i s = _mm512_permutexvar_epi16(_mm512_load_si512(kIdx.sc[g % 4]),
                                                           _mm512_load_si512(w.sc[g / 4]));
#pragma GCC unroll 8
                for (int c = 0; c < C; ++c) {
                    const int8_t* x = a[c].qs + b * QKK + 32 * g;
                    // four products per lane pair of one group: |sum| <= 4 * 2 * 15 * 127 fits i16
                    __m512i t = _mm512_maddubs_epi16(q[0], bcast8(x));
                    t = _mm512_add_epi16(t, _mm512_maddubs_epi16(q[1], bcast8(x + 8)));
                    t = _mm512_add_epi16(t, _mm512_maddubs_epi16(q[2], bcast8(x + 16)));
                    t = _mm512_add_epi16(t, _mm512_maddubs_epi16(q[3], bcast8(x + 24)));
                    isum[c] = _mm512_dpwssd_epi32(isum[c], t, s);
                    SLUICE_KEEP(isum[c]);
                }
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
            for (int k = 0; k < 4; ++k) im = _mm512_dpwssd_epi32(im, mk[k], bcast8(reinterpret_cast<const int8_t*>(bs + 4 * k)));
            const __m512 da = _mm512_set1_ps(a[c].d[b]);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(d, da), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(im), _mm512_mul_ps(dmin, da), acc[c]);
        }
    }
    for (int c = 0; c < C; ++c) {
        alignas(64) float t[16];
        _mm512_store_ps(t, acc[c]);
        for (int r = 0; r < 8; ++r) out[c * 8 + r] = t[2 * r] + t[2 * r + 1];
    }
}

}  // namespace

Panel avx512_panel(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_K:
            return {[](int64_t n) { return size_t(n / QKK) * sizeof(Q4KPanel); }, pack_q4_K,
                    {run_q4_K<1>, run_q4_K<2>, run_q4_K<4>, run_q4_K<8>}};
        default: return {};
    }
}

}  // namespace sluice::detail
