#version 450
// Router: the k largest of n_expert logits (ties to the lower id), largest first, with softmax
// weights; TOPK_RENORM renormalises them over the k (softmax over the chosen logits), else they are
// the full softmax's probabilities. One workgroup.
//
// GROUPED (moe_route_grouped, deepseek2's route_experts()): the ranking is over selection scores, not
// the logits: p = sigmoid(logits) (or their softmax), sel = p + bias, only within the n_group_used
// groups whose two best sel sum highest (their best with softmax scores); the weights are the chosen
// p, normalised to sum 1 with ROUTE_NORM, times w_scale.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"

layout(local_size_x = TOPK_THREADS) in;
#ifdef GROUPED
layout(push_constant) uniform PC { GroupRoutePush p; };
#else
layout(push_constant) uniform PC { TopkPush p; };
#endif
uint ro = 0u;  // offset of this row's logits, ids and weights
layout(binding = 0, std430) readonly buffer LBuf { float L[]; };
layout(binding = 1, std430) writeonly buffer IdsBuf { int ids[]; };
layout(binding = 2, std430) writeonly buffer WBuf { float Wt[]; };
#ifdef GROUPED
layout(binding = 3, std430) readonly buffer BiasBuf { float Bias[]; };
shared float prob[ROUTE_GROUPED_MAX], sel[ROUTE_GROUPED_MAX];
shared float gscore[ROUTE_GROUPS_MAX];
#define SCORE(e) sel[e]
#else
#define SCORE(e) L[(p.logits_off + ro) + e]
#endif

shared float rv[TOPK_THREADS];  // per subgroup: a round's best (two halves, alternate rounds)
shared uint ri[TOPK_THREADS];
shared float red[TOPK_THREADS];  // wg_max / wg_sum: one value per subgroup
shared float chosen[32];  // logits of the chosen experts (k <= 32)
#define NONE 0xFFFFFFFFu

// Max / sum of v over the workgroup, in every invocation: subgroup operations, then one round
// through shared memory. Uniform control flow.
float wg_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float r = -1.0 / 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) r = max(r, red[i]);
    barrier();
    return r;
}
float wg_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float r = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) r += red[i];
    barrier();
    return r;
}

#ifdef GROUPED
// prob and sel of every expert, then sel = -inf outside the n_group_used best groups.
void selection_scores() {
    const uint tid = gl_LocalInvocationIndex, n = p.n_expert;
    const bool sigm = (p.flags & ROUTE_SIGMOID) != 0u;
    float mx = -1.0 / 0.0;
    for (uint e = tid; e < n; e += TOPK_THREADS) mx = max(mx, L[(p.logits_off + ro) + e]);
    mx = wg_max(mx);
    float z = 0.0;
    for (uint e = tid; e < n; e += TOPK_THREADS) {
        const float l = L[(p.logits_off + ro) + e];
        prob[e] = sigm ? 1.0 / (1.0 + exp(-l)) : exp(l - mx);
        z += prob[e];
    }
    z = sigm ? 1.0 : wg_sum(z);
    for (uint e = tid; e < n; e += TOPK_THREADS) {
        if (!sigm) prob[e] /= z;
        sel[e] = prob[e] + ((p.flags & ROUTE_BIAS) != 0u ? Bias[p.bias_off + e] : 0.0);
    }
    barrier();
    if (p.n_group <= 1u) return;
    const uint per = n / p.n_group;
    for (uint g = tid; g < p.n_group; g += TOPK_THREADS) {  // as route_experts(): best, second best
        float best = -1.0 / 0.0, second = best;
        for (uint e = g * per; e < (g + 1u) * per; ++e) {
            const float v = sel[e];
            if (v > best) {
                second = best;
                best = v;
            } else if (v > second) {
                second = v;
            }
        }
        gscore[g] = per > 1u && sigm ? best + second : best;
    }
    barrier();
    // A group is kept when fewer than n_group_used groups rank before it (higher, or equal and lower).
    for (uint g = tid; g < p.n_group; g += TOPK_THREADS) {
        uint before = 0u;
        for (uint o = 0u; o < p.n_group; ++o) before += uint(gscore[o] > gscore[g] || (gscore[o] == gscore[g] && o < g));
        if (before >= p.n_group_used)
            for (uint e = g * per; e < (g + 1u) * per; ++e) sel[e] = -1.0 / 0.0;
    }
    barrier();
}
#endif

