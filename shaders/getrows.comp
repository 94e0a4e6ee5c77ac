#version 450
// Embedding lookup: y = W[row] dequantized (cols), row = step.token or the push constant.
// One invocation per chunk of the row.
#include "common.glsl"
#define W_BINDING 0
#include "quants.glsl"

layout(local_size_x = 64) in;
layout(push_constant) uniform PC { GetrowsPush p; };
layout(binding = 1, std430) writeonly buffer YBuf { float Y[]; };
STEP_BUFFER(2)

void main() {
    const uint c = gl_GlobalInvocationID.x;
    if (c >= p.cols / CH) return;
    const uint r = (p.flags & GETROWS_STEP_TOKEN) != 0u ? step.token : p.row;
    float w[CH];
    dequant_chunk(p.w_off + r * row_units(p.cols), c, w);
    for (uint e = 0u; e < CH; ++e) Y[p.y_off + c * CH + e] = w[e];
}
