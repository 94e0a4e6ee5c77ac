// GPU microbenchmarks on one Vulkan device, as one JSON object: the memory bandwidth bounds decode is
// measured against (device-to-device copy by the copy engine and by a compute shader, counted as read +
// write traffic; host-to-device copy from pinned memory), what one dependent dispatch costs, and each
// matvec shader's achieved weight bandwidth: per type, on a large matrix ("matvec_gb_s", the variant
// matvec() picks) and on decode's shapes in every variant (rows per team, teams per row) ("matvec": 4096x4096, 2048x768,
// 768x2048, 8 routed experts' down, the same summed with weights as decode runs it, and 8 experts'
// fused gate+up). GPU times come from timestamps around many repetitions in one command buffer.
//   bench_gpu [--device N] [--mib 1024] [--reps 20] [--mv-mib 256] [--types f32,q4_k,...]
//   --mib: the copy tests' buffers (the large matvec: a quarter); --mv-mib: the matvec copies' total;
//   --types: the weight types whose matvecs run (default: F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K and the
//   repacked Q8_0; named: any type with GPU kernels; q4_k_q8: Q4_K's integer-dot variant)
//   --mm KIND:BM:BN,...: only prompt products (512 columns) by those builds of mm.comp (bench_mm)
//   --attn GH:WGS:MINCHUNK,...: only decode attention (bench_attn), each configuration of attn_shape()
//   (0:0:0 = the default) on three models' head layouts at 512 .. 16384 positions
//   --grid WGS_PER_SM: only the cost of a dispatch boundary vs a wait inside one dispatch (bench_grid)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#ifdef SLUICE_VULKAN
#include "engine/tensor/kernels.h"
#include "engine/tensor/types.h"
#include "shaders/ops.h"
#include "shaders/vk_runtime.h"
#endif

#ifdef SLUICE_VULKAN
namespace {

using namespace sluice::gpu;

// "a,b,c" -> {"a", "b", "c"}: the --mm and --attn lists.
std::vector<std::string> split_list(const std::string& list) {
    std::vector<std::string> out;
    for (size_t a = 0; a < list.size();) {
        size_t b = list.find(',', a);
        if (b == std::string::npos) b = list.size();
        out.push_back(list.substr(a, b - a));
        a = b + 1;
    }
    return out;
}

// GPU ms of one run of c, clocks up: the GPU lowers its clocks when idle (the host filling the next
// test's buffers), and one warm-up run of a few hundred µs does not bring them back (H200: the
// first of several tests ran 2-4x slower), so c runs for 0.25 s first; then the median of 5 runs.
double warm_gpu_ms(sluice::gpu::Cmd& c) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    for (int i = 0; i < 2 || std::chrono::duration<double>(Clock::now() - t0).count() < 0.25; ++i) c.run();
    std::vector<double> ms;
    for (int i = 0; i < 5; ++i) {
        c.run();
        ms.push_back(c.last_gpu_ms());
    }
    std::sort(ms.begin(), ms.end());
    return ms[2];
}

std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
}

struct MvShape {
    uint32_t rows, cols, n_mats;
    bool glu;  // gate + up of n_mats experts in one dispatch (2x the bytes)
    const char* name;
    bool sum = false;  // the n_mats outputs summed with weights into one y (MoE down as decode runs it)
    bool norm = false;  // y += W x and the next rmsnorm in the last workgroup (add_then_norm, as decode)
};
struct MvResult {
    bool chosen;  // the variant matvec() picks for this shape by itself
    double gb_s_dependent;
    std::string json;
};

