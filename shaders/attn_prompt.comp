#version 450
// A prompt batch's attention (qwen3), every token of the batch in one dispatch, in two variants:
//
// PROMPT_QKV (attn_prompt_qkv): workgroup (head, token j) of the n_head q heads, n_head_kv k heads
// and n_head_kv v heads of token j's projections (one row of Q per token, qkv_stride floats apart):
// q and k get the per-head RMSNorm and NeoX RoPE of position pos_j (q in place; k into the cache row
// pos_j), v is copied into its cache row. After it every token's k and v are in the cache, so the
// tokens' attention no longer depends on each other.
//
// Otherwise (attn_prompt): workgroup (block of gb q heads of one kv group, tile of 32 / gb tokens)
// has 32 rows (head, token), a cluster of CL = 8 invocations each: invocation i of a cluster holds the
// row's q and output dims 4 (i + 8 k) .. + 3 in registers. Per chunk of kc positions (32, or 16 for
// 256-dim heads) the chunk's K rows and then its V rows pass through shared memory; each row's scores
// are its cluster's sums (three shuffles), kept in registers with the online softmax's max and sum.
// The 4 clusters of a subgroup read the same K and V vec4s (broadcast), so a subgroup's shared load
// moves 128 bytes for 32 vec4 products (H200, bench/GPU.md session 12: the kernel before, a token
// per 32 invocations with each score a dot product of two shared rows, was bound by shared-memory
// bandwidth). Head dims are multiples of 4, as are the offsets and strides of q, the caches and rows.
//
// Token j's step header (shared.h StepHeader: pos) and its RoPE cos/sin lie at word j * step_words
// of the steps buffer (the batch's step buffers back to back).
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"

layout(push_constant) uniform PC { AttnPromptPush p; };
layout(binding = 0, std430) buffer QBuf { float Q[]; };
layout(binding = 1, std430) buffer KBuf { float K[]; };
layout(binding = 2, std430) buffer VBuf { float V[]; };
layout(binding = 4, std430) readonly buffer StepsU { uint SU[]; };
layout(binding = 4, std430) readonly buffer StepsV { vec2 SV[]; };

uint pos_of(uint j) { return SU[j * p.step_words]; }

#ifdef PROMPT_QKV
layout(local_size_x = 128) in;
layout(binding = 3, std430) readonly buffer WBuf { float Wn[]; };
shared float v[ATTN_DMAX];
shared float part[128];

void main() {
    const uint h = gl_WorkGroupID.x, j = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint pos = pos_of(j), row = j * p.qkv_stride;
    const uint nq = p.n_head, nk = p.n_head_kv;
    if (h >= nq + nk) {  // v: copy into the cache
        const uint g = h - nq - nk;
        for (uint i = tid; i < p.head_dim_v; i += 128u)
            V[p.vc_off + pos * p.v_row_stride + g * p.head_dim_v + i] = Q[row + p.v_off + g * p.head_dim_v + i];
        return;
    }
    const bool is_q = h < nq;
    const uint src = is_q ? row + p.q_off + h * p.head_dim : row + p.k_off + (h - nq) * p.head_dim;
    float ss = 0.0;
    for (uint i = tid; i < p.head_dim; i += 128u) {
        const float x = Q[src + i];
        v[i] = x;
        ss += x * x;
    }
    part[tid] = ss;
    barrier();
    for (uint s = 64u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.head_dim) + p.eps);
    const uint wo = is_q ? p.qn_off : p.kn_off;
    for (uint i = tid; i < p.head_dim; i += 128u) v[i] = v[i] * scale * Wn[wo + i];
    barrier();
    const uint half_rot = p.n_rot / 2u, cs = j * p.step_words / 2u + 2u;  // StepHeader is 2 vec2
    for (uint i = tid; i < p.head_dim; i += 128u) {
        float y = v[i];
        if (i < half_rot) {
            const vec2 r = SV[cs + i];
            y = v[i] * r.x - v[i + half_rot] * r.y;
        } else if (i < p.n_rot) {
            const vec2 r = SV[cs + i - half_rot];
            y = v[i - half_rot] * r.y + v[i] * r.x;
        }
        if (is_q) Q[src + i] = y;
        else K[p.kc_off + pos * p.k_row_stride + (h - nq) * p.head_dim + i] = y;
    }
}

#else
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
layout(local_size_x = 256) in;
layout(binding = 3, std430) writeonly buffer OBuf { float O[]; };
layout(binding = 0, std430) readonly buffer QBuf4 { vec4 Q4[]; };
layout(binding = 1, std430) readonly buffer KBuf4 { vec4 K4[]; };
layout(binding = 2, std430) readonly buffer VBuf4 { vec4 V4[]; };
#define CL 8u                    // invocations per row
#define KCM 32u                  // positions per chunk at most
#define KV_VEC4 1024u            // shared vec4 for a chunk's K or V rows: kc * dims / 4 at most
#define NI (ATTP_DMAX / 4u / CL) // vec4 of q and of the output per invocation (ATTP_DMAX: 128 or 256)
shared vec4 kv[KV_VEC4];         // the chunk's K rows, then its V rows, dims / 4 apart

