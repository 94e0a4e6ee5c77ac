// Block layouts from hand-built bytes, fp16/bf16 conversion, the reference quantizers (error bounds,
// llama.cpp-identical output, finite blocks for any finite input), and the 32-block dots against a
// double dot of what they multiply.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels.h"
#include "tests/kernels_test_util.h"

using namespace sluice;
using namespace sluice::test;

namespace {

// Dequantizes one block on every available ISA and checks all agree with `want`.
void expect_dequant(GgmlType t, const void* block, const std::vector<float>& want) {
    const int64_t n = type_info(t).block_size;
    ASSERT_EQ(int64_t(want.size()), n);
    for (Isa isa : available_isas()) {
        SCOPED_TRACE(isa_name(isa));
        std::vector<float> y(size_t(n), -1.f);
        dequantize_row_isa(isa, t, block, y.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[size_t(i)], want[size_t(i)]) << "element " << i;
    }
}

template <class T>
void put(std::vector<uint8_t>& b, size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}

// Q4_K / Q5_K test scales: sc = {1,2,3,4,17,33,49,63}, m = {0,5,10,15,20,40,60,63} packed by hand:
// bytes 0-3 sc[0..3] | top bits of sc[4..7] << 6; bytes 4-7 m[0..3] | top bits of m[4..7] << 6;
// bytes 8-11 low nibbles of sc[4..7] | low nibbles of m[4..7] << 4.
const uint8_t kK4Scales[12] = {0x41, 0x82, 0xC3, 0xC4, 0x40, 0x85, 0xCA, 0xCF, 0x41, 0x81, 0xC1, 0xFF};
const int kK4Sc[8] = {1, 2, 3, 4, 17, 33, 49, 63};
const int kK4M[8] = {0, 5, 10, 15, 20, 40, 60, 63};

}  // namespace

TEST(TypeTable, BlockSizesAndRowBytes) {
    struct Want {
        GgmlType t;
        int64_t block, bytes;
    };
    for (Want w : {Want{GgmlType::F32, 1, 4}, {GgmlType::F16, 1, 2}, {GgmlType::BF16, 1, 2},
                   {GgmlType::Q4_0, 32, 18}, {GgmlType::Q5_0, 32, 22}, {GgmlType::Q5_1, 32, 24},
                   {GgmlType::Q8_0, 32, 34}, {GgmlType::Q2_K, 256, 84},
                   {GgmlType::Q3_K, 256, 110}, {GgmlType::Q4_K, 256, 144}, {GgmlType::Q5_K, 256, 176},
                   {GgmlType::Q6_K, 256, 210}, {GgmlType::IQ4_NL, 32, 18}, {GgmlType::IQ4_XS, 256, 136},
                   {GgmlType::IQ2_XXS, 256, 66}, {GgmlType::IQ2_XS, 256, 74}, {GgmlType::IQ2_S, 256, 82}}) {
        SCOPED_TRACE(type_name(w.t));
        EXPECT_EQ(type_info(w.t).block_size, w.block);
        EXPECT_EQ(type_info(w.t).type_size, w.bytes);
        EXPECT_TRUE(type_info(w.t).has_kernels);
        EXPECT_EQ(row_bytes(w.t, 4096), 4096 / w.block * w.bytes);
    }
    EXPECT_EQ(row_bytes(GgmlType::Q4_K, 2048), 8 * 144);
    EXPECT_EQ(act_bytes(GgmlType::F16, 100), 400u);
    EXPECT_EQ(act_bytes(GgmlType::Q8_0, 64), 64u + 2 * 8);
    EXPECT_EQ(act_bytes(GgmlType::Q5_0, 128), 128u + 4 * 8);
    EXPECT_EQ(act_bytes(GgmlType::Q5_1, 128), 128u + 4 * 8);
    EXPECT_EQ(act_bytes(GgmlType::IQ4_NL, 128), 128u + 4 * 8);
    EXPECT_EQ(act_bytes(GgmlType::IQ4_XS, 512), 512u + 16 * 8);  // blocks of 32, as IQ4_NL
    EXPECT_EQ(act_bytes(GgmlType::Q4_K, 512), 512u + 2 * 4 + 32 * 2);
    EXPECT_EQ(act_bytes(GgmlType::IQ2_XXS, 512), 512u + 2 * 4 + 32 * 2);  // the K-quants' blocks of 256
}

