// IQ2_XXS / IQ2_XS / IQ2_S: hand-built blocks (grid entries and sign patterns written out here, not taken
// from iq_grids.h, so a wrong table entry or bit position fails), what our quantizer chooses (signs kept
// but for the parity flip, the nearest entries for the scales as stored, the error order of the three),
// and the dots against a double dot of what they multiply, on every ISA.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels.h"
#include "tests/kernels_test_util.h"

using namespace sluice;
using namespace sluice::test;

namespace {

// Grid entries used below, from ggml-common.h (iq2xxs_grid / iq2xs_grid / iq2s_grid), value j at j.
struct Entry {
    int index;
    uint8_t mag[8];
};
const Entry kXxs[4] = {{1, {43, 8, 8, 8, 8, 8, 8, 8}},
                       {37, {8, 8, 8, 25, 8, 25, 8, 8}},
                       {200, {8, 8, 8, 8, 25, 8, 43, 25}},
                       {255, {8, 25, 8, 8, 25, 43, 43, 43}}};
const Entry kXs[4] = {{1, {43, 8, 8, 8, 8, 8, 8, 8}},
                      {300, {8, 25, 25, 8, 8, 25, 8, 25}},
                      {511, {43, 43, 43, 43, 43, 43, 43, 43}},
                      {0, {8, 8, 8, 8, 8, 8, 8, 8}}};
const Entry kS[4] = {{1, {43, 8, 8, 8, 8, 8, 8, 8}},
                     {513, {25, 8, 8, 25, 25, 8, 8, 25}},
                     {700, {8, 8, 8, 43, 43, 8, 25, 25}},
                     {1023, {43, 43, 43, 43, 43, 43, 43, 43}}};
// 7-bit sign indices and the sign bytes they stand for (bit 7: the parity of the other 7).
const int kSign7[4] = {1, 3, 127, 42};
const uint8_t kSign8[4] = {0x81, 0x03, 0xFF, 0xAA};
// IQ2_S stores 8 signs: single bits and odd counts too.
const uint8_t kSignS[4] = {0x80, 0x01, 0xA5, 0xFF};
// ls of values 0-15 (and of all 32 for IQ2_XXS) and of 16-31 in group g: every bit of the nibble.
const int kLsA[8] = {0, 1, 2, 4, 8, 15, 5, 10}, kLsB[8] = {15, 14, 13, 11, 7, 0, 9, 3};

// Dequantizes one block on every available ISA and checks all agree with `want`.
void expect_dequant(GgmlType t, const std::vector<uint8_t>& block, const std::vector<float>& want) {
    for (Isa isa : available_isas()) {
        SCOPED_TRACE(isa_name(isa));
        std::vector<float> y(256, -1.f);
        dequantize_row_isa(isa, t, block.data(), y.data(), 256);
        for (int i = 0; i < 256; ++i) ASSERT_EQ(y[size_t(i)], want[size_t(i)]) << "element " << i;
    }
}

// What d = 0.5 with piece p's entry, sign byte and ls decodes to: 0.5 * (0.5 + ls) * 0.25 * mag * sign.
std::vector<float> expected(const Entry* const* entry, const uint8_t* signs, const int* ls) {
    std::vector<float> want(256);
    for (int p = 0; p < 32; ++p) {
        const float db = 0.5f * (0.5f + float(ls[p])) * 0.25f;
        for (int j = 0; j < 8; ++j) want[size_t(8 * p + j)] = db * entry[p]->mag[j] * ((signs[p] >> j) & 1 ? -1.f : 1.f);
    }
    return want;
}

template <class T>
void put(std::vector<uint8_t>& b, size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}


// A stored piece as the test reads it: grid entry index, sign byte (bit j: value j negative), ls.
struct Stored {
    int entry, signs, ls;
};
Stored stored(GgmlType t, const uint8_t* blk, int p) {
    const int g = p / 4, l = p % 4;
    auto parity = [](int s7) { return s7 | (__builtin_popcount(unsigned(s7)) & 1) << 7; };
    if (t == GgmlType::IQ2_XXS) {
        uint32_t grid, aux;
        std::memcpy(&grid, blk + 2 + 8 * g, 4);
        std::memcpy(&aux, blk + 6 + 8 * g, 4);
        return {int(grid >> (8 * l)) & 255, parity(int(aux >> (7 * l)) & 127), int(aux >> 28)};
    }
    const uint8_t* scales = blk + (t == GgmlType::IQ2_XS ? 66 : 74);
    const int ls = (scales[g] >> (4 * (l / 2))) & 15;
    if (t == GgmlType::IQ2_XS) {
        uint16_t q;
        std::memcpy(&q, blk + 2 + 2 * p, 2);
        return {q & 511, parity(q >> 9), ls};
    }
    return {blk[2 + p] | ((blk[66 + g] >> (2 * l)) & 3) << 8, blk[34 + p], ls};
}

const uint64_t* grid_of(GgmlType t) {
    return t == GgmlType::IQ2_XXS ? blocks::kIq2xxsGrid.data()
           : t == GgmlType::IQ2_XS ? blocks::kIq2xsGrid.data()
                                   : blocks::kIq2sGrid.data();
}

}  // namespace

