#version 450
// A prompt batch's GatedDeltaNet (delta_conv.comp and delta_step.comp over n_tokens tokens, whose
// columns lie x_stride floats apart in the activations buffer), in four dispatches instead of three per
// token:
//   delta_conv_b    (DELTA_CONV) workgroup (g, t): token t's conv over its kernel-1 predecessors (the
//                   saved inputs for the first tokens), silu, q/k L2 norm, beta and decay, written beside
//                   the raw inputs (cx_off, cba_off), which the later tokens still read.
//   delta_conv_save (DELTA_SAVE) the saved inputs become the batch's last kernel-1 (after delta_conv_b).
//   delta_scan      (DELTA_SCAN) workgroup (h, g) as delta_step, its columns of S in registers for the
//                   whole batch: for each token in order, decay, the delta rule, o = S^T q (raw).
//   delta_norm_b    (DELTA_NORM) workgroup (h, t): o = rmsnorm(o) * ssm_norm * silu(z) in place.
// Each token's arithmetic is delta_conv's and delta_step's, in the same order.
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(push_constant) uniform PC { DeltaBatchPush p; };

#if defined(DELTA_CONV) || defined(DELTA_SAVE)
#ifdef DELTA_CONV
layout(local_size_x = DELTA_THREADS) in;
layout(binding = 0, std430) buffer XBuf { float X[]; };
layout(binding = 1, std430) readonly buffer StateBuf { float St[]; };
#else
layout(local_size_x = 256) in;
layout(binding = 0, std430) readonly buffer XBuf { float X[]; };
layout(binding = 1, std430) buffer StateBuf { float St[]; };
#endif

// Raw input of channel c of token m (m < 0: the saved inputs, row kernel - 1 + m).
float conv_in(uint c, uint conv_dim, int m) {
    return m >= 0 ? X[p.x_off + uint(m) * p.x_stride + c] : St[p.state_off + uint(int(p.kernel) - 1 + m) * conv_dim + c];
}
#endif

#ifdef DELTA_CONV
layout(binding = 2, std430) readonly buffer PBuf { float P[]; };
shared float part[DELTA_THREADS];

// silu(w_c . [inputs of tokens t - kernel + 1 .. t]), summed as delta_conv.comp does.
float conv_channel(uint c, uint conv_dim, uint t) {
    const uint hist = p.kernel - 1u;
    const uint w = p.conv_w_off + c * p.kernel;
    float acc = P[w + hist] * X[p.x_off + t * p.x_stride + c];
    for (uint j = 0u; j < hist; ++j) acc += P[w + j] * conv_in(c, conv_dim, int(t) - int(hist) + int(j));
    return acc / (1.0 + exp(-acc));
}

void main() {
    const uint g = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint kd = p.n_k * p.dk, conv_dim = 2u * kd + p.n_v * p.dv;
    const uint v_groups = (p.n_v * p.dv + DELTA_THREADS - 1u) / DELTA_THREADS;
    const uint o = p.cx_off + t * p.x_stride;
    if (g < 2u * p.n_k) {  // a q or k head
        float y[DELTA_DK_MAX / DELTA_THREADS];
        float ss = 0.0;
        for (uint i = tid, n = 0u; i < p.dk; i += DELTA_THREADS, ++n) {
            y[n] = conv_channel(g * p.dk + i, conv_dim, t);
            ss += y[n] * y[n];
        }
        part[tid] = ss;
        barrier();
        for (uint s = DELTA_THREADS / 2u; s > 0u; s >>= 1) {
            if (tid < s) part[tid] += part[tid + s];
            barrier();
        }
        const float scale = inversesqrt(part[0] + p.l2_eps) * (g < p.n_k ? p.q_scale : 1.0);
        for (uint i = tid, n = 0u; i < p.dk; i += DELTA_THREADS, ++n) X[o + g * p.dk + i] = y[n] * scale;
    } else if (g < 2u * p.n_k + v_groups) {  // v channels
        const uint c = 2u * kd + (g - 2u * p.n_k) * DELTA_THREADS + tid;
        if (c < conv_dim) X[o + c] = conv_channel(c, conv_dim, t);
    } else {  // beta, decay
        const uint ba = p.ba_off + t * p.x_stride, cba = p.cba_off + t * p.x_stride;
        for (uint h = tid; h < p.n_v; h += DELTA_THREADS) {
            X[cba + h] = 1.0 / (1.0 + exp(-X[ba + h]));
            const float a = X[ba + p.n_v + h] + P[p.dt_off + h];
            const float sp = a > 20.0 ? a : log(1.0 + exp(a));
            X[cba + p.n_v + h] = exp(P[p.a_off + h] * sp);
        }
    }
}
#endif

