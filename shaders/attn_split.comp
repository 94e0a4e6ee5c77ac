#version 450
// Decode attention, split-K over the sequence (flash-decoding). Workgroup (s, b) takes split s of the
// positions for block b of GH query heads that share one KV head (attn_shape(): up to 512 dims of
// heads, 4 of 128 or 2 of 256), so each K and V row is read once for all of them. A split's positions
// go in sub-chunks of ATTN_SUB with a running max and sum per head (online softmax), so a split may be
// any length. Output per head, unnormalised with its max and sum of exponentials, so the splits merge
// exactly:
// part[(h * n_splits + s) * (head_dim_v + 2) + ...] = (max, sum, o[head_dim_v]).
// Scores: clusters of CL = 8 invocations take a position each, invocation i of a cluster holding the
// vec4s i, i + 8, ... of the K row (a cluster reads whole 128-byte lines), KU positions per cluster
// and 128 dims per pass in flight together, every head of the block using them; the cluster sums
// with three shuffles. Weighted sum: rg = WG / (head_dim_v / 4) row groups take every rg-th position,
// each invocation a vec4 of dims for every head of the block, VU V rows in flight together; the
// groups' sums add up at the end. (H200, bench_gpu --attn, bench/GPU.md session 12: a round of loads
// is a DRAM round trip, so a sub-chunk of 128 positions costs a few of them where session 11's kernel,
// 4 teams of 32 taking one position each, took six per 64: 2.6-3.9x faster from 4096 positions up.)
//
// GH (1, 2, 4 or 8; variants attn_split_g<GH>, attn_fused_g<GH>) is a constant so that the per-head
// arrays below are sized to it by the compiler.
//
// FUSED (attn_fused): three dependent dispatches in one. (1) qwen3's per-head q/k RMSNorm + NeoX RoPE
// (qk_norm_rope.comp's arithmetic) of the block's q heads, and of this position's k from the raw
// projection (Q buffer at k_raw_off) in the workgroups whose split holds it: they use it for that
// position, and the kv group's first block writes it into the cache row (no workgroup reads that row
// from the cache, so there is no race). (2) The split. (3) The merge (attn_combine.comp's arithmetic):
// the last workgroup of a block to finish (an atomic count per block, reset after use) merges the
// block's heads, all at once.
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable

#extension GL_KHR_shader_subgroup_shuffle : require

#define WG 256u  // invocations per workgroup
layout(local_size_x = WG) in;
#ifdef FUSED
layout(push_constant) uniform PC { AttnFusedPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) buffer KBuf { float K[]; };
layout(binding = 1, std430) buffer K4Buf { vec4 K4[]; };
layout(binding = 2, std430) buffer VBuf { float V[]; };
layout(binding = 2, std430) buffer V4Buf { vec4 V4[]; };
layout(binding = 3, std430) coherent buffer PartBuf { float part[]; };  // read back by another workgroup
STEP_BUFFER(4)
layout(binding = 5, std430) readonly buffer NormBuf { float Wn[]; };
layout(binding = 6, std430) writeonly buffer OutBuf { float O[]; };
layout(binding = 6, std430) writeonly buffer OutBuf4 { vec4 O4[]; };  // ATTN_OUT_Q8: the mirror's values
layout(binding = 7, std430) buffer CountBuf { uint count[]; };
layout(binding = 8, std430) writeonly buffer OqBuf { uint Oq[]; };  // ATTN_OUT_Q8: out's int8 mirror
layout(binding = 8, std430) writeonly buffer OsBuf { vec2 Os2[]; };
shared float split_l[ATTN_SPLITS_MAX];  // the merge's split sums (its maxima and weights in sc)
shared bool last;
#else
layout(push_constant) uniform PC { AttnPush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };
layout(binding = 1, std430) readonly buffer K4Buf { vec4 K4[]; };
layout(binding = 2, std430) readonly buffer V4Buf { vec4 V4[]; };
layout(binding = 3, std430) writeonly buffer PartBuf { float part[]; };
STEP_BUFFER(4)
#endif

// The block's q heads: qn[g * head_dim + d] (FUSED: normalised and roped, this position's k after them
// as head gh); the merged outputs (g * head_dim_v + d) for the int8 mirror after the merge.
shared float qn[ATTN_QMAX];
shared float sc[ATTN_GH_MAX * ATTN_SUB];  // a sub-chunk's scores, then exp(score - max): sc[g * ATTN_SUB + j]
shared float red[WG];
shared float head_m[ATTN_GH_MAX], head_l[ATTN_GH_MAX], head_a[ATTN_GH_MAX];  // running max, sum; rescale

