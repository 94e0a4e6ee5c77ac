// The qwen35moe (GatedDeltaNet) shaders against the CPU blocks they mirror (engine/blocks.h's
// conv1d_step, l2norm, gated_delta_step, rmsnorm, as qwen35moe.cpp strings them together) on random
// inputs with a fresh seed per run, several tokens in a row so the state the GPU carries is checked
// too, in both value-to-key head mappings (tiled: qwen35moe, grouped: qwen3next).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "engine/blocks.h"
#include "engine/models/qwen35moe.h"
#include "tests/gpu_test_util.h"
#include "tests/kernels_test_util.h"

namespace sluice {
namespace {

using namespace gputest;
using qwen35::sigmoid;
using test::fresh_seed;
using test::nmse;
using test::random_row;

constexpr float kL2Eps = 1e-6f, kRmsEps = 1e-6f;

// One layer's parameters and state as the CPU holds them, and the same on the GPU.
struct DeltaCase {
    gpu::DeltaShape s;
    std::vector<float> conv_w, dt_bias, ssm_a, ssm_norm;  // (conv_dim, kernel), (n_v), (n_v), (dv)
    std::vector<float> conv_state, S;                     // (kernel - 1, conv_dim), (n_v, dk, dv)

    DeltaCase(std::mt19937& rng, gpu::DeltaShape shape) : s(shape) {
        conv_w = random_row(rng, s.conv_dim() * s.kernel, 0.5f);
        dt_bias = random_row(rng, s.n_v);
        // Stored as -exp(A_log); HF initialises A uniformly in [1, 16]. GLSL's exp is exact to
        // 3 + 2|x| ulp only, so the decay's error grows with |ssm_a * softplus(..)|.
        std::uniform_real_distribution<float> a_log(0.0f, std::log(16.0f));
        ssm_a.resize(s.n_v);
        for (float& a : ssm_a) a = -std::exp(a_log(rng));
        ssm_norm = random_row(rng, s.dv);
        conv_state = random_row(rng, (s.kernel - 1) * s.conv_dim());
        S = random_row(rng, s.n_v * s.dk * s.dv, 0.3f);
    }
    uint32_t key_head(uint32_t h) const { return s.tiled ? h % s.n_k : h / (s.n_v / s.n_k); }
    // The parameters buffer's layout (DeltaParams offsets).
    std::vector<float> params() const {
        std::vector<float> p = conv_w;
        p.insert(p.end(), dt_bias.begin(), dt_bias.end());
        p.insert(p.end(), ssm_a.begin(), ssm_a.end());
        p.insert(p.end(), ssm_norm.begin(), ssm_norm.end());
        return p;
    }
    gpu::DeltaParams offsets(const gpu::Buffer* b) const {
        const uint32_t c = uint32_t(conv_w.size());
        return {b, 0, c, c + s.n_v, c + 2 * s.n_v};
    }

    // qwen35moe.cpp's conv1d_step + delta_inputs on the CPU: qkv (conv_dim) -> conv output; b, a -> beta, decay.
    std::vector<float> conv_ref(const std::vector<float>& qkv, float* b, float* a) {
        std::vector<float> out(qkv.size());
        conv1d_step(out.data(), qkv.data(), conv_state.data(), conv_w.data(), s.conv_dim(), s.kernel);
        for (float& v : out) v = silu(v);
        const float qscale = 1.0f / std::sqrt(float(s.dk));
        for (uint32_t g = 0; g < s.n_k; ++g) {
            l2norm(&out[g * s.dk], s.dk, kL2Eps);
            l2norm(&out[(s.n_k + g) * s.dk], s.dk, kL2Eps);
            for (uint32_t i = 0; i < s.dk; ++i) out[g * s.dk + i] *= qscale;
        }
        for (uint32_t h = 0; h < s.n_v; ++h) {
            b[h] = sigmoid(b[h]);
            const float t = a[h] + dt_bias[h];
            a[h] = std::exp(ssm_a[h] * (t > 20.0f ? t : std::log1p(std::exp(t))));
        }
        return out;
    }

