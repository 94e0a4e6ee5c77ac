// Weight storage and dequantization per type (one of WTYPE_* defined by the build). Block layouts are
// ggml's (ggml-common.h; engine/tensor/blocks.h says the same in C++). A row is read in chunks of CH
// elements: chunk c holds the row's elements [c * CH, (c + 1) * CH). chunk_dot(base, c, xo) returns
// their dot product with x (X4, vec4 xo onwards: the includer declares it with X_DOT); dequant_chunk
// writes them out (embedding lookup).
//
// chunk_dot never builds an array of weights (arrays indexed in loops end up in local memory) and
// turns quants into floats with the exponent trick, uintBitsToFloat(0x4B000000 | b) - 2^23 = b for a
// byte b: an integer op and an add instead of a conversion, which runs at a quarter of the FMA rate
// on NVIDIA. K-quant scales and mins multiply per group sums (sum q x, sum x), not each element.
//
// Storage units: 16-byte uvec4 loads where a block is a multiple of 16 bytes (F32, F16, BF16, Q4_K
// 144 B, Q5_K 176 B); 16-bit loads for Q8_0 (34 B) and Q6_K (210 B), whose blocks are only 2-aligned.
// The includer defines W_BINDING.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require

#if defined(WTYPE_F32) || defined(WTYPE_F16) || defined(WTYPE_BF16) || defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K)
layout(binding = W_BINDING, std430) readonly buffer WBuf { uvec4 W[]; };
#else
layout(binding = W_BINDING, std430) readonly buffer WBuf { uint16_t W[]; };
#endif

#extension GL_EXT_control_flow_attributes : enable

// Byte i (0..11) of the K-quants' packed 6-bit scales held in three words.
uint kq_byte(uvec3 s, uint i) {
    const uint w = i < 4u ? s.x : i < 8u ? s.y : s.z;
    return (w >> (8u * (i & 3u))) & 0xFFu;
}
// The 4 bytes of w (each 0..255) as floats.
vec4 bytes4(uint w) {
    return uintBitsToFloat(uvec4(w & 0xFFu, (w >> 8) & 0xFFu, (w >> 16) & 0xFFu, w >> 24) | 0x4B000000u) - 8388608.0;
}
// The two int8 of a 16-bit unit as floats (x ^ 0x80 maps -128..127 to 0..255).
vec2 i8x2(uint u) {
    return uintBitsToFloat(uvec2((u ^ 0x80u) & 0xFFu, ((u >> 8) ^ 0x80u) & 0xFFu) | 0x4B000000u) - 8388736.0;
}
#ifdef X_DOT
float hsum(vec4 v) { return (v.x + v.y) + (v.z + v.w); }
#endif
// Q4_K / Q5_K group j: scale and min (engine/tensor/blocks.h scale_min_k4).
void kq_scale_min(uint j, uvec3 s, out float sc, out float m) {
    if (j < 4u) {
        sc = float(kq_byte(s, j) & 63u);
        m = float(kq_byte(s, j + 4u) & 63u);
    } else {
        sc = float((kq_byte(s, j + 4u) & 0xFu) | ((kq_byte(s, j - 4u) >> 6) << 4));
        m = float((kq_byte(s, j + 4u) >> 4) | ((kq_byte(s, j) >> 6) << 4));
    }
}
// Sign-extended int8 number b (0 or 1) of a 16-bit unit.
int i8_of(uint u, uint b) { return int(u << (24u - 8u * b)) >> 24; }

#if defined(WTYPE_F32)
#define CH 8
uint row_units(uint cols) { return cols / 4u; }
#ifdef X_DOT
float chunk_dot(uint base, uint c, uint xo) {
    return dot(uintBitsToFloat(W[base + 2u * c]), X4[xo]) + dot(uintBitsToFloat(W[base + 2u * c + 1u]), X4[xo + 1u]);
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uvec4 a = W[base + 2u * c], b = W[base + 2u * c + 1u];
    w[0] = uintBitsToFloat(a.x); w[1] = uintBitsToFloat(a.y); w[2] = uintBitsToFloat(a.z); w[3] = uintBitsToFloat(a.w);
    w[4] = uintBitsToFloat(b.x); w[5] = uintBitsToFloat(b.y); w[6] = uintBitsToFloat(b.z); w[7] = uintBitsToFloat(b.w);
}