#ifdef DELTA_SAVE
void main() {  // invocation c: channel c's saved inputs, all read before any is written
    const uint c = gl_GlobalInvocationID.x, conv_dim = 2u * p.n_k * p.dk + p.n_v * p.dv, hist = p.kernel - 1u;
    if (c >= conv_dim) return;
    float v[DELTA_KERNEL_MAX];
    for (uint j = 0u; j < hist; ++j) v[j] = conv_in(c, conv_dim, int(p.n_tokens) - int(hist) + int(j));
    for (uint j = 0u; j < hist; ++j) St[p.state_off + j * conv_dim + c] = v[j];
}
#endif

#if defined(DELTA_SCAN) || defined(DELTA_NORM)
#define DELTA_COLS (DELTA_STEP_THREADS / DELTA_KSPLIT)
#define ROWS_MAX (DELTA_DK_MAX / DELTA_KSPLIT)
layout(local_size_x = DELTA_STEP_THREADS) in;
layout(binding = 0, std430) readonly buffer XBuf { float X[]; };
#ifdef DELTA_SCAN
layout(binding = 1, std430) buffer SBuf { float S[]; };
#else
layout(binding = 1, std430) readonly buffer PBuf { float P[]; };
#endif
layout(binding = 2, std430) buffer OBuf { float O[]; };
shared float part[DELTA_STEP_THREADS];
#endif

#ifdef DELTA_SCAN
shared float qs[DELTA_DK_MAX], ks[DELTA_DK_MAX];

float column_sum(float x, uint tid) {  // as delta_step.comp
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
    const uint s0 = p.s_off + h * p.dk * p.dv, r0 = tid / DELTA_COLS;
    const uint j = gl_WorkGroupID.y * DELTA_COLS + tid % DELTA_COLS;
    const bool col = j < p.dv;
    float s[ROWS_MAX];
    [[unroll]] for (uint n = 0u; n < ROWS_MAX; ++n) {
        const uint i = r0 + n * DELTA_KSPLIT;
        s[n] = col && i < p.dk ? S[s0 + i * p.dv + j] : 0.0;
    }
    for (uint t = 0u; t < p.n_tokens; ++t) {
        const uint x = p.cx_off + t * p.x_stride, ba = p.cba_off + t * p.x_stride;
        for (uint i = tid; i < p.dk; i += DELTA_STEP_THREADS) {
            qs[i] = X[x + kh * p.dk + i];
            ks[i] = X[x + kd + kh * p.dk + i];
        }
        barrier();
        const float beta = X[ba + h], decay = X[ba + p.n_v + h];
        float acc = 0.0;
        [[unroll]] for (uint n = 0u; n < ROWS_MAX; ++n) {
            const uint i = r0 + n * DELTA_KSPLIT;
            s[n] *= decay;
            if (i < p.dk) acc += s[n] * ks[i];
        }
        const float kv = column_sum(acc, tid);
        const float d = col ? (X[x + 2u * kd + h * p.dv + j] - kv) * beta : 0.0;
        float o = 0.0;
        [[unroll]] for (uint n = 0u; n < ROWS_MAX; ++n) {
            const uint i = r0 + n * DELTA_KSPLIT;
            if (col && i < p.dk) {
                s[n] = s[n] + ks[i] * d;
                o += s[n] * qs[i];
            }
        }
        o = column_sum(o, tid);  // its barriers also end this token's reads of qs, ks
        if (col && r0 == 0u) O[p.o_off + t * p.o_stride + h * p.dv + j] = o;
    }
    [[unroll]] for (uint n = 0u; n < ROWS_MAX; ++n) {
        const uint i = r0 + n * DELTA_KSPLIT;
        if (col && i < p.dk) S[s0 + i * p.dv + j] = s[n];
    }
}
#endif

#ifdef DELTA_NORM
void main() {
    const uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y, tid = gl_LocalInvocationIndex;
    const uint o0 = p.o_off + t * p.o_stride + h * p.dv, z0 = p.z_off + t * p.x_stride + h * p.dv;
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
        const float z = X[z0 + j];
        O[o0 + j] = O[o0 + j] * scale * P[p.norm_off + j] * (z / (1.0 + exp(-z)));
    }
}
#endif