    // qwen35moe.cpp's delta_head for every value head: o (n_v dv).
    std::vector<float> step_ref(const std::vector<float>& qkv, const std::vector<float>& z, const float* beta,
                                const float* decay) {
        const uint32_t kd = s.n_k * s.dk;
        std::vector<float> o(size_t(s.n_v * s.dv)), scratch(s.dv);
        for (uint32_t h = 0; h < s.n_v; ++h) {
            const uint32_t kh = key_head(h);
            float* oh = &o[h * s.dv];
            gated_delta_step(&S[size_t(h) * s.dk * s.dv], oh, &qkv[kh * s.dk], &qkv[kd + kh * s.dk],
                             &qkv[2 * kd + h * s.dv], decay[h], beta[h], s.dk, s.dv, scratch.data());
            rmsnorm(oh, oh, ssm_norm.data(), s.dv, kRmsEps);
            for (uint32_t j = 0; j < s.dv; ++j) oh[j] *= silu(z[h * s.dv + j]);
        }
        return o;
    }
};

const gpu::DeltaShape kShapes[] = {
    {2, 8, 16, 16, 4, true},     // tests/fixtures/qwen35/a.gguf's shape
    {2, 4, 16, 16, 4, false},    // next_a.gguf's (grouped)
    {4, 16, 128, 128, 4, true},  // Qwen3.5-397B-A17B's head sizes (fewer heads)
    {2, 6, 200, 40, 3, false},   // dk above the workgroup size, dv below, an odd kernel
    {3, 3, 24, 300, 2, true},    // dv above the workgroup size, one value head per key head
};

std::string name(const gpu::DeltaShape& s) {
    return "n_k " + std::to_string(s.n_k) + " n_v " + std::to_string(s.n_v) + " dk " + std::to_string(s.dk) + " dv " +
           std::to_string(s.dv) + " kernel " + std::to_string(s.kernel) + (s.tiled ? " tiled" : " grouped");
}

// conv + silu + L2 norm + beta/decay, then the delta step + gated norm, over several tokens: each op's
// output against the CPU's, and the states after the last token.
TEST(GpuDelta, ConvAndDeltaStepOverTokensMatchReference) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    double worst[3] = {0, 0, 0};  // conv output, gated output, S after the last token
    for (const gpu::DeltaShape& s : kShapes) {
        SCOPED_TRACE(name(s));
        DeltaCase c(rng, s);
        const uint32_t cd = s.conv_dim(), vd = s.n_v * s.dv, pad = 5;
        // Activations buffer as the model lays it out, at an offset: [qkv | z | b | a].
        const uint32_t x_off = pad, z_off = x_off + cd, ba_off = z_off + vd;
        gpu::Buffer params = to_gpu(c.params());
        std::vector<float> state(size_t(pad) + c.conv_state.size() + c.S.size());
        std::copy(c.conv_state.begin(), c.conv_state.end(), state.begin() + pad);
        std::copy(c.S.begin(), c.S.end(), state.begin() + pad + long(c.conv_state.size()));
        gpu::Buffer st = to_gpu(state), ob = zeros(size_t(vd + 3));
        const uint32_t conv_off = pad, s_off = pad + uint32_t(c.conv_state.size());
        const gpu::DeltaParams w = c.offsets(&params);
        for (int t = 0; t < 3; ++t) {
            SCOPED_TRACE("token " + std::to_string(t));
            const auto qkv = random_row(rng, cd), z = random_row(rng, vd), ba = random_row(rng, 2 * s.n_v);
            std::vector<float> act(size_t(ba_off + 2 * s.n_v + 3), 0.0f);
            std::copy(qkv.begin(), qkv.end(), act.begin() + x_off);
            std::copy(z.begin(), z.end(), act.begin() + z_off);
            std::copy(ba.begin(), ba.end(), act.begin() + ba_off);
            gpu::Buffer xb = to_gpu(act);
            gpu::Cmd cmd(ctx());
            cmd.begin();
            gpu::delta_conv(cmd, {&xb, x_off}, {&xb, ba_off}, {&st, conv_off}, w, s, 1.0f / std::sqrt(float(s.dk)), kL2Eps);
            cmd.barrier();
            gpu::delta_step(cmd, {&xb, x_off}, {&xb, z_off}, {&xb, ba_off}, {&st, s_off}, w, {&ob, 2}, s, kRmsEps);
            cmd.end();
            cmd.run();

            std::vector<float> bref(ba.begin(), ba.begin() + s.n_v), aref(ba.begin() + s.n_v, ba.end());
            const auto conv = c.conv_ref(qkv, bref.data(), aref.data());
            const auto got = floats(xb, act.size());
            worst[0] = test::nan_max(worst[0], nmse(&got[x_off], conv.data(), cd));
            EXPECT_LT(nmse(&got[x_off], conv.data(), cd), 1e-11) << "conv output";
            EXPECT_LT(nmse(&got[ba_off], bref.data(), s.n_v), 1e-12) << "beta";
            EXPECT_LT(nmse(&got[ba_off + s.n_v], aref.data(), s.n_v), 1e-9) << "decay";
            EXPECT_EQ(got[x_off - 1], 0.0f);
            EXPECT_EQ(got[ba_off + 2 * s.n_v], 0.0f) << "wrote past beta, decay";
            // The step from the GPU's own conv output, so that only the step's error is measured.
            const std::vector<float> conv_gpu(got.begin() + x_off, got.begin() + x_off + cd);
            const auto o = c.step_ref(conv_gpu, z, &got[ba_off], &got[ba_off + s.n_v]);
            const auto og = floats(ob, size_t(vd + 3));
            worst[1] = test::nan_max(worst[1], nmse(&og[2], o.data(), vd));
            EXPECT_LT(nmse(&og[2], o.data(), vd), 1e-10) << "gated output";
            EXPECT_EQ(og[1], 0.0f);
            EXPECT_EQ(og[vd + 2], 0.0f) << "wrote past the output";
        }
        const auto sg = floats(st, state.size());
        EXPECT_LT(nmse(&sg[conv_off], c.conv_state.data(), int64_t(c.conv_state.size())), 1e-14) << "conv state";
        worst[2] = test::nan_max(worst[2], nmse(&sg[s_off], c.S.data(), int64_t(c.S.size())));
        EXPECT_LT(nmse(&sg[s_off], c.S.data(), int64_t(c.S.size())), 1e-11) << "S";
    }
    std::printf("  nmse at most: conv %.2g, gated output %.2g, S %.2g\n", worst[0], worst[1], worst[2]);
}

// A state carried over many tokens stays close: errors do not grow with the decay.
TEST(GpuDelta, LongSequenceStaysClose) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    for (bool tiled : {true, false}) {
        const gpu::DeltaShape s{2, 4, 32, 32, 4, tiled};
        DeltaCase c(rng, s);
        const uint32_t cd = s.conv_dim(), vd = s.n_v * s.dv, z_off = cd, ba_off = cd + vd;
        gpu::Buffer params = to_gpu(c.params());
        std::vector<float> state = c.conv_state;
        state.insert(state.end(), c.S.begin(), c.S.end());
        gpu::Buffer st = to_gpu(state), xb = zeros(ba_off + 2 * s.n_v), ob = zeros(vd);
        gpu::Buffer host = ctx().alloc(size_t(ba_off + 2 * s.n_v) * 4, gpu::Mem::Upload, "inputs");
        const gpu::DeltaParams w = c.offsets(&params);
        gpu::Cmd cmd(ctx());
        cmd.begin();
        cmd.copy(host, 0, xb, 0, host.size());
        cmd.barrier();
        gpu::delta_conv(cmd, {&xb}, {&xb, ba_off}, {&st}, w, s, 1.0f / std::sqrt(float(s.dk)), kL2Eps);
        cmd.barrier();
        gpu::delta_step(cmd, {&xb}, {&xb, z_off}, {&xb, ba_off}, {&st, uint32_t(c.conv_state.size())}, w, {&ob}, s, kRmsEps);
        cmd.end();
        double worst = 0;
        for (int t = 0; t < 64; ++t) {
            auto in = random_row(rng, ba_off + 2 * s.n_v);
            std::memcpy(host.mapped(), in.data(), in.size() * 4);
            cmd.run();
            std::vector<float> b(in.begin() + ba_off, in.begin() + ba_off + s.n_v), a(in.begin() + ba_off + s.n_v, in.end());
            const auto conv = c.conv_ref(std::vector<float>(in.begin(), in.begin() + cd), b.data(), a.data());
            const auto o = c.step_ref(conv, std::vector<float>(in.begin() + z_off, in.begin() + ba_off), b.data(), a.data());
            worst = test::nan_max(worst, nmse(floats(ob, vd).data(), o.data(), vd));
        }
        std::printf("  64 tokens, %s: output nmse at most %.2g\n", tiled ? "tiled" : "grouped", worst);
        EXPECT_LT(worst, 1e-9) << (tiled ? "tiled" : "grouped");
        const auto sg = floats(st, state.size());
        EXPECT_LT(nmse(&sg[c.conv_state.size()], c.S.data(), int64_t(c.S.size())), 1e-10) << "S after 64 tokens";
    }
}

