// Reference quantizers. Same rounding and search as llama.cpp's quantize_row_*_ref (ggml-quants.c), so
// files we write look like files users have; for ordinary inputs the output bytes are identical.
// IQ4_NL / IQ4_XS have a search of our own (same layouts, different bytes; see fit_iq4), as do the
// grid types IQ2_XXS / IQ2_XS / IQ2_S (iq2_quant.cpp) and IQ3_XXS / IQ3_S / IQ1_S / IQ1_M
// (iq3_quant.cpp, iq1_quant.cpp).
// Where llama.cpp would overflow (fp16 scales past 65504, magic-number rounding past 2^22, NaN from
// overflowing sums) we saturate instead, so every finite input gives blocks that decode to finite values.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/tensor/blocks.h"
#include "engine/tensor/iq2.h"
#include "engine/tensor/kernels_iq13.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

using namespace blocks;

namespace {

constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, via the 1.5*2^23 trick (exact for |v| < 2^22). Out-of-range and NaN
// inputs are clamped first: llama.cpp asserts there, we keep going with a valid, saturated quant.
inline int nearest_int(float v) {
    if (!(std::fabs(v) <= 4194303.f)) v = v > 0 ? 4194303.f : v < 0 ? -4194303.f : 0.f;
    float f = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &f, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// Scales are stored as fp16: saturate rather than become inf, and a NaN scale becomes 0.
inline uint16_t fp16_scale(float f) {
    if (std::isnan(f)) return 0;
    f = std::clamp(f, -65504.f, 65504.f);
    return f32_to_fp16(f);
}

// Best scale for n values quantized to [-nmax, nmax-1] (Q6_K). rmse_type 1: weights x^2, try 18
// scales around nmax/max and keep the one with the best weighted fit.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = int8_t(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's symmetric search: start from nmax/max, then up to 5 passes moving single quants while the
// x^2-weighted fit improves.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = int8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric fit x ≈ scale * L - min, L in [0, nmax], min >= 0 (Q2_K, Q4_K, Q5_K): start from the
// range, then try nstep+1 scales around nmax/(max-min), solving weighted least squares for scale
// and min at each, and keep the lowest weighted error (|diff| if use_mad, else diff^2).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = uint8_t(std::clamp(l, 0, nmax));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = uint8_t(l);
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                std::memcpy(L, Laux, size_t(n));
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

void quantize_q4_0(const float* x, Q4_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; ++j)
            if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
        // The largest magnitude maps to -8, the one end of [-8, 7] that exists.
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp16_scale(d);
        for (int j = 0; j < QK / 2; ++j) {
            auto q = [&](float v) {  // llama.cpp: MIN(15, (int8_t)(v*id + 8.5f)), i.e. truncation
                v = v * id + 8.5f;
                return uint8_t(v >= 15.f ? 15 : v > 0.f ? int(v) : 0);
            };
            y[i].qs[j] = uint8_t(q(x[j]) | q(x[j + QK / 2]) << 4);
        }
    }
}

// Q5_0 / Q5_1: 32 quants 0..31 into the nibbles of qs and the bits of qh (layout in blocks.h).
void pack_q5(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; ++j) {
        qs[j] = uint8_t((q[j] & 0xF) | (q[j + QK / 2] & 0xF) << 4);
        qh |= uint32_t(q[j] >> 4) << j | uint32_t(q[j + QK / 2] >> 4) << (j + QK / 2);
    }
    std::memcpy(qh_bytes, &qh, 4);
}

