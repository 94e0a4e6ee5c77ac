// Every shader against the CPU reference on random, really quantized data with a fresh seed per run
// (printed on failure). Bounds are NMSE per op: the GPU dequantizes exactly and sums in float, the
// reference in double, so what remains is float rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <tuple>

#include "engine/blocks.h"
#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"
#include "tests/gpu_test_util.h"
#include "tests/kernels_test_util.h"

namespace sluice {
namespace {

using namespace gputest;
using test::fresh_seed;
using test::nmse;
using test::random_row;

const GgmlType kGpuTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q5_1,
                              GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                              GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S,
                              GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_S, GgmlType::IQ1_M};
// The matvec suites also run Q8_0 repacked (WT_Q8_0R; matvecs only).
std::vector<GpuType> matvec_types() {
    std::vector<GpuType> v;
    for (GgmlType t : kGpuTypes) v.push_back({t, uint32_t(t)});
    v.push_back({GgmlType::Q8_0, WT_Q8_0R});
    return v;
}

using gputest::random_mats;  // (type, ...): a pool of blocks; this overload stores them as the GPU does
RandomMats random_mats(std::mt19937& rng, const GpuType& t, int64_t n_mats, int64_t rows, int64_t cols) {
    RandomMats m = random_mats(rng, t.ggml, n_mats, rows, cols);
    to_stored(t, m.bytes, cols);
    return m;
}

std::vector<float> ref_matvec(const float* w, const float* x, int64_t rows, int64_t cols) {
    std::vector<float> y(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int64_t c = 0; c < cols; ++c) s += double(w[r * cols + c]) * x[c];
        y[size_t(r)] = float(s);
    }
    return y;
}

class GpuTypes : public ::testing::TestWithParam<GpuType> {};

// matvec variants: (rows per team, teams per row); (0, -1) is the shape-based choice.
const std::pair<uint32_t, int> kVariants[] = {{0, -1}, {1, 0}, {2, 0}, {4, 0}, {0, 4}, {0, 8}};

// Every rows-per-team variant (0: the size-based choice) on rows that are not a multiple of the rows
// per workgroup, rows of one block, rows ending inside a step (512 elements) and long rows.
TEST_P(GpuTypes, MatvecMatchesReference) {
    const GpuType gt = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const gpu::TypeLayout* tl = gpu::gpu_type(gt.id);
    const int64_t block = std::max(tl->chunk, tl->block_elems);
    std::vector<std::pair<int64_t, int64_t>> shapes = {{67, 512}, {4, 256}, {130, 1792}, {9, block}, {37, 7168}, {1, 768}};
    if (block < 32) shapes.push_back({13, 8 * 65});  // ends inside a 128-element part
    for (auto [rows, cols] : shapes) {
        const RandomMats m = random_mats(rng, gt, 1, rows, cols);
        const auto x = random_row(rng, cols);
        const auto ref = ref_matvec(m.deq.data(), x.data(), rows, cols);
        for (auto [nr, ks] : kVariants) {
            gpu::Buffer wb = to_gpu(m.bytes), xb = to_gpu(x), yb = zeros(size_t(rows + 1)), step = step_buffer(0);
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::MatvecOpts o;
            o.team_rows = nr;
            o.ksplit = ks;
            gpu::matvec(cmd, {&wb, gt.id, 0, uint32_t(rows), uint32_t(cols)}, {&xb}, {&yb}, step, o);
            cmd.end();
            cmd.run();
            const auto got = floats(yb, size_t(rows + 1));
            // Per row against the sum of |w x| (a lone row's dot product may cancel to near 0, where an
            // error relative to the result says nothing about the kernel), and nmse over the rows.
            for (int64_t r = 0; r < rows; ++r) {
                double mag = 0;
                for (int64_t c = 0; c < cols; ++c) mag += std::fabs(double(m.deq[size_t(r * cols + c)]) * x[size_t(c)]);
                EXPECT_LE(std::fabs(double(got[size_t(r)]) - ref[size_t(r)]), 4e-6 * mag) << "row " << r << " r" << nr << " k" << ks;
            }
            if (rows > 1)
                EXPECT_LT(nmse(got.data(), ref.data(), rows), 1e-10) << gpu_type_name(gt) << " " << rows << "x" << cols << " r" << nr << " k" << ks;
            EXPECT_EQ(got[size_t(rows)], 0.0f) << "wrote past the last row, r" << nr << " k" << ks;
        }
    }
}