// Weight bytes read per second by one matvec shape, per rows-per-team variant. The matrix is copied
// until the copies fill copies_bytes, more than the GPU's L2 (decode reads every weight once per token,
// from DRAM), and the dispatches cycle through them: `dependent` with a barrier between dispatches (as
// in decode, the ~2 us of a dependent dispatch included), `back_to_back` without (the shader's rate).
// q8: the integer-dot variant over x's int8 mirror (its quantize_q8 dispatch not included).
std::vector<MvResult> bench_matvec(Context& ctx, const Buffer& step, uint32_t t, bool q8, const MvShape& sh, int reps,
                                   uint64_t copies_bytes) {
    const uint64_t one = uint64_t(sh.rows) * gpu_row_bytes(t, sh.cols) * sh.n_mats * (sh.glu ? 2 : 1);
    const uint64_t n_copies = std::max<uint64_t>(1, std::min<uint64_t>(copies_bytes / one, 4096));
    std::vector<uint8_t> host(one);
    std::mt19937 rng(t * 7919u + sh.rows);
    for (size_t i = 0; i < one; i += 4) {
        const uint32_t r = rng() & 0x3BFF3BFFu;  // small f16 / bf16 bit patterns, no NaN
        std::memcpy(&host[i], &r, std::min<size_t>(4, one - i));
    }
    if (std::string(gpu_type(t)->suffix).rfind("iq", 0) == 0) {
        // The IQ types look their codes up in tables, so how the indices spread (bank conflicts,
        // broadcasts) depends on the data: blocks our quantizer wrote from normal weights, as a model
        // holds, drawn from a pool of 256 (their searches take ~1 us a weight).
        const auto gt = sluice::GgmlType(t);
        const int64_t bs = sluice::type_info(gt).block_size, bb = sluice::type_info(gt).type_size, pool_n = 256;
        std::vector<float> xs(size_t(pool_n * bs));
        std::normal_distribution<float> nd(0.0f, 0.02f);
        for (float& v : xs) v = nd(rng);
        std::vector<uint8_t> pool(size_t(pool_n * bb));
        sluice::quantize_row(gt, xs.data(), pool.data(), pool_n * bs);
        std::uniform_int_distribution<int64_t> pick(0, pool_n - 1);
        for (size_t i = 0; i + size_t(bb) <= one; i += size_t(bb)) std::memcpy(&host[i], &pool[size_t(pick(rng) * bb)], size_t(bb));
    }
    // SLUICE_BENCH_MV_BUFS=N: N buffers of copies, the dispatches cycling through all of them (a
    // footprint like a large model's, beyond one buffer's 4 GiB: TLB reach)
    const char* bufs_env = std::getenv("SLUICE_BENCH_MV_BUFS");
    const uint64_t n_bufs = uint64_t(std::max(1, bufs_env ? std::atoi(bufs_env) : 1));
    std::vector<Buffer> ws;
    for (uint64_t b = 0; b < n_bufs; ++b) ws.push_back(ctx.alloc(one * n_copies, Mem::Device, "matrix copies"));
    ctx.upload(ws[0], 0, host.data(), one);
    {
        Cmd c(ctx);
        c.begin();
        for (uint64_t i = 1; i < n_copies; ++i) {  // the other buffers keep what they hold: no value changes the speed
            c.independent();
            c.copy(ws[0], 0, ws[0], i * one, one);
        }
        c.end();
        c.run();
    }
    const uint32_t x_floats = sh.cols * sh.n_mats, y_floats = sh.rows * sh.n_mats;
    Buffer x = ctx.alloc(size_t(x_floats) * 4, Mem::Device, "x"), y = ctx.alloc(size_t(y_floats) * 4 * 64, Mem::Device, "y");
    Buffer xq_buf = ctx.alloc(size_t(xq_bytes(x_floats)), Mem::Device, "int8 x");
    const Xq xq{&xq_buf, xq_soff(x_floats)};
    {
        // x as decode has it (random values and their int8 mirror, by quantize_q8) or zeros
        // (SLUICE_BENCH_X=zeros, the benchmark before session 16)
        std::vector<float> xf(x_floats, 0.0f);
        const char* e = std::getenv("SLUICE_BENCH_X");
        if (!e || std::string(e) != "zeros") {
            std::normal_distribution<float> nd(0.0f, 1.0f);
            for (float& v : xf) v = nd(rng);
        }
        ctx.upload(x, 0, xf.data(), xf.size() * 4);
        ctx.upload(xq_buf, 0, std::vector<uint8_t>(xq_buf.size(), 0).data(), xq_buf.size());
        if (x_floats % 32 == 0) {
            Cmd c(ctx);
            c.begin();
            quantize_q8(c, {&x}, xq, x_floats);
            c.end();
            c.run();
        }
    }
    std::vector<int32_t> ids_host(2 * sh.n_mats);  // ids, then weights (MV_SUM_MATS)
    for (uint32_t i = 0; i < sh.n_mats; ++i) {
        ids_host[i] = int32_t(sh.n_mats - 1 - i);
        const float w = 1.0f / float(sh.n_mats);
        std::memcpy(&ids_host[sh.n_mats + i], &w, 4);
    }
    Buffer ids = ctx.alloc(ids_host.size() * 4, Mem::Device, "ids");
    // MV_NORM's output (+ its workgroup counter, zero) and norm weights
    Buffer hn = ctx.alloc(size_t(sh.rows + 1) * 4, Mem::Device, "hn"), nw = ctx.alloc(size_t(sh.rows) * 4, Mem::Device, "norm");
    ctx.upload(hn, 0, std::vector<float>(sh.rows + 1, 0.0f).data(), size_t(sh.rows + 1) * 4);
    ctx.upload(nw, 0, std::vector<float>(sh.rows, 1.0f).data(), size_t(sh.rows) * 4);
    const Vec hn_vec{&hn};
    ctx.upload(ids, 0, ids_host.data(), ids_host.size() * 4);
    const uint64_t mat_bytes = one / sh.n_mats / (sh.glu ? 2 : 1);
    // Variants: rows per team 1, 2, 4 (ks 0) and 4 or 8 teams per row (nr 0).
    const MvPick pick = matvec_pick(t, q8, sh.rows, sh.cols, sh.n_mats, sh.sum, sh.norm, q8 && (t == WT_Q4_K || t == WT_Q5_K) && sh.cols >= 2048);
    const uint32_t chosen_ks = sh.glu ? 0 : pick.ksplit, chosen = chosen_ks ? 0 : pick.team_rows;
    std::vector<MvResult> out;
    // wide 1: the _q8w variants (Q4_K / Q5_K integer dots, rows of 2048 or more)
    const bool can_wide = q8 && (t == WT_Q4_K || t == WT_Q5_K) && sh.cols % 256 == 0 && sh.cols >= 2048;
    for (auto [nr, ks, wide] : {std::tuple<uint32_t, int, int>{1, 0, 0}, {2, 0, 0}, {4, 0, 0}, {0, 4, 0}, {0, 8, 0},
                                {1, 0, 1}, {2, 0, 1}, {4, 0, 1}, {0, 4, 1}, {0, 8, 1}}) {
        if (sh.glu && (ks || (!wide && nr != MV_GLU_ROWS))) continue;  // the wide GLU: 1, 2 or 4 rows per team
        if (wide && !can_wide) continue;
        const uint32_t glu_nr = can_wide ? glu_team_rows(sh.rows, sh.cols, sh.n_mats) : MV_GLU_ROWS;
        const bool is_chosen = (sh.glu ? nr == glu_nr : nr == chosen && uint32_t(ks) == chosen_ks) && bool(wide) == can_wide;
        double us[2];
        for (int dep = 0; dep < 2; ++dep) {
            Cmd c(ctx);
            c.begin();
            for (int r = 0; r < reps; ++r) {
                const uint64_t base = (uint64_t(r) / n_bufs % n_copies) * one;
                const Mat m{&ws[uint64_t(r) % n_bufs], t, base, sh.rows, sh.cols, mat_bytes};
                Mat up = m;
                up.offset = base + one / 2;
                MatvecOpts o;
                o.n_mats = sh.n_mats;
                o.x_mat_stride = sh.glu ? 0 : sh.cols;
                o.y_mat_stride = sh.rows;
                o.ids = sh.n_mats > 1 ? &ids : nullptr;
                o.team_rows = nr;
                o.ksplit = ks;
                o.wide = wide;
                o.swiglu_up = sh.glu ? &up : nullptr;
                o.sum_mats = sh.sum;
                o.sum_w_off = sh.n_mats;
                o.xq = q8 ? &xq : nullptr;
                o.accumulate = sh.sum || sh.norm;
                if (sh.norm) {
                    o.norm_out = &hn_vec;
                    o.norm_w = {&nw, 0};
                    o.norm_eps = 1e-6f;
                    o.norm_count = sh.rows;
                }
                if (!dep) c.independent();
                matvec(c, m, {&x}, {&y, uint32_t(r % 64) * y_floats}, step, o);
            }
            c.end();
            us[dep] = warm_gpu_ms(c) * 1e3 / reps;
        }
        const double gb_dep = double(one) / (us[1] * 1e-6) / 1e9, gb_b2b = double(one) / (us[0] * 1e-6) / 1e9;
        const std::string glu = "glu" + (nr == MV_GLU_ROWS ? std::string() : std::to_string(nr));
        const std::string variant = std::string(wide ? "w" : "") + (sh.glu ? glu : ks ? "k" + std::to_string(ks) : "r" + std::to_string(nr));
        std::string j = std::string("{\"type\":\"") + gpu_type(t)->suffix + (q8 ? "_q8" : "") + "\",\"shape\":\"" + sh.name + "\",\"variant\":\"" +
                        variant + "\",\"chosen\":" + (is_chosen ? "true" : "false") + ",\"bytes\":" +
                        std::to_string(one) + ",\"us_dependent\":" + fmt(us[1]) + ",\"gb_s_dependent\":" + fmt(gb_dep) +
                        ",\"us_back_to_back\":" + fmt(us[0]) + ",\"gb_s_back_to_back\":" + fmt(gb_b2b) + "}";
        out.push_back({is_chosen, gb_dep, j});
    }
    return out;
}

