// Weight storage and dequantization per type (one of WTYPE_* defined by the build). Block layouts are
// ggml's (ggml-common.h; engine/tensor/blocks.h says the same in C++). dequant_chunk(base, c, w)
// writes chunk c of a row, its elements [c * CH, (c + 1) * CH) (embedding lookup); the matvec reads
// rows its own way (mv_types.glsl) with the helpers below.
//
// Quants become floats with the exponent trick, uintBitsToFloat(0x4B000000 | b) - 2^23 = b for a
// byte b: an integer op and an add instead of a conversion, which runs at a quarter of the FMA rate
// on NVIDIA.
//
// Storage units: 16-byte uvec4 loads where a block is a multiple of 16 bytes (F32, F16, BF16, Q4_K
// 144 B, Q5_K 176 B); 16-bit loads for Q8_0 (34 B) and Q6_K (210 B), whose blocks are only 2-aligned.
// The includer defines W_BINDING.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require

#if defined(WTYPE_IQ2_XXS) || defined(WTYPE_IQ2_XS) || defined(WTYPE_IQ2_S) || defined(WTYPE_IQ3_XXS) || defined(WTYPE_IQ3_S) || defined(WTYPE_IQ1_S) || defined(WTYPE_IQ1_M)
#define IQ_GRID  // iq_grid.glsl: 2-byte units, a grid from the buffer at set 1
#endif

#if defined(WTYPE_F32) || defined(WTYPE_F16) || defined(WTYPE_BF16) || defined(WTYPE_Q4_K) || defined(WTYPE_Q5_K) || defined(WTYPE_Q8_0R)
layout(binding = W_BINDING, std430) readonly buffer WBuf { uvec4 W[]; };
#elif defined(WTYPE_Q2_K) || defined(WTYPE_IQ4_XS)
layout(binding = W_BINDING, std430) readonly buffer WBuf { uint W[]; };  // 84- / 136-byte blocks: 4-aligned
#else
layout(binding = W_BINDING, std430) readonly buffer WBuf { uint16_t W[]; };
#endif

#extension GL_EXT_control_flow_attributes : enable

#if defined(WTYPE_Q4_0) || defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1) || defined(WTYPE_Q8_0) || defined(WTYPE_Q3_K) || defined(WTYPE_Q6_K) || defined(WTYPE_IQ4_NL)
// 16 bytes from 2-byte unit i of W (these types' blocks are only 2-aligned): 5 word loads, realigned
// by half a word when i is odd, where 8 16-bit loads each took a load instruction (Q6_K's integer-dot
// matvec was load-issue bound at 2.1 TB/s). Buffers are whole 16-byte units (Context::alloc), so the
// word that holds a block's last unit is in range.
layout(binding = W_BINDING, std430) readonly buffer WBufWords { uint WW[]; };
uvec4 u16x8(uint i) {
    const uint w = i >> 1;
    const uvec4 lo = uvec4(WW[w], WW[w + 1u], WW[w + 2u], WW[w + 3u]);
    const uvec4 hi = uvec4(lo.yzw, WW[min(w + 4u, uint(WW.length()) - 1u)]);
    return (i & 1u) == 0u ? lo : (lo >> 16) | (hi << 16);
}
#endif

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
float hsum(vec4 v) { return (v.x + v.y) + (v.z + v.w); }
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
// (scale, scale, min, min) of groups 2g and 2g + 1 from the 12 packed bytes (engine/tensor/blocks.h
// scale_min_k4): groups 0-3 keep the low 6 bits of bytes j and j + 4; groups 4-7 the nibbles of byte
// j + 4 and the top 2 bits of bytes j - 4 (scale) and j (min). Bytes 2(g & 1), +1 of each word serve g.
vec4 kq_pair_scales(uvec3 s, uint g) {
    const uint sh = 16u * (g & 1u);
    const uint a = s.x >> sh, m = s.y >> sh, c = s.z >> sh;
    const uint lo = (a & 0x3F3Fu) | ((m & 0x3F3Fu) << 16);
    const uint hi = ((c & 0x0F0Fu) | ((a >> 2) & 0x3030u)) | ((((c >> 4) & 0x0F0Fu) | ((m >> 2) & 0x3030u)) << 16);
    return bytes4(g < 2u ? lo : hi);
}
// Sign-extended int8 number b (0 or 1) of a 16-bit unit.
int i8_of(uint u, uint b) { return int(u << (24u - 8u * b)) >> 24; }

