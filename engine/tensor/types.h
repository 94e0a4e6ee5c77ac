// ggml tensor types as they appear in GGUF files: ids, block sizes, bytes per block, names.
#pragma once
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace sluice {

// Ids are ggml's (ggml.h, llama.cpp v0.5.0); gaps are types ggml removed.
enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
    IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};

struct TypeInfo {
    const char* name;      // ggml's lower-case name: "q4_K"
    int64_t block_size;    // elements per block
    int64_t type_size;     // bytes per block
    bool has_kernels;      // sluice can dequantize / dot this type
};

// nullopt for an id no ggml version defines (bad input, not a crash).
std::optional<TypeInfo> type_info(uint32_t id);
const TypeInfo& type_info(GgmlType t);  // t must be a known type
inline const char* type_name(GgmlType t) { return type_info(t).name; }
// Parses "Q4_K", "q4_k", "f16"...; nullopt if unknown.
std::optional<GgmlType> type_from_name(std::string_view name);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t row_bytes(GgmlType t, int64_t n) {
    const TypeInfo& ti = type_info(t);
    return n / ti.block_size * ti.type_size;
}

// IEEE half and bfloat16 <-> float (scalar; SIMD paths convert in bulk).
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);  // round to nearest even
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
uint16_t f32_to_bf16(float f);  // round to nearest even, NaN kept

}  // namespace sluice
