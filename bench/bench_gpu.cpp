// GPU microbenchmarks on one Vulkan device, as one JSON object: the memory bandwidth bounds decode is
// measured against (device-to-device copy by the copy engine and by a compute shader, counted as read +
// write traffic; host-to-device copy from pinned memory), what one dependent
// dispatch costs, and each matvec shader's achieved weight bandwidth on a large matrix. GPU times come
// from timestamps around many repetitions in one command buffer.
//   bench_gpu [--device N] [--mib 1024] [--reps 20]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifdef SLUICE_VULKAN
#include "shaders/ops.h"
#include "shaders/vk_runtime.h"
#endif

int main(int argc, char** argv) {
#ifndef SLUICE_VULKAN
    std::fprintf(stderr, "bench_gpu: built without Vulkan\n");
    return 2;
#else
    using namespace sluice::gpu;
    int device = 0, reps = 20;
    size_t mib = 1024;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--device" && i + 1 < argc) device = std::atoi(argv[++i]);
        else if (a == "--mib" && i + 1 < argc) mib = size_t(std::atol(argv[++i]));
        else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
        else { std::fprintf(stderr, "usage: bench_gpu [--device N] [--mib 1024] [--reps 20]\n"); return 2; }
    }
    try {
        Context ctx(device);
        const DeviceInfo& d = ctx.info();
        if (ctx.timestamp_ns() <= 0) throw GpuError("the device has no timestamps on its compute queue");
        size_t bytes = std::min<size_t>(mib << 20, d.max_buffer_range);
        std::printf("{\"device\":\"%s\",\"unified\":%s,\"vram_bytes\":%llu,\"subgroup\":%u", d.name.c_str(),
                    d.unified ? "true" : "false", (unsigned long long)d.vram_bytes, d.subgroup_size);

        // Device-to-device copy: the bandwidth decode is held against (read + write traffic).
        {
            Buffer a = ctx.alloc(bytes, Mem::Device, "copy src"), b = ctx.alloc(bytes, Mem::Device, "copy dst");
            Cmd c(ctx);
            c.begin();
            for (int r = 0; r < reps; ++r) c.copy(a, 0, b, 0, bytes);
            c.end();
            c.run();  // warm-up
            c.run();
            const double s = c.last_gpu_ms() * 1e-3;
            std::printf(",\"copy_bytes\":%zu,\"d2d_copy_gb_s\":%.1f,\"d2d_read_write_gb_s\":%.1f", bytes,
                        double(bytes) * reps / s / 1e9, 2.0 * double(bytes) * reps / s / 1e9);
            // The same copy by a compute shader (copy.comp): workgroups of 256 invocations, 4 units each.
            Cmd k(ctx);
            k.begin();
            const CopyPush cp{uint32_t(bytes / 16), 0, 0};
            for (int r = 0; r < reps; ++r) k.dispatch("copy", {&a, &b}, cp, {uint32_t(std::min<size_t>(bytes / 16 / 1024, 65535)), 1, 1});
            k.end();
            k.run();
            k.run();
            const double ks = k.last_gpu_ms() * 1e-3;
            std::printf(",\"shader_copy_read_write_gb_s\":%.1f", 2.0 * double(bytes) * reps / ks / 1e9);
        }
        // Host (pinned, host-visible) to device: what streamed experts cross.
        {
            const size_t hb = std::min<size_t>(bytes, 256u << 20);
            Buffer h = ctx.alloc(hb, Mem::Upload, "host src"), g = ctx.alloc(hb, Mem::Device, "h2d dst");
            std::memset(h.mapped(), 1, hb);
            Cmd c(ctx);
            c.begin();
            for (int r = 0; r < reps; ++r) c.copy(h, 0, g, 0, hb);
            c.end();
            c.run();
            c.run();
            std::printf(",\"h2d_gb_s\":%.1f", double(hb) * reps / (c.last_gpu_ms() * 1e-3) / 1e9);
        }
        Buffer step = ctx.alloc(kStepBytes, Mem::Device, "step");
        std::vector<uint8_t> st(kStepBytes);
        write_step(st.data(), 0, 0, 0, 10000.0f);
        ctx.upload(step, 0, st.data(), st.size());
        // One tiny dependent dispatch: the floor per op of a decode step.
        {
            Buffer v = ctx.alloc(4096 * 4, Mem::Device, "small");
            Cmd c(ctx);
            c.begin();
            for (int r = 0; r < 1000; ++r) swiglu(c, {&v}, {&v}, {&v}, 1024);
            c.end();
            c.run();
            c.run();
            std::printf(",\"dependent_dispatch_us\":%.2f", c.last_gpu_ms() * 1e3 / 1000);
        }
        // matvec per type: W (rows, 4096) with rows making ~bytes/4 of weights; random bytes (bandwidth only).
        std::printf(",\"matvec_gb_s\":{");
        const uint32_t types[] = {WT_F32, WT_F16, WT_BF16, WT_Q8_0, WT_Q4_K, WT_Q5_K, WT_Q6_K};
        const uint32_t cols = 4096;
        std::mt19937 rng(1);
        bool first = true;
        for (uint32_t t : types) {
            const uint64_t rb = gpu_row_bytes(t, cols);
            const uint32_t rows = uint32_t(std::min<uint64_t>(bytes / 2 / rb, 65535ull * MV_ROWS)) / 64 * 64;
            const size_t wb = size_t(rows) * rb;
            std::vector<uint8_t> host(wb);
            for (size_t i = 0; i < wb; i += 4) {
                const uint32_t r = rng() & 0x3BFF3BFFu;  // small f16 / bf16 bit patterns, no NaN
                std::memcpy(&host[i], &r, std::min<size_t>(4, wb - i));
            }
            Buffer w = ctx.alloc(wb, Mem::Device, "matrix");
            ctx.upload(w, 0, host.data(), wb);
            Buffer x = ctx.alloc(cols * 4, Mem::Device, "x"), y = ctx.alloc(size_t(rows) * 4, Mem::Device, "y");
            Cmd c(ctx);
            c.begin();
            for (int r = 0; r < reps; ++r) matvec(c, {&w, t, 0, rows, cols}, {&x}, {&y}, step);
            c.end();
            c.run();
            c.run();
            std::printf("%s\"%s\":%.1f", first ? "" : ",", gpu_type(t)->suffix,
                        double(wb) * reps / (c.last_gpu_ms() * 1e-3) / 1e9);
            first = false;
        }
        std::printf("}}\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
#endif
}
