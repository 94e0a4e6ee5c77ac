// The grid types (ggml's IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M; layouts in
// engine/tensor/blocks.h): super-blocks of 256 in 32 groups of 8, each group an index into a fixed
// grid of value patterns (engine/tensor/iq_grids.h), with signs and a scale per 16 or 32. Included by
// quants.glsl (W: 2-byte units) with one WTYPE_* defined.
//
// iq_group(b, g, lo, hi) decodes group g (0..31) of the super-block at unit b: lo / hi its 8 values
// before the scale (grid times sign, or grid + delta for IQ1), the return value the scale, so that
// value j = scale * v[j] as ggml's dequantize_row_* computes it. The grid comes from the buffer the
// runtime binds at set 1 (shared.h IQG_*).
#if defined(WTYPE_IQ2_XXS)
#define IQ_UNITS 33u  // 66 bytes: d, qs[32] (uint16)
#define IQ_OFF IQG_IQ2XXS
#elif defined(WTYPE_IQ2_XS)
#define IQ_UNITS 37u  // 74 bytes: d, qs[32] (uint16), scales[8]
#define IQ_OFF IQG_IQ2XS
#elif defined(WTYPE_IQ2_S)
#define IQ_UNITS 41u  // 82 bytes: d, qs[32], signs[32], qh[8], scales[8]
#define IQ_OFF IQG_IQ2S
#elif defined(WTYPE_IQ3_XXS)
#define IQ_UNITS 49u  // 98 bytes: d, qs[64], a sign and scale word per 32
#define IQ_OFF IQG_IQ3XXS
#define IQ_WIDTH4
#elif defined(WTYPE_IQ3_S)
#define IQ_UNITS 55u  // 110 bytes: d, qs[64], qh[8], signs[32], scales[4]
#define IQ_OFF IQG_IQ3S
#define IQ_WIDTH4
#elif defined(WTYPE_IQ1_S)
#define IQ_UNITS 25u  // 50 bytes: d, qs[32], qh[8] (uint16)
#define IQ_OFF IQG_IQ1S
#define IQ_ONE
#else  // IQ1_M
#define IQ_UNITS 28u  // 56 bytes: qs[32], qh[16], scales[8] (4 uint16, d in their top nibbles)
#define IQ_OFF IQG_IQ1S
#define IQ_ONE
#endif

#define CH 32
uint row_units(uint cols) { return cols / 256u * IQ_UNITS; }

// The entries are read from the buffer, through L1, as bytes: 8 per uvec2 (4 for IQ3, in .x). IQ1's
// -1 / 0 / 1 are stored plus one (unsigned). (The matvecs held the entries, then their 16-bit codes, in
// shared memory until session 33: each workgroup's copy and the barrier after it delayed its first
// weight loads by an L2 round trip. H100, bench_gpu, weights from our quantizer: IQ2_XXS int8 matvec
// of 4096 columns 748 -> 1103 GB/s, IQ1_S 599 -> 832, IQ3_XXS 1062 -> 1371 through L1.)
layout(set = 1, binding = 0, std430) readonly buffer IqGridBuf { uvec2 iq_grid_src[]; };
#define IQ_ENTRY(i) iq_grid_src[IQ_OFF + (i)]
#define IQ_ENTRY4(i) iq_grid_src[IQ_OFF + (i)].x

// Byte o of the block at unit b.
uint iq_byte(uint b, uint o) { return (uint(W[b + (o >> 1)]) >> (8u * (o & 1u))) & 0xFFu; }
// The even-aligned 32 bits at byte o of the block at unit b.
uint iq_word(uint b, uint o) { return uint(W[b + (o >> 1)]) | (uint(W[b + (o >> 1) + 1u]) << 16); }
// +1 or -1 for 4 sign bits of s from bit k.
vec4 iq_signs(uint s, uint k) { return vec4(1.0) - 2.0 * vec4((uvec4(s) >> uvec4(k, k + 1u, k + 2u, k + 3u)) & 1u); }
// A 7-bit sign index as 8 signs: the eighth makes the count of minus signs even.
uint iq_signs7(uint s7) { return s7 | ((bitCount(s7) & 1u) << 7); }

