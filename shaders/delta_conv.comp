#version 450
// GatedDeltaNet inputs of one token (qwen35moe.cpp's conv1d_step + delta_inputs): the causal
// depthwise conv1d of each qkv channel over its kernel-1 saved inputs and this one, silu, q and k
// L2-normalised per key head (q scaled), the saved inputs shifted; beta and decay from b and a.
// Each channel is read and written by one invocation, so the conv output replaces its input in place.
#include "common.glsl"

layout(local_size_x = DELTA_THREADS) in;
layout(push_constant) uniform PC { DeltaConvPush p; };
layout(binding = 0, std430) buffer XBuf { float X[]; };
layout(binding = 1, std430) buffer StateBuf { float St[]; };
layout(binding = 2, std430) readonly buffer PBuf { float P[]; };

shared float part[DELTA_THREADS];

// silu(w_c . [saved inputs of c, x_c]); the saved inputs move one back and x_c becomes the newest.
float conv_channel(uint c, uint conv_dim) {
    const uint hist = p.kernel - 1u;
    const uint w = p.conv_w_off + c * p.kernel;
    const float x = X[p.x_off + c];
    float acc = P[w + hist] * x;
    for (uint j = 0u; j < hist; ++j) acc += P[w + j] * St[p.state_off + j * conv_dim + c];
    for (uint j = 0u; j + 1u < hist; ++j) St[p.state_off + j * conv_dim + c] = St[p.state_off + (j + 1u) * conv_dim + c];
    if (hist > 0u) St[p.state_off + (hist - 1u) * conv_dim + c] = x;
    return acc / (1.0 + exp(-acc));
}

void main() {
    const uint g = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex;
    const uint kd = p.n_k * p.dk, conv_dim = 2u * kd + p.n_v * p.dv;
    const uint v_groups = (p.n_v * p.dv + DELTA_THREADS - 1u) / DELTA_THREADS;
    if (g < 2u * p.n_k) {  // a q or k head: conv, silu, then x / sqrt(sum x^2 + eps)
        float y[DELTA_DK_MAX / DELTA_THREADS];
        float ss = 0.0;
        for (uint i = tid, n = 0u; i < p.dk; i += DELTA_THREADS, ++n) {
            y[n] = conv_channel(g * p.dk + i, conv_dim);
            ss += y[n] * y[n];
        }
        part[tid] = ss;
        barrier();
        for (uint s = DELTA_THREADS / 2u; s > 0u; s >>= 1) {
            if (tid < s) part[tid] += part[tid + s];
            barrier();
        }
        const float scale = inversesqrt(part[0] + p.l2_eps) * (g < p.n_k ? p.q_scale : 1.0);
        for (uint i = tid, n = 0u; i < p.dk; i += DELTA_THREADS, ++n) X[p.x_off + g * p.dk + i] = y[n] * scale;
    } else if (g < 2u * p.n_k + v_groups) {  // v channels: conv, silu
        const uint c = 2u * kd + (g - 2u * p.n_k) * DELTA_THREADS + tid;
        if (c < conv_dim) X[p.x_off + c] = conv_channel(c, conv_dim);
    } else {  // beta_sigmoid, a_softplus, decay = exp(ssm_a * softplus(a + dt_bias))
        for (uint h = tid; h < p.n_v; h += DELTA_THREADS) {
            const float b = X[p.ba_off + h];
            X[p.ba_off + h] = 1.0 / (1.0 + exp(-b));
            const float t = X[p.ba_off + p.n_v + h] + P[p.dt_off + h];
            const float sp = t > 20.0 ? t : log(1.0 + exp(t));
            X[p.ba_off + p.n_v + h] = exp(P[p.a_off + h] * sp);
        }
    }
}
