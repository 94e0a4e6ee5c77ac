// One 128-wide K step of a weight row for the tiled prompt products (mm.comp, mmt.comp), per type:
// gw_load() reads a quarter of it ("part" 0..3) into registers, gw_nibbles()/the fields give its int8
// values, and (MM_F16) gw_pieces() its two 16-element pieces with their offsets in the step, scale and
// min, for float16 tiles. The includer defines MatvecPush p, W (quants.glsl) and WH for Q8_0R.

#ifdef MM_F16
// The 16 signed bytes of q times d, minus m, as float16: two uvec4 stores at arr[o], arr[o + 1].
uvec2 half4(uint q, float d, float m) {
    const vec4 v = d * vec4(int(q << 24) >> 24, int(q << 16) >> 24, int(q << 8) >> 24, int(q) >> 24) - m;
    return uvec2(packHalf2x16(v.xy), packHalf2x16(v.zw));
}
#define STORE16(arr, o, q, d, m)                                                                       \
    {                                                                                                  \
        const uvec2 h0_ = half4((q)[0], d, m), h1_ = half4((q)[1], d, m), h2_ = half4((q)[2], d, m),   \
                    h3_ = half4((q)[3], d, m);                                                         \
        arr[(o)] = uvec4(h0_, h1_);                                                                    \
        arr[(o) + 1u] = uvec4(h2_, h3_);                                                               \
    }
#endif

#if defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
// Step kt is half h = kt & 1 of super-block kt / 2: groups 4h .. 4h + 3, qs bytes 64h .. 64h + 63.
// Part q: qs bytes 64h + 16q .. + 15, i.e. groups 2(q >> 1) (low nibbles) and + 1 (high) of the half,
// 16 elements each from 16(q & 1); and group q's scale and min.
struct GW {
    uvec4 hdr, q;
#if defined(WTYPE_Q5_K)
    uvec4 qh;
#endif
};
GW gw_load(uint wrow, uint kt, uint part) {
    GW g;
    const uint u = wrow + KQ_UNITS * (kt >> 1), h = kt & 1u;
    g.hdr = W[u];
    g.q = W[u + KQ_QS_UNIT + 4u * h + part];
#if defined(WTYPE_Q5_K)
    g.qh = W[u + 1u + (part & 1u)];
#endif
    return g;
}
// The part's 16 low nibbles (32-block 2 (part >> 1) of the step, from 16 (part & 1)) and 16 high ones
// (the next 32-block), fifth bits added for Q5_K.
void gw_nibbles(GW g, uint kt, uint part, out uvec4 lo, out uvec4 hi) {
    lo = g.q & 0x0F0F0F0Fu;
    hi = (g.q >> 4) & 0x0F0F0F0Fu;
#if defined(WTYPE_Q5_K)
    const uvec4 qh = g.qh >> (4u * (kt & 1u) + 2u * (part >> 1));  // fifth bits: bit j of qh[l] for group j
    lo |= (qh & 0x01010101u) << 4;
    hi |= (qh & 0x02020202u) << 3;
#endif
}
#ifdef MM_F16
void gw_pieces(GW g, uint kt, uint part, out uvec4 q[2], out vec2 dm[2], out uint k[2]) {
    const uint pr = part >> 1, grp = 4u * (kt & 1u) + 2u * pr;
    gw_nibbles(g, kt, part, q[0], q[1]);
    const vec2 d = unpackHalf2x16(g.hdr.x);
    [[unroll]] for (uint i = 0u; i < 2u; ++i) {
        float sc, m;
        kq_scale_min(grp + i, g.hdr.yzw, sc, m);
        dm[i] = vec2(d.x * sc, d.y * m);
        k[i] = 64u * pr + 32u * i + 16u * (part & 1u);
    }
}
#endif

