// Our IQ3_XXS / IQ3_S quantizers (not llama.cpp's search; same layouts, blocks.h). Per group of 32:
// signs from the values (IQ3_XXS stores 7 of each 8 and implies even parity: where the count of
// negatives is odd the smallest magnitude takes the wrong sign), then the least-squares scale for the
// magnitudes over 7 trial scales, each with every 4 magnitudes' nearest grid entry (GridSearch),
// refined twice. The 8 group scales become 4-bit multiples of the fp16 d (the largest at 15); each
// group then tries its nearest 4-bit scale and both neighbours, with the nearest entries for the scale
// as stored, and keeps the least squared error.
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

using Grid3 = GridSearch<4, 8>;

constexpr float kTiny = 1e-15f;  // a group whose largest magnitude is below this is zeros

// Saturating fp16 for a scale (>= 0): never inf.
uint16_t fp16_sat(float f) { return f32_to_fp16(std::min(f, 65504.f)); }

// Value t clamped where the grid search keeps its costs finite (NaN -> 0).
inline float clamp_target(float t) { return t > 1e6f ? 1e6f : t > -1e6f ? t : t == t ? -1e6f : 0.f; }

// Entries for the 32 magnitudes a at inverse scale id: idx[8], and the sums sum(a g), sum(g g).
void pick(const Grid3& grid, const uint32_t* table, const float* a, float id, uint16_t* idx, double& sag,
          double& sgg) {
    sag = sgg = 0;
    for (int m = 0; m < 8; ++m) {
        float t[4], cost;
        for (int j = 0; j < 4; ++j) t[j] = clamp_target(a[4 * m + j] * id);
        idx[m] = uint16_t(grid.nearest(t, &cost));
        for (int j = 0; j < 4; ++j) {
            const double g = uint8_t(table[idx[m]] >> 8 * j);
            sag += a[4 * m + j] * g;
            sgg += g * g;
        }
    }
}

// Least-squares scale of the group's magnitudes a: 7 trials putting the largest at 0.55..1.15 of the
// top level, the best refined twice by taking the entries nearest for its own scale. 0 for zeros.
float fit_group(const Grid3& grid, const uint32_t* table, float top, const float* a) {
    float amax = 0;
    for (int e = 0; e < 32; ++e) amax = std::max(amax, std::fabs(a[e]));
    if (!(amax >= kTiny)) return 0.f;
    double best = -1, scale = 0;
    uint16_t idx[8];
    auto trial = [&](float id) {
        double sag, sgg;
        pick(grid, table, a, id, idx, sag, sgg);
        if (sag > 0 && sag * sag / sgg > best) best = sag * sag / sgg, scale = sag / sgg;
    };
    for (int t = 0; t < 7; ++t) trial(top * (0.55f + 0.1f * float(t)) / amax);
    for (int it = 0; it < 2 && scale > 0; ++it) trial(float(1 / scale));
    return float(std::min(scale, 3e38));
}

// Squared error of a group at the stored scale db with its nearest entries (into idx).
double group_error(const Grid3& grid, const uint32_t* table, const float* a, float db, uint16_t* idx) {
    double sag, sgg;
    pick(grid, table, a, db > 0 ? 1 / db : 0.f, idx, sag, sgg);
    double err = 0;
    for (int e = 0; e < 32; ++e) {
        const double v = double(db) * uint8_t(table[idx[e / 4]] >> 8 * (e % 4)) - a[e];
        err += v * v;
    }
    return err;
}

