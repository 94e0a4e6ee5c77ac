#version 450
// Y (rows, n_cols) (+)= W (rows, cols) @ X (cols, n_cols) for prompts: tiles of MM_BM rows x MM_BN
// columns (tokens) per workgroup, the K dimension in steps of MM_BK = 128. Where matmul_* (matvec.comp)
// walks a row per team and re-reads x for every 2 rows, here a step's weights are unpacked once into
// shared memory as int8 with a float scale (and min) per 32, x's int8 mirror (shared.h QuantQ8Push)
// sits beside them, and each invocation multiplies 4 rows by 4 columns of that tile from shared
// memory: 128 integer dot products per 32-block for 16 loads of 16 bytes.
//
// Per 32-block b of a row and column: y += dw * dx * sum(w_q * x_q) - mw * (dx * sum x_q), where dw is
// the weight's scale (d * sc), mw its min (dmin * m; K-quants with mins), dx and dx * sum x_q the
// mirror's pair. Q6_K has a scale per 16 (SUB16): y += dx * (dw0 * sum_lo + dw1 * sum_hi). Weights are
// stored as signed int8 (Q6_K's q - 32) so one OpSDot serves every type.
//
// The next step's global loads are issued before the current step's products (registers), so the
// tile's DRAM latency hides behind them. Rows past the end read the last row, columns past n_cols the
// last column; neither is written. cols: a multiple of 256 (K-quants, IQ4_XS) or 128 (Q8_0R, Q8_0, Q4_0, Q5_0, Q5_1, IQ4_NL).
// Workgroup z: matrix z of a batch (w_mat_stride units, x_mat_stride / y_mat_stride floats apart).
#extension GL_EXT_control_flow_attributes : enable
#extension GL_EXT_spirv_intrinsics : require
#include "common.glsl"
// OpSDot (SPV_KHR_integer_dot_product): the 4 signed bytes of a times those of b, summed.
spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot4(uint a, uint b, spirv_literal int fmt);

#define W_BINDING 0
#include "quants.glsl"
#define MM_BK 128u
#define MM_THREADS 256u
#ifdef MM_COOPMAT
// Tensor cores (VK_NV_cooperative_matrix; Context::info().coopmat): each step's weights go from the
// registers they were loaded into straight to float16 with their scales and mins applied (gw_store),
// x's int8 columns times their scales likewise (gx_store), so a step is two barriers; then each
// subgroup multiplies 16 rows by MM_BN / 2 columns of the tile (MM_BN 64 or 32) over the step's 128 of
// K with 16x16x16 products into float32. Subgroups of 32.
// With MM_SCALAR (mmh_*) the float16 tiles are multiplied by plain float arithmetic into the int8
// path's outputs: the tests check these tiles on any device (lavapipe in CI) through it.
#ifndef MM_SCALAR
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
shared float cs[8u * 256u];  // a subgroup's 16 x 16 result on its way to y
#endif
#define CM_J (MM_BN / 32u)  // 16-column results per subgroup
#define CM_LD 17u  // uvec4s (8 float16 each) per row of the step's tiles: 136 float16, rows banks apart
shared uvec4 swh[MM_BM * CM_LD];  // (row, k) of the step, float16 pairs packed
shared uvec4 sxh[MM_BN * CM_LD];  // (column, k)
#endif
layout(binding = 1, std430) readonly buffer XqBuf { uvec4 XQ4[]; };
layout(binding = 1, std430) readonly buffer XsBuf { vec2 XS2[]; };
layout(binding = 2, std430) buffer YBuf { float Y[]; };
layout(push_constant) uniform PC { MatvecPush p; };

layout(local_size_x = MM_THREADS) in;
#if defined(WTYPE_Q6_K) || defined(WTYPE_Q3_K) || defined(IQ_GRID)
#define SUB16
#endif
#if defined(WTYPE_Q2_K)
#define MIN16  // a scale and a min per 16: y += dx * (dw0 sum_lo + dw1 sum_hi - mw0 sum x_lo - mw1 sum x_hi)
#endif

// Row r's int8 at sw[r * MM_ROW4 + i] (i = 0..7, 16 bytes each); the stride of 9 keeps the 16 rows a
// warp reads at once in different banks. Scales: (dw, mw) per 32-block, or (dw0, dw1) with SUB16.
#define MM_ROW4 9u
#ifndef MM_COOPMAT
shared uvec4 sw[MM_BM * MM_ROW4];
shared vec2 sws[MM_BM * 4u];
#ifdef MIN16
shared vec2 swm[MM_BM * 4u];  // the mins per 16
#endif
shared uvec4 sx[MM_BN * MM_ROW4];
shared vec2 sxs[MM_BN * 4u];
#endif

