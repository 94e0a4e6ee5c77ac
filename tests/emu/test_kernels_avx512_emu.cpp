// The AVX-512 kernels, built against SIMDe's emulated intrinsics (tests/emu/immintrin.h), against the
// scalar reference: the CPUs CI runs on have no AVX-512, so this is where that code gets exercised.
// Real AVX-512 hardware runs the same comparisons in test_kernels_simd.
#include <gtest/gtest.h>

#include <functional>

#include <cstring>

#include "engine/tensor/kernels_isa.h"
#include "tests/kernels_test_util.h"

namespace sluice::detail {
// dot_avx512.cpp / dequant_avx512.cpp compiled with their table getters renamed (see CMakeLists.txt).
DotFn emu_avx512_dot(GgmlType t);
Dot4Fn emu_avx512_dot4(GgmlType t);
DequantFn emu_avx512_dequant(GgmlType t);
DotFn emu_avx512_dot_canon(GgmlType t);
Dot4Fn emu_avx512_dot4_canon(GgmlType t);
}  // namespace sluice::detail

using namespace sluice;
using namespace sluice::test;

namespace {

std::vector<int64_t> lengths(GgmlType t) {
    switch (type_info(t).block_size) {
        case 1: return {1, 15, 17, 64, 1000, 4103};  // masked tails
        case 32: return {32, 96, 256, 4128};         // odd block counts take the 256-bit path
        default: return {256, 768, 4096};
    }
}

}  // namespace

TEST(Avx512Emulated, DequantBitExactAndDotMatchesScalar) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    for (GgmlType t : kernel_types()) {
        const detail::TypeKernels ref = detail::scalar_kernels(t);
        const detail::DequantFn dq = detail::emu_avx512_dequant(t);
        // the type's own dot, or the panel types' dot in the panels' float order
        detail::DotFn dot = detail::emu_avx512_dot(t);
        if (!dot) dot = detail::emu_avx512_dot_canon(t);
        if (!dot && !dq) continue;  // this type uses the AVX2 kernels on AVX-512 CPUs
        for (int64_t n : lengths(t)) {
            SCOPED_TRACE(std::string(type_name(t)) + " n=" + std::to_string(n) + " seed=" + std::to_string(seed));
            std::vector<float> want, got;
            for (int r = 0; r < 24; ++r) {
                const std::vector<float> x = random_row(rng, n);
                const std::vector<uint8_t> w = quantized(t, random_row(rng, n));
                if (dq) {
                    std::vector<float> y0(static_cast<size_t>(n)), y1(static_cast<size_t>(n));
                    ref.dequant(w.data(), y0.data(), n);
                    dq(w.data(), y1.data(), n);
                    ASSERT_EQ(std::memcmp(y0.data(), y1.data(), size_t(n) * 4), 0);
                }
                if (!dot) continue;
                std::vector<uint8_t> act(act_bytes(t, n));
                ref.prepare(x.data(), act.data(), n);
                want.push_back(ref.dot(w.data(), act.data(), n));
                got.push_back(dot(w.data(), act.data(), n));
            }
            if (dot) {
                EXPECT_LE(nmse(got.data(), want.data(), int64_t(want.size())), 1e-9);
            }
        }
    }
}

// dot4 (four columns, the row decoded once) against four dots, bit for bit: a type's own dot4 where it
// has an AVX-512 dot (the table pairs them), and the panel types' dot4 in the panels' float order
// against their dot in that order (AVX-512's, or AVX2's for Q4_K / Q5_K).
TEST(Avx512Emulated, Dot4BitIdenticalToFourDots) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    int tested = 0;
    for (GgmlType t : kernel_types()) {
        const detail::TypeKernels ref = detail::scalar_kernels(t);
        std::function<float(const void*, const void*, int64_t)> dot = detail::emu_avx512_dot(t);
        detail::Dot4Fn dot4 = detail::emu_avx512_dot4(t);
        if (!detail::emu_avx512_dot(t)) {
            EXPECT_EQ(dot4, nullptr) << type_name(t);
            dot4 = detail::emu_avx512_dot4_canon(t);
            if (!dot4) continue;
            if (detail::DotFn f = detail::emu_avx512_dot_canon(t)) {
                dot = f;
            } else {
                if (!isa_available(Isa::Avx2)) continue;
                dot = detail::avx2_dot_canon(t);
                ASSERT_TRUE(dot) << type_name(t) << ": a dot4 in the panels' order without its dot";
            }
        }
        ASSERT_NE(dot4, nullptr) << type_name(t);
        ++tested;
        for (int64_t n : lengths(t)) {
            SCOPED_TRACE(std::string(type_name(t)) + " n=" + std::to_string(n) + " seed=" + std::to_string(seed));
            std::vector<std::vector<uint8_t>> act(4, std::vector<uint8_t>(act_bytes(t, n)));
            const void* acts[4];
            for (int c = 0; c < 4; ++c) {
                const std::vector<float> x = random_row(rng, n, c == 2 ? 1e-3f : 1.f);
                ref.prepare(x.data(), act[size_t(c)].data(), n);
                acts[c] = act[size_t(c)].data();
            }
            for (int r = 0; r < 3; ++r) {
                const std::vector<uint8_t> w = quantized(t, random_row(rng, n));
                float want[4], got[4];
                for (int c = 0; c < 4; ++c) want[c] = dot(w.data(), acts[c], n);
                dot4(w.data(), acts, n, got);
                ASSERT_EQ(std::memcmp(got, want, sizeof got), 0) << got[0] << " " << want[0];
            }
        }
    }
    EXPECT_GE(tested, 7);  // F32, F16, BF16, Q2_K, Q3_K, Q6_K, Q8_0 (+ Q4_K, Q5_K with AVX2)
}

