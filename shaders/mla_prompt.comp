#version 450
// A prompt batch's latent attention (deepseek2, shared.h MlaPromptPush): flash attention of every
// (head, token) row of the batch over the latent cache rows [0, pos_j], which every head reads as its
// keys (kv_lora + n_rot floats) and, their first kv_lora floats, as its values: one kv head for all
// q heads, so a workgroup's 32 rows (gb heads x 32 / gb tokens) share each cache row it stages.
//
// Dims are padded to 512 + 64: a row's c part at 0 .. kv_lora, its rope part at 512 .. 512 + n_rot,
// zeros between (DeepSeek-V2/V3 and Kimi K2 fill them; narrower test models cost padding only).
// 8 subgroups of 32: row group rg (16 rows) x dim quarter dq. Per chunk of BC positions the chunk's
// cache rows are staged in shared memory; subgroup (rg, dq) computes its 16 rows' partial scores over
// its quarter of the 576 key dims, the softmax adds the quarters (8 lanes a row), and subgroup
// (rg, dq) accumulates O for its 16 rows' quarter of the 512 value dims.
//
//   MLAP_CM (attn_prompt_mla_cm): float16 staging, products on tensor cores (GL_NV_cooperative_matrix,
//            subgroups of 32), BC = 16; q held as 9 fragments per subgroup, O as 8.
//   MLAP_F16 (attn_prompt_mla_cmh): the same staging and tiles with plain float arithmetic on the
//            float16 values: tests check the tensor-core build's data movement on any device.
//   neither (attn_prompt_mla): float staging, BC = 8, float arithmetic: devices without tensor cores,
//            and lavapipe's exact path.
// In the scalar builds lane (rr, hh) of a subgroup holds row rr's q for the quarter's dims and O for
// its 64 dims hh of the quarter's 128.
#extension GL_EXT_control_flow_attributes : enable
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
#ifdef MLAP_CM
#define MLAP_F16
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { MlaPromptPush p; };
layout(binding = 0, std430) readonly buffer QBuf4 { vec4 Q4[]; };
layout(binding = 1, std430) readonly buffer CBuf4 { vec4 C4[]; };
layout(binding = 2, std430) writeonly buffer OBuf { float O[]; };
layout(binding = 3, std430) readonly buffer StepsU { uint SU[]; };
uint pos_of(uint j) { return SU[j * p.step_words]; }

#define DC 512u   // the c part's padded dims (values)
#define DK 576u   // the key dims, c and rope parts padded
#define QD4 36u   // vec4 of a quarter of the key dims (144)
#ifdef MLAP_F16
#define BC 16u    // positions per chunk
#define LD 73u    // staged row stride in uvec4 (8 float16 each): 72 + 1
shared uvec4 kvs[BC * LD];       // the chunk's rows; in MLAP_CM at the start a row group's q
#define PLD (BC / 8u + 1u)
shared uvec4 ps[MLAP_ROWS * PLD];  // P (float16) per row
#else
#define BC 8u
#define LD 145u   // staged row stride in vec4: 144 + 1
shared vec4 kvs[BC * LD];
shared float ps[MLAP_ROWS * BC];
#endif
#define SW (16u * BC)                // floats of a subgroup's partial S (16 x BC, row major)
shared float ss[8u * max(SW, 256u)];  // per subgroup: its partial S; O's way out at the end (MLAP_CM)
#define SWS max(SW, 256u)
shared float alpha_s[MLAP_ROWS];  // per row: the chunk's rescale factor of O
shared float l_s[MLAP_ROWS];      // per row: the softmax's sum at the end

// vec4 d4 of a padded row (0 .. 143) whose c part starts at float `base` of buf (Q4 or C4).
#define PADDED(buf, base, d4)                                                              \
    (4u * (d4) < DC ? (4u * (d4) < p.kv_lora ? buf[(base) / 4u + (d4)] : vec4(0.0))        \
                    : (4u * (d4) - DC < p.n_rot ? buf[((base) + p.kv_lora) / 4u + (d4) - DC / 4u] : vec4(0.0)))

