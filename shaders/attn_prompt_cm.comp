#version 450
// A prompt batch's attention on tensor cores (attn_prompt_cm, 128-dim heads; attn_prompt_cm_d256):
// attn_prompt.comp's work (causal attention of every token of the batch over the cache, after
// attn_prompt_qkv) as flash attention with float16 products into float32. A workgroup of 4 subgroups
// of 32 takes BR rows (head, token): gb q heads of one kv group x BR / gb tokens. Each subgroup owns
// 16 rows and 128 of the head's dims (256-dim heads: two subgroups per 16 rows, one per half). Per
// chunk of BC positions, the chunk's K and V rows go to shared memory as float16; a subgroup computes
// its 16 x BC scores S = (scale q) K^T over its dims from q fragments it holds for the whole kernel
// (a 256-dim head's two halves add up when read), the online softmax reads S back (2 lanes per row),
// writes P as float16 and each row's rescale factor, and O (16 x 128, 8 accumulator fragments) is
// rescaled and gets P V.
//
// An accumulator fragment's element-to-row mapping is the implementation's: it is read once from a
// fragment loaded from a table of row numbers, so O's rows are rescaled element by element.
//
// With ATTC_SCALAR (attn_prompt_cmh*) the same staging and softmax run with plain float arithmetic
// on the float16 values (each lane holds its row's q and 64 output dims): tests check the kernel's
// data movement on any device (lavapipe in CI).
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
#ifndef ATTC_SCALAR
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(push_constant) uniform PC { AttnPromptPush p; };
layout(binding = 0, std430) readonly buffer QBuf4 { vec4 Q4[]; };
layout(binding = 1, std430) readonly buffer KBuf4 { vec4 K4[]; };
layout(binding = 2, std430) readonly buffer VBuf4 { vec4 V4[]; };
layout(binding = 3, std430) writeonly buffer OBuf { float O[]; };
layout(binding = 4, std430) readonly buffer StepsU { uint SU[]; };
uint pos_of(uint j) { return SU[j * p.step_words]; }

#ifndef ATTC_D
#define ATTC_D 128u
#endif
#define D ATTC_D            // head dims (q, k and v)
#define HALVES (D / 128u)   // subgroups per 16 rows
#define BR (64u / HALVES)   // rows per workgroup
#define BC (32u / HALVES)   // positions per chunk (shared memory: 32 KB on lavapipe)
#define DQ (D / 8u)         // uvec4 (8 float16) per row
#define LD (DQ + 1u)        // staged row stride: rows 4 banks apart
#define SW (16u * BC)       // floats of a subgroup's S
#define PLD (BC / 8u + 1u)  // uvec4 per row of P
#define CPL (BC / 2u)       // scores per softmax lane
layout(local_size_x = 128) in;
shared uvec4 kvs[2u * BC * LD];  // K rows of the chunk, then its V rows; at the start, q's BR rows
shared float ss[4u * max(SW, 256u)];  // per subgroup: S (16 x BC), row major; O's way out at the end
shared uvec4 ps[4u * 16u * PLD];      // per subgroup: P (16 x BC float16 + 8 padding per row)
shared float alpha_s[BR];             // per row: the chunk's rescale factor of O
#define SWS max(SW, 256u)

