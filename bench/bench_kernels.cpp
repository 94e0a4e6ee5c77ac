// matvec weight throughput per type, ISA and thread count at decode shapes, beside the machine's
// plain read bandwidth. "cold" rotates through 512 MiB of weight copies so every call streams from
// RAM, as a decode step does; "hot" repeats one matrix that stays in cache (compute bound).
// Run: build/bench/bench_kernels --benchmark_filter=... ; bytes_per_second is weight bytes read.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <atomic>
#include <cstring>
#include <map>
#include <tuple>
#include <memory>
#include <random>
#include <vector>

#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"

using namespace sluice;

namespace {

constexpr int64_t kColdBytes = int64_t(512) << 20;

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,   GgmlType::Q4_0,
                           GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q2_K,   GgmlType::Q3_K,
                           GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S,
                           GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_S, GgmlType::IQ1_M};
struct Shape {
    int64_t rows, cols;
    const char* name;
};
// An expert's gate/up slab of a Qwen3-30B-A3B-like model (n_embd 2048, n_ff 768) and a dense
// attention-sized matrix.
const Shape kShapes[] = {{768, 2048, "768x2048"}, {4096, 2048, "4096x2048"}};

ThreadPool& pool(int threads) {
    static std::map<int, std::unique_ptr<ThreadPool>> pools;
    auto& p = pools[threads];
    if (!p) p = std::make_unique<ThreadPool>(threads);
    return *p;
}

// Copies of one quantized matrix filling `total` bytes (at least one copy), 64-byte aligned.
struct Weights {
    std::vector<uint8_t> storage;
    int64_t matrix_bytes = 0, copies = 0, stride = 0;
    const uint8_t* copy(int64_t i) const { return storage.data() + i * stride; }
};

// One matrix set at a time (the cold ones are 512 MiB); benchmarks of the same set run in a row.
const Weights& weights(GgmlType t, const Shape& s, bool cold) {
    static std::tuple<int, int64_t, int64_t, bool> key{-1, 0, 0, false};
    static Weights w;
    if (key == std::make_tuple(int(t), s.rows, s.cols, cold)) return w;
    key = {int(t), s.rows, s.cols, cold};
    w = Weights{};
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> row(static_cast<size_t>(s.cols));
    const int64_t rb = row_bytes(t, s.cols);
    w.matrix_bytes = rb * s.rows;
    w.stride = (w.matrix_bytes + 63) / 64 * 64;
    w.copies = cold ? std::max<int64_t>(1, kColdBytes / w.stride) : 1;
    w.storage.resize(size_t(w.stride * w.copies));
    for (int64_t r = 0; r < s.rows; ++r) {
        for (float& v : row) v = 0.02f * nd(rng);
        quantize_row(t, row.data(), w.storage.data() + r * rb, s.cols);
    }
    for (int64_t c = 1; c < w.copies; ++c) std::memcpy(w.storage.data() + c * w.stride, w.storage.data(), size_t(w.matrix_bytes));
    return w;
}

// Args: type index, ISA, threads, shape index, cold.
void BM_Matvec(benchmark::State& state) {
    const GgmlType t = kTypes[state.range(0)];
    const Isa isa = Isa(state.range(1));
    const int threads = int(state.range(2));
    const Shape& s = kShapes[state.range(3)];
    const bool cold = state.range(4);
    if (!isa_available(isa)) {
        state.SkipWithError("ISA not available on this CPU");
        return;
    }
    force_isa(isa);
    const Weights& w = weights(t, s, cold);
    std::vector<float> x(static_cast<size_t>(s.cols)), y(static_cast<size_t>(s.rows));
    std::mt19937 rng(2);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (float& v : x) v = nd(rng);
    ThreadPool& p = pool(threads);
    int64_t i = 0;
    for (auto _ : state) {
        matvec(WeightView{t, s.rows, s.cols, w.copy(i)}, x.data(), y.data(), p);
        benchmark::DoNotOptimize(y.data());
        if (++i == w.copies) i = 0;
    }
    state.SetBytesProcessed(state.iterations() * w.matrix_bytes);
    state.counters["GBps"] = benchmark::Counter(double(state.iterations() * w.matrix_bytes) * 1e-9,
                                                benchmark::Counter::kIsRate);
    state.SetLabel(std::string(type_name(t)) + " " + isa_name(isa) + " t" + std::to_string(threads) + " " + s.name +
                   (cold ? " cold" : " hot"));
    force_isa(detected_isa());
}

