#version 450
// deepseek2's rope (pairs (2i, 2i+1), engine/models/deepseek2.cpp rope()) and its latent cache row
// (cache_row()) in one dispatch: workgroup h < n_head ropes head h's q_pe into its qcat row, workgroup
// n_head writes this position's cache row [rmsnorm(c) * w | rope(k_pe)] (shared.h MlaRopePush).
// Workgroup row y: token y of a prompt batch (its rows and step header further on; decode: y = 0).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { MlaRopePush p; };
layout(binding = 0, std430) readonly buffer QBuf { float Q[]; };  // q and kva
layout(binding = 1, std430) writeonly buffer QcatBuf { float Qcat[]; };
layout(binding = 2, std430) writeonly buffer CacheBuf { float C[]; };
layout(binding = 3, std430) readonly buffer NormBuf { float Wn[]; };
layout(binding = 4, std430) readonly buffer StepsU { uint SU[]; };
layout(binding = 4, std430) readonly buffer StepsV { vec2 SV[]; };

shared float part[256];

// Pairs (2i, 2i+1) of n_rot floats at Q[src ..] rotated by the angles at SV[cs ..] into `dst` of Qcat
// (to_cache false) or C.
void rope_pairs(uint src, uint dst, uint cs, bool to_cache) {
    for (uint i = gl_LocalInvocationIndex; i < p.n_rot / 2u; i += 256u) {
        const vec2 r = SV[cs + i];
        const float a = Q[src + 2u * i], b = Q[src + 2u * i + 1u];
        const float y0 = a * r.x - b * r.y, y1 = a * r.y + b * r.x;
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
    const uint h = gl_WorkGroupID.x, j = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint cs = j * p.step_words / 2u + 2u;  // this token's cos/sin pairs (StepHeader is 2 vec2)
    if (h < p.n_head) {
        rope_pairs(p.q_off + j * p.q_tok_stride + h * p.q_head_stride, p.qcat_off + j * p.qcat_tok_stride + h * p.qcat_head_stride,
                   cs, false);
        return;
    }
    const uint row = p.cache_off + SU[j * p.step_words] * p.cache_row, kva = p.kva_off + j * p.kva_tok_stride;
    float ss = 0.0;
    for (uint i = tid; i < p.kv_lora; i += 256u) ss += Q[kva + i] * Q[kva + i];
    part[tid] = ss;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.kv_lora) + p.eps);
    for (uint i = tid; i < p.kv_lora; i += 256u) C[row + i] = Q[kva + i] * scale * Wn[p.norm_off + i];
    rope_pairs(kva + p.kv_lora, row + p.kv_lora, cs, true);
}
