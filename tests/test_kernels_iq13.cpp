// The grid types IQ3_XXS / IQ3_S / IQ1_S / IQ1_M: block layouts from hand-built bytes (grid entries
// written out here from ggml-common.h, not taken from iq_grids.h), our quantizers (error bounds, the
// nearest grid entries for the scales as stored, the exact grid search), and the dots against a
// double dot of the dequantized row. The SIMD / dot4 / matmul comparisons run them through
// kernel_types() in the other kernel tests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/grid_search.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels.h"
#include "tests/kernels_test_util.h"

using namespace sluice;
using namespace sluice::test;

namespace {

const GgmlType kIqTypes[] = {GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_S, GgmlType::IQ1_M};

void expect_dequant(GgmlType t, const std::vector<uint8_t>& block, const std::vector<float>& want) {
    ASSERT_EQ(int64_t(block.size()), type_info(t).type_size);
    for (Isa isa : available_isas()) {
        SCOPED_TRACE(isa_name(isa));
        std::vector<float> y(256, -1.f);
        dequantize_row_isa(isa, t, block.data(), y.data(), 256);
        for (int i = 0; i < 256; ++i) ASSERT_EQ(y[size_t(i)], want[size_t(i)]) << "element " << i;
    }
}

template <class T>
void put(std::vector<uint8_t>& b, size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}

float half_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp16_to_f32(h);
}

// Grid entries used below, from ggml-common.h (value j = byte j).
const int kXxs0[4] = {4, 4, 4, 4}, kXxs1[4] = {20, 4, 4, 4}, kXxs5[4] = {62, 12, 4, 4}, kXxs255[4] = {4, 28, 52, 62};
const int kS0[4] = {1, 1, 1, 1}, kS1[4] = {3, 1, 1, 1}, kS256[4] = {7, 5, 9, 5}, kS511[4] = {1, 1, 15, 15};
const int k1s0[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, k1s260[8] = {-1, 0, 0, 1, 1, -1, 0, -1},
          k1s1024[8] = {0, 1, -1, 0, 0, 0, 0, 0}, k1s2046[8] = {-1, 1, 1, 1, 1, 1, 1, 1},
          k1s2047[8] = {1, 1, 1, 1, 1, 1, 1, 1};

}  // namespace

TEST(IqTypes, SizesAndActivations) {
    const int64_t bytes[] = {98, 110, 50, 56};
    for (int i = 0; i < 4; ++i) {
        const GgmlType t = kIqTypes[i];
        SCOPED_TRACE(type_name(t));
        EXPECT_EQ(type_info(t).block_size, 256);
        EXPECT_EQ(type_info(t).type_size, bytes[i]);
        EXPECT_TRUE(type_info(t).has_kernels);
        EXPECT_EQ(act_bytes(t, 512), 512u + 2 * 4 + 32 * 2);  // the K-quants' blocks of 256
    }
    EXPECT_EQ(type_from_name("IQ1_M"), GgmlType::IQ1_M);
    EXPECT_EQ(type_from_name("iq3_xxs"), GgmlType::IQ3_XXS);
}

