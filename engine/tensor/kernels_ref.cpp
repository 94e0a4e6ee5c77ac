// Scalar reference kernels: dequantize (same arithmetic as llama.cpp's dequantize_row_*, so SIMD
// versions must match bit for bit), activation preparation, and dot products that compute exactly
// the integer sums the SIMD versions compute, combined in float per block.
#include <cmath>
#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/iq2.h"
#include "engine/tensor/kernels_iq13.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

using namespace blocks;

namespace {

// ---- dequantize: src blocks -> n floats

void dequant_f32(const void* src, float* y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }

void dequant_f16(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_f32(x[i]);
}

void dequant_bf16(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}

void dequant_q4_0(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q4_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK / 2; ++j) {
            y[j] = float((x[i].qs[j] & 0xF) - 8) * d;
            y[j + QK / 2] = float((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

// Q5_0 / Q5_1: the quant (0..31) of element e of a block: its nibble of qs[e % 16] (the low one for
// e < 16) and its fifth bit, bit e of qh.
inline int q5_quant(const uint8_t* qs, uint32_t qh, int e) {
    const int lo = e < QK / 2 ? qs[e] & 0xF : qs[e - QK / 2] >> 4;
    return lo | int((qh >> e) & 1) << 4;
}

void dequant_q5_0(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q5_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = fp16_to_f32(x[i].d);
        const uint32_t qh = q5_qh(x[i].qh);
        for (int e = 0; e < QK; ++e) y[e] = float(q5_quant(x[i].qs, qh, e) - 16) * d;
    }
}

void dequant_q5_1(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q5_1*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = fp16_to_f32(x[i].d), m = fp16_to_f32(x[i].m);
        const uint32_t qh = q5_qh(x[i].qh);
        // q * d + m rounded twice, as ggml (no fma: -ffp-contract=off)
        for (int e = 0; e < QK; ++e) y[e] = float(q5_quant(x[i].qs, qh, e)) * d + m;
    }
}

// IQ4_NL / IQ4_XS: 32 quants from 16 bytes (Q4_0's nibble order) as levels, times dl.
inline void dequant_iq4_32(const uint8_t* qs, float dl, float* y) {
    for (int j = 0; j < QK / 2; ++j) {
        y[j] = dl * float(kIq4Levels[qs[j] & 0xF]);
        y[j + QK / 2] = dl * float(kIq4Levels[qs[j] >> 4]);
    }
}

void dequant_iq4_nl(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const IQ4_NL*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) dequant_iq4_32(x[i].qs, fp16_to_f32(x[i].d), y);
}

void dequant_iq4_xs(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const IQ4_XS*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int g = 0; g < QKK / QK; ++g, y += QK)  // dl rounded once, as ggml
            dequant_iq4_32(x[i].qs + QK / 2 * g, d * float(scale_iq4xs(g, x[i])), y);
    }
}

void dequant_q8_0(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q8_0*>(src);
    for (int64_t i = 0; i < n / QK; ++i, y += QK) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK; ++j) y[j] = float(x[i].qs[j]) * d;
    }
}

void dequant_q2_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q2_K*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
        for (int e = 0; e < QKK; ++e, ++y) {
            const int g = e / 16, s = (e % 128) / 32, l = e % 32;
            const uint8_t sc = x[i].scales[g];
            const int q = (x[i].qs[e / 128 * 32 + l] >> (2 * s)) & 3;
            *y = d * float(sc & 0xF) * float(q) - dmin * float(sc >> 4);
        }
    }
}

void dequant_q3_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q3_K*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int e = 0; e < QKK; ++e, ++y) {
            const int s = (e % 128) / 32, l = e % 32;
            const int lo = (x[i].qs[e / 128 * 32 + l] >> (2 * s)) & 3;
            const int hi = (x[i].hmask[l] >> (e / 32)) & 1;
            *y = d * float(scale_q3k(e / 16, x[i].scales)) * float(lo + 4 * hi - 4);
        }
    }
}

void dequant_q4_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q4_K*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
        for (int e = 0; e < QKK; ++e, ++y) {
            int sc, m;
            scale_min_k4(e / 32, x[i].scales, sc, m);
            const int q = (x[i].qs[e / 64 * 32 + e % 32] >> (4 * ((e / 32) & 1))) & 0xF;
            *y = d * float(sc) * float(q) - dmin * float(m);
        }
    }
}