// ---- one step's weights (mm_load.glsl): gw_load() reads global memory into registers, gw_store()
// unpacks them into sw / sws (int8) or swh (float16). Invocation t handles row t / 4 (of the tile) and
// part t % 4 (MM_BM = 64).
#ifdef MM_COOPMAT
#define MM_F16
#endif
#include "mm_load.glsl"

#ifdef MM_COOPMAT
void gw_store(GW g, uint r, uint kt, uint part) {
    uvec4 q[2];
    vec2 dm[2];
    uint k[2];
    gw_pieces(g, kt, part, q, dm, k);
    [[unroll]] for (uint i = 0u; i < 2u; ++i) STORE16(swh, r * CM_LD + (k[i] >> 3), q[i], dm[i].x, dm[i].y)
}
#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
void gw_store(GW g, uint r, uint kt, uint part) {
    const uint h = kt & 1u, pr = part >> 1;
    uvec4 lo, hi;
    gw_nibbles(g, kt, part, lo, hi);
    sw[r * MM_ROW4 + 4u * pr + (part & 1u)] = lo;
    sw[r * MM_ROW4 + 4u * pr + 2u + (part & 1u)] = hi;
    float sc, m;
    kq_scale_min(4u * h + part, g.hdr.yzw, sc, m);
    const vec2 dm = unpackHalf2x16(g.hdr.x);
    sws[r * 4u + part] = vec2(dm.x * sc, dm.y * m);
}
#elif defined(WTYPE_Q6_K)
void gw_store(GW g, uint r, uint kt, uint part) {
    const uint u = part >> 1, j = part & 1u;
    uvec4 lo, hi;
    gw_q6(g, part, lo, hi);
    sw[r * MM_ROW4 + 2u * u + j] = lo;         // elements 32u + 16j ..
    sw[r * MM_ROW4 + 2u * (u + 2u) + j] = hi;  // elements 32(u + 2) + 16j ..
    sws[r * 4u + part] = g.d * vec2(float(int(g.sc << 24) >> 24), float(int(g.sc << 16) >> 24));
}
#elif defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0) || defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K) || \
    defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS) || defined(IQ_GRID)
void gw_store(GW g, uint r, uint kt, uint part) {
    uvec4 q[2];
    vec2 dm[2];
    uint k[2];
    gw_pieces(g, kt, part, q, dm, k);  // the 32-block `part` of the step
    sw[r * MM_ROW4 + 2u * part] = q[0];
    sw[r * MM_ROW4 + 2u * part + 1u] = q[1];
#if defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0) || defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
    sws[r * 4u + part] = dm[0];  // (d, 8d), (d, 16d), (d, -m), (d, 0)
#else
    sws[r * 4u + part] = vec2(dm[0].x, dm[1].x);
#endif
#ifdef MIN16
    swm[r * 4u + part] = vec2(dm[0].y, dm[1].y);
#endif
}
#else  // Q8_0R
void gw_store(GW g, uint r, uint kt, uint part) {
    sw[r * MM_ROW4 + 2u * part] = g.q0;
    sw[r * MM_ROW4 + 2u * part + 1u] = g.q1;
    sws[r * 4u + part] = vec2(g.d, 0.0);
}
#endif