void matvec_args(benchmark::internal::Benchmark* b) {
    for (int ti = 0; ti < int(std::size(kTypes)); ++ti)
        for (int shape : {0, 1})
            for (int cold : {1, 0})
                for (int isa : {1, 2, 0})
                    for (int threads : {1, 2}) {
                        if (isa == 0 && (threads == 2 || shape == 1 || cold == 0)) continue;  // scalar: one point
                        b->Args({ti, isa, threads, shape, cold});
                    }
}
BENCHMARK(BM_Matvec)->Apply(matvec_args)->UseRealTime()->MinTime(0.2);

// Batched prompt products (matmul_jobs) on one thread, in cache: one Qwen3-30B-A3B expert's gate
// (768x2048) meeting the 32 tokens routed to it, and a 2048x4096 matrix meeting a 512-token chunk;
// with the dot4 kernels (one weight row decoded for four columns), without (four dot() calls), and
// with the tiles (several rows x several columns; Q4_K). The expert-sized 768x2048 / 2048x768 (gate
// or up / down) at 64 and 512 columns are the tile's cases.
// GFLOPs counts 2 * rows * cols * n per CPU second (this machine's cores are shared: CPU time is
// the steadier clock for one thread).
struct MatmulShape {
    int64_t rows, cols, n;
    const char* name;
};
const MatmulShape kMatmulShapes[] = {{768, 2048, 32, "768x2048 n32"},   {2048, 4096, 512, "2048x4096 n512"},
                                     {768, 2048, 64, "768x2048 n64"},   {2048, 768, 64, "2048x768 n64"},
                                     {768, 2048, 512, "768x2048 n512"}, {2048, 768, 512, "2048x768 n512"},
                                     {768, 2048, 8, "768x2048 n8"},     {768, 2048, 16, "768x2048 n16"},
                                     {768, 2048, 4, "768x2048 n4"}};
const GgmlType kMatmulTypes[] = {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::Q5_K, GgmlType::Q4_0,
                                 GgmlType::F16,  GgmlType::IQ2_XXS};