// The routed-expert form: a batch of matrices picked by ids, each with its own input, written at a
// position-dependent offset and accumulated into y.
TEST_P(GpuTypes, BatchedExpertsWithIdsPosAndAccumulate) {
    const GpuType gt = GetParam();
    const GgmlType t = gt.ggml;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n_exp = 5, rows = 36, cols = 512, k = 3, pos = 2;
    const RandomMats m = random_mats(rng, gt, n_exp, rows, cols);
    std::vector<float> x;
    for (int j = 0; j < k; ++j) {
        auto r = random_row(rng, cols);
        x.insert(x.end(), r.begin(), r.end());
    }
    const std::vector<int32_t> ids = {-1, 4, 0, 3};  // ids_off = 1
    std::vector<float> y0(size_t(3 * k * rows));
    for (float& v : y0) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    std::vector<float> ref = y0;
    for (int64_t j = 0; j < k; ++j) {
        const auto y = ref_matvec(&m.deq[size_t(ids[size_t(j + 1)] * rows * cols)], &x[size_t(j * cols)], rows, cols);
        for (int64_t r = 0; r < rows; ++r) ref[size_t(5 + pos * (k / 2) + j * rows + r)] += y[size_t(r)];
    }
    for (auto [nr, ks] : {std::pair<uint32_t, int>{1, 0}, {4, 0}, {0, 4}}) {  // 36 rows: 4.5 workgroups of 8 rows with 4 per team
        gpu::Buffer wb = to_gpu(m.bytes), xb = to_gpu(x), yb = to_gpu(y0), ib = to_gpu(ids), step = step_buffer(pos);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::MatvecOpts o;
        o.n_mats = k;
        o.x_mat_stride = cols;
        o.y_mat_stride = rows;
        o.ids = &ib;
        o.ids_off = 1;
        o.accumulate = true;
        o.y_pos_stride = uint32_t(k / 2);  // y offset += pos * 1
        o.team_rows = nr;
        o.ksplit = ks;
        const uint64_t mat_bytes = uint64_t(rows * row_bytes(t, cols));
        gpu::matvec(cmd, {&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), mat_bytes}, {&xb}, {&yb, 5}, step, o);
        cmd.end();
        cmd.run();
        const auto got = floats(yb, y0.size());
        EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), 1e-10) << "r" << nr << " k" << ks;
    }
}

// The residual stream's next norm at the end of the matvec that adds to it: y += W x, then the last
// workgroup writes hn = rmsnorm(y) * w and leaves its counter at zero for the next dispatch.
TEST_P(GpuTypes, AccumulateThenNormTail) {
    const GpuType gt = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t rows = 301, cols = 512;
    const RandomMats m = random_mats(rng, gt, 1, rows, cols);
    const auto x = random_row(rng, cols), y0 = random_row(rng, rows), nw = random_row(rng, rows);
    for (auto [nr, ks] : {std::pair<uint32_t, int>{1, 0}, {4, 0}, {0, 8}}) {
        gpu::Buffer wb = to_gpu(m.bytes), xb = to_gpu(x), yb = to_gpu(y0), nb = to_gpu(nw), hb = zeros(size_t(rows + 8)),
                    step = step_buffer(0);
        gpu::MatvecOpts o;
        o.accumulate = true;
        o.team_rows = nr;
        o.ksplit = ks;
        const gpu::Vec hn{&hb, 3};
        o.norm_out = &hn;
        o.norm_w = {&nb};
        o.norm_eps = 1e-6f;
        o.norm_count = uint32_t(rows + 5);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::matvec(cmd, {&wb, gt.id, 0, uint32_t(rows), uint32_t(cols)}, {&xb}, {&yb}, step, o);
        cmd.end();
        std::vector<float> ref_y = y0, ref_hn(static_cast<size_t>(rows));
        for (int run = 1; run <= 2; ++run) {
            cmd.run();
            const auto wx = ref_matvec(m.deq.data(), x.data(), rows, cols);
            for (int64_t r = 0; r < rows; ++r) ref_y[size_t(r)] += wx[size_t(r)];
            rmsnorm(ref_hn.data(), ref_y.data(), nw.data(), rows, 1e-6f);
            const auto got_y = floats(yb, size_t(rows)), got_hn = floats(hb, size_t(rows), 3);
            EXPECT_LT(nmse(got_y.data(), ref_y.data(), rows), 1e-10) << "r" << nr << " k" << ks << " run " << run;
            EXPECT_LT(nmse(got_hn.data(), ref_hn.data(), rows), 1e-10) << "r" << nr << " k" << ks << " run " << run;
            uint32_t count = 1;
            ctx().download(hb, size_t(rows + 5) * 4, &count, 4);
            EXPECT_EQ(count, 0u);
        }
    }
}

