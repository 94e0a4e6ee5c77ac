// Internal to engine/tensor: ggml block layouts (ggml-common.h, llama.cpp v0.5.0) and the layouts of
// our prepared activations. Shared by the scalar reference and the SIMD files; its functions are
// static so a copy compiled with AVX flags is never linked into scalar code.
#pragma once
#include <cstdint>
#include <cstring>

namespace sluice::blocks {

constexpr int QK = 32;    // Q4_0 / Q5_0 / Q5_1 / Q8_0 / IQ4_NL block
constexpr int QKK = 256;  // K-quant / IQ4_XS super-block

// x = d * (q - 8), q 4 bits: element j in the low nibble of qs[j], element j+16 in the high one.
struct Q4_0 {
    uint16_t d;
    uint8_t qs[QK / 2];
};
// x = d * (q - 16), q 5 bits: the low 4 as Q4_0's nibbles, the fifth of element j at bit j of qh
// (qh read as one little-endian uint32; elements 16..31 at bits 16..31). llama.cpp writes it for rows
// whose length is not a multiple of 256 when the target is Q4_K.
struct Q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
// x = d * q + m, q 5 bits packed as Q5_0 (no offset); llama.cpp's fallback for Q5_K targets.
struct Q5_1 {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
// IQ4_NL / IQ4_XS: a 4-bit q indexes these int8 levels (ggml's kvalues_iq4nl), denser near zero
// where most weights are.
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// x = d * kIq4Levels[q], q packed as Q4_0's nibbles. llama.cpp writes it for rows whose length is not
// a multiple of 256 when the target is Q2_K, Q3_K or IQ4_XS (deepseek2's attn_k_b, V2-Lite's experts).
struct IQ4_NL {
    uint16_t d;
    uint8_t qs[QK / 2];
};
// 8 groups of 32: x = d * (ls[g] - 32) * kIq4Levels[q], ls 6 bits (see scale_iq4xs); group g's 32
// quants in qs[16g .. 16g+15], packed as IQ4_NL's.
struct IQ4_XS {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[QKK / 64];
    uint8_t qs[QKK / 2];
};
// IQ2_XXS / IQ2_XS / IQ2_S: 8 groups of 32, each 4 pieces of 8 values; a piece is one entry of a fixed
// grid (iq_grids.h: 8 magnitudes of 8, 25 or 43) and 8 signs, and x = d * (0.5 + ls) / 4 * grid * sign
// with a 4-bit ls per 32 (XXS) or per 16 (XS, S). Piece p = 4g + l covers elements 8p .. 8p+7.
// IQ2_XXS: group g in qs[4g .. 4g+3] read as two little-endian uint32: the first holds piece l's grid
// index (kIq2xxsGrid) in byte l; the second piece l's 7-bit sign index (kIqSigns: the eighth sign
// makes the minus count even) at bits 7l, and ls in bits 28-31.
struct IQ2_XXS {
    uint16_t d;
    uint16_t qs[QKK / 8];
};
// IQ2_XS: qs[p] = piece p's 9-bit grid index (kIq2xsGrid) | its 7-bit sign index << 9; scales[g]: ls of
// elements 0-15 of group g in the low nibble, of 16-31 in the high one.
struct IQ2_XS {
    uint16_t d;
    uint16_t qs[QKK / 8];
    uint8_t scales[QKK / 32];
};
// IQ2_S: qs[p] the low 8 bits of piece p's 10-bit grid index (kIq2sGrid), bits 8-9 at bits 2l of qh[g];
// qs[32 + p] piece p's 8 signs (bit j set: value j negative, no parity); scales as IQ2_XS.
struct IQ2_S {
    uint16_t d;
    uint8_t qs[QKK / 4];
    uint8_t qh[QKK / 32];
    uint8_t scales[QKK / 32];
};
// x = d * q
struct Q8_0 {
    uint16_t d;
    int8_t qs[QK];
};
// 16 groups of 16: x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q 2 bits.
// Each 128 elements use 32 bytes of qs: element 32*s + l sits in bits 2s of qs[l].
struct Q2_K {
    uint8_t scales[QKK / 16];
    uint8_t qs[QKK / 4];
    uint16_t d, dmin;
};
// 16 groups of 16: x = d * (sc[g] - 32) * (q - 4), q = 2 low bits (as Q2_K) + a high bit in hmask
// (bit s of hmask[l] for element 32*s + l); the 16 6-bit scales are packed in 12 bytes.
struct Q3_K {
    uint8_t hmask[QKK / 8];
    uint8_t qs[QKK / 4];
    uint8_t scales[12];
    uint16_t d;
};
// 8 groups of 32: x = d * sc[g] * q - dmin * m[g], 6-bit sc/m packed in 12 bytes (see scale_min_k4).
// Each 64 elements use 32 bytes of qs: low nibbles the first 32, high nibbles the next 32.
struct Q4_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QKK / 2];
};
// As Q4_K with a fifth bit: element 32*s + l has its high bit at bit s of qh[l].
struct Q5_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QKK / 8];
    uint8_t qs[QKK / 2];
};
// 16 groups of 16: x = d * scales[g] * (q - 32), q 6 bits. Per 128 elements: ql 64 bytes, qh 32 bytes;
// element 32*s + l: low nibble of ql[l + 32*(s&1)] (s<2) or its high nibble (s>=2), 2 high bits at
// bits 2s of qh[l].
struct Q6_K {
    uint8_t ql[QKK / 2];
    uint8_t qh[QKK / 4];
    int8_t scales[QKK / 16];
    uint16_t d;
};