#define CL 8u  // invocations per K row in the scores
#define NCL (WG / CL)  // clusters
#define KU 2u  // positions per cluster per round of the scores
#define KI 4u  // vec4s per invocation per K row per pass: 128 dims a pass
// Row-group sums per invocation at most (gb heads of head_dim_v <= ATTN_DMAX below: rg >= 4)
#define DR ((ATTN_QMAX / 4u + WG - 1u) / WG)
#define VU 16u  // V rows per round of the weighted sum

#include "attn_common.glsl"

// Max or sum of v over the `per` invocations serving each head (head g = tid / per < n): every one of
// them gets it. Subgroup operations first where a head's invocations are whole subgroups. Uniform
// control flow; the barriers also publish earlier shared writes.
float seg_reduce(float v, uint per, uint n, bool is_max) {
    const uint tid = gl_LocalInvocationIndex, g = tid / per;
    const bool sgr = per % gl_SubgroupSize == 0u;  // uniform
    if (sgr) v = is_max ? subgroupMax(v) : subgroupAdd(v);
    red[tid] = v;
    barrier();
    float r = is_max ? -1.0 / 0.0 : 0.0;
    if (g < n)
        for (uint i = g * per; i < (g + 1u) * per; i += sgr ? gl_SubgroupSize : 1u) r = is_max ? max(r, red[i]) : r + red[i];
    barrier();
    return r;
}

vec4 qvec(uint i4) { return vec4(qn[4u * i4], qn[4u * i4 + 1u], qn[4u * i4 + 2u], qn[4u * i4 + 3u]); }

#ifdef FUSED
#define QREGS (ATTN_QMAX / WG)
// Elements per invocation whose norm weights and rotation angles are loaded with q and k, before the
// rms reduction, not after it (a round trip to memory fewer): (GH + 1) heads of 128 dims.
#define QPF min(QREGS, ((GH + 1u) * 128u + WG - 1u) / WG)
// qn = heads [0, nq) of Q at xo (and, with with_k, this position's k as head nq from k_raw_off) / rms
// * their norm weights, then NeoX-rotated. All heads at once: every load in flight together.
void norm_rope(uint xo, uint nq, uint kvh, bool with_k) {
    const uint tid = gl_LocalInvocationIndex, hd = p.head_dim, nh = nq + (with_k ? 1u : 0u), n = nh * hd;
    const uint half_rot = p.n_rot / 2u;
    float wa[QPF], wb[QPF];  // element i's norm weight, and its rotation partner's
    vec2 cs[QPF];
    [[unroll]] for (uint r = 0u; r < QREGS; ++r) {
        const uint i = tid + r * WG;
        if (i < n) qn[i] = i < nq * hd ? Q[xo + i] : Q[p.k_raw_off + kvh * hd + i - nq * hd];
        if (r >= QPF) continue;
        const uint ic = min(i, n - 1u), h = ic / hd, d = ic - h * hd, wo = h < nq ? p.qn_off : p.kn_off;
        const uint dp = d < half_rot ? d + half_rot : d < p.n_rot ? d - half_rot : d;  // the partner
        wa[r] = Wn[wo + d];
        wb[r] = Wn[wo + dp];
        cs[r] = rope_cs[d < half_rot ? d : d < p.n_rot ? d - half_rot : 0u];
    }
    barrier();
    const uint per = WG / nh, g = tid / per;
    float ss = 0.0;
    if (g < nh)
        for (uint j = tid - g * per; j < hd; j += per) ss += qn[g * hd + j] * qn[g * hd + j];
    ss = seg_reduce(ss, per, nh, false);
    if (g < nh && tid == g * per) red[g] = inversesqrt(ss / float(hd) + p.eps);  // after seg_reduce's last barrier
    barrier();
    float y[QREGS];
    [[unroll]] for (uint r = 0u; r < QREGS; ++r) {
        const uint i = tid + r * WG;
        if (i >= n) continue;
        const uint h = i / hd, d = i - h * hd, wo = h < nq ? p.qn_off : p.kn_off;
        const bool pf = r < QPF;  // constant per unrolled r
        const uint rp = min(r, QPF - 1u);
        const float w = pf ? wa[rp] : Wn[wo + d];
        const float sc_h = red[h], a = qn[i] * sc_h * w;
        y[r] = a;
        if (d < half_rot) {
            const vec2 c = pf ? cs[rp] : rope_cs[d];
            y[r] = a * c.x - qn[i + half_rot] * sc_h * (pf ? wb[rp] : Wn[wo + d + half_rot]) * c.y;
        } else if (d < p.n_rot) {
            const vec2 c = pf ? cs[rp] : rope_cs[d - half_rot];
            y[r] = qn[i - half_rot] * sc_h * (pf ? wb[rp] : Wn[wo + d - half_rot]) * c.y + a * c.x;
        }
    }
    barrier();
    [[unroll]] for (uint r = 0u; r < QREGS; ++r) {
        const uint i = tid + r * WG;
        if (i < n) qn[i] = y[r];
    }
    barrier();
}

