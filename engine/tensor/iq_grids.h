// The lookup grids of ggml's IQ1_S / IQ1_M / IQ2_XXS / IQ2_XS / IQ2_S / IQ3_XXS / IQ3_S: a group of
// 8 weights (4 for IQ3) is one index into a fixed table of value patterns, part of the file format.
// iq_grids.inc holds each grid as macros of its levels and a 16-bit code per entry (read from
// llama.cpp's own dequantizer by bench/peer/gen_iq_grids.cpp; the GPU takes these arrays as a buffer);
// here they are expanded at compile time into ggml's byte forms, so kernels index them as llama.cpp's
// do: entry e's value j is byte j of grid[e].
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace sluice::blocks {

#include "engine/tensor/iq_grids.inc"
inline constexpr int8_t k_iq2xxs_levels[] = {IQ2XXS_LEVELS}, k_iq2xs_levels[] = {IQ2XS_LEVELS},
                        k_iq2s_levels[] = {IQ2S_LEVELS}, k_iq3xxs_levels[] = {IQ3XXS_LEVELS},
                        k_iq3s_levels[] = {IQ3S_LEVELS}, k_iq1s_levels[] = {IQ1S_LEVELS};
inline constexpr uint16_t k_iq2xxs_codes[] = {IQ2XXS_CODES}, k_iq2xs_codes[] = {IQ2XS_CODES},
                          k_iq2s_codes[] = {IQ2S_CODES}, k_iq3xxs_codes[] = {IQ3XXS_CODES},
                          k_iq3s_codes[] = {IQ3S_CODES}, k_iq1s_codes[] = {IQ1S_CODES};

namespace grid_detail {
template <typename Word, size_t N, size_t L>
constexpr std::array<Word, N> expand(const uint16_t (&codes)[N], const int8_t (&levels)[L]) {
    constexpr int width = int(sizeof(Word));
    constexpr int bits = L <= 4 ? 2 : 3;
    std::array<Word, N> out{};
    for (size_t e = 0; e < N; e++) {
        Word w = 0;
        for (int j = 0; j < width; j++)
            w |= Word(uint8_t(levels[(codes[e] >> (bits * j)) & ((1 << bits) - 1)])) << (8 * j);
        out[e] = w;
    }
    return out;
}
// Sign patterns of IQ2 / IQ3: 7 stored bits, the eighth makes the count of minus signs even.
constexpr std::array<uint8_t, 128> signs7() {
    std::array<uint8_t, 128> out{};
    for (int i = 0; i < 128; i++) out[i] = uint8_t(i | ((__builtin_popcount(i) & 1) << 7));
    return out;
}
}  // namespace grid_detail

// 8 unsigned bytes per entry (values 8, 25, 43).
inline constexpr auto kIq2xxsGrid = grid_detail::expand<uint64_t>(k_iq2xxs_codes, k_iq2xxs_levels);  // [256]
inline constexpr auto kIq2xsGrid = grid_detail::expand<uint64_t>(k_iq2xs_codes, k_iq2xs_levels);     // [512]
inline constexpr auto kIq2sGrid = grid_detail::expand<uint64_t>(k_iq2s_codes, k_iq2s_levels);        // [1024]
// 4 unsigned bytes per entry (IQ3_XXS: 4..62, IQ3_S: odd 1..15).
inline constexpr auto kIq3xxsGrid = grid_detail::expand<uint32_t>(k_iq3xxs_codes, k_iq3xxs_levels);  // [256]
inline constexpr auto kIq3sGrid = grid_detail::expand<uint32_t>(k_iq3s_codes, k_iq3s_levels);        // [512]
// 8 signed bytes per entry (-1, 0, 1), shared by IQ1_S and IQ1_M.
inline constexpr auto kIq1sGrid = grid_detail::expand<uint64_t>(k_iq1s_codes, k_iq1s_levels);  // [2048]
// ggml's ksigns_iq2xs: sign byte of a 7-bit sign index (bit j set: value j negative).
inline constexpr auto kIqSigns = grid_detail::signs7();
inline constexpr float kIq1Delta = 0.125f;  // IQ1_S / IQ1_M: values are grid + or - this

}  // namespace sluice::blocks