// ---- one step's x: MM_BN columns x 128 int8 (8 uvec4 each) and 4 scale pairs per column. Invocation t
// loads uvec4 t + 256 i (column (t + 256 i) / 8) and the scales of column t / 4, block t % 4; xc and xsc
// hold those columns' first elements (x_col()).
#define GX_N ((MM_BN * 8u + MM_THREADS - 1u) / MM_THREADS)  // uvec4 per invocation
#ifndef MM_COOPMAT
struct GX {
    uvec4 q[GX_N];
    vec2 s;
};
#endif
uint xc[GX_N], xsc;
#ifdef MM_COOPMAT
// With each uvec4 its 32-block's scale, as float16 into sxh.
struct GX {
    uvec4 q[GX_N];
    float s[GX_N];
};
GX gx_load(uint kt) {
    GX g;
    const uint t = gl_LocalInvocationIndex;
    [[unroll]] for (uint i = 0u; i < GX_N; ++i) {
        const uint idx = t + i * MM_THREADS, e = xc[i] + MM_BK * kt + 16u * (idx & 7u);
        g.q[i] = idx < MM_BN * 8u ? XQ4[e >> 4] : uvec4(0u);
        g.s[i] = idx < MM_BN * 8u ? XS2[p.xq_soff + (e >> 5)].x : 0.0;
    }
    return g;
}
void gx_store(GX g) {
    const uint t = gl_LocalInvocationIndex;
    [[unroll]] for (uint i = 0u; i < GX_N; ++i) {
        const uint idx = t + i * MM_THREADS;
        if (idx < MM_BN * 8u) {
            STORE16(sxh, (idx >> 3) * CM_LD + 2u * (idx & 7u), g.q[i], g.s[i], 0.0)
        }
    }
}
#else
GX gx_load(uint kt) {
    GX g;
    const uint t = gl_LocalInvocationIndex;
    [[unroll]] for (uint i = 0u; i < GX_N; ++i) {
        const uint idx = t + i * MM_THREADS;
        g.q[i] = idx < MM_BN * 8u ? XQ4[(xc[i] + MM_BK * kt + 16u * (idx & 7u)) >> 4] : uvec4(0u);
    }
    g.s = vec2(0.0);
    if (t < MM_BN * 4u) g.s = XS2[p.xq_soff + ((xsc + MM_BK * kt + 32u * (t & 3u)) >> 5)];
    return g;
}
void gx_store(GX g) {
    const uint t = gl_LocalInvocationIndex;
    [[unroll]] for (uint i = 0u; i < GX_N; ++i) {
        const uint idx = t + i * MM_THREADS;
        if (idx < MM_BN * 8u) sx[(idx >> 3) * MM_ROW4 + (idx & 7u)] = g.q[i];
    }
    if (t < MM_BN * 4u) sxs[t] = g.s;
}
#endif

#ifdef MM_IDS
#include "mm_ids.glsl"
#else
uint n_valid;
uint x_col(uint c) { return p.x_off + gl_WorkGroupID.z * p.x_mat_stride + min(gl_WorkGroupID.y * MM_BN + c, p.n_cols - 1u) * p.x_col_stride; }
uint y_col(uint c) { return gl_WorkGroupID.y * MM_BN + c; }
#endif

// Output (row tr + 16 i, column tc + 16 j) of the tile, i < 4, j < MM_BN / 16.
#define MM_CJ (MM_BN / 16u)

