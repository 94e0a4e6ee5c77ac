#version 450
// Y (rows, n_cols) (+)= W (rows, cols) @ X (cols, n_cols) for prompts on tensor cores, in larger tiles
// than mm.comp's: 128 rows x MT_BN (128 or 64) columns per workgroup of 256 invocations. On the H200,
// mm.comp's 64 x 64 tiles spent most of their time loading 16x16 fragments from shared memory (three
// loads per two products); here each subgroup multiplies 16 MT_WI rows by 16 MT_WJ columns (64 x 32 or
// 32 x 32: one load per 1.3 or 1 product).
//
// Workgroup z: matrix z of a batch (mm.comp's strides). Weights come through mm_load.glsl's 128-wide steps (gw_pieces: 16-element pieces as float16 with
// scales and mins applied); x is the int8 mirror (shared.h QuantQ8Push) made float16 with its scales.
// Each step is staged in quarters of 32 (rows of 32 float16 + 8 of padding, so the 8 rows a fragment
// load reads at once fall in different banks), double-buffered: while the subgroups multiply quarter
// s, they write quarter s + 1 into the other buffer, one barrier per quarter, and registers whose
// values were stored for the last time in a step reload for the next step at once.
//
// With MT_SCALAR (mmth_*) the same tiles are multiplied by plain float arithmetic: the tests check the
// staging on any device (lavapipe in CI). Rows past the end read the last row, columns past n_cols the
// last column; neither is written. cols: a multiple of 256 (K-quants) or 128 (Q8_0R).
// MM_IDS (mmt_<type>_ids_n64): routed experts grouped by expert, mm.comp's _ids variants' tiles.
#extension GL_EXT_control_flow_attributes : enable
#include "common.glsl"
#ifndef MT_SCALAR
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(push_constant) uniform PC { MatvecPush p; };
#define W_BINDING 0
#include "quants.glsl"
#define MM_F16
#include "mm_load.glsl"
layout(binding = 1, std430) readonly buffer XqBuf { uvec4 XQ4[]; };
layout(binding = 1, std430) readonly buffer XsBuf { vec2 XS2[]; };
layout(binding = 2, std430) buffer YBuf { float Y[]; };

#define MT_N uint(MT_BN)  // columns per workgroup (the build's MT_BN, 64 or 128)
#define MT_BM 128u
#define MT_THREADS 256u
#define MT_NW (MT_THREADS / 32u)        // subgroups
#define MT_GW (MT_BM * 4u / MT_THREADS)  // weight rows per invocation: t / 4 + (MT_THREADS / 4) i
#define MT_LD 5u  // uvec4 per staged row: 32 float16 + 8 padding
layout(local_size_x = MT_THREADS) in;
#if MT_BN == 128
#define MT_WR 2u  // subgroups along the rows: 64 rows x 32 columns each
#define MT_WI4    // four 16-row fragments per subgroup
#else
#define MT_WR 4u  // 32 x 32 each
#endif
#define MT_WI (MT_BM / 16u / MT_WR)          // 16-row fragments per subgroup
#define MT_WJ (MT_N / 16u / (MT_NW / MT_WR))  // 16-column fragments per subgroup (2)
#define MT_TPC (MT_THREADS / MT_N)         // invocations per x column (2 or 4)
#define MT_SA (MT_BM * MT_LD)              // a buffer of sa
#define MT_SB (MT_N * MT_LD)
#ifdef MM_IDS
#include "mm_ids.glsl"
#else
uint n_valid;
uint x_col(uint c) { return p.x_off + gl_WorkGroupID.z * p.x_mat_stride + min(gl_WorkGroupID.y * MT_N + c, p.n_cols - 1u) * p.x_col_stride; }
uint y_col(uint c) { return gl_WorkGroupID.y * MT_N + c; }
#endif

#define ACC(i, j) acc_##i##_##j
shared uvec4 sa[2u * MT_SA];  // (row, k) of a quarter step, float16 pairs packed; two buffers
shared uvec4 sb[2u * MT_SB];  // (column, k)
#ifndef MT_SCALAR
shared float cs[MT_NW * 256u];  // a subgroup's 16 x 16 result on its way to y
#endif


// Weights: invocation t loads rows t / 4 and t / 4 + 64 of the tile, part t % 4 of each step. Quarter
// q of a step holds the pieces at offsets 32q .. 32q + 31; a part's last piece lies in quarter
// gw_last(part) (mm_load.glsl's layouts).
#if defined(WTYPE_Q6_K)
uint gw_last(uint part) { return 2u + (part >> 1); }
#elif defined(WTYPE_Q8_0R) || defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0) || defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K) || \
    defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS) || defined(IQ_GRID)
