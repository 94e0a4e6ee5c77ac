// Dispatch (CPU detection, SLUICE_ISA, force_isa) and the row-parallel matvec / matmul drivers.
#include "engine/tensor/kernels.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/tensor/blocks.h"
#include "engine/tensor/kernels_isa.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

namespace detail {

void unsupported(GgmlType t, const char* what) {
    throw Error(std::string(what) + ": no CPU kernels for tensor type " + type_name(t));
}

}  // namespace detail

namespace {

using detail::TypeKernels;

constexpr int kMaxTypeId = 64;
constexpr int kNumIsa = 3;

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // The *_avx512.cpp files are built with F/BW/VL/DQ/VNNI; *_avx2.cpp with AVX2/FMA/F16C/BMI2.
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
    const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                        __builtin_cpu_supports("avx512vnni");
    return avx512 ? Isa::Avx512 : avx2 ? Isa::Avx2 : Isa::Scalar;
#else
    return Isa::Scalar;
#endif
}

// Every ISA's table is complete: a kernel an ISA lacks is taken from the ISA below it.
struct Tables {
    std::array<std::array<TypeKernels, kMaxTypeId>, kNumIsa> k{};
    Tables(Isa best) {
        for (int id = 0; id < kMaxTypeId; ++id) {
            if (!type_info(uint32_t(id))) continue;
            const GgmlType t = GgmlType(id);
            TypeKernels cur = detail::scalar_kernels(t);
            k[0][id] = cur;
            if (best >= Isa::Avx2) {
                if (auto f = detail::avx2_dequant(t)) cur.dequant = f;
                if (auto f = detail::avx2_prepare(t)) cur.prepare = f;
                // A dot4 goes with the dot of its own ISA (bit-identical columns): it is taken only
                // with that dot, and an ISA that replaces the dot without a dot4 of its own falls back
                // to four dot() calls.
                // The tile goes with them the same way.
                if (auto f = detail::avx2_dot(t)) {
                    cur.dot = f, cur.dot4 = detail::avx2_dot4(t), cur.tile = detail::avx2_tile(t);
                }
                k[1][id] = cur;
            }
            if (best >= Isa::Avx512) {
                if (auto f = detail::avx512_dequant(t)) cur.dequant = f;
                if (auto f = detail::avx512_prepare(t)) cur.prepare = f;
                if (auto f = detail::avx512_dot(t)) {
                    cur.dot = f, cur.dot4 = detail::avx512_dot4(t), cur.tile = detail::avx512_tile(t);
                }
                if (auto pk = detail::avx512_panel(t); pk.pack) {
                    // Panels and the dots that match them bit for bit (no tile: n < min_cols is dot4).
                    cur.panel = pk;
                    detail::DotFn f = detail::avx512_dot_canon(t);
                    cur.dot = f ? f : detail::avx2_dot_canon(t);
                    cur.dot4 = detail::avx512_dot4_canon(t);
                    cur.tile = {};
                }
                k[2][id] = cur;
            }
        }
    }
};

const Tables& tables() {
    static const Tables t(detected_isa());
    return t;
}

Isa initial_isa() {
    const Isa best = detected_isa();
    const char* env = std::getenv("SLUICE_ISA");
    if (!env || !*env) return best;
    Isa want;
    if (!std::strcmp(env, "scalar")) want = Isa::Scalar;
    else if (!std::strcmp(env, "avx2")) want = Isa::Avx2;
    else if (!std::strcmp(env, "avx512")) want = Isa::Avx512;
    else {
        std::fprintf(stderr, "sluice: SLUICE_ISA=%s is not scalar, avx2 or avx512; using %s\n", env, isa_name(best));
        return best;
    }
    if (want > best) {
        std::fprintf(stderr, "sluice: SLUICE_ISA=%s but this CPU supports at most %s\n", env, isa_name(best));
        return best;
    }
    return want;
}

std::atomic<Isa>& active() {
    static std::atomic<Isa> a{initial_isa()};
    return a;
}

const TypeKernels& kernels_for(Isa isa, GgmlType t, const char* what) {
    if (!isa_available(isa))
        throw std::invalid_argument(std::string(what) + ": ISA " + isa_name(isa) + " not available on this CPU");
    const uint32_t id = uint32_t(t);
    if (id >= uint32_t(kMaxTypeId) || !tables().k[int(isa)][id].dot) detail::unsupported(t, what);
    return tables().k[int(isa)][id];
}

void check_cols(GgmlType t, int64_t n, const char* what) {
    const int64_t bs = type_info(t).block_size;
    if (n < 0 || n % bs)
        throw Error(std::string(what) + ": row of " + std::to_string(n) + " elements is not a multiple of " +
                    type_name(t) + "'s block size " + std::to_string(bs));
}