TEST(TypeTable, UnsupportedTypesThrow) {
    float x[32] = {};
    uint8_t buf[64] = {};
    EXPECT_THROW(dequantize_row(GgmlType::Q4_1, buf, x, 32), std::exception);
    EXPECT_THROW(quantize_row(GgmlType::Q8_K, x, buf, 256), std::exception);
    EXPECT_THROW(dequantize_row(GgmlType::Q4_K, buf, x, 32), std::exception);  // not a multiple of 256
    EXPECT_THROW(dequantize_row(GgmlType::IQ4_XS, buf, x, 32), std::exception);
}

TEST(Layout, Q4_0) {
    // d = 0.5 (fp16 0x3800); qs[j] = j | (15 - j) << 4: element j = j, element j + 16 = 15 - j.
    std::vector<uint8_t> b(18);
    put<uint16_t>(b, 0, 0x3800);
    for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | (15 - j) << 4);
    std::vector<float> want(32);
    for (int j = 0; j < 16; ++j) {
        want[j] = (j - 8) * 0.5f;
        want[j + 16] = (7 - j) * 0.5f;
    }
    EXPECT_EQ(want[0], -4.f);
    EXPECT_EQ(want[16], 3.5f);
    expect_dequant(GgmlType::Q4_0, b.data(), want);
}

// Q5_0 / Q5_1 test blocks: qs[j] = j | (15 - j) << 4 (element j's low 4 bits j, element j + 16's
// 15 - j); qh = 0x9A5CBE80 (bytes 80 BE 5C 9A): the fifth bit of element e is bit e.
constexpr uint32_t kQ5Qh = 0x9A5CBE80u;
int q5_test_quant(int e) { return (e < 16 ? e : 31 - e) + 16 * int((kQ5Qh >> e) & 1); }
std::vector<uint8_t> q5_test_block(size_t header) {
    std::vector<uint8_t> b(header + 20);
    put<uint32_t>(b, header, kQ5Qh);
    for (int j = 0; j < 16; ++j) b[header + 4 + j] = uint8_t(j | (15 - j) << 4);
    return b;
}

TEST(Layout, Q5_0) {
    // d = 0.5: x = 0.5 * (q - 16).
    std::vector<uint8_t> b = q5_test_block(2);
    put<uint16_t>(b, 0, 0x3800);
    std::vector<float> want(32);
    for (int e = 0; e < 32; ++e) want[e] = float(q5_test_quant(e) - 16) * 0.5f;
    EXPECT_EQ(want[0], -8.f);   // q 0: low 0, bit 0 clear
    EXPECT_EQ(want[7], 3.5f);   // q 23: low 7, bit 7 set
    EXPECT_EQ(want[15], 7.5f);  // q 31: low 15, bit 15 set
    EXPECT_EQ(want[16], -0.5f); // q 15: high nibble of qs[0], bit 16 clear
    EXPECT_EQ(want[18], 6.5f);  // q 29: 13, bit 18 set
    EXPECT_EQ(want[31], 0.f);   // q 16: high nibble of qs[15] = 0, bit 31 set
    expect_dequant(GgmlType::Q5_0, b.data(), want);
}

TEST(Layout, Q5_1) {
    // d = 0.5, m = -2.25 (0xc080): x = 0.5 * q - 2.25, no offset on q.
    std::vector<uint8_t> b = q5_test_block(4);
    put<uint16_t>(b, 0, 0x3800);
    put<uint16_t>(b, 2, 0xc080);
    std::vector<float> want(32);
    for (int e = 0; e < 32; ++e) want[e] = float(q5_test_quant(e)) * 0.5f - 2.25f;
    EXPECT_EQ(want[0], -2.25f);
    EXPECT_EQ(want[15], 13.25f);
    EXPECT_EQ(want[31], 5.75f);
    expect_dequant(GgmlType::Q5_1, b.data(), want);
}

