#version 450
// One load per page of a buffer range (shared.h TouchPush): the translations into the TLBs ahead of
// the dispatch that streams the range. The loads are kept by a store under a condition the compiler
// cannot rule out (and that practically never holds).
#include "common.glsl"

layout(local_size_x = TOUCH_THREADS) in;
layout(push_constant) uniform PC { TouchPush p; };
layout(binding = 0, std430) readonly buffer SrcBuf { uvec4 S[]; };
layout(binding = 1, std430) writeonly buffer SinkBuf { uint sink[]; };

void main() {
    uvec4 acc = uvec4(0u);
    const uint step = gl_NumWorkGroups.x * TOUCH_THREADS * p.stride;
    for (uint i = p.off + gl_GlobalInvocationID.x * p.stride; i < p.end; i += step) acc ^= S[i];
    if (acc.x == 0x9e3779b9u && acc.y == 0x7f4a7c15u && acc.z == 0x94d049bbu) sink[0] = acc.w;
}
