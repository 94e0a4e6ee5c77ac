#version 450
// Embedding lookup: y = W[row] dequantized (cols), row = step.token or the push constant, or for a
// prompt batch (GETROWS_STEP_TOKENS) row j = workgroup y the token of step header j. One invocation per
// chunk of the row.
#include "common.glsl"
#define W_BINDING 0
#include "quants.glsl"

layout(local_size_x = 64) in;
layout(push_constant) uniform PC { GetrowsPush p; };
layout(binding = 1, std430) writeonly buffer YBuf { float Y[]; };
STEP_BUFFER(2)
layout(binding = 2, std430) readonly buffer StepWords { uint SW[]; };  // the batch's headers, STEP_WORDS apart

void main() {
    const uint c = gl_GlobalInvocationID.x;
    if (c >= p.cols / CH) return;
    const uint j = gl_WorkGroupID.y;
    const uint r = (p.flags & GETROWS_STEP_TOKENS) != 0u ? SW[j * STEP_WORDS + 2u]  // StepHeader.token
                   : (p.flags & GETROWS_STEP_TOKEN) != 0u ? step.token : p.row;
    const uint yo = p.y_off + ((p.flags & GETROWS_STEP_TOKENS) != 0u ? j * p.y_stride : 0u);
    float w[CH];
    dequant_chunk(p.w_off + r * row_units(p.cols), c, w);
    for (uint e = 0u; e < CH; ++e) Y[yo + c * CH + e] = w[e];
}