// IQ4_NL / IQ4_XS levels, written out here rather than taken from blocks.h so a wrong entry there fails.
const float kIq4[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

TEST(Layout, IQ4_NL) {
    // d = 0.5; qs[j] = j | (15 - j) << 4: element j is level j, element j + 16 level 15 - j.
    std::vector<uint8_t> b(18);
    put<uint16_t>(b, 0, 0x3800);
    for (int j = 0; j < 16; ++j) b[2 + j] = uint8_t(j | (15 - j) << 4);
    std::vector<float> want(32);
    for (int j = 0; j < 16; ++j) {
        want[j] = 0.5f * kIq4[j];
        want[j + 16] = 0.5f * kIq4[15 - j];
    }
    EXPECT_EQ(want[0], -63.5f);  // low nibble 0 of qs[0]
    EXPECT_EQ(want[8], 0.5f);    // level 1
    EXPECT_EQ(want[15], 56.5f);  // low nibble 15 of qs[15]
    EXPECT_EQ(want[16], 56.5f);  // high nibble 15 of qs[0]
    EXPECT_EQ(want[24], -5.f);   // high nibble 7 of qs[8]: level -10
    expect_dequant(GgmlType::IQ4_NL, b.data(), want);
}

TEST(Layout, IQ4_XS) {
    // d = 0.25; ls = {0, 1, 31, 32, 33, 47, 48, 63} (group scales -32, -31, -1, 0, 1, 15, 16, 31):
    // low nibbles {0, 1, F, 0, 1, F, 0, F} -> scales_l 10 0F F1 F0, high 2 bits {0,0,1,2,2,2,3,3} at
    // bits 2g -> scales_h 0xFA90. Group g, byte j: (j + g) & 15 | (15 - j) << 4.
    const int ls[8] = {0, 1, 31, 32, 33, 47, 48, 63};
    std::vector<uint8_t> b(136);
    put<uint16_t>(b, 0, 0x3400);
    put<uint16_t>(b, 2, 0xFA90);
    put<uint32_t>(b, 4, 0xF0F10F10u);
    for (int g = 0; g < 8; ++g)
        for (int j = 0; j < 16; ++j) b[8 + 16 * g + j] = uint8_t(((j + g) & 15) | (15 - j) << 4);
    std::vector<float> want(256);
    for (int g = 0; g < 8; ++g)
        for (int j = 0; j < 16; ++j) {
            const float dl = 0.25f * float(ls[g] - 32);
            want[32 * g + j] = dl * kIq4[(j + g) & 15];
            want[32 * g + 16 + j] = dl * kIq4[15 - j];
        }
    EXPECT_EQ(want[0], 1016.f);         // group 0 (dl -8): level 0
    EXPECT_EQ(want[32 + 1], 643.25f);   // group 1 (-7.75): level 2, -83
    EXPECT_EQ(want[64 + 16], -28.25f);  // group 2 (-0.25): high nibble 15, 113
    EXPECT_EQ(want[96 + 5], 0.f);       // group 3: scale 0
    EXPECT_EQ(want[128 + 4], 0.25f);    // group 4 (0.25): level 8, 1
    EXPECT_EQ(want[224 + 15], -170.5f); // group 7 (7.75): level (15 + 7) & 15 = 6, -22
    EXPECT_EQ(want[255], -984.25f);     // group 7: high nibble 0, -127
    expect_dequant(GgmlType::IQ4_XS, b.data(), want);
}

TEST(Layout, Q8_0) {
    // d = 0.25 (0x3400); qs[j] = 8j - 128, so -128 is covered.
    std::vector<uint8_t> b(34);
    put<uint16_t>(b, 0, 0x3400);
    std::vector<float> want(32);
    for (int j = 0; j < 32; ++j) {
        b[2 + j] = uint8_t(int8_t(8 * j - 128));
        want[j] = (8 * j - 128) * 0.25f;
    }
    EXPECT_EQ(want[0], -32.f);
    expect_dequant(GgmlType::Q8_0, b.data(), want);
}

TEST(Layout, Q4_K) {
    // d = 1 (0x3c00), dmin = 0.5 (0x3800); qs[32c + l] = (l%16) | (15 - l%16) << 4.
    // Element e: group g = e/32; its 4 bits are the low nibbles of qs[32*(g/2) ..] for even g, high for odd.
    std::vector<uint8_t> b(144);
    put<uint16_t>(b, 0, 0x3c00);
    put<uint16_t>(b, 2, 0x3800);
    std::memcpy(b.data() + 4, kK4Scales, 12);
    for (int i = 0; i < 128; ++i) b[16 + i] = uint8_t((i % 16) | (15 - i % 16) << 4);
    std::vector<float> want(256);
    for (int e = 0; e < 256; ++e) {
        const int g = e / 32, l = e % 32, q = g % 2 ? 15 - l % 16 : l % 16;
        want[e] = float(kK4Sc[g] * q) - 0.5f * float(kK4M[g]);
    }
    EXPECT_EQ(want[0], 0.f);
    EXPECT_EQ(want[33], 25.5f);   // g 1: 2 * 14 - 0.5 * 5
    EXPECT_EQ(want[200], 362.f);  // g 6: 49 * 8 - 0.5 * 60
    EXPECT_EQ(want[255], -31.5f); // g 7: 63 * 0 - 0.5 * 63
    expect_dequant(GgmlType::Q4_K, b.data(), want);
}

TEST(Layout, Q5_K) {
    // As Q4_K, plus qh[l] = l: the fifth bit of element 32g + l is bit g of l.
    std::vector<uint8_t> b(176);
    put<uint16_t>(b, 0, 0x3c00);
    put<uint16_t>(b, 2, 0x3800);
    std::memcpy(b.data() + 4, kK4Scales, 12);
    for (int l = 0; l < 32; ++l) b[16 + l] = uint8_t(l);
    for (int i = 0; i < 128; ++i) b[48 + i] = uint8_t((i % 16) | (15 - i % 16) << 4);
    std::vector<float> want(256);
    for (int e = 0; e < 256; ++e) {
        const int g = e / 32, l = e % 32, q = (g % 2 ? 15 - l % 16 : l % 16) + 16 * ((l >> g) & 1);
        want[e] = float(kK4Sc[g] * q) - 0.5f * float(kK4M[g]);
    }
    EXPECT_EQ(want[33], 25.5f);  // g 1, l 1: 14 + 0
    EXPECT_EQ(want[35], 53.5f);  // g 1, l 3: 12 + 16 -> 2 * 28 - 2.5
    expect_dequant(GgmlType::Q5_K, b.data(), want);
}

TEST(Layout, Q6_K) {
    // d = 0.5; ql[i] = i; qh[i] = 0xE4 (element 32s + l of each half gets high bits s); scales[g] = g - 8.
    std::vector<uint8_t> b(210);
    for (int i = 0; i < 128; ++i) b[i] = uint8_t(i);
    for (int i = 0; i < 64; ++i) b[128 + i] = 0xE4;
    for (int g = 0; g < 16; ++g) b[192 + g] = uint8_t(int8_t(g - 8));
    put<uint16_t>(b, 208, 0x3800);
    std::vector<float> want(256);
    for (int e = 0; e < 256; ++e) {
        const int h = e / 128, s = (e % 128) / 32, l = e % 32;
        const int ql = 64 * h + l + 32 * (s & 1);
        const int q = ((s < 2 ? ql & 0xF : ql >> 4) | s << 4) - 32;
        want[e] = 0.5f * float(e / 16 - 8) * float(q);
    }
    EXPECT_EQ(want[0], 128.f);   // 0.5 * -8 * (0 - 32)
    EXPECT_EQ(want[40], 24.f);   // ql[40] low 8, high bits 1 -> 24 - 32 = -8; scale -6
    EXPECT_EQ(want[250], 80.5f); // ql[122] high 7, high bits 3 -> 55 - 32 = 23; scale 7
    expect_dequant(GgmlType::Q6_K, b.data(), want);
}

TEST(Layout, Q2_K) {
    // scales[g] = g | (15 - g) << 4; qs[i] = 0xE4 (element 32s + l of each 128 has q = s);
    // d = 0.5, dmin = 0.25.
    std::vector<uint8_t> b(84);
    for (int g = 0; g < 16; ++g) b[g] = uint8_t(g | (15 - g) << 4);
    for (int i = 0; i < 64; ++i) b[16 + i] = 0xE4;
    put<uint16_t>(b, 80, 0x3800);
    put<uint16_t>(b, 82, 0x3400);
    std::vector<float> want(256);
    for (int e = 0; e < 256; ++e) {
        const int g = e / 16, q = (e % 128) / 32;
        want[e] = 0.5f * float(g) * float(q) - 0.25f * float(15 - g);
    }
    EXPECT_EQ(want[0], -3.75f);
    EXPECT_EQ(want[100], 6.75f);   // g 6, q 3: 9 - 2.25
    EXPECT_EQ(want[200], 11.25f);  // g 12, q 2: 12 - 0.75
    expect_dequant(GgmlType::Q2_K, b.data(), want);
}

TEST(Layout, Q3_K) {
    // 6-bit scales sc[j] = 4j (value 4j - 32) packed by hand: bytes 0-7 hold low nibbles of j and
    // j+8; bytes 8-11 hold the top 2 bits of j = m, m+4, m+8, m+12 at bits 0, 2, 4, 6.
    // hmask[l] = 0xAA (odd 32-element slices have the high bit); qs[i] = 0xE4 (low bits = slice % 4).
    std::vector<uint8_t> b(110);
    for (int l = 0; l < 32; ++l) b[l] = 0xAA;
    for (int i = 0; i < 64; ++i) b[32 + i] = 0xE4;
    const uint8_t sc[12] = {0x00, 0x44, 0x88, 0xCC, 0x00, 0x44, 0x88, 0xCC, 0xE4, 0xE4, 0xE4, 0xE4};
    std::memcpy(b.data() + 96, sc, 12);
    put<uint16_t>(b, 108, 0x3c00);
    std::vector<float> want(256);
    for (int e = 0; e < 256; ++e) {
        const int s = e / 32, q = (e % 128) / 32 + 4 * (s & 1) - 4;
        want[e] = float(4 * (e / 16) - 32) * float(q);
    }
    EXPECT_EQ(want[0], 128.f);   // -32 * -4
    EXPECT_EQ(want[40], -24.f);  // scale -24, q = 1 + 4 - 4
    EXPECT_EQ(want[250], 84.f);  // scale 28, q = 3
    expect_dequant(GgmlType::Q3_K, b.data(), want);
}

TEST(Fp16, RoundTripsEveryHalf) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_f32(uint16_t(h));
        const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan) {  // payload may change, NaN-ness may not
            ASSERT_TRUE(std::isnan(f)) << h;
            ASSERT_EQ(f32_to_fp16(f) & 0x7c00, 0x7c00) << h;
            ASSERT_NE(f32_to_fp16(f) & 0x3ff, 0) << h;
        } else {
            ASSERT_EQ(f32_to_fp16(f), h) << h;
        }
    }
}

