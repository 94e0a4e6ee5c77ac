#include "engine/tensor/types.h"

#include <cctype>
#include <cmath>
#include <string>

namespace sluice {

namespace {

struct Entry {
    uint32_t id;
    TypeInfo info;
};

// Block layouts from ggml-common.h (llama.cpp v0.5.0).
constexpr Entry kTypes[] = {
    {0, {"f32", 1, 4, true}},         {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},      {3, {"q4_1", 32, 20, false}},
    {6, {"q5_0", 32, 22, true}},      {7, {"q5_1", 32, 24, true}},
    {8, {"q8_0", 32, 34, true}},      {9, {"q8_1", 32, 36, false}},
    {10, {"q2_K", 256, 84, true}},    {11, {"q3_K", 256, 110, true}},
    {12, {"q4_K", 256, 144, true}},   {13, {"q5_K", 256, 176, true}},
    {14, {"q6_K", 256, 210, true}},   {15, {"q8_K", 256, 292, false}},
    {16, {"iq2_xxs", 256, 66, true}}, {17, {"iq2_xs", 256, 74, true}},
    {18, {"iq3_xxs", 256, 98, true}}, {19, {"iq1_s", 256, 50, true}},
    {20, {"iq4_nl", 32, 18, true}},   {21, {"iq3_s", 256, 110, true}},
    {22, {"iq2_s", 256, 82, true}},   {23, {"iq4_xs", 256, 136, true}},
    {24, {"i8", 1, 1, false}},        {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},       {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},       {29, {"iq1_m", 256, 56, true}},
    {30, {"bf16", 1, 2, true}},       {34, {"tq1_0", 256, 54, false}},
    {35, {"tq2_0", 256, 66, false}},  {39, {"mxfp4", 32, 17, false}},
    {40, {"nvfp4", 64, 36, false}},   {41, {"q1_0", 128, 18, false}},
    {42, {"q2_0", 64, 18, false}},
};

}  // namespace

std::optional<TypeInfo> type_info(uint32_t id) {
    for (const Entry& e : kTypes)
        if (e.id == id) return e.info;
    return std::nullopt;
}

const TypeInfo& type_info(GgmlType t) {
    for (const Entry& e : kTypes)
        if (e.id == uint32_t(t)) return e.info;
    static const TypeInfo bad{"?", 1, 0, false};
    return bad;
}

std::optional<GgmlType> type_from_name(std::string_view name) {
    std::string lower;
    for (char c : name) lower += char(std::tolower(static_cast<unsigned char>(c)));
    for (const Entry& e : kTypes) {
        std::string n = e.info.name;
        for (char& c : n) c = char(std::tolower(static_cast<unsigned char>(c)));
        if (n == lower) return GgmlType(e.id);
    }
    return std::nullopt;
}

float fp16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: renormalise
            int e = -1;
            do { man <<= 1; ++e; } while (!(man & 0x400));
            u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | man << 13;
    } else {
        u = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_fp16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000u)  // inf or nan
        return uint16_t(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u)  // rounds to >= 65520: overflow to inf
        return uint16_t(sign | 0x7c00);
    if (ax < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        float a;
        std::memcpy(&a, &ax, 4);
        // 2^-24 is the subnormal step; nearbyint rounds half to even.
        return uint16_t(sign | uint32_t(std::nearbyint(a * 16777216.0f)));
    }
    uint32_t mant_odd = (ax >> 13) & 1;
    ax += 0xfff + mant_odd;  // round to nearest even on the 13 dropped bits
    return uint16_t(sign | ((ax - 0x38000000u) >> 13));
}

uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
}

}  // namespace sluice