// Routed experts' down projections summed with their weights in one dispatch, added to the residual,
// then its next norm: x += sum_j w_j down_j(g_j); hn = rmsnorm(x) * norm.
TEST_P(GpuTypes, WeightedSumOfExpertsThenNormTail) {
    const GpuType gt = GetParam();
    const GgmlType t = gt.ggml;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n_exp = 5, rows = 131, cols = 768, k = 3;
    const RandomMats m = random_mats(rng, gt, n_exp, rows, cols);
    const auto g = random_row(rng, k * cols), x0 = random_row(rng, rows), nw = random_row(rng, rows);
    // The ids buffer: 2 unused words, k ids, k weights (as float bits).
    const std::vector<int32_t> id = {4, 0, 3};
    const std::vector<float> wt = {0.5f, 0.3f, 0.2f};
    std::vector<int32_t> idsbuf = {-1, -1, id[0], id[1], id[2], 0, 0, 0};
    std::memcpy(&idsbuf[5], wt.data(), 12);
    std::vector<float> ref = x0, ref_hn(static_cast<size_t>(rows));
    for (int64_t j = 0; j < k; ++j) {
        const auto y = ref_matvec(&m.deq[size_t(id[size_t(j)] * rows * cols)], &g[size_t(j * cols)], rows, cols);
        for (int64_t r = 0; r < rows; ++r) ref[size_t(r)] += wt[size_t(j)] * y[size_t(r)];
    }
    rmsnorm(ref_hn.data(), ref.data(), nw.data(), rows, 1e-6f);
    for (auto [nr, ks] : {std::pair<uint32_t, int>{1, 0}, {2, 0}, {0, 4}, {0, 8}}) {
        gpu::Buffer wb = to_gpu(m.bytes), gb = to_gpu(g), xb = to_gpu(x0), ib = to_gpu(idsbuf), nb = to_gpu(nw),
                    hb = zeros(size_t(rows + 1)), step = step_buffer(0);
        gpu::MatvecOpts o;
        o.n_mats = k;
        o.x_mat_stride = cols;
        o.ids = &ib;
        o.ids_off = 2;
        o.sum_mats = true;
        o.sum_w_off = 5;
        o.accumulate = true;
        o.team_rows = nr;
        o.ksplit = ks;
        const gpu::Vec hn{&hb};
        o.norm_out = &hn;
        o.norm_w = {&nb};
        o.norm_eps = 1e-6f;
        o.norm_count = uint32_t(rows);
        const uint64_t mat_bytes = uint64_t(rows * row_bytes(t, cols));
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::matvec(cmd, {&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), mat_bytes}, {&gb}, {&xb}, step, o);
        cmd.end();
        cmd.run();
        const auto got = floats(xb, size_t(rows)), got_hn = floats(hb, size_t(rows));
        EXPECT_LT(nmse(got.data(), ref.data(), rows), 1e-10) << "r" << nr << " k" << ks;
        EXPECT_LT(nmse(got_hn.data(), ref_hn.data(), rows), 1e-10) << "r" << nr << " k" << ks;
    }
}

// Gate and up of routed experts in one buffer and one dispatch: y = silu(gate x) * (up x).
TEST_P(GpuTypes, FusedSwigluOfGateAndUp) {
    const GpuType gt = GetParam();
    const GgmlType t = gt.ggml;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n_exp = 4, rows = 21, cols = 768, k = 2;  // 21: the last workgroup of 4 rows has one
    const RandomMats g = random_mats(rng, gt, n_exp, rows, cols), u = random_mats(rng, gt, n_exp, rows, cols);
    std::vector<uint8_t> both = g.bytes;
    both.insert(both.end(), u.bytes.begin(), u.bytes.end());
    const auto x = random_row(rng, cols);
    const std::vector<int32_t> ids = {3, 1};
    gpu::Buffer wb = to_gpu(both), xb = to_gpu(x), yb = zeros(size_t(k * rows)), ib = to_gpu(ids), step = step_buffer(0);
    const uint64_t mat_bytes = uint64_t(rows * row_bytes(t, cols));
    const gpu::Mat gm{&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), mat_bytes};
    gpu::Mat um = gm;
    um.offset = g.bytes.size();
    gpu::MatvecOpts o;
    o.n_mats = k;
    o.ids = &ib;
    o.y_mat_stride = rows;
    o.swiglu_up = &um;
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::matvec(cmd, gm, {&xb}, {&yb}, step, o);
    cmd.end();
    cmd.run();
    std::vector<float> ref;
    for (int64_t j = 0; j < k; ++j) {
        const size_t m = size_t(ids[size_t(j)] * rows * cols);
        const auto gy = ref_matvec(&g.deq[m], x.data(), rows, cols), uy = ref_matvec(&u.deq[m], x.data(), rows, cols);
        for (int64_t r = 0; r < rows; ++r) ref.push_back(silu(gy[size_t(r)]) * uy[size_t(r)]);
    }
    const auto got = floats(yb, ref.size());
    EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), 1e-10);
}

// The router's matvec with the top-k in its last workgroup (MV_TOPK): the logits, then the ids and
// softmax weights router_topk_softmax picks from those logits, ties (two equal rows) to the lower id,
// the counter left at zero; every workgroup shape.
TEST_P(GpuTypes, RouterMatvecRanksItsRowsInTheLastWorkgroup) {
    const GpuType gt = GetParam();
    const GgmlType t = gt.ggml;
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t cols = 512, k = 8;
    for (int64_t n_exp : {12, 150, 512}) {
        RandomMats m = random_mats(rng, gt, 1, n_exp, cols);
        const size_t rb = size_t(row_bytes(t, cols));
        std::copy_n(&m.bytes[9 * rb], rb, &m.bytes[5 * rb]);  // rows 5 and 9 tie
        std::copy_n(&m.deq[size_t(9 * cols)], cols, &m.deq[size_t(5 * cols)]);
        const auto x = random_row(rng, cols);
        const auto ref_logits = ref_matvec(m.deq.data(), x.data(), n_exp, cols);
        for (bool renorm : {true, false})
            for (auto [nr, ks] : kVariants) {
                // y's buffer: 2 floats of padding, the logits, k ids, k weights.
                gpu::Buffer wb = to_gpu(m.bytes), xb = to_gpu(x), yb = zeros(size_t(2 + n_exp + 2 * k)), cb = zeros(4),
                            step = step_buffer(0);
                gpu::MatvecOpts o;
                o.team_rows = nr;
                o.ksplit = ks;
                o.topk = uint32_t(k);
                o.topk_ids_off = uint32_t(2 + n_exp);
                o.topk_w_off = uint32_t(2 + n_exp + k);
                o.route_renorm = renorm;
                o.topk_count = {&cb, 1};
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::matvec(cmd, {&wb, gt.id, 0, uint32_t(n_exp), uint32_t(cols)}, {&xb}, {&yb, 2}, step, o);
                cmd.end();
                cmd.run();
                const auto logits = floats(yb, size_t(n_exp), 2);
                EXPECT_LT(nmse(logits.data(), ref_logits.data(), n_exp), 1e-10);
                ASSERT_EQ(logits[5], logits[9]);
                std::vector<int32_t> ref_ids(static_cast<size_t>(k)), ids(static_cast<size_t>(k));
                std::vector<float> ref_w(static_cast<size_t>(k));
                router_topk_softmax(logits.data(), n_exp, k, renorm, ref_ids.data(), ref_w.data());
                ctx().download(yb, size_t(2 + n_exp) * 4, ids.data(), size_t(k) * 4);
                EXPECT_EQ(ids, ref_ids) << n_exp << " experts, r" << nr << " k" << ks;
                const auto w = floats(yb, size_t(k), size_t(2 + n_exp + k));
                EXPECT_LT(nmse(w.data(), ref_w.data(), k), 1e-12) << n_exp << " experts, r" << nr << " k" << ks;
                std::vector<uint32_t> c(4);
                ctx().download(cb, 0, c.data(), 16);
                EXPECT_EQ(c, std::vector<uint32_t>(4, 0u));
            }
    }
}