bool float_act(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Rows per chunk: enough weight bytes per chunk (~64 KiB) that claiming a chunk costs nothing.
int64_t row_grain(const WeightView& w) {
    const int64_t rb = std::max<int64_t>(row_bytes(w.type, w.cols), 1);
    return std::max<int64_t>(1, (int64_t(64) << 10) / rb);
}

std::atomic<bool> g_dot4{true};
// SLUICE_TILE=0 at start: matmul_jobs without the tile kernels (one binary compares both).
std::atomic<bool> g_tile{[] {
    const char* e = std::getenv("SLUICE_TILE");
    return !(e && !std::strcmp(e, "0"));
}()};
constexpr int kMaxTile = 16;  // rows * cols of the largest tile
// SLUICE_PANEL=0 at start: prompt products without the repacked panels.
std::atomic<bool> g_panel{[] {
    const char* e = std::getenv("SLUICE_PANEL");
    return !(e && !std::strcmp(e, "0"));
}()};
constexpr int kPanelsPacked = 4;  // panels packed at a time: 32 rows meet each tile of 8 activations

// Rows [r0, r1) of a job through the panel kernels: kPanelsPacked panels packed into a per-thread
// buffer, then every activation, 8 at a time (the rest 4, 2, 1), meets each of them.
void panel_rows(const MatmulJob& job, const detail::Panel& pk, int64_t r0, int64_t r1) {
    thread_local std::vector<uint8_t> buf;
    const int64_t cols = job.w.cols, rb = row_bytes(job.w.type, cols);
    const size_t pb = pk.bytes(cols);
    buf.resize(kPanelsPacked * pb + 64);
    uint8_t* base = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    const auto* w = static_cast<const uint8_t*>(job.w.data);
    for (int64_t g0 = r0; g0 < r1; g0 += 8 * kPanelsPacked) {
        const int np = int(std::min<int64_t>(kPanelsPacked, (r1 - g0 + 7) / 8));
        for (int i = 0; i < np; ++i)
            pk.pack(w + (g0 + 8 * i) * rb, rb, int(std::min<int64_t>(8, r1 - g0 - 8 * i)), cols, base + i * pb);
        for (int64_t c = 0; c < job.n;) {
            const int64_t left = job.n - c;
            const int lg = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0, C = 1 << lg;
            for (int i = 0; i < np; ++i) {
                float o[64];
                pk.run[lg](base + i * pb, job.acts + c, cols, o);
                const int64_t rr = g0 + 8 * i;
                const int nr = int(std::min<int64_t>(8, r1 - rr));
                for (int cc = 0; cc < C; ++cc)
                    for (int q = 0; q < nr; ++q) job.y[(c + cc) * job.ldy + rr + q] = o[cc * 8 + q];
            }
            c += C;
        }
    }
}

std::vector<uint8_t>& scratch() {
    thread_local std::vector<uint8_t> s;
    return s;
}

}  // namespace

Isa detected_isa() {
    static const Isa d = detect();
    return d;
}
Isa active_isa() { return active().load(std::memory_order_relaxed); }
bool isa_available(Isa isa) { return isa <= detected_isa(); }
void force_isa(Isa isa) { active().store(isa_available(isa) ? isa : detected_isa(), std::memory_order_relaxed); }

void enable_dot4(bool on) { g_dot4.store(on, std::memory_order_relaxed); }
void enable_tile(bool on) { g_tile.store(on, std::memory_order_relaxed); }
void enable_panel(bool on) { g_panel.store(on, std::memory_order_relaxed); }

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return "scalar";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
    }
    return "?";
}

void dequantize_row_isa(Isa isa, GgmlType t, const void* src, float* dst, int64_t n) {
    check_cols(t, n, "dequantize_row");
    kernels_for(isa, t, "dequantize_row").dequant(src, dst, n);
}
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
    dequantize_row_isa(active_isa(), t, src, dst, n);
}

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
    check_cols(t, n, "quantize_row");
    kernels_for(Isa::Scalar, t, "quantize_row");
    detail::quantize_row_ref(t, src, dst, n);
}

size_t act_bytes(GgmlType t, int64_t n) {
    if (float_act(t)) return size_t(n) * 4;
    if (t == GgmlType::Q4_0 || t == GgmlType::Q5_0 || t == GgmlType::Q5_1 || t == GgmlType::Q8_0 ||
        t == GgmlType::IQ4_NL || t == GgmlType::IQ4_XS)
        return size_t(blocks::act_q8x32_bytes(n));
    return size_t(blocks::act_q8x256_bytes(n));
}

