// Internal to engine/tensor: the IQ3_XXS / IQ3_S / IQ1_S / IQ1_M kernels (grid types, layouts in
// blocks.h), kept in their own files and hooked into the tables of kernels_ref.cpp, dot_avx2.cpp and
// quantize.cpp. Their activations are the K-quants' int8 blocks of 256 (ActQ8x256).
#pragma once
#include <cstdint>

#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

// Scalar (iq3_ref.cpp, iq1_ref.cpp): dequantize as ggml does, bit for bit; dots as exact integer sums
// per super-block, scaled once in float.
void dequant_iq3_xxs(const void* src, float* y, int64_t n);
void dequant_iq3_s(const void* src, float* y, int64_t n);
void dequant_iq1_s(const void* src, float* y, int64_t n);
void dequant_iq1_m(const void* src, float* y, int64_t n);
float dot_iq3_xxs(const void* row, const void* act, int64_t n);
float dot_iq3_s(const void* row, const void* act, int64_t n);
float dot_iq1_s(const void* row, const void* act, int64_t n);
float dot_iq1_m(const void* row, const void* act, int64_t n);
// The scalar dots' inner sum: n int8 weights v times n int8 activations q.
inline int dot_i8(const int8_t* v, const int8_t* q, int n) {
    int s = 0;
    for (int e = 0; e < n; ++e) s += v[e] * q[e];
    return s;
}

// Our quantizers (iq3_quant.cpp, iq1_quant.cpp): nb super-blocks of 256 from x.
void quantize_iq3_xxs(const float* x, void* dst, int64_t nb);
void quantize_iq3_s(const float* x, void* dst, int64_t nb);
void quantize_iq1_s(const float* x, void* dst, int64_t nb);
void quantize_iq1_m(const float* x, void* dst, int64_t nb);

// AVX2 (dot_iq13_avx2.cpp): null for other types. Call only where the CPU has AVX2.
DotFn avx2_iq13_dot(GgmlType t);
Dot4Fn avx2_iq13_dot4(GgmlType t);

}  // namespace sluice::detail
