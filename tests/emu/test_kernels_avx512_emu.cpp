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
Dot4Fn emu_avx512_dot4_over_avx2(GgmlType t);
DequantFn emu_avx512_dequant(GgmlType t);
Tile emu_avx512_tile(GgmlType t);
Tile emu_avx512_tile_over_avx2(GgmlType t);
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
        const detail::DotFn dot = detail::emu_avx512_dot(t);
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

// dot4 (four columns, the row decoded once) against four dots, bit for bit; a dot4 only where there
// is a dot (the table pairs them).
TEST(Avx512Emulated, Dot4BitIdenticalToFourDots) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    for (GgmlType t : kernel_types()) {
        const detail::TypeKernels ref = detail::scalar_kernels(t);
        std::function<float(const void*, const void*, int64_t)> dot = detail::emu_avx512_dot(t);
        detail::Dot4Fn dot4 = detail::emu_avx512_dot4(t);
        if (!detail::emu_avx512_dot(t)) {
            EXPECT_EQ(dot4, nullptr) << type_name(t);
            // Types left to AVX2's dot may have a dot4 of their own, bit-identical to that dot.
            dot4 = detail::emu_avx512_dot4_over_avx2(t);
            if (!dot4 || !isa_available(Isa::Avx2)) continue;
            dot = [t](const void* row, const void* act, int64_t n) { return vec_dot_isa(Isa::Avx2, t, row, act, n); };
        }
        ASSERT_NE(dot4, nullptr) << type_name(t);
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
}

// The tiles (rows x columns) against the dot of their ISA, bit for bit: AVX-512's own dot, or AVX2's
// for the types AVX-512 leaves to it (the table pairs them the same way).
TEST(Avx512Emulated, TileBitIdenticalToDots) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    int tested = 0;
    for (GgmlType t : kernel_types()) {
        const detail::TypeKernels ref = detail::scalar_kernels(t);
        std::function<float(const void*, const void*, int64_t)> dot = detail::emu_avx512_dot(t);
        detail::Tile tile = detail::emu_avx512_tile(t);
        if (!detail::emu_avx512_dot(t)) {
            EXPECT_EQ(tile.fn, nullptr) << type_name(t);
            tile = detail::emu_avx512_tile_over_avx2(t);
            if (!tile.fn || !isa_available(Isa::Avx2)) continue;
            dot = [t](const void* row, const void* act, int64_t n) { return vec_dot_isa(Isa::Avx2, t, row, act, n); };
        }
        if (!tile.fn) continue;
        ++tested;
        for (int64_t n : lengths(t)) {
            SCOPED_TRACE(std::string(type_name(t)) + " n=" + std::to_string(n) + " seed=" + std::to_string(seed));
            const int64_t rb = row_bytes(t, n), stride = rb + 32;
            std::vector<uint8_t> w(size_t(stride * tile.rows));
            for (int r = 0; r < tile.rows; ++r) {
                const std::vector<uint8_t> q = quantized(t, random_row(rng, n));
                std::memcpy(w.data() + r * stride, q.data(), size_t(rb));
            }
            std::vector<std::vector<uint8_t>> act(size_t(tile.cols), std::vector<uint8_t>(act_bytes(t, n)));
            std::vector<const void*> acts;
            for (int c = 0; c < tile.cols; ++c) {
                const std::vector<float> x = random_row(rng, n, c % 3 == 2 ? 1e-3f : 1.f);
                ref.prepare(x.data(), act[size_t(c)].data(), n);
                acts.push_back(act[size_t(c)].data());
            }
            std::vector<float> got(size_t(tile.rows * tile.cols));
            tile.fn(w.data(), stride, acts.data(), n, got.data());
            for (int r = 0; r < tile.rows; ++r)
                for (int c = 0; c < tile.cols; ++c) {
                    const float want = dot(w.data() + r * stride, acts[size_t(c)], n);
                    ASSERT_EQ(std::memcmp(&got[size_t(r * tile.cols + c)], &want, 4), 0) << "r=" << r << " c=" << c;
                }
        }
    }
    if (isa_available(Isa::Avx2)) {
        EXPECT_GT(tested, 0);
    }
}
