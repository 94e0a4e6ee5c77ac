#version 450
#extension GL_EXT_control_flow_attributes : enable
// y[b] = the largest of x[LOGIT_BLOCK b .. + LOGIT_BLOCK) (of n), NaN ignored (-inf where a block has no number):
// the logits' block maxima, read back beside them so that the host's top-k scan skips the blocks
// below its threshold without reading them (engine/sampler.h kLogitBlock). One invocation a block.
#include "common.glsl"

layout(local_size_x = 64) in;
layout(push_constant) uniform PC { BlockMaxPush p; };
layout(binding = 0, std430) readonly buffer XBuf { float X[]; };
layout(binding = 0, std430) readonly buffer XBuf4 { vec4 X4[]; };
layout(binding = 1, std430) writeonly buffer YBuf { float Y[]; };

void main() {
    const uint b = gl_GlobalInvocationID.x, i0 = b * LOGIT_BLOCK;
    if (i0 >= p.n) return;
    float m = -1.0 / 0.0;
    if ((p.x_off & 3u) == 0u && i0 + LOGIT_BLOCK <= p.n) {  // whole block, 16-byte aligned: all loads at once
        vec4 v[LOGIT_BLOCK / 4];
        [[unroll]] for (uint j = 0u; j < LOGIT_BLOCK / 4; ++j) v[j] = X4[(p.x_off + i0) / 4u + j];
        [[unroll]] for (uint j = 0u; j < LOGIT_BLOCK / 4; ++j)
            [[unroll]] for (uint c = 0u; c < 4u; ++c) m = v[j][c] > m ? v[j][c] : m;  // NaN never above
    } else {
        for (uint i = i0; i < min(i0 + LOGIT_BLOCK, p.n); ++i) {
            const float v = X[p.x_off + i];
            m = v > m ? v : m;
        }
    }
    Y[p.y_off + b] = m;
}
