// deepseek2's Multi-head Latent Attention on the GPU (shaders/mla_rope.comp, mla_attn.comp, mla_prompt.comp
// and the per-head matvecs of Wk_b / Wv_b) and its routing (topk.comp -DGROUPED) against the CPU arithmetic
// of engine/models/deepseek2.cpp and engine/attention.h, on random inputs with a fresh seed per run
// (SLUICE_SEED=N replays).
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "engine/attention.h"
#include "engine/blocks.h"
#include "engine/models/deepseek2.h"
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

// (n_head, kv_lora, n_rot, n_nope): DeepSeek-V3's latent and rope widths with fewer heads, each
// attention variant (2, 4 and 8 heads a workgroup: 20, 34 and 68 heads, the last two with a partial
// group), and the fixtures' (tests/fixtures/deepseek2/ds_a).
const std::tuple<uint32_t, uint32_t, uint32_t, uint32_t> kShapes[] = {
    {20, 512, 64, 128}, {34, 512, 64, 128}, {68, 512, 64, 128}, {4, 32, 8, 16}};

// YaRN-like frequencies (some pairs slowed) and an mscale != 1, so the table is the model's, not a base's.
std::vector<double> test_freqs(uint32_t n_rot) {
    std::vector<double> f(n_rot / 2);
    for (size_t i = 0; i < f.size(); ++i) f[i] = std::pow(10000.0, -2.0 * double(i) / n_rot) / (i >= f.size() / 2 ? 40.0 : 1.0);
    return f;
}

gpu::Buffer step_freqs(uint32_t pos, const std::vector<double>& f, float mscale) {
    std::vector<uint8_t> s(gpu::kStepBytes);
    gpu::write_step_freqs(s.data(), pos, 0, f.data(), uint32_t(f.size()), mscale);
    return to_gpu(s);
}

// deepseek2.cpp rope(): pairs (2i, 2i+1) of n_rot floats at x, turned by pos * f[i], times mscale.
void ref_rope(float* x, uint32_t n_rot, uint32_t pos, const std::vector<double>& f, float mscale) {
    for (uint32_t i = 0; i < n_rot; i += 2) {
        const double theta = double(pos) * f[i / 2];
        const float c = float(std::cos(theta)) * mscale, s = float(std::sin(theta)) * mscale, a = x[i], b = x[i + 1];
        x[i] = a * c - b * s;
        x[i + 1] = a * s + b * c;
    }
}

// The CPU's attention over latent cache rows (deepseek2.cpp mla_args()): n_q queries from position
// pos0, query i's heads (rows of kv_lora + n_rot) at q + i * q_row, outputs (kv_lora) at out + i * out_row.
AttnChunk mla_chunk(const float* q, int64_t q_row, float* out, int64_t out_row, const float* cache, uint32_t nh, uint32_t kvl,
                    uint32_t row, int64_t pos0, int64_t n_q, float scale) {
    AttnChunk a{};
    a.q = q;
    a.q_row = q_row;
    a.q_head = row;
    a.out = out;
    a.out_row = out_row;
    a.out_head = kvl;
    a.k = a.v = cache;
    a.k_stride = a.v_stride = row;
    a.pos0 = pos0;
    a.n_q = n_q;
    a.n_head = nh;
    a.n_head_kv = 1;
    a.head_dim = row;
    a.head_dim_v = kvl;
    a.scale = scale;
    return a;
}

