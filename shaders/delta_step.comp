#version 450
// The gated delta rule for one value head per workgroup (blocks.cpp gated_delta_step, then
// qwen35moe.cpp's gated norm). Columns j of S (dk, dv) are independent: invocation j decays column j,
// reads what it predicts for k, writes the delta and reads the output with q, in the CPU's order.
#include "common.glsl"

layout(local_size_x = DELTA_THREADS) in;
layout(push_constant) uniform PC { DeltaStepPush p; };
layout(binding = 0, std430) readonly buffer XBuf { float X[]; };
layout(binding = 1, std430) buffer SBuf { float S[]; };
layout(binding = 2, std430) readonly buffer PBuf { float P[]; };
layout(binding = 3, std430) writeonly buffer OBuf { float O[]; };

shared float qs[DELTA_DK_MAX], ks[DELTA_DK_MAX], os[DELTA_DV_MAX];
shared float part[DELTA_THREADS];

void main() {
    const uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex;
    const uint kh = p.tiled != 0u ? h % p.n_k : h / (p.n_v / p.n_k);
    const uint kd = p.n_k * p.dk;
    for (uint i = tid; i < p.dk; i += DELTA_THREADS) {
        qs[i] = X[p.qkv_off + kh * p.dk + i];
        ks[i] = X[p.qkv_off + kd + kh * p.dk + i];
    }
    barrier();
    const float beta = X[p.ba_off + h], decay = X[p.ba_off + p.n_v + h];
    const uint s0 = p.s_off + h * p.dk * p.dv;
    float ss = 0.0;
    for (uint j = tid; j < p.dv; j += DELTA_THREADS) {
        float acc = 0.0;
        for (uint i = 0u; i < p.dk; ++i) {
            const float s = S[s0 + i * p.dv + j] * decay;
            acc += s * ks[i];
        }
        const float d = (X[p.qkv_off + 2u * kd + h * p.dv + j] - acc) * beta;
        float o = 0.0;
        for (uint i = 0u; i < p.dk; ++i) {
            const float s = S[s0 + i * p.dv + j] * decay + ks[i] * d;
            S[s0 + i * p.dv + j] = s;
            o += s * qs[i];
        }
        os[j] = o;
        ss += o * o;
    }
    part[tid] = ss;
    barrier();
    for (uint s = DELTA_THREADS / 2u; s > 0u; s >>= 1) {
        if (tid < s) part[tid] += part[tid + s];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.dv) + p.eps);
    for (uint j = tid; j < p.dv; j += DELTA_THREADS) {
        const float z = X[p.z_off + h * p.dv + j];
        O[p.o_off + h * p.dv + j] = os[j] * scale * P[p.norm_off + j] * (z / (1.0 + exp(-z)));
    }
}
