// The four-column dot products (vec_dot4, the batched path's kernel) and matmul_jobs against plain
// vec_dot, bit for bit, on every ISA this CPU has: really quantized random rows, a fresh seed each
// run (printed on failure).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"
#include "tests/kernels_test_util.h"

using namespace sluice;
using namespace sluice::test;

namespace {

// One block, a few blocks (odd counts: Q8_0's AVX-512 pairs leave one over), and 4096+ ; float
// types also get the tails that are not a multiple of the vector width.
std::vector<int64_t> lengths(GgmlType t) {
    switch (type_info(t).block_size) {
        case 1: return {1, 7, 8, 33, 100, 4096, 4103};
        case 32: return {32, 96, 256, 4128};
        default: return {256, 768, 4096};
    }
}

std::string trace(GgmlType t, Isa isa, int64_t n, uint32_t seed) {
    return std::string(type_name(t)) + " " + isa_name(isa) + " n=" + std::to_string(n) + " seed=" +
           std::to_string(seed);
}

struct IsaGuard {
    Isa saved = active_isa();
    ~IsaGuard() {
        force_isa(saved);
        enable_dot4(true);
        enable_tile(true);
        enable_panel(true);
    }
};

}  // namespace

TEST(Dot4, BitIdenticalToFourDots) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    for (GgmlType t : kernel_types())
        for (int64_t n : lengths(t)) {
            std::vector<std::vector<float>> x;
            for (int c = 0; c < 4; ++c) x.push_back(random_row(rng, n, c == 2 ? 1e-3f : 1.f));
            std::fill(x[3].begin(), x[3].begin() + std::min<int64_t>(n, 256), 0.f);  // zero blocks
            std::vector<std::vector<uint8_t>> rows;
            for (int r = 0; r < 3; ++r) rows.push_back(quantized(t, random_row(rng, n)));
            for (Isa isa : available_isas()) {
                SCOPED_TRACE(trace(t, isa, n, seed));
                std::vector<std::vector<uint8_t>> act(4, std::vector<uint8_t>(act_bytes(t, n)));
                const void* acts[4];
                for (int c = 0; c < 4; ++c) {
                    prepare_act_isa(isa, t, x[size_t(c)].data(), act[size_t(c)].data(), n);
                    acts[c] = act[size_t(c)].data();
                }
                for (const auto& w : rows) {
                    float want[4], got[4];
                    for (int c = 0; c < 4; ++c) want[c] = vec_dot_isa(isa, t, w.data(), acts[c], n);
                    vec_dot4_isa(isa, t, w.data(), acts, n, got);
                    ASSERT_EQ(std::memcmp(got, want, sizeof got), 0)
                        << got[0] << " " << want[0] << " / " << got[1] << " " << want[1] << " / " << got[2] << " "
                        << want[2] << " / " << got[3] << " " << want[3];
                }
            }
        }
}

// The tiles (several rows x several columns) against vec_dot, bit for bit: rows at a padded stride,
// columns as in BitIdenticalToFourDots.
TEST(Dot4, TileBitIdenticalToDots) {
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    int tested = 0;
    for (GgmlType t : kernel_types())
        for (Isa isa : available_isas()) {
            const TileShape ts = tile_shape_isa(isa, t);
            if (!ts.rows) continue;
            ++tested;
            for (int64_t n : lengths(t)) {
                SCOPED_TRACE(trace(t, isa, n, seed) + " tile " + std::to_string(ts.rows) + "x" +
                             std::to_string(ts.cols));
                const int64_t rb = row_bytes(t, n), stride = rb + 64;
                std::vector<uint8_t> w(size_t(stride * ts.rows));
                for (int r = 0; r < ts.rows; ++r) {
                    const std::vector<uint8_t> q = quantized(t, random_row(rng, n));
                    std::memcpy(w.data() + r * stride, q.data(), size_t(rb));
                }
                std::vector<std::vector<uint8_t>> act(size_t(ts.cols), std::vector<uint8_t>(act_bytes(t, n)));
                std::vector<const void*> acts;
                for (int c = 0; c < ts.cols; ++c) {
                    std::vector<float> x = random_row(rng, n, c % 3 == 2 ? 1e-3f : 1.f);
                    if (c % 4 == 3) std::fill(x.begin(), x.begin() + std::min<int64_t>(n, 256), 0.f);
                    prepare_act_isa(isa, t, x.data(), act[size_t(c)].data(), n);
                    acts.push_back(act[size_t(c)].data());
                }
                std::vector<float> got(size_t(ts.rows * ts.cols));
                vec_tile_isa(isa, t, w.data(), stride, acts.data(), n, got.data());
                for (int r = 0; r < ts.rows; ++r)
                    for (int c = 0; c < ts.cols; ++c) {
                        const float want = vec_dot_isa(isa, t, w.data() + r * stride, acts[size_t(c)], n);
                        ASSERT_EQ(std::memcmp(&got[size_t(r * ts.cols + c)], &want, 4), 0)
                            << "r=" << r << " c=" << c << " " << got[size_t(r * ts.cols + c)] << " " << want;
                    }
            }
        }
    if (isa_available(Isa::Avx2)) {
        EXPECT_GT(tested, 0);
    }
}