void prepare_act_isa(Isa isa, GgmlType t, const float* x, void* act, int64_t n) {
    check_cols(t, n, "prepare_act");
    kernels_for(isa, t, "prepare_act").prepare(x, act, n);
}
void prepare_act(GgmlType t, const float* x, void* act, int64_t n) { prepare_act_isa(active_isa(), t, x, act, n); }

float vec_dot_isa(Isa isa, GgmlType t, const void* row, const void* act, int64_t n) {
    return kernels_for(isa, t, "vec_dot").dot(row, act, n);
}
float vec_dot(GgmlType t, const void* row, const void* act, int64_t n) {
    return vec_dot_isa(active_isa(), t, row, act, n);
}

void vec_dot4_isa(Isa isa, GgmlType t, const void* row, const void* const* acts, int64_t n, float* out) {
    const TypeKernels& k = kernels_for(isa, t, "vec_dot4");
    if (k.dot4) return k.dot4(row, acts, n, out);
    for (int i = 0; i < 4; ++i) out[i] = k.dot(row, acts[i], n);
}
void vec_dot4(GgmlType t, const void* row, const void* const* acts, int64_t n, float* out) {
    vec_dot4_isa(active_isa(), t, row, acts, n, out);
}

TileShape tile_shape_isa(Isa isa, GgmlType t) {
    const detail::Tile& tl = kernels_for(isa, t, "tile").tile;
    return tl.fn ? TileShape{tl.rows, tl.cols} : TileShape{};
}
void vec_tile_isa(Isa isa, GgmlType t, const void* row, int64_t stride, const void* const* acts, int64_t n,
                  float* out) {
    const detail::Tile& tl = kernels_for(isa, t, "vec_tile").tile;
    if (!tl.fn) throw std::invalid_argument(std::string("vec_tile: no tile kernel for ") + type_name(t));
    tl.fn(row, stride, acts, n, out);
}

void matvec_prepared(const WeightView& w, const void* act, float* y, ThreadPool& pool) {
    check_cols(w.type, w.cols, "matvec");
    const detail::DotFn dot = kernels_for(active_isa(), w.type, "matvec").dot;
    const int64_t rb = row_bytes(w.type, w.cols), cols = w.cols;
    const auto* base = static_cast<const uint8_t*>(w.data);
    pool.parallel_for(w.rows, row_grain(w), [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) y[r] = dot(base + r * rb, act, cols);
    });
}

void matvec(const WeightView& w, const float* x, float* y, ThreadPool& pool) {
    check_cols(w.type, w.cols, "matvec");
    if (float_act(w.type)) return matvec_prepared(w, x, y, pool);
    std::vector<uint8_t>& act = scratch();
    act.resize(act_bytes(w.type, w.cols));
    kernels_for(active_isa(), w.type, "matvec").prepare(x, act.data(), w.cols);
    matvec_prepared(w, act.data(), y, pool);
}

void ActBatch::prepare(GgmlType t, const float* x, int64_t n_rows, int64_t n_cols, ThreadPool& pool) {
    check_cols(t, n_cols, "prepare activations");
    const TypeKernels& k = kernels_for(active_isa(), t, "prepare activations");
    type = t;
    n = n_rows;
    cols = n_cols;
    stride = (int64_t(act_bytes(t, n_cols)) + 63) / 64 * 64;
    const size_t need = size_t(stride * n_rows) + 64;
    if (buf.size() < need) buf.resize(need);
    base_ = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    pool.parallel_for(n_rows, 8, [&](int64_t b0, int64_t b1, int) {
        for (int64_t b = b0; b < b1; ++b) k.prepare(x + b * n_cols, base_ + b * stride, n_cols);
    });
}

