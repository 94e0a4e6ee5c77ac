// The routed experts' uploads into VRAM when they live outside it (engine/models/gpu_model.cpp,
// gpu_load.cpp): the pinned copy the GPU copies from and its memory budget. Runs on lavapipe on CI,
// made to take a discrete GPU's paths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "engine/gguf/gguf.h"
#include "engine/model.h"
#include "tests/gpu_model_test_util.h"
#include "tests/ref_test_util.h"

namespace sluice {
namespace {

using namespace reftest;
using namespace gputest;

// --memory bounds the pinned copy: a budget that holds the mapped file but not the copy beside it
// stages; one that holds both imports (where the device imports). 128 experts of 1.77 MB: a budget
// above load_model's least (the dense weights + 160 MiB) can still be too small for them twice.
TEST(GpuModelExperts, ExpertCopyStaysWithinMemoryBudget) {
    const std::string f = tmp_dir() + "gpu_budget_" + std::to_string(getpid()) + ".gguf";
    const std::string cmd = std::string(SLUICE_BIN) + " gen-model --arch qwen3moe --layers 1 --embd 1024 --heads 8 " +
                            "--kv-heads 2 --head-dim 128 --experts 128 --used 4 --ff-exp 1024 --vocab 300 --type q4_K --out " +
                            f + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    FILE* fp = std::fopen(f.c_str(), "rb");
    ASSERT_TRUE(fp);
    std::fseek(fp, 0, SEEK_END);
    const uint64_t file = uint64_t(std::ftell(fp)), experts = 128ull * 3 * 1024 * 1024 / 256 * 144;
    std::fclose(fp);
    const std::vector<int32_t> ids = small_moe_ids(12);
    for (const uint64_t budget : {file + experts / 2, file + experts + (uint64_t(256) << 20)}) {
        ModelOptions o = gpu_opts();
        o.gpu_expert_cache = 16ull << 20;
        o.gpu_experts = GpuExperts::Gpu;
        o.gpu_emulate_discrete = true;
        o.io = IoMode::Mmap;
        o.memory_budget = budget;
        auto m = load_model(f, o);
        m->forward_tokens(std::span<const int32_t>(ids.data(), ids.size()), true);
        const GpuCounters c = m->gpu_counters();
        SCOPED_TRACE(budget >> 20);
        EXPECT_GT(c.upload_bytes_direct + c.upload_bytes_staged, 0u);
        if (budget < file + experts) {
            EXPECT_EQ(c.upload_bytes_direct, 0u);
        } else if (ctx().can_import()) {
            EXPECT_EQ(c.upload_bytes_staged, 0u);
        }
    }
    std::remove(f.c_str());
}

// Uploads copied by the GPU from a pinned copy of the experts (imported host memory, discrete GPUs)
// give the logits the staging buffer gives, to the bit: cache misses token by token and prompt
// batches' arenas. The counters say which path the bytes took (all from the copy where the device
// imports); a streamed file (no mapping) always stages, and so does split's filling of its cache.
TEST(GpuModelExperts, ImportedExpertCopyUploadsAsTheStagingBufferDoes) {
    const std::string f = small_moe("qwen3moe", "gpu_imp_");
    ASSERT_FALSE(f.empty());
    const std::vector<int32_t> ids = small_moe_ids(100);
    setenv("SLUICE_GPU_PROMPT_BATCH", "64", 1);
    setenv("SLUICE_GPU_BATCH_EXPERTS", "gpu", 1);
    for (const GpuExperts at : {GpuExperts::Gpu, GpuExperts::Cpu}) {
        ModelOptions o = gpu_opts();
        o.n_ctx = 256;
        o.gpu_expert_cache = 2 * 6 * 3 * 256 * 256 * 144 / 256;  // 6 Q4_K experts a layer
        o.gpu_experts = at;
        o.gpu_emulate_discrete = true;
        GpuCounters c[2];
        std::vector<float> l[2];
        for (int imp = 0; imp < 2; ++imp) {
            setenv("SLUICE_GPU_IMPORT", imp ? "1" : "0", 1);
            auto m = load_model(f, o);
            l[imp] = m->forward_tokens(std::span<const int32_t>(ids.data(), 64), false);  // one batch
            const auto t = m->forward_tokens(std::span<const int32_t>(ids.data() + 64, 36), true);  // token by token
            l[imp].insert(l[imp].end(), t.begin(), t.end());
            c[imp] = m->gpu_counters();
        }
        unsetenv("SLUICE_GPU_IMPORT");
        SCOPED_TRACE(at == GpuExperts::Gpu ? "cache" : "cpu");
        ASSERT_EQ(l[1].size(), l[0].size());
        EXPECT_EQ(std::memcmp(l[1].data(), l[0].data(), l[0].size() * 4), 0);  // the same bits (NaN would not hide)
        EXPECT_TRUE(std::all_of(l[0].begin(), l[0].end(), [](float v) { return std::isfinite(v); }));
        EXPECT_EQ(c[0].upload_bytes_direct, 0u);
        EXPECT_GT(c[0].upload_bytes_staged, 0u);
        EXPECT_EQ(c[1].upload_bytes_direct + c[1].upload_bytes_staged, c[0].upload_bytes_staged);
        if (ctx().can_import()) {
            EXPECT_EQ(c[1].upload_bytes_staged, 0u);  // every byte from the imported copy
        }
        std::printf("  %s: %llu bytes uploaded from the imported copy\n", at == GpuExperts::Gpu ? "cache" : "cpu",
                    (unsigned long long)c[1].upload_bytes_direct);
    }
    {  // split filling its cache token by token: staged, no copy made for it
        ModelOptions o = gpu_opts();
        o.gpu_expert_cache = 2 * 6 * 3 * 256 * 256 * 144 / 256;
        o.gpu_experts = GpuExperts::Split;
        o.gpu_emulate_discrete = true;
        auto m = load_model(f, o);
        m->forward_tokens(std::span<const int32_t>(ids.data(), 8), true);
        EXPECT_EQ(m->gpu_counters().upload_bytes_direct, 0u);
        EXPECT_GT(m->gpu_counters().upload_bytes_staged, 0u);
    }
    // Streamed (no mapping): staged.
    ModelOptions p = cpu_opts();
    p.io = IoMode::Direct;
    const uint64_t slot = load_model(f, p)->memory().slot_bytes;
    ModelOptions o = gpu_opts();
    o.gpu_experts = GpuExperts::Cpu;
    o.gpu_emulate_discrete = true;
    o.io = IoMode::Direct;
    o.prefetch = false;
    o.expert_cache = 5 * slot;
    auto m = load_model(f, o);
    m->forward_tokens(std::span<const int32_t>(ids.data(), 64), false);
    EXPECT_EQ(m->gpu_counters().upload_bytes_direct, 0u);
    EXPECT_GT(m->gpu_counters().upload_bytes_staged, 0u);
    unsetenv("SLUICE_GPU_BATCH_EXPERTS");
    unsetenv("SLUICE_GPU_PROMPT_BATCH");
    std::remove(f.c_str());
}

}  // namespace
}  // namespace sluice