uint gw_last(uint part) { return part; }
#else
uint gw_last(uint part) { return 2u * (part >> 1) + 1u; }
#endif
void gw_store_quarter(GW g, uint r, uint kt, uint part, uint q, uint buf) {
    uvec4 v[2];
    vec2 dm[2];
    uint k[2];
    gw_pieces(g, kt, part, v, dm, k);
    [[unroll]] for (uint i = 0u; i < 2u; ++i)
        if ((k[i] >> 5) == q) STORE16(sa, buf * MT_SA + r * MT_LD + ((k[i] & 31u) >> 3), v[i], dm[i].x, dm[i].y)
}

// x: invocation t loads column t / MT_TPC; a quarter of a column is 2 uvec4 (16 int8 each) of one
// 32-block, uvec4 t % 2 held by invocations t % MT_TPC < 2 with the block's scale.
struct GX {
    uvec4 q[4];
    float s[4];
};
uint xcol;  // the column's first element in x
bool x_active() { return MT_TPC == 2u || (gl_LocalInvocationIndex % MT_TPC) < 2u; }
void gx_load(inout GX g, uint kt, uint q) {
    const uint e = xcol + 128u * kt + 32u * q + 16u * (gl_LocalInvocationIndex & 1u);
    if (x_active()) {
        g.q[q] = XQ4[e >> 4];
        g.s[q] = XS2[p.xq_soff + (e >> 5)].x;
    }
}
void gx_store(GX g, uint q, uint buf) {
    const uint t = gl_LocalInvocationIndex;
    if (x_active()) STORE16(sb, buf * MT_SB + (t / MT_TPC) * MT_LD + 2u * (t & 1u), g.q[q], g.s[q], 0.0)
}

void main() {
#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
    iq4_table_init();
    barrier();
#endif
    const uint t = gl_LocalInvocationIndex;
    const uint row0 = gl_WorkGroupID.x * MT_BM;
#ifdef MM_IDS
    if (!ids_tile(gl_WorkGroupID.y)) return;
    const uint wbase = p.w_off + expert * p.w_mat_stride;
#else
    n_valid = min(MT_N, p.n_cols - gl_WorkGroupID.y * MT_N);
    const uint wbase = p.w_off + gl_WorkGroupID.z * p.w_mat_stride;
#endif
    const uint lr = t >> 2, part = t & 3u;
    uint wrow[MT_GW];
    [[unroll]] for (uint i = 0u; i < MT_GW; ++i)
        wrow[i] = wbase + min(row0 + lr + MT_THREADS / 4u * i, p.rows - 1u) * row_units(p.cols);
    xcol = x_col(t / MT_TPC);
    const uint n_k = p.cols / 128u;

#ifdef MT_SCALAR
    // Output (row tr + 16 i, column tc + MT_TC j), i < 8, j < MT_N / MT_TC.
#define MT_TC (MT_THREADS / 16u)
    const uint tr = t & 15u, tc = t >> 4;
    float acc[8][MT_N / MT_TC];
    [[unroll]] for (uint i = 0u; i < 8u; ++i)
        [[unroll]] for (uint j = 0u; j < MT_N / MT_TC; ++j) acc[i][j] = 0.0;
#else
    const uint sgid = gl_SubgroupID, wr = sgid % MT_WR, wc = sgid / MT_WR;
    // Result fragments as single variables ACC(i, j): arrays of four or more went to local memory on
    // the H200 (the pipeline statistics' local memory size), at a third of the speed.
#define ZERO fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0)
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> ACC(0, 0) = ZERO, ACC(0, 1) = ZERO, ACC(1, 0) = ZERO, ACC(1, 1) = ZERO;
#ifdef MT_WI4
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> ACC(2, 0) = ZERO, ACC(2, 1) = ZERO, ACC(3, 0) = ZERO, ACC(3, 1) = ZERO;
#endif
#endif

    GW gw[MT_GW];
    [[unroll]] for (uint i = 0u; i < MT_GW; ++i) gw[i] = gw_load(wrow[i], 0u, part);
    GX gx;
    [[unroll]] for (uint q = 0u; q < 4u; ++q) gx_load(gx, 0u, q);
    // Quarter s = 4 kt + q of the product; stage(s) writes it into buffer s % 2 and reloads what it
    // was the last use of.
#define STAGE(s)                                                                                      \
    {                                                                                                 \
        const uint kt_ = (s) >> 2, q_ = (s) & 3u, buf_ = (s) & 1u;                                    \
        [[unroll]] for (uint i = 0u; i < MT_GW; ++i) gw_store_quarter(gw[i], lr + MT_THREADS / 4u * i, kt_, part, q_, buf_); \
        gx_store(gx, q_, buf_);                                                                       \
        if (kt_ + 1u < n_k) {                                                                         \
            if (q_ == gw_last(part))                                                                  \
                [[unroll]] for (uint i = 0u; i < MT_GW; ++i) gw[i] = gw_load(wrow[i], kt_ + 1u, part);   \
            gx_load(gx, kt_ + 1u, q_);                                                                \
        }                                                                                             \
    }
    STAGE(0u)
    barrier();
    const uint n_s = 4u * n_k;
    for (uint s = 0u; s < n_s; ++s) {
        if (s + 1u < n_s) STAGE(s + 1u)  // into the other buffer, free since the last barrier
        const uint ao = (s & 1u) * MT_SA, bo = (s & 1u) * MT_SB;
#ifdef MT_SCALAR
        for (uint k8 = 0u; k8 < 4u; ++k8)
            [[unroll]] for (uint i = 0u; i < 8u; ++i) {
                const uvec4 w = sa[ao + (tr + 16u * i) * MT_LD + k8];
                [[unroll]] for (uint j = 0u; j < MT_N / MT_TC; ++j) {
                    const uvec4 x = sb[bo + (tc + MT_TC * j) * MT_LD + k8];
                    [[unroll]] for (uint e = 0u; e < 4u; ++e) acc[i][j] += dot(unpackHalf2x16(w[e]), unpackHalf2x16(x[e]));
                }
            }
#else
        [[unroll]] for (uint kk = 0u; kk < 2u; ++kk) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a, b0, b1;
            coopMatLoadNV(b0, sb, bo + (16u * (MT_WJ * wc)) * MT_LD + 2u * kk, MT_LD, true);
            coopMatLoadNV(b1, sb, bo + (16u * (MT_WJ * wc + 1u)) * MT_LD + 2u * kk, MT_LD, true);
#define ROW(i)                                                                              \
    coopMatLoadNV(a, sa, ao + (16u * (MT_WI * wr + i)) * MT_LD + 2u * kk, MT_LD, false);    \
    ACC(i, 0) = coopMatMulAddNV(a, b0, ACC(i, 0));                                          \
    ACC(i, 1) = coopMatMulAddNV(a, b1, ACC(i, 1));
            ROW(0) ROW(1)
#ifdef MT_WI4
            ROW(2) ROW(3)
#endif
        }
#endif
        barrier();  // quarter s is done with; s + 1 is written
    }

