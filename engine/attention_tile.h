// Internal to engine/attention*.cpp: one tile of attention_chunk, written once over GCC vector types
// of W floats and built per ISA (attention.cpp: W = 4 baseline; attention_avx2.cpp: 8;
// attention_avx512.cpp: 16). Every lane holds a different row (scores, softmax) or output dim (P V),
// so a row's arithmetic is the same whatever the tile, the row's neighbours or the padding.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "engine/attention.h"

// The micro-kernels' accumulators stay in registers only when their loops are unrolled.
#define SLUICE_UNROLL _Pragma("GCC unroll 16")

namespace sluice::detail {

constexpr int64_t kAttnKb = 64;  // cache rows per block
constexpr int64_t kAttnMr = 4;   // tile rows (P V) or cache rows (Q K^T) per micro-kernel step
inline int64_t attn_round(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
// Scratch floats for a tile of up to `rows` rows: Q^T (D, R), S (KB, R), V (KB, Dvp), O (R, Dvp),
// max, limit, factor (R each), sum (R doubles); R and Dvp rounded up to 64 covers every ISA's build.
inline int64_t attn_scratch(int64_t rows, int64_t head_dim, int64_t head_dim_v) {
    const int64_t R = attn_round(rows, 64), dvp = attn_round(head_dim_v, 64);
    return R * head_dim + kAttnKb * R + kAttnKb * dvp + R * dvp + 5 * R + 16;
}

template <int W>
struct AttnVec {
    typedef float V __attribute__((vector_size(4 * W)));
    typedef int32_t I __attribute__((vector_size(4 * W)));
    static V load(const float* p) {
        V v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
    static V splat(float x) { return x - V{}; }  // x - 0 folds to a broadcast (x + 0 does not: -0)
    // e^x for x <= 0 (scores minus their running max), ~1 ulp (Cephes' expf polynomial after
    // x = n ln2 + r, |r| <= ln2/2); x below -87 (masked rows are -inf) gives exactly 0.
    static V exp(V x) {
        const V magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer in the low bits
        const V t = x * 1.44269504088896341f + magic;
        const V n = t - magic;
        const I ni = (I)t - 0x4B400000;
        V r = x - n * 0.693359375f;
        r = r - n * -2.12194440e-4f;
        V p = splat(1.9875691500e-4f);
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * (r * r) + r + 1.0f;
        const V scale = (V)((ni + 127) << 23);
        const I keep = x > splat(-87.0f);
        return (V)((I)(p * scale) & keep);
    }
};

// Rows [r0, r1) of kv head g, row r = (query r / group, head g * group + r % group). Q K^T runs with
// the tile's rows in the vector lanes (a cache row's k_d broadcast against W rows' q_d: K is read in
// place, only the tile's Q is transposed), so the online softmax is lane-wise too. CN: row vectors per
// Q K^T step; CV: output vectors per P V step.
template <int W, int CN, int CV>
void attn_tile(const AttnChunk& a, int64_t g, int64_t r0, int64_t r1, float* scratch) {
    using X = AttnVec<W>;
    using V = typename X::V;
    using I = typename X::I;
    constexpr int64_t KB = kAttnKb, MR = kAttnMr, RV = CN * W, DV = CV * W;
    static_assert(RV % MR == 0 && 64 % RV == 0 && 64 % DV == 0);
    const int64_t group = a.n_head / a.n_head_kv, D = a.head_dim, Dv = a.head_dim_v;
    const int64_t n = r1 - r0, R = attn_round(n, RV), nr = attn_round(n, MR), dvp = attn_round(Dv, DV);
    const bool v_in_place = dvp == Dv;  // else V blocks are copied with zero padding
    float* Qt = scratch;               // (D, R): scaled q, row r in lane r
    float* S = Qt + D * R;             // (KB, R): scores, then probabilities
    float* Vb = S + KB * R;            // (KB, dvp) when !v_in_place
    float* O = Vb + KB * dvp;          // (R, dvp)
    float* M = O + R * dvp;            // (R) running max
    float* lim = M + R;                // (R) visible cache rows, as floats (exact below 2^24)
    float* C = lim + R;                // (R) this block's rescale factor
    double* L = reinterpret_cast<double*>(attn_round(reinterpret_cast<uintptr_t>(C + R), 8));  // (R) running sum

    for (int64_t r = 0; r < R; ++r) {
        const int64_t rr = r0 + std::min(r, n - 1);  // padding rows repeat the last row
        const int64_t i = rr / group, h = g * group + rr % group;
        const float* q = a.q + i * a.q_row + h * a.q_head;
        const float sc = a.q_scale ? a.q_scale[i] : a.scale;
        for (int64_t d = 0; d < D; ++d) Qt[d * R + r] = q[d] * sc;
        lim[r] = float(a.pos0 + i + 1);
        M[r] = -std::numeric_limits<float>::infinity();
        L[r] = 0.0;
    }
    std::fill(O, O + R * dvp, 0.0f);
    const int64_t n_kv = a.pos0 + (r0 + n - 1) / group + 1;
    const float* kg = a.k + g * D;
    const float* vg = a.v + g * Dv;
    const V neg_inf = X::splat(-std::numeric_limits<float>::infinity());

    for (int64_t t0 = 0; t0 < n_kv; t0 += KB) {
        const int64_t nb = std::min(KB, n_kv - t0);
        // S (nb, R) = K Q^T: MR cache rows x CN row vectors per step. Sums over runs of 32 dims,
        // added up run after run: a chain of D/32 + 32 roundings, as accurate as attend_head's lanes.
        for (int64_t t = 0; t < nb; t += MR) {
            const float* kr[MR];
            SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m) kr[m] = kg + (t0 + std::min(t + m, nb - 1)) * a.k_stride;
            for (int64_t c0 = 0; c0 < R; c0 += RV)
                for (int64_t d0 = 0; d0 < D; d0 += 32) {
                    V acc[MR][CN] = {};
                    for (int64_t d = d0; d < std::min(D, d0 + 32); ++d) {
                        V qv[CN];
                        SLUICE_UNROLL for (int c = 0; c < CN; ++c) qv[c] = X::load(Qt + d * R + c0 + c * W);
                        SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m) {
                            const V kb = X::splat(kr[m][d]);
                            SLUICE_UNROLL for (int c = 0; c < CN; ++c) acc[m][c] += kb * qv[c];
                        }
                    }
                    SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m)
                        SLUICE_UNROLL for (int c = 0; c < CN; ++c) {
                            float* sp = S + (t + m) * R + c0 + c * W;
                            X::store(sp, d0 == 0 ? acc[m][c] : X::load(sp) + acc[m][c]);
                        }
                }
        }
        // Online softmax, W rows at a time: cache rows past a row's limit -> -inf; S -> exp(S - new
        // max); the sum and O rescaled by exp(old max - new max) (exactly 1 when the max holds).
        for (int64_t c0 = 0; c0 < R; c0 += W) {
            const V lv = X::load(lim + c0), mo = X::load(M + c0);
            V bm = neg_inf;
            for (int64_t t = 0; t < nb; ++t) {
                const V x = X::load(S + t * R + c0);
                const I keep = X::splat(float(t0 + t)) < lv;
                const V sx = (V)(((I)x & keep) | ((I)neg_inf & ~keep));
                X::store(S + t * R + c0, sx);
                bm = sx > bm ? sx : bm;
            }
            const V mn = mo > bm ? mo : bm;
            V sum = {};
            for (int64_t t = 0; t < nb; ++t) {
                const V p = X::exp(X::load(S + t * R + c0) - mn);
                X::store(S + t * R + c0, p);
                sum += p;
            }
            const V c = X::exp(mo - mn);  // 0 on the first block (old max -inf)
            X::store(M + c0, mn);
            X::store(C + c0, c);
            for (int u = 0; u < W; ++u) L[c0 + u] = L[c0 + u] * double(c[u]) + double(sum[u]);
        }
        for (int64_t r = 0; r < nr; ++r)
            if (C[r] != 1.0f)
                for (int64_t d = 0; d < dvp; ++d) O[r * dvp + d] *= C[r];
        if (!v_in_place)
            for (int64_t t = 0; t < nb; ++t) {
                std::memcpy(Vb + t * dvp, vg + (t0 + t) * a.v_stride, size_t(Dv) * sizeof(float));
                std::fill(Vb + t * dvp + Dv, Vb + (t + 1) * dvp, 0.0f);
            }
        const float* vb = v_in_place ? vg + t0 * a.v_stride : Vb;
        const int64_t vs = v_in_place ? a.v_stride : dvp;
        // O (nr, dvp) += P^T V (nb, dvp): MR rows x CV vectors of dims per step, over t in order.
        for (int64_t r = 0; r < nr; r += MR)
            for (int64_t d0 = 0; d0 < dvp; d0 += DV) {
                V acc[MR][CV];
                SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m)
                    SLUICE_UNROLL for (int c = 0; c < CV; ++c) acc[m][c] = X::load(O + (r + m) * dvp + d0 + c * W);
                for (int64_t t = 0; t < nb; ++t) {
                    V vv[CV];
                    SLUICE_UNROLL for (int c = 0; c < CV; ++c) vv[c] = X::load(vb + t * vs + d0 + c * W);
                    SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m) {
                        const V pb = X::splat(S[t * R + r + m]);
                        SLUICE_UNROLL for (int c = 0; c < CV; ++c) acc[m][c] += pb * vv[c];
                    }
                }
                SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m)
                    SLUICE_UNROLL for (int c = 0; c < CV; ++c) X::store(O + (r + m) * dvp + d0 + c * W, acc[m][c]);
            }
    }
    for (int64_t r = 0; r < n; ++r) {
        const int64_t rr = r0 + r, i = rr / group, h = g * group + rr % group;
        float* o = a.out + i * a.out_row + h * a.out_head;
        const float inv = float(1.0 / L[r]);
        for (int64_t d = 0; d < Dv; ++d) o[d] = O[r * dvp + d] * inv;
    }
}

}  // namespace sluice::detail

#undef SLUICE_UNROLL
