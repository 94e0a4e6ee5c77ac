// Qwen3.5-MoE / Qwen3-Next on the GPU path (engine/models/qwen35moe_gpu.cpp) against the CPU path
// (qwen35moe.cpp) on the reference fixtures, in every expert placement, plus snapshots moving between
// the two and quantized files. Runs on lavapipe on CI (see gpu_test_util.h).
#include <gtest/gtest.h>

#include <cstdio>
#include <unistd.h>

#include "engine/error.h"
#include "engine/gguf/requantize.h"
#include "engine/model.h"
#include "tests/gpu_model_test_util.h"
#include "tests/qwen35_test_util.h"
#include "tests/ref_test_util.h"

namespace sluice {
namespace {

using namespace reftest;
using namespace gputest;

const std::string kDir = std::string(SLUICE_FIXTURES) + "/qwen35/";

// The CPU's one-token forward, which the GPU mirrors op for op (the layer-major prompt path sums in
// another order).
ModelOptions one_token() {
    ModelOptions o = cpu_opts();
    o.prefill_chunk = 1;
    return o;
}

class GpuQwen35 : public ::testing::TestWithParam<std::tuple<std::string, Placement>> {};

// F16 weights: both paths multiply float activations, so only summation order differs (and the
// GPU's exp, 3 + 2|x| ulp, in silu, sigmoid and the decay). b (64 experts, top-10) amplifies rounding
// most: the CPU path itself is 1.2e-5 from transformers there, the GPU 5.2e-6, and the two 1.07e-5
// apart (the delta step sums S's columns in 4 parts); the others stay below 6e-6.
TEST_P(GpuQwen35, LogitsMatchCpuPath) {
    const auto& [fixture, pl] = GetParam();
    Bounds b;
    b.cpu = one_token();
    b.max_err_cpu = 2e-5;
    expect_gpu_matches_cpu(kDir, fixture, pl, b);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuQwen35,
                         ::testing::Combine(::testing::Values("a", "b", "c", "next_a"), ::testing::ValuesIn(kPlacements)),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param).name; });

// The state blob is the CPU path's: a conversation started on the GPU continues on the CPU and back,
// for both head mappings (a: tiled, next_a: grouped with the fused ssm_ba).
TEST(GpuQwen35State, SnapshotsMoveBetweenCpuAndGpu) {
    for (const char* fixture : {"a", "next_a"}) {
        SCOPED_TRACE(fixture);
        const std::string path = kDir + fixture + ".gguf";
        const auto ids = read_ids(kDir + fixture + ".tokens.txt");
        SnapshotModels m = expect_snapshots_move_both_ways(path, ids, one_token());
        auto& gpu = m.gpu;
        const auto& full = m.full;
        const size_t nv = m.nv;

        // truncate(): as the CPU class, only to where it is or to 0 (the recurrent state cannot go back).
        EXPECT_THROW(gpu->truncate(30), Error);
        gpu->truncate(gpu->n_past());
        gpu->truncate(0);
        EXPECT_EQ(gpu->n_past(), 0);
        EXPECT_LE(max_rel_err(gpu->forward_tokens(ids, true), full, int64_t(nv)), 1e-5);

        // A blob of another model is refused and leaves a reset state, as on the CPU.
        auto other = load_model(kDir + (std::string(fixture) == "a" ? "c" : "a") + ".gguf", cpu_opts());
        EXPECT_THROW(gpu->load_state(other->save_state()), Error);
        EXPECT_EQ(gpu->n_past(), 0);
    }
}

// llama.cpp's --fuse-qkv --fuse-gate-up-exps layout: the full layers' q (with its gate rows), k and v as
// one attn_qkv regrouped at upload, each expert's gate and up rows as one slab.
TEST(GpuQwen35Fused, FusedQkvAndGateUpMatchCpuPath) {
    const std::string fused = fused_copy(kDir + "a.gguf", tmp_dir() + "gpu_q35_fused_" + std::to_string(getpid()) + ".gguf");
    const auto ids = read_ids(kDir + "a.tokens.txt");
    for (GpuExperts where : {GpuExperts::Auto, GpuExperts::Gpu}) {
        ModelOptions g = gpu_opts();
        if (where == GpuExperts::Gpu) g.gpu_expert_cache = small_cache(fused);
        g.gpu_experts = where;
        std::string placement;
        const auto got = logits(fused, g, ids, &placement);
        const auto cpu = logits(kDir + "a.gguf", one_token(), ids);
        EXPECT_NE(placement.find("GPU"), std::string::npos) << placement;
        EXPECT_LE(max_rel_err(got, cpu, int64_t(cpu.size() / ids.size())), 1e-5) << placement;
    }
    std::remove(fused.c_str());
}

// Quantized files: the GPU dequantizes exactly and keeps activations in float, while the CPU's integer
// kernels round activations to 8 bits. The L2-normalised q/k and the top-k routing amplify either
// rounding (test_qwen35_ref.cpp), so the two paths differ about as much from each other as from the
// float model (measured, GPU vs CPU: a q8_0 top-1 0.85 KL 0.11, next_a q8_0 0.80 / 0.19, c q4_K
// 0.93 / 0.21). Bounds are the CPU's against the float model (test_qwen35_ref.cpp).
struct QuantCase {
    const char* fixture;
    GgmlType type;
    double min_top1, max_kl;  // against transformers' float logits
};
class GpuQwen35Quant : public ::testing::TestWithParam<QuantCase> {};

TEST_P(GpuQwen35Quant, AgreesWithFloatReference) {
    const QuantCase c = GetParam();
    const QuantLogits l = quantized_logits(kDir, c.fixture, c.type, one_token());
    const int64_t nv = l.n_vocab;
    const Agreement vs_cpu = agreement(l.gpu, l.cpu, nv), g = agreement(l.gpu, l.ref, nv), cf = agreement(l.cpu, l.ref, nv);
    std::printf("  %s %s: GPU vs CPU top-1 %.3f KL %.3g; vs transformers GPU top-1 %.3f KL %.3g, CPU %.3f KL %.3g\n",
                c.fixture, type_name(c.type), vs_cpu.top1, vs_cpu.kl, g.top1, g.kl, cf.top1, cf.kl);
    EXPECT_NE(l.placement.find("GPU"), std::string::npos) << l.placement;
    EXPECT_GE(g.top1, c.min_top1);
    EXPECT_LE(g.kl, c.max_kl);
}

INSTANTIATE_TEST_SUITE_P(Types, GpuQwen35Quant, ::testing::Values(
    QuantCase{"a", GgmlType::BF16, 0.8, 0.15},
    QuantCase{"a", GgmlType::Q8_0, 0.65, 0.5},
    QuantCase{"next_a", GgmlType::Q8_0, 0.75, 0.25},
    QuantCase{"c", GgmlType::Q8_0, 0.75, 0.35},
    QuantCase{"c", GgmlType::Q6_K, 0.75, 0.4},
    QuantCase{"c", GgmlType::Q4_K, 0.25, 4.0}),
    [](const auto& info) { return std::string(info.param.fixture) + "_" + type_name(info.param.type); });

}  // namespace
}  // namespace sluice
