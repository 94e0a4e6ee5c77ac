// CPU kernels for every supported weight type: dequantize, quantize (reference), dot products and
// multithreaded matrix-vector / small-batch matrix products. Scalar reference versions are kept beside
// the SIMD ones (AVX2, AVX-512) and chosen at run time; tests compare the two.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/tensor/types.h"

namespace sluice {

class ThreadPool;

// A 2-D weight view: rows of `cols` elements, each row `row_bytes(type, cols)` bytes, contiguous.
// W (rows, cols) in math order = ggml ne = (cols, rows).
struct WeightView {
    GgmlType type;
    int64_t rows;
    int64_t cols;
    const void* data;
};

enum class Isa { Scalar, Avx2, Avx512 };  // Avx512 means F, BW, VL, DQ and VNNI
Isa detected_isa();       // best the CPU supports
Isa active_isa();         // what kernels use now (detected, unless forced)
// Tests and benches; SLUICE_ISA=scalar|avx2|avx512 sets it at start. An ISA the CPU lacks is
// replaced by detected_isa() (check active_isa() after forcing).
void force_isa(Isa isa);
bool isa_available(Isa isa);
// Benches: off makes matmul_jobs use four dot() calls where a dot4 kernel exists (same results).
void enable_dot4(bool on);
// Benches: off makes matmul_jobs use dot4 row by row where a tile kernel (several rows x several
// columns) exists (same results). SLUICE_TILE=0 at start turns it off too. Tiles need dot4 on.
void enable_tile(bool on);
// Benches: off makes matmul_jobs use dot4 where a repacked panel kernel exists (Q4_K, Q5_K, Q6_K, Q8_0
// on AVX-512; same results). SLUICE_PANEL=0 at start turns it off too. Panels need tiles on.
void enable_panel(bool on);
const char* isa_name(Isa isa);

// src: n/block_size blocks -> dst: n floats. n must be a multiple of the block size.
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);
// Reference quantizer (rounding as llama.cpp's quantize_row_*_ref; IQ4_NL / IQ4_XS and the grid types
// IQ1 / IQ2 / IQ3 our own search). Used by writers and tests.
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

// Activations prepared once per vector for a weight type's dot product: F32/F16/BF16 keep floats;
// Q8_0/Q4_0/Q5_0/Q5_1/IQ4_NL/IQ4_XS get int8 blocks of 32 with a float scale and their sums, the
// K-quants and IQ1 / IQ2 / IQ3 types int8 blocks of 256 with per-16 sums (layouts in blocks.h), for integer dot
// products. `act` must be 4-byte aligned; the bytes are the same on every ISA.
size_t act_bytes(GgmlType weight_type, int64_t n);
void prepare_act(GgmlType weight_type, const float* x, void* act, int64_t n);
// dot(weight row, prepared activations) over n elements.
float vec_dot(GgmlType weight_type, const void* row, const void* act, int64_t n);
// Four dots of one row: out[i] = vec_dot(row, acts[i]), bit-identical, the row decoded once.
void vec_dot4(GgmlType weight_type, const void* row, const void* const* acts, int64_t n, float* out);

// The tile kernel of a type (prompt chunks): `rows` weight rows x `cols` activation vectors at once;
// 0 x 0 where the type has none on that ISA.
struct TileShape {
    int rows = 0, cols = 0;
};
TileShape tile_shape_isa(Isa isa, GgmlType weight_type);
// out[r * cols + c] = vec_dot(row + r * stride, acts[c]) for the tile's rows x cols, bit-identical.
void vec_tile_isa(Isa isa, GgmlType weight_type, const void* row, int64_t stride, const void* const* acts, int64_t n,
                  float* out);

// The same on an explicit ISA (must be available): tests compare each SIMD path with the scalar one.
void dequantize_row_isa(Isa isa, GgmlType t, const void* src, float* dst, int64_t n);
void prepare_act_isa(Isa isa, GgmlType weight_type, const float* x, void* act, int64_t n);
float vec_dot_isa(Isa isa, GgmlType weight_type, const void* row, const void* act, int64_t n);
void vec_dot4_isa(Isa isa, GgmlType weight_type, const void* row, const void* const* acts, int64_t n, float* out);

// y (rows) = W (rows, cols) @ x (cols). Prepares x once (in a per-thread scratch buffer), then
// splits rows over the pool's threads in contiguous chunks of >= 64 KiB of weights.
void matvec(const WeightView& w, const float* x, float* y, ThreadPool& pool);
// The same with activations already prepared for w.type (one prepare_act for several matrices that
// share x, e.g. an expert's gate and up).
void matvec_prepared(const WeightView& w, const void* act, float* y, ThreadPool& pool);
// Y (batch, rows) = X (batch, cols) @ W^T: each weight row is read once for the whole batch.
// Each element equals what matvec computes for that row of X (same kernels, bit-identical).
void matmul(const WeightView& w, const float* x, int64_t batch, float* y, ThreadPool& pool);

// Activations of a batch of vectors prepared for one weight type (prompt processing): row i at a
// 64-byte aligned stride. Reused across calls (the buffer only grows).
struct ActBatch {
    GgmlType type = GgmlType::F32;
    int64_t n = 0, cols = 0, stride = 0;
    std::vector<uint8_t> buf;
    // x (n_rows, n_cols) -> prepared rows, split over the pool.
    void prepare(GgmlType t, const float* x, int64_t n_rows, int64_t n_cols, ThreadPool& pool);
    const void* row(int64_t i) const { return base_ + i * stride; }

private:
    uint8_t* base_ = nullptr;
};

// One product of the batched (prompt) path: y[i * ldy + r] = dot(W row r, acts[i]) for i < n, r <
// w.rows. acts: n activation vectors prepared for w.type (any order: an expert's tokens).
struct MatmulJob {
    WeightView w;
    const void* const* acts;
    int64_t n;
    float* y;
    int64_t ldy;
};
// Several products as one parallel loop over all their weight rows (q/k/v of a chunk; the gate and up
// of every expert ready now): each weight row is read once and meets all its activations.
void matmul_jobs(const MatmulJob* jobs, int64_t n_jobs, ThreadPool& pool);

}  // namespace sluice
