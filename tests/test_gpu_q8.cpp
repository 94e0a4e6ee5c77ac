// The integer-dot path: x quantized to int8 per 32 (quant_q8.comp) and the matvec's _q8 variants
// (Q4_K, Q5_K) that read it. quant_q8 is checked against the CPU's Q8 rounding; the matvecs against a
// double-precision product of the dequantized weights and the GPU's own int8 x (so what remains is
// float rounding, bounded as tightly as the float matvecs), and against the float x within what
// rounding x to int8 can change (|x - d q| <= d / 2 per element). lavapipe implements shaderIntegerDotProduct (without hardware), so CI runs it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <tuple>

#include "engine/blocks.h"
#include "engine/tensor/kernels.h"
#include "tests/gpu_test_util.h"
#include "tests/kernels_test_util.h"

namespace sluice {
namespace {

using namespace gputest;
using test::fresh_seed;
using test::nmse;
using test::random_row;

struct Quantized {
    std::vector<int8_t> q;
    std::vector<float> d, sum;  // per block of 32: d, d * sum(q)
    std::vector<float> deq;     // d * q
};

// The mirror of n floats (offset 0) as the GPU wrote it.
Quantized download_mirror(const gpu::Buffer& b, size_t n) {
    Quantized m;
    m.q.resize(n);
    ctx().download(b, 0, m.q.data(), n);
    std::vector<float> ds(n / 32 * 2);
    ctx().download(b, size_t(gpu::xq_soff(n)) * 8, ds.data(), ds.size() * 4);
    for (size_t i = 0; i < n / 32; ++i) {
        m.d.push_back(ds[2 * i]);
        m.sum.push_back(ds[2 * i + 1]);
    }
    for (size_t i = 0; i < n; ++i) m.deq.push_back(m.d[i / 32] * float(m.q[i]));
    return m;
}

// x's mirror on the GPU: quantize_q8 of a float buffer.
struct Mirror {
    gpu::Buffer x, q;
    gpu::Xq xq;
};
Mirror mirror(const std::vector<float>& x) {
    Mirror m{to_gpu(x), ctx().alloc(size_t(gpu::xq_bytes(x.size())), gpu::Mem::Device, "int8 x"), {}};
    m.xq = {&m.q, gpu::xq_soff(x.size())};
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::quantize_q8(cmd, {&m.x}, m.xq, uint32_t(x.size()));
    cmd.end();
    cmd.run();
    return m;
}

bool has_int_dot() {
    if (ctx().info().int_dot) return true;
    ADD_FAILURE() << ctx().info().name << " lacks shaderIntegerDotProduct: the _q8 matvecs cannot run";
    return false;
}

// Options of a fused gate + up product over k experts (ids; outputs y_stride floats apart) with int8 x.
gpu::MatvecOpts experts_glu(uint32_t k, const gpu::Buffer& ids, uint32_t y_stride, const gpu::Mat& up, const gpu::Xq& xq) {
    gpu::MatvecOpts o;
    o.n_mats = k;
    o.ids = &ids;
    o.y_mat_stride = y_stride;
    o.swiglu_up = &up;
    o.xq = &xq;
    return o;
}

// One matvec() recorded and run.
void run_matvec(const gpu::Mat& w, gpu::Vec x, gpu::Vec y, const gpu::MatvecOpts& o) {
    gpu::Buffer step = step_buffer(0);
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::matvec(cmd, w, x, y, step, o);
    cmd.end();
    cmd.run();
}

std::vector<double> ref_matvec(const float* w, const float* x, int64_t rows, int64_t cols) {
    std::vector<double> y(size_t(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[size_t(r)] += double(w[r * cols + c]) * x[c];
    return y;
}
std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// n matrices (rows, cols) of type t, really quantized: bytes and dequantized floats (gputest's pool of
// blocks: the grid types' searches are slow).
void random_mats(std::mt19937& rng, GgmlType t, int64_t n, int64_t rows, int64_t cols, std::vector<uint8_t>& bytes,
                 std::vector<float>& deq) {
    RandomMats m = gputest::random_mats(rng, t, n, rows, cols);
    bytes.swap(m.bytes);
    deq.swap(m.deq);
}

// Nearest with ties away from zero, d = max|x| / 127 (the CPU's Q8 quantization), and d * sum(q).
// The GPU may divide less exactly (Vulkan allows 2.5 ulp), so a value landing on a rounding boundary
// may differ by one step: at most a few of 4096.
TEST(GpuQ8, QuantizeMatchesTheCpuRounding) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    auto x = random_row(rng, 4096, 1.0f);
    std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block: d = 0, q = 0
    x[200] = 3.5f;                                      // a block whose max sits on a lane other than 0
    const Mirror m = mirror(x);
    const Quantized got = download_mirror(m.q, x.size());
    int off_by_one = 0;
    for (size_t b = 0; b < x.size() / 32; ++b) {
        float amax = 0, qsum = 0;
        for (size_t i = 32 * b; i < 32 * b + 32; ++i) amax = std::max(amax, std::fabs(x[i]));
        for (size_t i = 32 * b; i < 32 * b + 32; ++i) qsum += float(got.q[i]);
        const float d = amax / 127;
        EXPECT_NEAR(got.d[b], d, 1e-6f * d) << "block " << b;
        EXPECT_FLOAT_EQ(got.sum[b], got.d[b] * qsum) << "block " << b;
        for (size_t i = 32 * b; i < 32 * b + 32; ++i) {
            const float want = d ? std::round(x[i] / d) : 0.0f;
            const int diff = std::abs(int(got.q[i]) - int(want));
            EXPECT_LE(diff, 1) << "element " << i;
            off_by_one += diff;
        }
    }
    EXPECT_LE(off_by_one, 4);
    for (size_t i = 64; i < 96; ++i) ASSERT_EQ(got.q[i], 0);
    EXPECT_EQ(got.d[2], 0.0f);
}

// lavapipe has VK_EXT_subgroup_size_control with one size: pipelines require it only when asked
// (SLUICE_GPU_PIN_SUBGROUP=1, the ctest entries GpuPinnedSubgroup.*), as devices of varying size do.
TEST(GpuQ8, SubgroupSizePinnedWhereAsked) {
    if (!ctx().info().is_cpu) GTEST_SKIP() << "checked on lavapipe, whose subgroup size is fixed";
    const char* e = std::getenv("SLUICE_GPU_PIN_SUBGROUP");
    EXPECT_EQ(ctx().info().pin_subgroup, e && *e == '1');
}

class GpuQ8Types : public ::testing::TestWithParam<GpuType> {};

// Every workgroup shape on rows that are not a multiple of a workgroup's, one super-block, rows
// ending inside a step (1024 elements) and long rows.
TEST_P(GpuQ8Types, MatvecMatchesTheProductWithInt8X) {
    if (!has_int_dot()) return;
    const GpuType gt = GetParam();
    const GgmlType t = gt.ggml;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    // (team rows, k-split, wide): wide 1 is the _q8w variant (Q4_K, Q5_K; others ignore it)
    const std::tuple<uint32_t, int, int> variants[] = {{0, -1, 0}, {1, 0, 0}, {2, 0, 0}, {4, 0, 0}, {0, 4, 0}, {0, 8, 0},
                                                       {0, -1, 1}, {1, 0, 1}, {2, 0, 1}, {4, 0, 1}, {0, 4, 1}, {0, 8, 1}};
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
             {67, 512}, {4, 256}, {130, 1792}, {9, 1280}, {37, 7168}, {1, 768}, {35, 2048}, {13, 6144}}) {
        std::vector<uint8_t> bytes;
        std::vector<float> deq;
        random_mats(rng, t, 1, rows, cols, bytes, deq);
        to_stored(gt, bytes, cols);
        const auto x = random_row(rng, cols);
        const Mirror m = mirror(x);
        const Quantized xq = download_mirror(m.q, size_t(cols));
        const auto ref = ref_matvec(deq.data(), xq.deq.data(), rows, cols);
        const auto ref_float = to_float(ref_matvec(deq.data(), x.data(), rows, cols));
        for (auto [nr, ks, wide] : variants) {
            if (wide && cols % 256) continue;  // forced (o.wide = 1) for any Q4_K / Q5_K row, odd block counts included
            gpu::Buffer wb = to_gpu(bytes), yb = zeros(size_t(rows + 1));
            gpu::MatvecOpts o;
            o.team_rows = nr;
            o.ksplit = ks;
            o.wide = wide;
            o.xq = &m.xq;
            run_matvec({&wb, gt.id, 0, uint32_t(rows), uint32_t(cols)}, {&m.x}, {&yb}, o);
            const auto got = floats(yb, size_t(rows + 1));
            for (int64_t r = 0; r < rows; ++r) {
                double mag = 0, rounding = 0;  // rounding: |x - d q| <= d / 2 per element
                for (int64_t c = 0; c < cols; ++c) {
                    const double w = std::fabs(double(deq[size_t(r * cols + c)]));
                    mag += w * std::fabs(xq.deq[size_t(c)]);
                    rounding += w * xq.d[size_t(c / 32)] * 0.5;
                }
                EXPECT_LE(std::fabs(got[size_t(r)] - ref[size_t(r)]), 4e-6 * mag) << "row " << r << " r" << nr << " k" << ks << " w" << wide;
                EXPECT_LE(std::fabs(got[size_t(r)] - ref_float[size_t(r)]), rounding * 1.001 + 4e-6 * mag) << "row " << r << " vs float x";
            }
            if (rows > 1) {
                const auto want = to_float(ref);
                EXPECT_LT(nmse(got.data(), want.data(), rows), 1e-10) << rows << "x" << cols << " r" << nr << " k" << ks << " w" << wide;
            }
            EXPECT_EQ(got[size_t(rows)], 0.0f) << "wrote past the last row, r" << nr << " k" << ks;
        }
    }
}

// The small-batch product with int8 x (matmul_<type>_q8, GPU prompt batches): columns x_col_stride
// apart in one mirror, each against the double product with its own int8 column.
TEST_P(GpuQ8Types, MatmulMatchesTheProductWithInt8X) {
    if (!has_int_dot()) return;
    const GpuType gt = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t rows = 45, cols = 768;
    std::vector<uint8_t> bytes;
    std::vector<float> deq;
    random_mats(rng, gt.ggml, 1, rows, cols, bytes, deq);
    to_stored(gt, bytes, cols);
    for (int64_t nb : {2, 5, 8}) {
        const auto x = random_row(rng, nb * cols);
        const Mirror m = mirror(x);
        const Quantized xq = download_mirror(m.q, x.size());
        gpu::Buffer wb = to_gpu(bytes), yb = zeros(size_t(nb * rows));
        gpu::MatvecOpts o;
        o.n_cols = uint32_t(nb);
        o.x_col_stride = uint32_t(cols);
        o.y_col_stride = uint32_t(rows);
        o.xq = &m.xq;
        run_matvec({&wb, gt.id, 0, uint32_t(rows), uint32_t(cols)}, {&m.x}, {&yb}, o);
        const auto got = floats(yb, size_t(nb * rows));
        std::vector<float> ref;
        for (int64_t b = 0; b < nb; ++b) {
            const auto y = to_float(ref_matvec(deq.data(), &xq.deq[size_t(b * cols)], rows, cols));
            ref.insert(ref.end(), y.begin(), y.end());
        }
        EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), 1e-10) << nb << " columns";
    }
}

