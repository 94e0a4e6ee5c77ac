#version 450
// Decode attention, one split of the sequence for one head (workgroup (s, h)). Scores of the split's
// positions go to shared memory; the output is left unnormalised with the split's max and sum of
// exponentials, so the splits merge exactly (as flash-decoding does):
// part[(h * n_splits + s) * (head_dim_v + 2) + ...] = (max, sum, o[head_dim_v]).
// Scores: the 4 teams of 32 take a position each, lane i multiplying dims i, i + 32, ... so a K row is
// read in whole cache lines (one position per invocation read rows at a stride: 32 lines per load).
//
// FUSED (attn_fused): three dependent dispatches in one. (1) qwen3's per-head q/k RMSNorm + NeoX RoPE
// (qk_norm_rope.comp's arithmetic): every workgroup normalises its q head; those whose split holds
// this position normalise its k from the raw projection (Q buffer at k_raw_off), use it for that
// position and, for the first q head of the kv group, write it into the cache row (no workgroup reads
// that row from the cache, so there is no race). (2) The split. (3) The merge (attn_combine.comp's
// arithmetic): the last workgroup of a head to finish (an atomic count per head, reset after use)
// merges its splits into out.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable

#ifdef FUSED
#define MERGE  // attn_common.glsl's merge()
#define MERGE_KEEP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

layout(local_size_x = ATTN_THREADS) in;
#ifdef FUSED
layout(push_constant) uniform PC { AttnFusedPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) buffer KBuf { float K[]; };
layout(binding = 2, std430) buffer VBuf { float V[]; };
layout(binding = 3, std430) coherent buffer PartBuf { float part[]; };  // read back by another workgroup
STEP_BUFFER(4)
layout(binding = 5, std430) readonly buffer NormBuf { float Wn[]; };
layout(binding = 6, std430) writeonly buffer OutBuf { float O[]; };
layout(binding = 7, std430) buffer CountBuf { uint count[]; };
layout(binding = 8, std430) writeonly buffer OqBuf { uint Oq[]; };  // ATTN_OUT_Q8: out's int8 mirror
layout(binding = 8, std430) writeonly buffer OsBuf { vec2 Os2[]; };
shared float qn[ATTN_DMAX], kn[ATTN_DMAX], nv[ATTN_DMAX];
shared bool last;
#else
layout(push_constant) uniform PC { AttnPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) readonly buffer KBuf { float K[]; };
layout(binding = 2, std430) readonly buffer VBuf { float V[]; };
layout(binding = 3, std430) writeonly buffer PartBuf { float part[]; };
STEP_BUFFER(4)
#endif

shared float sc[ATTN_CHUNK_MAX];
shared float red[ATTN_THREADS];
#ifndef FUSED
shared float qn[ATTN_DMAX];  // the head's q (FUSED: normalised and roped by norm_rope)
#endif

#define TEAMS (ATTN_THREADS / 32u)
#define KU 4u  // positions per team per round of the scores
#define VU 8u  // V rows per round of the weighted sum

#include "attn_common.glsl"

#ifdef FUSED
// nv = the head at Q[xo ..] / rms * Wn[wo ..]; out[i] = its NeoX rotation (read from shared memory
// by the caller after this returns). qk_norm_rope.comp computes the same.
void norm_rope(uint xo, uint wo, bool to_q) {
    const uint tid = gl_LocalInvocationIndex;
    float ss = 0.0;
    for (uint i = tid; i < p.head_dim; i += ATTN_THREADS) {
        const float x = Q[xo + i];
        nv[i] = x;
        ss += x * x;
    }
    const float scale = inversesqrt(reduce_sum(ss) / float(p.head_dim) + p.eps);
    for (uint i = tid; i < p.head_dim; i += ATTN_THREADS) nv[i] = nv[i] * scale * Wn[wo + i];
    barrier();
    const uint half_rot = p.n_rot / 2u;
    for (uint i = tid; i < p.head_dim; i += ATTN_THREADS) {
        float y = nv[i];
        if (i < half_rot) y = nv[i] * rope_cs[i].x - nv[i + half_rot] * rope_cs[i].y;
        else if (i < p.n_rot) y = nv[i - half_rot] * rope_cs[i - half_rot].y + nv[i] * rope_cs[i - half_rot].x;
        if (to_q) qn[i] = y;
        else kn[i] = y;
    }
    barrier();
}
#endif

#ifdef FUSED
#include "q8_block.glsl"
// ATTN_OUT_Q8 (head_dim_v and out_off multiples of 32, ops.cpp): head h's merged output (nv, from
// merge()) as int8 blocks (q8_block.glsl).
void out_mirror(uint h) {
    barrier();
    const uint tid = gl_LocalInvocationIndex, n4 = p.head_dim_v / 4u;
    for (uint t0 = 0u; t0 < n4; t0 += ATTN_THREADS) {  // uniform
        const uint t = t0 + tid;
        const bool inside = t < n4;
        const vec4 v = inside ? vec4(nv[4u * t], nv[4u * t + 1u], nv[4u * t + 2u], nv[4u * t + 3u]) : vec4(0.0);
        vec2 ds;
        const uint q = q8_quantize(v, ds);
        if (!inside) continue;
        const uint i = (p.out_off + h * p.head_dim_v) / 4u + t;  // vec4 index
        Oq[i] = q;
        if ((t & 7u) == 0u) Os2[p.out_q_soff + i / 8u] = ds;
    }
}
#endif