// Several jobs of different types and batch sizes in one call (rows of one chunk cross jobs), the
// activations in any order and y with a padded stride; 1 and 2 threads, panels, tiles, dot4 and dot.
TEST(Dot4, MatmulJobsEqualVecDot) {
    IsaGuard guard;
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    ThreadPool pool1(1), pool2(2);
    struct Spec {
        GgmlType t;
        int64_t rows, cols;
    };
    const Spec specs[] = {{GgmlType::Q4_K, 37, 512},
                          {GgmlType::Q6_K, 21, 256},
                          {GgmlType::Q8_0, 45, 96},
                          {GgmlType::F16, 9, 40},
                          {GgmlType::Q5_K, 13, 256},
                          {GgmlType::Q4_0, 30, 64},
                          {GgmlType::Q5_0, 17, 128},  // deepseek2's attn_k_b rows
                          {GgmlType::Q5_1, 11, 96},
                          {GgmlType::IQ4_NL, 19, 128},  // Q2_K / Q3_K files' attn_k_b
                          {GgmlType::IQ4_XS, 7, 512},
                          {GgmlType::IQ2_XXS, 9, 512},
                          {GgmlType::IQ2_XS, 5, 256},
                          {GgmlType::IQ2_S, 6, 768},
                          {GgmlType::IQ3_XXS, 11, 256},
                          {GgmlType::IQ3_S, 5, 512},
                          {GgmlType::IQ1_S, 9, 256},
                          {GgmlType::IQ1_M, 6, 512}};
    const int64_t kN[] = {1, 3, 5, 63, 64, 65, 130};
    constexpr size_t n_jobs = std::size(specs);
    // What a job's pointers point into.
    struct Data {
        std::vector<uint8_t> w, act;
        std::vector<const void*> acts;
        std::vector<float> y;
    };
    for (size_t rot = 0; rot < std::size(kN); ++rot) {
        // Job j gets batch kN[(j + rot) % 7]: every job sees every n over the rotations.
        std::vector<Data> data(n_jobs);
        std::vector<MatmulJob> jobs;
        for (size_t j = 0; j < n_jobs; ++j) {
            const Spec& s = specs[j];
            Data& d = data[j];
            const int64_t n = kN[(j + rot) % std::size(kN)];
            for (int64_t r = 0; r < s.rows; ++r) {
                const std::vector<uint8_t> q = quantized(s.t, random_row(rng, s.cols));
                d.w.insert(d.w.end(), q.begin(), q.end());
            }
            const int64_t stride = int64_t(act_bytes(s.t, s.cols));
            d.act.resize(size_t(stride * n));
            for (int64_t i = 0; i < n; ++i) {
                const std::vector<float> x = random_row(rng, s.cols);
                prepare_act(s.t, x.data(), d.act.data() + i * stride, s.cols);
                d.acts.push_back(d.act.data() + i * stride);
            }
            std::shuffle(d.acts.begin(), d.acts.end(), rng);
            jobs.push_back({WeightView{s.t, s.rows, s.cols, d.w.data()}, d.acts.data(), n, nullptr,
                            s.rows + int64_t(j % 2) * 3});
        }
        for (Isa isa : available_isas()) {
            force_isa(isa);
            ASSERT_EQ(active_isa(), isa);
            for (ThreadPool* pool : {&pool1, &pool2})
                for (int kernel : {3, 2, 1, 0}) {  // panel, tile, dot4, dot
                    enable_dot4(kernel >= 1);
                    enable_tile(kernel >= 2);
                    enable_panel(kernel == 3);
                    for (size_t j = 0; j < n_jobs; ++j) {
                        data[j].y.assign(size_t(jobs[j].ldy * jobs[j].n), NAN);
                        jobs[j].y = data[j].y.data();
                    }
                    matmul_jobs(jobs.data(), int64_t(n_jobs), *pool);
                    for (size_t j = 0; j < n_jobs; ++j) {
                        const MatmulJob& job = jobs[j];
                        const int64_t rb = row_bytes(job.w.type, job.w.cols);
                        SCOPED_TRACE(trace(job.w.type, isa, job.n, seed) + " threads=" + std::to_string(pool->size()) +
                                     " kernel=" + std::to_string(kernel));
                        for (int64_t i = 0; i < job.n; ++i)
                            for (int64_t r = 0; r < job.w.rows; ++r) {
                                const float want = vec_dot(job.w.type, data[j].w.data() + r * rb, job.acts[i], job.w.cols);
                                const float got = job.y[i * job.ldy + r];
                                ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "i=" << i << " r=" << r;
                            }
                    }
                }
        }
    }
}