#elif defined(WTYPE_Q6_K)
// 2-byte units (ql 0..63, qh 64..95, int8 scales 96..103, d 104). Step kt is half h = kt & 1 of
// super-block kt / 2: element 32t + i of the half is nibble t >> 1 of ql[64h + 32(t & 1) + i] with
// bits 2t, 2t + 1 of qh[32h + i]. Part q: u = q >> 1, j = q & 1: elements 32u + 16j + i (low nibbles)
// and 32(u + 2) + 16j + i (high), i < 16: 16 bytes of ql and of qh; and 32-block q's two scales
// (with MM_F16 the scales of the part's two pieces).
struct GW {
    uvec4 ql, qh;
    uint sc;
    float d;
};
uint u16pair(uint i) { return uint(W[i]) | (uint(W[i + 1u]) << 16); }
GW gw_load(uint wrow, uint kt, uint part) {
    GW g;
    const uint b = wrow + 105u * (kt >> 1), h = kt & 1u, u = part >> 1, j = part & 1u;
    const uint lo = b + 32u * h + 16u * u + 8u * j, hi = b + 64u + 16u * h + 8u * j;
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        g.ql[c] = u16pair(lo + 2u * c);
        g.qh[c] = u16pair(hi + 2u * c);
    }
#ifdef MM_F16
    // scales[8h + 2u + j] (elements 32u + 16j ..) and scales[8h + 2(u + 2) + j]
    g.sc = uint(W[b + 96u + 4u * h + u]) | (uint(W[b + 96u + 4u * h + u + 2u]) << 16);
#else
    g.sc = uint(W[b + 96u + 4u * h + part]);  // scales[8h + 2q], [8h + 2q + 1]
#endif
    g.d = unpackHalf2x16(uint(W[b + 104u])).x;
    return g;
}
// q - 32 for 4 packed 6-bit values: flip bit 5, and where it was clear (q < 32) set bits 6 and 7.
uvec4 q6_signed(uvec4 q) {
    const uvec4 t = q ^ 0x20202020u;
    return t | ((t & 0x20202020u) * 6u);
}
// The part's signed values: elements 32u + 16j .. (lo) and 32(u + 2) + 16j .. (hi).
void gw_q6(GW g, uint part, out uvec4 lo, out uvec4 hi) {
    const uint u = part >> 1;
    lo = q6_signed((g.ql & 0x0F0F0F0Fu) | (((g.qh >> (2u * u)) & 0x03030303u) << 4));
    hi = q6_signed(((g.ql >> 4) & 0x0F0F0F0Fu) | (((g.qh >> (2u * u + 4u)) & 0x03030303u) << 4));
}
#ifdef MM_F16
void gw_pieces(GW g, uint kt, uint part, out uvec4 q[2], out vec2 dm[2], out uint k[2]) {
    const uint u = part >> 1, j = part & 1u;
    gw_q6(g, part, q[0], q[1]);
    dm[0] = vec2(g.d * float(int(g.sc << (24u - 8u * j)) >> 24), 0.0);
    dm[1] = vec2(g.d * float(int(g.sc << (8u - 8u * j)) >> 24), 0.0);
    k[0] = 32u * u + 16u * j;
    k[1] = 64u + 32u * u + 16u * j;
}
#endif

#elif defined(WTYPE_Q8_0R)
// Repacked Q8_0 rows (quants.glsl): step kt is the row's int8 128kt .. + 127 (8 units) and the scales
// of blocks 4kt .. 4kt + 3. Part q: units 2q, 2q + 1 of the step and block q's scale.
struct GW {
    uvec4 q0, q1;
    float d;
};
GW gw_load(uint wrow, uint kt, uint part) {
    GW g;
    g.q0 = W[wrow + 8u * kt + 2u * part];
    g.q1 = W[wrow + 8u * kt + 2u * part + 1u];
    g.d = unpackHalf2x16(uint(WH[8u * wrow + (p.cols >> 1) + 4u * kt + part])).x;
    return g;
}
#ifdef MM_F16
void gw_pieces(GW g, uint kt, uint part, out uvec4 q[2], out vec2 dm[2], out uint k[2]) {
    q[0] = g.q0;
    q[1] = g.q1;
    dm[0] = dm[1] = vec2(g.d, 0.0);
    k[0] = 32u * part;
    k[1] = 32u * part + 16u;
}
#endif

#elif defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0) || defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K) || \
    defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
