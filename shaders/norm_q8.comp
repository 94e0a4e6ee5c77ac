#version 450
// hn = x / sqrt(mean(x^2) + eps) * w over one vector of n (a multiple of 4), and with NORMQ_MIRROR its
// int8 mirror (quant_q8.comp's blocks): the residual stream's next norm as a dispatch of its own. One
// workgroup of NORMQ_THREADS; each invocation issues up to NORMQ_LOADS vec4 loads of x and of w
// before it uses any, so up to 8192 floats take one round of L2 latency (the matvec's norm tail, 64-128
// invocations in the last workgroup, took 2-4 rounds each way and an atomic count: 7-12 us on an
// H100, this 6; with 4 loads, 5120 floats took two rounds: 7.8 us).
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : enable
layout(local_size_x = NORMQ_THREADS) in;
layout(push_constant) uniform PC { NormQ8Push p; };
layout(binding = 0, std430) readonly buffer XBuf { vec4 X4[]; };
layout(binding = 1, std430) writeonly buffer YBuf { vec4 Y4[]; };
layout(binding = 2, std430) readonly buffer WBuf { vec4 Wn4[]; };
layout(binding = 3, std430) writeonly buffer QBuf { uint Q[]; };
layout(binding = 3, std430) writeonly buffer SBuf { vec2 S2[]; };

#include "q8_block.glsl"
#define NORMQ_LOADS 8u
shared float red[NORMQ_THREADS / 8u];  // one per subgroup of 8 or more

void main() {
    const uint tid = gl_LocalInvocationIndex, n4 = p.n / 4u, round = NORMQ_THREADS * NORMQ_LOADS;
    // The first round's x and w stay in registers (all of a vector of up to 8192 floats): one round
    // of latency before the sum, none after it.
    vec4 v[NORMQ_LOADS], w[NORMQ_LOADS];
    float ss = 0.0;
    [[unroll]] for (uint u = 0u; u < NORMQ_LOADS; ++u) {
        const uint i = u * NORMQ_THREADS + tid;
        v[u] = i < n4 ? X4[p.x_off / 4u + i] : vec4(0.0);
        w[u] = i < n4 ? Wn4[p.w_off / 4u + i] : vec4(0.0);
    }
    [[unroll]] for (uint u = 0u; u < NORMQ_LOADS; ++u) ss += dot(v[u], v[u]);
    for (uint i0 = round; i0 < n4; i0 += round) {  // longer vectors
        vec4 r[NORMQ_LOADS];
        [[unroll]] for (uint u = 0u; u < NORMQ_LOADS; ++u) {
            const uint i = i0 + u * NORMQ_THREADS + tid;
            r[u] = i < n4 ? X4[p.x_off / 4u + i] : vec4(0.0);
        }
        [[unroll]] for (uint u = 0u; u < NORMQ_LOADS; ++u) ss += dot(r[u], r[u]);
    }
    ss = subgroupAdd(ss);
    if (subgroupElect()) red[gl_SubgroupID] = ss;
    barrier();
    float total = 0.0;
    for (uint s = 0u; s < gl_NumSubgroups; ++s) total += red[s];
    const float scale = inversesqrt(total / float(p.n) + p.eps);
    const bool mirror = (p.flags & NORMQ_MIRROR) != 0u;
    for (uint i0 = 0u; i0 < n4; i0 += round) {
        if (i0 > 0u) {
            [[unroll]] for (uint u = 0u; u < NORMQ_LOADS; ++u) {
                const uint i = min(i0 + u * NORMQ_THREADS + tid, n4 - 1u);
                v[u] = X4[p.x_off / 4u + i];
                w[u] = Wn4[p.w_off / 4u + i];
            }
        }
        [[unroll]] for (uint u = 0u; u < NORMQ_LOADS; ++u) {
            const uint i = i0 + u * NORMQ_THREADS + tid;
            const vec4 h = v[u] * scale * w[u];
            if (i < n4) Y4[p.y_off / 4u + i] = h;
            if (!mirror) continue;  // uniform
            vec2 ds;  // a block of 32 = 8 consecutive invocations (n a multiple of 32 with the mirror)
            const uint q = q8_quantize(h, ds);
            if (i >= n4) continue;
            const uint e4 = p.y_off / 4u + i;
            Q[e4] = q;
            if ((tid & 7u) == 0u) S2[p.q_soff + e4 / 8u] = ds;
        }
    }
}
