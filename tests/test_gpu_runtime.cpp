// The Vulkan runtime (shaders/vk_runtime.h): dispatch()'s checks, the embedded shaders, uploads and
// downloads, imported host memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shaders/ops.h"
#include "shaders/spirv.h"
#include "tests/gpu_test_util.h"

namespace sluice {
namespace {

using namespace gputest;

// dispatch() checks what it is given against the shader's own SPIR-V.
TEST(GpuRuntime, DispatchChecksBindingsAndPushConstants) {
    gpu::Buffer a = zeros(16), step = step_buffer(0);
    gpu::Cmd cmd(ctx());
    cmd.begin();
    gpu::SwigluPush p{4, 0, 0, 0};
    EXPECT_THROW(cmd.dispatch("swiglu", {&a, &a}, p, {4}), gpu::GpuError);  // 2 of 3 bindings
    struct Wrong { uint32_t n; } w{4};
    EXPECT_THROW(cmd.dispatch("swiglu", {&a, &a, &a}, w, {4}), gpu::GpuError);  // 4 of 16 bytes
    EXPECT_THROW(cmd.dispatch("no_such_kernel", {&a}, w, {4}), gpu::GpuError);
    EXPECT_NO_THROW(cmd.dispatch("swiglu", {&a, &a, &a}, p, {4}));
    cmd.end();
    cmd.run();
}

// Every shader reflects, and every one this device can run becomes a pipeline (the tensor-core mmc_*,
// mmt_* and attn_prompt_cm* need VK_NV_cooperative_matrix: on the device machine, not on lavapipe).
TEST(GpuRuntime, EveryEmbeddedShaderReflects) {
    for (size_t i = 0; i < gpu::kSpirvModuleCount; ++i) {
        const std::string name = gpu::kSpirvModules[i].name;
        const gpu::SpirvLayout l = gpu::reflect_spirv(gpu::kSpirvModules[i]);
        EXPECT_GT(l.n_bindings, 0u) << name;
        EXPECT_GT(l.push_bytes, 0u) << name;
        const bool tensor = name.rfind("mmc_", 0) == 0 || name.rfind("mmt_", 0) == 0 ||
                            (name.rfind("attn_prompt_cm", 0) == 0 && name.rfind("attn_prompt_cmh", 0) != 0);
        if (tensor && !ctx().info().coopmat) continue;
        EXPECT_NO_THROW(ctx().kernel(name)) << name;
    }
}

// Uploads to device-only memory go through the staging ring in 64 MiB pieces (a unified-memory
// device is made to behave as a discrete one for this).
TEST(GpuRuntime, UploadAndDownloadRoundTrip) {
    std::vector<uint32_t> v((150u << 20) / 4);
    std::iota(v.begin(), v.end(), 7u);
    for (bool discrete : {false, true}) {
        gpu::Context c(ctx().info().index, discrete);
        gpu::Buffer b = c.alloc(v.size() * 4 / 2, gpu::Mem::Device, "round trip");
        EXPECT_EQ(b.mapped() == nullptr, discrete || !c.info().unified);
        c.upload(b, 0, v.data(), b.size());
        std::vector<uint32_t> back(v.size() / 2);
        c.download(b, 0, back.data(), b.size());
        EXPECT_TRUE(std::equal(back.begin(), back.end(), v.begin())) << (discrete ? "discrete" : "as is");
    }
}

// Host memory imported as a copy source (discrete GPUs; lavapipe made to act as one): anonymous
// memory, and a file's read-only mapping (the GGUF's experts), each copied into VRAM and read back.
// A driver may refuse a kind of memory (then GpuError, and the model stages its uploads instead).
TEST(GpuRuntime, ImportedHostMemoryCopiesIntoVram) {
    gpu::Context c(test_device_index(), true);
    if (!c.can_import()) GTEST_SKIP() << c.info().name << " has no VK_EXT_external_memory_host";
    const size_t A = size_t(c.import_alignment()), n = 4 * A;
    const char* tmp = std::getenv("SLUICE_TMP");
    const std::string path = std::string(tmp ? tmp : "/tmp") + "/import_" + std::to_string(getpid()) + ".bin";
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = uint8_t(i * 131 + 7);
    {
        FILE* f = std::fopen(path.c_str(), "wb");
        ASSERT_TRUE(f);
        ASSERT_EQ(std::fwrite(bytes.data(), 1, n, f), n);
        std::fclose(f);
    }
    const int fd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    void* file_map = mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0);
    ASSERT_NE(file_map, MAP_FAILED);
    void* anon = std::aligned_alloc(A, n);
    std::memcpy(anon, bytes.data(), n);
    int imported = 0;
    for (const auto& [what, p] : {std::pair<const char*, const void*>{"anonymous", anon}, {"file mapping", file_map}}) {
        try {
            gpu::Buffer h = c.import_host(p, n, what);
            gpu::Buffer d = c.alloc(n, gpu::Mem::Device, "dst");
            gpu::Cmd cmd(c);
            cmd.begin();
            cmd.copy(h, A, d, 0, n - A);  // from an offset, as an expert's bytes are
            cmd.end();
            cmd.run();
            std::vector<uint8_t> got(n - A);
            c.download(d, 0, got.data(), got.size());
            EXPECT_EQ(std::memcmp(got.data(), bytes.data() + A, got.size()), 0) << what;
            ++imported;
            std::printf("  %s: imported and copied\n", what);
        } catch (const gpu::GpuError& e) {
            std::printf("  %s: %s\n", what, e.what());
        }
    }
    EXPECT_THROW(c.import_host(static_cast<uint8_t*>(anon) + 16, A, "misaligned"), gpu::GpuError);
    if (c.info().is_cpu) EXPECT_EQ(imported, 2);  // lavapipe imports both
    munmap(file_map, n);
    close(fd);
    std::free(anon);
    std::remove(path.c_str());
}

}  // namespace
}  // namespace sluice
