#version 450
// y = x / sqrt(mean(x^2) + eps) * w over each of n_rows rows of n (one workgroup per row).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { RmsnormPush p; };
layout(binding = 0, std430) buffer XBuf { float X[]; };
layout(binding = 1, std430) buffer YBuf { float Y[]; };
layout(binding = 2, std430) readonly buffer WBuf { float Wn[]; };
STEP_BUFFER(3)

shared float part[256];

void main() {
    const uint tid = gl_LocalInvocationIndex;
    uint shift = gl_WorkGroupID.x * p.row_stride;
    if ((p.flags & NORM_POS) != 0u) shift += step.pos * p.pos_stride;
    const uint xo = p.x_off + shift, yo = p.y_off + shift;
    float ss = 0.0;
    for (uint i = tid; i < p.n; i += 256u) ss += X[xo + i] * X[xo + i];
    part[tid] = ss;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.n) + p.eps);
    for (uint i = tid; i < p.n; i += 256u) Y[yo + i] = X[xo + i] * scale * Wn[p.w_off + i];
}
