// Helpers shared by the kernel tests: random data, NMSE, the types and ISAs to loop over.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

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

}  // namespace sluice::test