#include "q8_block.glsl"
// ATTN_OUT_Q8 (head_dim_v and out_off multiples of 32, ops.cpp): the n merged floats in qn, out's
// floats from out_off + o0, as int8 blocks (q8_block.glsl); out's floats are then the mirror's values
// d * q, so that a float reader (a folded router, GpuModel::fold_router()) sees what the int8 readers do.
void out_mirror(uint o0, uint n) {
    const uint tid = gl_LocalInvocationIndex, n4 = n / 4u;
    for (uint t0 = 0u; t0 < n4; t0 += WG) {  // uniform
        const uint t = t0 + tid;
        const bool inside = t < n4;
        const vec4 v = inside ? qvec(t) : vec4(0.0);
        vec2 ds;
        const uint q = q8_quantize(v, ds);
        if (!inside) continue;
        const uint i = (p.out_off + o0) / 4u + t;  // vec4 index
        Oq[i] = q;
        O4[i] = ds.x * vec4(int(q << 24) >> 24, int(q << 16) >> 24, int(q << 8) >> 24, int(q) >> 24);
        if ((t & 7u) == 0u) Os2[p.out_q_soff + i / 8u] = ds;
    }
}

#define MO max(GH * 128u / WG, 1u)  // merged outputs per invocation per pass (a pass: 128 dims per head)
#define SU (32u / MO)  // splits per round of the merge's loads: 32 loads in flight
// out (heads h0 .. h0 + gh - 1) = the merge of their n splits: sum_s exp(m_s - M) o_s / sum_s exp(m_s - M) l_s.
// The parts come from L2 at its latency: every invocation takes part in each step.
void merge_block(uint h0, uint gh, uint n) {
    const uint tid = gl_LocalInvocationIndex, hdv = p.head_dim_v, stride = hdv + 2u;
    const uint per = WG / gh, g_me = tid / per, j0 = tid - g_me * per;  // the weights: per invocations per head
    float mx = -1.0 / 0.0;
    if (g_me < gh)
        for (uint j = j0; j < n; j += per) {
            const uint b = p.part_off + ((h0 + g_me) * p.n_splits + j) * stride;
            const float l = part[b + 1u];
            sc[g_me * n + j] = l > 0.0 ? part[b] : -1.0 / 0.0;  // an empty split weighs 0
            split_l[g_me * n + j] = l;
            mx = max(mx, sc[g_me * n + j]);
        }
    mx = seg_reduce(mx, per, gh, true);
    float den = 0.0;
    if (g_me < gh)
        for (uint j = j0; j < n; j += per) {
            const float w = exp(sc[g_me * n + j] - mx);
            sc[g_me * n + j] = w;
            den += w * split_l[g_me * n + j];
        }
    den = seg_reduce(den, per, gh, false);  // its barriers also publish sc[]
    if (g_me < gh && j0 == 0u) head_l[g_me] = 1.0 / den;
    barrier();  // head_l published; qn (the block's q heads) is free: every invocation is past its scores
    // Outputs (g, d) = i / hdv, i % hdv for i = i0 + tid + WG * k; past gh * hdv they read the last one.
    const uint no = gh * hdv;
    for (uint i0 = 0u; i0 < no; i0 += WG * MO) {  // uniform
        float o[MO];
        [[unroll]] for (uint k = 0u; k < MO; ++k) o[k] = 0.0;
        for (uint s0 = 0u; s0 < n; s0 += SU) {
            float v[MO][SU];
            [[unroll]] for (uint k = 0u; k < MO; ++k) {
                const uint i = min(i0 + tid + k * WG, no - 1u), g = i / hdv, d = i - g * hdv;
                [[unroll]] for (uint u = 0u; u < SU; ++u)
                    v[k][u] = part[p.part_off + ((h0 + g) * p.n_splits + min(s0 + u, n - 1u)) * stride + 2u + d];
            }
            [[unroll]] for (uint k = 0u; k < MO; ++k) {
                const uint g = min(i0 + tid + k * WG, no - 1u) / hdv;
                [[unroll]] for (uint u = 0u; u < SU; ++u)
                    if (s0 + u < n) o[k] += sc[g * n + s0 + u] * v[k][u];
            }
        }
        [[unroll]] for (uint k = 0u; k < MO; ++k) {
            const uint i = i0 + tid + k * WG;
            if (i >= no) continue;
            const uint g = i / hdv;
            const float r = o[k] * head_l[g];
            if ((p.flags & ATTN_OUT_Q8) == 0u) O[p.out_off + (h0 + g) * hdv + i - g * hdv] = r;  // else out_mirror()
            qn[i] = r;  // for the int8 mirror
        }
    }
}
#endif

