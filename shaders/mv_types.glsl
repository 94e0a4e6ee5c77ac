// How the 32 lanes of a matvec team (matvec.comp) split a weight row, per type (one of WTYPE_*).
// The row is read in steps of MV_STEP elements. In step s, lane `lane` loads its part of x once
// (load_x -> XS, registers shared by the team's NR rows and by gate and up), and row_dot(wrow, s, x)
// returns its part of one row's dot product. The split is chosen so that one warp-wide load reads
// whole cache lines of x (and consecutive bytes of W): lanes never read x at a stride, which is what
// made the previous one-chunk-per-lane matvec L1-bound at 150-310 GB/s on an H200.
//
// Quants become floats with the exponent trick (bytes4, i8x2 in quants.glsl); K-quant scales and
// mins multiply per-group sums (sum q x, and sum x, which load_x computes once for all rows).
// The includer declares X4 (x as vec4), p (MatvecPush), `lane` and includes quants.glsl first.
// Parts past the end of the row (cols not a multiple of MV_STEP) load nothing and add 0.

#if defined(WTYPE_F32) || defined(WTYPE_F16) || defined(WTYPE_BF16) || defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K) || defined(WTYPE_Q8_0R)
layout(binding = W_BINDING, std430) readonly buffer WBufU { uint W1[]; };  // W's bytes as words
#endif
#if defined(WTYPE_Q8_0R)
// The scale of the block holding element e of the row at wrow (units): after the row's cols int8.
float q8r_scale(uint wrow, uint e) { return unpackHalf2x16(uint(WH[8u * wrow + (p.cols >> 1) + (e >> 5)])).x; }
#endif
#if defined(WTYPE_F16) || defined(WTYPE_BF16)
layout(binding = W_BINDING, std430) readonly buffer WBufV2 { uvec2 W2[]; };
#endif

#if defined(WTYPE_Q8_0R) && defined(XQ8)
// Repacked Q8_0 rows (quants.glsl) and x's int8 mirror, whose bytes line up with the row's int8: a
// step is 2 parts of 512 elements, lane l taking elements 512(2s + k) + 16l .. + 15 of part k, one
// uvec4 of W and one of x (a warp-wide load reads 512 contiguous bytes of each): 4 OpSDot, then
// d_w * d_x of their block (two lanes per block).
#define MV_STEP 1024u
struct XS {
    uvec4 q[2];
    float d[2];
};
uint q8r_elem(uint s, uint k) { return MV_STEP * s + 512u * k + 16u * lane; }
XS load_x(uint xo, uint s) {
    XS x;
    [[unroll]] for (uint k = 0u; k < 2u; ++k) {
        const uint e = q8r_elem(s, k);
        const bool inside = e < p.cols;
        x.q[k] = inside ? XQ4[(xo + e) >> 4] : uvec4(0u);
        x.d[k] = inside ? XS2[p.xq_soff + ((xo + e) >> 5)].x : 0.0;
    }
    return x;
}
struct WS {
    uvec4 q[2];
    float d[2];
};
WS load_w(uint wrow, uint s) {
    WS w;
    [[unroll]] for (uint k = 0u; k < 2u; ++k) {
        const uint e = q8r_elem(s, k);
        const bool inside = e < p.cols;
        w.q[k] = inside ? W[wrow + (e >> 4)] : uvec4(0u);
        w.d[k] = inside ? q8r_scale(wrow, e) : 0.0;
    }
    return w;
}
float dot_w(WS w, XS x) {
    float acc = 0.0;
    [[unroll]] for (uint k = 0u; k < 2u; ++k) {
        int i = 0;
        [[unroll]] for (uint c = 0u; c < 4u; ++c) i += sdot4(x.q[k][c], w.q[k][c], 0);
        acc += w.d[k] * x.d[k] * float(i);
    }
    return acc;
}

#elif defined(WTYPE_F32) || defined(WTYPE_F16) || defined(WTYPE_BF16) || defined(WTYPE_Q8_0R)
// Four parts of 128 elements: in part k lane l holds elements 512s + 128k + 4l .. + 3, one vec4 of x
// and 16 (F32), 8 (F16, BF16) or 4 (repacked Q8_0: one word of int8, and its block's scale) bytes of
// W: a warp-wide load reads 512 contiguous bytes of x.
#define MV_STEP 512u
struct XS {
    vec4 v[4];
};
XS load_x(uint xo, uint s) {
    XS x;
    const bool xnorm = (p.flags & MV_XNORM) != 0u;  // times the norm's weights (matvec.comp applies its scale)
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint e = s * MV_STEP + 128u * k + 4u * lane;
        x.v[k] = e < p.cols ? X4[(xo + e) >> 2] : vec4(0.0);
        if (xnorm && e < p.cols) x.v[k] *= Wn4[(p.norm_w_off + e) >> 2];
    }
    return x;
}
// Elements e .. e + 3 of the row at wrow (16-byte units).
vec4 wvec(uint wrow, uint e) {
#if defined(WTYPE_F32)
    return uintBitsToFloat(W[wrow + (e >> 2)]);
#elif defined(WTYPE_F16)
    const uvec2 w = W2[2u * wrow + (e >> 2)];
    return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
#elif defined(WTYPE_BF16)
    const uvec2 w = W2[2u * wrow + (e >> 2)];
    return uintBitsToFloat(uvec4(w.x << 16, w.x & 0xFFFF0000u, w.y << 16, w.y & 0xFFFF0000u));
#else
    return q8r_scale(wrow, e) * (bytes4(W1[4u * wrow + (e >> 2)] ^ 0x80808080u) - 128.0);
#endif
}
float row_dot(uint wrow, uint s, XS x) {
    float acc = 0.0;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint e = s * MV_STEP + 128u * k + 4u * lane;
        if (e < p.cols) acc += dot(wvec(wrow, e), x.v[k]);
    }
    return acc;
}

