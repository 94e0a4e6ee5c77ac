// The attention core alone (no projections), Qwen3-30B-A3B heads (32 q, 4 kv, head_dim 128) and
// DeepSeek-V3's MLA (16 heads here, one 576-wide latent row, 512 values): a prompt chunk of T queries
// after pos0 cached tokens, and decode steps at several context lengths. "ref" is the loop prompt
// chunks ran before attention_chunk: attend_head per (query, head), pairs split over the pool.
// Runs interleaved, median ms of R. Prints one JSON object per line.
// Run: build/bench/bench_attention [threads] [R]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "engine/attention.h"
#include "engine/blocks.h"
#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"

using namespace sluice;
using Clock = std::chrono::steady_clock;

namespace {

struct Case {
    const char* name;
    int64_t n_head, n_head_kv, head_dim, head_dim_v, pos0, T;
    bool mla;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void run(const Case& c, ThreadPool& pool, int R) {
    const int64_t n_kv = c.pos0 + c.T;
    const int64_t ks = c.mla ? c.head_dim : c.n_head_kv * c.head_dim, vs = c.mla ? c.head_dim : c.n_head_kv * c.head_dim_v;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    auto fill = [&](int64_t n) {
        std::vector<float> v(static_cast<size_t>(n));
        for (float& x : v) x = nd(rng);
        return v;
    };
    const std::vector<float> k = fill(n_kv * ks), v = c.mla ? std::vector<float>() : fill(n_kv * vs);
    const std::vector<float> q = fill(c.T * c.n_head * c.head_dim);
    const float* vp = c.mla ? k.data() : v.data();
    std::vector<float> out(size_t(c.T * c.n_head * c.head_dim_v));
    const int64_t group = c.n_head / c.n_head_kv;
    const float scale = 1.0f / std::sqrt(float(c.head_dim));

    auto ref = [&] {
        pool.parallel_for(c.T * c.n_head, 1, [&](int64_t a, int64_t b, int) {
            std::vector<float> s(static_cast<size_t>(n_kv));
            for (int64_t x = a; x < b; ++x) {
                const int64_t i = c.T - 1 - x / c.n_head, h = x % c.n_head, g = c.mla ? 0 : h / group;
                attend_head(&out[size_t((i * c.n_head + h) * c.head_dim_v)], &q[size_t((i * c.n_head + h) * c.head_dim)],
                            k.data() + g * c.head_dim, vp + g * c.head_dim_v, ks, vs, c.pos0 + i + 1, c.head_dim,
                            c.head_dim_v, scale, s.data());
            }
        });
    };
    auto chunk = [&] {
        AttnChunk a{};
        a.q = q.data();
        a.q_row = c.n_head * c.head_dim;
        a.q_head = c.head_dim;
        a.out = out.data();
        a.out_row = c.n_head * c.head_dim_v;
        a.out_head = c.head_dim_v;
        a.k = k.data();
        a.v = vp;
        a.k_stride = ks;
        a.v_stride = vs;
        a.pos0 = c.pos0;
        a.n_q = c.T;
        a.n_head = c.n_head;
        a.n_head_kv = c.mla ? 1 : c.n_head_kv;
        a.head_dim = c.head_dim;
        a.head_dim_v = c.head_dim_v;
        a.scale = scale;
        attention_chunk(a, pool);
    };
    auto ms = [](auto&& f) {
        const auto t0 = Clock::now();
        f();
        return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    };
    std::vector<double> tr, tc;
    ref();
    chunk();
    for (int r = 0; r < R; ++r) {
        tr.push_back(ms(ref));
        tc.push_back(ms(chunk));
    }
    // q.k and p.v multiply-adds over the visible rows, 2 flops each
    const double flops = 2.0 * double(c.n_head) * double(c.head_dim + c.head_dim_v) *
                         (double(c.T) * double(c.pos0) + double(c.T) * double(c.T + 1) / 2.0);
    std::printf("{\"case\":\"%s\",\"isa\":\"%s\",\"threads\":%d,\"pos0\":%lld,\"T\":%lld,\"ref_ms\":%.3f,\"chunk_ms\":%.3f,"
                "\"speedup\":%.2f,\"chunk_gflop_s\":%.1f}\n",
                c.name, isa_name(active_isa()), pool.size(), (long long)c.pos0, (long long)c.T, median(tr), median(tc),
                median(tr) / median(tc), flops / median(tc) * 1e-6);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2, R = argc > 2 ? std::atoi(argv[2]) : 5;
    ThreadPool pool(threads);
    const Case cases[] = {
        {"b30 chunk", 32, 4, 128, 128, 0, 512, false},     {"b30 chunk", 32, 4, 128, 128, 1536, 512, false},
        {"b30 decode", 32, 4, 128, 128, 511, 1, false},    {"b30 decode", 32, 4, 128, 128, 4095, 1, false},
        {"mla chunk", 16, 1, 576, 512, 0, 512, true},      {"mla decode", 16, 1, 576, 512, 4095, 1, true},
    };
    for (const Case& c : cases) run(c, pool, R);
    return 0;
}