// MV_XNORM (x_norm): a router reading the residual stream before its rmsnorm, which every workgroup
// computes for itself, so it need not wait for the norm's dispatch: the logits of W rmsnorm(x) * w and
// the top-k tail's picks, for the float weight types (routers are F32 in llama.cpp's files), every
// variant, x at an offset.
TEST(GpuOps, RouterOverTheResidualAppliesTheNorm) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t k = 8, x_off = 4;
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
        for (auto [n_exp, cols] : {std::pair<int64_t, int64_t>{12, 512}, {128, 2048}, {150, 1032}}) {
            const RandomMats m = random_mats(rng, t, 1, n_exp, cols);
            const auto x = random_row(rng, x_off + cols, 3.0f), nw = random_row(rng, cols);
            std::vector<float> normed(static_cast<size_t>(cols));
            rmsnorm(normed.data(), &x[size_t(x_off)], nw.data(), cols, 1e-6f);
            const auto ref = ref_matvec(m.deq.data(), normed.data(), n_exp, cols);
            for (auto [nr, ks] : kVariants) {
                gpu::Buffer wb = to_gpu(m.bytes), xb = to_gpu(x), nb = to_gpu(nw), yb = zeros(size_t(n_exp + 2 * k)),
                            cb = zeros(4), step = step_buffer(0);
                gpu::MatvecOpts o;
                o.team_rows = nr;
                o.ksplit = ks;
                o.x_norm = true;
                o.norm_w = {&nb};
                o.norm_eps = 1e-6f;
                o.topk = uint32_t(k);
                o.topk_ids_off = uint32_t(n_exp);
                o.topk_w_off = uint32_t(n_exp + k);
                o.route_renorm = true;
                o.topk_count = {&cb, 1};
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::matvec(cmd, {&wb, uint32_t(t), 0, uint32_t(n_exp), uint32_t(cols)}, {&xb, uint32_t(x_off)}, {&yb}, step, o);
                cmd.end();
                cmd.run();
                const auto logits = floats(yb, size_t(n_exp));
                EXPECT_LT(nmse(logits.data(), ref.data(), n_exp), 1e-10) << type_name(t) << " " << n_exp << "x" << cols << " r" << nr << " k" << ks;
                std::vector<int32_t> ref_ids(static_cast<size_t>(k)), ids(static_cast<size_t>(k));
                std::vector<float> ref_w(static_cast<size_t>(k));
                router_topk_softmax(logits.data(), n_exp, k, true, ref_ids.data(), ref_w.data());
                ctx().download(yb, size_t(n_exp) * 4, ids.data(), size_t(k) * 4);
                EXPECT_EQ(ids, ref_ids) << type_name(t) << " " << n_exp << " experts, r" << nr << " k" << ks;
                expect_zero_counts(cb, 4);
            }
        }
}