#elif defined(WTYPE_Q8_0) && defined(XQ8)
// Integer dots over x's int8 mirror (blocks of 32 as Q8_0's). A step is 4 parts of 8 blocks, 4 lanes
// per block: in part k lane l takes int8 8(l & 3) .. + 7 of block 32s + 8k + (l >> 2) (four 16-bit
// loads: blocks are only 2-aligned) and the matching two words of x: 2 OpSDot, then d_w * d_x.
#define MV_STEP 1024u
struct XS {
    uvec2 q[4];
    float d[4];
};
uint q8_block(uint s, uint k) { return 32u * s + 8u * k + (lane >> 2); }
XS load_x(uint xo, uint s) {
    XS x;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint blk = q8_block(s, k), e = xo + 32u * blk + 8u * (lane & 3u);
        const bool inside = 32u * blk < p.cols;
        x.q[k] = inside ? uvec2(XQ1[e >> 2], XQ1[(e >> 2) + 1u]) : uvec2(0u);
        x.d[k] = inside ? XS2[p.xq_soff + (e >> 5)].x : 0.0;
    }
    return x;
}
struct WS {
    uvec2 q[4];
    float d[4];
};
WS load_w(uint wrow, uint s) {
    WS w;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint blk = q8_block(s, k);
        const bool inside = 32u * blk < p.cols;
        const uint b = wrow + 17u * min(blk, (p.cols >> 5) - 1u), q = b + 1u + 4u * (lane & 3u);
        w.q[k] = inside ? uvec2(uint(W[q]) | (uint(W[q + 1u]) << 16), uint(W[q + 2u]) | (uint(W[q + 3u]) << 16)) : uvec2(0u);
        w.d[k] = inside ? unpackHalf2x16(uint(W[b])).x : 0.0;
    }
    return w;
}
float dot_w(WS w, XS x) {
    float acc = 0.0;
    [[unroll]] for (uint k = 0u; k < 4u; ++k)
        acc += w.d[k] * x.d[k] * float(sdot4(x.q[k].x, w.q[k].x, 0) + sdot4(x.q[k].y, w.q[k].y, 0));
    return acc;
}

#elif defined(WTYPE_Q8_0)
// 34-byte blocks of 32 (2-byte units: d, then 16 units of int8 pairs). Four parts of 4 blocks: in
// part k, the 8 lanes l = 8j .. 8j + 7 share block 16s + 4k + j, lane l taking its int8 4(l & 7) .. + 3
// (two 16-bit loads: blocks are only 2-aligned) and the matching vec4 of x.
#define MV_STEP 512u
struct XS {
    vec4 v[4];
};
uint q8_block(uint s, uint k) { return 16u * s + 4u * k + (lane >> 3); }
XS load_x(uint xo, uint s) {
    XS x;
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint e = 32u * q8_block(s, k) + 4u * (lane & 7u);
        x.v[k] = e < p.cols ? X4[(xo + e) >> 2] : vec4(0.0);
    }
    return x;
}
float row_dot(uint wrow, uint s, XS x) {
    float acc = 0.0;
    const uint q = 1u + 2u * (lane & 7u);
    [[unroll]] for (uint k = 0u; k < 4u; ++k) {
        const uint blk = q8_block(s, k);
        if (32u * blk < p.cols) {
            const uint b = wrow + 17u * blk;
            const vec4 w = vec4(i8x2(uint(W[b + q])), i8x2(uint(W[b + q + 1u])));
            acc += unpackHalf2x16(uint(W[b])).x * dot(w, x.v[k]);
        }
    }
    return acc;
}

#elif (defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)) && defined(XQ8) && defined(KQ_WIDE)
// The _q8w variants: 4 lanes per super-block, twice the bytes per lane of the layout below, so the
// per-lane costs that do not scale with the bytes (header load, scale and min unpacking, the mins'
// term, the float epilogue) are paid once per 64 weights, not 32. A step is 8 super-blocks: lane l
// takes group pair g = l & 3 of super-block 8s + (l >> 2), qs bytes 32g .. + 31 (two uvec4), i.e.
// elements 64g + i (low nibbles, group 2g) and 64g + 32 + i (high, group 2g + 1), i = 0..31, and x's
// int8 of both (four uvec4). Q5_K's fifth bits: qh bytes 0 .. 31, bits 2g and 2g + 1. ops.cpp picks
// them for rows of 2048 or more (a shorter row would leave most lanes idle).
#define MV_STEP 2048u
struct XS {
    uvec4 lo[2], hi[2];  // int8 of the lane's elements in group 2g and 2g + 1
    vec2 d;              // their blocks' scales
    vec2 s;              // their blocks' d * sum(q) (the mins' term)
};
uint kq_block(uint s) { return 8u * s + (lane >> 2); }
XS load_x(uint xo, uint s) {
    XS x;
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) {
        x.lo[0] = x.lo[1] = x.hi[0] = x.hi[1] = uvec4(0u);
        x.d = x.s = vec2(0.0);
        return x;
    }
    const uint e = xo + 256u * sb + 64u * (lane & 3u);  // first element of group 2g
    x.lo[0] = XQ4[e >> 4];
    x.lo[1] = XQ4[(e >> 4) + 1u];
    x.hi[0] = XQ4[(e >> 4) + 2u];
    x.hi[1] = XQ4[(e >> 4) + 3u];
    const vec2 a = XS2[p.xq_soff + (e >> 5)], b = XS2[p.xq_soff + (e >> 5) + 1u];
    x.d = vec2(a.x, b.x);
    x.s = vec2(a.y, b.y);
    return x;
}
#define MV_ROW_DOT
float row_dot(uint wrow, uint s, XS x) {
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) return 0.0;
    const uint g = lane & 3u;
    const uint u = wrow + KQ_UNITS * sb;
    const uvec4 hdr = W[u];
    int ilo = 0, ihi = 0;
    [[unroll]] for (uint h = 0u; h < 2u; ++h) {
        const uvec4 q = W[u + KQ_QS_UNIT + 2u * g + h];
#if defined(WTYPE_Q5_K)
        const uvec4 qh = W[u + 1u + h] >> (2u * g);
        const uvec4 lo = (q & 0x0F0F0F0Fu) | ((qh & 0x01010101u) << 4), hi = ((q >> 4) & 0x0F0F0F0Fu) | ((qh & 0x02020202u) << 3);
#else
        const uvec4 lo = q & 0x0F0F0F0Fu, hi = q & 0xF0F0F0F0u;  // hi: 16 x the quants (scaled back below)
#endif
        [[unroll]] for (uint c = 0u; c < 4u; ++c) {
            ilo += sudot4(x.lo[h][c], lo[c], 0);
            ihi += sudot4(x.hi[h][c], hi[c], 0);
        }
    }