#if defined(WTYPE_F32)
#define CH 8
uint row_units(uint cols) { return cols / 4u; }
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uvec4 a = W[base + 2u * c], b = W[base + 2u * c + 1u];
    w[0] = uintBitsToFloat(a.x); w[1] = uintBitsToFloat(a.y); w[2] = uintBitsToFloat(a.z); w[3] = uintBitsToFloat(a.w);
    w[4] = uintBitsToFloat(b.x); w[5] = uintBitsToFloat(b.y); w[6] = uintBitsToFloat(b.z); w[7] = uintBitsToFloat(b.w);
}

#elif defined(WTYPE_F16)
#define CH 8
uint row_units(uint cols) { return cols / 8u; }
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
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + 17u * c;
    const float d = unpackHalf2x16(uint(W[b])).x;
    for (uint i = 0u; i < 16u; ++i) {
        const uint u = uint(W[b + 1u + i]);
        w[2u * i] = d * float(i8_of(u, 0u));
        w[2u * i + 1u] = d * float(i8_of(u, 1u));
    }
}

#elif defined(WTYPE_Q8_0R)
// Q8_0 rows repacked (shared.h WT_Q8_0R): a row of n blocks is n * 32 int8 (2n units), then n f16
// scales (n / 8 units). Matvecs only (mv_types.glsl): no dequant_chunk, no embedding lookup.
layout(binding = W_BINDING, std430) readonly buffer WBufH { uint16_t WH[]; };
uint row_units(uint cols) { return cols / 256u * 17u; }

#elif defined(WTYPE_Q4_K)
// 144-byte super-block of 256 = 9 units: (d, dmin, scales[12]) then qs[128]. Chunk: 64 elements,
// groups 2p and 2p + 1 (low and high nibbles of qs[32p .. 32p + 32)).
#define CH 64
#define KQ_UNITS 9u    // units per super-block
#define KQ_QS_UNIT 1u  // its qs from this unit on
uint row_units(uint cols) { return cols / 256u * KQ_UNITS; }
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
#define KQ_UNITS 11u   // units per super-block
#define KQ_QS_UNIT 3u  // its qs from this unit on
uint row_units(uint cols) { return cols / 256u * KQ_UNITS; }
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

#elif defined(WTYPE_Q4_0)
// 18-byte block of 32 = 9 units: d (f16), qs[16]; element i is the low nibble of qs[i], element
// 16 + i its high nibble, x = d * (q - 8). One block per chunk.
#define CH 32
uint row_units(uint cols) { return cols / 32u * 9u; }
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + 9u * c;
    const float d = unpackHalf2x16(uint(W[b])).x;
    for (uint i = 0u; i < 8u; ++i) {
        const uint u = uint(W[b + 1u + i]);  // qs[2i], qs[2i + 1]
        for (uint j = 0u; j < 2u; ++j) {
            const uint byte = (u >> (8u * j)) & 0xFFu;
            w[2u * i + j] = d * (float(byte & 0xFu) - 8.0);
            w[16u + 2u * i + j] = d * (float(byte >> 4) - 8.0);
        }
    }
}

#elif defined(WTYPE_Q5_0) || defined(WTYPE_Q5_1)
// Q5_0: 22-byte blocks of 32 = 11 units: d (f16), qh[4], qs[16]; Q5_1: 24 bytes = 12 units: d, m,
// qh, qs. Element i < 16 is the low nibble of qs[i] with bit i of qh as its fifth bit, element 16 + i
// the high nibble with bit 16 + i; Q5_0: x = d (q - 16), Q5_1: x = d q + m. One block per chunk.
#define CH 32
#if defined(WTYPE_Q5_0)
#define Q5_UNITS 11u
#define Q5_QH 1u  // the unit qh starts at
#else
#define Q5_UNITS 12u
#define Q5_QH 2u
#endif
uint row_units(uint cols) { return cols / 32u * Q5_UNITS; }
// Bits 0..3 of b as bit 4 of four bytes (the fifth bits of 4 elements beside their nibbles).
uint q5_high4(uint b) { return ((b & 1u) | ((b & 2u) << 7) | ((b & 4u) << 14) | ((b & 8u) << 21)) << 4; }
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + Q5_UNITS * c;
    const float d = unpackHalf2x16(uint(W[b])).x;
#if defined(WTYPE_Q5_0)
    const float m = -16.0 * d;
#else
    const float m = unpackHalf2x16(uint(W[b + 1u])).x;
