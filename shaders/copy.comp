#version 450
// Streams src to dst in 16-byte units: measures the memory bandwidth shaders can reach.
#include "common.glsl"

layout(local_size_x = 256) in;
layout(push_constant) uniform PC { CopyPush p; };
layout(binding = 0, std430) readonly buffer SBuf { uvec4 S[]; };
layout(binding = 1, std430) writeonly buffer DBuf { uvec4 D[]; };

void main() {
    const uint stride = gl_NumWorkGroups.x * 256u;
    for (uint i = gl_GlobalInvocationID.x; i < p.n; i += stride) D[p.dst_off + i] = S[p.src_off + i];
}
