#version 450
// q and k heads: x = x / rms(x) * w, then the NeoX rotation of dims (i, i + n_rot/2) by this
// position's angles (step.rope_cs). Workgroups [0, n_head) take q heads, the rest k heads.
#include "common.glsl"

layout(local_size_x = 128) in;
layout(push_constant) uniform PC { QkNormRopePush p; };
layout(binding = 0, std430) buffer QBuf { float Q[]; };
layout(binding = 1, std430) buffer KBuf { float K[]; };
layout(binding = 2, std430) readonly buffer WBuf { float Wn[]; };
STEP_BUFFER(3)

shared float v[512];
shared float part[128];

void main() {
    const uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex;
    const bool is_q = h < p.n_head;
    const uint o = is_q ? p.q_off + h * p.head_dim : p.k_off + step.pos * p.k_pos_stride + (h - p.n_head) * p.head_dim;
    const uint wo = is_q ? p.qn_off : p.kn_off;
    float ss = 0.0;
    for (uint i = tid; i < p.head_dim; i += 128u) {
        const float x = is_q ? Q[o + i] : K[o + i];
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
    for (uint i = tid; i < p.head_dim; i += 128u) v[i] = v[i] * scale * Wn[wo + i];
    barrier();
    const uint half_rot = p.n_rot / 2u;
    for (uint i = tid; i < p.head_dim; i += 128u) {
        float y = v[i];
        if (i < half_rot) y = v[i] * rope_cs[i].x - v[i + half_rot] * rope_cs[i].y;
        else if (i < p.n_rot) y = v[i - half_rot] * rope_cs[i - half_rot].y + v[i] * rope_cs[i - half_rot].x;
        if (is_q) Q[o + i] = y;
        else K[o + i] = y;
    }
}
