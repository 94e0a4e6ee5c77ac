// Internal to engine/attention*.cpp: one tile of attention_chunk, written once over GCC vector types
// of W floats and built per ISA (attention.cpp: W = 4 baseline; attention_avx2.cpp: 8;
// attention_avx512.cpp: 16). Every lane holds a different cache row (scores) or output dim (P V), so
// a row's arithmetic is the same whatever the tile, the row's neighbours or the padding.
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
constexpr int64_t kAttnMr = 4;   // tile rows per micro-kernel step
inline int64_t attn_round(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t attn_dvp(int64_t head_dim_v) { return attn_round(head_dim_v, 64); }
// Scratch floats for a tile of up to `rows` rows: Q (R, D), K^T (D, KB), V (KB, Dvp), S (R, KB),
// O (R, Dvp), m (R), limits (R int64), l (R doubles).
inline int64_t attn_scratch(int64_t rows, int64_t head_dim, int64_t head_dim_v) {
    const int64_t R = attn_round(rows, kAttnMr), dvp = attn_dvp(head_dim_v);
    return R * head_dim + head_dim * kAttnKb + kAttnKb * dvp + R * kAttnKb + R * dvp + 5 * R + 16;
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

// Rows [r0, r1) of kv head g, row r = (query r / group, head g * group + r % group).
template <int W, int CN>
void attn_tile(const AttnChunk& a, int64_t g, int64_t r0, int64_t r1, float* scratch) {
    using X = AttnVec<W>;
    using V = typename X::V;
    constexpr int64_t KB = kAttnKb, MR = kAttnMr;
    static_assert(KB % (CN * W) == 0 && 64 % (CN * W) == 0);
    const int64_t group = a.n_head / a.n_head_kv, D = a.head_dim, Dv = a.head_dim_v, dvp = attn_dvp(Dv);
    const int64_t n = r1 - r0, R = attn_round(n, MR);
    float* Q = scratch;           // (R, D), scaled
    float* Kt = Q + R * D;        // (D, KB)
    float* Vb = Kt + D * KB;      // (KB, dvp), zero-padded
    float* S = Vb + KB * dvp;     // (R, KB): scores, then probabilities
    float* O = S + R * KB;        // (R, dvp)
    float* M = O + R * dvp;       // (R) running max
    int64_t* lim = reinterpret_cast<int64_t*>(M + R);            // (R) visible cache rows
    double* L = reinterpret_cast<double*>(attn_round(reinterpret_cast<uintptr_t>(lim + R), 8));  // (R) running sum

    for (int64_t r = 0; r < R; ++r) {
        const int64_t rr = r0 + std::min(r, n - 1);  // padding rows repeat the last row
        const int64_t i = rr / group, h = g * group + rr % group;
        const float* q = a.q + i * a.q_row + h * a.q_head;
        const float sc = a.q_scale ? a.q_scale[i] : a.scale;
        for (int64_t d = 0; d < D; ++d) Q[r * D + d] = q[d] * sc;
        lim[r] = a.pos0 + i + 1;
        M[r] = -std::numeric_limits<float>::infinity();
        L[r] = 0.0;
    }
    std::fill(O, O + R * dvp, 0.0f);
    const int64_t n_kv = lim[R - 1];
    const float* kg = a.k + g * D;
    const float* vg = a.v + g * Dv;

    for (int64_t t0 = 0; t0 < n_kv; t0 += KB) {
        const int64_t nb = std::min(KB, n_kv - t0);
        // K block transposed (a score vector is W cache rows), V block padded; both zero past nb.
        for (int64_t t = 0; t < nb; ++t) {
            const float* kt = kg + (t0 + t) * a.k_stride;
            for (int64_t d = 0; d < D; ++d) Kt[d * KB + t] = kt[d];
            std::memcpy(Vb + t * dvp, vg + (t0 + t) * a.v_stride, size_t(Dv) * sizeof(float));
            std::fill(Vb + t * dvp + Dv, Vb + (t + 1) * dvp, 0.0f);
        }
        if (nb < KB) {
            for (int64_t d = 0; d < D; ++d) std::fill(Kt + d * KB + nb, Kt + (d + 1) * KB, 0.0f);
            std::fill(Vb + nb * dvp, Vb + KB * dvp, 0.0f);
        }
        // S (R, KB) = Q K^T: MR rows x CN vectors of cache rows per step. Sums over runs of 32 dims,
        // added up run after run: a chain of D/32 + 32 roundings instead of D, as accurate as
        // attend_head's 16 lanes.
        for (int64_t r = 0; r < R; r += MR)
            for (int64_t c0 = 0; c0 < KB; c0 += CN * W) {
                for (int64_t d0 = 0; d0 < D; d0 += 32) {
                    V acc[MR][CN] = {};
                    for (int64_t d = d0; d < std::min(D, d0 + 32); ++d) {
                        V kv[CN];
                        SLUICE_UNROLL for (int c = 0; c < CN; ++c) kv[c] = X::load(Kt + d * KB + c0 + c * W);
                        SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m) {
                            const V qb = X::splat(Q[(r + m) * D + d]);
                            SLUICE_UNROLL for (int c = 0; c < CN; ++c) acc[m][c] += qb * kv[c];
                        }
                    }
                    SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m)
                        SLUICE_UNROLL for (int c = 0; c < CN; ++c) {
                            float* sp = S + (r + m) * KB + c0 + c * W;
                            X::store(sp, d0 == 0 ? acc[m][c] : X::load(sp) + acc[m][c]);
                        }
                }
            }
        // Online softmax: S -> exp(S - new max), O and the sum rescaled by exp(old max - new max).
        for (int64_t r = 0; r < R; ++r) {
            float* s = S + r * KB;
            const int64_t valid = std::clamp<int64_t>(lim[r] - t0, 0, KB);
            if (valid == 0) {  // all probabilities 0: O and l stay as they are
                std::fill(s, s + KB, 0.0f);
                continue;
            }
            for (int64_t t = valid; t < KB; ++t) s[t] = -std::numeric_limits<float>::infinity();
            V mv = X::load(s);
            for (int64_t t = W; t < KB; t += W) {
                const V x = X::load(s + t);
                mv = x > mv ? x : mv;
            }
            float mx = mv[0];
            for (int u = 1; u < W; ++u) mx = std::max(mx, mv[u]);
            const float m_new = std::max(M[r], mx);
            V sum = {};
            const V mn = X::splat(m_new);
            for (int64_t t = 0; t < KB; t += W) {
                const V p = X::exp(X::load(s + t) - mn);
                X::store(s + t, p);
                sum += p;
            }
            float bs = 0.0f;
            for (int u = 0; u < W; ++u) bs += sum[u];
            if (m_new != M[r]) {
                const float c = std::exp(M[r] - m_new);  // 0 on the first block (old max -inf)
                L[r] *= double(c);
                for (int64_t d = 0; d < dvp; ++d) O[r * dvp + d] *= c;
                M[r] = m_new;
            }
            L[r] += double(bs);
        }
        // O (R, dvp) += P (R, KB) V (KB, dvp): MR rows x CN vectors of dims per step, over t in order.
        for (int64_t r = 0; r < R; r += MR)
            for (int64_t d0 = 0; d0 < dvp; d0 += CN * W) {
                V acc[MR][CN];
                SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m)
                    SLUICE_UNROLL for (int c = 0; c < CN; ++c) acc[m][c] = X::load(O + (r + m) * dvp + d0 + c * W);
                for (int64_t t = 0; t < nb; ++t) {
                    V vv[CN];
                    SLUICE_UNROLL for (int c = 0; c < CN; ++c) vv[c] = X::load(Vb + t * dvp + d0 + c * W);
                    SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m) {
                        const V pb = X::splat(S[(r + m) * KB + t]);
                        SLUICE_UNROLL for (int c = 0; c < CN; ++c) acc[m][c] += pb * vv[c];
                    }
                }
                SLUICE_UNROLL for (int64_t m = 0; m < MR; ++m)
                    SLUICE_UNROLL for (int c = 0; c < CN; ++c) X::store(O + (r + m) * dvp + d0 + c * W, acc[m][c]);
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
