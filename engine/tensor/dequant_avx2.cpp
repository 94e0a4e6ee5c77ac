// AVX2 dequantizers: F16/BF16 8 at a time, the block types via dequant_simd.h with 8-wide floats.
#include <immintrin.h>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

using namespace blocks;

namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }
inline float bf16(uint16_t h) { return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(int(h) << 16))); }

// 16 int8 quants -> y[0..16) = dl * q - ml
inline void emit16(const int8_t* q, float dl, float ml, float* y) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    const __m256 d = _mm256_set1_ps(dl), m = _mm256_set1_ps(ml);
    const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
    const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)));
    _mm256_storeu_ps(y, _mm256_sub_ps(_mm256_mul_ps(d, lo), m));
    _mm256_storeu_ps(y + 8, _mm256_sub_ps(_mm256_mul_ps(d, hi), m));
}

void dequant_f16(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    for (; i < n; ++i) y[i] = half(x[i]);
}

void dequant_bf16(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const uint16_t*>(src);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; ++i) y[i] = bf16(x[i]);
}

}  // namespace
}  // namespace sluice::detail

#include "engine/tensor/dequant_simd.h"

namespace sluice::detail {

DequantFn avx2_dequant(GgmlType t) {
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
        default: return nullptr;  // F32 is a copy: the scalar version is as fast
    }
}

}  // namespace sluice::detail
