#version 450
// Decode attention, one split of the sequence for one head (workgroup (s, h)). Scores of the split's
// positions go to shared memory; the output is left unnormalised with the split's max and sum of
// exponentials, so attn_combine can merge splits exactly (as flash-decoding does).
// part[(h * n_splits + s) * (head_dim_v + 2) + ...] = (max, sum, o[head_dim_v]).
// Scores: the 4 teams of 32 take a position each, lane i multiplying dims i, i + 32, ... so a K row is
// read in whole cache lines (one position per invocation read rows at a stride: 32 lines per load).
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable

layout(local_size_x = ATTN_THREADS) in;
layout(push_constant) uniform PC { AttnPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) readonly buffer KBuf { float K[]; };
layout(binding = 2, std430) readonly buffer VBuf { float V[]; };
layout(binding = 3, std430) writeonly buffer PartBuf { float part[]; };
STEP_BUFFER(4)

shared float sc[ATTN_CHUNK_MAX];
shared float red[ATTN_THREADS];

#define TEAMS (ATTN_THREADS / 32u)
#define DPL (ATTN_DMAX / 32u)  // dims per lane

// Sum over a team of 32 (see matvec.comp's team_sum). Uniform control flow.
float team_sum(float v, uint team, uint lane) {
    if (gl_SubgroupSize == 32u) return subgroupAdd(v);
    red[team * 32u + lane] = v;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < 32u; ++i) t += red[team * 32u + i];
    barrier();
    return t;
}

float reduce_max(float v) {
    red[gl_LocalInvocationIndex] = v;
    barrier();
    for (uint s = ATTN_THREADS / 2; s > 0u; s >>= 1) {
        if (gl_LocalInvocationIndex < s) red[gl_LocalInvocationIndex] = max(red[gl_LocalInvocationIndex], red[gl_LocalInvocationIndex + s]);
        barrier();
    }
    const float r = red[0];
    barrier();
    return r;
}
float reduce_sum(float v) {
    red[gl_LocalInvocationIndex] = v;
    barrier();
    for (uint s = ATTN_THREADS / 2; s > 0u; s >>= 1) {
        if (gl_LocalInvocationIndex < s) red[gl_LocalInvocationIndex] += red[gl_LocalInvocationIndex + s];
        barrier();
    }
    const float r = red[0];
    barrier();
    return r;
}

void main() {
    const uint s = gl_WorkGroupID.x, h = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint kvh = h / (p.n_head / p.n_head_kv);
    const uint n_kv = step.n_kv;
    const uint chunk = (n_kv + p.n_splits - 1u) / p.n_splits;
    const uint t0 = min(s * chunk, n_kv), t1 = min(t0 + chunk, n_kv);
    const uint qo = p.q_off + h * p.head_dim;
    const uint ko = p.k_off + kvh * p.head_dim, vo = p.v_off + kvh * p.head_dim_v;

    const bool sg = gl_SubgroupSize == 32u;
    const uint team = sg ? gl_SubgroupID : tid / 32u, lane = sg ? gl_SubgroupInvocationID : tid % 32u;
    float q[DPL];
    [[unroll]] for (uint i = 0u; i < DPL; ++i) q[i] = lane + 32u * i < p.head_dim ? Q[qo + lane + 32u * i] : 0.0;
    float mx = -1.0 / 0.0;
    for (uint t_team = t0; t_team < t1; t_team += TEAMS) {  // the same trip count for every team
        const uint t = t_team + team;
        float dot = 0.0;
        if (t < t1) {
            const uint kr = ko + t * p.k_row_stride + lane;
            [[unroll]] for (uint i = 0u; i < DPL; ++i)
                if (lane + 32u * i < p.head_dim) dot += q[i] * K[kr + 32u * i];
        }
        dot = team_sum(dot, team, lane) * p.scale;
        if (t < t1) {
            if (lane == 0u) sc[t - t0] = dot;
            mx = max(mx, dot);
        }
    }
    mx = reduce_max(mx);  // its barriers also publish sc[]
    float sum = 0.0;
    for (uint t = t0 + tid; t < t1; t += ATTN_THREADS) {
        const float e = exp(sc[t - t0] - mx);
        sc[t - t0] = e;
        sum += e;
    }
    sum = reduce_sum(sum);  // its barriers also publish sc[]
    const uint po = p.part_off + (h * p.n_splits + s) * (p.head_dim_v + 2u);
    if (tid == 0u) {
        part[po] = mx;
        part[po + 1u] = sum;
    }
    for (uint d = tid; d < p.head_dim_v; d += ATTN_THREADS) {
        float o = 0.0;
        for (uint t = t0; t < t1; ++t) o += sc[t - t0] * V[vo + t * p.v_row_stride + d];
        part[po + 2u + d] = o;
    }
}