// A prompt batch's delta net (delta_batch: every token's conv at once, the saved inputs after, one scan)
// against delta_conv + delta_step token by token from the same state: each token's gated output and
// the states after, for batches shorter and longer than the conv's history.
TEST(GpuDelta, BatchMatchesTokenByToken) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    double worst = 0;
    for (const gpu::DeltaShape& s : kShapes)
        for (uint32_t n : {1u, 2u, 7u}) {
            SCOPED_TRACE(name(s) + ", " + std::to_string(n) + " tokens");
            DeltaCase c(rng, s);
            const uint32_t cd = s.conv_dim(), vd = s.n_v * s.dv, pad = 3;
            // A token's column: [qkv | z | b | a | conv qkv | beta, decay], then 1 float of padding.
            const gpu::DeltaCols at{cd + vd + 2 * s.n_v + cd + 2 * s.n_v + 1, cd, cd + vd, cd + vd + 2 * s.n_v,
                                    cd + vd + 2 * s.n_v + cd};
            std::vector<float> cols(size_t(pad + n * at.stride), 0.0f);
            for (uint32_t t = 0; t < n; ++t) {
                const auto x = random_row(rng, cd + vd + 2 * s.n_v);
                std::copy(x.begin(), x.end(), cols.begin() + pad + t * at.stride);
            }
            gpu::Buffer params = to_gpu(c.params());
            std::vector<float> state(c.conv_state);
            state.insert(state.end(), c.S.begin(), c.S.end());
            const uint32_t s_off = uint32_t(c.conv_state.size());
            const gpu::DeltaParams w = c.offsets(&params);
            const float qs = 1.0f / std::sqrt(float(s.dk));
            gpu::Buffer xb = to_gpu(cols), st_b = to_gpu(state), ob = zeros(size_t(n) * (vd + 1) + 1);
            {
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::delta_batch(cmd, {&xb, pad}, at, n, {&st_b}, s_off, w, {&ob, 1}, vd + 1, s, qs, kL2Eps, kRmsEps);
                cmd.end();
                cmd.run();
            }
            gpu::Buffer st_t = to_gpu(state), o1 = zeros(vd);
            const auto ogb = floats(ob, size_t(n) * (vd + 1) + 1);
            EXPECT_EQ(ogb[0], 0.0f) << "wrote before the outputs";
            for (uint32_t t = 0; t < n; ++t) {
                std::vector<float> col(cols.begin() + pad + t * at.stride, cols.begin() + pad + t * at.stride + cd + vd + 2 * s.n_v);
                gpu::Buffer x1 = to_gpu(col);
                gpu::Cmd cmd(ctx());
                cmd.begin();
                gpu::delta_conv(cmd, {&x1}, {&x1, cd + vd}, {&st_t}, w, s, qs, kL2Eps);
                cmd.barrier();
                gpu::delta_step(cmd, {&x1}, {&x1, cd}, {&x1, cd + vd}, {&st_t, s_off}, w, {&o1}, s, kRmsEps);
                cmd.end();
                cmd.run();
                const auto want = floats(o1, vd);
                const double e = nmse(&ogb[1 + t * (vd + 1)], want.data(), vd);
                worst = test::nan_max(worst, e);
                EXPECT_LT(e, 1e-12) << "token " << t;
            }
            const auto sb = floats(st_b, state.size()), stt = floats(st_t, state.size());
            EXPECT_LT(nmse(sb.data(), stt.data(), int64_t(s_off)), 1e-14) << "conv state";
            EXPECT_LT(nmse(&sb[s_off], &stt[s_off], int64_t(c.S.size())), 1e-12) << "S";
            const auto xg = floats(xb, cols.size());
            for (uint32_t t = 0; t < n; ++t)  // the raw inputs are left as they were
                EXPECT_EQ(0, std::memcmp(&xg[pad + t * at.stride], &cols[pad + t * at.stride], size_t(cd + vd + 2 * s.n_v) * 4));
        }
    std::printf("  batch vs token by token: output nmse at most %.2g\n", worst);
}