// Prompts' products over many columns: mm_<type> (mm.comp, tiles of 64 rows x 64 columns) and the
// float16 tiles (mm.comp's, mmt.comp's 128 x 64 / 128) for Q4_K, Q5_K, Q6_K and repacked Q8_0, chunks
// of matmul_* for ggml's Q8_0. Rows and columns that end
// inside a tile, column strides beyond the row, an x offset, accumulation into y, and nothing written
// outside the columns' rows.
TEST_P(GpuQ8Types, TiledMatmulMatchesTheProductWithInt8X) {
    if (!has_int_dot()) return;
    const GpuType gt = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [rows, cols, nb] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {45, 768, 9}, {64, 256, 32}, {130, 1280, 33}, {67, 512, 64}, {200, 1024, 70}, {1, 256, 40}, {260, 512, 150}}) {
        std::vector<uint8_t> bytes;
        std::vector<float> deq;
        random_mats(rng, gt.ggml, 1, rows, cols, bytes, deq);
        to_stored(gt, bytes, cols);
        const int64_t xs = cols + 64, x0 = 32, ys = rows + 3;  // column strides, x's offset (floats)
        const auto x = random_row(rng, x0 + nb * xs);
        const Mirror m = mirror(x);
        const Quantized xq = download_mirror(m.q, x.size());
        for (int variant = 0; variant < (ctx().info().coopmat ? 10 : 6); ++variant) {
            // mm_*, mmh_* (mmc_'s float16 tiles, plain arithmetic), mmth_* (mmt_'s), then with tensor
            // cores mmc_* and mmt_*
            const bool acc = variant & 1, tensor = variant >= 2, big = variant / 2 == 2 || variant / 2 == 4;
            const char* kinds[] = {"mm", "mmh", "mmth", "mmc", "mmt"};
            setenv("SLUICE_GPU_COOPMAT", variant < 2 ? "0" : variant < 6 ? "scalar" : "1", 1);
            setenv("SLUICE_GPU_MMT", big ? "1" : "0", 1);
            const auto y0 = random_row(rng, nb * ys);
            gpu::Buffer wb = to_gpu(bytes), yb = to_gpu(y0);
            gpu::MatvecOpts o;
            o.n_cols = uint32_t(nb);
            o.x_col_stride = uint32_t(xs);
            o.y_col_stride = uint32_t(ys);
            o.accumulate = acc;
            o.xq = &m.xq;
            run_matvec({&wb, gt.id, 0, uint32_t(rows), uint32_t(cols)}, {&m.x, uint32_t(x0)}, {&yb}, o);
            // The same bits a second time on a GPU: a race between a tile's staging and its products
            // (which lavapipe, a CPU driver, is unlikely to show) would not give them.
            gpu::Buffer yb2 = to_gpu(y0);
            if (!ctx().info().is_cpu) run_matvec({&wb, gt.id, 0, uint32_t(rows), uint32_t(cols)}, {&m.x, uint32_t(x0)}, {&yb2}, o);
            unsetenv("SLUICE_GPU_COOPMAT");
            unsetenv("SLUICE_GPU_MMT");
            const auto got = floats(yb, y0.size()), again = ctx().info().is_cpu ? got : floats(yb2, y0.size());
            EXPECT_EQ(std::memcmp(got.data(), again.data(), got.size() * 4), 0)
                << rows << "x" << cols << ", " << nb << " columns" << (acc ? ", accumulate" : "") << ", "
                << (variant < 2 ? "mm" : variant < 4 ? "mmh" : variant < 6 ? "mmth" : variant < 8 ? "mmc" : "mmt")
                << ": not the same twice";
            std::vector<float> g, ref;
            for (int64_t b = 0; b < nb; ++b) {
                const auto y = ref_matvec(deq.data(), &xq.deq[size_t(x0 + b * xs)], rows, cols);
                for (int64_t r = 0; r < rows; ++r) {
                    ref.push_back(float(y[size_t(r)] + (acc ? y0[size_t(b * ys + r)] : 0.0)));
                    g.push_back(got[size_t(b * ys + r)]);
                }
                for (int64_t r = rows; r < ys; ++r)
                    ASSERT_EQ(got[size_t(b * ys + r)], y0[size_t(b * ys + r)]) << "wrote past row " << rows << ", column " << b;
            }
            // The float16 kinds multiply float16 weights and x: their rounding (2^-11 relative) leaves
            // an NMSE of ~1e-7.
            const bool f16 = tensor && nb > 32;
            EXPECT_LT(nmse(g.data(), ref.data(), int64_t(ref.size())), f16 ? 2e-6 : 1e-10)
                << rows << "x" << cols << ", " << nb << " columns" << (acc ? ", accumulate" : "") << ", " << kinds[variant / 2];
        }
    }
}