TEST(Layout, IQ3_XXS) {
    // d = 0.5. Group 0: entries {0, 1, 5, 255, 0, 0, 0, 0}, ls 15 (db = 0.5 * 15.5 * 0.5 = 3.875), sign
    // indices {0b0000001 (odd: the eighth sign is set too), 0, 0b1010000 (even), 127 (odd: all 8)}.
    // Group g > 0: every entry 255, ls = g, no signs.
    std::vector<uint8_t> b(98);
    put<uint16_t>(b, 0, 0x3800);
    const uint8_t q0[8] = {0, 1, 5, 255, 0, 0, 0, 0};
    for (int m = 0; m < 64; ++m) b[2 + size_t(m)] = m < 8 ? q0[m] : 255;
    put<uint32_t>(b, 66, 0b0000001u | 0u << 7 | 0b1010000u << 14 | 127u << 21 | 15u << 28);
    for (int g = 1; g < 8; ++g) put<uint32_t>(b, 66 + 4 * size_t(g), uint32_t(g) << 28);
    std::vector<float> want(256);
    const int* e0[8] = {kXxs0, kXxs1, kXxs5, kXxs255, kXxs0, kXxs0, kXxs0, kXxs0};
    const uint32_t neg0 = 0x81u | 0x00u << 8 | 0x50u << 16 | 0xFFu << 24;  // bit e: element e negative
    for (int e = 0; e < 32; ++e) want[size_t(e)] = 3.875f * float(e0[e / 4][e % 4]) * ((neg0 >> e) & 1 ? -1.f : 1.f);
    for (int g = 1; g < 8; ++g)
        for (int e = 0; e < 32; ++e) want[size_t(32 * g + e)] = 0.5f * (0.5f + float(g)) * 0.5f * float(kXxs255[e % 4]);
    EXPECT_EQ(want[0], -15.5f);    // sign bit 0
    EXPECT_EQ(want[4], 77.5f);     // entry 1: 20
    EXPECT_EQ(want[7], -15.5f);    // the implied eighth sign
    EXPECT_EQ(want[8], 240.25f);   // entry 5: 62
    EXPECT_EQ(want[15], 240.25f);  // entry 255's last value, 62
    EXPECT_EQ(want[20], -15.5f);   // sign index bit 4
    EXPECT_EQ(want[23], 15.5f);    // even count: no eighth sign
    EXPECT_EQ(want[31], -15.5f);   // index 127
    EXPECT_EQ(want[32 + 3], 23.25f);  // group 1: db = 0.375, 62
    expect_dequant(GgmlType::IQ3_XXS, b, want);
}

TEST(Layout, IQ3_S) {
    // d = 0.25. Group 0: entries {0, 1, 0 | 256, 255 | 256, 0...} (qh[0] = 0b1100), scale nibble 15
    // (db = 0.25 * 31), signs bytes {0x81, 0, 0xFF, 0x01} (odd counts are fine: all 8 stored). Group 1:
    // scale nibble 3 (db = 1.75), entry 0. Groups g >= 2: nibble g, entry 0, no signs.
    std::vector<uint8_t> b(110);
    put<uint16_t>(b, 0, 0x3400);
    const uint8_t q0[8] = {0, 1, 0, 255, 0, 0, 0, 0};
    for (int m = 0; m < 8; ++m) b[2 + size_t(m)] = q0[m];
    b[66] = 0b1100;
    b[74] = 0x81, b[75] = 0x00, b[76] = 0xFF, b[77] = 0x01;
    for (int g = 0; g < 4; ++g) b[106 + size_t(g)] = uint8_t((g == 0 ? 0x3F : (2 * g) | (2 * g + 1) << 4));
    std::vector<float> want(256);
    const int* e0[8] = {kS0, kS1, kS256, kS511, kS0, kS0, kS0, kS0};
    const uint32_t neg0 = 0x81u | 0xFFu << 16 | 0x01u << 24;
    for (int e = 0; e < 32; ++e) want[size_t(e)] = 7.75f * float(e0[e / 4][e % 4]) * ((neg0 >> e) & 1 ? -1.f : 1.f);
    for (int g = 1; g < 8; ++g)
        for (int e = 0; e < 32; ++e) want[size_t(32 * g + e)] = 0.25f * float(2 * (g == 1 ? 3 : g) + 1);
    EXPECT_EQ(want[0], -7.75f);
    EXPECT_EQ(want[4], 23.25f);    // entry 1: 3
    EXPECT_EQ(want[8], 54.25f);    // entry 256 (ninth bit): 7
    EXPECT_EQ(want[15], 116.25f);  // entry 511: 15
    EXPECT_EQ(want[24], -7.75f);   // signs[3] bit 0
    EXPECT_EQ(want[32], 1.75f);    // group 1: nibble 3
    EXPECT_EQ(want[255], 3.75f);   // group 7: nibble 7
    expect_dequant(GgmlType::IQ3_S, b, want);
}