TEST(Fp16, RoundsToNearestEven) {
    EXPECT_EQ(f32_to_fp16(1.f), 0x3c00);
    EXPECT_EQ(f32_to_fp16(1.f + 0x1p-11f), 0x3c00);      // halfway between 0x3c00 and 0x3c01: even
    EXPECT_EQ(f32_to_fp16(1.f + 3 * 0x1p-11f), 0x3c02);  // halfway between 0x3c01 and 0x3c02: even
    EXPECT_EQ(f32_to_fp16(1.f + 0x1p-11f + 0x1p-20f), 0x3c01);  // just above halfway
    EXPECT_EQ(f32_to_fp16(-1.f - 0x1p-11f), 0xbc00);
    EXPECT_EQ(f32_to_fp16(65504.f), 0x7bff);
    EXPECT_EQ(f32_to_fp16(65519.f), 0x7bff);  // below the halfway point to 65536
    EXPECT_EQ(f32_to_fp16(65520.f), 0x7c00);  // halfway rounds to even: infinity
}

TEST(Fp16, Subnormals) {
    EXPECT_EQ(fp16_to_f32(0x0001), 0x1p-24f);
    EXPECT_EQ(fp16_to_f32(0x03ff), 1023 * 0x1p-24f);
    EXPECT_EQ(fp16_to_f32(0x8001), -0x1p-24f);
    EXPECT_EQ(f32_to_fp16(0x1p-24f), 0x0001);
    EXPECT_EQ(f32_to_fp16(0x1p-25f), 0x0000);        // halfway to 0x0001: even
    EXPECT_EQ(f32_to_fp16(3 * 0x1p-25f), 0x0002);    // halfway between 1 and 2: even
    EXPECT_EQ(f32_to_fp16(1.5f * 0x1p-25f), 0x0001);
    EXPECT_EQ(f32_to_fp16(0x1p-14f), 0x0400);        // smallest normal
    EXPECT_EQ(f32_to_fp16(0x1p-14f - 0x1p-25f), 0x0400);  // halfway below it rounds up to even
    EXPECT_EQ(f32_to_fp16(-0.f), 0x8000);
    EXPECT_EQ(f32_to_fp16(1e-10f), 0x0000);
}