// Prompt products (mm.comp's tiles, `kinds` as SLUICE_GPU_MM_KIND values, e.g. mmc_:64:64): us per
// product of a rows x cols weight matrix with n_cols columns, each waiting for the one before (as in a
// prompt's layers: a product of few workgroups leaves the GPU idle), over copies larger than L2.
void bench_mm(Context& ctx, const Buffer& step, const std::string& kinds, const std::string& only_types, int reps) {
    struct Shape {
        uint32_t rows, cols;
    };
    const Shape shapes[] = {{4096, 4096}, {12288, 4096}, {4096, 12288}, {2048, 4096}};
    const uint32_t n_cols = 512;
    std::printf(",\"mm\":[");
    bool first = true;
    for (uint32_t t : {uint32_t(WT_Q4_K), uint32_t(WT_Q6_K), uint32_t(WT_Q8_0R)}) {
        const std::string suffix = gpu_type(t)->suffix;
        if (!only_types.empty() && only_types.find("," + suffix + ",") == std::string::npos) continue;
        if (!has_mm(ctx, t)) continue;
        for (const Shape& sh : shapes) {
            const uint64_t one = uint64_t(sh.rows) * gpu_row_bytes(t, sh.cols);
            const uint64_t n_copies = std::max<uint64_t>(1, std::min<uint64_t>(std::min<uint64_t>(256ull << 20, ctx.info().max_buffer_range) / one, 64));
            std::vector<uint8_t> host(one);
            std::mt19937 rng(t * 7919u + sh.rows);
            for (size_t i = 0; i < one; i += 4) {
                const uint32_t r = rng() & 0x3BFF3BFFu;
                std::memcpy(&host[i], &r, std::min<size_t>(4, one - i));
            }
            Buffer w = ctx.alloc(one * n_copies, Mem::Device, "matrix copies");
            for (uint64_t i = 0; i < n_copies; ++i) ctx.upload(w, i * one, host.data(), one);
            const uint64_t x_floats = uint64_t(sh.cols) * n_cols;
            Buffer x = ctx.alloc(x_floats * 4, Mem::Device, "x"), y = ctx.alloc(uint64_t(sh.rows) * n_cols * 4, Mem::Device, "y");
            // the int8 mirror, or (mmcX_*) x as float16 at the same element offsets: small random bytes
            Buffer xq_buf = ctx.alloc(std::max<size_t>(xq_bytes(x_floats), 2 * x_floats), Mem::Device, "int8 x");
            std::vector<uint8_t> xb(xq_buf.size());
            for (auto& v : xb) v = uint8_t(rng() & 0x3B);
            ctx.upload(xq_buf, 0, xb.data(), xb.size());
            const Xq xq{&xq_buf, xq_soff(x_floats)};
            for (const std::string& kind : split_list(kinds)) {
                setenv("SLUICE_GPU_MM_KIND", kind.c_str(), 1);
                double us = -1;
                try {
                    Cmd c(ctx);
                    c.begin();
                    for (int r = 0; r < reps; ++r) {  // dependent, as a prompt's products run
                        const Mat m{&w, t, (uint64_t(r) % n_copies) * one, sh.rows, sh.cols, one};
                        MatvecOpts o;
                        o.n_cols = n_cols;
                        o.x_col_stride = sh.cols;
                        o.y_col_stride = sh.rows;
                        o.xq = &xq;
                        matvec(c, m, {&x}, {&y}, step, o);
                    }
                    c.end();
                    us = warm_gpu_ms(c) * 1e3 / reps;
                } catch (const GpuError& e) {
                    std::fprintf(stderr, "bench_mm %s %s: %s\n", kind.c_str(), suffix.c_str(), e.what());
                }
                const double tflops = us > 0 ? 2.0 * sh.rows * sh.cols * n_cols / (us * 1e-6) / 1e12 : 0;
                std::printf("%s{\"type\":\"%s\",\"kind\":\"%s\",\"shape\":\"%ux%u\",\"n_cols\":%u,\"us\":%.1f,\"tflops\":%.1f}",
                            first ? "" : ",", suffix.c_str(), kind.c_str(), sh.rows, sh.cols, n_cols, us, tflops);
                std::fprintf(stderr, "mm %-6s %-12s %5ux%-5u x%u: %8.1f us %6.1f TFLOPS\n", suffix.c_str(), kind.c_str(), sh.rows,
                             sh.cols, n_cols, us, tflops);
                first = false;
            }
            unsetenv("SLUICE_GPU_MM_KIND");
        }
    }
    std::printf("]");
}