#if defined(WTYPE_Q5_K)
    const float fhi = float(ihi);
#else
    const float fhi = float(ihi) * 0.0625;  // exact: a power of two
#endif
    const vec4 sm = kq_pair_scales(hdr.yzw, g);
    const vec2 dm = unpackHalf2x16(hdr.x);
    return dm.x * (sm.x * x.d.x * float(ilo) + sm.y * x.d.y * fhi) - dm.y * (sm.z * x.s.x + sm.w * x.s.y);
}

#elif (defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)) && defined(XQ8)
// x as int8 (quant_q8.comp's mirror) and integer dot products: 4 products per instruction where the
// float path above spends ~4 instructions per element dequantizing, which held Q4_K at a third of
// F16's bandwidth. A step is 4 super-blocks, 8 lanes each: lane l takes group pair g = (l >> 1) & 3 of
// super-block 4s + (l >> 3), half h = l & 1: qs bytes 32g + 16h .. + 15 (one uvec4), i.e. elements
// 64g + 16h + i (low nibbles, group 2g) and 64g + 32 + 16h + i (high, group 2g + 1), i = 0..15, and
// x's int8 of both (two uvec4). Q5_K's fifth bits: qh bytes 16h .. + 15, bits 2g and 2g + 1.
#define MV_STEP 1024u
struct XS {
    uvec4 lo, hi;  // int8 of the lane's elements in group 2g and 2g + 1
    vec2 d;        // their blocks' scales
    vec2 s;        // their blocks' d * sum(q) (the mins' term), in lanes h = 0 only
};
uint kq_block(uint s) { return 4u * s + (lane >> 3); }
XS load_x(uint xo, uint s) {
    XS x;
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) {
        x.lo = x.hi = uvec4(0u);
        x.d = x.s = vec2(0.0);
        return x;
    }
    const uint g = (lane >> 1) & 3u, h = lane & 1u;
    const uint e = xo + 256u * sb + 64u * g;  // first element of group 2g
    x.lo = XQ4[(e + 16u * h) >> 4];
    x.hi = XQ4[(e + 32u + 16u * h) >> 4];
    const vec2 a = XS2[p.xq_soff + (e >> 5)], b = XS2[p.xq_soff + (e >> 5) + 1u];
    x.d = vec2(a.x, b.x);
    x.s = h == 0u ? vec2(a.y, b.y) : vec2(0.0);
    return x;
}
struct WS {
    uvec4 lo, hi;  // the lane's weights of group 2g and 2g + 1, one byte each
    vec4 sm;       // their scales (xy) and mins (zw)
    vec2 dm;       // the super-block's d, dmin
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) {
        w.lo = w.hi = uvec4(0u);
        w.sm = vec4(0.0);
        w.dm = vec2(0.0);
        return w;
    }
    const uint g = (lane >> 1) & 3u, h = lane & 1u;
    const uint u = wrow + KQ_UNITS * sb;
    const uvec4 hdr = W[u];
    const uvec4 q = W[u + KQ_QS_UNIT + 2u * g + h];
    w.lo = q & 0x0F0F0F0Fu;
    w.hi = (q >> 4) & 0x0F0F0F0Fu;
#if defined(WTYPE_Q5_K)
    const uvec4 qh = W[u + 1u + h] >> (2u * g);
    w.lo |= (qh & 0x01010101u) << 4;
    w.hi |= (qh & 0x02020202u) << 3;
#endif
    w.sm = kq_pair_scales(hdr.yzw, g);
    w.dm = unpackHalf2x16(hdr.x);
    return w;
}
float dot_w(WS w, XS x) {
    int ilo = 0, ihi = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        ilo += sudot4(x.lo[c], w.lo[c], 0);
        ihi += sudot4(x.hi[c], w.hi[c], 0);
    }
    return w.dm.x * (w.sm.x * x.d.x * float(ilo) + w.sm.y * x.d.y * float(ihi)) - w.dm.y * (w.sm.z * x.s.x + w.sm.w * x.s.y);
}
// The single-column dot in one piece, not dot_w(load_w()): the same arithmetic, but the split form
// measured 2% slower for 8B decode on the H200 (280 vs 286 tok/s in one call).
#define MV_ROW_DOT
float row_dot(uint wrow, uint s, XS x) {
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) return 0.0;
    const uint g = (lane >> 1) & 3u, h = lane & 1u;
    const uint u = wrow + KQ_UNITS * sb;
    const uvec4 hdr = W[u];
    const uvec4 q = W[u + KQ_QS_UNIT + 2u * g + h];
#if defined(WTYPE_Q5_K)
    const uvec4 qh = W[u + 1u + h] >> (2u * g);
    const uvec4 lo = (q & 0x0F0F0F0Fu) | ((qh & 0x01010101u) << 4), hi = ((q >> 4) & 0x0F0F0F0Fu) | ((qh & 0x02020202u) << 3);
    const float hi_scale = 1.0;
