#version 450
// deepseek2's decode attention over the latent cache (attn_mla): every head reads the same rows
// [c_t | k_pe_t] as its keys and their c_t as its values, so a workgroup takes HG heads of one split
// (workgroup (split s, head group g)) and loads each row once for all of them: the cache is read
// n_head / HG times per token, not n_head times. HG is the build's MLA_HG (8, 4 or 2: mla_attention()
// picks by the head count, so that a model of few heads still has groups enough to spread).
// Per head as attn_split.comp: scores to shared memory, (max, sum of exp, unnormalised output) of the
// split to part, and the last workgroup of the group to finish (an atomic count per group, reset after
// use) merges the splits into out, all its heads and dims at once.
// Splits hold at least MLA_MIN_CHUNK positions: at a short context only the first n_active run (the
// others leave at once), and with one the output is written directly (no parts, count or merge).
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable

#ifndef MLA_HG
#define MLA_HG MLA_HEADS
#endif
#define HG MLA_HG
#define TEAMS (ATTN_THREADS / 32u)
#define DPL (MLA_DMAX / 32u)  // row floats per lane
#define V_LOADS 8u            // positions' value loads in flight per round
#define MERGE_OUTS 8u         // outputs an invocation of the merge sums at a time

layout(local_size_x = ATTN_THREADS) in;
layout(push_constant) uniform PC { MlaAttnPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) readonly buffer CacheBuf { float C[]; };
layout(binding = 2, std430) coherent buffer PartBuf { float part[]; };  // read back by another workgroup
STEP_BUFFER(3)
layout(binding = 4, std430) writeonly buffer OutBuf { float O[]; };
layout(binding = 5, std430) buffer CountBuf { uint count[]; };

// The group's queries; in the merge, each head's split weights (HG * ATTN_SPLITS_MAX <= its size).
shared float qs[HG * MLA_DMAX];
shared float sc[HG * MLA_CHUNK_MAX];  // the scores, then exp(score - max)
shared float red[ATTN_THREADS];
shared float hsum[HG];  // per head: the split's sum of exponentials, then in the merge the denominator
shared bool last;

#include "attn_common.glsl"

// Max over a team of 32 (as team_sum). Uniform control flow.
float team_max(float v, uint team, uint lane) {
    if (gl_SubgroupSize == 32u) return subgroupMax(v);
    red[team * 32u + lane] = v;
    barrier();
    float t = -1.0 / 0.0;
    for (uint i = 0u; i < 32u; ++i) t = max(t, red[team * 32u + i]);
    barrier();
    return t;
}