TEST(Fp16, InfAndNan) {
    const float inf = std::numeric_limits<float>::infinity();
    EXPECT_EQ(f32_to_fp16(inf), 0x7c00);
    EXPECT_EQ(f32_to_fp16(-inf), 0xfc00);
    EXPECT_EQ(f32_to_fp16(1e10f), 0x7c00);
    EXPECT_EQ(fp16_to_f32(0x7c00), inf);
    EXPECT_EQ(fp16_to_f32(0xfc00), -inf);
    EXPECT_TRUE(std::isnan(fp16_to_f32(0x7e00)));
    const uint16_t n = f32_to_fp16(std::numeric_limits<float>::quiet_NaN());
    EXPECT_EQ(n & 0x7c00, 0x7c00);
    EXPECT_NE(n & 0x3ff, 0);
}

TEST(Bf16, RoundingAndSpecials) {
    auto bits = [](uint32_t u) {
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    };
    EXPECT_EQ(f32_to_bf16(1.f), 0x3f80);
    EXPECT_EQ(f32_to_bf16(bits(0x3f808000)), 0x3f80);  // halfway, even stays
    EXPECT_EQ(f32_to_bf16(bits(0x3f818000)), 0x3f82);  // halfway, odd rounds up
    EXPECT_EQ(f32_to_bf16(bits(0x3f808001)), 0x3f81);
    EXPECT_EQ(f32_to_bf16(bits(0x7f7fffff)), 0x7f80);  // max float rounds to inf
    EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
    EXPECT_EQ(f32_to_bf16(bits(0x00000001)), 0x0000);  // float subnormal
    EXPECT_EQ(f32_to_bf16(bits(0x00018000)), 0x0002);
    const uint16_t n = f32_to_bf16(bits(0x7f800001));  // signalling NaN stays NaN
    EXPECT_TRUE(std::isnan(bf16_to_f32(n)));
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = bf16_to_f32(uint16_t(h));
        if (!std::isnan(f)) {
            ASSERT_EQ(f32_to_bf16(f), h);
        }
    }
}