TEST(LayoutIq2, IQ2_XXS) {
    // d = 0.5; group g, piece l: entry kXxs[(l + g) % 4], signs kSign7 of the same, ls kLsA[g]. qs[4g..4g+1]
    // (one uint32) the four entry indices, qs[4g+2..4g+3] the sign indices at bits 7l and ls at 28-31.
    std::vector<uint8_t> b(66);
    put<uint16_t>(b, 0, 0x3800);
    const Entry* e[32];
    uint8_t s[32];
    int ls[32];
    for (int g = 0; g < 8; ++g) {
        uint32_t grid = 0, aux = uint32_t(kLsA[g]) << 28;
        for (int l = 0; l < 4; ++l) {
            const int k = (l + g) % 4, p = 4 * g + l;
            grid |= uint32_t(kXxs[k].index) << (8 * l);
            aux |= uint32_t(kSign7[k]) << (7 * l);
            e[p] = &kXxs[k], s[p] = kSign8[k], ls[p] = kLsA[g];
        }
        put(b, size_t(2 + 8 * g), grid);
        put(b, size_t(6 + 8 * g), aux);
    }
    const std::vector<float> want = expected(e, s, ls);
    EXPECT_EQ(want[0], -2.6875f);   // group 0 (ls 0, db 1/16): entry 1's 43, sign index 1 sets bit 0
    EXPECT_EQ(want[7], -0.5f);      // and bit 7, the parity of index 1
    EXPECT_EQ(want[11], 1.5625f);   // piece 1: entry 37's 25 at 3, sign index 3 sets bits 0-1 only
    EXPECT_EQ(want[163], 48.4375f); // group 5 (ls 15, db 1.9375), piece 0: entry 37's 25 at 3
    EXPECT_EQ(want[255], -32.8125f); // group 7 (ls 10), piece 3: entry 200's 25 at 7, all signs set
    expect_dequant(GgmlType::IQ2_XXS, b, want);
}