void main() {
    ro = gl_WorkGroupID.y * p.row_stride;  // row y of a batch (prompts): logits, ids and weights
    const uint tid = gl_LocalInvocationIndex;
#ifdef GROUPED
    selection_scores();
#endif
#ifndef GROUPED
    // Max over all logits (for the full softmax's denominator).
    float gmax = -1.0 / 0.0;
    for (uint e = tid; e < p.n_expert; e += TOPK_THREADS) gmax = max(gmax, L[(p.logits_off + ro) + e]);
#endif
    // k rounds, one barrier each: every invocation's best of its experts not taken yet (bit i of
    // mine: expert tid + i * TOPK_THREADS), the subgroup's best (highest, then lowest id) into shared
    // memory, and every invocation reads the subgroups' to find the round's winner.
    uint mine = 0u;
    for (uint j = 0u; j < p.k; ++j) {
        float bv = -1.0 / 0.0;
        uint bi = NONE;
        for (uint i = 0u, e = tid; e < p.n_expert; ++i, e += TOPK_THREADS) {
            const float v = SCORE(e);
            if ((mine >> i & 1u) == 0u && (v > bv || bi == NONE)) { bv = v; bi = e; }
        }
        const float m = subgroupMax(bi == NONE ? -1.0 / 0.0 : bv);
        const uint mi = subgroupMin(bi != NONE && bv == m ? bi : NONE);
        const uint hb = (j & 1u) * (TOPK_THREADS / 2u);
        if (subgroupElect()) {
            rv[hb + gl_SubgroupID] = m;
            ri[hb + gl_SubgroupID] = mi;
        }
        barrier();
        float wv = -1.0 / 0.0;
        uint wi = NONE;
        for (uint g = 0u; g < gl_NumSubgroups; ++g) {
            const float v2 = rv[hb + g];
            const uint i2 = ri[hb + g];
            if (i2 != NONE && (wi == NONE || v2 > wv || (v2 == wv && i2 < wi))) { wv = v2; wi = i2; }
        }
        if (wi % TOPK_THREADS == tid) mine |= 1u << (wi / TOPK_THREADS);
        if (tid == 0u) {
            ids[(p.ids_off + ro) + j] = int(wi);
#ifdef GROUPED
            chosen[j] = prob[wi];
#else
            chosen[j] = wv;
#endif
        }
    }
    barrier();  // chosen[]
#ifdef GROUPED
    if (tid == 0u) {
        float sum = 0.0;
        for (uint j = 0u; j < p.k; ++j) sum += chosen[j];
        const float norm = (p.flags & ROUTE_NORM) != 0u ? 1.0 / max(sum, 6.103515625e-5) : 1.0;
        for (uint j = 0u; j < p.k; ++j) Wt[(p.w_off + ro) + j] = chosen[j] * (norm * p.w_scale);
    }
#else
    // Full-softmax denominator (only needed without renormalisation).
    const float M = wg_max(gmax);
    float z = 0.0;
    for (uint e = tid; e < p.n_expert; e += TOPK_THREADS) z += exp(L[(p.logits_off + ro) + e] - M);
    z = wg_sum(z);
    if (tid == 0u) {
        float zk = 0.0;
        for (uint j = 0u; j < p.k; ++j) zk += exp(chosen[j] - M);
        const float denom = (p.flags & TOPK_RENORM) != 0u ? zk : z;
        for (uint j = 0u; j < p.k; ++j) Wt[(p.w_off + ro) + j] = exp(chosen[j] - M) / denom;
    }
#endif
}