#elif defined(WTYPE_F16)
#define CH 8
uint row_units(uint cols) { return cols / 8u; }
#ifdef X_DOT
float chunk_dot(uint base, uint c, uint xo) {
    const uvec4 a = W[base + c];
    return dot(vec4(unpackHalf2x16(a.x), unpackHalf2x16(a.y)), X4[xo]) +
           dot(vec4(unpackHalf2x16(a.z), unpackHalf2x16(a.w)), X4[xo + 1u]);
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uvec4 a = W[base + c];
    for (uint i = 0u; i < 4u; ++i) {
        const vec2 v = unpackHalf2x16(a[i]);
        w[2u * i] = v.x;
        w[2u * i + 1u] = v.y;
    }
}

#elif defined(WTYPE_BF16)
#define CH 8
uint row_units(uint cols) { return cols / 8u; }
#ifdef X_DOT
float chunk_dot(uint base, uint c, uint xo) {
    const uvec4 a = W[base + c];
    const uvec4 lo = a << 16, hi = a & 0xFFFF0000u;
    return dot(uintBitsToFloat(uvec4(lo.x, hi.x, lo.y, hi.y)), X4[xo]) +
           dot(uintBitsToFloat(uvec4(lo.z, hi.z, lo.w, hi.w)), X4[xo + 1u]);
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uvec4 a = W[base + c];
    for (uint i = 0u; i < 4u; ++i) {
        w[2u * i] = uintBitsToFloat(a[i] << 16);
        w[2u * i + 1u] = uintBitsToFloat(a[i] & 0xFFFF0000u);
    }
}

#elif defined(WTYPE_Q8_0)
// 34-byte block: d (f16), 32 int8. One block per chunk.
#define CH 32
uint row_units(uint cols) { return cols / 32u * 17u; }
#ifdef X_DOT
float chunk_dot(uint base, uint c, uint xo) {
    const uint b = base + 17u * c;
    float s = 0.0;
    [[unroll]] for (uint i = 0u; i < 8u; ++i)
        s += dot(vec4(i8x2(uint(W[b + 1u + 2u * i])), i8x2(uint(W[b + 2u + 2u * i]))), X4[xo + i]);
    return unpackHalf2x16(uint(W[b])).x * s;
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + 17u * c;
    const float d = unpackHalf2x16(uint(W[b])).x;
    for (uint i = 0u; i < 16u; ++i) {
        const uint u = uint(W[b + 1u + i]);
        w[2u * i] = d * float(i8_of(u, 0u));
        w[2u * i + 1u] = d * float(i8_of(u, 1u));
    }
}

#elif defined(WTYPE_Q4_K)
// 144-byte super-block of 256 = 9 units: (d, dmin, scales[12]) then qs[128]. Chunk: 64 elements,
// groups 2p and 2p + 1 (low and high nibbles of qs[32p .. 32p + 32)).
#define CH 64
uint row_units(uint cols) { return cols / 256u * 9u; }
#ifdef X_DOT
float chunk_dot(uint base, uint c, uint xo) {
    const uint b = base + 9u * (c >> 2), p = c & 3u;
    const uvec4 hdr = W[b], q0 = W[b + 1u + 2u * p], q1 = W[b + 2u + 2u * p];
    float sc0, m0, sc1, m1;
    kq_scale_min(2u * p, hdr.yzw, sc0, m0);
    kq_scale_min(2u * p + 1u, hdr.yzw, sc1, m1);
    vec4 sq0 = vec4(0.0), sq1 = vec4(0.0), sx0 = vec4(0.0), sx1 = vec4(0.0);
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
        const uint w = k < 4u ? q0[k] : q1[k - 4u];
        const vec4 xl = X4[xo + k], xh = X4[xo + 8u + k];
        sq0 += bytes4(w & 0x0F0F0F0Fu) * xl;
        sq1 += bytes4((w >> 4) & 0x0F0F0F0Fu) * xh;
        sx0 += xl;
        sx1 += xh;
    }
    const vec2 dm = unpackHalf2x16(hdr.x);
    return dm.x * (sc0 * hsum(sq0) + sc1 * hsum(sq1)) - dm.y * (m0 * hsum(sx0) + m1 * hsum(sx1));
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + 9u * (c >> 2), p = c & 3u;
    const uvec4 hdr = W[b];
    const vec2 dm = unpackHalf2x16(hdr.x);
    float sc0, m0, sc1, m1;
    kq_scale_min(2u * p, hdr.yzw, sc0, m0);
    kq_scale_min(2u * p + 1u, hdr.yzw, sc1, m1);
    const float d0 = dm.x * sc0, o0 = dm.y * m0, d1 = dm.x * sc1, o1 = dm.y * m1;
    const uvec4 q[2] = uvec4[2](W[b + 1u + 2u * p], W[b + 2u + 2u * p]);
    for (uint k = 0u; k < 8u; ++k) {
        const uint word = q[k >> 2][k & 3u];
        for (uint j = 0u; j < 4u; ++j) {
            const uint byte = (word >> (8u * j)) & 0xFFu;
            w[4u * k + j] = d0 * float(byte & 0xFu) - o0;
            w[32u + 4u * k + j] = d1 * float(byte >> 4) - o1;
        }
    }
}

