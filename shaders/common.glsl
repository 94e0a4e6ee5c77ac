// Declarations every shader shares: extensions, the step buffer, reductions.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "shared.h"

// Per-token values the host writes before each submit (StepHeader, then cos/sin of the RoPE angles).
#define STEP_BUFFER(b) \
    layout(binding = b, std430) readonly buffer StepBuf { StepHeader step; vec2 rope_cs[]; };

// Sum over each aligned group of 32 invocations (a row of a matvec workgroup). Butterfly shuffles
// within the subgroup; subgroups narrower than 32 (lavapipe: 8) finish through shared memory `red`,
// which the includer declares with one float per invocation. Every invocation must call it.
#define DEFINE_REDUCE32(red)                                                            \
    float reduce32(float s) {                                                          \
        for (uint o = 16u; o > 0u; o >>= 1)                                            \
            if (o < gl_SubgroupSize) s += subgroupShuffleXor(s, o);                    \
        if (gl_SubgroupSize >= 32u) return s;                                          \
        red[gl_LocalInvocationIndex] = s;                                              \
        barrier();                                                                     \
        const uint base = gl_LocalInvocationIndex & ~31u;                              \
        float t = 0.0;                                                                 \
        for (uint i = 0u; i < 32u; i += gl_SubgroupSize) t += red[base + i];           \
        barrier();                                                                     \
        return t;                                                                      \
    }
