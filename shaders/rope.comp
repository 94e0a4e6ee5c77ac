#version 450
// NeoX RoPE in place: in each head, dims i and i + n_rot/2 rotate by angle i of this position, whose
// cos/sin the host computed in double precision (step.rope_cs), as the CPU reference does.
#include "common.glsl"

layout(local_size_x = 64) in;
layout(push_constant) uniform PC { RopePush p; };
layout(binding = 0, std430) buffer XBuf { float X[]; };
STEP_BUFFER(1)

void main() {
    const uint half_rot = p.n_rot / 2u;
    const uint i = gl_GlobalInvocationID.x, h = gl_GlobalInvocationID.y;
    if (i >= half_rot || h >= p.n_heads) return;
    uint o = p.x_off + h * p.head_stride;
    if ((p.flags & ROPE_POS) != 0u) o += step.pos * p.pos_stride;
    const vec2 cs = rope_cs[i];
    const float a = X[o + i], b = X[o + i + half_rot];
    X[o + i] = a * cs.x - b * cs.y;
    X[o + i + half_rot] = a * cs.y + b * cs.x;
}
