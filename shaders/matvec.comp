#version 450
// y (rows) = W (rows, cols) @ x (cols) for a batch of matrices (workgroup y), NB activation columns.
// 32 invocations per row, MV_ROWS rows per workgroup; invocation `lane` of a row dequantizes chunks
// lane, lane + 32, ... (quants.glsl) and multiplies them with x; the row's sum is reduced across the 32.
#include "common.glsl"
layout(binding = 1, std430) readonly buffer XBuf { vec4 X4[]; };  // x offsets and strides are multiples of 4
#define W_BINDING 0
#define X_DOT
#include "quants.glsl"

layout(local_size_x = MV_THREADS) in;
layout(push_constant) uniform PC { MatvecPush p; };
layout(binding = 2, std430) buffer YBuf { float Y[]; };
layout(binding = 3, std430) readonly buffer IdsBuf { int ids[]; };
STEP_BUFFER(4)

shared float red[MV_THREADS];
DEFINE_REDUCE32(red)

void main() {
    const uint lane = gl_LocalInvocationIndex & 31u;
    const uint row = gl_WorkGroupID.x * MV_ROWS + (gl_LocalInvocationIndex >> 5);
    const uint m = gl_WorkGroupID.y;
    const uint mat = (p.flags & MV_IDS) != 0u ? uint(ids[p.ids_off + m]) : m;
    const uint ncol = NB == 1 ? 1u : p.n_cols;

    float acc[NB];
    for (uint b = 0u; b < NB; ++b) acc[b] = 0.0;
#if NB == 1
    if ((p.flags & MV_SWIGLU) != 0u) {  // gate and up rows of one FFN, then silu(gate) * up
        float up = 0.0;
        if (row < p.rows) {
            const uint rel = mat * p.w_mat_stride + row * row_units(p.cols);
            const uint xo = (p.x_off + m * p.x_mat_stride) >> 2, nch = p.cols / CH;
            for (uint c = lane; c < nch; c += 32u) {
                acc[0] += chunk_dot(p.w_off + rel, c, xo + c * (CH / 4));
                up += chunk_dot(p.w2_off + rel, c, xo + c * (CH / 4));
            }
        }
        const float g = reduce32(acc[0]), u = reduce32(up);
        if (lane == 0u && row < p.rows) Y[p.y_off + m * p.y_mat_stride + row] = g / (1.0 + exp(-g)) * u;
        return;
    }
#endif
    if (row < p.rows) {
        const uint wbase = p.w_off + mat * p.w_mat_stride + row * row_units(p.cols);
        const uint xbase = p.x_off + m * p.x_mat_stride;
        const uint nch = p.cols / CH;
        for (uint c = lane; c < nch; c += 32u) {
            [[unroll]] for (uint b = 0u; b < NB; ++b) {  // columns after the first re-read W from cache
                if (b >= ncol) break;
                acc[b] += chunk_dot(wbase, c, (xbase + b * p.x_col_stride + c * CH) >> 2);
            }
        }
    }
    for (uint b = 0u; b < NB; ++b) {
        if (b >= ncol) break;
        const float s = reduce32(acc[b]);
        if (lane == 0u && row < p.rows) {
            uint yo = p.y_off + m * p.y_mat_stride + b * p.y_col_stride + row;
            if ((p.flags & MV_POS) != 0u) yo += step.pos * p.y_pos_stride;
            Y[yo] = (p.flags & MV_ACCUMULATE) != 0u ? Y[yo] + s : s;
        }
    }
}
