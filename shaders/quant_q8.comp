#version 450
// The int8 mirror of a float vector (shared.h QuantQ8Push): one invocation per block of 32, d = max|x| /
// 127, q = round(x / d), and d * sum(q) (the K-quants' min term: the sum of the x the products see, as
// the CPU's Q8_K block sums are). Rounds as the CPU's Q8 quantization does (engine/tensor/quantize.cpp):
// nearest, ties away from zero.
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = QUANT_Q8_THREADS) in;
layout(binding = 0, std430) readonly buffer XBuf { vec4 X4[]; };
layout(binding = 1, std430) writeonly buffer QBuf { uvec4 Q4[]; };
layout(binding = 1, std430) writeonly buffer SBuf { vec2 S2[]; };
layout(push_constant) uniform PC { QuantQ8Push p; };

uint pack4(vec4 q) {
    const ivec4 i = ivec4(q);
    return uint(i.x & 0xFF) | (uint(i.y & 0xFF) << 8) | (uint(i.z & 0xFF) << 16) | (uint(i.w & 0xFF) << 24);
}

void main() {
    const uint b = gl_GlobalInvocationID.x;
    if (32u * b >= p.n) return;
    const uint x4 = (p.x_off + 32u * b) / 4u;
    vec4 v[8];
    float amax = 0.0;
    [[unroll]] for (uint i = 0u; i < 8u; ++i) {
        v[i] = X4[x4 + i];
        const vec4 a = abs(v[i]);
        amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
    }
    const float d = amax / 127.0, id = amax > 0.0 ? 127.0 / amax : 0.0;
    uint w[8];
    float sum = 0.0;  // of integers below 2^24: exact
    [[unroll]] for (uint i = 0u; i < 8u; ++i) {
        const vec4 s = v[i] * id, q = sign(s) * floor(abs(s) + 0.5);
        w[i] = pack4(q);
        sum += (q.x + q.y) + (q.z + q.w);
    }
    const uint q4 = (p.x_off + 32u * b) / 16u;  // 32 int8: two uvec4
    Q4[q4] = uvec4(w[0], w[1], w[2], w[3]);
    Q4[q4 + 1u] = uvec4(w[4], w[5], w[6], w[7]);
    S2[p.s_off + b] = vec2(d, d * sum);
}
