#version 450
// y (rows) = W (rows, cols) @ x (cols) for a batch of matrices (workgroup y), NB activation columns.
// A workgroup is MV_TEAMS teams of MV_TEAM = 32 invocations; a team computes NR consecutive rows (the
// build's variants _r1, _r2, _r4), its lanes splitting each step of a row so that consecutive lanes
// read consecutive bytes of W and of x (mv_types.glsl). A lane loads its part of x once per step and
// uses it for all NR rows (and for gate and up with GLU): once W streams at full bandwidth, re-reading
// x from L1 for every row is what bounds a matvec. Rows past the end read the last row (no branch
// around the loads) and are not written.
//
// GLU: y = silu(W x) * (W2 x), W2 the up matrices at w2_off of the same buffer (gate + up: one pass).
// The 32 partial sums of a row are added by subgroupAdd where a subgroup is a team (NVIDIA), else
// through shared memory (lavapipe's subgroups of 8, AMD's of 64).
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
#ifdef XQ8
// x as int8 with a scale and sum per 32 (shared.h QuantQ8Push), for integer dot products
layout(binding = 1, std430) readonly buffer XqBuf { uvec4 XQ4[]; };
layout(binding = 1, std430) readonly buffer XsBuf { vec2 XS2[]; };
layout(binding = 1, std430) readonly buffer XqBuf1 { uint XQ1[]; };
#extension GL_EXT_spirv_intrinsics : require
// OpSUDot (SPV_KHR_integer_dot_product): the 4 signed bytes of a times the 4 unsigned bytes of b, summed
// (format 0: PackedVectorFormat4x8Bit). glslang 11 has no GL_EXT_integer_dot_product.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4452)
int sudot4(uint a, uint b, spirv_literal int fmt);
// OpSDot: both signed (Q8_0's weights; sums of x's int8 against 0x01010101)
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4(uint a, uint b, spirv_literal int fmt);
#else
layout(binding = 1, std430) readonly buffer XBuf { vec4 X4[]; };  // x offsets and strides are multiples of 4
#endif
#define W_BINDING 0
#include "quants.glsl"
layout(push_constant) uniform PC { MatvecPush p; };
layout(binding = 6, std430) readonly buffer NormBuf4 { vec4 Wn4[]; };  // MV_NORM's and MV_XNORM's weights
uint lane;  // 0..31 within the team
#include "mv_types.glsl"

// KSPLIT (variants _k4, _k8: KS_TEAMS teams): the workgroup's teams share its NR rows and take turns
// over the (matrix, step) units of those rows, then add up through shared memory. For small matrices
// and weighted sums of experts, where a team walking every step of a row one after another waits on
// DRAM latency once per step: here each team has a quarter or an eighth of the chain.
#ifdef KSPLIT
#define MV_WG (MV_TEAM * KS_TEAMS)
shared float ks_red[KS_TEAMS * NR];
#else
#define MV_WG MV_THREADS
#endif
layout(local_size_x = MV_WG) in;
layout(binding = 2, std430) coherent buffer YBuf { float Y[]; };  // coherent: MV_NORM's last workgroup reads it
layout(binding = 3, std430) readonly buffer IdsBuf { int ids[]; };
STEP_BUFFER(4)
layout(binding = 5, std430) buffer HnBuf { float Hn[]; };  // MV_NORM: output and counter
layout(binding = 5, std430) buffer HnCount { uint hn_count[]; };
layout(binding = 6, std430) readonly buffer NormBuf { float Wn[]; };

shared float red[MV_WG];
shared bool last_group;

// Sum / max over the workgroup, in every invocation: subgroup operations, then one shared-memory
// round over the subgroups. Uniform control flow.
float wg_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) t += red[i];
    barrier();
    return t;
}
float wg_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) red[gl_SubgroupID] = v;
    barrier();
    float t = -1.0 / 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; ++i) t = max(t, red[i]);
    barrier();
    return t;
}

// The tails (MV_NORM, MV_TOPK): true in the last workgroup to finish, which then sees every
// workgroup's y. Counts in the uint at norm_count_off of binding 5; the tail resets it. Uniform.
bool last_to_finish() {
    memoryBarrierBuffer();  // this workgroup's y before its count
    barrier();
    if (gl_LocalInvocationIndex == 0u)
        last_group = atomicAdd(hn_count[p.norm_count_off], 1u) == gl_NumWorkGroups.x - 1u;
    barrier();
    if (!last_group) return false;
    memoryBarrierBuffer();  // the other workgroups' y after their counts
    return true;
}