// Decode attention alone: attention_qk (norm + RoPE, the split attention and the merge in one
// dispatch, as a qwen3 layer runs it), reps dependent dispatches over copies of the cache (one per
// layer, up to 256 MiB each for K and V, so the K and V rows come from DRAM as in decode); µs per dispatch and the
// K + V bytes it reads per µs.
void bench_attn(Context& ctx, const std::string& configs, int reps) {
    struct Shape {
        const char* name;
        uint32_t n_head, n_head_kv, hd;
    };
    const Shape shapes[] = {{"qwen3-8b", 32, 8, 128}, {"qwen3-30b-a3b", 32, 4, 128}, {"qwen3.5-35b-a3b", 16, 2, 256},
                            {"72b-like", 64, 8, 128}};
    std::printf(",\"attn\":[");
    bool first = true;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    for (const Shape& sh : shapes) {
        for (uint32_t n_kv : {64u, 512u, 4096u, 8192u, 16384u}) {
            const uint64_t kd = uint64_t(sh.n_head_kv) * sh.hd, layer = uint64_t(n_kv) * kd;  // floats per layer's K
            const uint64_t layers = std::clamp<uint64_t>(std::min<uint64_t>(256ull << 20, ctx.info().max_buffer_range) / (4 * layer), 1, 64);
            std::vector<float> host(layer * layers);
            for (float& v : host) v = uni(rng);
            Buffer k = ctx.alloc(host.size() * 4, Mem::Device, "K"), v = ctx.alloc(host.size() * 4, Mem::Device, "V");
            ctx.upload(k, 0, host.data(), host.size() * 4);
            ctx.upload(v, 0, host.data(), host.size() * 4);
            std::vector<float> qh(sh.n_head * sh.hd + 2 * kd), norms(2 * sh.hd, 1.0f);
            for (float& x : qh) x = uni(rng);
            Buffer q = ctx.alloc(qh.size() * 4, Mem::Device, "q"), nb = ctx.alloc(norms.size() * 4, Mem::Device, "norms");
            ctx.upload(q, 0, qh.data(), qh.size() * 4);
            ctx.upload(nb, 0, norms.data(), norms.size() * 4);
            Buffer out = ctx.alloc(uint64_t(sh.n_head) * sh.hd * 4, Mem::Device, "out"), step = ctx.alloc(kStepBytes, Mem::Device, "step");
            std::vector<uint8_t> st(kStepBytes);
            write_step(st.data(), n_kv - 1, 0, sh.hd, 1e6f);
            ctx.upload(step, 0, st.data(), st.size());
            for (const std::string& cfg : split_list(configs)) {
                unsigned gh = 0, wgs = 0, mc = 0;
                std::sscanf(cfg.c_str(), "%u:%u:%u", &gh, &wgs, &mc);
                const AttnShape s = gh ? attn_shape(sh.n_head, sh.n_head_kv, sh.hd, sh.hd, n_kv, gh, wgs, mc)
                                       : attn_shape(sh.n_head, sh.n_head_kv, sh.hd, sh.hd, n_kv);
                double us = -1;
                try {
                    Buffer part = ctx.alloc(attn_part_floats(s) * 4, Mem::Device, "parts");
                    Buffer counts = ctx.alloc(uint64_t(sh.n_head) * 4, Mem::Device, "counts");
                    std::vector<uint32_t> zero(sh.n_head, 0);
                    ctx.upload(counts, 0, zero.data(), zero.size() * 4);
                    Cmd c(ctx);
                    c.begin();
                    for (int r = 0; r < reps; ++r) {
                        const uint32_t off = uint32_t((uint64_t(r) % layers) * layer);
                        attention_qk(c, {&q}, {&q, sh.n_head * sh.hd}, {&q, uint32_t(sh.n_head * sh.hd + kd)}, {&k, off}, {&v, off},
                                     uint32_t(kd), uint32_t(kd), {&part}, {&out}, s, {{&nb}, {&nb, sh.hd}, sh.hd, 1e-6f}, {&counts},
                                     step, nullptr);
                    }
                    c.end();
                    us = warm_gpu_ms(c) * 1e3 / reps;
                } catch (const GpuError& e) {
                    std::fprintf(stderr, "bench_attn %s: %s\n", cfg.c_str(), e.what());
                }
                const double gb_s = us > 0 ? 2.0 * double(layer) * 4 / (us * 1e-6) / 1e9 : 0;
                std::printf("%s{\"model\":\"%s\",\"n_kv\":%u,\"config\":\"%s\",\"gh\":%u,\"splits\":%u,\"us\":%.2f,\"gb_s\":%.0f}",
                            first ? "" : ",", sh.name, n_kv, cfg.c_str(), s.gh, s.n_splits, us, gb_s);
                std::fprintf(stderr, "attn %-16s %6u pos  %-12s gh %u splits %3u: %8.2f us %6.0f GB/s\n", sh.name, n_kv, cfg.c_str(), s.gh,
                             s.n_splits, us, gb_s);
                first = false;
            }
        }
    }
    std::printf("]");
}