// The tiles over a batch of matrices (workgroup z; deepseek2's per-head Wk_b and Wv_b over a prompt's
// tokens): column b of matrix z reads x at z cols + b (n_mats cols) and writes y at z rows + b
// (n_mats rows + 5), in every tile kind; rows of 128 for ggml's 32-blocks (Wk_b's 128 columns of
// Q8_0: one step), 256 for the rest.
TEST_P(GpuQ8Types, TiledMatmulOverABatchOfMatrices) {
    if (!has_int_dot()) return;
    const GpuType gt = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t cols = gpu::gpu_type(gt.id)->block_elems == 32 && gt.id != WT_Q8_0R ? 128 : 256, nm = 3;
    for (auto [rows, nb] : std::vector<std::pair<int64_t, int64_t>>{{130, 40}, {64, 129}}) {
        std::vector<uint8_t> bytes;
        std::vector<float> deq;
        random_mats(rng, gt.ggml, nm, rows, cols, bytes, deq);
        to_stored(gt, bytes, cols);
        const int64_t xcs = nm * cols, ycs = nm * rows + 5;
        const auto x = random_row(rng, nb * xcs);
        const Mirror m = mirror(x);
        const Quantized xq = download_mirror(m.q, x.size());
        for (int variant = 0; variant < (ctx().info().coopmat ? 5 : 3); ++variant) {
            const char* kinds[] = {"mm", "mmh", "mmth", "mmc", "mmt"};
            setenv("SLUICE_GPU_COOPMAT", variant == 0 ? "0" : variant < 3 ? "scalar" : "1", 1);
            setenv("SLUICE_GPU_MMT", variant == 2 || variant == 4 ? "1" : "0", 1);
            const auto y0 = random_row(rng, nb * ycs);
            gpu::Buffer wb = to_gpu(bytes), yb = to_gpu(y0);
            gpu::MatvecOpts o;
            o.n_cols = uint32_t(nb);
            o.x_col_stride = uint32_t(xcs);
            o.y_col_stride = uint32_t(ycs);
            o.n_mats = uint32_t(nm);
            o.x_mat_stride = uint32_t(cols);
            o.y_mat_stride = uint32_t(rows);
            o.xq = &m.xq;
            run_matvec({&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), uint64_t(bytes.size()) / uint64_t(nm)}, {&m.x}, {&yb}, o);
            unsetenv("SLUICE_GPU_COOPMAT");
            unsetenv("SLUICE_GPU_MMT");
            const auto got = floats(yb, y0.size());
            std::vector<float> g, ref;
            for (int64_t b = 0; b < nb; ++b) {
                for (int64_t z = 0; z < nm; ++z) {
                    const auto y = ref_matvec(deq.data() + z * rows * cols, &xq.deq[size_t(b * xcs + z * cols)], rows, cols);
                    for (int64_t r = 0; r < rows; ++r) {
                        ref.push_back(float(y[size_t(r)]));
                        g.push_back(got[size_t(b * ycs + z * rows + r)]);
                    }
                }
                for (int64_t r = nm * rows; r < ycs; ++r)
                    ASSERT_EQ(got[size_t(b * ycs + r)], y0[size_t(b * ycs + r)]) << "wrote past the matrices' rows, column " << b;
            }
            EXPECT_LT(nmse(g.data(), ref.data(), int64_t(ref.size())), variant > 0 ? 2e-6 : 1e-10)
                << rows << "x" << cols << ", " << nb << " columns, " << kinds[variant];
        }
    }
}