// The small-batch product (matmul_*): several activation columns share each weight read; past 8
// columns (prompts) float types run mmf_* (tiles of 64 x 64, rows and columns ending inside a tile),
// the others chunks of 8 columns. With a batch of matrices (deepseek2's per-head Wk_b / Wv_b over a
// prompt): column b of matrix z reads x at z cols + b (n_mats cols) and writes y likewise (mmf_*:
// workgroup z).
TEST_P(GpuTypes, SmallBatchMatmulMatchesReference) {
    const GpuType gt = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [rows, cols, nb, nm] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {45, 768, 2, 1}, {45, 768, 5, 1}, {45, 768, 8, 1}, {45, 768, 9, 1}, {130, 512, 70, 1}, {64, 256, 64, 1},
             {3, 1024, 33, 1}, {70, 256, 5, 3}, {130, 256, 40, 3}}) {
        const RandomMats m = random_mats(rng, gt, nm, rows, cols);
        const int64_t xcs = nm * cols, ycs = nm * rows;  // a column's stride: all the matrices' inputs / outputs
        const auto x = random_row(rng, nb * xcs);
        gpu::Buffer wb = to_gpu(m.bytes), xb = to_gpu(x), yb = zeros(size_t(nb * ycs)), step = step_buffer(0);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::MatvecOpts o;
        o.n_cols = uint32_t(nb);
        o.x_col_stride = uint32_t(xcs);
        o.y_col_stride = uint32_t(ycs);
        o.n_mats = uint32_t(nm);
        o.x_mat_stride = uint32_t(cols);
        o.y_mat_stride = uint32_t(rows);
        gpu::matvec(cmd, {&wb, gt.id, 0, uint32_t(rows), uint32_t(cols), uint64_t(m.bytes.size() / size_t(nm))}, {&xb}, {&yb}, step, o);
        cmd.end();
        cmd.run();
        const auto got = floats(yb, size_t(nb * ycs));
        std::vector<float> ref(got.size());
        for (int64_t b = 0; b < nb; ++b)
            for (int64_t z = 0; z < nm; ++z) {
                auto y = ref_matvec(m.deq.data() + z * rows * cols, &x[size_t(b * xcs + z * cols)], rows, cols);
                std::copy(y.begin(), y.end(), ref.begin() + b * ycs + z * rows);
            }
        EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), 1e-10)
            << rows << "x" << cols << ", " << nb << " columns, " << nm << " matrices";
    }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuTypes, ::testing::ValuesIn(matvec_types()),
                         [](const auto& info) { return gpu_type_name(info.param); });

// The embedding lookup reads ggml's blocks (the model never repacks token_embd); a prompt batch's rows
// come in one dispatch from its step headers (getrows_tokens).
class GpuGgmlTypes : public ::testing::TestWithParam<GgmlType> {};

TEST_P(GpuGgmlTypes, EmbeddingLookupIsTheDequantizedRow) {
    const GgmlType t = GetParam();
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t vocab = 13, cols = 512;
    const RandomMats m = random_mats(rng, t, 1, vocab, cols);
    gpu::Buffer wb = to_gpu(m.bytes), yb = zeros(size_t(2 * cols)), step = step_buffer(0, 11);
    gpu::Cmd cmd(ctx());
    cmd.begin();
    const gpu::Mat w{&wb, uint32_t(t), 0, uint32_t(vocab), uint32_t(cols)};
    gpu::getrows(cmd, w, {&yb}, step);                     // step.token = 11
    gpu::getrows(cmd, w, {&yb, uint32_t(cols)}, step, 7);  // explicit row
    const uint32_t tokens[] = {4, 12, 0}, stride = uint32_t(cols) + 5, off = 3;
    std::vector<uint8_t> headers(3 * gpu::kStepBytes);
    for (uint32_t j = 0; j < 3; ++j) gpu::write_step(&headers[j * gpu::kStepBytes], 40 + j, tokens[j], 0, 10000.0f);
    const auto poison = random_row(rng, off + 3 * stride);
    gpu::Buffer steps = to_gpu(headers), yt = to_gpu(poison);
    gpu::getrows_tokens(cmd, w, {&yt, off}, stride, steps, 3);
    cmd.end();
    cmd.run();
    const auto got = floats(yb, size_t(2 * cols));
    EXPECT_LT(nmse(got.data(), &m.deq[size_t(11 * cols)], cols), 1e-13);
    EXPECT_LT(nmse(got.data() + cols, &m.deq[size_t(7 * cols)], cols), 1e-13);
    const auto rows = floats(yt, poison.size());
    for (uint32_t j = 0; j < 3; ++j) {
        EXPECT_LT(nmse(&rows[off + j * stride], &m.deq[size_t(tokens[j]) * size_t(cols)], cols), 1e-13) << "batch row " << j;
        for (uint32_t i = uint32_t(cols); i < stride && off + j * stride + i < rows.size(); ++i)
            ASSERT_EQ(rows[off + j * stride + i], poison[off + j * stride + i]) << "wrote past batch row " << j;
    }
}

INSTANTIATE_TEST_SUITE_P(Types, GpuGgmlTypes, ::testing::ValuesIn(kGpuTypes),
                         [](const auto& info) { return std::string(type_name(info.param)); });

TEST(GpuOps, RmsnormRowsAndPositionOffset) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 320, rows = 3, stride = 400, pos = 2, pos_stride = 1300;
    const auto x = random_row(rng, 4000);
    const auto w = random_row(rng, n);
    gpu::Buffer xb = to_gpu(x), wb = to_gpu(w), yb = zeros(4000), step = step_buffer(uint32_t(pos));
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::rmsnorm(cmd, {&xb, 7}, {&yb, 7}, {&wb}, n, rows, stride, 1e-6f, step, pos_stride);
    cmd.end();
    cmd.run();
    const auto got = floats(yb, 4000);
    for (int64_t r = 0; r < rows; ++r) {
        const size_t o = size_t(7 + r * stride + pos * pos_stride);
        std::vector<float> ref(static_cast<size_t>(n));
        rmsnorm(ref.data(), &x[o], w.data(), n, 1e-6f);
        EXPECT_LT(nmse(&got[o], ref.data(), n), 1e-12) << "row " << r;
    }
}

