// Internal to engine/tensor: block dequantizers shared by dequant_avx2.cpp and dequant_avx512.cpp.
// Quants are unpacked to int8 with AVX2 byte operations; the including file defines, before
// including this, half(h) and emit16(q, dl, ml, y): y[0..16) = dl * q - ml, a multiply then a
// subtract, never fused (engine/tensor files build with -ffp-contract=off), so that the floats equal
// the scalar reference's bit for bit. Everything here has internal linkage: each ISA gets its copy.
#pragma once
#include <immintrin.h>

#include "engine/tensor/blocks.h"

namespace sluice::detail {
namespace {

using namespace blocks;

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

void dequant_q4_0(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q4_0*>(src);
    alignas(32) int8_t q[QK];
    const __m128i m4 = _mm_set1_epi8(0xF), off = _mm_set1_epi8(8);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].qs));
        _mm_store_si128(reinterpret_cast<__m128i*>(q), _mm_sub_epi8(_mm_and_si128(b, m4), off));
        _mm_store_si128(reinterpret_cast<__m128i*>(q + 16),
                        _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m4), off));
        const float d = half(x[i].d);
        emit16(q, d, 0.f, y);
        emit16(q + 16, d, 0.f, y + 16);
    }
}

void dequant_q8_0(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q8_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = half(x[i].d);
        emit16(x[i].qs, d, 0.f, y);
        emit16(x[i].qs + 16, d, 0.f, y + 16);
    }
}

// 2-bit fields s = 0..3 of 32 bytes: element 32*s + l is (b[l] >> 2s) & 3.
inline void unpack_2bit(const uint8_t* qs, int8_t* q) {
    const __m256i b = load256(qs), m3 = _mm256_set1_epi8(3);
    for (int s = 0; s < 4; ++s)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * s),
                            _mm256_and_si256(_mm256_srl_epi16(b, _mm_cvtsi32_si128(2 * s)), m3));
}

void dequant_q2_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q2_K*>(src);
    alignas(32) int8_t q[QKK];
    for (int64_t i = 0; i < n / QKK; ++i, y += QKK) {
        unpack_2bit(x[i].qs, q);
        unpack_2bit(x[i].qs + 32, q + 128);
        const float d = half(x[i].d), dmin = half(x[i].dmin);
        for (int g = 0; g < 16; ++g) {
            const uint8_t sc = x[i].scales[g];
            emit16(q + 16 * g, d * float(sc & 0xF), dmin * float(sc >> 4), y + 16 * g);
        }
    }
}

void dequant_q3_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q3_K*>(src);
    alignas(32) int8_t q[QKK];
    const __m256i one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < n / QKK; ++i, y += QKK) {
        unpack_2bit(x[i].qs, q);
        unpack_2bit(x[i].qs + 32, q + 128);
        const __m256i hm = load256(x[i].hmask);
        for (int s = 0; s < 8; ++s) {  // q = lo + 4 * hbit - 4, hbit = bit s of hmask[l]
            __m256i* p = reinterpret_cast<__m256i*>(q + 32 * s);
            __m256i h = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(s)), one);
            __m256i v = _mm256_add_epi8(_mm256_load_si256(p), _mm256_slli_epi16(h, 2));
            _mm256_store_si256(p, _mm256_sub_epi8(v, four));
        }
        const float d = half(x[i].d);
        for (int g = 0; g < 16; ++g) emit16(q + 16 * g, d * float(scale_q3k(g, x[i].scales)), 0.f, y + 16 * g);
    }
}

// Q4_K / Q5_K: 64 elements per 32 bytes of qs, low nibbles first.
inline void unpack_4bit(const uint8_t* qs, int8_t* q) {
    const __m256i m4 = _mm256_set1_epi8(0xF);
    for (int j = 0; j < 4; ++j) {
        const __m256i b = load256(qs + 32 * j);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * j), _mm256_and_si256(b, m4));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 64 * j + 32),
                            _mm256_and_si256(_mm256_srli_epi16(b, 4), m4));
    }
}

template <class Block>
inline void emit_kx(const Block& b, const int8_t* q, float* y) {
    const float d = half(b.d), dmin = half(b.dmin);
    for (int g = 0; g < 8; ++g) {
        int sc, m;
        scale_min_k4(g, b.scales, sc, m);
        const float dl = d * float(sc), ml = dmin * float(m);
        emit16(q + 32 * g, dl, ml, y + 32 * g);
        emit16(q + 32 * g + 16, dl, ml, y + 32 * g + 16);
    }
}

void dequant_q4_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q4_K*>(src);
    alignas(32) int8_t q[QKK];
    for (int64_t i = 0; i < n / QKK; ++i, y += QKK) {
        unpack_4bit(x[i].qs, q);
        emit_kx(x[i], q, y);
    }
}

void dequant_q5_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q5_K*>(src);
    alignas(32) int8_t q[QKK];
    const __m256i one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < n / QKK; ++i, y += QKK) {
        unpack_4bit(x[i].qs, q);
        const __m256i hm = load256(x[i].qh);
        for (int s = 0; s < 8; ++s) {  // + 16 * (bit s of qh[l])
            __m256i* p = reinterpret_cast<__m256i*>(q + 32 * s);
            __m256i h = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(s)), one);
            _mm256_store_si256(p, _mm256_or_si256(_mm256_load_si256(p), _mm256_slli_epi16(h, 4)));
        }
        emit_kx(x[i], q, y);
    }
}

// Q6_K: per 128 elements, quants 32*s + l = (nibble s>>1 of ql[l + 32*(s&1)]) | (bits 2s of qh[l]) << 4.
inline void unpack_q6(const uint8_t* ql, const uint8_t* qh, int8_t* q) {
    const __m256i m4 = _mm256_set1_epi8(0xF), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    const __m256i l0 = load256(ql), l1 = load256(ql + 32), h = load256(qh);
    const __m256i lo[4] = {_mm256_and_si256(l0, m4), _mm256_and_si256(l1, m4),
                           _mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(l1, 4), m4)};
    for (int s = 0; s < 4; ++s) {
        __m256i hi = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * s)), m3);
        __m256i v = _mm256_or_si256(lo[s], _mm256_slli_epi16(hi, 4));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * s), _mm256_sub_epi8(v, off));
    }
}

void dequant_q6_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q6_K*>(src);
    alignas(32) int8_t q[QKK];
    for (int64_t i = 0; i < n / QKK; ++i, y += QKK) {
        unpack_q6(x[i].ql, x[i].qh, q);
        unpack_q6(x[i].ql + 64, x[i].qh + 32, q + 128);
        const float d = half(x[i].d);
        for (int g = 0; g < 16; ++g) emit16(q + 16 * g, d * float(x[i].scales[g]), 0.f, y + 16 * g);
    }
}

}  // namespace
}  // namespace sluice::detail