void dequant_q5_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q5_K*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d), dmin = fp16_to_f32(x[i].dmin);
        for (int e = 0; e < QKK; ++e, ++y) {
            int sc, m;
            scale_min_k4(e / 32, x[i].scales, sc, m);
            const int lo = (x[i].qs[e / 64 * 32 + e % 32] >> (4 * ((e / 32) & 1))) & 0xF;
            const int hi = (x[i].qh[e % 32] >> (e / 32)) & 1;
            *y = d * float(sc) * float(lo + 16 * hi) - dmin * float(m);
        }
    }
}

void dequant_q6_K(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const Q6_K*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int e = 0; e < QKK; ++e, ++y) {
            const int h = e / 128, s = (e % 128) / 32, l = e % 32;
            const int lo = (x[i].ql[h * 64 + l + 32 * (s & 1)] >> (4 * (s >> 1))) & 0xF;
            const int hi = (x[i].qh[h * 32 + l] >> (2 * s)) & 3;
            *y = d * float(x[i].scales[e / 16]) * float((lo | hi << 4) - 32);
        }
    }
}

// ---- prepare activations

void prepare_f32(const float* x, void* act, int64_t n) { std::memcpy(act, x, size_t(n) * 4); }

// Round to nearest even (the 1.5*2^23 trick), as the SIMD cvtps does in the default rounding mode.
inline int round_even(float v) {
    float f = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// Quantizes one block of bs values: |q| <= 127, returns d = amax/127, and q = round(x * 127/amax).
// Blocks with amax below kActTiny (where 127/amax could overflow) quantize to zeros.
inline float quantize_act_block(const float* x, int8_t* q, int bs) {
    float amax = 0;
    for (int j = 0; j < bs; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float id = amax >= kActTiny ? 127.f / amax : 0.f;
    for (int j = 0; j < bs; ++j) {
        int v = round_even(x[j] * id);
        q[j] = int8_t(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return amax / 127.f;
}

void prepare_q8x32(const float* x, void* act, int64_t n) {
    ActQ8x32 a = act_q8x32(act, n);
    for (int64_t b = 0; b < n / QK; ++b) {
        a.d[b] = quantize_act_block(x + b * QK, a.qs + b * QK, QK);
        int sum = 0;
        for (int j = 0; j < QK; ++j) sum += a.qs[b * QK + j];
        a.sum[b] = sum;
    }
}

void prepare_q8x256(const float* x, void* act, int64_t n) {
    ActQ8x256 a = act_q8x256(act, n);
    for (int64_t b = 0; b < n / QKK; ++b) a.d[b] = quantize_act_block(x + b * QKK, a.qs + b * QKK, QKK);
    for (int64_t g = 0; g < n / 16; ++g) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += a.qs[g * 16 + j];
        a.bsums[g] = int16_t(sum);
    }
}

// ---- dot products: weight row (n elements) . prepared activations

float dot_f32(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const float*>(row);
    auto* x = static_cast<const float*>(act);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += w[i] * x[i];
    return sum;
}

float dot_f16(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const uint16_t*>(row);
    auto* x = static_cast<const float*>(act);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += fp16_to_f32(w[i]) * x[i];
    return sum;
}

float dot_bf16(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const uint16_t*>(row);
    auto* x = static_cast<const float*>(act);
    float sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += bf16_to_f32(w[i]) * x[i];
    return sum;
}

// sum over blocks of d_w * d_a * (sum(q_w * q_a) - 8 * sum(q_a)), q_w the raw nibbles 0..15
float dot_q4_0(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q4_0*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QK; ++b) {
        const int8_t* q = a.qs + b * QK;
        int s = 0;
        for (int j = 0; j < QK / 2; ++j) s += (w[b].qs[j] & 0xF) * q[j] + (w[b].qs[j] >> 4) * q[j + 16];
        sum += fp16_to_f32(w[b].d) * a.d[b] * float(s - 8 * a.sum[b]);
    }
    return sum;
}

// A Q5_0 / Q5_1 block's 5-bit quants (0..31) times a block of int8 activations, summed exactly.
int q5_sum(const uint8_t* qs, const uint8_t* qh_bytes, const int8_t* q) {
    const uint32_t qh = q5_qh(qh_bytes);
    int s = 0;
    for (int e = 0; e < QK; ++e) s += q5_quant(qs, qh, e) * q[e];
    return s;
}

// As Q4_0 with 5-bit quants 0..31 and a "- 16" offset.
float dot_q5_0(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q5_0*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QK; ++b) {
        const int8_t* q = a.qs + b * QK;
        const int s = q5_sum(w[b].qs, w[b].qh, q);
        sum += fp16_to_f32(w[b].d) * a.d[b] * float(s - 16 * a.sum[b]);
    }
    return sum;
}

// sum over blocks of d_a * (d_w * sum(q_w * q_a) + m * sum(q_a)): the min meets the block's sum.
float dot_q5_1(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q5_1*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QK; ++b) {
        const int8_t* q = a.qs + b * QK;
        const int s = q5_sum(w[b].qs, w[b].qh, q);
        sum += a.d[b] * (fp16_to_f32(w[b].d) * float(s) + fp16_to_f32(w[b].m) * float(a.sum[b]));
    }
    return sum;
}