// Quantize -> dequantize on Gaussian rows whose scale changes 16x between 32-blocks (harder for the
// K-quants' shared super-block scale than plain Gaussian rows). Bounds: 1.5x the worst of 1600 rows.
TEST(Quantize, ErrorWithinBounds) {
    struct Bound {
        GgmlType t;
        double nmse;
    };
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 4096;
    for (Bound b : {Bound{GgmlType::F32, 0.0}, {GgmlType::F16, 8e-8}, {GgmlType::BF16, 5e-6},
                    {GgmlType::Q8_0, 5e-5}, {GgmlType::Q4_0, 1.3e-2}, {GgmlType::Q5_0, 3.3e-3},
                    {GgmlType::Q5_1, 2.4e-3}, {GgmlType::Q6_K, 5.5e-4}, {GgmlType::Q5_K, 2.3e-3},
                    {GgmlType::Q4_K, 8.5e-3}, {GgmlType::Q3_K, 3.8e-2}, {GgmlType::Q2_K, 1.6e-1},
                    {GgmlType::IQ4_NL, 9.3e-3}, {GgmlType::IQ4_XS, 9.5e-3}, {GgmlType::IQ2_XXS, 1.7e-1},
                    {GgmlType::IQ2_XS, 1.3e-1}, {GgmlType::IQ2_S, 9.4e-2}}) {
        SCOPED_TRACE(type_name(b.t));
        double worst = 0;
        for (int rep = 0; rep < 8; ++rep) {
            std::vector<float> x = random_row(rng, n), y(static_cast<size_t>(n));
            std::vector<uint8_t> q = quantized(b.t, x);
            dequantize_row_isa(Isa::Scalar, b.t, q.data(), y.data(), n);
            worst = nan_max(worst, nmse(y.data(), x.data(), n));
        }
        RecordProperty(std::string("nmse_") + type_name(b.t), std::to_string(worst));
        EXPECT_LE(worst, b.nmse);
        std::printf("  %-5s quantize NMSE (worst of 8): %.3g (bound %.3g)\n", type_name(b.t), worst, b.nmse);
    }
}