// q_pe of every head into the tail of its qcat row, the cache row [rmsnorm(c) * w | rope(k_pe)] at
// step.pos; the rest of qcat and the cache untouched.
TEST(GpuMla, RopeOfQpeAndCacheRowMatchReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [nh, kvl, n_rot, n_nope] : kShapes) {
        const uint32_t qk = n_nope + n_rot, row = kvl + n_rot, n_ctx = 64;
        const auto f = test_freqs(n_rot);
        const float mscale = 1.25f;
        for (uint32_t pos : {0u, 7u, 63u}) {
            const auto qkva = random_row(rng, nh * qk + row);  // q (nh, qk), then kva = [c | k_pe]
            const auto norm = random_row(rng, kvl);
            gpu::Buffer qb = to_gpu(qkva), nb = to_gpu(norm), qcat = zeros(size_t(nh * row)), cache = zeros(size_t(n_ctx * row));
            gpu::Buffer step = step_freqs(pos, f, mscale);
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::mla_rope(cmd, {&qb, n_nope}, qk, {&qb, nh * qk}, {&qcat}, {&cache}, {&nb}, {nh, kvl, n_rot, n_ctx}, 1e-6f, step);
            cmd.end();
            cmd.run();
            std::vector<float> want_q(size_t(nh * row), 0.0f), want_c(size_t(n_ctx * row), 0.0f);
            for (uint32_t h = 0; h < nh; ++h) {
                float* t = &want_q[size_t(h * row + kvl)];
                std::copy(&qkva[size_t(h * qk + n_nope)], &qkva[size_t((h + 1) * qk)], t);
                ref_rope(t, n_rot, pos, f, mscale);
            }
            float* r = &want_c[size_t(pos * row)];
            rmsnorm(r, &qkva[size_t(nh * qk)], norm.data(), kvl, 1e-6f);
            std::copy(&qkva[size_t(nh * qk + kvl)], &qkva[size_t(nh * qk + row)], r + kvl);
            ref_rope(r + kvl, n_rot, pos, f, mscale);
            const auto got_q = floats(qcat, want_q.size()), got_c = floats(cache, want_c.size());
            EXPECT_LT(nmse(got_q.data(), want_q.data(), int64_t(want_q.size())), 1e-12) << "q_pe, pos " << pos;
            EXPECT_LT(nmse(got_c.data(), want_c.data(), int64_t(want_c.size())), 1e-12) << "cache row, pos " << pos;
            for (uint32_t h = 0; h < nh; ++h)
                for (uint32_t i = 0; i < kvl; ++i) ASSERT_EQ(got_q[size_t(h * row + i)], 0.0f) << "q_abs part written";
            for (uint32_t t = 0; t < n_ctx; ++t)
                if (t != pos) {
                    ASSERT_EQ(got_c[size_t(t * row)], 0.0f) << "cache row " << t << " written at pos " << pos;
                }
        }
    }
}

// A prompt batch's rope and cache rows in one dispatch: token j's rows strided, its own step header
// (the batch's back to back) and cache row pos_j.
TEST(GpuMla, BatchRopeWritesEveryTokensRows) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (auto [nh, kvl, n_rot, n_nope] : kShapes) {
        const uint32_t qk = n_nope + n_rot, row = kvl + n_rot, n_ctx = 64, n = 5, pos0 = 41;
        const uint32_t ts = nh * qk + row + 4, qts = nh * row + 8;  // token strides with padding
        const auto f = test_freqs(n_rot);
        const float mscale = 0.75f;
        const auto x = random_row(rng, n * ts);  // token j: q (nh, qk), kva, padding
        const auto norm = random_row(rng, kvl);
        std::vector<uint8_t> steps(n * gpu::kStepBytes);
        for (uint32_t j = 0; j < n; ++j) gpu::write_step_freqs(&steps[j * gpu::kStepBytes], pos0 + j, 0, f.data(), uint32_t(f.size()), mscale);
        gpu::Buffer xb = to_gpu(x), nb = to_gpu(norm), qcat = zeros(size_t(n * qts)), cache = zeros(size_t(n_ctx * row)), sb = to_gpu(steps);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        gpu::mla_rope(cmd, {&xb, n_nope}, qk, {&xb, nh * qk}, {&qcat}, {&cache}, {&nb}, {nh, kvl, n_rot, n_ctx}, 1e-6f, sb,
                      {n, ts, ts, qts});
        cmd.end();
        cmd.run();
        std::vector<float> want_q(size_t(n * qts), 0.0f), want_c(size_t(n_ctx * row), 0.0f);
        for (uint32_t j = 0; j < n; ++j) {
            const float* xj = &x[size_t(j * ts)];
            for (uint32_t h = 0; h < nh; ++h) {
                float* t = &want_q[size_t(j * qts + h * row + kvl)];
                std::copy(xj + h * qk + n_nope, xj + (h + 1) * qk, t);
                ref_rope(t, n_rot, pos0 + j, f, mscale);
            }
            float* r = &want_c[size_t((pos0 + j) * row)];
            rmsnorm(r, xj + nh * qk, norm.data(), kvl, 1e-6f);
            std::copy(xj + nh * qk + kvl, xj + nh * qk + row, r + kvl);
            ref_rope(r + kvl, n_rot, pos0 + j, f, mscale);
        }
        const auto got_q = floats(qcat, want_q.size()), got_c = floats(cache, want_c.size());
        EXPECT_LT(nmse(got_q.data(), want_q.data(), int64_t(want_q.size())), 1e-12) << nh << " heads: q_pe";
        EXPECT_LT(nmse(got_c.data(), want_c.data(), int64_t(want_c.size())), 1e-12) << nh << " heads: cache rows";
        for (size_t i = 0; i < want_q.size(); ++i) {
            if (want_q[i] == 0.0f) {
                ASSERT_EQ(got_q[i], 0.0f) << "qcat float " << i << " written";
            }
        }
        for (size_t i = 0; i < want_c.size(); ++i) {
            if (want_c[i] == 0.0f) {
                ASSERT_EQ(got_c[i], 0.0f) << "cache float " << i << " written";
            }
        }
    }
}