void matmul_jobs(const MatmulJob* jobs, int64_t n_jobs, ThreadPool& pool) {
    // Rows of all jobs as one parallel loop; a chunk of rows meets every activation of its job, in
    // blocks of 64 activations (they stay in L2 while the chunk's rows stay in L1), four at a time.
    // The dot4 kernels are bound by the integer multiplies, not by cache: tiles of 16-128 KiB of
    // rows with the rows innermost (a group of four activations held in L1) measured within 5% of
    // this order on 768x2048 / 2048x4096 Q4_K, Q6_K, Q8_0 (1 thread, AVX2). Types with a tile kernel
    // (Q4_K, on AVX2 and AVX-512) take the rows two at a time: 1 thread, in cache, 2x4 tiles measured
    // 5-10% above dot4 on Q4_K; Q5_K and Q6_K tiles (AVX2) measured no faster, so they have none.
    int64_t total = 0, work = 0;
    for (int64_t j = 0; j < n_jobs; ++j) {
        check_cols(jobs[j].w.type, jobs[j].w.cols, "matmul");
        kernels_for(active_isa(), jobs[j].w.type, "matmul");
        total += jobs[j].w.rows;
        work += jobs[j].w.rows * row_bytes(jobs[j].w.type, jobs[j].w.cols) * std::max<int64_t>(jobs[j].n, 1);
    }
    if (total == 0) return;
    // ~256 KiB of weight-row x activation work per chunk, but enough chunks for every thread.
    const int64_t per_row = std::max<int64_t>(1, work / total);
    int64_t grain = std::clamp<int64_t>((int64_t(256) << 10) / per_row, 1,
                                        std::max<int64_t>(1, total / (4 * pool.size())));
    const Isa isa = active_isa();
    const bool use_dot4 = g_dot4.load(std::memory_order_relaxed);
    const bool use_tile = use_dot4 && g_tile.load(std::memory_order_relaxed);
    const bool use_panel = use_tile && g_panel.load(std::memory_order_relaxed);
    auto panel_job = [&](const MatmulJob& job) {
        const detail::Panel& pk = tables().k[int(isa)][size_t(job.w.type)].panel;
        return use_panel && pk.pack && job.n >= pk.min_cols;
    };
    for (int64_t j = 0; j < n_jobs; ++j)
        if (panel_job(jobs[j])) grain = (std::max<int64_t>(grain, 8) + 7) / 8 * 8;  // whole panels
    pool.parallel_for(total, grain, [&](int64_t r0, int64_t r1, int) {
        int64_t j = 0, base = 0;  // the job holding global row r0
        while (r0 >= base + jobs[j].w.rows) base += jobs[j++].w.rows;
        for (int64_t r = r0; r < r1;) {
            const MatmulJob& job = jobs[j];
            const int64_t end = std::min(r1, base + job.w.rows) - base;
            const TypeKernels& k = tables().k[int(isa)][size_t(job.w.type)];
            const int64_t rb = row_bytes(job.w.type, job.w.cols), cols = job.w.cols;
            const auto* w = static_cast<const uint8_t*>(job.w.data);
            if (panel_job(job)) {
                panel_rows(job, k.panel, r - base, end);
                r = base + end;
                base += job.w.rows;
                ++j;
                continue;
            }
            // Row rr against columns [c, c1): four at a time, then the rest.
            auto row_cols = [&](int64_t rr, int64_t c, int64_t c1) {
                const uint8_t* row = w + rr * rb;
                if (k.dot4 && use_dot4) {
                    for (float o[4]; c + 4 <= c1; c += 4) {
                        k.dot4(row, job.acts + c, cols, o);
                        for (int i = 0; i < 4; ++i) job.y[(c + i) * job.ldy + rr] = o[i];
                    }
                    // 3 left (an expert's token count is anything): one dot4 with a repeated
                    // column costs less than three dots. Columns are independent: same bits.
                    if (c1 - c == 3) {
                        const void* a[4] = {job.acts[c], job.acts[c + 1], job.acts[c + 2], job.acts[c + 2]};
                        float o[4];
                        k.dot4(row, a, cols, o);
                        for (int i = 0; i < 3; ++i) job.y[(c + i) * job.ldy + rr] = o[i];
                        c += 3;
                    }
                }
                for (; c < c1; ++c) job.y[c * job.ldy + rr] = k.dot(row, job.acts[c], cols);
            };
            for (int64_t c0 = 0; c0 < job.n; c0 += 64) {
                const int64_t c1 = std::min(job.n, c0 + 64);
                int64_t rr = r - base;
                if (k.tile.fn && use_tile) {
                    // Tiles of R rows x C columns; the columns left over (fewer than C) row by row.
                    const int R = k.tile.rows, C = k.tile.cols;
                    const int64_t ct = c0 + (c1 - c0) / C * C;
                    for (; rr + R <= end; rr += R) {
                        for (int64_t c = c0; c < ct; c += C) {
                            float o[kMaxTile];
                            k.tile.fn(w + rr * rb, rb, job.acts + c, cols, o);
                            for (int i = 0; i < C; ++i)
                                for (int q = 0; q < R; ++q) job.y[(c + i) * job.ldy + rr + q] = o[q * C + i];
                        }
                        if (ct < c1)
                            for (int q = 0; q < R; ++q) row_cols(rr + q, ct, c1);
                    }
                }
                for (; rr < end; ++rr) row_cols(rr, c0, c1);
            }
            r = base + end;
            base += job.w.rows;
            ++j;
        }
    });
}

void matmul(const WeightView& w, const float* x, int64_t batch, float* y, ThreadPool& pool) {
    thread_local ActBatch acts;
    acts.prepare(w.type, x, batch, w.cols, pool);
    std::vector<const void*> ptrs(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) ptrs[size_t(b)] = acts.row(b);
    const MatmulJob job{w, ptrs.data(), batch, y, w.rows};
    matmul_jobs(&job, 1, pool);
}

}  // namespace sluice
