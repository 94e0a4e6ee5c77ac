// Helpers shared by the kernel tests: random data, NMSE, the types and ISAs to loop over.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels.h"

namespace sluice::test {

inline const std::vector<GgmlType>& kernel_types() {
    static const std::vector<GgmlType> t = {GgmlType::F32,    GgmlType::F16,    GgmlType::BF16, GgmlType::Q8_0,
                                            GgmlType::Q4_0,   GgmlType::Q5_0,   GgmlType::Q5_1, GgmlType::Q4_K,
                                            GgmlType::Q5_K,   GgmlType::Q6_K,   GgmlType::Q2_K, GgmlType::Q3_K,
                                            GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::IQ2_XXS,
                                            GgmlType::IQ2_XS, GgmlType::IQ2_S,  GgmlType::IQ3_XXS,
                                            GgmlType::IQ3_S,  GgmlType::IQ1_S,  GgmlType::IQ1_M};
    return t;
}

inline std::vector<Isa> available_isas() {
    std::vector<Isa> v;
    for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
        if (isa_available(i)) v.push_back(i);
    return v;
}

// The larger of a and b, NaN if either is: a worst error that meets a NaN stays NaN and fails its
// bound (std::max(worst, NaN) would return worst and hide it).
inline double nan_max(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : std::max(a, b); }

// A fresh seed every run (print it on failure with SCOPED_TRACE).
// A new seed per run (printed by the tests' traces); SLUICE_SEED=N replays a failing one.
inline uint32_t fresh_seed() {
    if (const char* e = std::getenv("SLUICE_SEED")) return uint32_t(std::strtoul(e, nullptr, 10));
    return std::random_device{}();
}

// Gaussian values with a scale that changes every 32 elements (as real weights' rows do).
inline std::vector<float> random_row(std::mt19937& rng, int64_t n, float sigma = 1.f) {
    std::normal_distribution<float> nd(0.f, 1.f);
    std::uniform_real_distribution<float> us(0.25f, 4.f);
    std::vector<float> x(static_cast<size_t>(n));
    float s = sigma;
    for (int64_t i = 0; i < n; ++i) {
        if (i % 32 == 0) s = sigma * us(rng);
        x[size_t(i)] = s * nd(rng);
    }
    return x;
}

// sum (a - b)^2 / sum b^2, in double
inline double nmse(const float* a, const float* b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? num / den : num;
}

inline std::vector<uint8_t> quantized(GgmlType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(size_t(row_bytes(t, int64_t(x.size()))));
    quantize_row(t, x.data(), q.data(), int64_t(x.size()));
    return q;
}

// A vec_dot check: row w (of t, quantized) dotted by `isa` with x as its activation blocks of `ab`
// (32: ActQ8x32, 256: ActQ8x256), against the same in double over the scalar-dequantized weights and
// the dequantized activations. Two scales for the bounds: sum |w a|, and per activation block
// max |w| * sum |a| (the kernels' float sums round per block).
struct DotCheck {
    double got, exact, sum_abs, block_scale;
};
inline DotCheck dot_check(Isa isa, GgmlType t, const std::vector<float>& wx, const std::vector<float>& x, int64_t ab) {
    const int64_t n = int64_t(x.size());
    const std::vector<uint8_t> w = quantized(t, wx);
    std::vector<float> wf(static_cast<size_t>(n));
    dequantize_row_isa(Isa::Scalar, t, w.data(), wf.data(), n);
    std::vector<uint8_t> act(act_bytes(t, n));
    prepare_act_isa(isa, t, x.data(), act.data(), n);
    const int8_t* qs = ab == 32 ? blocks::act_q8x32(act.data(), n).qs : blocks::act_q8x256(act.data(), n).qs;
    const float* d = ab == 32 ? blocks::act_q8x32(act.data(), n).d : blocks::act_q8x256(act.data(), n).d;
    DotCheck c{double(vec_dot_isa(isa, t, w.data(), act.data(), n)), 0, 0, 0};
    for (int64_t b = 0; b < n / ab; ++b) {
        double wmax = 0, asum = 0;
        for (int64_t i = ab * b; i < ab * b + ab; ++i) {
            const double ai = double(d[b]) * qs[i], p = double(wf[size_t(i)]) * ai;
            c.exact += p;
            c.sum_abs += std::fabs(p);
            wmax = std::max(wmax, std::fabs(double(wf[size_t(i)])));
            asum += std::fabs(ai);
        }
        c.block_scale += wmax * asum;
    }
    return c;
}

}  // namespace sluice::test
