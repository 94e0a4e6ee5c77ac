#version 450
// y (+)= a * sigmoid(g), elementwise or with one gate for all: the gated attention's output gate and
// the shared expert's gate added to the residual stream.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { SigmoidGatePush p; };
layout(binding = 0, std430) readonly buffer ABuf { float A[]; };
layout(binding = 1, std430) readonly buffer GBuf { float G[]; };
layout(binding = 2, std430) buffer YBuf { float Y[]; };

void main() {
    const uint i = gl_GlobalInvocationID.x;
    if (i >= p.n) return;
    const float g = G[p.g_off + ((p.flags & SG_SCALAR) != 0u ? 0u : i)];
    const float y = A[p.a_off + i] * (1.0 / (1.0 + exp(-g)));
    Y[p.y_off + i] = (p.flags & SG_ACCUMULATE) != 0u ? Y[p.y_off + i] + y : y;
}