// 32 IQ4 quants (16 bytes) as levels times a block of int8 activations, summed exactly.
int iq4_sum(const uint8_t* qs, const int8_t* q) {
    int s = 0;
    for (int j = 0; j < QK / 2; ++j) s += kIq4Levels[qs[j] & 0xF] * q[j] + kIq4Levels[qs[j] >> 4] * q[j + QK / 2];
    return s;
}

// As Q8_0, the levels standing for the int8 quants.
float dot_iq4_nl(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const IQ4_NL*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QK; ++b)
        sum += fp16_to_f32(w[b].d) * a.d[b] * float(iq4_sum(w[b].qs, a.qs + b * QK));
    return sum;
}

// Group g of super-block b meets activation block 8b + g: d * d_a * ((ls - 32) * sum(level * q_a)),
// the group scale applied in integers (exact: |sum| <= 32 * 127 * 127, times 32 < 2^24).
float dot_iq4_xs(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const IQ4_XS*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const float d = fp16_to_f32(w[b].d);
        for (int g = 0; g < QKK / QK; ++g) {
            const int64_t k = b * (QKK / QK) + g;
            const int s = scale_iq4xs(g, w[b]) * iq4_sum(w[b].qs + QK / 2 * g, a.qs + k * QK);
            sum += d * a.d[k] * float(s);
        }
    }
    return sum;
}

float dot_q8_0(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q8_0*>(row);
    ActQ8x32 a = act_q8x32(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QK; ++b) {
        int s = 0;
        for (int j = 0; j < QK; ++j) s += w[b].qs[j] * a.qs[b * QK + j];
        sum += fp16_to_f32(w[b].d) * a.d[b] * float(s);
    }
    return sum;
}

// The K-quant dots: per super-block, isum = sum_g scale_g * sum(q_w * q_a) over group g and
// imin = sum_g min_g * bsum_g (integers), then d_a * (d * isum - dmin * imin).
float dot_q2_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q2_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const int8_t* q = a.qs + b * QKK;
        int isum = 0, imin = 0;
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int e = 16 * g; e < 16 * g + 16; ++e)
                s += ((w[b].qs[e / 128 * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3) * q[e];
            isum += (w[b].scales[g] & 0xF) * s;
            imin += (w[b].scales[g] >> 4) * a.bsums[b * 16 + g];
        }
        sum += a.d[b] * (fp16_to_f32(w[b].d) * float(isum) - fp16_to_f32(w[b].dmin) * float(imin));
    }
    return sum;
}

// q_w = lo + 4*hi - 4: the "- 4" becomes -4 * bsum per group.
float dot_q3_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q3_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const int8_t* q = a.qs + b * QKK;
        int isum = 0;
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int e = 16 * g; e < 16 * g + 16; ++e) {
                const int lo = (w[b].qs[e / 128 * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                const int hi = (w[b].hmask[e % 32] >> (e / 32)) & 1;
                s += (lo + 4 * hi) * q[e];
            }
            isum += scale_q3k(g, w[b].scales) * (s - 4 * a.bsums[b * 16 + g]);
        }
        sum += a.d[b] * fp16_to_f32(w[b].d) * float(isum);
    }
    return sum;
}