#else
    const uvec4 lo = q & 0x0F0F0F0Fu, hi = q & 0xF0F0F0F0u;  // hi: 16 x the quants, one instruction fewer
    const float hi_scale = 0.0625;
#endif
    int ilo = 0, ihi = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        ilo += sudot4(x.lo[c], lo[c], 0);
        ihi += sudot4(x.hi[c], hi[c], 0);
    }
    const vec4 sm = kq_pair_scales(hdr.yzw, g);
    const vec2 dm = unpackHalf2x16(hdr.x);
    return dm.x * (sm.x * x.d.x * float(ilo) + sm.y * x.d.y * (float(ihi) * hi_scale)) - dm.y * (sm.z * x.s.x + sm.w * x.s.y);
}

#elif defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
// Super-blocks of 256 (16-byte units: Q4_K 9 = header, qs[128]; Q5_K 11 = header, qh[32], qs[128]).
// A step is 2 super-blocks, 16 lanes each: lane l works in super-block 2s + (l >> 4) on group pair
// g = (l >> 2) & 3, i.e. elements 64g + i (low nibble of qs[32g + i], group 2g) and 64g + 32 + i (high
// nibble, group 2g + 1) for i in 4b .. 4b + 3 and 16 + 4b .. 16 + 4b + 3, b = l & 3: two words of qs and
// four vec4 of x. Q5_K's fifth bit of element 32j + i is bit j of qh[i]: the same two qh words for all g.
#if defined(WTYPE_Q4_K)
#define KQ_UNITS 9u
#define KQ_QS 4u  // words before qs
#else
#define KQ_UNITS 11u
#define KQ_QS 12u
#endif
#define MV_STEP 512u
struct XS {
    vec4 lo0, lo1, hi0, hi1;  // x of the lane's elements in group 2g (lo) and 2g + 1 (hi)
    float slo, shi;           // their sums (the mins' term)
};
uint kq_block(uint s) { return 2u * s + (lane >> 4); }
XS load_x(uint xo, uint s) {
    XS x;
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) {
        x.lo0 = x.lo1 = x.hi0 = x.hi1 = vec4(0.0);
        x.slo = x.shi = 0.0;
        return x;
    }
    const uint i = ((xo + 256u * sb) >> 2) + 16u * ((lane >> 2) & 3u) + (lane & 3u);
    x.lo0 = X4[i];
    x.lo1 = X4[i + 4u];
    x.hi0 = X4[i + 8u];
    x.hi1 = X4[i + 12u];
    x.slo = hsum(x.lo0 + x.lo1);
    x.shi = hsum(x.hi0 + x.hi1);
    return x;
}
float row_dot(uint wrow, uint s, XS x) {
    const uint sb = kq_block(s);
    if (256u * sb >= p.cols) return 0.0;
    const uint g = (lane >> 2) & 3u, b = lane & 3u;
    const uint u = wrow + KQ_UNITS * sb;
    const uvec4 hdr = W[u];
    const uint qi = 4u * u + KQ_QS + 8u * g + b;
    const uint w0 = W1[qi], w1 = W1[qi + 4u];
    uint l0 = w0 & 0x0F0F0F0Fu, l1 = w1 & 0x0F0F0F0Fu, h0 = (w0 >> 4) & 0x0F0F0F0Fu, h1 = (w1 >> 4) & 0x0F0F0F0Fu;
#if defined(WTYPE_Q5_K)
    const uint qh0 = W1[4u * u + 4u + b] >> (2u * g), qh1 = W1[4u * u + 8u + b] >> (2u * g);
    l0 |= (qh0 & 0x01010101u) << 4;
    l1 |= (qh1 & 0x01010101u) << 4;
    h0 |= (qh0 & 0x02020202u) << 3;
    h1 |= (qh1 & 0x02020202u) << 3;
#endif
    const float sq_lo = dot(bytes4(l0), x.lo0) + dot(bytes4(l1), x.lo1);
    const float sq_hi = dot(bytes4(h0), x.hi0) + dot(bytes4(h1), x.hi1);
    const vec4 sm = kq_pair_scales(hdr.yzw, g);
    const vec2 dm = unpackHalf2x16(hdr.x);
    return dm.x * (sm.x * sq_lo + sm.y * sq_hi) - dm.y * (sm.z * x.slo + sm.w * x.shi);
}