#ifdef MT_SCALAR
    [[unroll]] for (uint j = 0u; j < MT_N / MT_TC; ++j) {
        const uint c = tc + MT_TC * j;
        if (c >= n_valid) continue;
        const uint yc = p.y_off + gl_WorkGroupID.z * p.y_mat_stride + y_col(c) * p.y_col_stride;
        [[unroll]] for (uint i = 0u; i < 8u; ++i) {
            const uint r = row0 + tr + 16u * i;
            if (r >= p.rows) continue;
            Y[yc + r] = (p.flags & MV_ACCUMULATE) != 0u ? Y[yc + r] + acc[i][j] : acc[i][j];
        }
    }
#else
    // Column-major (element (r, c) at 16 c + r): 16 lanes write 16 consecutive rows of y's column.
#define STORE_FRAG(i, j)                                                                                      \
    coopMatStoreNV(ACC(i, j), cs, sgid * 256u, 16u, true);                                                    \
    subgroupMemoryBarrierShared();                                                                            \
    subgroupBarrier();                                                                                        \
    for (uint e = gl_SubgroupInvocationID; e < 256u; e += 32u) {                                              \
        const uint r = row0 + 16u * (MT_WI * wr + i) + (e & 15u), c = 16u * (MT_WJ * wc + j) + (e >> 4);      \
        if (r >= p.rows || c >= n_valid) continue;                                                            \
        const uint o = p.y_off + gl_WorkGroupID.z * p.y_mat_stride + y_col(c) * p.y_col_stride + r;           \
        Y[o] = (p.flags & MV_ACCUMULATE) != 0u ? Y[o] + cs[sgid * 256u + e] : cs[sgid * 256u + e];            \
    }                                                                                                         \
    subgroupBarrier();
    STORE_FRAG(0, 0) STORE_FRAG(0, 1) STORE_FRAG(1, 0) STORE_FRAG(1, 1)
#ifdef MT_WI4
    STORE_FRAG(2, 0) STORE_FRAG(2, 1) STORE_FRAG(3, 0) STORE_FRAG(3, 1)
#endif
#endif
}