void main() {
    const uint s = gl_WorkGroupID.x, g = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint h0 = g * HG, nh = min(HG, p.n_head - h0), row = p.kv_lora + p.n_rot;
    const uint n_kv = step.n_kv;
    const uint chunk = max((n_kv + p.n_splits - 1u) / p.n_splits, MLA_MIN_CHUNK);
    const uint n_active = (n_kv + chunk - 1u) / chunk;
    if (s >= n_active) return;  // uniform in the workgroup
    const bool direct = n_active == 1u;
    const uint t0 = min(s * chunk, n_kv), t1 = min(t0 + chunk, n_kv);
    const bool sg = gl_SubgroupSize == 32u;
    const uint team = sg ? gl_SubgroupID : tid / 32u, lane = sg ? gl_SubgroupInvocationID : tid % 32u;
    const uint stride = p.kv_lora + 2u;  // a part: max, sum, kv_lora outputs

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
    // Softmax: a team per head (heads team, team + TEAMS, ...), no workgroup round per head.
    for (uint hb = 0u; hb < HG; hb += TEAMS) {  // uniform
        const uint hh = hb + team;
        const bool on = hh < HG;
        float mx = -1.0 / 0.0;
        if (on)
            for (uint t = t0 + lane; t < t1; t += 32u) mx = max(mx, sc[hh * MLA_CHUNK_MAX + t - t0]);
        mx = team_max(mx, team, lane);
        float sum = 0.0;
        if (on)
            for (uint t = t0 + lane; t < t1; t += 32u) {
                const float e = exp(sc[hh * MLA_CHUNK_MAX + t - t0] - mx);
                sc[hh * MLA_CHUNK_MAX + t - t0] = e;
                sum += e;
            }
        sum = team_sum(sum, team, lane);
        if (on && lane == 0u) {
            hsum[hh] = sum;
            if (hh < nh && !direct) {
                const uint po = p.part_off + ((h0 + hh) * p.n_splits + s) * stride;
                part[po] = mx;
                part[po + 1u] = sum;
            }
        }
    }
    barrier();  // sc[] and hsum[]
    // Outputs: each c_t float read once for the group's heads, V_LOADS positions' loads in flight.
    for (uint d = tid; d < p.kv_lora; d += ATTN_THREADS) {
        float o[HG];
        [[unroll]] for (uint hh = 0u; hh < HG; ++hh) o[hh] = 0.0;
        for (uint tb = t0; tb < t1; tb += V_LOADS) {
            float v[V_LOADS];
            [[unroll]] for (uint u = 0u; u < V_LOADS; ++u) v[u] = C[p.cache_off + min(tb + u, t1 - 1u) * row + d];
            [[unroll]] for (uint u = 0u; u < V_LOADS; ++u)
                if (tb + u < t1) {
                    [[unroll]] for (uint hh = 0u; hh < HG; ++hh) o[hh] += sc[hh * MLA_CHUNK_MAX + tb + u - t0] * v[u];
                }
        }
        if (direct) {
            for (uint hh = 0u; hh < nh; ++hh) O[p.out_off + (h0 + hh) * p.kv_lora + d] = o[hh] / hsum[hh];
        } else {
            for (uint hh = 0u; hh < nh; ++hh) part[p.part_off + ((h0 + hh) * p.n_splits + s) * stride + 2u + d] = o[hh];
        }
    }
    if (direct) return;  // uniform
    // The last of the group's workgroups merges: this one's part writes are made visible before it
    // counts itself, and the last one reads the others' after seeing the count.
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) last = atomicAdd(count[p.count_off + g], 1u) == n_active - 1u;
    barrier();
    if (!last) return;  // uniform
    memoryBarrierBuffer();
    // out = sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s per head: a team per head finds M, the
    // weights (into qs) and the denominator; then every invocation takes (head, dim) outputs.
    for (uint hb = 0u; hb < HG; hb += TEAMS) {  // uniform
        const uint hh = hb + team;
        const bool on = hh < nh;
        const uint base = p.part_off + (h0 + min(hh, nh - 1u)) * p.n_splits * stride;
        float mx = -1.0 / 0.0;
        if (on)
            for (uint j = lane; j < n_active; j += 32u) {
                const float m = part[base + j * stride], l = part[base + j * stride + 1u];
                if (l > 0.0) mx = max(mx, m);
            }
        mx = team_max(mx, team, lane);
        float den = 0.0;
        if (on)
            for (uint j = lane; j < n_active; j += 32u) {
                const float m = part[base + j * stride], l = part[base + j * stride + 1u];
                const float w = l > 0.0 ? exp(m - mx) : 0.0;  // an empty split weighs 0
                qs[hh * ATTN_SPLITS_MAX + j] = w;
                den += w * l;
            }
        den = team_sum(den, team, lane);
        if (on && lane == 0u) hsum[hh] = den;
    }
    barrier();
    // MERGE_OUTS outputs an invocation at a time, 4 splits of each in flight: 32 loads a round, so
    // 8 heads x 512 dims over 3 splits take 4 rounds of L2 latency, not 32 (one output at a time:
    // deepseek2 decode at ~1024 positions 8.7% slower for V2-Lite's size, 5-7% for V3's widths).
    const uint total = nh * p.kv_lora;
    for (uint i0 = tid; i0 < total; i0 += ATTN_THREADS * MERGE_OUTS) {
        float o[MERGE_OUTS];
        uint at[MERGE_OUTS];
        [[unroll]] for (uint m = 0u; m < MERGE_OUTS; ++m) {
            const uint i = min(i0 + m * ATTN_THREADS, total - 1u), hh = i / p.kv_lora;
            at[m] = p.part_off + (h0 + hh) * p.n_splits * stride + 2u + i % p.kv_lora;
            o[m] = 0.0;
        }
        for (uint j0 = 0u; j0 < n_active; j0 += 4u) {
            float v[MERGE_OUTS * 4u];
            [[unroll]] for (uint m = 0u; m < MERGE_OUTS; ++m)
                [[unroll]] for (uint u = 0u; u < 4u; ++u) v[m * 4u + u] = part[at[m] + min(j0 + u, n_active - 1u) * stride];
            [[unroll]] for (uint m = 0u; m < MERGE_OUTS; ++m) {
                const uint hh = min(i0 + m * ATTN_THREADS, total - 1u) / p.kv_lora;
                [[unroll]] for (uint u = 0u; u < 4u; ++u)
                    if (j0 + u < n_active) o[m] += qs[hh * ATTN_SPLITS_MAX + j0 + u] * v[m * 4u + u];
            }
        }
        [[unroll]] for (uint m = 0u; m < MERGE_OUTS; ++m) {
            const uint i = i0 + m * ATTN_THREADS;
            if (i < total) O[p.out_off + (h0 + i / p.kv_lora) * p.kv_lora + i % p.kv_lora] = o[m] / hsum[i / p.kv_lora];
        }
    }
    if (tid == 0u) count[p.count_off + g] = 0u;  // for the next layer and token
}
