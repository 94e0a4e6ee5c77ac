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
#include "tests/gpu_model_test_util.h"
#include "tests/ref_test_util.h"

namespace sluice {
namespace {

using namespace reftest;
using namespace gputest;

const std::string kDir = std::string(SLUICE_FIXTURES) + "/deepseek2/";

const Placement kPlacements[] = {
    {"resident", false, GpuExperts::Auto, false, "experts: resident"},
    {"resident_host_routed", false, GpuExperts::Auto, false, "experts: resident", true},
    {"vram_cache", true, GpuExperts::Gpu, true, "experts: VRAM cache"},
    {"vram_cache_unified", true, GpuExperts::Gpu, false, "experts: VRAM cache"},  // misses written in place
    {"cpu_experts", true, GpuExperts::Cpu, false, "experts: CPU"},
    {"split", true, GpuExperts::Split, true, "experts: VRAM cache + CPU"},  // cached on the GPU, the rest on the CPU
    {"split_unified", true, GpuExperts::Split, false, "experts: VRAM cache + CPU"},
    {"auto_measured", true, GpuExperts::Auto, false, "measured"},
};

class GpuDeepSeek2 : public ::testing::TestWithParam<std::tuple<std::string, Placement>> {};

// F16 weights: both paths multiply float activations, so only summation order differs.
TEST_P(GpuDeepSeek2, LogitsMatchCpuPath) {
    const auto& [fixture, pl] = GetParam();
    const PlacementErrors e = run_placement(kDir, fixture, pl);
    EXPECT_NE(e.where.find(pl.expect), std::string::npos) << e.where;
    EXPECT_LE(e.cpu, 1e-5);
    EXPECT_LE(e.ref, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuDeepSeek2,
                         ::testing::Combine(::testing::Values("ds_a", "ds_b", "ds_c"), ::testing::ValuesIn(kPlacements)),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param).name; });

// Prompt batches with the experts on the CPU (gpu_model_test_util.h): the GPU's layers token by token
// within each segment (no batch recording for this architecture), the experts grouped by expert.
TEST(GpuDeepSeek2Batch, HostExpertBatchesMatchTokenByToken) {
    for (const char* fixture : {"ds_a", "ds_b"}) expect_host_expert_batches(kDir, fixture, 48);
}

// The state blob is the CPU path's: a conversation started on the GPU continues on the CPU and back.
TEST(GpuDeepSeek2State, SnapshotsMoveBetweenCpuAndGpu) {
    expect_snapshots_move(kDir + "ds_a.gguf", read_ids(kDir + "ds_a.tokens.txt"));
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
// against the float reference. Q3_K, which that file leaves out: measured GPU 0.25 / 6.4, CPU 0.27 / 6.2.
class GpuDeepSeek2Quant : public ::testing::TestWithParam<QuantCase> {};

TEST_P(GpuDeepSeek2Quant, AgreesWithFloatReference) { run_quantized(kDir, GetParam()); }

INSTANTIATE_TEST_SUITE_P(Types, GpuDeepSeek2Quant, ::testing::Values(
    QuantCase{"ds_a", GgmlType::BF16, 0.8, 0.3},
    QuantCase{"ds_a", GgmlType::Q8_0, 0.65, 1.0},
    QuantCase{"ds_c", GgmlType::Q8_0, 0.8, 0.6},
    QuantCase{"ds_c", GgmlType::Q6_K, 0.65, 0.5},
    QuantCase{"ds_c", GgmlType::Q4_K, 0.3, 4.0},
    QuantCase{"ds_c", GgmlType::Q4_0, 0.3, 6.0},
    QuantCase{"ds_c", GgmlType::Q3_K, 0.15, 10.0},
    QuantCase{"ds_c", GgmlType::Q2_K, 0.03, 16.0}),
    [](const auto& info) { return std::string(info.param.fixture) + "_" + type_name(info.param.type); });

}  // namespace
}  // namespace sluice