TEST(GpuOps, RopeNeoxMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t heads = 5, head_dim = 128, n_rot = 64;
    for (int64_t pos : {0, 1, 77, 4095, 100000}) {
        const auto x = random_row(rng, heads * head_dim);
        gpu::Buffer xb = to_gpu(x), step = step_buffer(uint32_t(pos), 0, uint32_t(n_rot), 1e6f);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::rope_neox(cmd, {&xb}, heads, head_dim, n_rot, head_dim, step);
        cmd.end();
        cmd.run();
        auto ref = x;
        rope_neox(ref.data(), heads, head_dim, n_rot, pos, 1e6f);
        const auto got = floats(xb, x.size());
        EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), 1e-13) << "pos " << pos;
    }
}

TEST(GpuOps, QkNormRopeMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [n_head, n_kv, hd, n_rot] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{8, 2, 128, 128}, {5, 1, 64, 32}, {4, 4, 256, 64}}) {
        const int64_t pos = 9, kd = n_kv * hd;
        const auto q = random_row(rng, n_head * hd), cache = random_row(rng, 12 * kd), w = random_row(rng, 2 * hd);
        gpu::Buffer qb = to_gpu(q), kb = to_gpu(cache), wb = to_gpu(w), step = step_buffer(uint32_t(pos), 0, uint32_t(n_rot), 1e6f);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::qk_norm_rope(cmd, {&qb}, {&kb}, uint32_t(kd), {&wb}, {&wb, uint32_t(hd)}, uint32_t(n_head), uint32_t(n_kv),
                          uint32_t(hd), uint32_t(n_rot), 1e-6f, step);
        cmd.end();
        cmd.run();
        auto rq = q, rk = cache;
        for (int64_t h = 0; h < n_head; ++h) rmsnorm(&rq[size_t(h * hd)], &rq[size_t(h * hd)], w.data(), hd, 1e-6f);
        for (int64_t h = 0; h < n_kv; ++h) rmsnorm(&rk[size_t(pos * kd + h * hd)], &rk[size_t(pos * kd + h * hd)], &w[size_t(hd)], hd, 1e-6f);
        rope_neox(rq.data(), n_head, hd, n_rot, pos, 1e6f);
        rope_neox(&rk[size_t(pos * kd)], n_kv, hd, n_rot, pos, 1e6f);
        const auto gq = floats(qb, q.size()), gk = floats(kb, cache.size());
        EXPECT_LT(nmse(gq.data(), rq.data(), int64_t(rq.size())), 1e-12);
        EXPECT_LT(nmse(gk.data(), rk.data(), int64_t(rk.size())), 1e-12);
        EXPECT_TRUE(std::equal(gk.begin(), gk.begin() + pos * kd, cache.begin())) << "other cache rows untouched";
    }
}

// The split attention over q heads grouped per kv head (groups of 4, 8, 1, 5 and 16), head dims 64 ..
// 256 with head_dim_v apart from head_dim; each shape as attn_shape() picks it, with the whole group
// (up to 8 heads) per workgroup, with 3 long splits (several online-softmax steps each) and with a
// workgroup per head (splits of 16 positions at least).
// NMSE bound of a head's output against attention_one over up to 2999 positions: float sums in both
// (seeds 1-17: worst 8.5e-12, 3 heads of 32 dims at 2999 positions; a bound of 1e-11 failed CI once).
constexpr double kAttnNmse = 1e-10;
std::vector<gpu::AttnShape> attention_shapes(int64_t n_head, int64_t n_head_kv, int64_t hd, int64_t hdv, int64_t n_ctx) {
    gpu::AttnShape s = gpu::attn_shape(uint32_t(n_head), uint32_t(n_head_kv), uint32_t(hd), uint32_t(hdv), uint64_t(n_ctx));
    gpu::AttnShape wide = s, few = s, one = s;
    for (uint32_t g = 2; g <= ATTN_GH_MAX; g *= 2)
        if ((n_head / n_head_kv) % g == 0 && (g + 1) * uint32_t(std::max(hd, hdv)) <= ATTN_QMAX) wide.gh = g;
    wide.n_splits = std::min<uint32_t>(wide.n_splits, ATTN_SPLITS_MAX / wide.gh);
    few.n_splits = 3;
    one.gh = 1;
    one.min_chunk = 16;
    return {s, wide, few, one};
}

TEST(GpuOps, SplitAttentionMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    ThreadPool pool(1);
    const int64_t n_ctx = 3000;
    for (auto [n_head, n_head_kv, hd, hdv] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{8, 2, 64, 48}, {16, 2, 128, 128},
                                              {3, 3, 32, 32}, {10, 2, 64, 64}, {32, 2, 256, 256}}) {
        LayerKv kv;
        kv.k = random_row(rng, n_ctx * n_head_kv * hd);
        kv.v = random_row(rng, n_ctx * n_head_kv * hdv);
        gpu::Buffer kb = to_gpu(kv.k), vb = to_gpu(kv.v), out = zeros(size_t(n_head * hdv));
        for (const gpu::AttnShape& s : attention_shapes(n_head, n_head_kv, hd, hdv, n_ctx)) {
            SCOPED_TRACE("heads " + std::to_string(n_head) + "/" + std::to_string(n_head_kv) + ", dims " + std::to_string(hd) + "/" +
                         std::to_string(hdv) + ", " + std::to_string(s.gh) + " per workgroup, " + std::to_string(s.n_splits) + " splits");
            gpu::Buffer part = zeros(gpu::attn_part_floats(s));
            for (int64_t n_kv : {1, 5, 37, 128, 129, 1024, 2999}) {
                const auto q = random_row(rng, n_head * hd, 0.3f);
                gpu::Buffer qb = to_gpu(q), step = step_buffer(uint32_t(n_kv - 1));
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::attention(cmd, {&qb}, {&kb}, {&vb}, uint32_t(n_head_kv * hd), uint32_t(n_head_kv * hdv), {&part}, {&out}, s, step);
                cmd.end();
                cmd.run();
                std::vector<float> ref(static_cast<size_t>(n_head * hdv)), scores(static_cast<size_t>(n_head * n_ctx));
                attention_one(ref.data(), q.data(), kv, n_kv, n_head, n_head_kv, hd, hdv, scores.data(), pool);
                const auto got = floats(out, ref.size());
                EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), kAttnNmse) << n_kv << " positions";
            }
        }
    }
}

