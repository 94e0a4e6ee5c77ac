#version 450
// The gated delta rule (blocks.cpp gated_delta_step), then qwen35moe.cpp's gated norm, in two
// dispatches:
//   delta_step  workgroup (h, g): value head h's columns g DELTA_COLS .. + DELTA_COLS - 1 of S (dk, dv).
//               Columns are independent; each is split over DELTA_KSPLIT invocations by rows (row i to
//               invocation i % DELTA_KSPLIT), which hold their rows of it in registers: S is read once
//               and written once. Neighbouring invocations take neighbouring columns of one row, so a
//               warp's loads are contiguous. Writes o = S^T q raw.
//   delta_norm  (-DDELTA_NORM) workgroup h: o = rmsnorm(o) * ssm_norm * silu(z), in place.
// Many workgroups per head, not one: the 32 heads of Qwen3.5 as 32 workgroups took 64 us on the H200.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

#define DELTA_COLS (DELTA_STEP_THREADS / DELTA_KSPLIT)
#define ROWS_MAX (DELTA_DK_MAX / DELTA_KSPLIT)

layout(local_size_x = DELTA_STEP_THREADS) in;
layout(push_constant) uniform PC { DeltaStepPush p; };
layout(binding = 0, std430) readonly buffer XBuf { float X[]; };
#ifndef DELTA_NORM
layout(binding = 1, std430) buffer SBuf { float S[]; };
#else
layout(binding = 1, std430) readonly buffer PBuf { float P[]; };
#endif
layout(binding = 2, std430) buffer OBuf { float O[]; };

shared float part[DELTA_STEP_THREADS];

#ifndef DELTA_NORM
shared float qs[DELTA_DK_MAX], ks[DELTA_DK_MAX];

// The sum of the DELTA_KSPLIT partial sums of this invocation's column (every invocation gets it).
float column_sum(float x, uint tid) {
    part[tid] = x;
    barrier();
    const uint c = tid % DELTA_COLS;
    float s = 0.0;
    for (uint r = 0u; r < DELTA_KSPLIT; ++r) s += part[r * DELTA_COLS + c];
    barrier();
    return s;
}

void main() {
    const uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex;
    const uint kh = p.tiled != 0u ? h % p.n_k : h / (p.n_v / p.n_k);
    const uint kd = p.n_k * p.dk;
    for (uint i = tid; i < p.dk; i += DELTA_STEP_THREADS) {
        qs[i] = X[p.qkv_off + kh * p.dk + i];
        ks[i] = X[p.qkv_off + kd + kh * p.dk + i];
    }
    barrier();
    const float beta = X[p.ba_off + h], decay = X[p.ba_off + p.n_v + h];
    const uint s0 = p.s_off + h * p.dk * p.dv, r0 = tid / DELTA_COLS;
    const uint j = gl_WorkGroupID.y * DELTA_COLS + tid % DELTA_COLS;
    const bool col = j < p.dv;
    float s[ROWS_MAX];
    float acc = 0.0;
    [[unroll]] for (uint n = 0u; n < ROWS_MAX; ++n) {
        const uint i = r0 + n * DELTA_KSPLIT;
        s[n] = col && i < p.dk ? S[s0 + i * p.dv + j] * decay : 0.0;
        if (i < p.dk) acc += s[n] * ks[i];
    }
    const float kv = column_sum(acc, tid);  // what the decayed state predicts for k
    const float d = col ? (X[p.qkv_off + 2u * kd + h * p.dv + j] - kv) * beta : 0.0;
    float o = 0.0;
    [[unroll]] for (uint n = 0u; n < ROWS_MAX; ++n) {
        const uint i = r0 + n * DELTA_KSPLIT;
        if (col && i < p.dk) {
            const float v = s[n] + ks[i] * d;
            S[s0 + i * p.dv + j] = v;
            o += v * qs[i];
        }
    }
    o = column_sum(o, tid);
    if (col && r0 == 0u) O[p.o_off + h * p.dv + j] = o;
}

#else
void main() {
    const uint h = gl_WorkGroupID.x, tid = gl_LocalInvocationIndex, o0 = p.o_off + h * p.dv;
    float ss = 0.0;
    for (uint j = tid; j < p.dv; j += DELTA_STEP_THREADS) ss += O[o0 + j] * O[o0 + j];
    part[tid] = ss;
    barrier();
    for (uint w = DELTA_STEP_THREADS / 2u; w > 0u; w >>= 1) {
        if (tid < w) part[tid] += part[tid + w];
        barrier();
    }
    const float scale = inversesqrt(part[0] / float(p.dv) + p.eps);
    for (uint j = tid; j < p.dv; j += DELTA_STEP_THREADS) {
        const float z = X[p.z_off + h * p.dv + j];
        O[o0 + j] = O[o0 + j] * scale * P[p.norm_off + j] * (z / (1.0 + exp(-z)));
    }
}
#endif