TEST(Layout, IQ1_S) {
    // d = 0.5. Group 0: entries {0, 1, 1024, 2047}: qs {0, 1, 0, 255}, qh[0]'s high bits {0, 0, 4, 7},
    // scale 5 (dl = 5.5), delta negative. Group 1: entries {2046, 260, 0, 0}, scale 0,
    // delta positive. Groups g >= 2: entry 0, scale g % 8, delta negative on odd g.
    std::vector<uint8_t> b(50);
    put<uint16_t>(b, 0, 0x3800);
    const uint8_t qs[8] = {0, 1, 0, 255, 0xFE, 0x04, 0, 0};
    for (int m = 0; m < 8; ++m) b[2 + size_t(m)] = qs[m];
    put<uint16_t>(b, 34, uint16_t(4 << 6 | 7 << 9 | 5 << 12 | 0x8000));
    put<uint16_t>(b, 36, uint16_t(7 | 1 << 3));
    for (int g = 2; g < 8; ++g) put<uint16_t>(b, 34 + 2 * size_t(g), uint16_t(g << 12 | (g % 2) << 15));
    const int k1s1[8] = {1, -1, -1, -1, -1, -1, -1, -1};
    const int* ent[8] = {k1s0, k1s1, k1s1024, k1s2047, k1s2046, k1s260, k1s0, k1s0};
    std::vector<float> want(256);
    for (int e = 0; e < 64; ++e) {
        const float dl = e < 32 ? 5.5f : 0.5f, delta = e < 32 ? -0.125f : 0.125f;
        want[size_t(e)] = dl * (float(ent[e / 8][e % 8]) + delta);
    }
    for (int e = 64; e < 256; ++e) {
        const int g = e / 32;
        want[size_t(e)] = 0.5f * float(2 * g + 1) * (-1.f + (g % 2 ? -0.125f : 0.125f));
    }
    EXPECT_EQ(want[0], -6.1875f);  // -1 - 1/8, dl 5.5
    EXPECT_EQ(want[8], 4.8125f);   // entry 1's first value 1, delta -1/8
    EXPECT_EQ(want[16], -0.6875f); // entry 1024: 0
    EXPECT_EQ(want[24], 4.8125f);  // entry 2047: 1
    EXPECT_EQ(want[32], -0.4375f); // group 1: dl 0.5, delta +1/8: -1 + 1/8
    EXPECT_EQ(want[43], 0.5625f);  // entry 260's fourth value 1
    EXPECT_EQ(want[96], -3.9375f); // group 3: dl 3.5, -1 - 1/8
    expect_dequant(GgmlType::IQ1_S, b, want);
}

TEST(Layout, IQ1_M) {
    // d = fp16 0x3A5C (0.794921875: nibbles 3, A, 5, C spread over the 4 scale words' top nibbles, word
    // i holding bits 4i..4i+3, so a wrong order changes d). Group h of 16 has scale h % 8. Entries {0,
    // 2047, 1024, 260, 0...} (qs {0, 0xFF, 0, 4}, high bits {0, 7, 4, 1}); negative deltas on entries
    // 1, 2 and 5 (bit 3 of their qh nibble).
    std::vector<uint8_t> b(56);
    b[1] = 0xFF, b[3] = 0x04;
    b[32] = 0x00 | (7 | 8) << 4;
    b[33] = (4 | 8) | 1 << 4;
    b[34] = 8 << 4;
    const uint16_t dbits = 0x3A5C;
    for (int w = 0; w < 4; ++w) {
        uint16_t word = uint16_t(((dbits >> 4 * w) & 0xF) << 12);
        for (int k = 0; k < 4; ++k) word = uint16_t(word | ((4 * w + k) % 8) << 3 * k);
        put<uint16_t>(b, 48 + 2 * size_t(w), word);
    }
    const float d = 0.794921875f;
    EXPECT_EQ(fp16_to_f32(dbits), d);
    const int* ent[4] = {k1s0, k1s2047, k1s1024, k1s260};
    std::vector<float> want(256);
    for (int e = 0; e < 256; ++e) {
        const int m = e / 8;
        const float dl = d * float(2 * ((e / 16) % 8) + 1);
        const float delta = m == 1 || m == 2 || m == 5 ? -0.125f : 0.125f;
        want[size_t(e)] = dl * (float(m < 4 ? ent[m][e % 8] : -1) + delta);
    }
    EXPECT_EQ(want[0], d * -0.875f);      // scale 0, entry 0, delta +
    EXPECT_EQ(want[8], d * 0.875f);       // entry 2047 (1), delta -
    EXPECT_EQ(want[17], d * 3 * 0.875f);  // group 1 (scale 1): entry 1024's 1, delta -
    EXPECT_EQ(want[40], d * 5 * -1.125f); // group 2: entry 5 = 0 (-1), delta -
    EXPECT_EQ(want[255], d * 15 * -0.875f);  // group 15: scale 7
    expect_dequant(GgmlType::IQ1_M, b, want);
}

