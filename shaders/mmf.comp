#version 450
// Y (rows, n_cols) (+)= W (rows, cols) @ X (cols, n_cols) for float weights (F32, F16, BF16) and float
// x: mm.comp's tiling without the int8 (prompts' products with a router, F16 models): tiles of 64
// rows x 64 columns, K in steps of 32 floats through shared memory, 4 x 4 outputs per invocation.
// Rows past the end read the last row, columns past n_cols the last column; neither is written.
// cols: a multiple of 32; x's offset and column stride multiples of 4. Workgroup z: matrix z of a batch
// (w_mat_stride units, x_mat_stride / y_mat_stride floats apart; x_mat_stride a multiple of 4).
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#define W_BINDING 0
#include "quants.glsl"
layout(binding = 1, std430) readonly buffer XBuf { vec4 X4[]; };
layout(binding = 2, std430) buffer YBuf { float Y[]; };
layout(push_constant) uniform PC { MatvecPush p; };

#define BM 64u
#define BN 64u
#define BK 32u
#define ROW (BK + 1u)  // shared row stride: a warp's 16 rows in different banks
layout(local_size_x = 256) in;
shared float sw[BM * ROW];
shared float sx[BN * ROW];

#if defined(WTYPE_F32)
#define UNITS_PER_STEP 8u  // 16-byte units of a row per step of 32
#else
#define UNITS_PER_STEP 4u
#endif
#define WU (BM * UNITS_PER_STEP / 256u)  // units per invocation

void main() {
    const uint t = gl_LocalInvocationIndex, tr = t & 15u, tc = t >> 4;
    const uint row0 = gl_WorkGroupID.x * BM, col0 = gl_WorkGroupID.y * BN;
    const uint ru = row_units(p.cols), n_k = p.cols / BK;
    float acc[4][4];
    [[unroll]] for (uint i = 0u; i < 4u; ++i)
        [[unroll]] for (uint j = 0u; j < 4u; ++j) acc[i][j] = 0.0;
    // This invocation's loads: W units t + 256 u (row / UNITS_PER_STEP, unit within the step), x vec4
    // t and t + 256 (column / 8, vec4 within the step).
    uint wrow[WU], xcol[2];
    [[unroll]] for (uint u = 0u; u < WU; ++u)
        wrow[u] = p.w_off + gl_WorkGroupID.z * p.w_mat_stride + min(row0 + (t + 256u * u) / UNITS_PER_STEP, p.rows - 1u) * ru;
    [[unroll]] for (uint u = 0u; u < 2u; ++u)
        xcol[u] = (p.x_off + gl_WorkGroupID.z * p.x_mat_stride + min(col0 + (t + 256u * u) / 8u, p.n_cols - 1u) * p.x_col_stride) / 4u;

    for (uint kt = 0u; kt < n_k; ++kt) {
        uvec4 wv[WU];
        vec4 xv[2];
        [[unroll]] for (uint u = 0u; u < WU; ++u) wv[u] = W[wrow[u] + kt * UNITS_PER_STEP + (t + 256u * u) % UNITS_PER_STEP];
        [[unroll]] for (uint u = 0u; u < 2u; ++u) xv[u] = X4[xcol[u] + kt * 8u + (t + 256u * u) % 8u];
        barrier();  // the previous step's products are done with the tiles
        [[unroll]] for (uint u = 0u; u < WU; ++u) {
            const uint i = t + 256u * u, r = i / UNITS_PER_STEP, k = (i % UNITS_PER_STEP) * (BK / UNITS_PER_STEP);
#if defined(WTYPE_F32)
            const vec4 a = uintBitsToFloat(wv[u]);
            sw[r * ROW + k] = a.x; sw[r * ROW + k + 1u] = a.y; sw[r * ROW + k + 2u] = a.z; sw[r * ROW + k + 3u] = a.w;
#else
            [[unroll]] for (uint c = 0u; c < 4u; ++c) {
#if defined(WTYPE_F16)
                const vec2 h = unpackHalf2x16(wv[u][c]);
#else
                const vec2 h = vec2(uintBitsToFloat(wv[u][c] << 16), uintBitsToFloat(wv[u][c] & 0xFFFF0000u));
#endif
                sw[r * ROW + k + 2u * c] = h.x;
                sw[r * ROW + k + 2u * c + 1u] = h.y;
            }
#endif
        }
        [[unroll]] for (uint u = 0u; u < 2u; ++u) {
            const uint i = t + 256u * u, c = i / 8u, k = (i % 8u) * 4u;
            sx[c * ROW + k] = xv[u].x; sx[c * ROW + k + 1u] = xv[u].y; sx[c * ROW + k + 2u] = xv[u].z; sx[c * ROW + k + 3u] = xv[u].w;
        }
        barrier();
        for (uint k = 0u; k < BK; ++k) {
            float w[4], x[4];
            [[unroll]] for (uint i = 0u; i < 4u; ++i) w[i] = sw[(tr + 16u * i) * ROW + k];
            [[unroll]] for (uint j = 0u; j < 4u; ++j) x[j] = sx[(tc + 16u * j) * ROW + k];
            [[unroll]] for (uint i = 0u; i < 4u; ++i)
                [[unroll]] for (uint j = 0u; j < 4u; ++j) acc[i][j] += w[i] * x[j];
        }
    }
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        const uint c = col0 + tc + 16u * j;
        if (c >= p.n_cols) continue;
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            const uint r = row0 + tr + 16u * i;
            if (r >= p.rows) continue;
            const uint o = p.y_off + gl_WorkGroupID.z * p.y_mat_stride + c * p.y_col_stride + r;
            Y[o] = (p.flags & MV_ACCUMULATE) != 0u ? Y[o] + acc[i][j] : acc[i][j];
        }
    }
}