// Part q of step kt is the step's 32-block q (elements 128kt + 32q ..): gw_pieces() gives its two
// 16-element pieces as int8 with their (scale, min), which both the int8 tiles (gw_store in mm.comp)
// and the float16 ones take. Q4_0: block 4kt + q, (d, 8d) for q unsigned; Q8_0 (ggml's blocks, as
// routed experts outside VRAM arrive: resident matrices are repacked, WT_Q8_0R): block 4kt + q, (d, 0).
// Q5_0 / Q5_1: Q4_0's nibbles with bit e of qh as element e's fifth bit, (d, 16d) / (d, -m).
// Q2_K / Q3_K: half h = kt & 1 of super-block kt / 2, j = q: bits 2j of qs[32h + l] (Q3_K: bit 4h + j
// of hmask[l], value q - 4 as signed int8), groups 8h + 2j and + 1 (quants.glsl). IQ4_NL: block 4kt + q;
// IQ4_XS: sub-block 4 (kt & 1) + q of super-block kt / 2; the table's int8 (iq4_word), (d, 0).
struct GW {
#if defined(WTYPE_Q4_0) || defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
    uvec4 q;
    float d;
#elif defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
    uvec4 q;
    uint qh;
    vec2 dm;
#elif defined(WTYPE_Q8_0)
    uvec4 q0, q1;
    float d;
#elif defined(WTYPE_Q2_K)
    uvec4 q0, q1;  // qs[32h .. 32h + 31]
    uint sc, dm;   // the groups' scale bytes (low half), d | dmin << 16
#else
    uvec4 q0, q1, m0, m1;  // qs[32h ..], hmask[0 .. 31]
    vec2 sc;               // d * the groups' scales
#endif
};
GW gw_load(uint wrow, uint kt, uint part) {
    GW g;
#if defined(WTYPE_Q4_0)
    const uint b = wrow + 9u * (4u * kt + part);
    g.q = u16x8(b + 1u);
    g.d = unpackHalf2x16(uint(W[b])).x;
#elif defined(WTYPE_IQ4_NL)
    const uint b = wrow + 9u * (4u * kt + part);
    g.q = u16x8(b + 1u);
    g.d = unpackHalf2x16(uint(W[b])).x;
#elif defined(WTYPE_IQ4_XS)
    const uint u = wrow + 34u * (kt >> 1), j = 4u * (kt & 1u) + part, o = u + 2u + 4u * j;
    g.q = uvec4(W[o], W[o + 1u], W[o + 2u], W[o + 3u]);
    g.d = iq4xs_scale(u, j);
#elif defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
    const uint b = wrow + Q5_UNITS * (4u * kt + part);
    g.q = u16x8(b + Q5_QH + 2u);
    g.qh = uint(W[b + Q5_QH]) | (uint(W[b + Q5_QH + 1u]) << 16);
    const float d = unpackHalf2x16(uint(W[b])).x;
#if defined(WTYPE_Q5_0)
    g.dm = vec2(d, 16.0 * d);
#else
    g.dm = vec2(d, -unpackHalf2x16(uint(W[b + 1u])).x);
#endif
#elif defined(WTYPE_Q8_0)
    const uint b = wrow + 17u * (4u * kt + part);
    g.q0 = u16x8(b + 1u);
    g.q1 = u16x8(b + 9u);
    g.d = unpackHalf2x16(uint(W[b])).x;
#elif defined(WTYPE_Q2_K)
    const uint u = wrow + 21u * (kt >> 1), h = kt & 1u, o = u + 4u + 8u * h;
    g.q0 = uvec4(W[o], W[o + 1u], W[o + 2u], W[o + 3u]);
    g.q1 = uvec4(W[o + 4u], W[o + 5u], W[o + 6u], W[o + 7u]);
    g.sc = W[u + 2u * h + (part >> 1)] >> (16u * (part & 1u));
    g.dm = W[u + 20u];
#else
    const uint u = wrow + 55u * (kt >> 1), h = kt & 1u;
    g.q0 = u16x8(u + 16u + 16u * h);
    g.q1 = u16x8(u + 24u + 16u * h);
    g.m0 = u16x8(u);
    g.m1 = u16x8(u + 8u);
    g.sc = unpackHalf2x16(uint(W[u + 54u])).x * vec2(q3_scale(u, 8u * h + 2u * part), q3_scale(u, 8u * h + 2u * part + 1u));
#endif
    return g;
}
void gw_pieces(GW g, uint kt, uint part, out uvec4 q[2], out vec2 dm[2], out uint k[2]) {
#if defined(WTYPE_Q4_0)
    q[0] = g.q & 0x0F0F0F0Fu;
    q[1] = (g.q >> 4) & 0x0F0F0F0Fu;
    dm[0] = dm[1] = vec2(g.d, 8.0 * g.d);
#elif defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        q[0][c] = iq4_word(g.q[c], 0u);
        q[1][c] = iq4_word(g.q[c], 4u);
    }
    dm[0] = dm[1] = vec2(g.d, 0.0);