// One super-block's magnitudes a (signs already taken off) -> fp16 d, the 8 4-bit scales ls and the 64
// entries. dscale(d, ls) is the decoder's group scale; the largest group scale is d * kmax (ls = 15).
template <class DScale>
uint16_t fit_superblock(const Grid3& grid, const uint32_t* table, float top, float kmax, const float* a,
                        DScale dscale, int* ls, uint16_t* idx) {
    float s[8], smax = 0;
    for (int g = 0; g < 8; ++g) {
        s[g] = fit_group(grid, table, top, a + 32 * g);
        smax = std::max(smax, s[g]);
    }
    const uint16_t dh = fp16_sat(smax / kmax);
    const float d = fp16_to_f32(dh);
    for (int g = 0; g < 8; ++g) {
        if (d == 0.f) {  // all (near) zeros: any entries decode to 0
            ls[g] = 0;
            std::memset(idx + 8 * g, 0, 8 * sizeof *idx);
            continue;
        }
        // nearest 4-bit scale by value, then it and its neighbours by the error they give
        int l0 = 0;
        for (int l = 1; l < 16; ++l)
            if (std::fabs(dscale(d, l) - s[g]) < std::fabs(dscale(d, l0) - s[g])) l0 = l;
        double best = -1;
        for (int l = std::max(0, l0 - 1); l <= std::min(15, l0 + 1); ++l) {
            uint16_t cand[8];
            const double e = group_error(grid, table, a + 32 * g, dscale(d, l), cand);
            if (best < 0 || e < best) {
                best = e, ls[g] = l;
                std::memcpy(idx + 8 * g, cand, sizeof cand);
            }
        }
    }
    return dh;
}

const Grid3& grid_xxs() {
    static const Grid3 g(k_iq3xxs_codes, k_iq3xxs_levels, 3);
    return g;
}
const Grid3& grid_s() {
    static const Grid3 g(k_iq3s_codes, k_iq3s_levels, 3);
    return g;
}

}  // namespace

void quantize_iq3_xxs(const float* x, void* dst, int64_t nb) {
    auto* y = static_cast<IQ3_XXS*>(dst);
    const Grid3& grid = grid_xxs();
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        float a[QKK];
        uint32_t words[8] = {};
        for (int k = 0; k < QKK / 8; ++k) {  // signs of each 8, even count of negatives
            int neg = 0, smallest = 0;
            for (int j = 0; j < 8; ++j) {
                const float v = x[8 * k + j];
                if (std::signbit(v)) neg |= 1 << j;
                if (std::fabs(v) < std::fabs(x[8 * k + smallest])) smallest = j;
            }
            if (__builtin_popcount(unsigned(neg)) & 1) neg ^= 1 << smallest;
            for (int j = 0; j < 8; ++j) a[8 * k + j] = (neg >> j) & 1 ? -x[8 * k + j] : x[8 * k + j];
            words[k / 4] |= uint32_t(neg & 127) << 7 * (k % 4);
        }
        int ls[8];
        uint16_t idx[64];
        // decoded group scale d * (2 ls + 1) / 4, in the decoder's float order
        auto dscale = [](float d, int l) { return d * (0.5f + float(l)) * 0.5f; };
        y[i].d = fit_superblock(grid, kIq3xxsGrid.data(), 62.f, 31.f / 4, a, dscale, ls, idx);
        for (int m = 0; m < 64; ++m) y[i].qs[m] = uint8_t(idx[m]);
        for (int g = 0; g < 8; ++g) {
            words[g] |= uint32_t(ls[g]) << 28;
            std::memcpy(y[i].signs_scales + 4 * g, &words[g], 4);
        }
    }
}

void quantize_iq3_s(const float* x, void* dst, int64_t nb) {
    auto* y = static_cast<IQ3_S*>(dst);
    const Grid3& grid = grid_s();
    for (int64_t i = 0; i < nb; ++i, x += QKK) {
        float a[QKK];
        std::memset(y[i].signs, 0, sizeof y[i].signs);
        for (int e = 0; e < QKK; ++e) {
            a[e] = std::fabs(x[e]);
            if (std::signbit(x[e])) y[i].signs[e / 8] |= uint8_t(1 << (e % 8));
        }
        int ls[8];
        uint16_t idx[64];
        auto dscale = [](float d, int l) { return d * float(2 * l + 1); };
        y[i].d = fit_superblock(grid, kIq3sGrid.data(), 15.f, 31.f, a, dscale, ls, idx);
        std::memset(y[i].qh, 0, sizeof y[i].qh);
        for (int m = 0; m < 64; ++m) {
            y[i].qs[m] = uint8_t(idx[m]);
            y[i].qh[m / 8] |= uint8_t((idx[m] >> 8) << (m % 8));
        }
        for (int g = 0; g < 4; ++g) y[i].scales[g] = uint8_t(ls[2 * g] | ls[2 * g + 1] << 4);
    }
}

}  // namespace sluice::detail