// A prompt batch's routed experts grouped by expert (moe_group, mm_<type>_ids): every (token, slot)
// entry's product with its expert, x by token (gate, up) or by entry (down), against the double
// product with the int8 columns; batches with many entries per expert (several tiles each), with
// most experts unused, one token, and every tile kind: int8 tiles of 16 and 32 entries, the tensor-core
// kinds' 64 x 32 and 128 x 64.
TEST_P(GpuQ8Types, GroupedExpertsMatchTheProductWithInt8X) {
    if (!has_int_dot()) return;
    const GpuType gt = GetParam();
    if (!gpu::has_mm(ctx(), gt.id)) return;  // devices without integer dots
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [n_exp, k, B, rows, cols] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
             {8, 2, 64, 70, 256}, {128, 8, 64, 64, 512}, {5, 5, 1, 33, 768}, {16, 4, 37, 130, 256}}) {
        std::vector<uint8_t> bytes;
        std::vector<float> deq;
        random_mats(rng, gt.ggml, n_exp, rows, cols, bytes, deq);
        to_stored(gt, bytes, cols);
        const int64_t ids_stride = k + 3;  // as the batch's router rows: ids among other values
        std::vector<int32_t> ids(size_t(B * ids_stride), -1);
        for (int64_t j = 0; j < B; ++j) {
            std::vector<int32_t> all(static_cast<size_t>(n_exp));
            std::iota(all.begin(), all.end(), 0);
            std::shuffle(all.begin(), all.end(), rng);
            std::copy(all.begin(), all.begin() + k, ids.begin() + j * ids_stride);
        }
        for (bool by_token : {true, false}) {
            const int64_t n_x = by_token ? B : B * k, xs = cols + 32, ys = rows + 5;
            const auto x = random_row(rng, n_x * xs);
            const Mirror m = mirror(x);
            const Quantized xq = download_mirror(m.q, x.size());
            // int8 tiles of 16 and 32; the tensor-core kinds' (mmc_: 64 x 32, mmt_: 128 x 64) in plain
            // arithmetic (mmh_, mmth_), and on tensor cores where the device has them
            const bool cm = ctx().info().coopmat;
            for (int variant = 0; variant < (cm ? 6 : 4); ++variant) {
                const uint32_t kind = variant < 2 ? 0 : 1 + variant % 2, bn = variant == 0 ? 16 : kind == 2 ? 64 : 32;
                if (variant >= 2) setenv("SLUICE_GPU_COOPMAT", variant < 4 ? "scalar" : "1", 1);
                gpu::Buffer wb = to_gpu(bytes), ib = to_gpu(ids), yb = zeros(size_t(B * k * ys));
                gpu::ExpertGroups g{nullptr, uint32_t(B), uint32_t(k), uint32_t(n_exp), bn, kind};
                gpu::Buffer gb = ctx().alloc(size_t(g.words()) * 4, gpu::Mem::Device, "expert groups");
                g.buf = &gb;
                gpu::Buffer step = step_buffer(0);
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::moe_group(cmd, {&ib}, uint32_t(ids_stride), g);
                gpu::matmul_experts(cmd, {&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), uint64_t(bytes.size() / size_t(n_exp))},
                                    {&m.x}, uint32_t(xs), by_token, {&yb}, uint32_t(ys), m.xq, g);
                cmd.end();
                cmd.run();
                unsetenv("SLUICE_GPU_COOPMAT");
                const auto got_all = floats(yb, size_t(B * k * ys));
                std::vector<float> got, ref;
                for (int64_t e = 0; e < B * k; ++e) {
                    const int64_t j = e / k, ex = ids[size_t(j * ids_stride + e % k)], col = by_token ? j : e;
                    const auto y = ref_matvec(&deq[size_t(ex * rows * cols)], &xq.deq[size_t(col * xs)], rows, cols);
                    for (int64_t r = 0; r < rows; ++r) {
                        ref.push_back(float(y[size_t(r)]));
                        got.push_back(got_all[size_t(e * ys + r)]);
                    }
                    for (int64_t r = rows; r < ys; ++r) ASSERT_EQ(got_all[size_t(e * ys + r)], 0.0f) << "wrote past row " << rows;
                }
                // the float16 kinds: their rounding (2^-11 relative) leaves an NMSE of ~1e-7
                EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), kind ? 2e-6 : 1e-10)
                    << n_exp << " experts, k " << k << ", " << B << " tokens, " << rows << "x" << cols << ", tiles of " << bn
                    << ", kind " << kind << (variant >= 4 ? " (tensor cores)" : "") << (by_token ? ", x by token" : ", x by entry");
            }
        }
    }
}