// As Q4_0 with 5 bits: the largest magnitude maps to -16, the one end of [-16, 15] that exists.
void quantize_q5_0(const float* x, Q5_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK) {
        float amax = 0, max = 0;
        for (int j = 0; j < QK; ++j)
            if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp16_scale(d);
        int q[QK];
        for (int j = 0; j < QK; ++j) {  // llama.cpp: MIN(31, (int8_t)(v*id + 16.5f)), i.e. truncation
            const float v = x[j] * id + 16.5f;
            q[j] = v >= 31.f ? 31 : v > 0.f ? int(v) : 0;  // NaN (0 * inf from a subnormal d) -> 0
        }
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

// min and max of the block: d = (max - min) / 31, m = min, q = (x - min) / d rounded half up.
void quantize_q5_1(const float* x, Q5_1* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK) {
        float min = std::numeric_limits<float>::max(), max = -min;
        for (int j = 0; j < QK; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp16_scale(d);
        y[i].m = fp16_scale(min);
        int q[QK];
        for (int j = 0; j < QK; ++j) {  // llama.cpp: (uint8_t)((x - min)*id + 0.5f)
            const float v = (x[j] - min) * id + 0.5f;
            q[j] = v >= 31.f ? 31 : v > 0.f ? int(v) : 0;  // NaN (inf * 0 once max - min overflows) -> 0
        }
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

void quantize_q8_0(const float* x, Q8_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK) {
        float amax = 0;
        for (int j = 0; j < QK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = fp16_scale(d);
        for (int j = 0; j < QK; ++j) {
            float v = std::round(x[j] * id);  // ties away from zero, like roundf
            y[i].qs[j] = int8_t(v >= 127.f ? 127 : v <= -127.f ? -127 : v == v ? int(v) : 0);
        }
    }
}

void quantize_q2_K(const float* x, Q2_K* y, int64_t nb) {
    uint8_t L[QKK], Laux[16];
    float weights[16], mins[QKK / 16], scales[QKK / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < QKK / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                         15, true);
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < QKK / 16; ++j) y[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
            y[i].d = fp16_scale(max_scale / q4scale);
        } else {
            std::memset(y[i].scales, 0, sizeof y[i].scales);
            y[i].d = 0;
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < QKK / 16; ++j) y[i].scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = fp16_scale(max_min / q4scale);
        } else {
            y[i].dmin = 0;
        }
        // Requantize against the scales as stored (fp16 d, 4-bit group scales).
        for (int j = 0; j < QKK / 16; ++j) {
            const float d = fp16_to_f32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = fp16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = uint8_t(std::clamp(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
        }
        for (int j = 0; j < QKK; j += 128)
            for (int l = 0; l < 32; ++l)
                y[i].qs[j / 4 + l] =
                    uint8_t(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
}

void quantize_q3_K(const float* x, Q3_K* y, int64_t nb) {
    int8_t L[QKK];
    float scales[QKK / 16];
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < QKK / 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > amax) { amax = std::fabs(scales[j]); max_scale = scales[j]; }
        }
        std::memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < QKK / 16; ++j) {
                int l = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) y[i].scales[j] = uint8_t(l & 0xF);
                else y[i].scales[j - 8] |= uint8_t((l & 0xF) << 4);
                y[i].scales[j % 4 + 8] |= uint8_t((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = fp16_scale(1 / iscale);
        } else {
            y[i].d = 0;
        }
        for (int j = 0; j < QKK / 16; ++j) {
            const float d = fp16_to_f32(y[i].d) * scale_q3k(j, y[i].scales);
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = int8_t(std::clamp(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        // Bit s of hmask[l] is the high bit of element 32*s + l.
        std::memset(y[i].hmask, 0, QKK / 8);
        for (int j = 0; j < QKK; ++j) {
            if (L[j] > 3) {
                y[i].hmask[j % 32] |= uint8_t(1 << (j / 32));
                L[j] = int8_t(L[j] - 4);
            }
        }
        for (int j = 0; j < QKK; j += 128)
            for (int l = 0; l < 32; ++l)
                y[i].qs[j / 4 + l] =
                    uint8_t(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }
}

// Q4_K and Q5_K share the scale search and the 6-bit scale/min packing; they differ in nmax and the
// search's parameters. Fills L (0..nmax) for the block and its header fields.
template <class Block>
void quantize_kx_block(const float* x, Block& y, uint8_t* L, int nmax, float rmin, int nstep) {
    uint8_t Laux[32];
    float weights[32], mins[QKK / 32], scales[QKK / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QKK / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f,
                                     nstep, false);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QKK / 32; ++j) {
        uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
        uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
        if (j < 4) {
            y.scales[j] = ls;
            y.scales[j + 4] = lm;
        } else {
            y.scales[j + 4] = uint8_t((ls & 0xF) | (lm & 0xF) << 4);
            y.scales[j - 4] |= uint8_t((ls >> 4) << 6);
            y.scales[j] |= uint8_t((lm >> 4) << 6);
        }
    }
    y.d = fp16_scale(max_scale / 63.f);
    y.dmin = fp16_scale(max_min / 63.f);
    for (int j = 0; j < QKK / 32; ++j) {
        int sc, m;
        scale_min_k4(j, y.scales, sc, m);
        const float d = fp16_to_f32(y.d) * sc;
        if (!d) continue;
        const float dm = fp16_to_f32(y.dmin) * m;
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] = uint8_t(std::clamp(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
    }
}

void quantize_q4_K(const float* x, Q4_K* y, int64_t nb) {
    uint8_t L[QKK];
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        quantize_kx_block(x, y[i], L, 15, -1.f, 20);
        uint8_t* q = y[i].qs;
        for (int j = 0; j < QKK; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | L[j + l + 32] << 4);
    }
}

void quantize_q5_K(const float* x, Q5_K* y, int64_t nb) {
    uint8_t L[QKK];
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        quantize_kx_block(x, y[i], L, 31, -0.5f, 15);
        std::memset(y[i].qh, 0, QKK / 8);
        uint8_t* ql = y[i].qs;
        for (int n = 0, s = 0; n < QKK; n += 64, s += 2, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) { l1 -= 16; y[i].qh[j] |= uint8_t(1 << s); }
                if (l2 > 15) { l2 -= 16; y[i].qh[j] |= uint8_t(2 << s); }
                ql[j] = uint8_t(l1 | l2 << 4);
            }
        }
    }
}

void quantize_q6_K(const float* x, Q6_K* y, int64_t nb) {
    int8_t L[QKK];
    float scales[QKK / 16];
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QKK / 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (std::fabs(scales[ib]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&y[i], 0, sizeof(Q6_K));
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = fp16_scale(1 / iscale);
        for (int ib = 0; ib < QKK / 16; ++ib)
            y[i].scales[ib] = int8_t(std::clamp(nearest_int(iscale * scales[ib]), -128, 127));
        for (int j = 0; j < QKK / 16; ++j) {
            float d = fp16_to_f32(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = int8_t(std::clamp(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t* ql = y[i].ql;
        uint8_t* qh = y[i].qh;
        for (int j = 0; j < QKK; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = uint8_t((q1 & 0xF) | (q3 & 0xF) << 4);
                ql[l + 32] = uint8_t((q2 & 0xF) | (q4 & 0xF) << 4);
                qh[l] = uint8_t(q1 >> 4 | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
        }
    }
}

// ---- IQ4_NL / IQ4_XS: non-linear levels (blocks.h). llama.cpp weights the errors by x^2 and tries 15
// scales; we minimise the plain squared error (what decoding a row gets wrong) over 23.

// Index of the level nearest to v, ties up. The midpoints between neighbouring levels are multiples
// of 1/2, so floor(2v) decides: v >= (l_i + l_i+1) / 2 exactly when floor(2v) >= l_i + l_i+1.
constexpr std::array<uint8_t, 512> kIq4Index = [] {
    std::array<uint8_t, 512> t{};
    for (int k = -256; k < 256; ++k)
        for (int i = 0; i < 15; ++i) t[size_t(k + 256)] += k >= kIq4Levels[i] + kIq4Levels[i + 1];
    return t;
}();
inline int iq4_nearest(float v) {
    const float f = std::floor(2 * v);  // beyond +-128 (or inf) the end levels
    return kIq4Index[size_t((f >= 255.f ? 255 : f >= -256.f ? int(f) : -256) + 256)];
}

// Best scale s for 32 values x ~ s * level: the largest magnitude starts at the -127 end (its sign gives
// s's), then 21 placements of it from -137 to -117, each with every value's nearest level and the
// least-squares s for those levels; the best (least squared error, i.e. largest sxl^2 / sll) is then
// refined twice by taking the nearest levels for its own s. 0 for a block of (near) zeros.
float fit_iq4(const float* x) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK; ++j)
        if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
    if (amax < kGroupMaxEps) return 0.f;
    double best = -1, scale = 0;
    auto try_inverse = [&](float id) {
        double sxl = 0, sll = 0;  // double: x * level overflows float for x near FLT_MAX
        for (int j = 0; j < QK; ++j) {
            const double l = kIq4Levels[iq4_nearest(x[j] * id)];
            sxl += x[j] * l;
            sll += l * l;  // > 0: no level is 0
        }
        if (sxl * sxl / sll > best) best = sxl * sxl / sll, scale = sxl / sll;
    };
    for (int t = -10; t <= 10; ++t) try_inverse(float(kIq4Levels[0] + t) / max);
    for (int it = 0; it < 2 && scale != 0; ++it) try_inverse(float(1 / scale));
    const double lim = std::numeric_limits<float>::max();
    return float(std::clamp(scale, -lim, lim));
}

// 32 values' nearest levels for the scale as stored (dl, what decoding multiplies by), packed as Q4_0's
// nibbles. dl = 0: any level decodes to 0.
void pack_iq4(const float* x, float dl, uint8_t* qs) {
    const float id = dl ? 1.0f / dl : 0.0f;
    for (int j = 0; j < QK / 2; ++j)
        qs[j] = uint8_t(iq4_nearest(x[j] * id) | iq4_nearest(x[j + QK / 2] * id) << 4);
}

void quantize_iq4_nl(const float* x, IQ4_NL* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QK) {
        y[i].d = fp16_scale(fit_iq4(x));
        pack_iq4(x, fp16_to_f32(y[i].d), y[i].qs);
    }
}

// Each group's own best scale, then those 8 as 6-bit multiples of d: the largest magnitude maps to
// ls - 32 = -32, the end of -32..31 that exists (as Q4_0's d); levels again for each group's d * (ls - 32).
void quantize_iq4_xs(const float* x, IQ4_XS* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        float s[QKK / QK], smax = 0;
        for (int g = 0; g < QKK / QK; ++g) {
            s[g] = fit_iq4(x + QK * g);
            if (std::fabs(s[g]) > std::fabs(smax)) smax = s[g];
        }
        y[i].d = fp16_scale(smax / -32);
        const float d = fp16_to_f32(y[i].d), id = d ? 1.0f / d : 0.0f;
        y[i].scales_h = 0;
        std::memset(y[i].scales_l, 0, sizeof y[i].scales_l);
        for (int g = 0; g < QKK / QK; ++g) {
            const int l = std::clamp(nearest_int(s[g] * id), -32, 31), ls = l + 32;
            y[i].scales_l[g / 2] |= uint8_t((ls & 0xF) << (4 * (g % 2)));
            y[i].scales_h |= uint16_t((ls >> 4) << (2 * g));
            pack_iq4(x + QK * g, d * float(l), y[i].qs + QK / 2 * g);
        }
    }
}

}  // namespace

void quantize_row_ref(GgmlType t, const float* x, void* dst, int64_t n) {
    switch (t) {
        case GgmlType::F32: std::memcpy(dst, x, size_t(n) * 4); break;
        case GgmlType::F16: {
            auto* y = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = f32_to_fp16(x[i]);
            break;
        }
        case GgmlType::BF16: {
            auto* y = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
            break;
        }
        case GgmlType::Q4_0: quantize_q4_0(x, static_cast<Q4_0*>(dst), n / QK); break;
        case GgmlType::Q5_0: quantize_q5_0(x, static_cast<Q5_0*>(dst), n / QK); break;
        case GgmlType::Q5_1: quantize_q5_1(x, static_cast<Q5_1*>(dst), n / QK); break;
        case GgmlType::Q8_0: quantize_q8_0(x, static_cast<Q8_0*>(dst), n / QK); break;
        case GgmlType::IQ4_NL: quantize_iq4_nl(x, static_cast<IQ4_NL*>(dst), n / QK); break;
        case GgmlType::IQ4_XS: quantize_iq4_xs(x, static_cast<IQ4_XS*>(dst), n / QKK); break;
        case GgmlType::Q2_K: quantize_q2_K(x, static_cast<Q2_K*>(dst), n / QKK); break;
        case GgmlType::Q3_K: quantize_q3_K(x, static_cast<Q3_K*>(dst), n / QKK); break;
        case GgmlType::Q4_K: quantize_q4_K(x, static_cast<Q4_K*>(dst), n / QKK); break;
        case GgmlType::Q5_K: quantize_q5_K(x, static_cast<Q5_K*>(dst), n / QKK); break;
        case GgmlType::Q6_K: quantize_q6_K(x, static_cast<Q6_K*>(dst), n / QKK); break;
        case GgmlType::IQ2_XXS:
        case GgmlType::IQ2_XS:
        case GgmlType::IQ2_S: quantize_iq2(t, x, dst, n); break;  // iq2_quant.cpp
        case GgmlType::IQ3_XXS: quantize_iq3_xxs(x, dst, n / QKK); break;
        case GgmlType::IQ3_S: quantize_iq3_s(x, dst, n / QKK); break;
        case GgmlType::IQ1_S: quantize_iq1_s(x, dst, n / QKK); break;
        case GgmlType::IQ1_M: quantize_iq1_m(x, dst, n / QKK); break;
        default: unsupported(t, "quantize_row");
    }
}

}  // namespace sluice::detail