#elif defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
    [[unroll]] for (uint c = 0u; c < 4u; ++c) {
        q[0][c] = (g.q[c] & 0x0F0F0F0Fu) | q5_high4(g.qh >> (4u * c));
        q[1][c] = ((g.q[c] >> 4) & 0x0F0F0F0Fu) | q5_high4(g.qh >> (16u + 4u * c));
    }
    dm[0] = dm[1] = g.dm;
#elif defined(WTYPE_Q8_0)
    q[0] = g.q0;
    q[1] = g.q1;
    dm[0] = dm[1] = vec2(g.d, 0.0);
#elif defined(WTYPE_Q2_K)
    q[0] = (g.q0 >> (2u * part)) & 0x03030303u;
    q[1] = (g.q1 >> (2u * part)) & 0x03030303u;
    const vec2 d = unpackHalf2x16(g.dm);
    [[unroll]] for (uint i = 0u; i < 2u; ++i) {
        const uint s = (g.sc >> (8u * i)) & 0xFFu;
        dm[i] = vec2(d.x * float(s & 0xFu), d.y * float(s >> 4));
    }
#else
    const uint hb = 4u * (kt & 1u) + part;
    const uvec4 v0 = ((g.q0 >> (2u * part)) & 0x03030303u) | (((g.m0 >> hb) & 0x01010101u) << 2);
    const uvec4 v1 = ((g.q1 >> (2u * part)) & 0x03030303u) | (((g.m1 >> hb) & 0x01010101u) << 2);
    q[0] = ((v0 | 0x80808080u) - 0x04040404u) ^ 0x80808080u;  // q - 4 per byte, as signed int8
    q[1] = ((v1 | 0x80808080u) - 0x04040404u) ^ 0x80808080u;
    dm[0] = vec2(g.sc.x, 0.0);
    dm[1] = vec2(g.sc.y, 0.0);
#endif
    k[0] = 32u * part;
    k[1] = 32u * part + 16u;
}

#elif defined(IQ_GRID)
// The grid types (iq_grid.glsl, read from the grid buffer): part q of step kt is
// sub-block 4 (kt & 1) + q of super-block kt / 2, its groups as int8 (iq_group_i8) with a scale per
// 16 (two equal ones for the types with a scale per 32), min 0. gw_load() decodes at once: the grid
// lookups depend on the loaded indices, so there are no raw words worth holding across the step.
struct GW {
    uvec4 q0, q1;  // elements 0-15 and 16-31 of the sub-block
    vec2 sc;
};
GW gw_load(uint wrow, uint kt, uint part) {
    GW g;
    g.sc = iq_sub_i8(wrow + IQ_UNITS * (kt >> 1), 16u * (kt & 1u) + 4u * part, g.q0, g.q1);
    return g;
}
void gw_pieces(GW g, uint kt, uint part, out uvec4 q[2], out vec2 dm[2], out uint k[2]) {
    q[0] = g.q0;
    q[1] = g.q1;
    dm[0] = vec2(g.sc.x, 0.0);
    dm[1] = vec2(g.sc.y, 0.0);
    k[0] = 32u * part;
    k[1] = 32u * part + 16u;
}

#else
#error "mm_load.glsl: WTYPE_Q4_0, WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q8_0, WTYPE_Q2_K, WTYPE_Q3_K, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K, WTYPE_IQ4_NL, WTYPE_IQ4_XS, WTYPE_Q8_0R or a grid type"
#endif