// MV_NORM, after this workgroup's rows are written: if it is the last to finish, hn = rmsnorm(y).
// The last workgroup reads all of y back from L2 at its latency (~1 us), so each invocation issues
// NT_LOADS vec4 loads before it uses any: 4096 rows take 2-4 rounds of latency, not 64 (more loads in
// flight would cost registers that every variant of the shader then holds, tail or not).
#define NT_LOADS 4u
layout(binding = 2, std430) coherent buffer YBuf4 { vec4 Y4[]; };
layout(binding = 5, std430) buffer HnBuf4 { vec4 Hn4[]; };
layout(binding = 7, std430) writeonly buffer HqBuf { uint Hq[]; };  // MV_NORM_Q8: hn's int8 mirror
layout(binding = 7, std430) writeonly buffer HsBuf { vec2 Hs2[]; };

#include "q8_block.glsl"
// MV_NORM_Q8: invocations tid .. tid + 7 (tid % 8 == 0) hold a block of 32 (a vec4 each); each writes
// its 4 int8, the first the block's (d, d * sum q). i: h's vec4 index in the buffer. Uniform control flow.
void quantize_tail(vec4 h, uint i, bool write) {
    vec2 ds;
    const uint q = q8_quantize(h, ds);
    if (!write) return;
    Hq[i] = q;
    if ((gl_LocalInvocationIndex & 7u) == 0u) Hs2[p.norm_q_soff + i / 8u] = ds;
}
void norm_tail() {
    const uint tid = gl_LocalInvocationIndex;
    if (!last_to_finish()) return;
    const bool v4 = ((p.rows | p.y_off | p.norm_y_off | p.norm_w_off) & 3u) == 0u;  // else one float at a time
    const uint n = v4 ? p.rows / 4u : p.rows, round = MV_WG * NT_LOADS;
    float ss = 0.0;
    for (uint i0 = 0u; i0 < n; i0 += round) {
        vec4 v[NT_LOADS];
        [[unroll]] for (uint u = 0u; u < NT_LOADS; ++u) {
            const uint i = i0 + u * MV_WG + tid;
            v[u] = i >= n ? vec4(0.0) : v4 ? Y4[p.y_off / 4u + i] : vec4(Y[p.y_off + i], 0.0, 0.0, 0.0);
        }
        [[unroll]] for (uint u = 0u; u < NT_LOADS; ++u) ss += dot(v[u], v[u]);
    }
    const float scale = inversesqrt(wg_sum(ss) / float(p.rows) + p.norm_eps);
    for (uint i0 = 0u; i0 < n; i0 += round) {
        vec4 v[NT_LOADS], w[NT_LOADS];
        [[unroll]] for (uint u = 0u; u < NT_LOADS; ++u) {
            const uint i = min(i0 + u * MV_WG + tid, n - 1u);
            v[u] = v4 ? Y4[p.y_off / 4u + i] : vec4(Y[p.y_off + i]);
            w[u] = v4 ? Wn4[p.norm_w_off / 4u + i] : vec4(Wn[p.norm_w_off + i]);
        }
        [[unroll]] for (uint u = 0u; u < NT_LOADS; ++u) {
            const uint i = i0 + u * MV_WG + tid;
            const vec4 h = v[u] * scale * w[u];
            if ((p.flags & MV_NORM_Q8) != 0u) quantize_tail(h, p.norm_y_off / 4u + i, i < n);  // v4 (ops.cpp)
            if (i >= n) continue;
            if (v4) Hn4[p.norm_y_off / 4u + i] = h;
            else Hn[p.norm_y_off + i] = h.x;
        }
    }
    if (tid == 0u) hn_count[p.norm_count_off] = 0u;  // for the next dispatch
}