#elif defined(WTYPE_Q6_K) && defined(XQ8)
// Integer dots over x's int8 mirror. Layout as below (element 32t + i of half h: nibble t >> 1 of
// ql[64h + 32(t & 1) + i], bits 2t, 2t + 1 of qh[32h + i], scale scales[8h + 2t + i / 16], value
// q - 32). A step is 4 super-blocks, 8 lanes each: lane l takes half h = (l >> 2) & 1, u = (l >> 1) & 1
// and sixteen j = l & 1 of super-block 4s + (l >> 3), i.e. i = 16j .. 16j + 15 for t = u (low nibbles)
// and t = u + 2 (high nibbles): 16 bytes of ql and 16 of qh (16-bit loads: blocks are 2-aligned)
// serve 32 weights. q is unsigned: sum (q - 32) x = sudot(x, q) - 32 sdot(x, 1).
#define MV_STEP 1024u
struct XS {
    uvec4 q[2];  // x's int8 for t = u and u + 2
    vec2 d;      // their blocks' scales
};
uint q6_block(uint s) { return 4u * s + (lane >> 3); }
XS load_x(uint xo, uint s) {
    XS x;
    const uint sb = q6_block(s);
    if (256u * sb >= p.cols) {
        x.q[0] = x.q[1] = uvec4(0u);
        x.d = vec2(0.0);
        return x;
    }
    const uint h = (lane >> 2) & 1u, u = (lane >> 1) & 1u, j = lane & 1u;
    const uint e = xo + 256u * sb + 128u * h + 32u * u + 16u * j;  // element 32u + 16j of half h
    x.q[0] = XQ4[e >> 4];
    x.q[1] = XQ4[(e + 64u) >> 4];  // t = u + 2
    x.d = vec2(XS2[p.xq_soff + (e >> 5)].x, XS2[p.xq_soff + ((e + 64u) >> 5)].x);
    return x;
}
struct WS {
    uvec4 q0, q2;  // the lane's 6-bit weights for t = u and u + 2, one byte each
    vec2 sc;       // d * their scales
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint sb = q6_block(s);
    if (256u * sb >= p.cols) {
        w.q0 = w.q2 = uvec4(0u);
        w.sc = vec2(0.0);
        return w;
    }
    const uint h = (lane >> 2) & 1u, u = (lane >> 1) & 1u, j = lane & 1u;
    const uint b = wrow + 105u * sb;
    const uint lo = b + 32u * h + 16u * u + 8u * j, hi = b + 64u + 16u * h + 8u * j;  // ql, qh (16-bit units)
    const uvec4 ql = u16x8(lo), qh = u16x8(hi);
    w.q0 = (ql & 0x0F0F0F0Fu) | (((qh >> (2u * u)) & 0x03030303u) << 4);
    w.q2 = ((ql >> 4) & 0x0F0F0F0Fu) | (((qh >> (2u * u + 4u)) & 0x03030303u) << 4);
    // scales[8h + 2t + j] for t = u and u + 2: int8 at byte 8h + 2u + j and + 4 of the scales
    const uint sc = uint(W[b + 96u + 4u * h + u]) | (uint(W[b + 98u + 4u * h + u]) << 16);  // bytes 8h+2u, +1, 8h+2u+4, +5
    w.sc = unpackHalf2x16(uint(W[b + 104u])).x * vec2(float(int(sc << (24u - 8u * j)) >> 24), float(int(sc << (8u - 8u * j)) >> 24));
    return w;
}
float dot_w(WS w, XS x) {
    int s0 = 0, s2 = 0, x0 = 0, x2 = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        s0 += sudot4(x.q[0][c], w.q0[c], 0);
        s2 += sudot4(x.q[1][c], w.q2[c], 0);
        x0 += sdot4(x.q[0][c], 0x01010101u, 0);
        x2 += sdot4(x.q[1][c], 0x01010101u, 0);
    }
    return w.sc.x * x.d.x * float(s0 - 32 * x0) + w.sc.y * x.d.y * float(s2 - 32 * x2);
}

#elif defined(WTYPE_Q6_K) || ((defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K)) && !defined(XQ8))
// Q6_K (Q2_K and Q3_K split the same way, below): 210-byte super-blocks of 256 (2-byte units: ql
// 0..63, qh 64..95, int8 scales 96..103, d 104). A step
// is 2 super-blocks, 16 lanes each: lane l takes half h = (l >> 3) & 1 of super-block 2s + (l >> 4) and
// in it elements 32t + 4b .. + 3 for t = 0..3, b = l & 7 (8 lanes read a whole line of x per load).
// Element 32t + i of half h: nibble t >> 1 of ql[64h + 32(t & 1) + i], bits 2t, 2t + 1 of qh[32h + i],
// scale scales[8h + 2t + i / 16], value q - 32.
#define MV_STEP 512u
struct XS {
    vec4 v[4];
    float s[4];  // sums of v[t]: the quants' offset (Q6_K 32, Q3_K 4), Q2_K's mins
};
uint q6_block(uint s) { return 2u * s + (lane >> 4); }
XS load_x(uint xo, uint s) {
    XS x;
    const uint sb = q6_block(s);
    const bool inside = 256u * sb < p.cols;
    const uint i = ((xo + 256u * sb + 128u * ((lane >> 3) & 1u)) >> 2) + (lane & 7u);
    [[unroll]] for (uint t = 0u; t < 4u; ++t) {
        x.v[t] = inside ? X4[i + 8u * t] : vec4(0.0);
        x.s[t] = hsum(x.v[t]);
    }
    return x;
}
#if defined(WTYPE_Q6_K)
uint u16pair(uint i) { return uint(W[i]) | (uint(W[i + 1u]) << 16); }
float row_dot(uint wrow, uint s, XS x) {
    const uint sb = q6_block(s);
    if (256u * sb >= p.cols) return 0.0;
    const uint h = (lane >> 3) & 1u, b = lane & 7u;
    const uint u = wrow + 105u * sb;
    const uint ql[2] = uint[2](u16pair(u + 32u * h + 2u * b), u16pair(u + 32u * h + 16u + 2u * b));
    const uint qh = u16pair(u + 64u + 16u * h + 2u * b);
    float acc = 0.0;
    [[unroll]] for (uint t = 0u; t < 4u; ++t) {
        const uint q = ((ql[t & 1u] >> (4u * (t >> 1))) & 0x0F0F0F0Fu) | (((qh >> (2u * t)) & 0x03030303u) << 4);
        const float sc = float(i8_of(uint(W[u + 96u + 4u * h + t]), b >> 2));
        acc += sc * (dot(bytes4(q), x.v[t]) - 32.0 * x.s[t]);
    }
    return unpackHalf2x16(uint(W[u + 104u])).x * acc;
}
#else
// Q2_K / Q3_K (quants.glsl's layouts), lanes as Q6_K's: lane l takes half h = (l >> 3) & 1 of
// super-block 2s + (l >> 4) and in it elements 32j + 4b .. + 3 for j = 0..3, b = l & 7: bits 2j of the
// qs word at byte 32h + 4b (Q3_K: bit 4h + j of the hmask word at byte 4b), scale group 8h + 2j + b / 4.
float row_dot(uint wrow, uint s, XS x) {
    const uint sb = q6_block(s);
    if (256u * sb >= p.cols) return 0.0;
    const uint h = (lane >> 3) & 1u, b = lane & 7u;
    const uint u = wrow + K2_UNITS * sb;
#if defined(WTYPE_Q2_K)
    const uint qs = W[u + 4u + 8u * h + b];
    float acc = 0.0, mins = 0.0;
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        const uint sc = (W[u + 2u * h + (j >> 1)] >> (16u * (j & 1u) + 8u * (b >> 2))) & 0xFFu;
        acc += float(sc & 0xFu) * dot(bytes4((qs >> (2u * j)) & 0x03030303u), x.v[j]);
        mins += float(sc >> 4) * x.s[j];
    }
    const vec2 dm = unpackHalf2x16(W[u + 20u]);
    return dm.x * acc - dm.y * mins;
