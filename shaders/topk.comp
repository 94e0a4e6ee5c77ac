#version 450
// Router: the k largest of n_expert logits (ties to the lower id), largest first, with softmax
// weights; TOPK_RENORM renormalises them over the k (softmax over the chosen logits), else they are
// the full softmax's probabilities. One workgroup.
#include "common.glsl"

layout(local_size_x = TOPK_THREADS) in;
layout(push_constant) uniform PC { TopkPush p; };
layout(binding = 0, std430) readonly buffer LBuf { float L[]; };
layout(binding = 1, std430) writeonly buffer IdsBuf { int ids[]; };
layout(binding = 2, std430) writeonly buffer WBuf { float Wt[]; };

shared float rv[TOPK_THREADS];
shared uint ri[TOPK_THREADS];
shared uint taken[64];   // bitset of chosen experts: up to 2048
shared float chosen[32];  // logits of the chosen experts (k <= 32)

bool is_taken(uint e) { return (taken[e >> 5] >> (e & 31u) & 1u) != 0u; }

void main() {
    const uint tid = gl_LocalInvocationIndex;
    for (uint i = tid; i < 64u; i += TOPK_THREADS) taken[i] = 0u;
    barrier();
    // Max over all logits (for the full softmax's denominator).
    float gmax = -1.0 / 0.0;
    for (uint e = tid; e < p.n_expert; e += TOPK_THREADS) gmax = max(gmax, L[p.logits_off + e]);
    for (uint j = 0u; j < p.k; ++j) {
        float bv = -1.0 / 0.0;
        uint bi = 0xFFFFFFFFu;
        for (uint e = tid; e < p.n_expert; e += TOPK_THREADS) {
            const float v = L[p.logits_off + e];
            if (!is_taken(e) && (v > bv || bi == 0xFFFFFFFFu)) { bv = v; bi = e; }
        }
        rv[tid] = bv;
        ri[tid] = bi;
        barrier();
        for (uint s = TOPK_THREADS / 2; s > 0u; s >>= 1) {
            if (tid < s) {
                const float v2 = rv[tid + s];
                const uint i2 = ri[tid + s];
                if (i2 != 0xFFFFFFFFu && (ri[tid] == 0xFFFFFFFFu || v2 > rv[tid] || (v2 == rv[tid] && i2 < ri[tid]))) {
                    rv[tid] = v2;
                    ri[tid] = i2;
                }
            }
            barrier();
        }
        if (tid == 0u) {
            taken[ri[0] >> 5] |= 1u << (ri[0] & 31u);
            ids[p.ids_off + j] = int(ri[0]);
            chosen[j] = rv[0];
        }
        barrier();
    }
    // Full-softmax denominator (only needed without renormalisation).
    rv[tid] = gmax;
    barrier();
    for (uint s = TOPK_THREADS / 2; s > 0u; s >>= 1) {
        if (tid < s) rv[tid] = max(rv[tid], rv[tid + s]);
        barrier();
    }
    const float M = rv[0];
    barrier();
    float z = 0.0;
    for (uint e = tid; e < p.n_expert; e += TOPK_THREADS) z += exp(L[p.logits_off + e] - M);
    rv[tid] = z;
    barrier();
    for (uint s = TOPK_THREADS / 2; s > 0u; s >>= 1) {
        if (tid < s) rv[tid] += rv[tid + s];
        barrier();
    }
    if (tid == 0u) {
        float zk = 0.0;
        for (uint j = 0u; j < p.k; ++j) zk += exp(chosen[j] - M);
        const float denom = (p.flags & TOPK_RENORM) != 0u ? zk : rv[0];
        for (uint j = 0u; j < p.k; ++j) Wt[p.w_off + j] = exp(chosen[j] - M) / denom;
    }
}