#endif
    const uint qh = uint(W[b + Q5_QH]) | (uint(W[b + Q5_QH + 1u]) << 16);
    for (uint i = 0u; i < 8u; ++i) {
        const uint u = uint(W[b + Q5_QH + 2u + i]);  // qs[2i], qs[2i + 1]
        for (uint j = 0u; j < 2u; ++j) {
            const uint byte = (u >> (8u * j)) & 0xFFu, e = 2u * i + j;
            w[e] = d * float((byte & 0xFu) | (((qh >> e) & 1u) << 4)) + m;
            w[16u + e] = d * float((byte >> 4) | (((qh >> (16u + e)) & 1u) << 4)) + m;
        }
    }
}

#elif defined(WTYPE_Q2_K) || defined(WTYPE_Q3_K)
// Super-blocks of 256. Q2_K (84 bytes = 21 words): scales[16] (words 0-3; low nibble the scale, high
// the min), qs[64] (words 4-19), d | dmin << 16 (word 20); x = d * sc * q - dmin * m. Q3_K (110
// bytes = 55 16-bit units): hmask[32] (units 0-15), qs[64] (16-47), 12 bytes of 6-bit scales (48-53),
// d (54); x = d * (sc - 32) * (q - 4), q's third bit from hmask. Element 128h + 32j + l has its two
// low bits at bits 2j of qs[32h + l], Q3_K's third at bit 4h + j of hmask[l], and scale group
// 8h + 2j + l / 16 (engine/tensor/blocks.h). Chunk c: the 32 elements of (h, j) = ((c >> 2) & 1,
// c & 3) in super-block c >> 3.
#define CH 32
#if defined(WTYPE_Q2_K)
#define K2_UNITS 21u
#else
#define K2_UNITS 55u
// Q3_K's group k (0..15) scale (stored + 32): low 4 bits the nibble k / 8 of byte k % 8, high 2 bits
// bits 2 (k / 4) of byte 8 + k % 4.
uint q3_scale_byte(uint b, uint i) { return (uint(W[b + 48u + (i >> 1)]) >> (8u * (i & 1u))) & 0xFFu; }
float q3_scale(uint b, uint k) {
    const uint lo = k < 8u ? q3_scale_byte(b, k) & 0xFu : q3_scale_byte(b, k - 8u) >> 4;
    const uint hi = (q3_scale_byte(b, 8u + (k & 3u)) >> (2u * (k >> 2))) & 3u;
    return float(int(lo | (hi << 4)) - 32);
}
#endif
uint row_units(uint cols) { return cols / 256u * K2_UNITS; }
void dequant_chunk(uint base, uint c, out float w[CH]) {
    const uint b = base + K2_UNITS * (c >> 3), h = (c >> 2) & 1u, j = c & 3u;
#if defined(WTYPE_Q2_K)
    const vec2 dm = unpackHalf2x16(W[b + 20u]);
    const uint sc = W[b + 2u * h + (j >> 1)] >> (16u * (j & 1u));  // groups 8h + 2j (low byte) and 8h + 2j + 1
    for (uint i = 0u; i < 8u; ++i) {
        const uint u = W[b + 4u + 8u * h + i];  // qs[32h + 4i .. + 3]
        for (uint k = 0u; k < 4u; ++k) {
            const uint l = 4u * i + k, q = (u >> (8u * k + 2u * j)) & 3u, s = (sc >> (8u * (l >> 4))) & 0xFFu;
            w[l] = dm.x * float(s & 0xFu) * float(q) - dm.y * float(s >> 4);
        }
    }
#else
    const float d = unpackHalf2x16(uint(W[b + 54u])).x;
    const float s0 = d * q3_scale(b, 8u * h + 2u * j), s1 = d * q3_scale(b, 8u * h + 2u * j + 1u);
    for (uint i = 0u; i < 16u; ++i) {
        const uint u = uint(W[b + 16u + 16u * h + i]), m = uint(W[b + i]);  // qs[32h + 2i], +1; hmask[2i], +1
        for (uint k = 0u; k < 2u; ++k) {
            const uint l = 2u * i + k, q = (u >> (8u * k + 2u * j)) & 3u, hb = (m >> (8u * k + 4u * h + j)) & 1u;
            w[l] = (l < 16u ? s0 : s1) * float(int(q + 4u * hb) - 4);
        }
    }
#endif
}