// Group g's grid entry (its 8 bytes; IQ3: two entries of 4), its 8 sign bits (IQ1: the delta's sign in
// bit 0, set for -delta), and the return value its scale.
float iq_fields(uint b, uint g, out uvec2 gv, out uint s) {
    const uint ib = g >> 2, l = g & 3u;  // sub-block of 32, group within it
#if !defined(WTYPE_IQ1_M)
    const float d = unpackHalf2x16(uint(W[b])).x;
#endif
#if defined(WTYPE_IQ2_XXS)
    // per 32: 4 index bytes, then 4 x 7 sign bits and the 4-bit scale
    const uint idx = iq_byte(b, 2u + 8u * ib + l), aux = iq_word(b, 6u + 8u * ib);
    s = iq_signs7((aux >> (7u * l)) & 127u);
    const float scale = d * (0.5 + float(aux >> 28)) * 0.25;
#elif defined(WTYPE_IQ2_XS)
    // a uint16 per group: 9-bit index, 7 sign bits; 4-bit scales per 16
    const uint q = uint(W[b + 1u + g]), idx = q & 511u;
    s = iq_signs7(q >> 9);
    const uint sc = iq_byte(b, 66u + ib);
    const float scale = d * (0.5 + float((l & 2u) != 0u ? sc >> 4 : sc & 15u)) * 0.25;
#elif defined(WTYPE_IQ2_S)
    // index low byte, 2 high bits per group in qh, 8 stored signs; 4-bit scales per 16
    const uint idx = iq_byte(b, 2u + g) | ((iq_byte(b, 66u + ib) << (8u - 2u * l)) & 0x300u);
    s = iq_byte(b, 34u + g);
    const uint sc = iq_byte(b, 74u + ib);
    const float scale = d * (0.5 + float((l & 2u) != 0u ? sc >> 4 : sc & 15u)) * 0.25;
#elif defined(WTYPE_IQ3_XXS)
    // two index bytes per group (4 values each), then a word per 32: 4 x 7 sign bits, 4-bit scale
    const uint u = uint(W[b + 1u + 4u * ib + l]), aux = iq_word(b, 66u + 4u * ib);
    const uint i0 = u & 0xFFu, i1 = u >> 8;
    s = iq_signs7((aux >> (7u * l)) & 127u);
    const float scale = d * (0.5 + float(aux >> 28)) * 0.5;
#elif defined(WTYPE_IQ3_S)
    // two index bytes per group, their ninth bits in qh; 8 stored signs; 4-bit scales per 32
    const uint u = uint(W[b + 1u + 4u * ib + l]), qh = iq_byte(b, 66u + ib);
    const uint i0 = (u & 0xFFu) | ((qh << (8u - 2u * l)) & 256u), i1 = (u >> 8) | ((qh << (7u - 2u * l)) & 256u);
    const uint sc = iq_byte(b, 106u + (ib >> 1));
    s = iq_byte(b, 74u + 4u * ib + l);
    const float scale = d * float(1u + 2u * ((ib & 1u) != 0u ? sc >> 4 : sc & 15u));
#elif defined(WTYPE_IQ1_S)
    // index low byte, per 32 a uint16: 3 high bits per group, 3-bit scale, the delta's sign
    const uint qh = uint(W[b + 17u + ib]), idx = iq_byte(b, 2u + g) | (((qh >> (3u * l)) & 7u) << 8);
    s = qh >> 15;
    const float scale = d * float(2u * ((qh >> 12) & 7u) + 1u);
#else  // IQ1_M
    // index low byte; per pair of groups a qh byte: 3 high bits and the delta's sign per group; 3-bit
    // scales per 16 in 4 uint16 whose top nibbles hold the fp16 d
    const uint s0 = uint(W[b + 24u]), s1 = uint(W[b + 25u]), s2 = uint(W[b + 26u]), s3 = uint(W[b + 27u]);
    const float d = unpackHalf2x16((s0 >> 12) | ((s1 >> 8) & 0xF0u) | ((s2 >> 4) & 0xF00u) | (s3 & 0xF000u)).x;
    const uint qhb = iq_byte(b, 32u + 2u * ib + (l >> 1)), odd = l & 1u;
    const uint idx = iq_byte(b, g) | (((odd != 0u) ? qhb << 4 : qhb << 8) & 0x700u);
    s = (qhb & (odd != 0u ? 0x80u : 0x08u)) != 0u ? 1u : 0u;
    const uint sc = uint(W[b + 24u + (ib >> 1)]) >> (6u * (ib & 1u) + 3u * (l >> 1));
    const float scale = d * float(2u * (sc & 7u) + 1u);
#endif
#if defined(IQ_WIDTH4)
    gv = uvec2(IQ_ENTRY4(i0), IQ_ENTRY4(i1));
#else
    gv = IQ_ENTRY(idx);
#endif
    return scale;
}