void main() {
    const uint s = gl_WorkGroupID.x, b = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint gh = GH, h0 = b * gh, group = p.n_head / p.n_head_kv, kvh = h0 / group;
    const uint hd = p.head_dim, hd4 = hd / 4u, hdv = p.head_dim_v;
    const uint n_kv = step.n_kv;
    // Splits of at least min_chunk positions: at a short context only the first n_active hold any
    // (the fused variant's others leave at once and its merge reads only theirs).
#ifdef FUSED
    const uint chunk = n_kv <= p.one_split ? n_kv : max((n_kv + p.n_splits - 1u) / p.n_splits, p.min_chunk);
#else
    const uint chunk = max((n_kv + p.n_splits - 1u) / p.n_splits, p.min_chunk);
#endif
    const uint n_active = (n_kv + chunk - 1u) / chunk;
    const uint t0 = min(s * chunk, n_kv), t1 = min(t0 + chunk, n_kv);
#ifdef FUSED
    if (s >= n_active) return;  // uniform in the workgroup
#endif
    const uint qo = p.q_off + h0 * hd;
    const uint ko = p.k_off + kvh * hd, vo = p.v_off + kvh * hdv;

    if (tid < ATTN_GH_MAX) {
        head_m[tid] = -1.0 / 0.0;
        head_l[tid] = 0.0;
    }
#ifdef FUSED
    const uint pos = n_kv - 1u;
    const bool has_pos = t0 <= pos && pos < t1;  // uniform in the workgroup
    norm_rope(qo, gh, kvh, has_pos);
    if (has_pos && h0 % group == 0u) {
        for (uint i = tid; i < hd; i += WG) K[ko + pos * p.k_row_stride + i] = qn[gh * hd + i];
        for (uint i = tid; i < hdv; i += WG) V[vo + pos * p.v_row_stride + i] = Q[p.v_raw_off + kvh * hdv + i];
    }
#else
    for (uint i = tid; i < gh * hd; i += WG) qn[i] = Q[qo + i];
    barrier();
#endif
    // Scores: cluster cid of CL invocations takes positions tb + u * NCL + cid (u < KU) per round, its
    // invocation cl the vec4s cl + CL * i of their K rows (a cluster's load: 128 bytes of a row).
    const uint sgc = gl_SubgroupSize / CL;  // clusters per subgroup (subgroups of 8 or more, ops.cpp)
    const uint cid = gl_SubgroupID * sgc + gl_SubgroupInvocationID / CL, cl = gl_SubgroupInvocationID % CL;
    const uint ni = (hd4 + CL - 1u) / CL;  // vec4s per invocation per K row
    const uint per = WG / gh, g_me = tid / per;  // the softmax's invocations per head, and this one's
    // Weighted sum: rg row groups of hdv / 4 invocations, each invocation a vec4 of dims.
    const uint lpr = hdv / 4u, rg = WG / lpr, vr = tid / lpr, vd4 = tid - vr * lpr;
    const bool v_on = vr < rg;
    vec4 o[GH];
    [[unroll]] for (uint g = 0u; g < GH; ++g) o[g] = vec4(0.0);

    for (uint c0 = t0; c0 < t1; c0 += ATTN_SUB) {  // uniform
        const uint c1 = min(c0 + ATTN_SUB, t1);
        // No load sits behind a bounds branch: rows past the sub-chunk read its last row, vec4s past
        // head_dim its last one, both times 0, so a round's KU * KI loads per invocation fly together.
        for (uint tb = c0; tb < c1; tb += NCL * KU) {  // uniform
            uint row[KU];
            float acc[GH][KU];
            [[unroll]] for (uint u = 0u; u < KU; ++u) {
                row[u] = (ko + min(tb + u * NCL + cid, c1 - 1u) * p.k_row_stride) / 4u;
                [[unroll]] for (uint g = 0u; g < GH; ++g) acc[g][u] = 0.0;
            }
            for (uint i0 = 0u; i0 < ni; i0 += KI) {  // uniform: one pass per 128 dims
                vec4 kv[KI][KU];
                [[unroll]] for (uint i = 0u; i < KI; ++i) {
                    const uint dc = min(cl + CL * (i0 + i), hd4 - 1u);
                    [[unroll]] for (uint u = 0u; u < KU; ++u) kv[i][u] = K4[row[u] + dc];
                }
                [[unroll]] for (uint i = 0u; i < KI; ++i) {
                    const uint d4 = cl + CL * (i0 + i);
                    [[unroll]] for (uint g = 0u; g < GH; ++g) {
                        const vec4 q = d4 < hd4 ? qvec(g * hd4 + d4) : vec4(0.0);
                        [[unroll]] for (uint u = 0u; u < KU; ++u) acc[g][u] += dot(q, kv[i][u]);
                    }
                }
            }
#ifdef FUSED
            // this position's k from the projection: its cache row may be being written by another workgroup
            [[unroll]] for (uint u = 0u; u < KU; ++u) {
                if (tb + u * NCL + cid != pos) continue;  // uniform in the cluster
                [[unroll]] for (uint g = 0u; g < GH; ++g) {
                    float dt = 0.0;
                    for (uint d4 = cl; d4 < hd4; d4 += CL) dt += dot(qvec(g * hd4 + d4), qvec(gh * hd4 + d4));
                    acc[g][u] = dt;
                }
            }
#endif
            // The cluster's sums (subgroups of 8 or more hold whole clusters); invocation cl writes head g
            // when g % CL == cl.
            [[unroll]] for (uint u = 0u; u < KU; ++u) {
                const uint t = tb + u * NCL + cid;
                [[unroll]] for (uint g = 0u; g < GH; ++g) {
                    float v = acc[g][u];
                    v += subgroupShuffleXor(v, 4u);
                    v += subgroupShuffleXor(v, 2u);
                    v += subgroupShuffleXor(v, 1u);
                    if (t < c1 && cl == g % CL) sc[g * ATTN_SUB + t - c0] = v * p.scale;
                }
            }
        }
        barrier();  // the scores are read across clusters below
        // Online softmax per head: the sub-chunk's max joins the running one, its exponentials replace
        // the scores, and the sums and outputs so far are rescaled by exp(old max - new max).
        const uint n = c1 - c0;
        float mx = -1.0 / 0.0;
        if (g_me < gh)
            for (uint j = tid - g_me * per; j < n; j += per) mx = max(mx, sc[g_me * ATTN_SUB + j]);
        mx = seg_reduce(mx, per, gh, true);  // its barriers also publish sc[]
        float sum = 0.0, m_new = 0.0;
        if (g_me < gh) {
            m_new = max(head_m[g_me], mx);
            for (uint j = tid - g_me * per; j < n; j += per) {
                const float e = exp(sc[g_me * ATTN_SUB + j] - m_new);
                sc[g_me * ATTN_SUB + j] = e;
                sum += e;
            }
        }
        sum = seg_reduce(sum, per, gh, false);
        if (g_me < gh && tid == g_me * per) {
            const float a = exp(head_m[g_me] - m_new);  // 0 for the first sub-chunk
            head_a[g_me] = a;
            head_l[g_me] = head_l[g_me] * a + sum;
            head_m[g_me] = m_new;
        }
        barrier();
#ifdef FUSED
        const uint c_end = has_pos && pos < c1 ? pos : c1;  // this position's v: from the projection
#else
        const uint c_end = c1;
#endif
        if (v_on) {
            [[unroll]] for (uint g = 0u; g < GH; ++g) o[g] *= head_a[g];
            // This row group's rows c0 + vr + rg * j, VU of them in flight together (rows past c_end read
            // its last one, times 0), then their products in order (as one at a time).
            for (uint tb = c0; tb < c_end; tb += VU * rg) {  // uniform
                const uint t = tb + vr;
                vec4 v[VU];
                uint tu[VU];
                [[unroll]] for (uint u = 0u; u < VU; ++u) {
                    tu[u] = min(t + u * rg, c_end - 1u);
                    v[u] = V4[(vo + tu[u] * p.v_row_stride) / 4u + vd4];
                }
                [[unroll]] for (uint g = 0u; g < GH; ++g)
                    [[unroll]] for (uint u = 0u; u < VU; ++u)
                        if (t + u * rg < c_end) o[g] += sc[g * ATTN_SUB + tu[u] - c0] * v[u];
            }
#ifdef FUSED
            if (c_end < c1 && (pos - c0) % rg == vr) {
                const uint r = p.v_raw_off + kvh * hdv + 4u * vd4;
                const vec4 v = vec4(Q[r], Q[r + 1u], Q[r + 2u], Q[r + 3u]);
                [[unroll]] for (uint g = 0u; g < GH; ++g) o[g] += sc[g * ATTN_SUB + pos - c0] * v;
            }
#endif
        }
        barrier();  // before the next sub-chunk's scores
    }
    // The row groups' sums, gb heads at a time through shared memory (qn is free now), into part; or
    // with one split (FUSED, a short context) divided by the heads' sums of exponentials: the output,
    // written now, with no parts, count or merge (three rounds of L2 latency fewer).
    const uint gb = max(ATTN_QMAX / (rg * hdv), 1u);
#ifdef FUSED
    const bool direct = n_active == 1u;  // uniform
#else
    const bool direct = false;
#endif
    for (uint g0 = 0u; g0 < gh; g0 += gb) {  // uniform
        barrier();
        [[unroll]] for (uint g = 0u; g < GH; ++g) {
            if (!v_on || g < g0 || g >= min(g0 + gb, gh)) continue;
            const uint i = ((g - g0) * rg + vr) * hdv + 4u * vd4;
            qn[i] = o[g].x;
            qn[i + 1u] = o[g].y;
            qn[i + 2u] = o[g].z;
            qn[i + 3u] = o[g].w;
        }
        barrier();
        const uint no = min(gb, gh - g0) * hdv;
        float r[DR];
        [[unroll]] for (uint k = 0u; k < DR; ++k) {
            const uint i = tid + k * WG, gg = min(i, no - 1u) / hdv, d = min(i, no - 1u) - gg * hdv;
            r[k] = 0.0;
            for (uint j = 0u; j < rg; ++j) r[k] += qn[(gg * rg + j) * hdv + d];
            if (direct) r[k] /= head_l[g0 + gg];
            else if (i < no) part[p.part_off + ((h0 + g0 + gg) * p.n_splits + s) * (hdv + 2u) + 2u + d] = r[k];
        }
#ifdef FUSED
        if (!direct) continue;
        barrier();  // every invocation's sums read before qn holds the outputs
        [[unroll]] for (uint k = 0u; k < DR; ++k) {
            const uint i = tid + k * WG;
            if (i >= no) continue;
            qn[i] = r[k];
            if ((p.flags & ATTN_OUT_Q8) == 0u) O[p.out_off + (h0 + g0) * hdv + i] = r[k];  // else out_mirror()
        }
        if ((p.flags & ATTN_OUT_Q8) != 0u) {
            barrier();
            out_mirror((h0 + g0) * hdv, no);
        }
#endif
    }
    if (direct) return;
    if (tid < gh) {
        const uint po = p.part_off + ((h0 + tid) * p.n_splits + s) * (hdv + 2u);
        part[po] = head_m[tid];
        part[po + 1u] = head_l[tid];
    }
#ifdef FUSED
    // The last of the block's workgroups merges: this one's part writes are made visible before it
    // counts itself, and the last one reads the others' after seeing the count.
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) last = atomicAdd(count[p.count_off + b], 1u) == n_active - 1u;
    barrier();
    if (last) {
        memoryBarrierBuffer();
        merge_block(h0, gh, n_active);
        if (tid == 0u) count[p.count_off + b] = 0u;  // for the next layer and token
        if ((p.flags & ATTN_OUT_Q8) != 0u) {
            barrier();
            out_mirror(h0 * hdv, gh * hdv);
        }
    }
#endif
}