// 8 floats -> 8 float16 in a uvec4
uvec4 pack8(vec4 a, vec4 b) {
    return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
// A chunk's K and V rows (rows past n as zeros) into kvs as float16: K rows at 0, V rows at BC * LD.
// Loading the next chunk into registers while this one is multiplied (attn_prompt.comp's way) measured
// 2% slower here (H200, 8B shape, 8192 tokens: 4608 vs 4711 tok/s): the registers cost occupancy.
void stage_rows(uint kb4, uint krs4, uint vb4, uint vrs4, uint c0, uint n) {
    [[unroll]] for (uint u = 0u; u < BC * DQ / 128u; ++u) {
        const uint i = gl_LocalInvocationIndex + 128u * u, row = i / DQ, c = i % DQ;
        vec4 k0 = vec4(0.0), k1 = vec4(0.0), v0 = vec4(0.0), v1 = vec4(0.0);
        if (row < n) {
            const uint ko = kb4 + (c0 + row) * krs4 + 2u * c, vo = vb4 + (c0 + row) * vrs4 + 2u * c;
            k0 = K4[ko], k1 = K4[ko + 1u], v0 = V4[vo], v1 = V4[vo + 1u];
        }
        kvs[row * LD + c] = pack8(k0, k1);
        kvs[(BC + row) * LD + c] = pack8(v0, v1);
    }
}

void main() {
#ifdef ATTC_SCALAR
    const uint tid = gl_LocalInvocationIndex, w = tid / 32u, lane = tid % 32u;
#else  // subgroups of 32 (ops.cpp)
    const uint tid = gl_LocalInvocationIndex, w = gl_SubgroupID, lane = gl_SubgroupInvocationID;
#endif
    const uint rg = w / HALVES, dh = w % HALVES, d0 = 16u * dh;  // row group; dims 128 dh .. (uvec4 d0 ..)
    const uint gb = p.gb, tt = BR / gb, h0 = gl_WorkGroupID.x * gb, j0 = gl_WorkGroupID.y * tt;
    const uint g = h0 / (p.n_head / p.n_head_kv);
    const uint last = min(j0 + tt, p.n_tokens) - 1u, n_pos = pos_of(last) + 1u;
    // softmax lanes: row rr of the 16 (workgroup row 16 rg + rr), scores CPL hh ..
    const uint rr = lane / 2u, hh = lane % 2u, row = 16u * rg + rr;
    const uint my_tok = min(j0 + row % tt, last), my_pos = pos_of(my_tok);

    // q rows (scaled) as float16 through kvs
    for (uint i = tid; i < BR * DQ; i += 128u) {
        const uint r = i / DQ, c = i % DQ, tj = min(j0 + r % tt, last), h = h0 + r / tt;
        const uint o = (tj * p.qkv_stride + p.q_off + h * D) / 4u + 2u * c;
        kvs[r * LD + c] = pack8(Q4[o] * p.scale, Q4[o + 1u] * p.scale);
    }
    barrier();
#ifdef ATTC_SCALAR
    uvec4 q[16];  // this lane's row, its subgroup's 128 dims, 8 float16 per uvec4
    [[unroll]] for (uint c = 0u; c < 16u; ++c) q[c] = kvs[row * LD + d0 + c];
    float o[64];  // dims 128 dh + 64 hh ..
    [[unroll]] for (uint d = 0u; d < 64u; ++d) o[d] = 0.0;
#else
    // q's 8 fragments as single variables (arrays of fragments went to local memory: mmt.comp)
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> q0, q1, q2, q3, q4, q5, q6, q7;
#define QLOAD(k, f) coopMatLoadNV(f, kvs, (16u * rg) * LD + d0 + 2u * k, LD, false);
    QLOAD(0u, q0) QLOAD(1u, q1) QLOAD(2u, q2) QLOAD(3u, q3) QLOAD(4u, q4) QLOAD(5u, q5) QLOAD(6u, q6) QLOAD(7u, q7)
#define ZERO fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0)
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> o0 = ZERO, o1 = ZERO, o2 = ZERO, o3 = ZERO, o4 = ZERO, o5 = ZERO, o6 = ZERO, o7 = ZERO;
    // the row (0..15) of each accumulator element: a fragment loaded from a table of row numbers
    for (uint e = lane; e < 256u; e += 32u) ss[w * SWS + e] = float(e / 16u);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> rows_f;
    coopMatLoadNV(rows_f, ss, w * SWS, 16u, false);
    uint rowmap[8];
    [[unroll]] for (uint i = 0u; i < 8u; ++i) rowmap[i] = i < rows_f.length() ? uint(rows_f[i]) : 0u;
#endif
    float m = -1.0 / 0.0, l = 0.0;
    const uint kbase = (p.kc_off + g * D) / 4u, vbase = (p.vc_off + g * D) / 4u;
    const uint krs = p.k_row_stride / 4u, vrs = p.v_row_stride / 4u;

    for (uint c0 = 0u; c0 < n_pos; c0 += BC) {  // uniform
        const uint n = min(BC, n_pos - c0);
        barrier();  // kvs (q, or the last chunk's K and V) and ss are free
        stage_rows(kbase, krs, vbase, vrs, c0, n);
        barrier();
        // S = q K^T over this subgroup's dims into its ss
#ifdef ATTC_SCALAR
        for (uint c = CPL * hh; c < CPL * hh + CPL; ++c) {
            float a = 0.0;
            [[unroll]] for (uint k = 0u; k < 16u; ++k) {
                const uvec4 kv = kvs[c * LD + d0 + k];
                [[unroll]] for (uint e = 0u; e < 4u; ++e) a += dot(unpackHalf2x16(q[k][e]), unpackHalf2x16(kv[e]));
            }
            ss[w * SWS + rr * BC + c] = a;
        }
#else
        [[unroll]] for (uint nb = 0u; nb < BC / 16u; ++nb) {
            fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> s = ZERO;
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> kt;  // K^T: (dim, position), K's rows as columns
#define QK(k, f)                                                          \
    coopMatLoadNV(kt, kvs, (16u * nb) * LD + d0 + 2u * k, LD, true);      \
    s = coopMatMulAddNV(f, kt, s);
            QK(0u, q0) QK(1u, q1) QK(2u, q2) QK(3u, q3) QK(4u, q4) QK(5u, q5) QK(6u, q6) QK(7u, q7)
            coopMatStoreNV(s, ss, w * SWS + 16u * nb, BC, false);
        }
#endif
        barrier();
        // online softmax: this lane's CPL scores of row rr (a 256-dim head: both halves' sums)
        float sv[CPL], mx = m;
        [[unroll]] for (uint c = 0u; c < CPL; ++c) {
            const uint cp = CPL * hh + c;
            float a = 0.0;
            [[unroll]] for (uint x = 0u; x < HALVES; ++x) a += ss[(rg * HALVES + x) * SWS + rr * BC + cp];
            sv[c] = cp < n && c0 + cp <= my_pos ? a : -1.0 / 0.0;
            mx = max(mx, sv[c]);
        }
        mx = max(mx, subgroupShuffleXor(mx, 1u));
        const float a = mx == -1.0 / 0.0 ? 1.0 : exp(m - mx);  // m = -inf before the first score: 0
        float sum = 0.0;
        uint pk[CPL / 2u];
        [[unroll]] for (uint c = 0u; c < CPL; c += 2u) {
            const vec2 e = vec2(mx == -1.0 / 0.0 ? 0.0 : exp(sv[c] - mx), mx == -1.0 / 0.0 ? 0.0 : exp(sv[c + 1u] - mx));
            sum += e.x + e.y;
            pk[c / 2u] = packHalf2x16(e);
        }
        sum += subgroupShuffleXor(sum, 1u);
        l = l * a + sum;
        m = mx;
        [[unroll]] for (uint u = 0u; u < CPL / 8u; ++u)
            ps[(w * 16u + rr) * PLD + (CPL / 8u) * hh + u] = uvec4(pk[4u * u], pk[4u * u + 1u], pk[4u * u + 2u], pk[4u * u + 3u]);
        if (hh == 0u && dh == 0u) alpha_s[row] = a;
        barrier();
        // O = a O + P V
#ifdef ATTC_SCALAR
        [[unroll]] for (uint d = 0u; d < 64u; ++d) o[d] *= a;
        for (uint c = 0u; c < BC; ++c) {
            const float pc = unpackHalf2x16(ps[(w * 16u + rr) * PLD + c / 8u][(c % 8u) / 2u])[c % 2u];
            [[unroll]] for (uint k = 0u; k < 8u; ++k) {
                const uvec4 v = kvs[(BC + c) * LD + d0 + 8u * hh + k];
                [[unroll]] for (uint e = 0u; e < 4u; ++e) {
                    const vec2 vv = unpackHalf2x16(v[e]);
                    o[8u * k + 2u * e] += pc * vv.x;
                    o[8u * k + 2u * e + 1u] += pc * vv.y;
                }
            }
        }
#else
        float ar[8];
        [[unroll]] for (uint i = 0u; i < 8u; ++i) ar[i] = alpha_s[16u * rg + rowmap[i]];
#define RESCALE(f) [[unroll]] for (uint i = 0u; i < 8u; ++i) if (i < f.length()) f[i] *= ar[i];
        RESCALE(o0) RESCALE(o1) RESCALE(o2) RESCALE(o3) RESCALE(o4) RESCALE(o5) RESCALE(o6) RESCALE(o7)
        [[unroll]] for (uint k = 0u; k < BC / 16u; ++k) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> pf, vf;
            coopMatLoadNV(pf, ps, (w * 16u) * PLD + 2u * k, PLD, false);
#define PV(j, f)                                                                \
    coopMatLoadNV(vf, kvs, (BC + 16u * k) * LD + d0 + 2u * j, LD, false);       \
    f = coopMatMulAddNV(pf, vf, f);
            PV(0u, o0) PV(1u, o1) PV(2u, o2) PV(3u, o3) PV(4u, o4) PV(5u, o5) PV(6u, o6) PV(7u, o7)
        }
#endif
    }

    // out = O / l
    const bool valid = j0 + row % tt < p.n_tokens;
    const uint ob = p.out_off + my_tok * p.out_stride + (h0 + row / tt) * D + 128u * dh;
#ifdef ATTC_SCALAR
    if (valid)
        [[unroll]] for (uint d = 0u; d < 64u; ++d) O[ob + 64u * hh + d] = o[d] / l;
#else
    // a fragment (16 x 16) at a time through this subgroup's ss
#define OUT(j, f)                                                                              \
    barrier();                                                                                 \
    coopMatStoreNV(f, ss, w * SWS, 16u, false);                                                \
    barrier();                                                                                 \
    if (valid)                                                                                 \
        [[unroll]] for (uint c = 0u; c < 8u; ++c) O[ob + 16u * j + 8u * hh + c] = ss[w * SWS + rr * 16u + 8u * hh + c] / l;
    OUT(0u, o0) OUT(1u, o1) OUT(2u, o2) OUT(3u, o3) OUT(4u, o4) OUT(5u, o5) OUT(6u, o6) OUT(7u, o7)
#endif
}
