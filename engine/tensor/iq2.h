// Internal to engine/tensor: IQ2_XXS / IQ2_XS / IQ2_S (layouts in blocks.h). How each block holds a
// piece of 8 values, for the scalar kernels (iq2_ref.cpp; the AVX2 dots in dot_iq2_avx2.cpp decode a
// group of 4 pieces at once); and the entry points of the three files, hooked into the tables by
// kernels_ref.cpp, dot_avx2.cpp and quantize.cpp.
#pragma once
#include <cstdint>
#include <cstring>

#include "engine/tensor/blocks.h"
#include "engine/tensor/iq_grids.h"
#include "engine/tensor/kernels_isa.h"

namespace sluice::detail {

// Piece l (0..3) of group g (0..7): its grid entry (byte j: the magnitude of value j), its signs (bit
// j: value j negative) and the 4-bit ls of its scale, d * (0.5 + ls) / 4.
struct Iq2Piece {
    uint64_t grid;
    uint8_t signs;
    int ls;
};

static inline Iq2Piece iq2_piece(const blocks::IQ2_XXS& b, int g, int l) {
    uint32_t aux[2];  // grid indices, then sign indices and ls
    std::memcpy(aux, b.qs + 4 * g, sizeof aux);
    return {blocks::kIq2xxsGrid[(aux[0] >> (8 * l)) & 255], blocks::kIqSigns[(aux[1] >> (7 * l)) & 127],
            int(aux[1] >> 28)};
}

static inline Iq2Piece iq2_piece(const blocks::IQ2_XS& b, int g, int l) {
    const uint16_t q = b.qs[4 * g + l];
    return {blocks::kIq2xsGrid[q & 511], blocks::kIqSigns[q >> 9], (b.scales[g] >> (4 * (l / 2))) & 15};
}

static inline Iq2Piece iq2_piece(const blocks::IQ2_S& b, int g, int l) {
    const int idx = b.qs[4 * g + l] | ((b.qh[g] >> (2 * l)) & 3) << 8;
    return {blocks::kIq2sGrid[idx], b.qs[32 + 4 * g + l], (b.scales[g] >> (4 * (l / 2))) & 15};
}

// dequant and dot of the three types; prepare is the K-quants' (int8 blocks of 256, kernels_ref.cpp).
TypeKernels iq2_scalar_kernels(GgmlType t);
// AVX2 dot / dot4 of the three types (dot_iq2_avx2.cpp), on q8x256 activations.
DotFn avx2_dot_iq2(GgmlType t);
Dot4Fn avx2_dot4_iq2(GgmlType t);
// Our own search (iq2_quant.cpp): n / 256 blocks of type t from n floats.
void quantize_iq2(GgmlType t, const float* x, void* dst, int64_t n);

}  // namespace sluice::detail
