#version 450
// deepseek2's decode attention over the latent cache (attn_mla): every head reads the same rows
// [c_t | k_pe_t] as its keys and their c_t as its values, so a workgroup takes MLA_HEADS heads of one
// split (workgroup (split s, head group g)) and loads each row once for all of them: the cache is
// read n_head / MLA_HEADS times per token, not n_head times. Per head as attn_split.comp: scores to
// shared memory, (max, sum of exp, unnormalised output) of the split to part, and the last workgroup
// of the group to finish (an atomic count per group, reset after use) merges the splits into out.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable

#define MERGE
#define HG MLA_HEADS
#define TEAMS (ATTN_THREADS / 32u)
#define DPL (MLA_DMAX / 32u)  // row floats per lane

layout(local_size_x = ATTN_THREADS) in;
layout(push_constant) uniform PC { MlaAttnPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) readonly buffer CacheBuf { float C[]; };
layout(binding = 2, std430) coherent buffer PartBuf { float part[]; };  // read back by another workgroup
STEP_BUFFER(3)
layout(binding = 4, std430) writeonly buffer OutBuf { float O[]; };
layout(binding = 5, std430) buffer CountBuf { uint count[]; };

shared float qs[HG * MLA_DMAX];        // the group's queries
shared float sc[HG * MLA_CHUNK_MAX];  // their scores, then exp(score - max)
shared float red[ATTN_THREADS];
shared bool last;

#include "attn_common.glsl"

void main() {
    const uint s = gl_WorkGroupID.x, g = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint h0 = g * HG, nh = min(HG, p.n_head - h0), row = p.kv_lora + p.n_rot;
    const uint n_kv = step.n_kv;
    const uint chunk = (n_kv + p.n_splits - 1u) / p.n_splits;
    const uint t0 = min(s * chunk, n_kv), t1 = min(t0 + chunk, n_kv);
    const bool sg = gl_SubgroupSize == 32u;
    const uint team = sg ? gl_SubgroupID : tid / 32u, lane = sg ? gl_SubgroupInvocationID : tid % 32u;

    for (uint i = tid; i < HG * MLA_DMAX; i += ATTN_THREADS) {  // zeros past the row and the last head
        const uint hh = i / MLA_DMAX, d = i % MLA_DMAX;
        qs[i] = hh < nh && d < row ? Q[p.q_off + (h0 + hh) * row + d] : 0.0;
    }
    barrier();
    // Scores: a team per position, lane i holding floats i, i + 32, ... of its row for every head.
    for (uint t_team = t0; t_team < t1; t_team += TEAMS) {  // the same trip count for every team
        const uint t = t_team + team;
        float k[DPL];
        [[unroll]] for (uint i = 0u; i < DPL; ++i)
            k[i] = t < t1 && lane + 32u * i < row ? C[p.cache_off + t * row + lane + 32u * i] : 0.0;
        [[unroll]] for (uint hh = 0u; hh < HG; ++hh) {
            float dot = 0.0;
            [[unroll]] for (uint i = 0u; i < DPL; ++i) dot += qs[hh * MLA_DMAX + lane + 32u * i] * k[i];
            dot = team_sum(dot, team, lane) * p.scale;
            if (t < t1 && lane == 0u) sc[hh * MLA_CHUNK_MAX + t - t0] = dot;
        }
    }
    barrier();
    for (uint hh = 0u; hh < HG; ++hh) {
        float mx = -1.0 / 0.0;
        for (uint t = t0 + tid; t < t1; t += ATTN_THREADS) mx = max(mx, sc[hh * MLA_CHUNK_MAX + t - t0]);
        mx = reduce_max(mx);
        float sum = 0.0;
        for (uint t = t0 + tid; t < t1; t += ATTN_THREADS) {
            const float e = exp(sc[hh * MLA_CHUNK_MAX + t - t0] - mx);
            sc[hh * MLA_CHUNK_MAX + t - t0] = e;
            sum += e;
        }
        sum = reduce_sum(sum);  // its barriers also publish sc[]
        if (tid == 0u && hh < nh) {
            const uint po = p.part_off + ((h0 + hh) * p.n_splits + s) * (p.kv_lora + 2u);
            part[po] = mx;
            part[po + 1u] = sum;
        }
    }
    // Outputs: each c_t float read once for the group's heads.
    for (uint d = tid; d < p.kv_lora; d += ATTN_THREADS) {
        float o[HG];
        [[unroll]] for (uint hh = 0u; hh < HG; ++hh) o[hh] = 0.0;
        for (uint t = t0; t < t1; ++t) {
            const float v = C[p.cache_off + t * row + d];
            [[unroll]] for (uint hh = 0u; hh < HG; ++hh) o[hh] += sc[hh * MLA_CHUNK_MAX + t - t0] * v;
        }
        for (uint hh = 0u; hh < nh; ++hh) part[p.part_off + ((h0 + hh) * p.n_splits + s) * (p.kv_lora + 2u) + 2u + d] = o[hh];
    }
    // The last of the group's workgroups merges: this one's part writes are made visible before it
    // counts itself, and the last one reads the others' after seeing the count.
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) last = atomicAdd(count[p.count_off + g], 1u) == p.n_splits - 1u;
    barrier();
    if (last) {
        memoryBarrierBuffer();
        for (uint hh = 0u; hh < nh; ++hh) {
            merge(h0 + hh, p.kv_lora, p.n_splits);
            barrier();  // the next merge rewrites split_w
        }
        if (tid == 0u) count[p.count_off + g] = 0u;  // for the next layer and token
    }
}