// IQ3_XXS / IQ3_S / IQ1_S / IQ1_M: each group of 4 (IQ3) or 8 (IQ1) weights is one index into a
// fixed grid of value patterns (iq_grids.h). Below, "entry m" is the m-th group of 4 / 8 in the block.
//
// IQ3_XXS, 8 groups of 32: x = d * (2 * ls[g] + 1) / 4 * grid[qs[m]] * sign (grid values 4..62).
// Group g's 32-bit word signs_scales[4g..4g+3] (little-endian): bits 7k..7k+6 a 7-bit sign index for
// its k-th 8 weights (kIqSigns: the eighth sign makes the count of minus signs even), ls = bits 28..31.
struct IQ3_XXS {
    uint16_t d;
    uint8_t qs[QKK / 4];
    uint8_t signs_scales[QKK / 8];
};
// IQ3_S, 8 groups of 32: x = d * (2 * sc[g] + 1) * grid[qs[m] | hi bit << 8] * sign (512 entries,
// values odd 1..15). Entry m's ninth bit is bit m%8 of qh[m/8]; element e is negative where bit e%8 of
// signs[e/8] is set (all 8 signs stored); sc[g] is nibble g%2 of scales[g/2].
struct IQ3_S {
    uint16_t d;
    uint8_t qs[QKK / 4];
    uint8_t qh[QKK / 32];
    uint8_t signs[QKK / 8];
    uint8_t scales[QKK / 64];
};
// IQ1_S, 8 groups of 32: x = d * (2 * sc[g] + 1) * (grid[idx] + delta), grid values -1/0/1, delta
// +-kIq1Delta. qh[g]: bits 3k..3k+2 the high 3 bits of the 11-bit index of the group's k-th 8 (low 8
// in qs[4g+k]), sc[g] = bits 12..14, bit 15 set: delta negative.
struct IQ1_S {
    uint16_t d;
    uint8_t qs[QKK / 8];
    uint16_t qh[QKK / 32];
};
// IQ1_M, 16 groups of 16: x = d * (2 * sc[h] + 1) * (grid[idx] + delta), delta per 8. Entry m (of 32):
// low 8 index bits qs[m], nibble m%2 of qh[m/2] holds the high 3 (bits 0..2) and delta's sign (bit 3).
// scales as 4 little-endian uint16: group h's 3 bits at bit 3*(h%4) of word h/4; no d field: the fp16
// d is spread over the words' top nibbles (word i's bits 12..15 are d's bits 4i..4i+3).
struct IQ1_M {
    uint8_t qs[QKK / 8];
    uint8_t qh[QKK / 16];
    uint8_t scales[QKK / 32];
};

static_assert(sizeof(Q4_0) == 18 && sizeof(Q5_0) == 22 && sizeof(Q5_1) == 24 && sizeof(Q8_0) == 34 &&
              sizeof(IQ4_NL) == 18 && sizeof(IQ4_XS) == 136 && sizeof(IQ2_XXS) == 66 && sizeof(IQ2_XS) == 74 &&
              sizeof(IQ2_S) == 82 && sizeof(Q2_K) == 84 && sizeof(Q3_K) == 110 &&
              sizeof(Q4_K) == 144 && sizeof(Q5_K) == 176 && sizeof(Q6_K) == 210);