// --grid: what a dispatch boundary costs beyond a wait inside one dispatch (grid_chain.comp): S
// dependent F16 matrix-vector products (n x n, distinct matrices beyond the L2) as S dispatches with
// barriers (one row per team, or the persistent grid's workgroups), as one dispatch of sm_count *
// per_sm resident workgroups waiting for each other between products (with and without the next
// row's first loads before the wait), and as S dispatches without barriers (wrong results: a floor).
// us per product, each mode's result checked against the first's (the same sums in the same order).
void bench_grid(Context& ctx, int reps, uint32_t per_sm) {
    const DeviceInfo& d = ctx.info();
    std::printf(",\"grid\":[");
    if (d.subgroup_size != 32 || !d.sm_count) {
        std::fprintf(stderr, "bench_grid: needs subgroups of 32 and the SM count (VK_NV_shader_sm_builtins)\n");
        std::printf("]");
        return;
    }
    const uint32_t G = d.sm_count * per_sm;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    bool first = true;
    for (uint32_t n : {2048u, 4096u}) {
        const uint32_t S = n == 2048 ? 32 : 8;  // 256 MB of weights either way
        const uint64_t mat = uint64_t(n) * n / 8;  // uvec4s per matrix
        std::vector<uint16_t> wh(mat * 8 * S);
        for (auto& h : wh) h = sluice::f32_to_fp16(uni(rng) / std::sqrt(float(n)));
        Buffer w = ctx.alloc(wh.size() * 2, Mem::Device, "grid W");
        ctx.upload(w, 0, wh.data(), wh.size() * 2);
        std::vector<float> x0(n);
        for (float& v : x0) v = uni(rng);
        Buffer x = ctx.alloc(uint64_t(S + 1) * n * 4, Mem::Device, "grid x");
        ctx.upload(x, 0, x0.data(), n * 4);
        Buffer cnt = ctx.alloc(64 * 4, Mem::Device, "grid counts"), zero = ctx.alloc(64 * 4, Mem::Device, "zeros");
        const std::vector<uint32_t> z(64, 0);
        ctx.upload(zero, 0, z.data(), 64 * 4);
        const char* modes[] = {"dispatches", "dispatches_grid", "grid", "grid_prefetch", "no_barriers"};
        std::vector<float> ref;
        for (int mode = 0; mode < 5; ++mode) {
            Cmd c(ctx);
            c.begin();
            c.copy(zero, 0, cnt, 0, 64 * 4);
            c.barrier();
            const int rr = std::min(reps, 63);
            for (int r = 0; r < rr; ++r) {
                if (mode >= 2 && mode <= 3) {
                    const GridChainPush p{n, 0, S, uint32_t(mat), uint32_t(r), GC_GRID | (mode == 3 ? GC_PREFETCH : 0u)};
                    c.dispatch("grid_chain", {&w, &x, &cnt}, p, {G * GC_THREADS, 1, 1});
                } else {
                    for (uint32_t s = 0; s < S; ++s) {
                        if (mode == 4) c.independent();
                        const GridChainPush p{n, s, 1, uint32_t(mat), 0, 0};
                        c.dispatch("grid_chain", {&w, &x, &cnt}, p, {(mode == 1 ? G : n / 8) * GC_THREADS, 1, 1});
                    }
                }
                c.barrier();
            }
            c.end();
            const double us = warm_gpu_ms(c) * 1e3 / (rr * S);
            uint32_t gave_up = 0;
            ctx.download(cnt, 63 * 4, &gave_up, 4);
            if (gave_up) {
                std::fprintf(stderr, "grid n %u: %s: the workgroups were not all resident (a wait gave up)\n", n, modes[mode]);
                continue;
            }
            std::vector<float> out(n);
            ctx.download(x, uint64_t(S) * n * 4, out.data(), n * 4);
            if (ref.empty()) ref = out;
            double diff = 0;
            for (uint32_t i = 0; i < n; ++i) diff = std::max(diff, double(std::fabs(out[i] - ref[i])));
            const double gb = double(mat) * 16 / (us * 1e-6) / 1e9;
            std::printf("%s{\"n\":%u,\"stages\":%u,\"mode\":\"%s\",\"workgroups\":%u,\"us_per_product\":%.2f,\"gb_s\":%.0f,"
                        "\"max_diff_vs_dispatches\":%.3g}",
                        first ? "" : ",", n, S, modes[mode], mode == 0 ? n / 8 : G, us, gb, diff);
            std::fprintf(stderr, "grid n %u x %u stages  %-16s %5u wgs: %7.2f us per product %6.0f GB/s  diff %.3g\n", n, S,
                         modes[mode], mode == 0 ? n / 8 : G, us, gb, diff);
            first = false;
            ctx.upload(x, 0, x0.data(), n * 4);
        }
    }
    std::printf("]");
}

}  // namespace
#endif