// qwen3's q/k norm + RoPE, the split attention and the merge in one dispatch: the same as
// qk_norm_rope then attention, the normalised k and the raw v written into the cache rows of this position, the
// per-head counters left at zero for the next dispatch.
TEST(GpuOps, FusedQkNormRopeAttentionMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    ThreadPool pool(1);
    for (auto [n_head, n_head_kv, hd, n_rot] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{8, 2, 128, 128}, {6, 3, 64, 32},
                                                {16, 2, 64, 64}, {32, 2, 256, 64}}) {
        const int64_t n_ctx = 3000, kd = n_head_kv * hd;
        for (const gpu::AttnShape& s : attention_shapes(n_head, n_head_kv, hd, hd, n_ctx)) {
            SCOPED_TRACE("heads " + std::to_string(n_head) + "/" + std::to_string(n_head_kv) + ", " + std::to_string(s.gh) +
                         " per workgroup, " + std::to_string(s.n_splits) + " splits");
            LayerKv kv;
            kv.k = random_row(rng, n_ctx * kd);
            kv.v = random_row(rng, n_ctx * kd);
            const auto qn = random_row(rng, hd), kn = random_row(rng, hd);
            std::vector<float> norms = qn;
            norms.insert(norms.end(), kn.begin(), kn.end());
            gpu::Buffer kb = to_gpu(kv.k), vb = to_gpu(kv.v), nb = to_gpu(norms), part = zeros(gpu::attn_part_floats(s)),
                        out = zeros(size_t(n_head * hd)), counts = zeros(size_t(n_head + 1));
            for (int64_t n_kv : {1, 5, 37, 128, 129, 1024, 2999}) {  // one split up to 128 (ops.cpp)
                const int64_t pos = n_kv - 1;
                const auto qk = random_row(rng, n_head * hd + 2 * kd, 0.3f);  // q, then this position's raw k and v
                gpu::Buffer qb = to_gpu(qk), step = step_buffer(uint32_t(pos), 0, uint32_t(n_rot), 1e6f);
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::attention_qk(cmd, {&qb}, {&qb, uint32_t(n_head * hd)}, {&qb, uint32_t(n_head * hd + kd)}, {&kb}, {&vb}, uint32_t(kd), uint32_t(kd), {&part}, {&out},
                                  s, {{&nb}, {&nb, uint32_t(hd)}, uint32_t(n_rot), 1e-6f}, {&counts, 1}, step);
                cmd.end();
                for (int run = 0; run < 2; ++run) {  // the counters must be back at zero for the second
                    cmd.run();
                    std::vector<float> rq(qk.begin(), qk.begin() + n_head * hd);
                    for (int64_t h = 0; h < n_head; ++h) rmsnorm(&rq[size_t(h * hd)], &rq[size_t(h * hd)], qn.data(), hd, 1e-6f);
                    for (int64_t h = 0; h < n_head_kv; ++h)
                        rmsnorm(&kv.k[size_t(pos * kd + h * hd)], &qk[size_t(n_head * hd + h * hd)], kn.data(), hd, 1e-6f);
                    rope_neox(rq.data(), n_head, hd, n_rot, pos, 1e6f);
                    rope_neox(&kv.k[size_t(pos * kd)], n_head_kv, hd, n_rot, pos, 1e6f);
                    std::copy(qk.begin() + n_head * hd + kd, qk.end(), kv.v.begin() + pos * kd);
                    std::vector<float> ref(static_cast<size_t>(n_head * hd)), scores(static_cast<size_t>(n_head * n_ctx));
                    attention_one(ref.data(), rq.data(), kv, n_kv, n_head, n_head_kv, hd, hd, scores.data(), pool);
                    const auto got = floats(out, ref.size()), gk = floats(kb, size_t(kd), size_t(pos * kd)),
                               gv = floats(vb, size_t(kd), size_t(pos * kd));
                    EXPECT_LT(nmse(got.data(), ref.data(), int64_t(ref.size())), kAttnNmse) << n_kv << " positions, run " << run;
                    EXPECT_LT(nmse(gk.data(), &kv.k[size_t(pos * kd)], kd), 1e-12) << "cache row " << pos;
                    EXPECT_EQ(0, std::memcmp(gv.data(), &kv.v[size_t(pos * kd)], size_t(kd) * 4)) << "V cache row " << pos;
                    expect_zero_counts(counts, size_t(n_head + 1));
                }
            }
        }
    }
}