namespace {

// Panels (Q4_K, Q5_K, Q6_K, Q8_0) at the limits of their i16 sums: every quant at its maximum, scales and
// mins at their largest magnitude, activations +-127, rows not a multiple of 8, 2048 columns; then
// random rows with tiny and zero activation blocks. Bit for bit against vec_dot (the AVX-512 dots
// share the panels' float order).
TEST(Dot4, PanelExtremesAndTails) {
    IsaGuard guard;
    if (!isa_available(Isa::Avx512)) GTEST_SKIP() << "panels are AVX-512 only";
    force_isa(Isa::Avx512);
    const uint32_t seed = fresh_seed();
    std::mt19937 rng(seed);
    const int64_t cols = 2048, rows = 19;
    ThreadPool pool(2);
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0})
        for (int round = 0; round < 2; ++round) {
            SCOPED_TRACE(std::string(type_name(t)) + " seed " + std::to_string(seed) + (round ? " random" : " extremes"));
            const int64_t rb = row_bytes(t, cols), bb = rb / (cols / 256);  // 8 blocks of Q8_0
            std::vector<uint8_t> w;
            for (int64_t r = 0; r < rows; ++r) {
                std::vector<uint8_t> q = quantized(t, random_row(rng, cols));
                for (int64_t b = 0; round == 0 && b < cols / 256; ++b) {  // keep d / dmin
                    uint8_t* blk = q.data() + b * bb;
                    if (t == GgmlType::Q8_0) {  // quants 127 and -127 by block
                        for (int k = 0; k < 8; ++k) std::memset(blk + 34 * k + 2, k % 2 ? 0x81 : 0x7F, 32);
                    } else if (t == GgmlType::Q6_K) {  // ql, qh all ones (q = 63); scales -128 and 127
                        std::memset(blk, 0xFF, 192);
                        for (int g = 0; g < 16; ++g) blk[192 + g] = g % 2 ? 0x7F : 0x80;
                    } else {
                        std::memset(blk + 4, 0xFF, size_t(bb - 4));  // scales, mins, quants at 63 / 15 or 31
                    }
                }
                w.insert(w.end(), q.begin(), q.end());
            }
            for (int64_t n : {8, 17, 31}) {
                const int64_t stride = int64_t(act_bytes(t, cols));
                std::vector<uint8_t> act(size_t(stride * n));
                std::vector<const void*> acts;
                for (int64_t i = 0; i < n; ++i) {
                    std::vector<float> x = random_row(rng, cols, i % 3 == 2 ? 1e-3f : 1.f);
                    if (round == 0)
                        for (size_t e = 0; e < x.size(); ++e) x[e] = (i % 2 ? -1.f : 1.f) * (e % 7 == 3 ? -1.f : 1.f);
                    else if (i % 4 == 3)
                        std::fill(x.begin(), x.begin() + 256, 0.f);
                    prepare_act(t, x.data(), act.data() + i * stride, cols);
                    acts.push_back(act.data() + i * stride);
                }
                std::vector<float> y(size_t(rows * n), NAN);
                const MatmulJob job{WeightView{t, rows, cols, w.data()}, acts.data(), n, y.data(), rows};
                matmul_jobs(&job, 1, pool);
                for (int64_t i = 0; i < n; ++i)
                    for (int64_t r = 0; r < rows; ++r) {
                        const float want = vec_dot(t, w.data() + r * rb, acts[size_t(i)], cols);
                        const float got = y[size_t(i * rows + r)];
                        ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "n=" << n << " i=" << i << " r=" << r;
                    }
            }
        }
}

}  // namespace
