// Declarations every shader shares: extensions, the step buffer.
#extension GL_KHR_shader_subgroup_basic : require
#include "shared.h"

// Per-token values the host writes before each submit (StepHeader, then cos/sin of the RoPE angles).
#define STEP_BUFFER(b) \
    layout(binding = b, std430) readonly buffer StepBuf { StepHeader step; vec2 rope_cs[]; };
