#version 450
// The routed experts' weights where the router's logits were summed without rmsnorm's scale (a folded
// router, GpuModel::fold_router(): its matvecs run beside the attention and the output projection, so
// the scale of the residual they add up to is not known yet): w_i = exp(s (l_i - l_0)) / sum_j exp(s
// (l_j - l_0)) over the k chosen (ids largest first, l_0 the largest), s = 1 / rms from the residual's
// block sums of squares (the output projection's block tails). One workgroup (shared.h RouteWeightsPush).
#include "common.glsl"

layout(local_size_x = ROUTE_W_THREADS) in;
layout(push_constant) uniform PC { RouteWeightsPush p; };
layout(binding = 0, std430) buffer RBuf { float R[]; };
layout(binding = 0, std430) readonly buffer RInt { int Ri[]; };
layout(binding = 1, std430) readonly buffer SsBuf { float Ss[]; };

shared float red[ROUTE_W_THREADS];

float wg_sum(float v) {  // every invocation gets it; uniform control flow
    const uint tid = gl_LocalInvocationIndex;
    red[tid] = v;
    barrier();
    for (uint h = ROUTE_W_THREADS / 2u; h > 0u; h >>= 1) {
        if (tid < h) red[tid] += red[tid + h];
        barrier();
    }
    const float t = red[0];
    barrier();
    return t;
}

void main() {
    const uint tid = gl_LocalInvocationIndex;
    float ss = 0.0;
    for (uint b = tid; b < p.n_blocks; b += ROUTE_W_THREADS) ss += Ss[p.ss_off + b];
    // the chosen logits (k <= MV_TOPK_MAX_K = 64): one per invocation, loaded beside the sums of squares
    const float l = tid < p.k ? R[Ri[p.ids_off + tid]] : 0.0;
    const float l0 = R[Ri[p.ids_off]];
    const float s = inversesqrt(wg_sum(ss) / float(p.n) + p.eps);
    const float e = tid < p.k ? exp(s * (l - l0)) : 0.0;
    const float z = wg_sum(e);
    if (tid < p.k) R[p.w_off + tid] = e / z;
}
