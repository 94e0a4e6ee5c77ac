// deepseek2 on the GPU path (engine/models/deepseek2_gpu.cpp) against the CPU path (deepseek2.cpp) on the
// reference fixtures (tests/fixtures/deepseek2: q LoRA or plain Wq, YaRN or plain rope, expert groups,
// selection bias, shared experts, leading dense layers), in every expert placement; snapshots moving
// between the two; quantized files. Runs on lavapipe on CI (see gpu_test_util.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "engine/gguf/gguf.h"
#include "engine/gguf/requantize.h"
#include "engine/model.h"
#include "tests/deepseek2_test_util.h"
#include "tests/gpu_test_util.h"
#include "tests/ref_test_util.h"

namespace sluice {
namespace {

using namespace reftest;

const std::string kDir = std::string(SLUICE_FIXTURES) + "/deepseek2/";

ModelOptions cpu_opts() {
    ModelOptions o;
    o.n_ctx = 128;
    return o;
}
ModelOptions gpu_opts() {
    ModelOptions o = cpu_opts();
    o.gpu = std::to_string(gputest::test_device_index());
    return o;
}

std::vector<float> logits(const std::string& path, const ModelOptions& o, const std::vector<int32_t>& ids,
                          std::string* placement = nullptr) {
    auto m = load_model(path, o);
    auto l = m->forward_tokens(ids, true);
    if (placement) *placement = m->placement();
    return l;
}

// A VRAM expert cache of top-k + 1 routed experts per MoE layer (F16), fewer than the layer has
// (ds_c: 3 of 4).
uint64_t small_cache(const std::string& path) {
    auto m = load_model(path, cpu_opts());
    const Hparams& h = m->hparams();
    int64_t n_moe = 0;
    const auto file = gguf::File::open(path);
    for (const gguf::TensorInfo& t : file->tensors()) n_moe += t.name.find("ffn_down_exps") != std::string::npos;
    return uint64_t(n_moe * std::min(h.n_expert_used + 1, h.n_expert - 1) * 3 * h.n_ff_exp * h.n_embd * 2);
}

struct Placement {
    const char* name;
    bool small_cache;  // else VRAM's room: everything resident
    GpuExperts where;
    bool discrete;       // lavapipe made to take the staging path of a discrete GPU
    const char* expect;  // in placement()
    bool host_route = false;  // SLUICE_GPU_ROUTE=host: resident experts routed on the host, not by the shader
};
const Placement kPlacements[] = {
    {"resident", false, GpuExperts::Auto, false, "experts: resident"},
    {"resident_host_routed", false, GpuExperts::Auto, false, "experts: resident", true},
    {"vram_cache", true, GpuExperts::Gpu, true, "experts: VRAM cache"},
    {"cpu_experts", true, GpuExperts::Cpu, false, "experts: CPU"},
    {"auto_measured", true, GpuExperts::Auto, false, "measured"},
};

class GpuDeepSeek2 : public ::testing::TestWithParam<std::tuple<std::string, Placement>> {};

// F16 weights: both paths multiply float activations, so only summation order differs.
TEST_P(GpuDeepSeek2, LogitsMatchCpuPath) {
    const auto& [fixture, pl] = GetParam();
    const std::string path = kDir + fixture + ".gguf";
    const auto ids = read_ids(kDir + fixture + ".tokens.txt");
    ModelOptions g = gpu_opts();
    if (pl.small_cache) g.gpu_expert_cache = small_cache(path);
    g.gpu_experts = pl.where;
    g.gpu_emulate_discrete = pl.discrete;
    std::string where;
    if (pl.host_route) setenv("SLUICE_GPU_ROUTE", "host", 1);  // read when the model loads
    const auto got = logits(path, g, ids, &where);
    unsetenv("SLUICE_GPU_ROUTE");
    const auto cpu = logits(path, cpu_opts(), ids);
    const auto ref = read_f32(kDir + fixture + ".logits.f32");
    ASSERT_EQ(got.size(), cpu.size());
    const int64_t nv = int64_t(ref.size() / ids.size());
    const double err = max_rel_err(got, cpu, nv), err_ref = max_rel_err(got, ref, nv);
    std::printf("  %s %s: max rel err %.3g vs CPU, %.3g vs transformers  [%s]\n", fixture.c_str(), pl.name, err, err_ref,
                where.c_str());
    EXPECT_NE(where.find("GPU"), std::string::npos) << where;
    EXPECT_NE(where.find(pl.expect), std::string::npos) << where;
    EXPECT_LE(err, 1e-5);
    EXPECT_LE(err_ref, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuDeepSeek2,
                         ::testing::Combine(::testing::Values("ds_a", "ds_b", "ds_c"), ::testing::ValuesIn(kPlacements)),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param).name; });

// The state blob is the CPU path's: a conversation started on the GPU continues on the CPU and back.
TEST(GpuDeepSeek2State, SnapshotsMoveBetweenCpuAndGpu) {
    const auto ids = read_ids(kDir + "ds_a.tokens.txt");
    const std::vector<int32_t> first(ids.begin(), ids.begin() + 40), rest(ids.begin() + 40, ids.end());
    auto cpu = load_model(kDir + "ds_a.gguf", cpu_opts());
    auto gpu = load_model(kDir + "ds_a.gguf", gpu_opts());
    ASSERT_NE(gpu->placement().find("GPU"), std::string::npos) << gpu->placement();
    const auto full = cpu->forward_tokens(ids, true);
    const size_t nv = size_t(cpu->hparams().n_vocab);
    const std::vector<float> want(full.end() - std::ptrdiff_t(rest.size() * nv), full.end());

    cpu->reset();
    cpu->forward_tokens(first, false);
    gpu->load_state(cpu->save_state());
    EXPECT_EQ(gpu->n_past(), 40);
    EXPECT_LE(max_rel_err(gpu->forward_tokens(rest, true), want, int64_t(nv)), 1e-5);

    gpu->reset();
    gpu->forward_tokens(first, false);
    const auto blob = gpu->save_state();
    cpu->reset();
    cpu->forward_tokens(first, false);
    EXPECT_EQ(blob.size(), cpu->save_state().size());
    cpu->load_state(blob);
    EXPECT_LE(max_rel_err(cpu->forward_tokens(rest, true), want, int64_t(nv)), 1e-5);

    // truncate(): positions after n are recomputed, as on the CPU.
    gpu->truncate(30);
    const std::vector<int32_t> again(ids.begin() + 30, ids.end());
    const std::vector<float> want2(full.end() - std::ptrdiff_t(again.size() * nv), full.end());
    EXPECT_LE(max_rel_err(gpu->forward_tokens(again, true), want2, int64_t(nv)), 1e-5);
}

// Files converted before attn_kv_b was split (write_legacy_kv_b): Wv_b read inside kv_b, Wk_b transposed.
TEST(GpuDeepSeek2Legacy, OneKvBTensorMatchesCpuPath) {
    const std::string f = tmp_dir() + "gpu_ds2_legacy_" + std::to_string(getpid()) + ".gguf";
    write_legacy_kv_b(kDir + "ds_a.gguf", f);
    const auto ids = read_ids(kDir + "ds_a.tokens.txt");
    std::string where;
    const auto got = logits(f, gpu_opts(), ids, &where);
    const auto cpu = logits(f, cpu_opts(), ids);
    std::remove(f.c_str());
    const double err = max_rel_err(got, cpu, int64_t(cpu.size() / ids.size()));
    std::printf("  ds_a legacy attn_kv_b: max rel err %.3g vs CPU  [%s]\n", err, where.c_str());
    EXPECT_NE(where.find("GPU"), std::string::npos) << where;
    EXPECT_LE(err, 1e-5);
}

// Quantized files: the GPU dequantizes exactly and keeps activations in float, the CPU's integer
// kernels round activations to 8 bits; both are held to the CPU's bounds (tests/test_deepseek2_ref.cpp)
// against the float reference.
struct QuantCase {
    const char* fixture;
    GgmlType type;
    double min_top1, max_kl;
};
class GpuDeepSeek2Quant : public ::testing::TestWithParam<QuantCase> {};

TEST_P(GpuDeepSeek2Quant, AgreesWithFloatReference) {
    const QuantCase c = GetParam();
    const std::string q = tmp_dir() + "gpu_ds2_" + std::to_string(getpid()) + "_" + c.fixture + "." + type_name(c.type) + ".gguf";
    requantize_file(kDir + std::string(c.fixture) + ".gguf", q, c.type);
    const auto ids = read_ids(kDir + c.fixture + ".tokens.txt");
    const auto ref = read_f32(kDir + c.fixture + ".logits.f32");
    const int64_t nv = int64_t(ref.size() / ids.size());
    std::string where;
    const Agreement gpu = agreement(logits(q, gpu_opts(), ids, &where), ref, nv);
    const Agreement cpu = agreement(logits(q, cpu_opts(), ids), ref, nv);
    std::remove(q.c_str());
    std::printf("  %s %s: GPU top-1 %.3f KL %.3g; CPU top-1 %.3f KL %.3g  [%s]\n", c.fixture, type_name(c.type), gpu.top1, gpu.kl,
                cpu.top1, cpu.kl, where.c_str());
    EXPECT_NE(where.find("GPU"), std::string::npos) << where;
    EXPECT_GE(gpu.top1, c.min_top1);
    EXPECT_LE(gpu.kl, c.max_kl);
}

INSTANTIATE_TEST_SUITE_P(Types, GpuDeepSeek2Quant, ::testing::Values(
    QuantCase{"ds_a", GgmlType::BF16, 0.8, 0.3},
    QuantCase{"ds_a", GgmlType::Q8_0, 0.65, 1.0},
    QuantCase{"ds_c", GgmlType::Q8_0, 0.8, 0.6},
    QuantCase{"ds_c", GgmlType::Q6_K, 0.65, 0.5},
    QuantCase{"ds_c", GgmlType::Q4_K, 0.3, 4.0}),
    [](const auto& info) { return std::string(info.param.fixture) + "_" + type_name(info.param.type); });

}  // namespace
}  // namespace sluice