// x whose offset is not a multiple of 32 cannot use its mirror's blocks: the matvec reads the floats
// (bit for bit what it computes without a mirror) instead of failing.
TEST(GpuQ8, MisalignedXFallsBackToFloats) {
    if (!has_int_dot()) return;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t rows = 40, cols = 512, off = 4;
    std::vector<uint8_t> bytes;
    std::vector<float> deq;
    random_mats(rng, GgmlType::Q4_K, 1, rows, cols, bytes, deq);
    const auto x = random_row(rng, 32 + cols);  // mirrored whole; the matvec reads from float 4
    const Mirror m = mirror(x);
    gpu::Buffer wb = to_gpu(bytes), step = step_buffer(0);
    std::vector<float> ys[2];
    for (bool with_mirror : {false, true}) {
        gpu::Buffer yb = zeros(size_t(rows));
        gpu::MatvecOpts o;
        o.xq = with_mirror ? &m.xq : nullptr;
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::matvec(cmd, {&wb, uint32_t(GgmlType::Q4_K), 0, uint32_t(rows), uint32_t(cols)}, {&m.x, uint32_t(off)}, {&yb}, step, o);
        cmd.end();
        cmd.run();
        ys[with_mirror] = floats(yb, size_t(rows));
    }
    EXPECT_EQ(0, std::memcmp(ys[0].data(), ys[1].data(), size_t(rows) * 4));
}

// The routed experts' two forms with int8 x: gate + up fused (SwiGLU) over ids, and the weighted sum
// of downs (each expert its own x, x_mat_stride apart) with the residual add and the norm tail.
TEST_P(GpuQ8Types, ExpertsGluAndWeightedSumWithInt8X) {
    if (!has_int_dot()) return;
    const GpuType gt = GetParam();
    const GgmlType t = gt.ggml;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (const int64_t cols : {768, 2048}) {  // 2048: the _q8w variants
        SCOPED_TRACE(std::to_string(cols) + " columns");
        const int64_t n_exp = 4, rows = 37, k = 3;
        std::vector<uint8_t> gb, ub;
        std::vector<float> gd, ud;
        random_mats(rng, t, n_exp, rows, cols, gb, gd);
        random_mats(rng, t, n_exp, rows, cols, ub, ud);
        to_stored(gt, gb, cols);
        to_stored(gt, ub, cols);
        std::vector<uint8_t> both = gb;
        both.insert(both.end(), ub.begin(), ub.end());
        const std::vector<int32_t> id = {3, 0, 2};
        const std::vector<float> wt = {0.5f, 0.3f, 0.2f};
        std::vector<int32_t> idsbuf = {id[0], id[1], id[2], 0, 0, 0};
        std::memcpy(&idsbuf[3], wt.data(), 12);
        const uint64_t mat_bytes = uint64_t(rows * row_bytes(t, cols));
        gpu::Buffer wb = to_gpu(both), ib = to_gpu(idsbuf), step = step_buffer(0);
        const gpu::Mat gm{&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), mat_bytes};
        gpu::Mat um = gm;
        um.offset = gb.size();

        // GLU: one x for all k experts
        const auto x = random_row(rng, cols);
        const Mirror mx = mirror(x);
        const Quantized xq = download_mirror(mx.q, size_t(cols));
        std::vector<float> ref;
        for (int64_t j = 0; j < k; ++j) {
            const size_t e = size_t(id[size_t(j)] * rows * cols);
            const auto g = ref_matvec(&gd[e], xq.deq.data(), rows, cols), u = ref_matvec(&ud[e], xq.deq.data(), rows, cols);
            for (int64_t r = 0; r < rows; ++r) ref.push_back(float(g[size_t(r)] / (1 + std::exp(-g[size_t(r)])) * u[size_t(r)]));
        }
        for (uint32_t nr : {0u, 1u, 2u, 4u}) {  // rows per team of the _q8w GLU (others: theirs whatever this says)
            gpu::Buffer yb = zeros(size_t(k * rows));
            gpu::MatvecOpts o = experts_glu(uint32_t(k), ib, uint32_t(rows), um, mx.xq);
            o.team_rows = nr;
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::matvec(cmd, gm, {&mx.x}, {&yb}, step, o);
            cmd.end();
            cmd.run();
            const auto got = floats(yb, ref.size());
            EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), 1e-10) << "GLU, team rows " << nr;
        }

        // weighted sum of k experts' products, each of its own x, added to x0, then the norm tail
        const auto xs = random_row(rng, k * cols), x0 = random_row(rng, rows), nw = random_row(rng, rows);
        const Mirror ms = mirror(xs);
        const Quantized sq = download_mirror(ms.q, xs.size());
        std::vector<float> want = x0, want_hn(static_cast<size_t>(rows));
        for (int64_t j = 0; j < k; ++j) {
            const auto y = ref_matvec(&gd[size_t(id[size_t(j)] * rows * cols)], &sq.deq[size_t(j * cols)], rows, cols);
            for (int64_t r = 0; r < rows; ++r) want[size_t(r)] += float(wt[size_t(j)] * y[size_t(r)]);
        }
        rmsnorm(want_hn.data(), want.data(), nw.data(), rows, 1e-6f);
        for (int ks : {0, 4, 8}) {
            gpu::Buffer xb = to_gpu(x0), nb = to_gpu(nw), hb = zeros(size_t(rows + 1));
            gpu::MatvecOpts d;
            d.n_mats = k;
            d.x_mat_stride = cols;
            d.ids = &ib;
            d.sum_mats = true;
            d.sum_w_off = 3;
            d.accumulate = true;
            d.ksplit = ks;
            d.team_rows = ks ? 0 : 1;
            const gpu::Vec hn{&hb};
            d.norm_out = &hn;
            d.norm_w = {&nb};
            d.norm_eps = 1e-6f;
            d.norm_count = uint32_t(rows);
            d.xq = &ms.xq;
            gpu::Cmd c2(ctx());
            c2.begin();
            gpu::matvec(c2, gm, {&ms.x}, {&xb}, step, d);
            c2.end();
            c2.run();
            const auto gx = floats(xb, size_t(rows)), ghn = floats(hb, size_t(rows));
            EXPECT_LT(nmse(gx.data(), want.data(), rows), 1e-10) << "sum, k" << ks;
            EXPECT_LT(nmse(ghn.data(), want_hn.data(), rows), 1e-10) << "sum, k" << ks;
        }
    }
}

