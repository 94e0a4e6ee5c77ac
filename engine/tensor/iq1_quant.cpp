// Our IQ1_S / IQ1_M quantizers (not llama.cpp's search; same layouts, blocks.h). A weight is
// dl * (grid + delta), grid -1/0/1 in one of 2048 patterns of 8, delta +-1/8 (IQ1_S: per 32, IQ1_M:
// per 8). Per scale group (IQ1_S 32 weights, IQ1_M 16): the least-squares scale over 6 trial scales,
// each with both deltas and every 8 weights' nearest pattern (GridSearch, exact), refined twice. The
// group scales become 3-bit odd multiples of the fp16 d (the largest at 15); each group then tries its
// nearest 3-bit scale and both neighbours, with both deltas and the nearest patterns for the scale as
// stored, and keeps the least squared error.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/grid_search.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels_iq13.h"

namespace sluice::detail {

using namespace blocks;

namespace {

using Grid1 = GridSearch<8, 3>;

const Grid1& grid() {
    static const Grid1 g(k_iq1s_codes, k_iq1s_levels, 2);
    return g;
}

constexpr float kTiny = 1e-15f;  // a group whose largest magnitude is below this is zeros
constexpr float kTrials[6] = {0.8f, 1.1f, 1.4f, 1.8f, 2.25f, 2.8f};

inline int grid_value(int idx, int j) { return int8_t(kIq1sGrid[size_t(idx)] >> 8 * j); }

// Nearest pattern for 8 weights x as dl * (grid + del), given id = 1 / dl; *cost in grid units.
inline int nearest8(const float* x, float id, float del, float* cost) {
    float t[8];
    for (int j = 0; j < 8; ++j) {
        const float v = x[j] * id - del;
        t[j] = v > 1e6f ? 1e6f : v > -1e6f ? v : v == v ? -1e6f : 0.f;  // finite costs (NaN -> 0)
    }
    return grid().nearest(t, cost);
}

// A scale group of n weights (n / 8 patterns) at inverse scale id: the patterns and their deltas
// (negative: bit k of *neg), one delta for the group (IQ1_S) or one per 8 (IQ1_M), each the one whose
// pattern lies nearer. Returns the squared error in grid units; sums x * v and v * v (v = grid + delta).
float pick(const float* x, int n, bool delta_per8, float id, int* idx, int* neg, double& sxv, double& svv) {
    float total = 0;
    int best_neg = 0;
    for (int sign = 0; sign < (delta_per8 ? 1 : 2); ++sign) {  // IQ1_S: each delta for the whole group
        float err = 0;
        int nn = 0, cand[4];
        for (int k = 0; k < n / 8; ++k) {
            float cp, cm;
            if (delta_per8) {
                const int ip = nearest8(x + 8 * k, id, kIq1Delta, &cp), im = nearest8(x + 8 * k, id, -kIq1Delta, &cm);
                cand[k] = cm < cp ? im : ip;
                nn |= (cm < cp) << k;
                err += std::min(cp, cm);
            } else {
                cand[k] = nearest8(x + 8 * k, id, sign ? -kIq1Delta : kIq1Delta, &cp);
                nn |= sign << k;
                err += cp;
            }
        }
        if (sign == 0 || err < total) {
            total = err, best_neg = nn;
            std::memcpy(idx, cand, sizeof(int) * size_t(n / 8));
        }
    }
    *neg = best_neg;
    sxv = svv = 0;
    for (int e = 0; e < n; ++e) {
        const double v = grid_value(idx[e / 8], e % 8) + ((best_neg >> (e / 8)) & 1 ? -kIq1Delta : kIq1Delta);
        sxv += x[e] * v;
        svv += v * v;
    }
    return total;
}

// Least-squares scale of a group: 6 trials putting its largest magnitude at 0.8..2.8 grid units, the
// best refined twice with the patterns nearest for its own scale. 0 for zeros.
float fit_group(const float* x, int n, bool delta_per8) {
    float amax = 0;
    for (int e = 0; e < n; ++e) amax = std::max(amax, std::fabs(x[e]));
    if (!(amax >= kTiny)) return 0.f;
    double best = -1, scale = 0;
    auto trial = [&](float id) {
        int idx[4], neg;
        double sxv, svv;
        pick(x, n, delta_per8, id, idx, &neg, sxv, svv);
        if (sxv > 0 && sxv * sxv / svv > best) best = sxv * sxv / svv, scale = sxv / svv;
    };
    for (float f : kTrials) trial(f / amax);
    for (int it = 0; it < 2 && scale > 0; ++it) trial(float(1 / scale));
    return float(std::min(scale, 3e38));
}

// d (fp16, the largest group scale at 15 d) and, per group, the 3-bit scale, patterns and deltas
// with the least squared error for the scale as stored: sc[g], idx[g * n/8 ..], neg[g].
uint16_t fit_superblock(const float* x, int n, bool delta_per8, int* sc, int* idx, int* neg) {
    const int groups = QKK / n;
    float s[16], smax = 0;
    for (int g = 0; g < groups; ++g) {
        s[g] = fit_group(x + n * g, n, delta_per8);
        smax = std::max(smax, s[g]);
    }
    const uint16_t dh = f32_to_fp16(std::min(smax / 15, 65504.f));
    const float d = fp16_to_f32(dh);
    for (int g = 0; g < groups; ++g) {
        int* gi = idx + g * (n / 8);
        if (d == 0.f) {  // all (near) zeros: any pattern decodes to 0
            sc[g] = 0, neg[g] = 0;
            std::fill(gi, gi + n / 8, 0);
            continue;
        }
        const int l0 = std::clamp(int(std::lround((s[g] / d - 1) / 2)), 0, 7);
        double best = -1;
        for (int l = std::max(0, l0 - 1); l <= std::min(7, l0 + 1); ++l) {
            const float dl = d * float(2 * l + 1);  // as the decoder
            int cand[4], nn;
            double sxv, svv;
            const double e = double(pick(x + n * g, n, delta_per8, 1 / dl, cand, &nn, sxv, svv)) * dl * dl;
            if (best < 0 || e < best) {
                best = e, sc[g] = l, neg[g] = nn;
                std::copy(cand, cand + n / 8, gi);
            }
        }
    }
    return dh;
}

}  // namespace

void quantize_iq1_s(const float* x, void* dst, int64_t nb) {
    auto* y = static_cast<IQ1_S*>(dst);
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        int sc[8], idx[32], neg[8];
        y[i].d = fit_superblock(x, 32, false, sc, idx, neg);
        for (int g = 0; g < 8; ++g) {
            int qh = sc[g] << 12 | (neg[g] & 1) << 15;
            for (int k = 0; k < 4; ++k) {
                y[i].qs[4 * g + k] = uint8_t(idx[4 * g + k]);
                qh |= (idx[4 * g + k] >> 8) << 3 * k;
            }
            y[i].qh[g] = uint16_t(qh);
        }
    }
}

void quantize_iq1_m(const float* x, void* dst, int64_t nb) {
    auto* y = static_cast<IQ1_M*>(dst);
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        int sc[16], idx[32], neg[16];
        const uint16_t dh = fit_superblock(x, 16, true, sc, idx, neg);
        uint16_t words[4] = {};
        for (int h = 0; h < 16; ++h) {
            words[h / 4] |= uint16_t(sc[h] << 3 * (h % 4));
            int q = 0;
            for (int k = 0; k < 2; ++k) {
                y[i].qs[2 * h + k] = uint8_t(idx[2 * h + k]);
                q |= ((idx[2 * h + k] >> 8) | ((neg[h] >> k) & 1) << 3) << 4 * k;
            }
            y[i].qh[h] = uint8_t(q);
        }
        for (int w = 0; w < 4; ++w) words[w] |= uint16_t(((dh >> 4 * w) & 0xF) << 12);
        std::memcpy(y[i].scales, words, 8);
    }
}

}  // namespace sluice::detail