void main() {
    const uint s = gl_WorkGroupID.x, h = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint group = p.n_head / p.n_head_kv, kvh = h / group;
    const uint n_kv = step.n_kv;
    // Splits of at least ATTN_MIN_CHUNK positions: at a short context only the first n_active hold any
    // (the fused variant's others leave at once and its merge reads only theirs), at a long one all of
    // them, so a split's chain of loads stays short either way.
    const uint chunk = max((n_kv + p.n_splits - 1u) / p.n_splits, ATTN_MIN_CHUNK);
    const uint n_active = (n_kv + chunk - 1u) / chunk;
    const uint t0 = min(s * chunk, n_kv), t1 = min(t0 + chunk, n_kv);
#ifdef FUSED
    if (s >= n_active) return;  // uniform in the workgroup
#endif
    const uint qo = p.q_off + h * p.head_dim;
    const uint ko = p.k_off + kvh * p.head_dim, vo = p.v_off + kvh * p.head_dim_v;

    const bool sg = gl_SubgroupSize == 32u;
    const uint team = sg ? gl_SubgroupID : tid / 32u, lane = sg ? gl_SubgroupInvocationID : tid % 32u;
#ifdef FUSED
    const uint pos = n_kv - 1u;
    const bool has_pos = t0 <= pos && pos < t1;  // uniform in the workgroup
    norm_rope(qo, p.qn_off, true);
    if (has_pos) {
        norm_rope(p.k_raw_off + kvh * p.head_dim, p.kn_off, false);
        if (h % group == 0u) {
            for (uint i = tid; i < p.head_dim; i += ATTN_THREADS) K[ko + pos * p.k_row_stride + i] = kn[i];
            for (uint i = tid; i < p.head_dim_v; i += ATTN_THREADS)
                V[vo + pos * p.v_row_stride + i] = Q[p.v_raw_off + kvh * p.head_dim_v + i];
        }
    }
#else
    for (uint i = tid; i < p.head_dim; i += ATTN_THREADS) qn[i] = Q[qo + i];
    barrier();
#endif
    // A team takes positions t_base + u * TEAMS + team, u < KU, per round, and reads its lane's dims
    // of their K rows together: no load sits behind a bounds branch (rows past the split read its
    // last row, dims past head_dim its last dim, times 0), so the KU loads are in flight at once.
    const uint n_i = (p.head_dim + 31u) / 32u;  // dims per lane
    float mx = -1.0 / 0.0;
    for (uint t_base = t0; t_base < t1; t_base += TEAMS * KU) {  // the same trip count for every team
        uint row[KU];
        float dots[KU];
        [[unroll]] for (uint u = 0u; u < KU; ++u) {
            row[u] = ko + min(t_base + u * TEAMS + team, t1 - 1u) * p.k_row_stride;
            dots[u] = 0.0;
        }
        for (uint i = 0u; i < n_i; ++i) {
            const uint d = lane + 32u * i, dc = min(d, p.head_dim - 1u);
            const float qd = d < p.head_dim ? qn[d] : 0.0;
            float kv[KU];
            [[unroll]] for (uint u = 0u; u < KU; ++u) kv[u] = K[row[u] + dc];
            [[unroll]] for (uint u = 0u; u < KU; ++u) dots[u] += qd * kv[u];
        }
#ifdef FUSED
        // this position's k from the projection: its cache row may be being written by another workgroup
        [[unroll]] for (uint u = 0u; u < KU; ++u) {
            if (t_base + u * TEAMS + team != pos) continue;
            float dot = 0.0;
            for (uint i = 0u; i < n_i; ++i) {
                const uint d = lane + 32u * i;
                if (d < p.head_dim) dot += qn[d] * kn[d];
            }
            dots[u] = dot;
        }
#endif
        [[unroll]] for (uint u = 0u; u < KU; ++u) {
            const uint t = t_base + u * TEAMS + team;
            const float dot = team_sum(dots[u], team, lane) * p.scale;
            if (t < t1) {
                if (lane == 0u) sc[t - t0] = dot;
                mx = max(mx, dot);
            }
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
#ifdef FUSED
        const uint t_end = has_pos ? pos : t1;  // this position's v: from the projection
#else
        const uint t_end = t1;
#endif
        // VU rows' loads in flight together, then their products in order (as one at a time)
        uint t = t0;
        for (; t + VU <= t_end; t += VU) {
            float v[VU];
            [[unroll]] for (uint u = 0u; u < VU; ++u) v[u] = V[vo + (t + u) * p.v_row_stride + d];
            [[unroll]] for (uint u = 0u; u < VU; ++u) o += sc[t + u - t0] * v[u];
        }
        for (; t < t_end; ++t) o += sc[t - t0] * V[vo + t * p.v_row_stride + d];
#ifdef FUSED
        if (has_pos) o += sc[pos - t0] * Q[p.v_raw_off + kvh * p.head_dim_v + d];
#endif
        part[po + 2u + d] = o;
    }
#ifdef FUSED
    // The last of the head's workgroups merges: this one's part writes are made visible before it
    // counts itself, and the last one reads the others' after seeing the count.
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) last = atomicAdd(count[p.count_off + h], 1u) == n_active - 1u;
    barrier();
    if (last) {
        memoryBarrierBuffer();
        merge(h, p.head_dim_v, n_active);
        if (tid == 0u) count[p.count_off + h] = 0u;  // for the next layer and token
        if ((p.flags & ATTN_OUT_Q8) != 0u) out_mirror(h);
    }
#endif
}