// q_abs[h] = Wk_b[h] (kv_lora, n_nope) q_nope[h] and o[h] = Wv_b[h] (head_dim_v, kv_lora) lat[h]: one
// matvec over the heads (n_mats, strides), reading q_nope inside q's rows and writing q_abs inside
// qcat's, as deepseek2_gpu.cpp calls it.
TEST(GpuMla, PerHeadAbsorbAndValueMatvecs) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const uint32_t nh = 8, kvl = 512, n_rot = 64, n_nope = 128, hdv = 128, qk = n_nope + n_rot, row = kvl + n_rot;
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
        SCOPED_TRACE(type_name(t));
        // (rows, cols, x stride, y stride): Wk_b, then Wv_b
        for (auto [rows, cols, xs, ys] : {std::tuple<uint32_t, uint32_t, uint32_t, uint32_t>{kvl, n_nope, qk, row}, {hdv, kvl, kvl, hdv}}) {
            if (cols % gpu::gpu_type(uint32_t(t))->block_elems) continue;  // K-quants' 256-blocks: not Wk_b's 128 columns
            const int64_t rb = row_bytes(t, cols);
            std::vector<uint8_t> w(size_t(nh * rows * rb));
            std::vector<float> deq(size_t(nh * rows * cols));
            for (uint32_t r = 0; r < nh * rows; ++r) {
                const auto v = random_row(rng, cols, 0.05f);
                quantize_row(t, v.data(), w.data() + r * rb, cols);
                dequantize_row(t, w.data() + r * rb, &deq[size_t(r) * cols], cols);
            }
            const auto x = random_row(rng, nh * xs);
            gpu::Buffer wb = to_gpu(w), xb = to_gpu(x), yb = zeros(size_t(nh * ys)), step = step_buffer(0);
            gpu::MatvecOpts o;
            o.n_mats = nh;
            o.x_mat_stride = xs;
            o.y_mat_stride = ys;
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::matvec(cmd, {&wb, uint32_t(t), 0, rows, cols, uint64_t(rows * rb)}, {&xb}, {&yb}, step, o);
            cmd.end();
            cmd.run();
            const auto got = floats(yb, size_t(nh * ys));
            std::vector<float> want(got.size(), 0.0f), g, wnt;
            for (uint32_t h = 0; h < nh; ++h)
                for (uint32_t r = 0; r < rows; ++r) {
                    double s = 0;
                    for (uint32_t c = 0; c < cols; ++c) s += double(deq[size_t((h * rows + r) * cols + c)]) * x[size_t(h * xs + c)];
                    want[size_t(h * ys + r)] = float(s);
                }
            EXPECT_LT(nmse(got.data(), want.data(), int64_t(want.size())), 1e-10) << rows << "x" << cols;
        }
    }
}