#else
    const uint qs = uint(W[u + 16u + 16u * h + 2u * b]) | (uint(W[u + 17u + 16u * h + 2u * b]) << 16);
    const uint hm = uint(W[u + 2u * b]) | (uint(W[u + 1u + 2u * b]) << 16);
    float acc = 0.0;
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        const uint q = ((qs >> (2u * j)) & 0x03030303u) | (((hm >> (4u * h + j)) & 0x01010101u) << 2);
        acc += q3_scale(u, 8u * h + 2u * j + (b >> 2)) * (dot(bytes4(q), x.v[j]) - 4.0 * x.s[j]);
    }
    return unpackHalf2x16(uint(W[u + 54u])).x * acc;
#endif
}
#endif

#elif (defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)) && defined(XQ8)
// Integer dots over x's int8 mirror, whose blocks of 32 are Q4_0's: a step is 32 blocks, a lane each:
// its 16 bytes of qs (low nibbles elements 0-15, high 16-31) against the block's 32 int8 of x, 8
// OpSUDot; sum (q - 8) x = sudot(x, q) - 8 sum(x), sum(x) the mirror's d * sum q. Q5_0 / Q5_1: the
// fifth bits (bit e of qh: element e) spread to bit 4 of the quants' bytes; Q5_0 sum d (q - 16) x,
// Q5_1 sum (d q + m) x: the pair (d, 16 d) / (d, -m) and one formula. IQ4_NL / IQ4_XS (its sub-blocks):
// the 16 bytes become the table's int8 (quants.glsl's shared table), 8 OpSDot, times d_w * d_x.
#include "mv_x32.glsl"
#if defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
#define MV_TABLE
void mv_table_init() { iq4_table_init(); }
struct WS {
    uvec4 lo, hi;  // the table's int8 of elements 0-15 and 16-31
    float d;
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint blk0 = x32_block(s), blk = min(blk0, (p.cols >> 5) - 1u);
    const bool inside = 32u * blk0 < p.cols;
#if defined(WTYPE_IQ4_NL)
    const uint b = wrow + 9u * blk;
    const uvec4 q = u16x8(b + 1u);
    w.d = inside ? unpackHalf2x16(uint(W[b])).x : 0.0;
#else
    const uint b = wrow + 34u * (blk >> 3), u = b + 2u + 4u * (blk & 7u);
    const uvec4 q = uvec4(W[u], W[u + 1u], W[u + 2u], W[u + 3u]);
    w.d = inside ? iq4xs_scale(b, blk & 7u) : 0.0;
#endif
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        w.lo[c] = iq4_word(q[c], 0u);
        w.hi[c] = iq4_word(q[c], 4u);
    }
    return w;
}
float dot_w(WS w, XS x) {
    int i = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c) i += sdot4(w.lo[c], x.lo[c], 0) + sdot4(w.hi[c], x.hi[c], 0);
    return w.d * x.ds.x * float(i);
}
#elif defined(WTYPE_Q4_0)
struct WS {
    uvec4 q;
    float d;
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint blk = x32_block(s);
    const bool inside = 32u * blk < p.cols;
    const uint b = wrow + 9u * min(blk, (p.cols >> 5) - 1u);
    w.q = inside ? u16x8(b + 1u) : uvec4(0u);
    w.d = inside ? unpackHalf2x16(uint(W[b])).x : 0.0;
    return w;
}
float dot_w(WS w, XS x) {
    int i = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c)
        i += sudot4(x.lo[c], w.q[c] & 0x0F0F0F0Fu, 0) + sudot4(x.hi[c], (w.q[c] >> 4) & 0x0F0F0F0Fu, 0);
    return w.d * (x.ds.x * float(i) - 8.0 * x.ds.y);
}
#else
struct WS {
    uvec4 q;  // qs
    uint qh;
    vec2 dm;  // (d, 16 d) or (d, -m)
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint blk = x32_block(s);
    const bool inside = 32u * blk < p.cols;
    const uint b = wrow + Q5_UNITS * min(blk, (p.cols >> 5) - 1u);
    w.q = inside ? u16x8(b + Q5_QH + 2u) : uvec4(0u);
    w.qh = inside ? uint(W[b + Q5_QH]) | (uint(W[b + Q5_QH + 1u]) << 16) : 0u;
    const float d = inside ? unpackHalf2x16(uint(W[b])).x : 0.0;
#if defined(WTYPE_Q5_0)
    w.dm = vec2(d, 16.0 * d);
#else
    w.dm = vec2(d, inside ? -unpackHalf2x16(uint(W[b + 1u])).x : 0.0);
#endif
    return w;
}
float dot_w(WS w, XS x) {
    int i = 0;
    [[unroll]] for (uint c = 0u; c < 4u; ++c)
        i += sudot4(x.lo[c], (w.q[c] & 0x0F0F0F0Fu) | q5_high4(w.qh >> (4u * c)), 0) +
             sudot4(x.hi[c], ((w.q[c] >> 4) & 0x0F0F0F0Fu) | q5_high4(w.qh >> (16u + 4u * c)), 0);
    return w.dm.x * x.ds.x * float(i) - w.dm.y * x.ds.y;
}
#endif