#ifndef GLU
// MV_TOPK, after this workgroup's rows are written: if it is the last to finish, rank the rows (each
// invocation its own against all of them, from shared memory) and write the top k's ids and weights.
layout(binding = 2, std430) coherent buffer YInt { int Yi[]; };
shared vec4 tk_l[MV_ROUTE_MAX / 4];  // -inf past n
shared int tk_id[MV_TOPK_MAX_K];
shared float tk_x[MV_TOPK_MAX_K];
void topk_tail() {
    const uint tid = gl_LocalInvocationIndex, n = p.rows, k = p.topk_k;
    if (!last_to_finish()) return;
    // Loops, not per-invocation arrays: registers this tail held would be held by every variant.
    float mx = -1.0 / 0.0;
    for (uint e = tid; e < MV_ROUTE_MAX; e += MV_WG) {
        const float v = e < n ? Y[p.y_off + e] : -1.0 / 0.0;
        tk_l[e >> 2][e & 3u] = v;
        mx = max(mx, v);
    }
    mx = wg_max(mx);  // its barriers publish tk_l
    const bool renorm = (p.flags & MV_ROUTE_RENORM) != 0u;
    const uint n4 = (n + 3u) / 4u;
    float z = 0.0;
    for (uint e = tid; e < n; e += MV_WG) {
        const float le = tk_l[e >> 2][e & 3u];
        uint r = 0u;
        for (uint i = 0u; i < n4; ++i) {
            const vec4 v = tk_l[i];
            [[unroll]] for (uint c = 0u; c < 4u; ++c) r += v[c] > le || (v[c] == le && 4u * i + c < e) ? 1u : 0u;
        }
        const float x = exp(le - mx);
        if (!renorm || r < k) z += x;
        if (r < k) {
            tk_id[r] = int(e);
            tk_x[r] = x;
        }
    }
    z = wg_sum(z);  // its barriers publish tk_id, tk_x
    for (uint r = tid; r < k; r += MV_WG) {
        Yi[p.topk_ids_off + r] = tk_id[r];
        Y[p.topk_w_off + r] = tk_x[r] / z;
    }
    if (tid == 0u) hn_count[p.norm_count_off] = 0u;  // for the next dispatch
}
#endif

// MV_QBLK, after this workgroup's rows are written. Its rows lie in one block (WG_ROWS divides 32,
// rows and y_mat_stride multiples of 32): it counts them there, and if that completes the block,
// invocations 0..7 (a vec4 each) write the block's mirror, scale and sum of squares (shared.h).
// Uniform control flow: every invocation runs the quantization, clamped, and only 0..7 write.
#ifdef KSPLIT
#define WG_ROWS NR
#else
#define WG_ROWS (MV_TEAMS * NR)
#endif
void qblk_tail(uint wrow0) {
    const uint tid = gl_LocalInvocationIndex, b = (gl_WorkGroupID.y * p.y_mat_stride + wrow0) / 32u;
    const uint n = min(WG_ROWS, p.rows - wrow0);
    memoryBarrierBuffer();  // this workgroup's y before its count
    barrier();
    if (tid == 0u) last_group = atomicAdd(hn_count[p.norm_count_off + b], n) + n == 32u;
    barrier();
    if (!last_group) return;
    memoryBarrierBuffer();  // the other workgroups' rows of the block after their counts
    const uint j = tid & 7u;
    const vec4 y = Y4[(p.y_off + 32u * b) / 4u + j];
    const vec4 h = (p.flags & MV_QBLK_NORM) != 0u ? y * Wn4[p.norm_w_off / 4u + 8u * b + j] : y;
    vec2 ds;
    const uint q = q8_quantize(h, ds);
    float ss = dot(y, y);
    ss += subgroupShuffleXor(ss, 1u);
    ss += subgroupShuffleXor(ss, 2u);
    ss += subgroupShuffleXor(ss, 4u);
    if (tid >= 8u) return;
    Hq[(p.qb_q_off + 32u * b) / 4u + j] = q;
    if (j != 0u) return;
    Hs2[p.norm_q_soff + p.qb_q_off / 32u + b] = ds;
    if ((p.flags & MV_QBLK_SS) != 0u) Hn[p.qb_ss_off + b] = ss;
    hn_count[p.norm_count_off + b] = 0u;  // for the next dispatch
}

// Sum over the team's 32 lanes, in every lane. Called in uniform control flow (the fallback has barriers).
float team_sum(float v, uint team) {
    if (gl_SubgroupSize == MV_TEAM) return subgroupAdd(v);
    red[team * MV_TEAM + lane] = v;
    barrier();
    float t = 0.0;
    for (uint i = 0u; i < MV_TEAM; ++i) t += red[team * MV_TEAM + i];
    barrier();
    return t;
}