// Mirror blocks written on the GPU against the CPU's rounding of the floats beside them: d exact to
// a few ulp, q within one step on a rounding boundary (at most `max_off` of them), sum = d * sum q.
void expect_mirror_of(const std::vector<float>& h, const Quantized& got, size_t first, int max_off, const std::string& what) {
    int off_by_one = 0;
    for (size_t b = 0; b < h.size() / 32; ++b) {
        float amax = 0, qsum = 0;
        for (size_t i = 32 * b; i < 32 * b + 32; ++i) amax = std::max(amax, std::fabs(h[i]));
        EXPECT_NEAR(got.d[first / 32 + b], amax / 127, 1e-6f * amax / 127) << what << " block " << b;
        for (size_t i = 32 * b; i < 32 * b + 32; ++i) {
            const int q = got.q[first + i], diff = std::abs(q - int(std::round(h[i] * 127 / amax)));
            qsum += float(q);
            EXPECT_LE(diff, 1) << what << " element " << i;
            off_by_one += diff;
        }
        EXPECT_FLOAT_EQ(got.sum[first / 32 + b], got.d[first / 32 + b] * qsum) << what << " block " << b;
    }
    EXPECT_LE(off_by_one, max_off) << what;
}

// The norm tail's int8 mirror (MV_NORM_Q8): hn = rmsnorm(y) * w as before, and beside it hn's int8
// blocks as quant_q8 would write them (the CPU's rounding, within one step on a boundary), at an
// offset of 32 floats into hn's buffer; every workgroup shape, float and integer-dot producers.
TEST(GpuQ8, NormTailWritesTheInt8Mirror) {
    if (!has_int_dot()) return;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t rows = 320, cols = 512, off = 32;
    std::vector<uint8_t> bytes;
    std::vector<float> deq;
    random_mats(rng, GgmlType::Q4_K, 1, rows, cols, bytes, deq);
    const auto x = random_row(rng, cols), x0 = random_row(rng, rows), nw = random_row(rng, rows);
    const Mirror mx = mirror(x);
    for (bool q8 : {false, true})
        for (auto [nr, ks] : std::vector<std::pair<uint32_t, int>>{{1, 0}, {4, 0}, {0, 4}, {0, 8}}) {
            gpu::Buffer wb = to_gpu(bytes), yb = to_gpu(x0), nb = to_gpu(nw), hb = zeros(size_t(off + rows + 1)),
                        step = step_buffer(0);
            gpu::Buffer hq = ctx().alloc(size_t(gpu::xq_bytes(off + rows)), gpu::Mem::Device, "hn mirror");
            const gpu::Xq hxq{&hq, gpu::xq_soff(off + rows)};
            gpu::MatvecOpts o;
            o.accumulate = true;
            o.team_rows = nr;
            o.ksplit = ks;
            const gpu::Vec hn{&hb, uint32_t(off)};
            o.norm_out = &hn;
            o.norm_w = {&nb};
            o.norm_eps = 1e-6f;
            o.norm_count = uint32_t(off + rows);
            o.norm_q = &hxq;
            o.xq = q8 ? &mx.xq : nullptr;
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::matvec(cmd, {&wb, uint32_t(GgmlType::Q4_K), 0, uint32_t(rows), uint32_t(cols)}, {&mx.x}, {&yb}, step, o);
            cmd.end();
            cmd.run();
            const auto h = floats(hb, size_t(rows), size_t(off));
            expect_mirror_of(h, download_mirror(hq, size_t(off + rows)), size_t(off), 4,
                             "q8 " + std::to_string(q8) + " r" + std::to_string(nr) + " k" + std::to_string(ks));
        }
}