void main() {
#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
    iq4_table_init();
    barrier();
#endif
    const uint t = gl_LocalInvocationIndex, tr = t & 15u, tc = t >> 4;
    const uint row0 = gl_WorkGroupID.x * MM_BM;
    const uint lr = t >> 2, part = t & 3u;  // the row and part this invocation loads
#ifdef MM_IDS
    if (!ids_tile(gl_WorkGroupID.y)) return;
    const uint wrow = p.w_off + expert * p.w_mat_stride + min(row0 + lr, p.rows - 1u) * row_units(p.cols);
#else
    n_valid = min(MM_BN, p.n_cols - gl_WorkGroupID.y * MM_BN);
    const uint wrow = p.w_off + gl_WorkGroupID.z * p.w_mat_stride + min(row0 + lr, p.rows - 1u) * row_units(p.cols);
#endif
    [[unroll]] for (uint i = 0u; i < GX_N; ++i) xc[i] = x_col((t + i * MM_THREADS) >> 3);
    xsc = x_col(t >> 2);
    const uint n_k = p.cols / MM_BK;

#if defined(MM_COOPMAT) && !defined(MM_SCALAR)
    const uint sgid = gl_SubgroupID;  // 8 subgroups of 32
    fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> cacc[CM_J];
    [[unroll]] for (uint j = 0u; j < CM_J; ++j) cacc[j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);
#endif
    float acc[4][MM_CJ];
    [[unroll]] for (uint i = 0u; i < 4u; ++i)
        [[unroll]] for (uint j = 0u; j < MM_CJ; ++j) acc[i][j] = 0.0;

    GW gw = gw_load(wrow, 0u, part);
    GX gx = gx_load(0u);
    for (uint kt = 0u; kt < n_k; ++kt) {
        barrier();  // the previous step's products are done with the tiles
        gw_store(gw, lr, kt, part);
        gx_store(gx);
        barrier();
        if (kt + 1u < n_k) {  // the next step's loads fly during this step's products
            gw = gw_load(wrow, kt + 1u, part);
            gx = gx_load(kt + 1u);
        }
#if defined(MM_SCALAR)  // the float16 tiles without tensor cores
        for (uint k8 = 0u; k8 < MM_BK / 8u; ++k8)
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                const uvec4 w = swh[(tr + 16u * i) * CM_LD + k8];
                [[unroll]] for (uint j = 0u; j < MM_CJ; ++j) {
                    const uvec4 x = sxh[(tc + 16u * j) * CM_LD + k8];
                    [[unroll]] for (uint e = 0u; e < 4u; ++e) acc[i][j] += dot(unpackHalf2x16(w[e]), unpackHalf2x16(x[e]));
                }
            }
#elif defined(MM_COOPMAT)  // tensor cores
        [[unroll]] for (uint kk = 0u; kk < MM_BK / 16u; ++kk) {
            fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a, bm;
            coopMatLoadNV(a, swh, (16u * (sgid & 3u)) * CM_LD + 2u * kk, CM_LD, false);
            [[unroll]] for (uint j = 0u; j < CM_J; ++j) {
                coopMatLoadNV(bm, sxh, (MM_BN / 2u * (sgid >> 2) + 16u * j) * CM_LD + 2u * kk, CM_LD, true);
                cacc[j] = coopMatMulAddNV(a, bm, cacc[j]);
            }
        }
#else  // int8 dot products
        [[unroll]] for (uint b = 0u; b < 4u; ++b) {
            uvec4 xq[MM_CJ][2];
            vec2 xs[MM_CJ];
            [[unroll]] for (uint j = 0u; j < MM_CJ; ++j) {
                const uint c = tc + 16u * j;
                xq[j][0] = sx[c * MM_ROW4 + 2u * b];
                xq[j][1] = sx[c * MM_ROW4 + 2u * b + 1u];
                xs[j] = sxs[c * 4u + b];
            }
#ifdef MIN16
            int xl[MM_CJ], xh[MM_CJ];  // the columns' sums of int8 per 16
            [[unroll]] for (uint j = 0u; j < MM_CJ; ++j) {
                xl[j] = 0;
                xh[j] = 0;
                [[unroll]] for (uint c = 0u; c < 4u; ++c) {
                    xl[j] += sdot4(xq[j][0][c], 0x01010101u, 0);
                    xh[j] += sdot4(xq[j][1][c], 0x01010101u, 0);
                }
            }
#endif
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                const uint r = tr + 16u * i;
                const uvec4 w0 = sw[r * MM_ROW4 + 2u * b], w1 = sw[r * MM_ROW4 + 2u * b + 1u];
                const vec2 ws = sws[r * 4u + b];
#ifdef MIN16
                const vec2 wm = swm[r * 4u + b];
#endif
                [[unroll]] for (uint j = 0u; j < MM_CJ; ++j) {
                    int lo = 0, hi = 0;
                    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
                        lo += sdot4(w0[c], xq[j][0][c], 0);
                        hi += sdot4(w1[c], xq[j][1][c], 0);
                    }
#if defined(MIN16)
                    acc[i][j] += xs[j].x * (ws.x * float(lo) + ws.y * float(hi) - wm.x * float(xl[j]) - wm.y * float(xh[j]));
#elif defined(SUB16)
                    acc[i][j] += xs[j].x * (ws.x * float(lo) + ws.y * float(hi));
#else
                    acc[i][j] += ws.x * xs[j].x * float(lo + hi) - ws.y * xs[j].y;
#endif
                }
            }
        }
#endif
    }

#if defined(MM_COOPMAT) && !defined(MM_SCALAR)
    // Subgroup sgid's results: rows 16 (sgid & 3) .., columns MM_BN / 2 (sgid >> 2) + 16 j .. of the tile.
    [[unroll]] for (uint j = 0u; j < CM_J; ++j) {
        // Column-major (element (r, c) at 16 c + r), so 16 lanes write 16 consecutive rows of y's column.
        coopMatStoreNV(cacc[j], cs, sgid * 256u, 16u, true);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint e = gl_SubgroupInvocationID; e < 256u; e += 32u) {
            const uint r = row0 + 16u * (sgid & 3u) + (e & 15u), c = MM_BN / 2u * (sgid >> 2) + 16u * j + (e >> 4);
            if (r >= p.rows || c >= n_valid) continue;
            const uint o = p.y_off + gl_WorkGroupID.z * p.y_mat_stride + y_col(c) * p.y_col_stride + r;
            Y[o] = (p.flags & MV_ACCUMULATE) != 0u ? Y[o] + cs[sgid * 256u + e] : cs[sgid * 256u + e];
        }
        subgroupBarrier();
    }
    return;
#endif

    [[unroll]] for (uint j = 0u; j < MM_CJ; ++j) {
        const uint c = tc + 16u * j;
        if (c >= n_valid) continue;
        const uint yc = p.y_off + gl_WorkGroupID.z * p.y_mat_stride + y_col(c) * p.y_col_stride;
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            const uint r = row0 + tr + 16u * i;
            if (r >= p.rows) continue;
            const uint o = yc + r;
            Y[o] = (p.flags & MV_ACCUMULATE) != 0u ? Y[o] + acc[i][j] : acc[i][j];
        }
    }
}