#ifdef MLAP_F16
uvec4 pack8(vec4 a, vec4 b) {
    return uvec4(packHalf2x16(a.xy), packHalf2x16(a.zw), packHalf2x16(b.xy), packHalf2x16(b.zw));
}
#endif

void main() {
    const uint tid = gl_LocalInvocationIndex;
#ifdef MLAP_CM  // subgroups of 32 (ops.cpp)
    const uint w = gl_SubgroupID, lane = gl_SubgroupInvocationID;
#else
    const uint w = tid / 32u, lane = tid % 32u;
#endif
    const uint rg = w / 4u, dq = w % 4u;  // row group, dim quarter
    const uint gb = p.gb, tt = MLAP_ROWS / gb, h0 = gl_WorkGroupID.x * gb, j0 = gl_WorkGroupID.y * tt;
    const uint last = min(j0 + tt, p.n_tokens) - 1u, n_pos = pos_of(last) + 1u;
    // softmax lanes: 8 a row (row sr, scores BC / 8 from e * BC / 8)
    const uint sr = tid / 8u, se = tid % 8u, stok = min(j0 + sr % tt, last), spos = pos_of(stok);
    // the rows of this lane in the scalar builds and at the end: 16 rg + rr, dims hh of the quarter
    const uint rr = lane / 2u, hh = lane % 2u, row = 16u * rg + rr;
    const uint my_tok = min(j0 + row % tt, last), my_h = h0 + row / tt;

#ifdef MLAP_CM
    // q (scaled) as 9 float16 fragments per subgroup: each row group's 16 rows staged in turn through kvs
    fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> q0, q1, q2, q3, q4, q5, q6, q7, q8;
    for (uint g = 0u; g < 2u; ++g) {
        for (uint i = tid; i < 16u * 72u; i += 256u) {
            const uint r = 16u * g + i / 72u, c = i % 72u, tj = min(j0 + r % tt, last), h = h0 + r / tt;
            const uint base = p.q_off + tj * p.q_tok_stride + h * p.q_head_stride;
            kvs[(i / 72u) * LD + c] = pack8(PADDED(Q4, base, 2u * c) * p.scale, PADDED(Q4, base, 2u * c + 1u) * p.scale);
        }
        barrier();
        if (rg == g) {
#define QLOAD(k, f) coopMatLoadNV(f, kvs, 18u * dq + 2u * k, LD, false);
            QLOAD(0u, q0) QLOAD(1u, q1) QLOAD(2u, q2) QLOAD(3u, q3) QLOAD(4u, q4) QLOAD(5u, q5) QLOAD(6u, q6) QLOAD(7u, q7) QLOAD(8u, q8)
        }
        barrier();
    }
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
#else
    // this lane's row's q (scaled) over the quarter's key dims, and O over its 64 value dims
    const uint qbase = p.q_off + my_tok * p.q_tok_stride + my_h * p.q_head_stride;
#ifdef MLAP_F16
    uvec4 q[QD4 / 2u];
    [[unroll]] for (uint c = 0u; c < QD4 / 2u; ++c)
        q[c] = pack8(PADDED(Q4, qbase, QD4 * dq + 2u * c) * p.scale, PADDED(Q4, qbase, QD4 * dq + 2u * c + 1u) * p.scale);
#else
    vec4 q[QD4];
    [[unroll]] for (uint c = 0u; c < QD4; ++c) q[c] = PADDED(Q4, qbase, QD4 * dq + c) * p.scale;
#endif
    float o[64];
    [[unroll]] for (uint d = 0u; d < 64u; ++d) o[d] = 0.0;
#endif
    float m = -1.0 / 0.0, l = 0.0;  // the softmax lanes' row's

    for (uint c0 = 0u; c0 < n_pos; c0 += BC) {  // uniform
        const uint n = min(BC, n_pos - c0);
        barrier();  // kvs, ss and ps are free
#ifdef MLAP_F16
        for (uint i = tid; i < BC * 72u; i += 256u) {
            const uint r = i / 72u, c = i % 72u, base = p.cache_off + (c0 + r) * (p.kv_lora + p.n_rot);
            kvs[r * LD + c] = r < n ? pack8(PADDED(C4, base, 2u * c), PADDED(C4, base, 2u * c + 1u)) : uvec4(0u);
        }
#else
        for (uint i = tid; i < BC * 144u; i += 256u) {
            const uint r = i / 144u, c = i % 144u, base = p.cache_off + (c0 + r) * (p.kv_lora + p.n_rot);
            kvs[r * LD + c] = r < n ? PADDED(C4, base, c) : vec4(0.0);
        }
#endif
        barrier();
        // partial S = q K^T over this subgroup's quarter of the key dims, into its ss
#ifdef MLAP_CM
        {
            fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> s = ZERO;
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> kt;  // K^T: (dim, position), the rows as columns
#define QK(k, f)                                                  \
    coopMatLoadNV(kt, kvs, 18u * dq + 2u * k, LD, true);          \
    s = coopMatMulAddNV(f, kt, s);
            QK(0u, q0) QK(1u, q1) QK(2u, q2) QK(3u, q3) QK(4u, q4) QK(5u, q5) QK(6u, q6) QK(7u, q7) QK(8u, q8)
            coopMatStoreNV(s, ss, w * SWS, BC, false);
        }
#else
        for (uint c = hh * (BC / 2u); c < (hh + 1u) * (BC / 2u); ++c) {
            float a = 0.0;
#ifdef MLAP_F16
            [[unroll]] for (uint k = 0u; k < QD4 / 2u; ++k) {
                const uvec4 kv = kvs[c * LD + (QD4 / 2u) * dq + k];
                [[unroll]] for (uint e = 0u; e < 4u; ++e) a += dot(unpackHalf2x16(q[k][e]), unpackHalf2x16(kv[e]));
            }
#else
            [[unroll]] for (uint k = 0u; k < QD4; ++k) a += dot(q[k], kvs[c * LD + QD4 * dq + k]);
#endif
            ss[w * SWS + rr * BC + c] = a;
        }
#endif
        barrier();
        // online softmax: row sr's scores se * BC / 8 .., the quarters' partial sums added
        {
            const uint srg = sr / 16u, srr = sr % 16u;
            float sv[BC / 8u], mx = m;
            [[unroll]] for (uint u = 0u; u < BC / 8u; ++u) {
                const uint c = se * (BC / 8u) + u;
                float a = 0.0;
                [[unroll]] for (uint x = 0u; x < 4u; ++x) a += ss[(4u * srg + x) * SWS + srr * BC + c];
                sv[u] = c < n && c0 + c <= spos ? a : -1.0 / 0.0;
                mx = max(mx, sv[u]);
            }
            mx = max(mx, subgroupShuffleXor(mx, 1u));
            mx = max(mx, subgroupShuffleXor(mx, 2u));
            mx = max(mx, subgroupShuffleXor(mx, 4u));
            const float a = mx == -1.0 / 0.0 ? 1.0 : exp(m - mx);  // m = -inf before the first score: 0
            float sum = 0.0, e[BC / 8u];
            [[unroll]] for (uint u = 0u; u < BC / 8u; ++u) {
                e[u] = mx == -1.0 / 0.0 ? 0.0 : exp(sv[u] - mx);
                sum += e[u];
            }
            sum += subgroupShuffleXor(sum, 1u);
            sum += subgroupShuffleXor(sum, 2u);
            sum += subgroupShuffleXor(sum, 4u);
            l = l * a + sum;
            m = mx;
#ifdef MLAP_F16
            ps[sr * PLD + se / 4u][se % 4u] = packHalf2x16(vec2(e[0], e[1]));  // BC / 8 = 2 scores a lane
#else
            ps[sr * BC + se] = e[0];
#endif
            if (se == 0u) alpha_s[sr] = a;
        }
        barrier();
        // O = a O + P V over this subgroup's quarter of the value dims
#ifdef MLAP_CM
        {
            float ar[8];
            [[unroll]] for (uint i = 0u; i < 8u; ++i) ar[i] = alpha_s[16u * rg + rowmap[i]];
#define RESCALE(f) [[unroll]] for (uint i = 0u; i < 8u; ++i) if (i < f.length()) f[i] *= ar[i];
            RESCALE(o0) RESCALE(o1) RESCALE(o2) RESCALE(o3) RESCALE(o4) RESCALE(o5) RESCALE(o6) RESCALE(o7)
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> pf, vf;
            coopMatLoadNV(pf, ps, (16u * rg) * PLD, PLD, false);
#define PV(j, f)                                                 \
    coopMatLoadNV(vf, kvs, 16u * dq + 2u * j, LD, false);        \
    f = coopMatMulAddNV(pf, vf, f);
            PV(0u, o0) PV(1u, o1) PV(2u, o2) PV(3u, o3) PV(4u, o4) PV(5u, o5) PV(6u, o6) PV(7u, o7)
        }
#else
        {
            const float a = alpha_s[row];
            [[unroll]] for (uint d = 0u; d < 64u; ++d) o[d] *= a;
            for (uint c = 0u; c < n; ++c) {
#ifdef MLAP_F16
                const float pc = unpackHalf2x16(ps[row * PLD + c / 8u][(c % 8u) / 2u])[c % 2u];
                [[unroll]] for (uint k = 0u; k < 8u; ++k) {
                    const uvec4 v = kvs[c * LD + 16u * dq + 8u * hh + k];
                    [[unroll]] for (uint e = 0u; e < 4u; ++e) {
                        const vec2 vv = unpackHalf2x16(v[e]);
                        o[8u * k + 2u * e] += pc * vv.x;
                        o[8u * k + 2u * e + 1u] += pc * vv.y;
                    }
                }
#else
                const float pc = ps[row * BC + c];
                [[unroll]] for (uint k = 0u; k < 16u; ++k) {
                    const vec4 v = kvs[c * LD + 32u * dq + 16u * hh + k];
                    o[4u * k] += pc * v.x;
                    o[4u * k + 1u] += pc * v.y;
                    o[4u * k + 2u] += pc * v.z;
                    o[4u * k + 3u] += pc * v.w;
                }
#endif
            }
        }
#endif
    }

    // out = O / l (the softmax lanes' l through shared memory)
    if (se == 0u) l_s[sr] = l;
    barrier();
    const bool valid = j0 + row % tt < p.n_tokens;
    const float inv_l = 1.0 / l_s[row];
    const uint ob = p.out_off + my_tok * p.out_tok_stride + my_h * p.kv_lora;
#ifdef MLAP_CM
    // a fragment (16 x 16) at a time through this subgroup's ss; lane (rr, hh): 8 of the fragment's dims
#define OUT(j, f)                                                                                  \
    subgroupMemoryBarrierShared();                                                                 \
    subgroupBarrier();                                                                             \
    coopMatStoreNV(f, ss, w * SWS, 16u, false);                                                    \
    subgroupMemoryBarrierShared();                                                                 \
    subgroupBarrier();                                                                             \
    if (valid)                                                                                     \
        [[unroll]] for (uint c = 0u; c < 8u; ++c) {                                                \
            const uint d = 128u * dq + 16u * j + 8u * hh + c;                                      \
            if (d < p.kv_lora) O[ob + d] = ss[w * SWS + rr * 16u + 8u * hh + c] * inv_l;           \
        }
    OUT(0u, o0) OUT(1u, o1) OUT(2u, o2) OUT(3u, o3) OUT(4u, o4) OUT(5u, o5) OUT(6u, o6) OUT(7u, o7)
#else
    if (valid)
        [[unroll]] for (uint d = 0u; d < 64u; ++d) {
            const uint dd = 128u * dq + 64u * hh + d;
            if (dd < p.kv_lora) O[ob + dd] = o[d] * inv_l;
        }
#endif
}