// Block tails (MV_QBLK): a residual product y = x0 + W x whose workgroups also write the int8 mirror
// of y * w (an rmsnorm's weights) and each block's sum of y^2 as they complete blocks of 32 rows, every
// workgroup shape; then products reading that mirror with the norm's scale applied (MV_XSS: plain,
// k-split, wide, GLU) against the double product of the downloaded mirror times 1 / rms(y); and a GLU
// over 3 experts whose tails write its output's plain mirror (the down projection's input).
TEST(GpuQ8, BlockTailsWriteTheMirrorAndTheReaderScalesIt) {
    if (!has_int_dot()) return;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t rows = 512, cols = 2048, off = 32, nb = rows / 32, rows2 = 96;
    const float eps = 1e-6f;
    std::vector<uint8_t> bytes, b2, b3;
    std::vector<float> deq, d2, d3;
    random_mats(rng, GgmlType::Q4_K, 1, rows, cols, bytes, deq);
    random_mats(rng, GgmlType::Q4_K, 1, rows2, rows, b2, d2);  // the readers: gate, then up
    random_mats(rng, GgmlType::Q4_K, 1, rows2, rows, b3, d3);
    std::vector<uint8_t> gu = b2;
    gu.insert(gu.end(), b3.begin(), b3.end());
    const auto x = random_row(rng, cols), x0 = random_row(rng, rows), nw = random_row(rng, rows);
    const Mirror mx = mirror(x);
    const Quantized xq = download_mirror(mx.q, size_t(cols));
    std::vector<float> want = x0;
    const auto p = ref_matvec(deq.data(), xq.deq.data(), rows, cols);
    for (int64_t r = 0; r < rows; ++r) want[size_t(r)] += float(p[size_t(r)]);
    for (auto [nr, ks, wide] : std::vector<std::tuple<uint32_t, int, int>>{{1, 0, 0}, {2, 0, 0}, {4, 0, 0}, {0, 4, 0}, {0, 8, 0},
                                                                          {2, 0, 1}, {4, 0, 1}, {0, 4, 1}}) {
        const std::string what = "r" + std::to_string(nr) + " k" + std::to_string(ks) + " w" + std::to_string(wide);
        gpu::Buffer wb = to_gpu(bytes), yb = to_gpu(x0), nbuf = to_gpu(nw), cb = zeros(size_t(2 * nb)), step = step_buffer(0);
        gpu::Buffer hq = ctx().alloc(size_t(gpu::xq_bytes(off + rows)), gpu::Mem::Device, "y * w mirror");
        const gpu::Xq hxq{&hq, gpu::xq_soff(off + rows)};
        gpu::MatvecOpts o;
        o.accumulate = true;
        o.team_rows = nr;
        o.ksplit = ks;
        o.wide = wide;
        o.xq = &mx.xq;
        o.qblk = {&hxq, uint32_t(off), {&cb, 0}, {&nbuf}, {&cb, uint32_t(nb)}};
        run_matvec({&wb, uint32_t(GgmlType::Q4_K), 0, uint32_t(rows), uint32_t(cols)}, {&mx.x}, {&yb}, o);
        const auto y = floats(yb, size_t(rows));
        EXPECT_LT(nmse(y.data(), want.data(), rows), 1e-10) << what;
        std::vector<float> h(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r) h[size_t(r)] = y[size_t(r)] * nw[size_t(r)];
        const Quantized hm = download_mirror(hq, size_t(off + rows));
        expect_mirror_of(h, hm, size_t(off), 4, what);
        const auto cnt = floats(cb, size_t(2 * nb));
        double total = 0;
        for (int64_t b = 0; b < nb; ++b) {
            double ss = 0;
            for (int64_t r = 32 * b; r < 32 * b + 32; ++r) ss += double(y[size_t(r)]) * y[size_t(r)];
            total += ss;
            uint32_t c;
            std::memcpy(&c, &cnt[size_t(b)], 4);
            EXPECT_EQ(c, 0u) << what << ": block " << b << "'s count not reset";
            EXPECT_NEAR(cnt[size_t(nb + b)], ss, 1e-5 * ss) << what << " block " << b;
        }
        if (nr != 4 || wide) continue;
        // readers of the mirror: y2 = W2 (mirror) / rms(y)
        const double scale = 1.0 / std::sqrt(total / double(rows) + eps);
        std::vector<double> g = ref_matvec(d2.data(), &hm.deq[size_t(off)], rows2, rows),
                            u = ref_matvec(d3.data(), &hm.deq[size_t(off)], rows2, rows);
        std::vector<float> want2, want_glu;
        for (int64_t r = 0; r < rows2; ++r) {
            const double a = g[size_t(r)] * scale, b = u[size_t(r)] * scale;
            want2.push_back(float(a));
            want_glu.push_back(float(a / (1 + std::exp(-a)) * b));
        }
        gpu::Buffer gb = to_gpu(gu);
        const gpu::Mat gm{&gb, uint32_t(GgmlType::Q4_K), 0, uint32_t(rows2), uint32_t(rows)};
        gpu::Mat um = gm;
        um.offset = b2.size();
        for (auto [rnr, rks, rglu] : std::vector<std::tuple<uint32_t, int, bool>>{{1, 0, false}, {0, 4, false}, {0, 8, false}, {0, 0, true}}) {
            gpu::Buffer y2 = zeros(size_t(rows2));
            gpu::MatvecOpts r;
            r.team_rows = rnr;
            r.ksplit = rglu ? -1 : rks;
            r.xq = &hxq;
            r.x_ss = {&cb, uint32_t(nb)};
            r.norm_eps = eps;
            r.swiglu_up = rglu ? &um : nullptr;
            run_matvec(gm, {&yb, uint32_t(off)}, {&y2}, r);  // x's floats unused: the mirror at off
            const auto got = floats(y2, size_t(rows2));
            EXPECT_LT(nmse(got.data(), (rglu ? want_glu : want2).data(), rows2), 1e-10)
                << what << ", reader r" << rnr << " k" << rks << (rglu ? " glu" : "");
        }
    }
    // GLU of 3 experts (ids), its output's mirror (no norm) from its block tails
    const int64_t n_exp = 4, k = 3, F = 64;
    std::vector<uint8_t> eg, eu;
    std::vector<float> egd, eud;
    random_mats(rng, GgmlType::Q4_K, n_exp, F, cols, eg, egd);
    random_mats(rng, GgmlType::Q4_K, n_exp, F, cols, eu, eud);
    std::vector<uint8_t> both = eg;
    both.insert(both.end(), eu.begin(), eu.end());
    gpu::Buffer wb = to_gpu(both), ib = to_gpu(std::vector<int32_t>{2, 0, 3}), yb = zeros(size_t(k * F)),
                cb = zeros(size_t(k * F / 32)), step = step_buffer(0);
    gpu::Buffer yq = ctx().alloc(size_t(gpu::xq_bytes(k * F)), gpu::Mem::Device, "GLU mirror");
    const gpu::Xq yxq{&yq, gpu::xq_soff(k * F)};
    const gpu::Mat gm{&wb, uint32_t(GgmlType::Q4_K), 0, uint32_t(F), uint32_t(cols), uint64_t(eg.size() / n_exp)};
    gpu::Mat um = gm;
    um.offset = eg.size();
    for (uint32_t nr : {1u, 2u, 4u}) {  // the _q8w GLU's rows per team: 16, 8 or 4 workgroups per block
        gpu::MatvecOpts o = experts_glu(uint32_t(k), ib, uint32_t(F), um, mx.xq);
        o.team_rows = nr;
        o.qblk.q = &yxq;
        o.qblk.count = {&cb};
        run_matvec(gm, {&mx.x}, {&yb}, o);
        expect_mirror_of(floats(yb, size_t(k * F)), download_mirror(yq, size_t(k * F)), 0, 2,
                         "experts' GLU, team rows " + std::to_string(nr));
    }
}