// Split attention over the latent cache, every head reading the same rows as key and value, merged in
// the same dispatch: attention_chunk() with deepseek2.cpp's mla_args() is the reference.
TEST(GpuMla, LatentAttentionMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    ThreadPool pool(1);
    for (auto [nh, kvl, n_rot, n_nope] : kShapes) {
        const uint32_t row = kvl + n_rot, n_ctx = 3000;
        const auto cache = random_row(rng, int64_t(n_ctx) * row);
        const gpu::MlaShape s{nh, kvl, n_rot, n_ctx};
        gpu::Buffer cb = to_gpu(cache), part = zeros(gpu::mla_part_floats(s)), out = zeros(size_t(nh * kvl)),
                    counts = zeros(size_t(nh + 1));
        const float scale = 0.38f / std::sqrt(float(n_nope + n_rot));
        for (uint32_t n_kv : {1u, 5u, 37u, 1024u, 2999u}) {
            const auto q = random_row(rng, nh * row, 0.3f);
            gpu::Buffer qb = to_gpu(q), step = step_buffer(n_kv - 1);
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::mla_attention(cmd, {&qb}, {&cb}, {&part}, {&out}, {&counts, 1}, s, scale, step);
            cmd.end();
            std::vector<float> want(size_t(nh * kvl));
            attention_chunk(mla_chunk(q.data(), nh * row, want.data(), nh * kvl, cache.data(), nh, kvl, row, n_kv - 1, 1, scale), pool);
            for (int run = 0; run < 2; ++run) {  // the merge counters must be back at zero for the second
                cmd.run();
                const auto got = floats(out, want.size());
                EXPECT_LT(nmse(got.data(), want.data(), int64_t(want.size())), 1e-11) << nh << " heads, " << n_kv << " positions, run " << run;
                expect_zero_counts(counts, size_t(nh + 1));
            }
        }
    }
}

// A prompt batch's latent attention (mla_prompt_attention) against attention_chunk() with the batch's
// queries at positions pos0 .. pos0 + n - 1: the float build, and (SLUICE_GPU_COOPMAT=scalar) the
// tensor-core build's float16 tiles in plain arithmetic (the tensor cores themselves where the
// device has them: the device machine's runs). Batches of 1 .. 77 tokens at 0 and 300 cached
// positions, query and output rows strided with padding.
TEST(GpuMla, PromptAttentionMatchesReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    ThreadPool pool(1);
    for (const char* mode : {"float", "scalar"}) {
        if (std::string(mode) == "scalar") setenv("SLUICE_GPU_COOPMAT", "scalar", 1);
        // float16 keys, queries and probabilities: nmse ~1e-6 measured (the float build: ~1e-13)
        const bool f16 = std::string(mode) == "scalar" || gpu::use_coopmat(ctx());
        for (auto [nh, kvl, n_rot, n_nope] : kShapes) {
            const uint32_t row = kvl + n_rot, n_ctx = 400;
            const auto cache = random_row(rng, int64_t(n_ctx) * row);
            gpu::Buffer cb = to_gpu(cache);
            const float scale = 0.38f / std::sqrt(float(n_nope + n_rot));
            for (auto [n, pos0] : {std::pair<uint32_t, uint32_t>{1, 0}, {5, 0}, {77, 0}, {33, 300}}) {
                const uint32_t qs = nh * row + 4, os = nh * kvl + 8;
                const auto q = random_row(rng, n * qs, 0.3f);
                std::vector<uint8_t> steps(n * gpu::kStepBytes);
                for (uint32_t j = 0; j < n; ++j) gpu::write_step(&steps[j * gpu::kStepBytes], pos0 + j, 0, 0, 10000.0f);
                gpu::Buffer qb = to_gpu(q), sb = to_gpu(steps), out = zeros(size_t(n * os));
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::mla_prompt_attention(cmd, {&qb}, qs, {&cb}, {&out}, os, n, {nh, kvl, n_rot, n_ctx}, scale, sb);
                cmd.end();
                cmd.run();
                std::vector<float> want(size_t(n * os), 0.0f);
                attention_chunk(mla_chunk(q.data(), qs, want.data(), os, cache.data(), nh, kvl, row, pos0, n, scale), pool);
                const auto got = floats(out, want.size());
                EXPECT_LT(nmse(got.data(), want.data(), int64_t(want.size())), f16 ? 2e-5 : 1e-11)
                    << mode << ", " << nh << " heads, kv_lora " << kvl << ", " << n << " tokens from " << pos0;
                for (uint32_t j = 0; j < n; ++j)
                    for (uint32_t i = nh * kvl; i < os; ++i) ASSERT_EQ(got[size_t(j * os + i)], 0.0f) << "padding written";
            }
        }
        unsetenv("SLUICE_GPU_COOPMAT");
    }
}