// Args: type index, shape index, ISA, kernel (0 dot, 1 dot4, 2 tile, 3 repacked panels).
void BM_Matmul(benchmark::State& state) {
    const GgmlType t = kMatmulTypes[state.range(0)];
    const MatmulShape& s = kMatmulShapes[state.range(1)];
    const Isa isa = Isa(state.range(2));
    if (!isa_available(isa)) {
        state.SkipWithError("ISA not available on this CPU");
        return;
    }
    force_isa(isa);
    enable_dot4(state.range(3) >= 1);
    enable_tile(state.range(3) >= 2);
    enable_panel(state.range(3) == 3);
    const Weights& w = weights(t, Shape{s.rows, s.cols, s.name}, false);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(static_cast<size_t>(s.n * s.cols));
    for (float& v : x) v = nd(rng);
    ThreadPool& p = pool(1);
    ActBatch acts;
    acts.prepare(t, x.data(), s.n, s.cols, p);
    std::vector<const void*> ptrs(static_cast<size_t>(s.n));
    for (int64_t i = 0; i < s.n; ++i) ptrs[size_t(i)] = acts.row(i);
    std::vector<float> y(static_cast<size_t>(s.n * s.rows));
    const MatmulJob job{WeightView{t, s.rows, s.cols, w.copy(0)}, ptrs.data(), s.n, y.data(), s.rows};
    for (auto _ : state) {
        matmul_jobs(&job, 1, p);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["GFLOPs"] = benchmark::Counter(double(state.iterations()) * 2e-9 * double(s.rows * s.cols * s.n),
                                                  benchmark::Counter::kIsRate);
    state.SetLabel(std::string(type_name(t)) + " " + isa_name(isa) + " " + s.name +
                   (state.range(3) == 3 ? " panel" : state.range(3) == 2 ? " tile" : state.range(3) ? " dot4" : " dot"));
    force_isa(detected_isa());
    enable_dot4(true);
    enable_tile(true);
    enable_panel(true);
}

void matmul_args(benchmark::internal::Benchmark* b) {
    for (int ti = 0; ti < int(std::size(kMatmulTypes)); ++ti)
        for (size_t shape = 0; shape < std::size(kMatmulShapes); ++shape)
            for (int isa : {1, 2})
                for (int kernel : {3, 2, 1, 0}) {
                    // tiles: Q4_K only; panels: Q4_K, Q5_K, Q6_K, Q8_0 on AVX-512; else as dot4
                    const GgmlType t = kMatmulTypes[ti];
                    const bool panel = t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K || t == GgmlType::Q8_0;
                    if (kernel == 2 && t != GgmlType::Q4_K) continue;
                    if (kernel == 3 && (isa != 2 || !panel)) continue;
                    if (shape >= 2 && kernel == 0) continue;
                    b->Args({ti, int(shape), isa, kernel});
                }
}
BENCHMARK(BM_Matmul)->Apply(matmul_args)->MinTime(0.3);

// Read bandwidth: xor-fold 512 MiB with 32-byte loads (AVX2 if present), split over the pool's threads.
__attribute__((target("avx2"))) uint64_t xor_fold_avx2(const uint8_t* p, int64_t bytes) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < bytes; i += 128) {
        const auto* q = reinterpret_cast<const __m256i*>(p + i);
        a0 = _mm256_xor_si256(a0, _mm256_load_si256(q));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256(q + 1));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256(q + 2));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256(q + 3));
    }
    const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return uint64_t(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}
uint64_t xor_fold(const uint8_t* p, int64_t bytes) {
    if (__builtin_cpu_supports("avx2")) return xor_fold_avx2(p, bytes);
    uint64_t acc[4] = {};
    for (int64_t i = 0; i < bytes; i += 32)
        for (int k = 0; k < 4; ++k) acc[k] ^= *reinterpret_cast<const uint64_t*>(p + i + 8 * k);
    return acc[0] ^ acc[1] ^ acc[2] ^ acc[3];
}

void BM_ReadBandwidth(benchmark::State& state) {
    static std::vector<uint64_t> buf(size_t(kColdBytes / 8), 1);
    ThreadPool& p = pool(int(state.range(0)));
    const auto* base = reinterpret_cast<const uint8_t*>(buf.data());
    const int64_t pages = kColdBytes / 4096;
    for (auto _ : state) {
        std::atomic<uint64_t> total{0};
        p.parallel_for(pages, 1024, [&](int64_t b, int64_t e, int) { total ^= xor_fold(base + b * 4096, (e - b) * 4096); });
        benchmark::DoNotOptimize(total.load());
    }
    state.SetBytesProcessed(state.iterations() * kColdBytes);
    state.counters["GBps"] = benchmark::Counter(double(state.iterations() * kColdBytes) * 1e-9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime()->MinTime(0.5);

void BM_Memcpy(benchmark::State& state) {
    static std::vector<uint8_t> src(size_t(kColdBytes / 2), 1), dst(size_t(kColdBytes / 2));
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), src.size());
        benchmark::DoNotOptimize(dst.data());
    }
    state.SetBytesProcessed(state.iterations() * int64_t(src.size()));  // bytes copied (read + written = 2x)
}
BENCHMARK(BM_Memcpy)->UseRealTime()->MinTime(0.5);

// What a decode step pays per matvec for the pool alone.
void BM_ParallelForOverhead(benchmark::State& state) {
    ThreadPool& p = pool(int(state.range(0)));
    std::atomic<int64_t> sink{0};
    for (auto _ : state) p.parallel_for(64, 1, [&](int64_t b, int64_t e, int) { sink += e - b; });
}
BENCHMARK(BM_ParallelForOverhead)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