// The exact nearest-entry search the quantizers use, against brute force over every entry, on points
// around the grids' own range and beyond it.
TEST(IqQuantize, GridSearchIsExact) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    auto check = [&](const auto& search, auto value, int entries, int dims, float lo, float hi) {
        std::uniform_real_distribution<float> u(lo, hi);
        for (int rep = 0; rep < 3000; ++rep) {
            float t[8];
            for (int j = 0; j < dims; ++j) t[j] = u(rng);
            float cost;
            const int got = search.nearest(t, &cost);
            double best = 1e30, got_cost = 0;
            for (int e = 0; e < entries; ++e) {
                double c = 0;
                for (int j = 0; j < dims; ++j) c += (double(t[j]) - value(e, j)) * (double(t[j]) - value(e, j));
                best = std::min(best, c);
                if (e == got) got_cost = c;
            }
            ASSERT_LE(got_cost, best * (1 + 1e-5) + 1e-6) << "rep " << rep;
            ASSERT_NEAR(cost, got_cost, 1e-4 * (1 + got_cost));
        }
    };
    using namespace sluice::blocks;
    const detail::GridSearch<4, 8> xxs(k_iq3xxs_codes, k_iq3xxs_levels, 3), s(k_iq3s_codes, k_iq3s_levels, 3);
    const detail::GridSearch<8, 3> one(k_iq1s_codes, k_iq1s_levels, 2);
    check(xxs, [](int e, int j) { return int(uint8_t(kIq3xxsGrid[size_t(e)] >> 8 * j)); }, 256, 4, -5.f, 70.f);
    check(s, [](int e, int j) { return int(uint8_t(kIq3sGrid[size_t(e)] >> 8 * j)); }, 512, 4, -2.f, 17.f);
    check(one, [](int e, int j) { return int(int8_t(kIq1sGrid[size_t(e)] >> 8 * j)); }, 2048, 8, -1.6f, 1.6f);
}

// Quantize -> dequantize on the rows of test_kernels' bounds (Gaussian, scale changing 16x between
// 32-blocks). Bounds: 1.5x the worst of 1600 rows (measured worst / mean: IQ3_XXS 0.0346 / 0.0314,
// IQ3_S 0.0182 / 0.0168, IQ1_S 0.211 / 0.198, IQ1_M 0.184 / 0.171; llama.cpp's own quantizers with a
// unit importance matrix, worst of 8 such rows: 0.035, 0.020, 0.24, 0.22). The larger type of each
// pair beat the smaller on all 1600 rows.
TEST(IqQuantize, ErrorWithinBounds) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 4096;
    const double bound[] = {0.052, 0.027, 0.32, 0.28};
    for (int rep = 0; rep < 4; ++rep) {
        const std::vector<float> x = random_row(rng, n);
        double e[4];
        for (int i = 0; i < 4; ++i) {
            std::vector<float> y(static_cast<size_t>(n));
            dequantize_row_isa(Isa::Scalar, kIqTypes[i], quantized(kIqTypes[i], x).data(), y.data(), n);
            e[i] = nmse(y.data(), x.data(), n);
            EXPECT_LE(e[i], bound[i]) << type_name(kIqTypes[i]) << " rep " << rep;
            if (rep == 0) std::printf("  %-7s quantize NMSE: %.3g (bound %.3g)\n", type_name(kIqTypes[i]), e[i], bound[i]);
        }
        EXPECT_LT(e[1], e[0]) << "rep " << rep;
        EXPECT_LT(e[3], e[2]) << "rep " << rep;
    }
}