// IQ4_NL / IQ4_XS (our own search, no llama.cpp bytes to match): every element takes the level nearest
// to x / dl for the scale as stored, each IQ4_XS super-block's largest group scale is the -32 end (d a
// normal fp16), and IQ4_NL's levels beat Q4_0's uniform ones in the same 18 bytes on every row.
TEST(Quantize, Iq4NearestLevelsForStoredScales) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 4096;
    auto half = [](const uint8_t* p) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        return fp16_to_f32(h);
    };
    // Group of 32 at qs (16 bytes) with scale dl: each level as near to x / dl as any other.
    auto check_group = [&](const float* x, const uint8_t* qs, float dl, int64_t at) {
        if (dl == 0.f) return;
        for (int e = 0; e < 32; ++e) {
            const int q = e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4;
            const double v = double(x[e]) / dl, got = std::fabs(v - kIq4[q]);
            for (float l : kIq4) ASSERT_LE(got, std::fabs(v - l) + 1e-4 * (1 + std::fabs(v))) << "element " << at + e;
        }
    };
    for (int rep = 0; rep < 8; ++rep) {
        std::vector<float> x = random_row(rng, n, rep % 2 ? 1e-3f : 1.f);
        const std::vector<uint8_t> nl = quantized(GgmlType::IQ4_NL, x), xs = quantized(GgmlType::IQ4_XS, x);
        for (int64_t b = 0; b < n / 32; ++b)
            check_group(x.data() + 32 * b, &nl[size_t(18 * b + 2)], half(&nl[size_t(18 * b)]), 32 * b);
        for (int64_t b = 0; b < n / 256; ++b) {
            const uint8_t* blk = &xs[size_t(136 * b)];
            const float d = half(blk);
            const int sh = blk[2] | blk[3] << 8;
            int lmin = 0;
            for (int g = 0; g < 8; ++g) {
                const int ls = ((blk[4 + g / 2] >> (4 * (g % 2))) & 0xF) | ((sh >> (2 * g)) & 3) << 4;
                lmin = std::min(lmin, ls - 32);
                check_group(x.data() + 256 * b + 32 * g, blk + 8 + 16 * g, d * float(ls - 32), 256 * b + 32 * g);
            }
            if (std::fabs(d) >= 0x1p-14f) {  // a subnormal d (rows of 1e-3) is too coarse for -32 exactly
                ASSERT_EQ(lmin, -32) << "super-block " << b;
            }
        }
        std::vector<float> y(static_cast<size_t>(n));
        dequantize_row_isa(Isa::Scalar, GgmlType::IQ4_NL, nl.data(), y.data(), n);
        const double e_nl = nmse(y.data(), x.data(), n);
        dequantize_row_isa(Isa::Scalar, GgmlType::Q4_0, quantized(GgmlType::Q4_0, x).data(), y.data(), n);
        EXPECT_LT(e_nl, nmse(y.data(), x.data(), n)) << "rep " << rep;
    }
}

// Output bytes identical to llama.cpp v0.5.0's quantize_row_*_ref (hashes taken from its
// libggml-base on the same deterministic input).
TEST(Quantize, MatchesLlamaCppReference) {
    const int64_t n = 4096;
    std::vector<float> x(static_cast<size_t>(n));
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; ++i) {  // 24-bit LCG values times 2^-4 .. 2^4: exact everywhere
        s = s * 1664525u + 1013904223u;
        const float u = float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
        x[size_t(i)] = std::ldexp(u, int((i / 32) % 9) - 4);
    }
    struct Golden {
        GgmlType t;
        uint64_t fnv;
    };
    // Q5_0 / Q5_1: from ggml-quants.c's quantize_row_q5_*_ref built alone (the same harness gives
    // Q4_0's hash above).
    for (Golden g : {Golden{GgmlType::Q4_0, 0x2a868a23db221768ull}, {GgmlType::Q8_0, 0x84cf3ef107e5193aull},
                     {GgmlType::Q5_0, 0x6bf181674710b2ccull}, {GgmlType::Q5_1, 0x6f00ee1579224817ull},
                     {GgmlType::Q2_K, 0x09d883223629b917ull}, {GgmlType::Q3_K, 0x91dbd185cb415de8ull},
                     {GgmlType::Q4_K, 0x3c118b0eb5931529ull}, {GgmlType::Q5_K, 0x5437cccbde876a07ull},
                     {GgmlType::Q6_K, 0xfe655567af440fe5ull}}) {
        std::vector<uint8_t> q = quantized(g.t, x);
        uint64_t h = 1469598103934665603ull;
        for (uint8_t c : q) h = (h ^ c) * 1099511628211ull;
        EXPECT_EQ(h, g.fnv) << type_name(g.t);
    }
}