#elif (defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K)) && defined(XQ8)
// Integer dots over x's int8 mirror. A step is 8 super-blocks, 4 lanes each: lane l takes half
// h = (l >> 1) & 1 and sixteen c = l & 1 of super-block 8s + (l >> 2), i.e. for j = 0..3 the elements
// 128h + 32j + 16c .. + 15 (scale group 8h + 2j + c, one scale each): 16 bytes of qs (bits 2j of
// each; Q3_K: 16 of hmask, bit 4h + j) against four 16-byte pieces of x, 16 OpSUDot. The groups' sums
// of x (the mins' and the offset's term) come once per step for all rows.
#define MV_STEP 2048u
struct XS {
    uvec4 q[4];  // x's int8 of the lane's elements for j = 0..3
    vec4 d;      // their blocks' scales
    ivec4 sum;   // sums of their int8
};
uint k2_block(uint s) { return 8u * s + (lane >> 2); }
XS load_x(uint xo, uint s) {
    XS x;
    const uint sb = k2_block(s);
    const bool inside = 256u * sb < p.cols;
    const uint e = xo + 256u * sb + 128u * ((lane >> 1) & 1u) + 16u * (lane & 1u);
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        x.q[j] = inside ? XQ4[(e + 32u * j) >> 4] : uvec4(0u);
        x.d[j] = inside ? XS2[p.xq_soff + ((e + 32u * j) >> 5)].x : 0.0;
        int t = 0;
        [[unroll]] for (uint c = 0u; c < 4u; ++c) t += sdot4(x.q[j][c], 0x01010101u, 0);
        x.sum[j] = t;
    }
    return x;
}
struct WS {
    uvec4 q;    // the lane's qs bytes: bits 2j for group j
#if defined(WTYPE_Q3_K)
    uvec4 hm;   // its hmask bytes: bit 4h + j
#endif
    vec4 sc;    // d * the groups' scales
#if defined(WTYPE_Q2_K)
    vec4 mn;    // dmin * their mins
#endif
};
WS load_w(uint wrow, uint s) {
    WS w;
    const uint sb = k2_block(s), h = (lane >> 1) & 1u, c = lane & 1u;
    const bool inside = 256u * sb < p.cols;
    const uint u = wrow + K2_UNITS * min(sb, (p.cols >> 8) - 1u);
#if defined(WTYPE_Q2_K)
    const uint qo = u + 4u + 8u * h + 4u * c;  // words
    w.q = inside ? uvec4(W[qo], W[qo + 1u], W[qo + 2u], W[qo + 3u]) : uvec4(0u);
    // scale bytes 8h + 2j + c: byte c and 2 + c of words 2h (j = 0, 1) and 2h + 1 (j = 2, 3)
    const uint s0 = W[u + 2u * h] >> (8u * c), s1 = W[u + 2u * h + 1u] >> (8u * c);
    const uvec4 sb4 = uvec4(s0 & 0xFFu, (s0 >> 16) & 0xFFu, s1 & 0xFFu, (s1 >> 16) & 0xFFu);
    const vec2 dm = inside ? unpackHalf2x16(W[u + 20u]) : vec2(0.0);
    w.sc = dm.x * vec4(sb4 & 0xFu);
    w.mn = dm.y * vec4(sb4 >> 4);
#else
    w.q = inside ? u16x8(u + 16u + 16u * h + 8u * c) : uvec4(0u);
    w.hm = inside ? u16x8(u + 8u * c) : uvec4(0u);
    // the 12 scale bytes and d: bytes 0-7 low nibbles (k < 8) / high (k >= 8), 8-11 the top 2 bits
    const uvec4 sw = u16x8(u + 48u);
    const float d = inside ? unpackHalf2x16(sw.w & 0xFFFFu).x : 0.0;
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        const uint k = 2u * j + c;  // group 8h + k; bytes k (low 4 bits) and 8 + (k & 3) (high 2)
        const uint lo = ((j < 2u ? sw.x : sw.y) >> (8u * (k & 3u) + 4u * h)) & 0xFu;
        const uint hi = (sw.z >> (8u * (k & 3u) + 2u * (2u * h + (j >> 1)))) & 3u;
        w.sc[j] = d * float(int(lo | (hi << 4)) - 32);
    }
#endif
    return w;
}
float dot_w(WS w, XS x) {
    float acc = 0.0;
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
        int i = 0;
        [[unroll]] for (uint c = 0u; c < 4u; ++c) {
#if defined(WTYPE_Q2_K)
            i += sudot4(x.q[j][c], (w.q[c] >> (2u * j)) & 0x03030303u, 0);
#else
            const uint hb = 4u * ((lane >> 1) & 1u) + j;  // the third bit's place in hmask: 4h + j
            const uint q = ((w.q[c] >> (2u * j)) & 0x03030303u) | (((w.hm[c] >> hb) & 0x01010101u) << 2);
            i += sudot4(x.q[j][c], q, 0);
#endif
        }
#if defined(WTYPE_Q2_K)
        acc += x.d[j] * (w.sc[j] * float(i) - w.mn[j] * float(x.sum[j]));
#else
        acc += x.d[j] * w.sc[j] * float(i - 4 * x.sum[j]);
#endif
    }
    return acc;
}

