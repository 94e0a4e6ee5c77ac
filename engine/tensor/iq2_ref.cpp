// Scalar reference kernels of IQ2_XXS / IQ2_XS / IQ2_S: dequantize (ggml's arithmetic, bit for bit) and
// integer dots against the K-quants' int8 activation blocks of 256.
#include "engine/tensor/iq2.h"

namespace sluice::detail {

using namespace blocks;

namespace {

// y = db * grid * sign with db = d * (0.5 + ls) * 0.25, rounded as ggml's dequantize_row_iq2_* does:
// db once per scale, then one product per value (the sign flips it exactly).
template <class B>
void dequant_iq2(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const B*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int g = 0; g < QKK / 32; ++g)
            for (int l = 0; l < 4; ++l, y += 8) {
                const Iq2Piece p = iq2_piece(x[i], g, l);
                const float db = d * (0.5f + float(p.ls)) * 0.25f;
                for (int j = 0; j < 8; ++j)
                    y[j] = db * float(uint8_t(p.grid >> (8 * j))) * ((p.signs >> j) & 1 ? -1.f : 1.f);
            }
    }
}

// Per super-block the integer isum = sum over pieces of (2 ls + 1) * sum(sign * grid * q_a), then
// d * d_a * isum; the 1/8 of (0.5 + ls) / 4 = (2 ls + 1) / 8 once at the end. |isum| <= 256 * 43 * 127
// * 31 < 2^26.
template <class B>
float dot_iq2(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const B*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        const int8_t* q = a.qs + b * QKK;
        int isum = 0;
        for (int g = 0; g < QKK / 32; ++g)
            for (int l = 0; l < 4; ++l, q += 8) {
                const Iq2Piece p = iq2_piece(w[b], g, l);
                int s = 0;
                for (int j = 0; j < 8; ++j) {
                    const int v = int(uint8_t(p.grid >> (8 * j))) * q[j];
                    s += (p.signs >> j) & 1 ? -v : v;
                }
                isum += (2 * p.ls + 1) * s;
            }
        sum += fp16_to_f32(w[b].d) * a.d[b] * float(isum);
    }
    return 0.125f * sum;
}

}  // namespace

TypeKernels iq2_scalar_kernels(GgmlType t) {
    switch (t) {
        case GgmlType::IQ2_XXS: return {dequant_iq2<IQ2_XXS>, nullptr, dot_iq2<IQ2_XXS>};
        case GgmlType::IQ2_XS: return {dequant_iq2<IQ2_XS>, nullptr, dot_iq2<IQ2_XS>};
        case GgmlType::IQ2_S: return {dequant_iq2<IQ2_S>, nullptr, dot_iq2<IQ2_S>};
        default: return {};
    }
}

}  // namespace sluice::detail
