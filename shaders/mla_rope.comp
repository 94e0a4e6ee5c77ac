#version 450
// deepseek2's rope (pairs (2i, 2i+1), engine/models/deepseek2.cpp rope()) and its latent cache row
// (cache_row()) in one dispatch: workgroup h < n_head ropes head h's q_pe into its qcat row, workgroup
// n_head writes this position's cache row [rmsnorm(c) * w | rope(k_pe)] (shared.h MlaRopePush).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { MlaRopePush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };  // q and kva
layout(binding = 1, std430) writeonly buffer QcatBuf { float Qcat[]; };
layout(binding = 2, std430) writeonly buffer CacheBuf { float C[]; };
layout(binding = 3, std430) readonly buffer NormBuf { float Wn[]; };
STEP_BUFFER(4)

shared float part[256];

// Pairs (2i, 2i+1) of n_rot floats at Q[src ..] rotated by this position's angles into `dst` of Qcat
// (to_cache false) or C.
void rope_pairs(uint src, uint dst, bool to_cache) {
    for (uint i = gl_LocalInvocationIndex; i < p.n_rot / 2u; i += 256u) {
        const vec2 cs = rope_cs[i];
        const float a = Q[src + 2u * i], b = Q[src + 2u * i + 1u];
        const float y0 = a * cs.x - b * cs.y, y1 = a * cs.y + b * cs.x;
        if (to_cache) {
            C[dst + 2u * i] = y0;
            C[dst + 2u * i + 1u] = y1;
        } else {
            Qcat[dst + 2u * i] = y0;
            Qcat[dst + 2u * i + 1u] = y1;
        }
    }
}

void main() {
    const uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex;
    if (h < p.n_head) {
        rope_pairs(p.q_off + h * p.q_head_stride, p.qcat_off + h * p.qcat_head_stride, false);
        return;
    }
    const uint row = p.cache_off + step.pos * p.cache_row;
    float ss = 0.0;
    for (uint i = tid; i < p.kv_lora; i += 256u) ss += Q[p.kva_off + i] * Q[p.kva_off + i];
    part[tid] = ss;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.kv_lora) + p.eps);
    for (uint i = tid; i < p.kv_lora; i += 256u) C[row + i] = Q[p.kva_off + i] * scale * Wn[p.norm_off + i];
    rope_pairs(p.kva_off + p.kv_lora, row + p.kv_lora, true);
}
