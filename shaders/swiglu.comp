#version 450
// y = silu(g) * u, elementwise (the SwiGLU between an FFN's gate/up and down projections).
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { SwigluPush p; };
layout(binding = 0, std430) readonly buffer GBuf { float G[]; };
layout(binding = 1, std430) readonly buffer UBuf { float U[]; };
layout(binding = 2, std430) writeonly buffer YBuf { float Y[]; };

void main() {
    const uint i = gl_GlobalInvocationID.x;
    if (i >= p.n) return;
    const float g = G[p.g_off + i];
    Y[p.y_off + i] = g / (1.0 + exp(-g)) * U[p.u_off + i];
}
