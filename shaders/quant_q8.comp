#version 450
// The int8 mirror of a float vector (shared.h QuantQ8Push): an invocation per vec4, 8 per block of 32
// (max |x| and sum q through shuffles, as matvec.comp's norm tail writes hn's mirror), d = max|x| /
// 127, q = round(x / d), and d * sum(q) (the K-quants' min term: the sum of the x the products see,
// as the CPU's Q8_K block sums are). Rounds as the CPU's Q8 quantization does
// (engine/tensor/quantize.cpp): nearest, ties away from zero.
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
layout(local_size_x = QUANT_Q8_THREADS) in;
layout(binding = 0, std430) readonly buffer XBuf { vec4 X4[]; };
layout(binding = 1, std430) writeonly buffer QBuf { uint Q[]; };
layout(binding = 1, std430) writeonly buffer SBuf { vec2 S2[]; };
layout(push_constant) uniform PC { QuantQ8Push p; };
#include "q8_block.glsl"

void main() {
    const uint t = gl_GlobalInvocationID.x, i = p.x_off / 4u + t;  // vec4 index; n is a multiple of 32
    const bool inside = 4u * t < p.n;
    const vec4 v = inside ? X4[i] : vec4(0.0);
    vec2 ds;
    const uint q = q8_quantize(v, ds);
    if (!inside) return;
    Q[i] = q;
    if ((t & 7u) == 0u) S2[p.s_off + i / 8u] = ds;
}
