// Scalar IQ3_XXS / IQ3_S kernels: dequantize with ggml's float arithmetic (dequantize_row_iq3_*, so
// the floats match bit for bit), and dots as exact integer sums per super-block against the int8
// activation blocks of 256. Layouts in blocks.h.
#include "engine/tensor/blocks.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels_iq13.h"

namespace sluice::detail {

using namespace blocks;

namespace {

// Group g (32 weights) of an IQ3_XXS block as signed grid values (|v| <= 62), element e at v[e].
inline void iq3xxs_group(const IQ3_XXS& b, int g, int8_t* v) {
    const uint32_t w = iq3xxs_word(b, g);
    for (int k = 0; k < 4; ++k) {  // the k-th 8 weights: entries 8g + 2k and 8g + 2k + 1
        const uint8_t s = kIqSigns[(w >> 7 * k) & 127];
        for (int j = 0; j < 8; ++j) {
            const int u = uint8_t(kIq3xxsGrid[b.qs[8 * g + 2 * k + j / 4]] >> 8 * (j % 4));
            v[8 * k + j] = int8_t((s >> j) & 1 ? -u : u);
        }
    }
}

// As iq3xxs_group for IQ3_S (|v| <= 15): 9-bit indices, one stored sign per weight.
inline void iq3s_group(const IQ3_S& b, int g, int8_t* v) {
    for (int e = 0; e < 32; ++e) {
        const int idx = b.qs[8 * g + e / 4] | ((b.qh[g] >> (e / 4)) & 1) << 8;
        const int u = uint8_t(kIq3sGrid[idx] >> 8 * (e % 4));
        v[e] = int8_t((b.signs[4 * g + e / 8] >> (e % 8)) & 1 ? -u : u);
    }
}

inline int iq3s_scale(const IQ3_S& b, int g) { return 2 * ((b.scales[g / 2] >> 4 * (g % 2)) & 0xF) + 1; }

}  // namespace

// y = db * (+-grid): ggml's db * grid * (+-1.f), the sign's multiply being exact.
void dequant_iq3_xxs(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const IQ3_XXS*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int g = 0; g < QKK / 32; ++g, y += 32) {
            const float db = d * (0.5f + float(iq3xxs_word(x[i], g) >> 28)) * 0.5f;
            int8_t v[32];
            iq3xxs_group(x[i], g, v);
            for (int e = 0; e < 32; ++e) y[e] = db * float(v[e]);
        }
    }
}

void dequant_iq3_s(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const IQ3_S*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int g = 0; g < QKK / 32; ++g, y += 32) {
            const float db = d * float(iq3s_scale(x[i], g));
            int8_t v[32];
            iq3s_group(x[i], g, v);
            for (int e = 0; e < 32; ++e) y[e] = db * float(v[e]);
        }
    }
}

// Per super-block isum = sum_g (2 ls_g + 1) * sum(v * q_a) (|isum| < 2^26: exact in int), then
// d_a * d * isum; IQ3_XXS's scales are quarters, applied once at the end.
float dot_iq3_xxs(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const IQ3_XXS*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        int isum = 0;
        for (int g = 0; g < QKK / 32; ++g) {
            int8_t v[32];
            iq3xxs_group(w[b], g, v);
            isum += int(2 * (iq3xxs_word(w[b], g) >> 28) + 1) * dot_i8(v, a.qs + b * QKK + 32 * g, 32);
        }
        sum += a.d[b] * fp16_to_f32(w[b].d) * float(isum);
    }
    return 0.25f * sum;
}

float dot_iq3_s(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const IQ3_S*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        int isum = 0;
        for (int g = 0; g < QKK / 32; ++g) {
            int8_t v[32];
            iq3s_group(w[b], g, v);
            isum += iq3s_scale(w[b], g) * dot_i8(v, a.qs + b * QKK + 32 * g, 32);
        }
        sum += a.d[b] * fp16_to_f32(w[b].d) * float(isum);
    }
    return sum;
}

}  // namespace sluice::detail
