// Quantizers of our own for IQ2_XXS / IQ2_XS / IQ2_S (not llama.cpp's search; same layouts, different
// bytes). Each piece of 8 values keeps its values' signs (IQ2_XXS / IQ2_XS store 7 of them and imply an
// even minus count: where the count is odd, the value of least magnitude is flipped) and takes the grid
// entry nearest, in least squares, to its magnitudes over the scale. Per scale group (32 values for XXS,
// 16 for XS and S) a few scales are tried, each with its entries and its least-squares refit; the best
// groups' scales then set the super-block's fp16 d and 4-bit ls, and the entries are chosen again for
// the scales as stored.
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/tensor/iq2.h"

namespace sluice::detail {

using namespace blocks;

namespace {

// A grid in floats for the search, transposed (value j of entry e at v[j * n + e]) so one target value
// meets every entry in a vector loop; norm2[e] = sum of entry e's squared magnitudes.
struct SearchGrid {
    int n = 0;
    std::vector<float> v, norm2;
};

template <size_t N>
SearchGrid make_grid(const std::array<uint64_t, N>& g) {
    SearchGrid s;
    s.n = int(N);
    s.v.resize(8 * N);
    s.norm2.assign(N, 0.f);
    for (size_t e = 0; e < N; ++e)
        for (int j = 0; j < 8; ++j) {
            const float m = float(uint8_t(g[e] >> (8 * j)));
            s.v[size_t(j) * N + e] = m;
            s.norm2[e] += m * m;
        }
    return s;
}

struct Spec {
    const SearchGrid* grid;
    int group;    // values per 4-bit scale
    bool parity;  // 7 signs stored, the eighth implied by an even minus count
};

Spec spec_of(GgmlType t) {
    static const SearchGrid xxs = make_grid(kIq2xxsGrid), xs = make_grid(kIq2xsGrid), s = make_grid(kIq2sGrid);
    switch (t) {
        case GgmlType::IQ2_XXS: return {&xxs, 32, true};
        case GgmlType::IQ2_XS: return {&xs, 16, true};
        default: return {&s, 16, false};
    }
}

// Each piece's dot products with every entry, t.g_e (t: its 8 signed targets), computed once: the
// scales tried below only change which entry wins.
void entry_dots(const SearchGrid& G, const float* t, float* __restrict dots) {
    const int n = G.n;
    for (int e = 0; e < n; ++e) dots[e] = 0;
    for (int j = 0; j < 8; ++j) {
        const float tj = t[j];
        const float* __restrict col = G.v.data() + size_t(j) * size_t(n);
        for (int e = 0; e < n; ++e) dots[e] += tj * col[e];
    }
}

// The entry nearest to t / s (s > 0): least |t - s g|^2 is largest 2 t.g - s |g|^2.
int nearest_entry(const SearchGrid& G, const float* dots, float s) {
    int best = 0;
    float top = -INFINITY;
    for (int e = 0; e < G.n; ++e) {
        const float v = 2 * dots[e] - s * G.norm2[size_t(e)];
        if (v > top) top = v, best = e;
    }
    return best;
}

// The entries of one scale group's pieces (dots: theirs, G.n apart) for scale s; returns sum t.g and
// sets gg = sum |g|^2.
double fit_entries(const SearchGrid& G, const float* dots, int pieces, float s, int* entry, double& gg) {
    double tg = 0;
    gg = 0;
    for (int p = 0; p < pieces; ++p) {
        const float* dp = dots + size_t(p) * size_t(G.n);
        const int e = entry[p] = nearest_entry(G, dp, s);
        tg += dp[e];
        gg += G.norm2[size_t(e)];
    }
    return tg;
}

// Best scale for one group's targets (|t| <= 1, amax the largest): the largest placed at 10..64 grid
// units (the grid's largest magnitude is 43), each with its entries' least-squares scale tg / gg (error
// sum t^2 - tg^2 / gg), then two refits of the best. Steps of 2 over 16..52 measured the same NMSE
// (the refits converge), 20..46 worse.
float fit_group(const SearchGrid& G, const float* dots, int pieces, float amax) {
    if (amax == 0) return 0;
    int entry[4];
    double best = 0, scale = 0, gg;
    auto try_scale = [&](float s) {
        const double tg = fit_entries(G, dots, pieces, s, entry, gg);
        if (tg > 0 && tg * tg / gg > best) best = tg * tg / gg, scale = tg / gg;
    };
    for (int k = 10; k <= 64; k += 6) try_scale(amax / float(k));
    for (int it = 0; it < 2 && scale > 0; ++it) try_scale(float(scale));
    return float(scale);
}

// One super-block's choices: fp16 d, ls per scale group, entry and sign byte per piece.
struct Choice {
    uint16_t d = 0;
    int ls[16] = {};
    int entry[32] = {};
    uint8_t signs[32] = {};
};

// Each group's ls (the nearest to its scale sg and its neighbours) and entries for d (in target units):
// the ls and entries of least error for the scale as decoding computes it.
void assign_scales(const SearchGrid& G, const float* dots, const float* sg, int pieces, int groups, float d,
                   Choice& c) {
    for (int g = 0; g < groups; ++g) {
        const float* dg = dots + size_t(pieces * g) * size_t(G.n);
        // d = 0 (an fp16 underflow): every ls decodes to 0.
        const double m = d > 0 ? std::clamp((8.0 * sg[g] / d - 1) / 2, 0.0, 15.0) : 0.0;
        const int l0 = int(std::lround(m));
        double best = INFINITY;
        for (int ls = std::max(l0 - 1, 0); ls <= std::min(l0 + 1, 15); ++ls) {
            const float dl = d * (0.5f + float(ls)) * 0.25f;
            int entry[4];
            double gg;
            const double tg = fit_entries(G, dg, pieces, dl, entry, gg);
            const double err = double(dl) * dl * gg - 2 * double(dl) * tg;  // less sum t^2, the same for all
            if (err < best) {
                best = err;
                c.ls[g] = ls;
                std::copy(entry, entry + pieces, c.entry + pieces * g);
            }
        }
    }
}

// x: 256 values -> the choices for spec s. Targets are |x| / amax (a flipped sign's value negative) so the
// search stays finite for any finite x; d is scaled back by amax when stored.
Choice choose(const Spec& s, const float* x, float* dots) {
    Choice c;
    float amax = 0;
    for (int j = 0; j < QKK; ++j) amax = std::max(amax, std::fabs(x[j]));
    if (!(amax > 0)) return c;  // zeros: d = 0 decodes every value to 0
    float t[QKK];
    for (int p = 0; p < 32; ++p) {
        const float* xp = x + 8 * p;
        int signs = 0, low = 0;
        for (int j = 0; j < 8; ++j) {
            t[8 * p + j] = std::fabs(xp[j]) / amax;
            if (xp[j] < 0) signs |= 1 << j;
            if (std::fabs(xp[j]) < std::fabs(xp[low])) low = j;
        }
        if (s.parity && __builtin_popcount(unsigned(signs)) % 2) {
            signs ^= 1 << low;
            t[8 * p + low] = -t[8 * p + low];
        }
        c.signs[p] = uint8_t(signs);
    }
    const SearchGrid& G = *s.grid;
    for (int p = 0; p < 32; ++p) entry_dots(G, t + 8 * p, dots + size_t(p) * size_t(G.n));
    const int pieces = s.group / 8, groups = QKK / s.group;
    float sg[16], smax = 0;
    for (int g = 0; g < groups; ++g) {
        float gmax = 0;
        for (int j = 0; j < s.group; ++j) gmax = std::max(gmax, std::fabs(t[s.group * g + j]));
        smax = std::max(smax, sg[g] = fit_group(G, dots + size_t(pieces * g) * size_t(G.n), pieces, gmax));
    }
    // x = d * (2 ls + 1) / 8 * grid: the largest group scale at ls = 15 (placing it at 14 .. 10 for finer
    // steps in the small groups measured no better).
    c.d = f32_to_fp16(float(std::min(double(smax) * amax * 8 / 31, 65504.0)));
    assign_scales(G, dots, sg, pieces, groups, fp16_to_f32(c.d) / amax, c);
    return c;
}

void pack(const Choice& c, IQ2_XXS& b) {
    b.d = c.d;
    for (int g = 0; g < 8; ++g) {
        uint32_t aux[2] = {0, uint32_t(c.ls[g]) << 28};
        for (int l = 0; l < 4; ++l) {
            aux[0] |= uint32_t(c.entry[4 * g + l]) << (8 * l);
            aux[1] |= uint32_t(c.signs[4 * g + l] & 127) << (7 * l);
        }
        std::memcpy(b.qs + 4 * g, aux, sizeof aux);
    }
}

void pack(const Choice& c, IQ2_XS& b) {
    b.d = c.d;
    for (int p = 0; p < 32; ++p) b.qs[p] = uint16_t(c.entry[p] | (c.signs[p] & 127) << 9);
    for (int g = 0; g < 8; ++g) b.scales[g] = uint8_t(c.ls[2 * g] | c.ls[2 * g + 1] << 4);
}

void pack(const Choice& c, IQ2_S& b) {
    b.d = c.d;
    for (int g = 0; g < 8; ++g) {
        b.qh[g] = 0;
        b.scales[g] = uint8_t(c.ls[2 * g] | c.ls[2 * g + 1] << 4);
        for (int l = 0; l < 4; ++l) {
            const int p = 4 * g + l;
            b.qs[p] = uint8_t(c.entry[p]);
            b.qs[32 + p] = c.signs[p];
            b.qh[g] |= uint8_t((c.entry[p] >> 8) << (2 * l));
        }
    }
}

template <class B>
void quantize_blocks(const Spec& s, const float* x, void* dst, int64_t nb) {
    auto* y = static_cast<B*>(dst);
    std::vector<float> dots(size_t(32 * s.grid->n));  // per piece, per entry
    for (int64_t i = 0; i < nb; ++i) pack(choose(s, x + QKK * i, dots.data()), y[i]);
}

}  // namespace

void quantize_iq2(GgmlType t, const float* x, void* dst, int64_t n) {
    const Spec s = spec_of(t);
    switch (t) {
        case GgmlType::IQ2_XXS: return quantize_blocks<IQ2_XXS>(s, x, dst, n / QKK);
        case GgmlType::IQ2_XS: return quantize_blocks<IQ2_XS>(s, x, dst, n / QKK);
        case GgmlType::IQ2_S: return quantize_blocks<IQ2_S>(s, x, dst, n / QKK);
        default: unsupported(t, "quantize_iq2");
    }
}

}  // namespace sluice::detail