#elif defined(WTYPE_IQ4_NL) || defined(WTYPE_IQ4_XS)
// Non-linear 4-bit quants: a nibble indexes ggml's table kvalues_iq4nl (int8), times the block's
// scale. IQ4_NL: Q4_0's 18-byte blocks of 32 (units: d, qs[16]), x = d kv[q]. IQ4_XS: 136-byte
// super-blocks of 256 (words: d | scales_h << 16, scales_l[4], qs[128]); sub-block j of 32 has the
// 6-bit scale ls = low nibble j of scales_l | bits 2j, 2j + 1 of scales_h << 4, x = d (ls - 32) kv[q],
// its qs at bytes 16j .. 16j + 15 as Q4_0's (element i the low nibble of byte i, 16 + i the high).
#define CH 32
// The table's 16 int8 as 4 words of bytes: kv[n] is byte n & 3 of word n >> 2.
const uvec4 IQ4_KV = uvec4(0xBFAD9881u, 0xF6EADDCFu, 0x26190D01u, 0x71594535u);
int iq4_kv(uint n) {
    const uint w = (n & 8u) != 0u ? ((n & 4u) != 0u ? IQ4_KV.w : IQ4_KV.z) : ((n & 4u) != 0u ? IQ4_KV.y : IQ4_KV.x);
    return int(w << (24u - 8u * (n & 3u))) >> 24;
}
// The values of the nibbles 4 bytes hold (each 0..15) as floats.
vec4 iq4_kv4(uint w) { return vec4(iq4_kv(w & 0xFu), iq4_kv((w >> 8) & 0xFu), iq4_kv((w >> 16) & 0xFu), iq4_kv(w >> 24)); }
// For int8 weights (integer-dot matvecs, prompt tiles) a shared table: each value 4 times, shifted to
// byte k of a word (entry 16k + n), so a word of 4 int8 is 4 loads or'ed; a load's 32 lanes read at
// most 16 words, one bank each. (A table of the 256 bytes' value pairs, half the loads, ran 3.4x
// slower than Q4_K's matvecs on the H100: its lanes' random bytes meet in banks.) The shader calls
// iq4_table_init() in every invocation, then a barrier, before the first iq4_word().
shared uint iq4_tab[64];
void iq4_table_init() {
    const uint i = gl_LocalInvocationIndex;
    if (i < 64u) iq4_tab[i] = (uint(iq4_kv(i & 15u)) & 0xFFu) << (8u * (i >> 4));
}
// The int8 of the 4 nibbles at bits sh, sh + 8, sh + 16, sh + 24 of q.
uint iq4_word(uint q, uint sh) {
    return iq4_tab[(q >> sh) & 15u] | iq4_tab[16u + ((q >> (sh + 8u)) & 15u)] | iq4_tab[32u + ((q >> (sh + 16u)) & 15u)] |
           iq4_tab[48u + ((q >> (sh + 24u)) & 15u)];
}
#if defined(WTYPE_IQ4_NL)
uint row_units(uint cols) { return cols / 32u * 9u; }
#else
uint row_units(uint cols) { return cols / 256u * 34u; }
// Sub-block j's scale of the super-block at word b.
float iq4xs_scale(uint b, uint j) {
    const uint h = W[b], l = W[b + 1u];
    const uint ls = ((l >> (4u * j)) & 0xFu) | (((h >> (16u + 2u * j)) & 3u) << 4);
    return unpackHalf2x16(h).x * float(int(ls) - 32);
}
#endif
void dequant_chunk(uint base, uint c, out float w[CH]) {
#if defined(WTYPE_IQ4_NL)
    const uint b = base + 9u * c;
    const float d = unpackHalf2x16(uint(W[b])).x;
    for (uint i = 0u; i < 8u; ++i) {
        const uint u = uint(W[b + 1u + i]);  // qs[2i], qs[2i + 1]
#else
    const uint b = base + 34u * (c >> 3), j = c & 7u;
    const float d = iq4xs_scale(b, j);
    for (uint i = 0u; i < 8u; ++i) {
        const uint u = (W[b + 2u + 4u * j + (i >> 1)] >> (16u * (i & 1u))) & 0xFFFFu;  // qs[16j + 2i], + 1
#endif
        for (uint k = 0u; k < 2u; ++k) {
            const uint byte = (u >> (8u * k)) & 0xFFu;
            w[2u * i + k] = d * float(iq4_kv(byte & 0xFu));
            w[16u + 2u * i + k] = d * float(iq4_kv(byte >> 4));
        }
    }
}

#elif defined(IQ_GRID)
#include "iq_grid.glsl"

#else
#error "define one of WTYPE_F32, WTYPE_F16, WTYPE_BF16, WTYPE_Q4_0, WTYPE_Q5_0, WTYPE_Q5_1, WTYPE_Q8_0, WTYPE_Q8_0R, WTYPE_Q2_K, WTYPE_Q3_K, WTYPE_Q4_K, WTYPE_Q5_K, WTYPE_Q6_K, WTYPE_IQ4_NL, WTYPE_IQ4_XS or a grid type (iq_grid.glsl)"
#endif