#elif defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
// 18-byte blocks of 32 (2-byte units: d, qs[16]). A step is 16 blocks, 2 lanes each: lane l takes half
// h = l & 1 of block 16s + (l >> 1), i.e. qs[8h .. 8h + 7]: elements 8h + i (low nibbles) and 16 + 8h
// + i (high nibbles), i < 8; two lanes read a block's 32 floats of x (a whole line). Q5_0's 22-byte
// blocks (d, qh[4], qs) and Q5_1's 24 (d, m, qh, qs) the same way, element e's fifth bit bit e of qh:
// Q5_0 x = d (q - 16), Q5_1 x = d q + m. IQ4_NL's blocks (Q4_0's) and IQ4_XS's sub-blocks (8 to a
// super-block) too, each nibble the table's value times the block's scale.
#define MV_STEP 512u
struct XS {
    vec4 lo0, lo1, hi0, hi1;
    float s;  // their sum: the quants' offset (8, 16) or Q5_1's min
};
uint q40_block(uint s) { return 16u * s + (lane >> 1); }
XS load_x(uint xo, uint s) {
    XS x;
    const bool inside = 32u * q40_block(s) < p.cols;
    const uint i = (xo + 32u * q40_block(s) + 8u * (lane & 1u)) >> 2;
    x.lo0 = inside ? X4[i] : vec4(0.0);
    x.lo1 = inside ? X4[i + 1u] : vec4(0.0);
    x.hi0 = inside ? X4[i + 4u] : vec4(0.0);
    x.hi1 = inside ? X4[i + 5u] : vec4(0.0);
    x.s = hsum((x.lo0 + x.lo1) + (x.hi0 + x.hi1));
    return x;
}
#if defined(WTYPE_Q4_0)
float row_dot(uint wrow, uint s, XS x) {
    const uint blk = q40_block(s);
    if (32u * blk >= p.cols) return 0.0;
    const uint u = wrow + 9u * blk + 1u + 4u * (lane & 1u);
    const uint w0 = uint(W[u]) | (uint(W[u + 1u]) << 16), w1 = uint(W[u + 2u]) | (uint(W[u + 3u]) << 16);
    const float sq = dot(bytes4(w0 & 0x0F0F0F0Fu), x.lo0) + dot(bytes4(w1 & 0x0F0F0F0Fu), x.lo1) +
                     dot(bytes4((w0 >> 4) & 0x0F0F0F0Fu), x.hi0) + dot(bytes4((w1 >> 4) & 0x0F0F0F0Fu), x.hi1);
    return unpackHalf2x16(uint(W[wrow + 9u * blk])).x * (sq - 8.0 * x.s);
}
#elif defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
float row_dot(uint wrow, uint s, XS x) {
    const uint blk = q40_block(s), h = lane & 1u;
    if (32u * blk >= p.cols) return 0.0;
#if defined(WTYPE_IQ4_NL)
    const uint u = wrow + 9u * blk + 1u + 4u * h;
    const uint w0 = uint(W[u]) | (uint(W[u + 1u]) << 16), w1 = uint(W[u + 2u]) | (uint(W[u + 3u]) << 16);
    const float d = unpackHalf2x16(uint(W[wrow + 9u * blk])).x;
#else
    const uint b = wrow + 34u * (blk >> 3), j = blk & 7u, u = b + 2u + 4u * j + 2u * h;
    const uint w0 = W[u], w1 = W[u + 1u];
    const float d = iq4xs_scale(b, j);
#endif
    return d * (dot(iq4_kv4(w0 & 0x0F0F0F0Fu), x.lo0) + dot(iq4_kv4(w1 & 0x0F0F0F0Fu), x.lo1) +
                dot(iq4_kv4((w0 >> 4) & 0x0F0F0F0Fu), x.hi0) + dot(iq4_kv4((w1 >> 4) & 0x0F0F0F0Fu), x.hi1));
}
#else
float row_dot(uint wrow, uint s, XS x) {
    const uint blk = q40_block(s), h = lane & 1u;
    if (32u * blk >= p.cols) return 0.0;
    const uint b = wrow + Q5_UNITS * blk, u = b + Q5_QH + 2u + 4u * h;
    const uint qh = uint(W[b + Q5_QH]) | (uint(W[b + Q5_QH + 1u]) << 16);
    const uint w0 = uint(W[u]) | (uint(W[u + 1u]) << 16), w1 = uint(W[u + 2u]) | (uint(W[u + 3u]) << 16);
    const uint lb = qh >> (8u * h), hb = qh >> (16u + 8u * h);  // fifth bits of elements 8h .., 16 + 8h ..
    const float sq = dot(bytes4((w0 & 0x0F0F0F0Fu) | q5_high4(lb)), x.lo0) + dot(bytes4((w1 & 0x0F0F0F0Fu) | q5_high4(lb >> 4)), x.lo1) +
                     dot(bytes4(((w0 >> 4) & 0x0F0F0F0Fu) | q5_high4(hb)), x.hi0) +
                     dot(bytes4(((w1 >> 4) & 0x0F0F0F0Fu) | q5_high4(hb >> 4)), x.hi1);
#if defined(WTYPE_Q5_0)
    return unpackHalf2x16(uint(W[b])).x * (sq - 16.0 * x.s);
#else
    return unpackHalf2x16(uint(W[b])).x * sq + unpackHalf2x16(uint(W[b + 1u])).x * x.s;
#endif
}
#endif

#elif defined(IQ_GRID)
#include "mv_iq.glsl"

#else
#error "define one of WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q4_0, WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q8_0, WTYPE_Q8_0R, WTYPE_Q2_K, WTYPE_Q3_K, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K, WTYPE_IQ4_NL, WTYPE_IQ4_XS or a grid type (iq_grid.glsl)"
#endif

#if defined(XQ8) && !defined(MV_ROW_DOT)
// The integer-dot types split a row's dot into its weights (load_w: loads and unpacks, once per step
// and row) and their products with one column of x (dot_w), so matmuls reuse the unpacked weights for
// every column.
float row_dot(uint wrow, uint s, XS x) { return dot_w(load_w(wrow, s), x); }
#endif