// Group g's 8 values before the scale, as floats: value j = scale * v[j] (dequantize_row_*'s).
float iq_group(uint b, uint g, out vec4 lo, out vec4 hi) {
    uvec2 gv;
    uint s;
    const float scale = iq_fields(b, g, gv, s);
#if defined(IQ_ONE)
    const float delta = s != 0u ? -0.125 : 0.125;
    lo = bytes4(gv.x) - vec4(1.0 - delta);
    hi = bytes4(gv.y) - vec4(1.0 - delta);
#else
    lo = bytes4(gv.x) * iq_signs(s, 0u);
    hi = bytes4(gv.y) * iq_signs(s, 4u);
#endif
    return scale;
}

// The same as int8, 4 a word, for integer dot products: value j = scale * (byte j as int8). The grid's
// bytes are below 64 and never 0, so a negated byte is ~b + 1 without a carry. IQ1: (grid + delta) * 8
// = 8 grid +- 1, in -9..9, and the scale divided by 8 (exact).
uint iq_sign4(uint w, uint s4) {
    const uint m = ((s4 & 15u) * 0x00204081u) & 0x01010101u;  // bit j of s4 -> bit 0 of byte j
    return (w ^ (m * 0xFFu)) + m;
}
float iq_group_i8(uint b, uint g, out uvec2 q) {
    uvec2 gv;
    uint s;
    const float scale = iq_fields(b, g, gv, s);
#if defined(IQ_ONE)
    const uint k = s != 0u ? 0x09090909u : 0x07070707u;  // 8 (grid - 1) + 8 delta = 8 stored - (8 -+ 1)
    q = (((gv << 3) | 0x80808080u) - k) ^ 0x80808080u;
    return scale * 0.125;
#else
    q = uvec2(iq_sign4(gv.x, s), iq_sign4(gv.y, s >> 4));
    return scale;
#endif
}

// Sub-block g / 4 (g a multiple of 4) as int8: groups g, g + 1 in lo (elements 0-15), g + 2, g + 3 in
// hi, and the two halves' scales (equal for the types with a scale per 32).
vec2 iq_sub_i8(uint b, uint g, out uvec4 lo, out uvec4 hi) {
    uvec2 q0, q1, q2, q3;
    const float s0 = iq_group_i8(b, g, q0);
    iq_group_i8(b, g + 1u, q1);  // its scale is s0's (a scale per 16 or 32)
    const float s2 = iq_group_i8(b, g + 2u, q2);
    iq_group_i8(b, g + 3u, q3);
    lo = uvec4(q0, q1);
    hi = uvec4(q2, q3);
    return vec2(s0, s2);
}

// Chunk c of a row: sub-block c & 7 of super-block c >> 3.
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + IQ_UNITS * (c >> 3);
    for (uint k = 0u; k < 4u; ++k) {
        vec4 lo, hi;
        const float s = iq_group(b, 4u * (c & 7u) + k, lo, hi);
        for (uint j = 0u; j < 4u; ++j) {
            w[8u * k + j] = s * lo[j];
            w[8u * k + 4u + j] = s * hi[j];
        }
    }
}