// Any finite input gives blocks whose values are finite: zeros, constants, huge, tiny, mixed.
TEST(Quantize, FiniteForExtremeInputs) {
    const int64_t n = 512;
    std::vector<std::vector<float>> rows;
    rows.emplace_back(n, 0.f);
    rows.emplace_back(n, -0.f);
    rows.emplace_back(n, 1.f);
    rows.emplace_back(n, -3e38f);
    rows.emplace_back(n, 1e-40f);  // float subnormal
    std::vector<float> mixed(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const float v[] = {0.f, 3e38f, -3e38f, 1e-30f, 1e20f, -1e-45f, 65504.f, 1e6f};
        mixed[size_t(i)] = v[i % 8];
    }
    rows.push_back(mixed);
    std::vector<float> one_spike(static_cast<size_t>(n), 0.f);
    one_spike[7] = 1e30f;
    rows.push_back(one_spike);
    for (GgmlType t : kernel_types()) {
        if (t == GgmlType::F16 || t == GgmlType::F32 || t == GgmlType::BF16) continue;
        for (size_t r = 0; r < rows.size(); ++r) {
            SCOPED_TRACE(std::string(type_name(t)) + " row " + std::to_string(r));
            std::vector<uint8_t> q = quantized(t, rows[r]);
            std::vector<float> y(static_cast<size_t>(n));
            dequantize_row_isa(Isa::Scalar, t, q.data(), y.data(), n);
            for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(std::isfinite(y[size_t(i)])) << "element " << i;
            if (r < 2) {
                for (float v : y) ASSERT_EQ(v, 0.f);
            }
        }
    }
}

// The dots of the types with 32-element activation blocks (IQ4_XS: one per group) against a double dot
// of the dequantized row with the dequantized prepared activations (d * q per block, layout in
// blocks.h), on every ISA: the integer sums are exact, so only float rounding may separate them. Bound:
// a block's float terms are at most 3 * max|w| * sum|a| of the block (Q5_1: |d * sum(q_w q_a)| <=
// (max - min) sum|q_a|, |m| <= max|w|), summed in float over up to 128 blocks: (128 + 3) * 2^-24 * 3
// ~ 2.3e-5 of sum_b max|w|_b * sum|a|_b.
TEST(Dot, Blocks32MatchDoubleDotOfDequantized) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::IQ4_NL,
                       GgmlType::IQ4_XS})
        for (int64_t n : t == GgmlType::IQ4_XS ? std::vector<int64_t>{256, 4096} : std::vector<int64_t>{32, 128, 4096})
            for (Isa isa : available_isas()) {
                SCOPED_TRACE(std::string(type_name(t)) + " " + isa_name(isa) + " n=" + std::to_string(n) +
                             " seed=" + std::to_string(seed));
                for (int rep = 0; rep < 16; ++rep) {
                    std::vector<float> x = random_row(rng, n, rep % 4 == 3 ? 1e-3f : 1.f);
                    // Shifted rows: Q5_1's min term dominates and must meet the right activation sums.
                    std::vector<float> wx = random_row(rng, n);
                    if (rep % 2) {
                        for (float& v : wx) v += 3.f;
                    }
                    const DotCheck c = dot_check(isa, t, wx, x, 32);
                    ASSERT_LE(std::fabs(c.got - c.exact), 2.3e-5 * c.block_scale) << "rep " << rep << ": " << c.got << " vs " << c.exact;
                }
            }
}
