#version 450
// x += sum_j w[j] * outs[j] over the k routed experts' down-projection outputs (n each): the MoE
// layer's weighted sum and the residual add in one pass.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { MoeCombinePush p; };
layout(binding = 0, std430) buffer XBuf { float X[]; };
layout(binding = 1, std430) readonly buffer OutsBuf { float outs[]; };
layout(binding = 2, std430) readonly buffer WBuf { float Wt[]; };

void main() {
    const uint i = gl_GlobalInvocationID.x;
    if (i >= p.n) return;
    float y = 0.0;
    for (uint j = 0u; j < p.k; ++j) y += Wt[p.w_off + j] * outs[p.outs_off + j * p.n + i];
    X[p.x_off + i] += y;
}