static_assert(sizeof(IQ3_XXS) == 98 && sizeof(IQ3_S) == 110 && sizeof(IQ1_S) == 50 && sizeof(IQ1_M) == 56);

// Q5_0 / Q5_1: the 32 fifth bits as one integer, element j at bit j (qh is unaligned in the block).
static inline uint32_t q5_qh(const uint8_t* qh) {
    uint32_t v;
    std::memcpy(&v, qh, 4);
    return v;
}

// Q4_K / Q5_K group j (0..7): 6-bit scale and min from the 12 packed bytes. Groups 0-3 keep theirs
// in the low 6 bits of bytes j and j+4; groups 4-7 keep the low 4 bits in byte j+4's nibbles and
// the top 2 bits in the spare top bits of bytes j-4 (scale) and j (min).
static inline void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q3_K group j (0..15): 6-bit scale, stored +32. Low 4 bits: nibble (j/8) of byte j%8; high 2 bits:
// bits 2*(j/4) of byte 8 + j%4.
static inline int scale_q3k(int j, const uint8_t* s) {
    int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

// IQ4_XS group g (0..7): its scale ls - 32 (-32..31). Low 4 bits of ls: nibble g%2 of scales_l[g/2];
// high 2: bits 2g of scales_h.
static inline int scale_iq4xs(int g, const IQ4_XS& b) {
    const int lo = (b.scales_l[g / 2] >> (4 * (g % 2))) & 0xF, hi = (b.scales_h >> (2 * g)) & 3;
    return (lo | hi << 4) - 32;
}

// IQ3_XXS group g's sign-and-scale word.
static inline uint32_t iq3xxs_word(const IQ3_XXS& b, int g) {
    uint32_t v;
    std::memcpy(&v, b.signs_scales + 4 * g, 4);
    return v;
}
// IQ1_M: the 4 scale words, and d's fp16 bits gathered from their top nibbles.
static inline void iq1m_words(const IQ1_M& b, uint16_t sc[4]) { std::memcpy(sc, b.scales, 8); }
static inline uint16_t iq1m_d(const uint16_t sc[4]) {
    return uint16_t(sc[0] >> 12 | (sc[1] >> 12) << 4 | (sc[2] >> 12) << 8 | (sc[3] >> 12) << 12);
}

// Activation blocks whose largest magnitude is below this quantize to zeros (127/amax stays finite).
constexpr float kActTiny = 1e-30f;

// Prepared activations for Q4_0 / Q5_0 / Q5_1 / Q8_0 / IQ4_NL / IQ4_XS weights: n int8 quants, then
// n/32 float scales d, then n/32 int32 sums of each block's quants (Q4_0's "- 8" offset becomes -8 * sum,
// Q5_0's "- 16" -16 * sum; Q5_1's min m contributes m * d * sum). x ≈ d * q, |q| <= 127. IQ4_XS takes
// these rather than the K-quants' blocks of 256: its scales are per 32, so each group meets its own d.
struct ActQ8x32 {
    int8_t* qs;
    float* d;
    int32_t* sum;
};
static inline int64_t act_q8x32_bytes(int64_t n) { return n + n / QK * 8; }
static inline ActQ8x32 act_q8x32(void* p, int64_t n) {
    auto* b = static_cast<int8_t*>(p);
    return {b, reinterpret_cast<float*>(b + n), reinterpret_cast<int32_t*>(b + n + n / QK * 4)};
}

// Prepared activations for K-quant and IQ2 weights: n int8 quants, n/256 float scales, then n/16 int16
// sums of each 16 quants (the K-quants' mins multiply those sums; IQ2 has no use for them).
struct ActQ8x256 {
    int8_t* qs;
    float* d;
    int16_t* bsums;
};
static inline int64_t act_q8x256_bytes(int64_t n) { return n + n / QKK * 4 + n / 16 * 2; }
static inline ActQ8x256 act_q8x256(void* p, int64_t n) {
    auto* b = static_cast<int8_t*>(p);
    float* d = reinterpret_cast<float*>(b + n);
    return {b, d, reinterpret_cast<int16_t*>(d + n / QKK)};
}

}  // namespace sluice::blocks
