// Internal to engine/tensor: the per-ISA kernel tables that kernels.cpp dispatches through.
// Each ISA file fills what it has; a null entry falls back to the next lower ISA, then to scalar.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/tensor/types.h"

namespace sluice::detail {

using DequantFn = void (*)(const void* src, float* dst, int64_t n);
using PrepareFn = void (*)(const float* x, void* act, int64_t n);
using DotFn = float (*)(const void* row, const void* act, int64_t n);
// Four dot products of one weight row with four prepared activation vectors: out[i] = dot(row,
// acts[i]). The row's blocks are decoded once for all four; each column's arithmetic is the same
// as the DotFn of the same ISA, so results are bit-identical to four dot() calls.
using Dot4Fn = void (*)(const void* row, const void* const* acts, int64_t n, float* out);
// A tile of `rows` weight rows (row + r * stride) x `cols` activation vectors: out[r * cols + c] =
// dot(row r, acts[c]), bit-identical like dot4; each activation load serves every row of the tile.
using TileFn = void (*)(const void* row, int64_t stride, const void* const* acts, int64_t n, float* out);
struct Tile {
    TileFn fn = nullptr;
    int rows = 0, cols = 0;
};

// The SIMD files write each dot product once, as a Dot4Fn-shaped kernel template over N columns
// whose columns each run the instruction sequence of N = 1 (their accumulators kept apart, the
// row's decoding shared); the table takes N = 1 through dot1 and N = 4 (or pairs of N = 2) as dot4.
// FOR_COL unrolls the column loops so per-column accumulator arrays stay in registers.
#define SLUICE_FOR_COL(c) _Pragma("GCC unroll 8") for (int c = 0; c < N; ++c)
// i32 sums are exact, so GCC reassociates a column's accumulation: with several columns it kept
// every product of a super-block apart (spilled to the stack) to add them as a tree at the end. An
// empty asm that claims to change the sum keeps one register and one add per product (a vector
// register operand: 128/256-bit values; any of the 32 under AVX-512).
#ifdef __AVX512F__
#define SLUICE_KEEP(v) __asm__("" : "+v"(v))
#else
#define SLUICE_KEEP(v) __asm__("" : "+x"(v))
#endif
template <Dot4Fn K>
float dot1(const void* row, const void* act, int64_t n) {
    float r;
    K(row, &act, n, &r);
    return r;
}
template <Dot4Fn K>
void pairs(const void* row, const void* const* acts, int64_t n, float* out) {
    K(row, acts, n, out);
    K(row, acts + 2, n, out + 2);
}

// Prompt products over repacked weights: `pack` interleaves 8 rows (row + r * stride; fewer than 8
// repeat the last) of n elements into a panel of `bytes(n)`; run[i] computes 2^i columns: out[c * 8 + r]
// = dot(row r, acts[c]), bit-identical to the dot of the table that holds the panel.
using PanelBytesFn = size_t (*)(int64_t n);
using PackFn = void (*)(const void* row, int64_t stride, int rows, int64_t n, void* panel);
using PanelFn = void (*)(const void* panel, const void* const* acts, int64_t n, float* out);
struct Panel {
    PanelBytesFn bytes = nullptr;
    PackFn pack = nullptr;
    PanelFn run[4] = {};  // 1, 2, 4, 8 columns
    int64_t min_cols = 0;  // from this many activations up (below, packing costs more than it saves)
};

struct TypeKernels {
    DequantFn dequant = nullptr;
    PrepareFn prepare = nullptr;
    DotFn dot = nullptr;
    Dot4Fn dot4 = nullptr;  // null: four dot() calls
    Tile tile{};            // null fn: dot4 row by row
    Panel panel{};          // null: tiles / dot4 for prompts too
};

TypeKernels scalar_kernels(GgmlType t);  // complete for every type with has_kernels
// SIMD parts, split by file: call the avx2 ones only if the CPU has AVX2+FMA+F16C, the avx512 ones
// only with AVX-512 F/BW/VL/VNNI as well.
DequantFn avx2_dequant(GgmlType t);
DotFn avx2_dot(GgmlType t);
PrepareFn avx2_prepare(GgmlType t);
Dot4Fn avx2_dot4(GgmlType t);
Tile avx2_tile(GgmlType t);
DequantFn avx512_dequant(GgmlType t);
DotFn avx512_dot(GgmlType t);
PrepareFn avx512_prepare(GgmlType t);
Dot4Fn avx512_dot4(GgmlType t);
Tile avx512_tile(GgmlType t);
Panel avx512_panel(GgmlType t);
// Dots in the panels' float order (per super-block: exact integer sums, then one float fma each), for
// the types with panels: prompt (panels) and decode (dot) then give bit-identical logits.
DotFn avx2_dot_canon(GgmlType t);  // Q4_K, Q5_K (AVX2 code: decode measured faster without VNNI)
DotFn avx512_dot_canon(GgmlType t);  // Q6_K, Q8_0
Dot4Fn avx512_dot4_canon(GgmlType t);

void quantize_row_ref(GgmlType t, const float* x, void* dst, int64_t n);
[[noreturn]] void unsupported(GgmlType t, const char* what);

}  // namespace sluice::detail