#elif defined(WTYPE_Q5_K)
// 176-byte super-block = 11 units: (d, dmin, scales[12]), qh[32], qs[128]. Element 32g + l has its
// fifth bit at bit g of qh[l].
#define CH 64
uint row_units(uint cols) { return cols / 256u * 11u; }
#ifdef X_DOT
float chunk_dot(uint base, uint c, uint xo) {
    const uint b = base + 11u * (c >> 2), p = c & 3u;
    const uvec4 hdr = W[b], h0 = W[b + 1u], h1 = W[b + 2u], q0 = W[b + 3u + 2u * p], q1 = W[b + 4u + 2u * p];
    float sc0, m0, sc1, m1;
    kq_scale_min(2u * p, hdr.yzw, sc0, m0);
    kq_scale_min(2u * p + 1u, hdr.yzw, sc1, m1);
    vec4 sq0 = vec4(0.0), sq1 = vec4(0.0), sx0 = vec4(0.0), sx1 = vec4(0.0);
    [[unroll]] for (uint k = 0u; k < 8u; ++k) {
        const uint w = k < 4u ? q0[k] : q1[k - 4u];
        const uint h = (k < 4u ? h0[k] : h1[k - 4u]) >> (2u * p);  // bit 0 of each byte: group 2p; bit 1: 2p + 1
        const vec4 xl = X4[xo + k], xh = X4[xo + 8u + k];
        sq0 += bytes4((w & 0x0F0F0F0Fu) | ((h & 0x01010101u) << 4)) * xl;
        sq1 += bytes4(((w >> 4) & 0x0F0F0F0Fu) | ((h & 0x02020202u) << 3)) * xh;
        sx0 += xl;
        sx1 += xh;
    }
    const vec2 dm = unpackHalf2x16(hdr.x);
    return dm.x * (sc0 * hsum(sq0) + sc1 * hsum(sq1)) - dm.y * (m0 * hsum(sx0) + m1 * hsum(sx1));
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + 11u * (c >> 2), p = c & 3u;
    const uvec4 hdr = W[b];
    const vec2 dm = unpackHalf2x16(hdr.x);
    float sc0, m0, sc1, m1;
    kq_scale_min(2u * p, hdr.yzw, sc0, m0);
    kq_scale_min(2u * p + 1u, hdr.yzw, sc1, m1);
    const float d0 = dm.x * sc0, o0 = dm.y * m0, d1 = dm.x * sc1, o1 = dm.y * m1;
    const uvec4 qh[2] = uvec4[2](W[b + 1u], W[b + 2u]);
    const uvec4 q[2] = uvec4[2](W[b + 3u + 2u * p], W[b + 4u + 2u * p]);
    for (uint k = 0u; k < 8u; ++k) {
        const uint word = q[k >> 2][k & 3u], hword = qh[k >> 2][k & 3u];
        for (uint j = 0u; j < 4u; ++j) {
            const uint byte = (word >> (8u * j)) & 0xFFu, h = (hword >> (8u * j)) & 0xFFu;
            const uint hi0 = (h >> (2u * p)) & 1u, hi1 = (h >> (2u * p + 1u)) & 1u;
            w[4u * k + j] = d0 * float((byte & 0xFu) | (hi0 << 4)) - o0;
            w[32u + 4u * k + j] = d1 * float((byte >> 4) | (hi1 << 4)) - o1;
        }
    }
}