TEST(GpuDelta, SigmoidGateElementwiseAndScalarAccumulate) {
    const uint32_t seed = fresh_seed();
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const uint32_t n = 1000;
    const auto a = random_row(rng, n), g = random_row(rng, n + 1, 3.0f), y0 = random_row(rng, n + 2);
    gpu::Buffer ab = to_gpu(a), gb = to_gpu(g), yb = to_gpu(y0);
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::sigmoid_gate(cmd, {&ab}, {&gb, 1}, {&yb, 1}, n, false, false);  // y = a * sigmoid(g)
    cmd.barrier();
    gpu::sigmoid_gate(cmd, {&ab}, {&gb, 7}, {&yb, 1}, n, true, true);  // y += a * sigmoid(g[7])
    cmd.end();
    cmd.run();
    std::vector<float> ref(n);
    for (uint32_t i = 0; i < n; ++i) ref[i] = a[i] * sigmoid(g[i + 1]) + a[i] * sigmoid(g[7]);
    const auto got = floats(yb, n + 2);
    EXPECT_LT(nmse(&got[1], ref.data(), n), 1e-13);
    EXPECT_EQ(got[0], y0[0]);
    EXPECT_EQ(got[n + 1], y0[n + 1]);
}

}  // namespace
}  // namespace sluice