// Routing as route_experts() does it: V3 (sigmoid, bias, 8 groups of which 4 by their two best, weights
// normalised and scaled), V2 (softmax, groups by their best, no normalisation), Kimi K2 (384 experts,
// one group), a MoE without bias.
TEST(GpuMla, GroupedRoutingMatchesRouteExperts) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    struct Case {
        int64_t n_expert, k, n_group, n_group_used;
        bool sigmoid, norm, bias;
        float scale;
    };
    for (const Case c : {Case{256, 8, 8, 4, true, true, true, 2.5f}, Case{160, 6, 8, 3, false, false, false, 16.0f},
                         Case{384, 8, 1, 1, true, true, true, 2.827f}, Case{64, 6, 1, 1, true, false, false, 1.0f}}) {
        ds2::MlaParams m;
        m.n_group = c.n_group;
        m.n_group_used = c.n_group_used;
        m.sigmoid = c.sigmoid;
        m.norm_w = c.norm;
        m.w_scale = c.scale;
        // 20 rows in one dispatch (a prompt batch's), then the first alone (decode's)
        const uint32_t n_rows = 20, R = uint32_t(c.n_expert + 2 * c.k) + 3;  // row: logits, ids, weights, padding
        const std::vector<float> bias = c.bias ? random_row(rng, c.n_expert, 0.1f) : std::vector<float>{};
        std::vector<float> in(size_t(n_rows * R), 0.0f);
        for (float& v : in) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
        gpu::Buffer bb = to_gpu(c.bias ? bias : std::vector<float>(1, 0.0f));
        const gpu::GroupRoute r{uint32_t(c.n_group), uint32_t(c.n_group_used), c.sigmoid, c.norm, c.scale,
                                c.bias ? gpu::Vec{&bb} : gpu::Vec{}};
        for (uint32_t rows : {n_rows, 1u}) {
            gpu::Buffer rb = to_gpu(in);
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::route_grouped(cmd, {&rb}, uint32_t(c.n_expert), uint32_t(c.k), rb, uint32_t(c.n_expert),
                               {&rb, uint32_t(c.n_expert + c.k)}, r, rows, R);
            cmd.end();
            cmd.run();
            for (uint32_t j = 0; j < rows; ++j) {
                std::vector<int32_t> want_ids(size_t(c.k));
                std::vector<float> want_w(size_t(c.k));
                ds2::RouteScratch rs;
                ds2::route_experts(m, bias, c.n_expert, c.k, &in[size_t(j * R)], want_ids.data(), want_w.data(), rs);
                std::vector<int32_t> ids(size_t(c.k));
                ctx().download(rb, size_t(j * R + c.n_expert) * 4, ids.data(), ids.size() * 4);
                const auto w = floats(rb, size_t(c.k), size_t(j * R + c.n_expert + c.k));
                ASSERT_EQ(ids, want_ids) << c.n_expert << " experts, row " << j << " of " << rows;
                EXPECT_LT(nmse(w.data(), want_w.data(), c.k), 1e-12) << c.n_expert << " experts, row " << j << " of " << rows;
            }
            if (rows == 1) {  // the other rows untouched
                const auto after = floats(rb, in.size());
                for (size_t i = R; i < in.size(); ++i) ASSERT_EQ(after[i], in[i]) << "row " << i / R << " written";
            }
        }
    }
}

}  // namespace
}  // namespace sluice
