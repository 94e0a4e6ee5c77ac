// AVX-512 dequantizers: F16/BF16 16 at a time (masked tails), the block types via dequant_simd.h
// with 16-wide float conversion.
// GCC 12 warns about the _mm512_undefined_* placeholders inside its own intrinsics (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// 16 int8 quants -> y[0..16) = dl * q - ml
inline void emit16(const int8_t* q, float dl, float ml, float* y) {
    const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q))));
    _mm512_storeu_ps(y, _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl), v), _mm512_set1_ps(ml)));
}

void dequant_f16(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

void dequant_bf16(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, x + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
}

}  // namespace
}  // namespace sluice::detail

#include "engine/tensor/dequant_simd.h"

namespace sluice::detail {

DequantFn avx512_dequant(GgmlType t) {
    switch (t) {
        case GgmlType::F16: return dequant_f16;
        case GgmlType::BF16: return dequant_bf16;
        case GgmlType::Q4_0: return dequant_q4_0;
        case GgmlType::Q8_0: return dequant_q8_0;
        case GgmlType::Q2_K: return dequant_q2_K;
        case GgmlType::Q3_K: return dequant_q3_K;
        case GgmlType::Q4_K: return dequant_q4_K;
        case GgmlType::Q5_K: return dequant_q5_K;
        case GgmlType::Q6_K: return dequant_q6_K;
        default: return nullptr;
    }
}

}  // namespace sluice::detail