// norm_q8: one workgroup's rmsnorm (one round of loads up to 8192 floats, two for 12288) and its int8
// mirror; without the mirror any multiple of 4.
TEST(GpuQ8, RmsnormWritesTheInt8Mirror) {
    if (!has_int_dot()) return;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (int64_t n : {4096, 7168, 8192, 12288, 64, 100}) {
        const bool mirrored = n % 32 == 0;
        const int64_t off = 32;
        const auto x = random_row(rng, n, 2.0f), w = random_row(rng, n);
        std::vector<float> ref(static_cast<size_t>(n));
        rmsnorm(ref.data(), x.data(), w.data(), n, 1e-6f);
        std::vector<float> xp(size_t(off), 0.0f);
        xp.insert(xp.end(), x.begin(), x.end());
        gpu::Buffer xb = to_gpu(xp), wb = to_gpu(w), yb = zeros(size_t(off + n));
        gpu::Buffer yq = ctx().alloc(size_t(gpu::xq_bytes(off + n)), gpu::Mem::Device, "y mirror");
        const gpu::Xq yxq{&yq, gpu::xq_soff(off + n)};
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::rmsnorm_q8(cmd, {&xb, uint32_t(off)}, {&yb, uint32_t(off)}, {&wb}, uint32_t(n), 1e-6f, mirrored ? &yxq : nullptr);
        cmd.end();
        cmd.run();
        const auto y = floats(yb, size_t(n), size_t(off));
        EXPECT_LT(nmse(y.data(), ref.data(), n), 1e-12) << n;
        if (mirrored) expect_mirror_of(y, download_mirror(yq, size_t(off + n)), size_t(off), 4, std::to_string(n));
    }
}

// attn_fused with its output's int8 mirror (ATTN_OUT_Q8, written by each head's merge): the mirror as
// quant_q8 would write it of the output without it, and the output's floats then the mirror's values;
// head_dim_v 128 (one round of the merge's invocations) and 256 (two), one position and several splits'.
TEST(GpuQ8, AttentionWritesTheInt8MirrorOfItsOutput) {
    if (!has_int_dot()) return;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [n_head, n_head_kv, hd] : {std::tuple<int64_t, int64_t, int64_t>{8, 2, 128}, {4, 4, 256}}) {
        const int64_t n_ctx = 2048, kd = n_head_kv * hd, out_off = 32;
        const auto k = random_row(rng, n_ctx * kd), v = random_row(rng, n_ctx * kd), norms = random_row(rng, 2 * hd);
        const gpu::AttnShape s = gpu::attn_shape(uint32_t(n_head), uint32_t(n_head_kv), uint32_t(hd), uint32_t(hd), uint64_t(n_ctx));
        gpu::Buffer kb = to_gpu(k), vb = to_gpu(v), nb = to_gpu(norms), part = zeros(gpu::attn_part_floats(s)),
                    counts = zeros(size_t(n_head));
        for (int64_t n_kv : {1, 1500}) {
            const auto qk = random_row(rng, n_head * hd + 2 * kd, 0.3f);
            std::vector<float> outs[2];
            for (bool mirrored : {false, true}) {
                gpu::Buffer qb = to_gpu(qk), step = step_buffer(uint32_t(n_kv - 1), 0, uint32_t(hd), 1e6f),
                            out = zeros(size_t(out_off + n_head * hd));
                gpu::Buffer oq = ctx().alloc(size_t(gpu::xq_bytes(out_off + n_head * hd)), gpu::Mem::Device, "out mirror");
                const gpu::Xq oxq{&oq, gpu::xq_soff(out_off + n_head * hd)};
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::attention_qk(cmd, {&qb}, {&qb, uint32_t(n_head * hd)}, {&qb, uint32_t(n_head * hd + kd)}, {&kb}, {&vb},
                                  uint32_t(kd), uint32_t(kd), {&part}, {&out, uint32_t(out_off)}, s,
                                  {{&nb}, {&nb, uint32_t(hd)}, uint32_t(hd), 1e-6f}, {&counts}, step, mirrored ? &oxq : nullptr);
                cmd.end();
                cmd.run();
                outs[mirrored] = floats(out, size_t(n_head * hd), size_t(out_off));
                if (!mirrored) continue;
                // the mirror of the output without it; the floats then hold the mirror's values d * q
                const std::string what = "head_dim " + std::to_string(hd) + ", " + std::to_string(n_kv) + " positions";
                const Quantized m = download_mirror(oq, size_t(out_off + n_head * hd));
                expect_mirror_of(outs[0], m, size_t(out_off), 4, what);
                for (size_t i = 0; i < outs[1].size(); ++i)
                    ASSERT_EQ(outs[1][i], m.deq[size_t(out_off) + i]) << what << ": output " << i << " is not its mirror's value";
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuQ8Types,
                         ::testing::Values(GpuType{GgmlType::Q4_0, WT_Q4_0}, GpuType{GgmlType::Q5_0, WT_Q5_0},
                                           GpuType{GgmlType::Q5_1, WT_Q5_1}, GpuType{GgmlType::Q8_0, WT_Q8_0},
                                           GpuType{GgmlType::Q8_0, WT_Q8_0R}, GpuType{GgmlType::Q2_K, WT_Q2_K},
                                           GpuType{GgmlType::Q3_K, WT_Q3_K}, GpuType{GgmlType::Q4_K, WT_Q4_K},
                                           GpuType{GgmlType::Q5_K, WT_Q5_K}, GpuType{GgmlType::Q6_K, WT_Q6_K},
                                           GpuType{GgmlType::IQ4_NL, WT_IQ4_NL}, GpuType{GgmlType::IQ4_XS, WT_IQ4_XS},
                                           GpuType{GgmlType::IQ2_XXS, WT_IQ2_XXS}, GpuType{GgmlType::IQ2_XS, WT_IQ2_XS},
                                           GpuType{GgmlType::IQ2_S, WT_IQ2_S}, GpuType{GgmlType::IQ3_XXS, WT_IQ3_XXS},
                                           GpuType{GgmlType::IQ3_S, WT_IQ3_S}, GpuType{GgmlType::IQ1_S, WT_IQ1_S},
                                           GpuType{GgmlType::IQ1_M, WT_IQ1_M}),
                         [](const auto& i) { return gpu_type_name(i.param); });

}  // namespace
}  // namespace sluice