TEST(LayoutIq2, IQ2_XS) {
    // qs[4g + l] = entry index | sign index << 9 (entries kXs); scales[g] = kLsA[g] | kLsB[g] << 4.
    std::vector<uint8_t> b(74);
    put<uint16_t>(b, 0, 0x3800);
    const Entry* e[32];
    uint8_t s[32];
    int ls[32];
    for (int g = 0; g < 8; ++g) {
        b[66 + size_t(g)] = uint8_t(kLsA[g] | kLsB[g] << 4);
        for (int l = 0; l < 4; ++l) {
            const int k = (l + g) % 4, p = 4 * g + l;
            put<uint16_t>(b, size_t(2 + 2 * p), uint16_t(kXs[k].index | kSign7[k] << 9));
            e[p] = &kXs[k], s[p] = kSign8[k], ls[p] = l < 2 ? kLsA[g] : kLsB[g];
        }
    }
    const std::vector<float> want = expected(e, s, ls);
    EXPECT_EQ(want[0], -2.6875f);   // as IQ2_XXS's
    EXPECT_EQ(want[11], 0.5f);      // piece 1: entry 300's 8 at 3
    EXPECT_EQ(want[44], -8.0625f);  // group 1, piece 1 (ls 1): entry 511's 43, sign index 127
    EXPECT_EQ(want[163], 15.5f);    // group 5, piece 0 (ls 15): entry 300's 8 at 3
    EXPECT_EQ(want[255], -18.8125f); // group 7, piece 3 (high nibble 3): entry 511's 43, index 127
    expect_dequant(GgmlType::IQ2_XS, b, want);
}

TEST(LayoutIq2, IQ2_S) {
    // qs[p] = entry index & 255, bits 8-9 at bits 2l of qh[g]; qs[32 + p] the sign byte; scales as IQ2_XS.
    std::vector<uint8_t> b(82);
    put<uint16_t>(b, 0, 0x3800);
    const Entry* e[32];
    uint8_t s[32];
    int ls[32];
    for (int g = 0; g < 8; ++g) {
        b[74 + size_t(g)] = uint8_t(kLsA[g] | kLsB[g] << 4);
        for (int l = 0; l < 4; ++l) {
            const int k = (l + g) % 4, p = 4 * g + l;
            b[2 + size_t(p)] = uint8_t(kS[k].index);
            b[34 + size_t(p)] = kSignS[k];
            b[66 + size_t(g)] |= uint8_t((kS[k].index >> 8) << (2 * l));
            e[p] = &kS[k], s[p] = kSignS[k], ls[p] = l < 2 ? kLsA[g] : kLsB[g];
        }
    }
    const std::vector<float> want = expected(e, s, ls);
    EXPECT_EQ(want[0], 2.6875f);    // sign byte 0x80: value 0 positive (no parity)
    EXPECT_EQ(want[7], -0.5f);      // and value 7 negative
    EXPECT_EQ(want[8], -1.5625f);   // entry 513 (qh bits 01): 25, sign byte 0x01
    EXPECT_EQ(want[44], 8.0625f);   // group 1, piece 1: entry 700 (qh 10) value 4, 0xA5 leaves bit 4 clear
    EXPECT_EQ(want[163], 48.4375f); // group 5, piece 0 (ls 15): entry 513's 25 at 3, 0x01
    EXPECT_EQ(want[255], -10.9375f); // group 7, piece 3 (ls 3): entry 700's 25 at 7, 0xA5
    expect_dequant(GgmlType::IQ2_S, b, want);
}


