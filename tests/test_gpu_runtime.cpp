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
// mmt_*, attn_prompt_cm* and attn_prompt_mla_cm need VK_NV_cooperative_matrix: on the device machine,
// not on lavapipe).
TEST(GpuRuntime, EveryEmbeddedShaderReflects) {
    for (size_t i = 0; i < gpu::kSpirvModuleCount; ++i) {
        const std::string name = gpu::kSpirvModules[i].name;
        const gpu::SpirvLayout l = gpu::reflect_spirv(gpu::kSpirvModules[i]);
        EXPECT_GT(l.n_bindings, 0u) << name;
        EXPECT_GT(l.push_bytes, 0u) << name;
        const bool tensor = name.rfind("mmc_", 0) == 0 || name.rfind("mmt_", 0) == 0 || name == "attn_prompt_mla_cm" ||
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
    const int fd = open(path.c_str(), O_RDONLY), fdw = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_GE(fdw, 0);
    // The kinds of host memory a driver may or may not pin (printed: which ones this driver takes).
    void* file_map = mmap(nullptr, n, PROT_READ, MAP_SHARED, fd, 0);
    void* populated = mmap(nullptr, n, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    void* writable = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED, fdw, 0);
    void* priv = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    void* anon_map = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (void* m : {file_map, populated, writable, priv, anon_map}) ASSERT_NE(m, MAP_FAILED);
    std::memcpy(anon_map, bytes.data(), n);
    std::vector<void*> heap;  // aligned_alloc'ed blocks, a fresh one for each use
    auto block = [&](size_t size) {
        heap.push_back(std::aligned_alloc(A, size));
        std::memset(heap.back(), 0, size);
        std::memcpy(heap.back(), bytes.data(), n);
        return heap.back();
    };
    struct Kind {
        const char* what;
        const void* p;
        size_t bytes;
    };
    // In this order (a driver may refuse some kinds, and a refusal may spoil what follows): anonymous
    // memory, 256 MiB of it on a real GPU (an import of expert pages is like that), a file's mappings,
    // anonymous memory again.
    std::vector<Kind> kinds = {{"anonymous mmap", anon_map, n}, {"heap", block(n), n}, {"heap, another", block(n), n}};
    if (!c.info().is_cpu) kinds.push_back({"heap, 256 MiB", block(size_t(256) << 20), size_t(256) << 20});
    for (Kind k : {Kind{"file mapping", file_map, n}, Kind{"file mapping, populated", populated, n},
                   Kind{"file mapping, shared writable", writable, n}, Kind{"file mapping, private writable", priv, n},
                   Kind{"heap, after the file mappings", block(n), n}})
        kinds.push_back(k);
    int imported = 0;
    for (const Kind& k : kinds) {
        try {
            gpu::Buffer h = c.import_host(k.p, k.bytes, k.what);
            gpu::Buffer d = c.alloc(n, gpu::Mem::Device, "dst");
            gpu::Cmd cmd(c);
            cmd.begin();
            cmd.copy(h, A, d, 0, n - A);  // from an offset, as an expert's bytes are
            cmd.end();
            cmd.run();
            std::vector<uint8_t> got(n - A);
            c.download(d, 0, got.data(), got.size());
            EXPECT_EQ(std::memcmp(got.data(), bytes.data() + A, got.size()), 0) << k.what;
            ++imported;
            std::printf("  %s: imported and copied\n", k.what);
        } catch (const gpu::GpuError& e) {
            std::printf("  %s: %s\n", k.what, e.what());
        }
    }
    EXPECT_THROW(c.import_host(static_cast<const uint8_t*>(kinds[1].p) + 16, A, "misaligned"), gpu::GpuError);
    try {  // does the device still allocate and copy after what it refused?
        gpu::Buffer h = c.alloc(n, gpu::Mem::Upload, "after"), d = c.alloc(n, gpu::Mem::Device, "after");
        c.upload(d, 0, bytes.data(), n);
        std::printf("  a host buffer and an upload afterwards: fine\n");
    } catch (const gpu::GpuError& e) {
        std::printf("  afterwards: %s\n", e.what());
    }
    if (c.info().is_cpu) {
        EXPECT_EQ(imported, int(kinds.size()));  // lavapipe imports them all
    }
    for (void* m : {file_map, populated, writable, priv, anon_map}) munmap(m, n);
    close(fd);
    close(fdw);
    for (void* p : heap) std::free(p);
    std::remove(path.c_str());
}

}  // namespace
}  // namespace sluice