float dot_q4_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q4_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const int8_t* q = a.qs + b * QKK;
        int isum = 0, imin = 0;
        for (int g = 0; g < 8; ++g) {
            int sc, m, s = 0;
            scale_min_k4(g, w[b].scales, sc, m);
            for (int e = 32 * g; e < 32 * g + 32; ++e)
                s += ((w[b].qs[e / 64 * 32 + e % 32] >> (4 * (g & 1))) & 0xF) * q[e];
            isum += sc * s;
            imin += m * (a.bsums[b * 16 + 2 * g] + a.bsums[b * 16 + 2 * g + 1]);
        }
        sum += a.d[b] * (fp16_to_f32(w[b].d) * float(isum) - fp16_to_f32(w[b].dmin) * float(imin));
    }
    return sum;
}

float dot_q5_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q5_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const int8_t* q = a.qs + b * QKK;
        int isum = 0, imin = 0;
        for (int g = 0; g < 8; ++g) {
            int sc, m, s = 0;
            scale_min_k4(g, w[b].scales, sc, m);
            for (int e = 32 * g; e < 32 * g + 32; ++e) {
                const int lo = (w[b].qs[e / 64 * 32 + e % 32] >> (4 * (g & 1))) & 0xF;
                const int hi = (w[b].qh[e % 32] >> g) & 1;
                s += (lo + 16 * hi) * q[e];
            }
            isum += sc * s;
            imin += m * (a.bsums[b * 16 + 2 * g] + a.bsums[b * 16 + 2 * g + 1]);
        }
        sum += a.d[b] * (fp16_to_f32(w[b].d) * float(isum) - fp16_to_f32(w[b].dmin) * float(imin));
    }
    return sum;
}

// q_w = u - 32 with u in 0..63: the "- 32" becomes -32 * bsum per group.
float dot_q6_K(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const Q6_K*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const int8_t* q = a.qs + b * QKK;
        int isum = 0;
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int e = 16 * g; e < 16 * g + 16; ++e) {
                const int h = e / 128, sh = (e % 128) / 32, l = e % 32;
                const int lo = (w[b].ql[h * 64 + l + 32 * (sh & 1)] >> (4 * (sh >> 1))) & 0xF;
                const int hi = (w[b].qh[h * 32 + l] >> (2 * sh)) & 3;
                s += (lo | hi << 4) * q[e];
            }
            isum += w[b].scales[g] * (s - 32 * a.bsums[b * 16 + g]);
        }
        sum += a.d[b] * fp16_to_f32(w[b].d) * float(isum);
    }
    return sum;
}

}  // namespace

TypeKernels scalar_kernels(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return {dequant_f32, prepare_f32, dot_f32};
        case GgmlType::F16: return {dequant_f16, prepare_f32, dot_f16};
        case GgmlType::BF16: return {dequant_bf16, prepare_f32, dot_bf16};
        case GgmlType::Q4_0: return {dequant_q4_0, prepare_q8x32, dot_q4_0};
        case GgmlType::Q5_0: return {dequant_q5_0, prepare_q8x32, dot_q5_0};
        case GgmlType::Q5_1: return {dequant_q5_1, prepare_q8x32, dot_q5_1};
        case GgmlType::Q8_0: return {dequant_q8_0, prepare_q8x32, dot_q8_0};
        case GgmlType::IQ4_NL: return {dequant_iq4_nl, prepare_q8x32, dot_iq4_nl};
        case GgmlType::IQ4_XS: return {dequant_iq4_xs, prepare_q8x32, dot_iq4_xs};
        case GgmlType::Q2_K: return {dequant_q2_K, prepare_q8x256, dot_q2_K};
        case GgmlType::Q3_K: return {dequant_q3_K, prepare_q8x256, dot_q3_K};
        case GgmlType::Q4_K: return {dequant_q4_K, prepare_q8x256, dot_q4_K};
        case GgmlType::Q5_K: return {dequant_q5_K, prepare_q8x256, dot_q5_K};
        case GgmlType::Q6_K: return {dequant_q6_K, prepare_q8x256, dot_q6_K};
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S: {  // iq2_ref.cpp
            TypeKernels k = iq2_scalar_kernels(t);
            k.prepare = prepare_q8x256;
            return k;
        }
        case GgmlType::IQ3_XXS: return {dequant_iq3_xxs, prepare_q8x256, dot_iq3_xxs};
        case GgmlType::IQ3_S: return {dequant_iq3_s, prepare_q8x256, dot_iq3_s};
        case GgmlType::IQ1_S: return {dequant_iq1_s, prepare_q8x256, dot_iq1_s};
        case GgmlType::IQ1_M: return {dequant_iq1_m, prepare_q8x256, dot_iq1_m};
        default: return {};
    }
}

}  // namespace sluice::detail