#elif defined(WTYPE_Q6_K)
// 210-byte super-block = 105 units: ql[128], qh[64], int8 scales[16], d. Chunk c: 64 elements of
// half h = (c & 3) / 2, quarter t = c & 1: element e takes nibble t of ql[64h + e], two high bits
// 2(2t + e/32) of qh[32h + e % 32], scale group 8h + 4t + e/16.
#define CH 64
uint row_units(uint cols) { return cols / 256u * 105u; }
#ifdef X_DOT
// Per 16-element group g (4 per chunk): scale[g] * (sum q x - 32 sum x), q the 6-bit value.
float chunk_dot(uint base, uint c, uint xo) {
    const uint b = base + 105u * (c >> 2), h = (c & 3u) >> 1, t = c & 1u;
    vec4 sq[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    vec4 sx[4] = vec4[4](vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0));
    [[unroll]] for (uint i = 0u; i < 8u; ++i) {  // elements 4i..4i+3 (groups 0, 1) and 32+4i.. (groups 2, 3)
        const uint la = uint(W[b + 32u * h + 2u * i]) | (uint(W[b + 32u * h + 2u * i + 1u]) << 16);
        const uint lb = uint(W[b + 32u * h + 16u + 2u * i]) | (uint(W[b + 32u * h + 16u + 2u * i + 1u]) << 16);
        const uint hh = uint(W[b + 64u + 16u * h + 2u * i]) | (uint(W[b + 64u + 16u * h + 2u * i + 1u]) << 16);
        const uint qa = ((la >> (4u * t)) & 0x0F0F0F0Fu) | (((hh >> (4u * t)) & 0x03030303u) << 4);
        const uint qb = ((lb >> (4u * t)) & 0x0F0F0F0Fu) | (((hh >> (4u * t + 2u)) & 0x03030303u) << 4);
        const vec4 xa = X4[xo + i], xb = X4[xo + 8u + i];
        sq[i >> 2] += bytes4(qa) * xa;
        sx[i >> 2] += xa;
        sq[2u + (i >> 2)] += bytes4(qb) * xb;
        sx[2u + (i >> 2)] += xb;
    }
    const uint s01 = uint(W[b + 96u + 4u * h + 2u * t]), s23 = uint(W[b + 97u + 4u * h + 2u * t]);
    const vec2 sa = i8x2(s01), sb = i8x2(s23);
    float r = sa.x * (hsum(sq[0]) - 32.0 * hsum(sx[0])) + sa.y * (hsum(sq[1]) - 32.0 * hsum(sx[1])) +
              sb.x * (hsum(sq[2]) - 32.0 * hsum(sx[2])) + sb.y * (hsum(sq[3]) - 32.0 * hsum(sx[3]));
    return unpackHalf2x16(uint(W[b + 104u])).x * r;
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + 105u * (c >> 2), h = (c & 3u) >> 1, t = c & 1u;
    const float d = unpackHalf2x16(uint(W[b + 104u])).x;
    const uint s01 = uint(W[b + 96u + 4u * h + 2u * t]), s23 = uint(W[b + 97u + 4u * h + 2u * t]);
    const float sc[4] = float[4](d * float(i8_of(s01, 0u)), d * float(i8_of(s01, 1u)),
                                 d * float(i8_of(s23, 0u)), d * float(i8_of(s23, 1u)));
    for (uint i = 0u; i < 16u; ++i) {  // elements 2i, 2i + 1 and 32 + 2i, 32 + 2i + 1
        const uint hh = uint(W[b + 64u + 16u * h + i]);  // qh bytes 2i, 2i + 1
        const uint la = uint(W[b + 32u * h + i]), lb = uint(W[b + 32u * h + 16u + i]);
        for (uint j = 0u; j < 2u; ++j) {
            const uint hb = (hh >> (8u * j)) & 0xFFu;
            const uint lo_a = (la >> (8u * j + 4u * t)) & 0xFu, lo_b = (lb >> (8u * j + 4u * t)) & 0xFu;
            const uint e = 2u * i + j;
            const int qa = int(lo_a | (((hb >> (4u * t)) & 3u) << 4)) - 32;
            const int qb = int(lo_b | (((hb >> (4u * t + 2u)) & 3u) << 4)) - 32;
            w[e] = sc[e >> 4] * float(qa);
            w[32u + e] = sc[2u + (e >> 4)] * float(qb);
        }
    }
}

#else
#error "define one of WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q8_0, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K"
#endif
