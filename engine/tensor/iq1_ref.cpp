// Scalar IQ1_S / IQ1_M kernels: dequantize with ggml's float arithmetic (dequantize_row_iq1_*, so the
// floats match bit for bit), and dots as exact integer sums per super-block against the int8
// activation blocks of 256. A weight is dl * (grid + delta), delta = +-1/8: as integers 8 * grid +- 1,
// so grid and delta meet the activations in one product and 1/8 joins the float scale.
#include "engine/tensor/blocks.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels_iq13.h"

namespace sluice::detail {

using namespace blocks;

namespace {

// 8 weights of grid entry idx as 8 * (grid + delta): 8 * value + (neg ? -1 : 1).
inline void iq1_entry8(int idx, bool neg, int8_t* v) {
    for (int j = 0; j < 8; ++j) v[j] = int8_t(8 * int8_t(kIq1sGrid[idx] >> 8 * j) + (neg ? -1 : 1));
}

// IQ1_S group g (32 weights), 8 * (grid + delta) each.
inline void iq1s_group(const IQ1_S& b, int g, int8_t* v) {
    const int qh = b.qh[g];
    for (int k = 0; k < 4; ++k) iq1_entry8(b.qs[4 * g + k] | ((qh >> 3 * k) & 7) << 8, qh >> 15, v + 8 * k);
}
inline int iq1s_scale(const IQ1_S& b, int g) { return 2 * ((b.qh[g] >> 12) & 7) + 1; }

// IQ1_M group h (16 weights, entries 2h and 2h + 1), 8 * (grid + delta) each; its scale from the words.
inline void iq1m_group(const IQ1_M& b, int h, int8_t* v) {
    for (int k = 0; k < 2; ++k) {
        const int nib = b.qh[h] >> 4 * k;
        iq1_entry8(b.qs[2 * h + k] | (nib & 7) << 8, (nib >> 3) & 1, v + 8 * k);
    }
}
inline int iq1m_scale(const uint16_t sc[4], int h) { return 2 * ((sc[h / 4] >> 3 * (h % 4)) & 7) + 1; }

}  // namespace

// y = dl * (grid + delta), grid + delta = v / 8 exactly.
void dequant_iq1_s(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const IQ1_S*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        const float d = fp16_to_f32(x[i].d);
        for (int g = 0; g < QKK / 32; ++g, y += 32) {
            const float dl = d * float(iq1s_scale(x[i], g));
            int8_t v[32];
            iq1s_group(x[i], g, v);
            for (int e = 0; e < 32; ++e) y[e] = dl * (float(v[e]) * 0.125f);
        }
    }
}

void dequant_iq1_m(const void* src, float* y, int64_t n) {
    auto* x = static_cast<const IQ1_M*>(src);
    for (int64_t i = 0; i < n / QKK; ++i) {
        uint16_t sc[4];
        iq1m_words(x[i], sc);
        const float d = fp16_to_f32(iq1m_d(sc));
        for (int h = 0; h < QKK / 16; ++h, y += 16) {
            const float dl = d * float(iq1m_scale(sc, h));
            int8_t v[16];
            iq1m_group(x[i], h, v);
            for (int e = 0; e < 16; ++e) y[e] = dl * (float(v[e]) * 0.125f);
        }
    }
}

// Per super-block isum = sum_g (2 sc_g + 1) * sum((8 grid +- 1) * q_a) (|isum| < 2^23), then
// d_a * d * isum, and the 1/8 once at the end.
float dot_iq1_s(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const IQ1_S*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        int isum = 0;
        for (int g = 0; g < QKK / 32; ++g) {
            int8_t v[32];
            iq1s_group(w[b], g, v);
            isum += iq1s_scale(w[b], g) * dot_i8(v, a.qs + b * QKK + 32 * g, 32);
        }
        sum += a.d[b] * fp16_to_f32(w[b].d) * float(isum);
    }
    return 0.125f * sum;
}

float dot_iq1_m(const void* row, const void* act, int64_t n) {
    auto* w = static_cast<const IQ1_M*>(row);
    ActQ8x256 a = act_q8x256(const_cast<void*>(act), n);
    float sum = 0;
    for (int64_t b = 0; b < n / QKK; ++b) {
        uint16_t sc[4];
        iq1m_words(w[b], sc);
        int isum = 0;
        for (int h = 0; h < QKK / 16; ++h) {
            int8_t v[16];
            iq1m_group(w[b], h, v);
            isum += iq1m_scale(sc, h) * dot_i8(v, a.qs + b * QKK + 16 * h, 16);
        }
        sum += a.d[b] * fp16_to_f32(iq1m_d(sc)) * float(isum);
    }
    return 0.125f * sum;
}

}  // namespace sluice::detail