void main() {
#ifdef MV_TABLE  // a type's lookup table in shared memory (mv_types.glsl)
    mv_table_init();
    barrier();
#endif
    const bool sg = gl_SubgroupSize == MV_TEAM;  // then a team is a subgroup, whatever the id mapping
    const uint team = sg ? gl_SubgroupID : gl_LocalInvocationIndex / MV_TEAM;
    lane = sg ? gl_SubgroupInvocationID : gl_LocalInvocationIndex % MV_TEAM;
#ifdef KSPLIT
    const uint row0 = gl_WorkGroupID.x * NR;
#else
    const uint row0 = (gl_WorkGroupID.x * MV_TEAMS + team) * NR;
#endif
    const uint ncol = NB == 1 ? 1u : p.n_cols;
    const uint n_steps = (p.cols + MV_STEP - 1u) / MV_STEP;
    float xscale = 1.0;  // MV_XNORM: x's rms scale, from this workgroup's own pass over x (uniform)
#ifdef XQ8
    // MV_XSS: this invocation's first four of the blocks' sums of squares, loaded now and used after
    // the products (their latency hidden behind them, not waited for before the first weights)
    float xss_v[4] = {0.0, 0.0, 0.0, 0.0};
    if ((p.flags & MV_XSS) != 0u) {
        const uint nb = p.cols / 32u, tid = gl_LocalInvocationIndex;
        [[unroll]] for (uint u = 0u; u < 4u; ++u) xss_v[u] = tid + u * MV_WG < nb ? Wn[p.norm_w_off + tid + u * MV_WG] : 0.0;
    }
#else
    if ((p.flags & MV_XNORM) != 0u) {
        float ss = 0.0;
        for (uint i = gl_LocalInvocationIndex; i < p.cols / 4u; i += MV_WG) {
            const vec4 v = X4[p.x_off / 4u + i];
            ss += dot(v, v);
        }
        xscale = inversesqrt(wg_sum(ss) / float(p.cols) + p.norm_eps);
    }
#endif

    uint yo = p.y_off + gl_WorkGroupID.y * p.y_mat_stride + row0;
    if ((p.flags & MV_POS) != 0u) yo += step.pos * p.y_pos_stride;
    // MV_ACCUMULATE of one column: lane r's row of y (the residual), loaded now and added at the end
    const bool acc_y = (p.flags & MV_ACCUMULATE) != 0u;
    const float y_old = acc_y && NB == 1 && lane < NR && row0 + lane < p.rows ? Y[yo + lane] : 0.0;

    float acc[NB][NR];
    [[unroll]] for (uint b = 0u; b < NB; ++b)
        [[unroll]] for (uint r = 0u; r < NR; ++r) acc[b][r] = 0.0;
#ifdef GLU
    float up[NR];
    [[unroll]] for (uint r = 0u; r < NR; ++r) up[r] = 0.0;
    const uint up_delta = p.w2_off - p.w_off;  // mod 2^32: up may lie before gate
#endif
    // Matrix m of the batch is workgroup row y, or with MV_SUM_MATS every one in turn, weighted.
    const bool sum = (p.flags & MV_SUM_MATS) != 0u;
#ifdef KSPLIT
    const uint n_units = (sum ? p.sum_mats : 1u) * n_steps;
    for (uint u = team; u < n_units; u += KS_TEAMS) {
        const uint mi = u / n_steps, s = u - mi * n_steps;
        const uint m = sum ? mi : gl_WorkGroupID.y;
        const uint mat = (p.flags & MV_IDS) != 0u ? uint(ids[p.ids_off + m]) : m;
        const float wm = sum ? intBitsToFloat(ids[p.sum_w_off + mi]) : 1.0;
        const XS x = load_x(p.x_off + m * p.x_mat_stride, s);
        [[unroll]] for (uint r = 0u; r < NR; ++r)
            acc[0][r] += wm * row_dot(p.w_off + mat * p.w_mat_stride + min(row0 + r, p.rows - 1u) * row_units(p.cols), s, x);
    }
#else
    for (uint mi = 0u; mi < (sum ? p.sum_mats : 1u); ++mi) {
        const uint m = sum ? mi : gl_WorkGroupID.y;
        const uint mat = (p.flags & MV_IDS) != 0u ? uint(ids[p.ids_off + m]) : m;
        uint wrow[NR];
        [[unroll]] for (uint r = 0u; r < NR; ++r)
            wrow[r] = p.w_off + mat * p.w_mat_stride + min(row0 + r, p.rows - 1u) * row_units(p.cols);
        float part[NB][NR];
        [[unroll]] for (uint b = 0u; b < NB; ++b)
            [[unroll]] for (uint r = 0u; r < NR; ++r) part[b][r] = 0.0;
        const uint xbase = p.x_off + m * p.x_mat_stride;
        for (uint s = 0u; s < n_steps; ++s) {
#if defined(XQ8) && !defined(GLU) && NB > 1
            // the rows' weights loaded and unpacked once for every column (mv_types.glsl load_w)
            WS w[NR];
            [[unroll]] for (uint r = 0u; r < NR; ++r) w[r] = load_w(wrow[r], s);
            [[unroll]] for (uint b = 0u; b < NB; ++b) {
                if (b >= ncol) break;
                const XS x = load_x(xbase + b * p.x_col_stride, s);
                [[unroll]] for (uint r = 0u; r < NR; ++r) part[b][r] += dot_w(w[r], x);
            }
#else
            [[unroll]] for (uint b = 0u; b < NB; ++b) {  // columns after the first re-read W from cache
                if (b >= ncol) break;
                const XS x = load_x(xbase + b * p.x_col_stride, s);
                [[unroll]] for (uint r = 0u; r < NR; ++r) part[b][r] += row_dot(wrow[r], s, x);
#ifdef GLU
                [[unroll]] for (uint r = 0u; r < NR; ++r) up[r] += row_dot(wrow[r] + up_delta, s, x);
#endif
            }
#endif
        }
        const float wm = sum ? intBitsToFloat(ids[p.sum_w_off + mi]) : 1.0;  // weights: floats in the ids buffer
        [[unroll]] for (uint b = 0u; b < NB; ++b)
            [[unroll]] for (uint r = 0u; r < NR; ++r) acc[b][r] += wm * part[b][r];
    }
#endif

#ifdef XQ8
    if ((p.flags & MV_XSS) != 0u) {
        float xss = (xss_v[0] + xss_v[1]) + (xss_v[2] + xss_v[3]);
        for (uint i = gl_LocalInvocationIndex + 4u * MV_WG; i < p.cols / 32u; i += MV_WG) xss += Wn[p.norm_w_off + i];
        xscale = inversesqrt(wg_sum(xss) / float(p.cols) + p.norm_eps);
    }
#endif
#ifdef KSPLIT
    [[unroll]] for (uint r = 0u; r < NR; ++r) {
        const float s = team_sum(acc[0][r], team);
        if (lane == 0u) ks_red[team * NR + r] = s;
    }
    barrier();
    if (team == 0u && lane < NR && row0 + lane < p.rows) {
        float s = 0.0;
        for (uint t = 0u; t < KS_TEAMS; ++t) s += ks_red[t * NR + lane];
        s *= xscale;
        Y[yo + lane] = acc_y ? y_old + s : s;
    }
#else
    [[unroll]] for (uint b = 0u; b < NB; ++b) {
        if (b >= ncol) break;
        [[unroll]] for (uint r = 0u; r < NR; ++r) {
            float s = team_sum(acc[b][r], team) * xscale;
#ifdef GLU
            const float u = team_sum(up[r], team) * xscale;
            s = s / (1.0 + exp(-s)) * u;
#endif
            if (lane == r && row0 + r < p.rows) {
                const uint o = yo + b * p.y_col_stride + r;
                Y[o] = acc_y ? (NB == 1 ? y_old : Y[o]) + s : s;
            }
        }
    }
#endif
    if ((p.flags & MV_NORM) != 0u) norm_tail();
#ifdef KSPLIT
    if ((p.flags & MV_QBLK) != 0u) qblk_tail(row0);
#else
    if ((p.flags & MV_QBLK) != 0u) qblk_tail(gl_WorkGroupID.x * WG_ROWS);
#endif
#ifndef GLU
    if ((p.flags & MV_TOPK) != 0u) topk_tail();
#endif
}