TEST(GpuOps, SwigluMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 1000;
    const auto g = random_row(rng, n), u = random_row(rng, n);
    gpu::Buffer gb = to_gpu(g), ub = to_gpu(u), yb = zeros(size_t(n));
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::swiglu(cmd, {&gb}, {&ub}, {&yb}, uint32_t(n));
    cmd.end();
    cmd.run();
    std::vector<float> ref(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ref[size_t(i)] = silu(g[size_t(i)]) * u[size_t(i)];
    const auto got = floats(yb, size_t(n));
    EXPECT_LT(nmse(got.data(), ref.data(), n), 1e-12);
}

// The logits' block maxima (block_max.comp): every block of 64, the last partial, NaN ignored (a block
// of NaN only: -inf), at an offset whose vec4 loads would be misaligned and at an aligned one.
TEST(GpuOps, BlockMaxMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (const uint32_t off : {0u, 3u, 8u}) {
        const uint32_t n = 64 * 9 + 37;
        auto x = random_row(rng, int64_t(off + n));
        for (uint32_t i = 0; i < 64; ++i) x[off + 64 * 2 + i] = NAN;  // block 2: NaN only
        x[off + 64 * 3 + 5] = NAN;                                     // block 3: one NaN
        x[off + 64 * 4 + 63] = 1e30f;                                  // block 4: its last
        x[off + 64 * 5] = -INFINITY;
        gpu::Buffer xb = to_gpu(x), yb = zeros(16);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::block_max(cmd, {&xb, off}, {&yb, 2}, n);
        cmd.end();
        cmd.run();
        const auto got = floats(yb, 16);
        const uint32_t nb = (n + 63) / 64;
        for (uint32_t b = 0; b < nb; ++b) {
            float m = -INFINITY;
            for (uint32_t i = 64 * b; i < std::min(64 * b + 64, n); ++i)
                if (x[off + i] > m) m = x[off + i];
            EXPECT_EQ(got[2 + b], m) << "offset " << off << " block " << b;
        }
        EXPECT_EQ(got[2 + nb], 0.0f) << "written past the last block";
        EXPECT_EQ(got[1], 0.0f) << "written before the first block";
    }
}

TEST(GpuOps, RouterTopkMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [n_expert, k, renorm, ties] :
         {std::tuple<int64_t, int64_t, bool, bool>{128, 8, true, false}, {512, 10, true, false}, {64, 6, false, false},
          {4, 2, true, false}, {128, 8, true, true}, {600, 10, false, true}}) {
        auto logits = random_row(rng, n_expert);
        if (ties)  // a few distinct values: the k cross many equal ones, which go to the lower ids
            for (float& l : logits) l = std::round(l * 2.0f) / 2.0f;
        gpu::Buffer lb = to_gpu(logits), ib = to_gpu(std::vector<int32_t>(size_t(k + 2), -1)), wb = zeros(size_t(k + 2));
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::topk_softmax(cmd, {&lb}, uint32_t(n_expert), uint32_t(k), renorm, ib, 1, {&wb, 2});
        cmd.end();
        cmd.run();
        std::vector<int32_t> ids(static_cast<size_t>(k + 2)), ref_ids(static_cast<size_t>(k));
        ctx().download(ib, 0, ids.data(), ids.size() * 4);
        const auto w = floats(wb, size_t(k), 2);
        std::vector<float> ref_w(static_cast<size_t>(k));
        router_topk_softmax(logits.data(), n_expert, k, renorm, ref_ids.data(), ref_w.data());
        EXPECT_EQ(std::vector<int32_t>(ids.begin() + 1, ids.end() - 1), ref_ids) << n_expert << " experts";
        EXPECT_LT(nmse(w.data(), ref_w.data(), k), 1e-12);
    }
}

TEST(GpuOps, MoeCombineAddsWeightedOutputsToResidual) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const int64_t n = 700, k = 6;
    const auto x = random_row(rng, n), outs = random_row(rng, k * n), w = random_row(rng, k);
    gpu::Buffer xb = to_gpu(x), ob = to_gpu(outs), wb = to_gpu(w);
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::moe_combine(cmd, {&xb}, {&ob}, {&wb}, uint32_t(n), uint32_t(k));
    cmd.end();
    cmd.run();
    std::vector<float> ref = x;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j) ref[size_t(i)] += w[size_t(j)] * outs[size_t(j * n + i)];
    const auto got = floats(xb, size_t(n));
    EXPECT_LT(nmse(got.data(), ref.data(), n), 1e-12);

    // With the next norm fused: the same x, and hn = rmsnorm(x) * norm.
    const auto norm = random_row(rng, n);
    gpu::Buffer xb2 = to_gpu(x), nb = to_gpu(norm), hb = zeros(size_t(n + 3));
    gpu::Cmd c2(ctx());
    c2.begin();
    const gpu::Vec hn{&hb, 3};
    gpu::moe_combine(c2, {&xb2}, {&ob}, {&wb}, uint32_t(n), uint32_t(k), &hn, {&nb}, 1e-6f);
    c2.end();
    c2.run();
    std::vector<float> ref_hn(static_cast<size_t>(n));
    rmsnorm(ref_hn.data(), ref.data(), norm.data(), n, 1e-6f);
    const auto got2 = floats(xb2, size_t(n)), got_hn = floats(hb, size_t(n), 3);
    EXPECT_LT(nmse(got2.data(), ref.data(), n), 1e-12);
    EXPECT_LT(nmse(got_hn.data(), ref_hn.data(), n), 1e-12);
}

}  // namespace
}  // namespace sluice