// Our quantizer's choices, read back from the bytes and checked piece by piece against a brute-force
// search: the signs are the values' own, except (IQ2_XXS / IQ2_XS, 7 signs stored) one value of least
// magnitude in a piece whose minus count is odd; the entry is a nearest one (least squares, those
// signs) for the scale as stored, d * (0.5 + ls) / 4.
TEST(QuantizeIq2, SignsAndNearestEntriesForStoredScales) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 1024;
    for (GgmlType t : {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S}) {
        const int n_entries = t == GgmlType::IQ2_XXS ? 256 : t == GgmlType::IQ2_XS ? 512 : 1024;
        const uint64_t* grid = grid_of(t);
        for (int rep = 0; rep < 4; ++rep) {
            SCOPED_TRACE(std::string(type_name(t)) + " rep " + std::to_string(rep));
            const std::vector<float> x = random_row(rng, n, rep % 2 ? 1e-3f : 1.f);
            const std::vector<uint8_t> q = quantized(t, x);
            const int64_t bs = type_info(t).type_size;
            for (int64_t b = 0; b < n / 256; ++b) {
                const uint8_t* blk = q.data() + b * bs;
                uint16_t dh;
                std::memcpy(&dh, blk, 2);
                const float d = fp16_to_f32(dh);
                ASSERT_GT(d, 0.f) << "block " << b;
                for (int p = 0; p < 32; ++p) {
                    SCOPED_TRACE("block " + std::to_string(b) + " piece " + std::to_string(p));
                    const float* xp = x.data() + 256 * b + 8 * p;
                    const Stored st = stored(t, blk, p);
                    int want_signs = 0, low = 0;
                    for (int j = 0; j < 8; ++j) {
                        if (xp[j] < 0) want_signs |= 1 << j;
                        if (std::fabs(xp[j]) < std::fabs(xp[low])) low = j;
                    }
                    if (t != GgmlType::IQ2_S && __builtin_popcount(unsigned(want_signs)) % 2) want_signs ^= 1 << low;
                    ASSERT_EQ(st.signs, want_signs);
                    // Targets with those signs: |x|, or -|x| for a flipped value.
                    const double dl = double(d * (0.5f + float(st.ls)) * 0.25f);
                    double tt = 0, best = INFINITY;
                    auto err = [&](int e) {
                        double s = 0;
                        for (int j = 0; j < 8; ++j) {
                            const double tj = (want_signs >> j) & 1 ? -xp[j] : xp[j];
                            const double r = tj - dl * double(uint8_t(grid[e] >> (8 * j)));
                            s += r * r;
                        }
                        return s;
                    };
                    for (int j = 0; j < 8; ++j) tt += double(xp[j]) * xp[j];
                    for (int e = 0; e < n_entries; ++e) best = std::min(best, err(e));
                    ASSERT_LE(err(st.entry), best + 1e-5 * (tt + 64 * 43 * 43 * dl * dl)) << "entry " << st.entry;
                }
            }
        }
    }
}

// More bits, less error, on every row: IQ2_S (2.5625 bits a value) < IQ2_XS (2.3125) < IQ2_XXS (2.0625).
TEST(QuantizeIq2, ErrorFallsWithBits) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 4096;
    for (int rep = 0; rep < 4; ++rep) {
        const std::vector<float> x = random_row(rng, n);
        double e[3];
        int i = 0;
        for (GgmlType t : {GgmlType::IQ2_S, GgmlType::IQ2_XS, GgmlType::IQ2_XXS}) {
            std::vector<float> y(static_cast<size_t>(n));
            dequantize_row_isa(Isa::Scalar, t, quantized(t, x).data(), y.data(), n);
            e[i++] = nmse(y.data(), x.data(), n);
        }
        EXPECT_LT(e[0], e[1]) << "rep " << rep;
        EXPECT_LT(e[1], e[2]) << "rep " << rep;
    }
}

// The dots against a double dot of the dequantized row with the dequantized activations (d * q per
// 256), on every ISA: the integer sums are exact, so only float rounding may separate them. Per
// super-block: isum to float (2^-24), times d * d_a (two more roundings), then a float sum over up to
// 16 blocks and the 1/8 (exact): (16 + 3) * 2^-24 ~ 1.2e-6 of sum_b max|w|_b * sum|a|_b; bound 4e-6.
// One wrong sign or scale moves a dot by ~1e-2 of that.
TEST(DotIq2, MatchesDoubleDotOfDequantized) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    for (GgmlType t : {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S})
        for (int64_t n : {int64_t(256), int64_t(4096)})
            for (Isa isa : available_isas()) {
                SCOPED_TRACE(std::string(type_name(t)) + " " + isa_name(isa) + " n=" + std::to_string(n) +
                             " seed=" + std::to_string(seed));
                for (int rep = 0; rep < 16; ++rep) {
                    const std::vector<float> x = random_row(rng, n, rep % 4 == 3 ? 1e-3f : 1.f);
                    const DotCheck c = dot_check(isa, t, random_row(rng, n), x, 256);
                    ASSERT_LE(std::fabs(c.got - c.exact), 4e-6 * c.block_scale) << "rep " << rep << ": " << c.got << " vs " << c.exact;
                }
            }
}