int main(int argc, char** argv) {
#ifndef SLUICE_VULKAN
    std::fprintf(stderr, "bench_gpu: built without Vulkan\n");
    return 2;
#else
    using namespace sluice::gpu;
    int device = 0, reps = 20;
    size_t mib = 1024, mv_mib = 256;
    std::string only_types, mm_kinds, attn_configs;
    int grid_per_sm = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--device" && i + 1 < argc) device = std::atoi(argv[++i]);
        else if (a == "--mib" && i + 1 < argc) mib = size_t(std::atol(argv[++i]));
        else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
        else if (a == "--mv-mib" && i + 1 < argc) mv_mib = size_t(std::atol(argv[++i]));
        else if (a == "--types" && i + 1 < argc) only_types = "," + std::string(argv[++i]) + ",";
        else if (a == "--mm" && i + 1 < argc) mm_kinds = argv[++i];
        else if (a == "--attn" && i + 1 < argc) attn_configs = argv[++i];
        else if (a == "--grid" && i + 1 < argc) grid_per_sm = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_gpu [--device N] [--mib 1024] [--reps 20] [--mv-mib 256] [--types f32,q4_k,...] "
                                 "[--mm mmc_:64:64,...] [--attn GH:WGS:MINCHUNK,...] [--grid WGS_PER_SM]\n");
            return 2;
        }
    }
    try {
        Context ctx(device);
        const DeviceInfo& d = ctx.info();
        if (ctx.timestamp_ns() <= 0) throw GpuError("the device has no timestamps on its compute queue");
        size_t bytes = std::min<size_t>(mib << 20, d.max_buffer_range);
        std::printf("{\"device\":\"%s\",\"unified\":%s,\"vram_bytes\":%llu,\"subgroup\":%u", d.name.c_str(),
                    d.unified ? "true" : "false", (unsigned long long)d.vram_bytes, d.subgroup_size);
        if (!mm_kinds.empty()) {  // only the prompt products
            Buffer step = ctx.alloc(kStepBytes, Mem::Device, "step");
            bench_mm(ctx, step, mm_kinds, only_types, reps);
            std::printf("}\n");
            return 0;
        }
        if (grid_per_sm > 0) {  // only the dispatch-boundary test
            bench_grid(ctx, reps, uint32_t(grid_per_sm));
            std::printf("}\n");
            return 0;
        }
        if (!attn_configs.empty()) {  // only decode attention
            bench_attn(ctx, attn_configs, reps);
            std::printf("}\n");
            return 0;
        }

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
        // The CPU reading logits the GPU copied to a Readback buffer (151936 floats, as a decode step's
        // head): us for the first pass over the mapped memory (max_element, as a greedy sampler), for a
        // memcpy out of it, and for max_element over the copy.
        {
            const size_t n = 151936;
            Buffer g = ctx.alloc(n * 4, Mem::Device, "logits"), rb = ctx.alloc(n * 4, Mem::Readback, "logits readback");
            std::vector<float> host(n);
            for (size_t i = 0; i < n; ++i) host[i] = float((i * 7919) % 1000);
            ctx.upload(g, 0, host.data(), n * 4);
            Cmd c(ctx);
            c.begin();
            c.copy(g, 0, rb, 0, n * 4);
            c.end();
            using Clock = std::chrono::steady_clock;
            double t_max = 1e9, t_cpy = 1e9, t_max2 = 1e9;
            volatile float sink = 0;
            for (int r = 0; r < 20; ++r) {
                c.run();
                const float* m = static_cast<const float*>(rb.mapped());
                auto t0 = Clock::now();
                sink = *std::max_element(m, m + n);
                auto t1 = Clock::now();
                c.run();
                auto t2 = Clock::now();
                std::memcpy(host.data(), rb.mapped(), n * 4);
                auto t3 = Clock::now();
                sink = *std::max_element(host.begin(), host.end());
                auto t4 = Clock::now();
                t_max = std::min(t_max, std::chrono::duration<double>(t1 - t0).count());
                t_cpy = std::min(t_cpy, std::chrono::duration<double>(t3 - t2).count());
                t_max2 = std::min(t_max2, std::chrono::duration<double>(t4 - t3).count());
            }
            (void)sink;
            std::printf(",\"readback_flags\":%u,\"readback_max_us\":%.1f,\"readback_memcpy_us\":%.1f,\"host_max_us\":%.1f",
                        rb.memory_flags(), t_max * 1e6, t_cpy * 1e6, t_max2 * 1e6);
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
        // matvec per type and shape, each rows-per-team variant (bench_matvec below).
        // (type, integer-dot variant): names q4_k, q4_k_q8, ...
        std::vector<std::pair<uint32_t, bool>> types;
        std::vector<uint32_t> ids = {WT_F32, WT_F16, WT_BF16, WT_Q8_0, WT_Q8_0R, WT_Q4_K, WT_Q5_K, WT_Q6_K};
        if (!only_types.empty())  // named types may be any with GPU kernels (q4_0, iq2_xxs, ...)
            for (uint32_t t = 0; t < 64; ++t)
                if (gpu_type(t) && std::find(ids.begin(), ids.end(), t) == ids.end()) ids.push_back(t);
        for (uint32_t t : ids) {
            types.push_back({t, false});
            if (has_q8(ctx, t)) types.push_back({t, true});
        }
        std::printf(",\"int_dot\":%s,\"int_dot_accelerated\":%s", d.int_dot ? "true" : "false", d.int_dot_fast ? "true" : "false");
        std::string large = ",\"matvec_gb_s\":{", all = ",\"matvec\":[";
        for (auto [t, q8] : types) {
            const std::string tname = std::string(gpu_type(t)->suffix) + (q8 ? "_q8" : "");
            if (!only_types.empty() && only_types.find("," + tname + ",") == std::string::npos) continue;
            const uint64_t big_rows = std::min<uint64_t>(bytes / 4 / gpu_row_bytes(t, 4096), 1u << 20) / 64 * 64;
            const MvShape shapes[] = {{uint32_t(big_rows), 4096, 1, false, "large"}, {4096, 4096, 1, false, "4096x4096"},
                                      {2048, 768, 1, false, "2048x768"}, {768, 2048, 1, false, "768x2048"},
                                      {2048, 768, 8, false, "8x2048x768"}, {2048, 768, 8, false, "8x2048x768_sum", true},
                                      {768, 2048, 8, true, "8x768x2048_glu"},
                                      // the 8B dense shape's down (with the residual add and next norm) and gate+up
                                      {4096, 12288, 1, false, "4096x12288"}, {4096, 12288, 1, false, "4096x12288_norm", false, true},
                                      {4096, 4096, 1, false, "4096x4096_norm", false, true}, {12288, 4096, 1, true, "12288x4096_glu"},
                                      // a 32B dense shape's (Qwen3-32B): q + k + v, wo, gate+up, down
                                      {10240, 5120, 1, false, "10240x5120"}, {5120, 8192, 1, false, "5120x8192"},
                                      {25600, 5120, 1, true, "25600x5120_glu"}, {5120, 25600, 1, false, "5120x25600"},
                                      // a 72B-like dense shape's (embd 8192, ff 29696, 64 q / 8 kv heads)
                                      {10240, 8192, 1, false, "10240x8192"}, {8192, 8192, 1, false, "8192x8192"},
                                      {29696, 8192, 1, true, "29696x8192_glu"}, {8192, 29696, 1, false, "8192x29696"},
                                      // DeepSeek-V3's experts (embd 7168, 2048 per expert)
                                      {2048, 7168, 8, true, "8x2048x7168_glu"}, {7168, 2048, 8, false, "8x7168x2048_sum", true},
                                      // Mixtral 8x7B's experts (embd 4096, 14336 per expert, top-2)
                                      {14336, 4096, 2, true, "2x14336x4096_glu"}, {4096, 14336, 2, false, "2x4096x14336_sum", true}};
            const char* only_shapes = std::getenv("SLUICE_BENCH_SHAPES");  // "a,b": only those shapes
            for (const MvShape& sh : shapes) {
                if (only_shapes && ("," + std::string(only_shapes) + ",").find("," + std::string(sh.name) + ",") == std::string::npos) continue;
                for (const MvResult& r : bench_matvec(ctx, step, t, q8, sh, 10 * reps, uint64_t(mv_mib) << 20)) {
                    all += std::string(all.back() == '[' ? "" : ",") + r.json;
                    if (sh.name == std::string("large") && r.chosen)
                        large += std::string(large.back() == '{' ? "" : ",") + "\"" + tname + "\":" + fmt(r.gb_s_dependent);
                }
            }
        }
        std::printf("%s}%s]", large.c_str(), all.c_str());
        std::printf("}\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu: %s\n", e.what());
        return 1;
    }
    return 0;
#endif
}
