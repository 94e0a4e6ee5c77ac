#version 450
// A prompt batch's attention (qwen3), every token of the batch in one dispatch, in two variants:
//
// PROMPT_QKV (attn_prompt_qkv): workgroup (head, token j) of the n_head q heads, n_head_kv k heads
// and n_head_kv v heads of token j's projections (one row of Q per token, qkv_stride floats apart):
// q and k get the per-head RMSNorm and NeoX RoPE of position pos_j (q in place; k into the cache row
// pos_j), v is copied into its cache row. After it every token's k and v are in the cache, so the
// tokens' attention no longer depends on each other.
//
// Otherwise (attn_prompt): workgroup (q head h, tile of ATTP_TQ tokens) computes, for each token j of
// the tile, softmax(q_j K^T * scale) V over the cached positions [0, pos_j], in chunks of kc positions
// with an online softmax: the chunk's K rows and then its V rows pass through one shared buffer (rows
// padded by a vec4, so a warp's vec4 loads of 8 rows hit different banks), the tile's q rows stay in
// shared memory, each invocation keeps up to 8 output dims of one token in registers. Head dims are
// multiples of 4, as are the offsets and strides of q, the caches and the rows.
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
layout(local_size_x = 256) in;
layout(binding = 3, std430) writeonly buffer OBuf { float O[]; };
layout(binding = 0, std430) readonly buffer QBuf4 { vec4 Q4[]; };
layout(binding = 1, std430) readonly buffer KBuf4 { vec4 K4[]; };
layout(binding = 2, std430) readonly buffer VBuf4 { vec4 V4[]; };
#define TQ ATTP_TQ
#define LANES (256u / TQ)             // invocations per token: 32
#define DV4 (ATTN_DMAX / 4u / LANES)  // output vec4 per invocation: dims 4 (dl + LANES i) ..
shared vec4 qs[TQ * ATTN_DMAX / 4u];  // the tile's q rows, head_dim / 4 apart
shared vec4 kv[ATTP_KV_FLOATS / 4u];  // the chunk's K rows, then its V rows, (dim + 4) / 4 apart
shared float sc[TQ * ATTP_KC_MAX];    // the chunk's scores (token, position)
shared uint sp[TQ];                   // the tile's positions

// A chunk's K or V rows pass through registers: each invocation loads its KV_PER vec4 of the next
// chunk while the current one is multiplied, so the tile waits on DRAM once, not twice per chunk.
#define KV_PER ((ATTP_KV_FLOATS / 4u + 255u) / 256u)
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
void store_rows(Rows r, uint n, uint d4, uint stride) {
    [[unroll]] for (uint u = 0u; u < KV_PER; ++u) {
        const uint i = gl_LocalInvocationIndex + 256u * u, c = i / d4, d = i - c * d4;
        if (c < n) kv[c * stride + d] = r.v[u];
    }
}

void main() {
    const uint h = gl_WorkGroupID.x, j0 = gl_WorkGroupID.y * TQ, tid = gl_LocalInvocationIndex;
    const uint hd4 = p.head_dim / 4u, hdv4 = p.head_dim_v / 4u, g = h / (p.n_head / p.n_head_kv);
    const uint ks = hd4 + 1u, vs = hdv4 + 1u;  // row strides in shared (vec4): the padding spreads banks
    const uint kc = min(ATTP_KC_MAX, (ATTP_KV_FLOATS / 4u) / max(ks, vs));
    const uint last = min(j0 + TQ, p.n_tokens) - 1u;  // the tile's last token
    const uint n_pos = pos_of(last) + 1u;              // positions the tile reads

    for (uint i = tid; i < TQ * hd4; i += 256u) {
        const uint t = i / hd4, d = i - t * hd4;
        qs[i] = Q4[(min(j0 + t, last) * p.qkv_stride + p.q_off + h * p.head_dim) / 4u + d];
    }
    if (tid < TQ) sp[tid] = pos_of(min(j0 + tid, last));
    // This invocation's token (tj) and output dims; scores: (token, position) pairs.
    const uint tj = tid / LANES, dl = tid % LANES;
    const uint my_pos = pos_of(min(j0 + tj, last));
    vec4 o[DV4];
    [[unroll]] for (uint i = 0u; i < DV4; ++i) o[i] = vec4(0.0);
    float m = -1.0 / 0.0, l = 0.0;
    const uint kbase = (p.kc_off + g * p.head_dim) / 4u, vbase = (p.vc_off + g * p.head_dim_v) / 4u;
    const uint krs = p.k_row_stride / 4u, vrs = p.v_row_stride / 4u;

    Rows kn = load_rows(true, kbase, krs, 0u, min(kc, n_pos), hd4);
    Rows vn = load_rows(false, vbase, vrs, 0u, min(kc, n_pos), hdv4);
    for (uint c0 = 0u; c0 < n_pos; c0 += kc) {
        const uint n = min(kc, n_pos - c0);
        barrier();  // the previous chunk's V and scores are used
        store_rows(kn, n, hd4, ks);
        const Rows vc = vn;
        barrier();
        if (c0 + kc < n_pos) {  // the next chunk's loads fly during this one's products
            const uint nn = min(kc, n_pos - c0 - kc);
            kn = load_rows(true, kbase, krs, c0 + kc, nn, hd4);
            vn = load_rows(false, vbase, vrs, c0 + kc, nn, hdv4);
        }
        for (uint i = tid; i < TQ * kc; i += 256u) {
            const uint t = i / kc, c = i - t * kc;
            vec4 a = vec4(0.0);
            for (uint d = 0u; d < hd4; ++d) a += qs[t * hd4 + d] * kv[c * ks + d];
            sc[i] = c < n && c0 + c <= sp[t] ? (a.x + a.y + a.z + a.w) * p.scale : -1.0 / 0.0;
        }
        barrier();
        store_rows(vc, n, hdv4, vs);
        barrier();
        if (c0 <= my_pos) {  // else every score of this token's row is masked
            float mx = m;
            for (uint c = 0u; c < n; ++c) mx = max(mx, sc[tj * kc + c]);
            const float r = exp(m - mx);
            l *= r;
            [[unroll]] for (uint i = 0u; i < DV4; ++i) o[i] *= r;
            for (uint c = 0u; c < n; ++c) {
                const float e = exp(sc[tj * kc + c] - mx);
                l += e;
                [[unroll]] for (uint i = 0u; i < DV4; ++i) {
                    const uint d = dl + LANES * i;
                    if (d < hdv4) o[i] += e * kv[c * vs + d];
                }
            }
            m = mx;
        }
    }
    if (j0 + tj >= p.n_tokens) return;
    const uint ob = p.out_off + (j0 + tj) * p.out_stride + h * p.head_dim_v;
    [[unroll]] for (uint i = 0u; i < DV4; ++i) {
        const uint d = dl + LANES * i;
        if (d < hdv4) {
            O[ob + 4u * d] = o[i].x / l;
            O[ob + 4u * d + 1u] = o[i].y / l;
            O[ob + 4u * d + 2u] = o[i].z / l;
            O[ob + 4u * d + 3u] = o[i].w / l;
        }
    }
}
#endif