// A chunk's K or V rows pass through registers: each invocation loads its KV_PER vec4 of the next
// chunk while the current one is multiplied, so the tile waits on DRAM once, not twice per chunk.
#define KV_PER (KV_VEC4 / 256u)
struct Rows {
    vec4 v[KV_PER];
};
Rows load_rows(bool is_k, uint base, uint row_stride4, uint c0, uint n, uint d4) {
    Rows r;
    [[unroll]] for (uint u = 0u; u < KV_PER; ++u) {
        const uint i = gl_LocalInvocationIndex + 256u * u, c = i / d4, d = i - c * d4;
        r.v[u] = vec4(0.0);
        if (c < n) r.v[u] = is_k ? K4[base + (c0 + c) * row_stride4 + d] : V4[base + (c0 + c) * row_stride4 + d];
    }
    return r;
}
void store_rows(Rows r, uint n, uint d4) {
    [[unroll]] for (uint u = 0u; u < KV_PER; ++u) {
        const uint i = gl_LocalInvocationIndex + 256u * u;
        if (i < n * d4) kv[i] = r.v[u];
    }
}

void main() {
    const uint gb = p.gb, tt = ATTP_ROWS / gb, h0 = gl_WorkGroupID.x * gb, j0 = gl_WorkGroupID.y * tt;
    const uint hd4 = p.head_dim / 4u, hdv4 = p.head_dim_v / 4u, g = h0 / (p.n_head / p.n_head_kv);
    const uint kc = min(KCM, KV_VEC4 / max(hd4, hdv4));
    // This invocation's row (subgroups of 8 or more hold whole clusters, ops.cpp) and its dims.
    const uint sgc = gl_SubgroupSize / CL;
    const uint row = gl_SubgroupID * sgc + gl_SubgroupInvocationID / CL, cl = gl_SubgroupInvocationID % CL;
    const uint last = min(j0 + tt, p.n_tokens) - 1u;  // the tile's last token
    const uint n_pos = pos_of(last) + 1u;              // positions the tile reads
    const uint tj = min(j0 + row / gb, last), h = h0 + row % gb, my_pos = pos_of(tj);

    vec4 q[NI], o[NI];
    const uint qb = (tj * p.qkv_stride + p.q_off + h * p.head_dim) / 4u;
    [[unroll]] for (uint i = 0u; i < NI; ++i) {
        const uint d4 = cl + CL * i;
        q[i] = d4 < hd4 ? Q4[qb + d4] : vec4(0.0);
        o[i] = vec4(0.0);
    }
    float m = -1.0 / 0.0, l = 0.0;
    const uint kbase = (p.kc_off + g * p.head_dim) / 4u, vbase = (p.vc_off + g * p.head_dim_v) / 4u;
    const uint krs = p.k_row_stride / 4u, vrs = p.v_row_stride / 4u;

    Rows kn = load_rows(true, kbase, krs, 0u, min(kc, n_pos), hd4);
    Rows vn = load_rows(false, vbase, vrs, 0u, min(kc, n_pos), hdv4);
    for (uint c0 = 0u; c0 < n_pos; c0 += kc) {  // uniform
        const uint n = min(kc, n_pos - c0);
        barrier();  // the previous chunk's V rows are used
        store_rows(kn, n, hd4);
        const Rows vc = vn;
        barrier();
        if (c0 + kc < n_pos) {  // the next chunk's loads fly during this one's products
            const uint nn = min(kc, n_pos - c0 - kc);
            kn = load_rows(true, kbase, krs, c0 + kc, nn, hd4);
            vn = load_rows(false, vbase, vrs, c0 + kc, nn, hdv4);
        }
        float s[KCM];
        float mx = m;
        [[unroll]] for (uint c = 0u; c < KCM; ++c) {
            float a = 0.0;
            if (c < n)  // uniform
                [[unroll]] for (uint i = 0u; i < NI; ++i) {
                    const uint d4 = cl + CL * i;
                    if (d4 < hd4) a += dot(q[i], kv[c * hd4 + d4]);
                }
            a += subgroupShuffleXor(a, 4u);
            a += subgroupShuffleXor(a, 2u);
            a += subgroupShuffleXor(a, 1u);
            s[c] = c < n && c0 + c <= my_pos ? a * p.scale : -1.0 / 0.0;
            mx = max(mx, s[c]);
        }
        barrier();  // the K rows are used
        store_rows(vc, n, hdv4);
        barrier();
        if (mx > -1.0 / 0.0) {  // else every score of this row so far is masked
            const float r = exp(m - mx);
            l *= r;
            [[unroll]] for (uint i = 0u; i < NI; ++i) o[i] *= r;
            [[unroll]] for (uint c = 0u; c < KCM; ++c) {
                if (c >= n) break;  // uniform
                const float e = exp(s[c] - mx);
                l += e;
                [[unroll]] for (uint i = 0u; i < NI; ++i) {
                    const uint d4 = cl + CL * i;
                    if (d4 < hdv4) o[i] += e * kv[c * hdv4 + d4];
                }
            }
            m = mx;
        }
    }
    if (j0 + row / gb >= p.n_tokens) return;
    const uint ob = p.out_off + tj * p.out_stride + h * p.head_dim_v;
    [[unroll]] for (uint i = 0u; i < NI; ++i) {
        const uint d4 = cl + CL * i;
        if (d4 < hdv4) {
            O[ob + 4u * d4] = o[i].x / l;
            O[ob + 4u * d4 + 1u] = o[i].y / l;
            O[ob + 4u * d4 + 2u] = o[i].z / l;
            O[ob + 4u * d4 + 3u] = o[i].w / l;
        }
    }
}
#endif
