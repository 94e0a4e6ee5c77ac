// Helpers for the GPU tests: the device they run on and float buffers in and out. CI has no GPU but
// installs lavapipe (Mesa's CPU Vulkan driver), which Vulkan reports as a device like any other, so
// these tests fail rather than skip when no device is found.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor/types.h"
#include "shaders/ops.h"
#include "shaders/vk_runtime.h"
#include "tests/kernels_test_util.h"

namespace sluice::gputest {

// SLUICE_TEST_GPU=INDEX picks the device; default: the first usable one (lavapipe on CI).
inline int test_device_index() {
    if (const char* e = std::getenv("SLUICE_TEST_GPU")) return std::atoi(e);
    for (const gpu::DeviceInfo& d : gpu::list_devices())
        if (d.usable) return d.index;
    throw gpu::GpuError("no usable Vulkan device (CI installs mesa-vulkan-drivers for lavapipe)");
}

inline gpu::Context& ctx() {
    static std::unique_ptr<gpu::Context> c = [] {
        auto p = std::make_unique<gpu::Context>(test_device_index());
        std::printf("  [gpu] device %d: %s (subgroup %u%s%s%s)\n", p->info().index, p->info().name.c_str(), p->info().subgroup_size,
                    p->info().pin_subgroup ? " pinned" : "", p->info().int_dot ? ", integer dots" : "",
                    p->info().coopmat ? ", cooperative matrices" : "");
        return p;
    }();
    return *c;
}

inline gpu::Buffer to_gpu(const void* data, size_t bytes) {
    gpu::Buffer b = ctx().alloc(bytes, gpu::Mem::Device, "test buffer");
    ctx().upload(b, 0, data, bytes);
    return b;
}
template <class T>
gpu::Buffer to_gpu(const std::vector<T>& v) {
    return to_gpu(v.data(), v.size() * sizeof(T));
}
inline std::vector<float> floats(const gpu::Buffer& b, size_t n, size_t off = 0) {
    std::vector<float> v(n);
    ctx().download(b, off * 4, v.data(), n * 4);
    return v;
}
inline gpu::Buffer zeros(size_t n_floats) { return to_gpu(std::vector<float>(n_floats, 0.0f)); }
// The first n uints of b are zero (merge counters a dispatch must leave at zero for the next).
inline void expect_zero_counts(const gpu::Buffer& b, size_t n) {
    std::vector<uint32_t> c(n);
    ctx().download(b, 0, c.data(), n * 4);
    EXPECT_EQ(c, std::vector<uint32_t>(n, 0u));
}

// A step buffer for position `pos` (RoPE angles for n_rot, base).
inline gpu::Buffer step_buffer(uint32_t pos, uint32_t token = 0, uint32_t n_rot = 0, float base = 10000.0f) {
    std::vector<uint8_t> s(gpu::kStepBytes);
    gpu::write_step(s.data(), pos, token, n_rot, base);
    return to_gpu(s);
}

// A weight type as the GPU stores it: ggml's blocks (id = the ggml type), or Q8_0 repacked at upload
// (id WT_Q8_0R). Tests generate `ggml` data and store it with to_stored().
struct GpuType {
    GgmlType ggml;
    uint32_t id;
};
inline std::string gpu_type_name(const GpuType& t) { return gpu::gpu_type(t.id)->suffix; }
// Rows of cols values of t.ggml, in place, as the GPU stores them.
inline void to_stored(const GpuType& t, std::vector<uint8_t>& bytes, int64_t cols) {
    if (t.id != WT_Q8_0R) return;
    std::vector<uint8_t> r(bytes.size());
    gpu::repack_q8_0(bytes.data(), r.data(), bytes.size() / gpu::gpu_row_bytes(WT_Q8_0, uint64_t(cols)), uint64_t(cols));
    bytes.swap(r);
}

// n_mats matrices (rows, cols) of type t, really quantized; returns their bytes (as the GPU stores
// them) and dequantized floats. Quantized types draw each row's blocks from a pool of 256 blocks our
// quantizer wrote (every block stands alone: its own scales): the IQ grid types' searches take ~1 us
// a weight, minutes for these tests' matrices on lavapipe's shared cores.
struct RandomMats {
    std::vector<uint8_t> bytes;
    std::vector<float> deq;  // (n_mats, rows, cols)
};
inline RandomMats random_mats(std::mt19937& rng, GgmlType t, int64_t n_mats, int64_t rows, int64_t cols) {
    RandomMats m;
    const int64_t rb = row_bytes(t, cols), bs = type_info(t).block_size, bb = type_info(t).type_size;
    m.bytes.resize(size_t(n_mats * rows * rb));
    m.deq.resize(size_t(n_mats * rows * cols));
    const int64_t pool_n = 256;
    std::vector<uint8_t> pool(size_t(pool_n * bb));
    if (bs > 1) {
        const auto x = test::random_row(rng, pool_n * bs, 0.05f);
        quantize_row(t, x.data(), pool.data(), pool_n * bs);
    }
    std::uniform_int_distribution<int64_t> pick(0, pool_n - 1);
    for (int64_t r = 0; r < n_mats * rows; ++r) {
        uint8_t* row = m.bytes.data() + r * rb;
        if (bs > 1) {
            for (int64_t b = 0; b < cols / bs; ++b) std::memcpy(row + b * bb, &pool[size_t(pick(rng) * bb)], size_t(bb));
        } else {
            const auto x = test::random_row(rng, cols, 0.05f);
            quantize_row(t, x.data(), row, cols);
        }
        dequantize_row(t, row, m.deq.data() + r * cols, cols);
    }
    return m;
}
}  // namespace sluice::gputest
