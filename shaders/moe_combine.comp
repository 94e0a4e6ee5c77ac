#version 450
// x += sum_j w[j] * outs[j] over the k routed experts' down-projection outputs (n each): the MoE
// layer's weighted sum and the residual add in one pass; with COMBINE_NORM (one workgroup) also
// hn = x / rms(x) * norm. Without it, workgroup row y takes row y of a batch (prompts).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { MoeCombinePush p; };
layout(binding = 0, std430) buffer XBuf { float X[]; };
layout(binding = 1, std430) readonly buffer OutsBuf { float outs[]; };
layout(binding = 2, std430) readonly buffer WBuf { float Wt[]; };
layout(binding = 3, std430) writeonly buffer HnBuf { float HN[]; };
layout(binding = 4, std430) readonly buffer NBuf { float Wn[]; };

shared float part[256];

// Element i of row r (the row strides are 0 with COMBINE_NORM).
float combined(uint i, uint r) {
    float y = X[p.x_off + r * p.x_row_stride + i];
    for (uint j = 0u; j < p.k; ++j)
        y += Wt[p.w_off + r * p.w_row_stride + j] * outs[p.outs_off + r * p.outs_row_stride + j * p.n + i];
    return y;
}

void main() {
    if ((p.flags & COMBINE_NORM) == 0u) {
        const uint i = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
        if (i < p.n) X[p.x_off + r * p.x_row_stride + i] = combined(i, r);
        return;
    }
    const uint tid = gl_LocalInvocationIndex;
    float ss = 0.0;
    for (uint i = tid; i < p.n; i += 256u) {
        const float y = combined(i, 0u);
        X[p.x_off + i] = y;
        ss += y * y;
    }
    part[tid] = ss;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.n) + p.eps);
    for (uint i = tid; i < p.n; i += 256u) HN[p.hn_off + i] = X[p.x_off + i] * scale * Wn[p.norm_off + i];
}