// Our quantizers keep, for the scales as stored, every group of 4 / 8 on its nearest grid entry (by
// brute force here), IQ3_S every sign of its input and IQ3_XXS all but, where a run of 8 has an odd
// count of negatives, its smallest magnitude; IQ1's deltas are the better of the two.
TEST(IqQuantize, NearestEntriesForStoredScales) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 1024;
    // Squared distance of t (dims values) to entry e's values, and the least over all entries.
    auto nearest_cost = [](auto value, int entries, int dims, const double* t, int e, double& best) {
        best = 1e300;
        double got = 0;
        for (int k = 0; k < entries; ++k) {
            double c = 0;
            for (int j = 0; j < dims; ++j) c += (t[j] - value(k, j)) * (t[j] - value(k, j));
            best = std::min(best, c);
            if (k == e) got = c;
        }
        return got;
    };
    auto v3xxs = [](int e, int j) { return double(uint8_t(blocks::kIq3xxsGrid[size_t(e)] >> 8 * j)); };
    auto v3s = [](int e, int j) { return double(uint8_t(blocks::kIq3sGrid[size_t(e)] >> 8 * j)); };
    auto v1 = [](int e, int j) { return double(int8_t(blocks::kIq1sGrid[size_t(e)] >> 8 * j)); };
    auto near = [](double got, double best) { return got <= best + 1e-4 * (1 + best); };
    for (int rep = 0; rep < 4; ++rep) {
        const std::vector<float> x = random_row(rng, n, rep % 2 ? 1e-3f : 1.f);
        const std::vector<uint8_t> xxs = quantized(GgmlType::IQ3_XXS, x), s = quantized(GgmlType::IQ3_S, x),
                                   i1s = quantized(GgmlType::IQ1_S, x), i1m = quantized(GgmlType::IQ1_M, x);
        for (int64_t sb = 0; sb < n / 256; ++sb) {
            const float* xb = x.data() + 256 * sb;
            double best, t[8];
            // IQ3_XXS
            const uint8_t* b = &xxs[size_t(98 * sb)];
            for (int g = 0; g < 8; ++g) {
                uint32_t w;
                std::memcpy(&w, b + 66 + 4 * g, 4);
                const float db = half_at(b) * (0.5f + float(w >> 28)) * 0.5f;
                for (int k = 0; k < 4; ++k) {
                    const float* xk = xb + 32 * g + 8 * k;
                    int neg = int((w >> 7 * k) & 127), want = 0, smallest = 0;
                    neg |= (__builtin_popcount(unsigned(neg)) & 1) << 7;
                    for (int j = 0; j < 8; ++j) {
                        want |= int(std::signbit(xk[j])) << j;
                        if (std::fabs(xk[j]) < std::fabs(xk[smallest])) smallest = j;
                    }
                    const int diff = neg ^ want;
                    ASSERT_TRUE(diff == 0 || (diff == 1 << smallest && __builtin_popcount(unsigned(want)) % 2))
                        << "IQ3_XXS super-block " << sb << " group " << g << " run " << k;
                    if (db == 0.f) continue;
                    for (int h = 0; h < 2; ++h) {
                        for (int j = 0; j < 4; ++j)
                            t[j] = ((neg >> (4 * h + j)) & 1 ? -1.0 : 1.0) * xk[4 * h + j] / db;
                        const double got = nearest_cost(v3xxs, 256, 4, t, b[2 + 8 * g + 2 * k + h], best);
                        ASSERT_TRUE(near(got, best)) << "IQ3_XXS " << got << " vs " << best;
                    }
                }
            }
            // IQ3_S
            b = &s[size_t(110 * sb)];
            for (int e = 0; e < 256; ++e)
                ASSERT_EQ((b[74 + e / 8] >> (e % 8)) & 1, int(std::signbit(xb[e]))) << "IQ3_S sign " << e;
            for (int m = 0; m < 64; ++m) {
                const float db = half_at(b) * float(2 * ((b[106 + m / 16] >> 4 * ((m / 8) % 2)) & 15) + 1);
                if (db == 0.f) continue;
                for (int j = 0; j < 4; ++j) t[j] = std::fabs(xb[4 * m + j]) / db;
                const int idx = b[2 + m] | ((b[66 + m / 8] >> (m % 8)) & 1) << 8;
                const double got = nearest_cost(v3s, 512, 4, t, idx, best);
                ASSERT_TRUE(near(got, best)) << "IQ3_S entry " << m << ": " << got << " vs " << best;
            }
            // IQ1_S / IQ1_M: entry m's 8 values at dl with delta; the other delta's nearest is no nearer.
            auto check1 = [&](const char* what, float dl, bool neg, int idx, const float* xm) {
                if (dl == 0.f) return;
                const double del = neg ? -0.125 : 0.125;
                for (int j = 0; j < 8; ++j) t[j] = xm[j] / dl - del;
                const double got = nearest_cost(v1, 2048, 8, t, idx, best);
                ASSERT_TRUE(near(got, best)) << what << " " << got << " vs " << best;
            };
            b = &i1s[size_t(50 * sb)];
            for (int g = 0; g < 8; ++g) {
                uint16_t qh;
                std::memcpy(&qh, b + 34 + 2 * g, 2);
                const float dl = half_at(b) * float(2 * ((qh >> 12) & 7) + 1);
                double err[2] = {0, 0};
                for (int k = 0; k < 4; ++k) {
                    check1("IQ1_S", dl, qh >> 15, b[2 + 4 * g + k] | ((qh >> 3 * k) & 7) << 8, xb + 32 * g + 8 * k);
                    for (int sg = 0; sg < 2; ++sg) {  // each delta's best error for this group
                        for (int j = 0; j < 8; ++j) t[j] = xb[32 * g + 8 * k + j] / dl - (sg ? -0.125 : 0.125);
                        nearest_cost(v1, 2048, 8, t, 0, best);
                        err[sg] += best;
                    }
                }
                if (dl != 0.f) {
                    ASSERT_LE(err[qh >> 15], err[1 - (qh >> 15)] * (1 + 1e-4) + 1e-6) << "IQ1_S delta";
                }
            }
            b = &i1m[size_t(56 * sb)];
            uint16_t sc[4];
            std::memcpy(sc, b + 48, 8);
            const uint16_t dbits = uint16_t(sc[0] >> 12 | (sc[1] >> 12) << 4 | (sc[2] >> 12) << 8 | (sc[3] >> 12) << 12);
            for (int m = 0; m < 32; ++m) {
                const int h = m / 2, nib = b[32 + m / 2] >> 4 * (m % 2);
                const float dl = fp16_to_f32(dbits) * float(2 * ((sc[h / 4] >> 3 * (h % 4)) & 7) + 1);
                const bool neg = (nib >> 3) & 1;
                check1("IQ1_M", dl, neg, b[m] | (nib & 7) << 8, xb + 8 * m);
                if (dl == 0.f) continue;
                double err[2];
                for (int sg = 0; sg < 2; ++sg) {
                    for (int j = 0; j < 8; ++j) t[j] = xb[8 * m + j] / dl - (sg ? -0.125 : 0.125);
                    nearest_cost(v1, 2048, 8, t, 0, err[sg]);
                }
                ASSERT_LE(err[neg], err[!neg] * (1 + 1e-4) + 1e-6) << "IQ1_M delta, entry " << m;
            }
        }
    }
}

// vec_dot against a double dot of the dequantized row with the dequantized prepared activations
// (d * q per block of 256), on every ISA: the integer sums are exact, so only float rounding (of the
// dequantized weights, of d * d_a, of the sums over super-blocks) separates them: bound 1e-5 of
// sum |w * a|. A wrong sign, index bit, scale or delta moves the dot by far more.
TEST(IqDot, MatchesDoubleDotOfDequantized) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    for (GgmlType t : kIqTypes)
        for (int64_t n : {int64_t(256), int64_t(4096)})
            for (Isa isa : available_isas()) {
                SCOPED_TRACE(std::string(type_name(t)) + " " + isa_name(isa) + " n=" + std::to_string(n) +
                             " seed=" + std::to_string(seed));
                for (int rep = 0; rep < 8; ++rep) {
                    const std::vector<float> x = random_row(rng, n, rep % 4 == 3 ? 1e-3f : 1.f);
                    const DotCheck c = dot_check(isa, t, random_row(rng, n), x, 256);
                    ASSERT_LE(std::fabs(c.got - c.exact), 1e-5 * c.sum_abs) << "rep " << rep << ": " << c.got << " vs " << c.exact;
                }
            }
}
