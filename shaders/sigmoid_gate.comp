#version 450
// y (+)= a * sigmoid(g), elementwise or with one gate for all: the gated attention's output gate and
// the shared expert's gate added to the residual stream. Workgroup row y: row y of a prompt batch.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { SigmoidGatePush p; };
layout(binding = 0, std430) readonly buffer ABuf { float A[]; };
layout(binding = 1, std430) readonly buffer GBuf { float G[]; };
layout(binding = 2, std430) buffer YBuf { float Y[]; };

void main() {
    const uint i = gl_GlobalInvocationID.x, r = gl_WorkGroupID.y;
    if (i >= p.n) return;
    const float g = G[p.g_off + r * p.g_row_stride + ((p.flags & SG_SCALAR) != 0u ? 0u : i)];
    const float y = A[p.a_off + r * p.a_row_stride + i] * (1.0 / (1.0 + exp(-g)));
    const uint o = p.y_off + r * p.y_row_stride + i;
    Y[o] = (p.flags & SG_ACCUMULATE) != 0u ? Y[o] + y : y;
}
