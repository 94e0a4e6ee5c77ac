#include "engine/blocks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "engine/attention.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps) {
    double ss = 0.0;  // double: n_embd up to 7168 squares summed
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void rope_neox(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float base) {
    const int64_t half = n_rot / 2;
    for (int64_t i = 0; i < half; ++i) {
        // theta in double: at pos ~1e5 a float angle loses the low bits that still matter for sin/cos.
        const double theta = double(pos) * std::pow(double(base), -2.0 * double(i) / double(n_rot));
        const float c = float(std::cos(theta)), s = float(std::sin(theta));
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + h * head_dim;
            const float a = v[i], b = v[i + half];
            v[i] = a * c - b * s;
            v[i + half] = a * s + b * c;
        }
    }
}

void softmax(float* x, int64_t n) {
    const float mx = *std::max_element(x, x + n);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// a . b in 16 fixed lanes (two vectors of 8 when built for AVX2: half the FMA chain), summed in lane
// order: inlined into each build of attend_head, where a call through vec_dot's dispatch per cache
// row cost as much as the arithmetic.
__attribute__((always_inline)) inline float dot_lanes(const float* __restrict a, const float* __restrict b, int64_t n) {
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int u = 0; u < 16; ++u) acc[u] += a[i + u] * b[i + u];
    float s = 0.0f;
    for (; i < n; ++i) s += a[i] * b[i];
    for (int u = 0; u < 16; ++u) s += acc[u];
    return s;
}

// The reference attention_chunk is tested against (built for AVX2 too, picked at load time).
__attribute__((target_clones("arch=x86-64-v3", "default")))
void attend_head(float* __restrict out, const float* qh, const float* kb, const float* __restrict vb, int64_t k_stride, int64_t v_stride,
                 int64_t n, int64_t head_dim, int64_t head_dim_v, float scale, float* s) {
    for (int64_t t = 0; t < n; ++t) s[t] = dot_lanes(kb + t * k_stride, qh, head_dim) * scale;
    softmax(s, n);
    std::fill(out, out + head_dim_v, 0.0f);
    const int64_t d8 = head_dim_v / 8 * 8;
    for (int64_t t = 0; t < n; ++t) {  // out[d] sums over t in order, whatever the blocking
        const float* __restrict vt = vb + t * v_stride;
        const float p = s[t];
        for (int64_t d0 = 0; d0 < d8; d0 += 8)  // fixed-width inner loop: the compiler vectorises it
            for (int u = 0; u < 8; ++u) out[d0 + u] += p * vt[d0 + u];
        for (int64_t d = d8; d < head_dim_v; ++d) out[d] += p * vt[d];
    }
}

void attention_one(float* out, const float* q, const LayerKv& kv, int64_t n_tokens, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, int64_t head_dim_v, float* scores,
                   ThreadPool& pool) {
    attention_batch(out, q, kv, n_tokens - 1, 1, n_head, n_head_kv, head_dim, head_dim_v, pool);
}

void attention_batch(float* out, const float* q, const LayerKv& kv, int64_t pos0, int64_t n_q, int64_t n_head,
                     int64_t n_head_kv, int64_t head_dim, int64_t head_dim_v, ThreadPool& pool) {
    AttnChunk a{};
    a.q = q;
    a.q_row = n_head * head_dim;
    a.q_head = head_dim;
    a.out = out;
    a.out_row = n_head * head_dim_v;
    a.out_head = head_dim_v;
    a.k = kv.k.data();
    a.v = kv.v.data();
    a.k_stride = n_head_kv * head_dim;
    a.v_stride = n_head_kv * head_dim_v;
    a.pos0 = pos0;
    a.n_q = n_q;
    a.n_head = n_head;
    a.n_head_kv = n_head_kv;
    a.head_dim = head_dim;
    a.head_dim_v = head_dim_v;
    a.scale = 1.0f / std::sqrt(float(head_dim));
    attention_chunk(a, pool);
}

void router_topk_softmax(const float* logits, int64_t n_expert, int64_t k, bool renorm, int32_t* ids,
                         float* weights) {
    std::vector<float> p(logits, logits + n_expert);
    softmax(p.data(), n_expert);
    std::vector<int32_t> order(static_cast<size_t>(n_expert));
    std::iota(order.begin(), order.end(), 0);
    // Ties go to the lower expert id, as torch.topk does on CPU for equal values.
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return p[a] > p[b] || (p[a] == p[b] && a < b);
    });
    double sum = 0.0;
    for (int64_t i = 0; i < k; ++i) sum += p[order[i]];
    for (int64_t i = 0; i < k; ++i) {
        ids[i] = order[i];
        weights[i] = renorm ? float(p[order[i]] / sum) : p[order[i]];
    }
}

void matvec_jobs(const MatvecJob* jobs, int64_t n_jobs, ThreadPool& pool) {
    int64_t total = 0;
    for (int64_t j = 0; j < n_jobs; ++j) total += jobs[j].w.rows;
    pool.parallel_for(total, 16, [&](int64_t r0, int64_t r1, int) {
        int64_t j = 0, base = 0;  // the job holding global row r0
        while (r0 >= base + jobs[j].w.rows) base += jobs[j++].w.rows;
        for (int64_t r = r0; r < r1;) {
            const MatvecJob& job = jobs[j];
            const int64_t end = std::min(r1, base + job.w.rows);
            const int64_t rb = row_bytes(job.w.type, job.w.cols);
            const uint8_t* w = static_cast<const uint8_t*>(job.w.data);
            for (; r < end; ++r)
                job.y[r - base] = vec_dot(job.w.type, w + (r - base) * rb, job.act, job.w.cols);
            base += job.w.rows;
            ++j;
        }
    });
}

namespace {

// One token's causal conv: out[c] = w[c][kernel-1] x[c] + sum_j w[c][j] prev(j)[c], prev(j) the kernel - 1
// inputs before it, oldest first. The one loop both conv paths run, so they agree to the bit.
template <class Prev>
void conv_token(float* out, const float* x, const Prev& prev, const float* w, int64_t channels, int64_t kernel) {
    const int64_t hist = kernel - 1;
    for (int64_t c = 0; c < channels; ++c) {
        const float* wc = w + c * kernel;
        float acc = wc[hist] * x[c];
        for (int64_t j = 0; j < hist; ++j) acc += wc[j] * prev(j)[c];
        out[c] = acc;
    }
}

}  // namespace

void conv1d_step(float* out, const float* x, float* state, const float* w, int64_t channels, int64_t kernel) {
    const int64_t hist = kernel - 1;
    conv_token(out, x, [&](int64_t j) { return state + j * channels; }, w, channels, kernel);
    if (hist > 0) {
        std::copy(state + channels, state + hist * channels, state);
        std::copy(x, x + channels, state + (hist - 1) * channels);
    }
}

void conv1d_chunk(float* out, const float* x, int64_t n, float* state, const float* w, int64_t channels,
                  int64_t kernel, ThreadPool& pool) {
    const int64_t hist = kernel - 1;
    // Input i of the sequence [state rows (hist); x rows (n)].
    auto input = [&](int64_t i) { return i < hist ? state + i * channels : x + (i - hist) * channels; };
    pool.parallel_for(n, 4, [&](int64_t a, int64_t b, int) {
        std::vector<const float*> prev(static_cast<size_t>(std::max<int64_t>(hist, 0)));
        for (int64_t t = a; t < b; ++t) {
            for (int64_t j = 0; j < hist; ++j) prev[size_t(j)] = input(t + j);
            conv_token(out + t * channels, x + t * channels, [&](int64_t j) { return prev[size_t(j)]; }, w, channels,
                       kernel);
        }
    });
    if (hist <= 0) return;
    // The last hist inputs become the state (some may still be state rows when n < hist).
    if (n < hist) std::copy(state + n * channels, state + hist * channels, state);
    const int64_t keep = std::min(n, hist);
    std::copy(x + (n - keep) * channels, x + n * channels, state + (hist - keep) * channels);
}

void l2norm(float* x, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float s = float(1.0 / std::sqrt(ss + double(eps)));
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void gated_delta_step(float* S, float* out, const float* q, const float* k, const float* v, float decay,
                      float beta, int64_t dk, int64_t dv, float* scratch) {
    // Columns j in blocks of 16 (a cache line) with the sums in local arrays: fixed-width loops the
    // compiler vectorises (each column still sums over i in order, so the blocking changes no bit).
    constexpr int64_t B = 16;
    float* kv = scratch;
    int64_t j0 = 0;
    for (; j0 + B <= dv; j0 += B) {
        // Pass 1: decay the state and read what it predicts for k: kv[j] = sum_i S[i][j] k[i].
        float acc[B] = {};
        for (int64_t i = 0; i < dk; ++i) {
            float* row = S + i * dv + j0;
            const float ki = k[i];
            for (int64_t u = 0; u < B; ++u) {
                row[u] *= decay;
                acc[u] += row[u] * ki;
            }
        }
        // Only the part of v the state does not already predict is written (the delta rule).
        for (int64_t u = 0; u < B; ++u) kv[j0 + u] = (v[j0 + u] - acc[u]) * beta;
    }
    for (int64_t j = j0; j < dv; ++j) {
        float acc = 0.0f;
        for (int64_t i = 0; i < dk; ++i) {
            S[i * dv + j] *= decay;
            acc += S[i * dv + j] * k[i];
        }
        kv[j] = (v[j] - acc) * beta;
    }
    // Pass 2: S += k delta^T, and read the output with q from the updated state.
    for (j0 = 0; j0 + B <= dv; j0 += B) {
        float d[B], acc[B] = {};
        for (int64_t u = 0; u < B; ++u) d[u] = kv[j0 + u];
        for (int64_t i = 0; i < dk; ++i) {
            float* row = S + i * dv + j0;
            const float ki = k[i], qi = q[i];
            for (int64_t u = 0; u < B; ++u) {
                row[u] += ki * d[u];
                acc[u] += row[u] * qi;
            }
        }
        for (int64_t u = 0; u < B; ++u) out[j0 + u] = acc[u];
    }
    for (int64_t j = j0; j < dv; ++j) {
        float acc = 0.0f;
        for (int64_t i = 0; i < dk; ++i) {
            S[i * dv + j] += k[i] * kv[j];
            acc += S[i * dv + j] * q[i];
        }
        out[j] = acc;
    }
}

void SharedInputMatvec::run(const float* x, int64_t n, std::initializer_list<std::pair<WeightView, float*>> mats,
                            ThreadPool& pool) {
    std::array<MatvecJob, kMaxMats> jobs;
    int64_t n_jobs = 0;
    for (PreparedAct& a : acts_) a.buf.clear();
    for (const auto& [w, y] : mats) {
        if (n_jobs == kMaxMats) throw std::logic_error("SharedInputMatvec: too many matrices");
        PreparedAct* act = nullptr;
        for (PreparedAct& a : acts_)
            if (!a.buf.empty() && a.type == w.type) act = &a;
        for (PreparedAct& a : acts_)
            if (!act && a.buf.empty()) act = &a;
        if (act->buf.empty()) act->prepare(w.type, x, n);
        jobs[size_t(n_jobs++)] = {w, act->buf.data(), y};
    }
    matvec_jobs(jobs.data(), n_jobs, pool);
}

void SharedInputMatmul::run(const float* x, int64_t n, int64_t cols, std::initializer_list<MatmulOut> mats,
                            ThreadPool& pool) {
    if (mats.size() > size_t(kMaxMats)) throw std::logic_error("SharedInputMatmul: too many matrices");
    std::array<MatmulJob, kMaxMats> jobs;
    GgmlType types[kMaxMats];
    int n_types = 0, n_jobs = 0;
    for (const MatmulOut& m : mats) {
        int a = 0;
        while (a < n_types && types[a] != m.w.type) ++a;
        if (a == n_types) {
            types[n_types++] = m.w.type;
            acts_[size_t(a)].prepare(m.w.type, x, n, cols, pool);
            ptrs_[a].resize(size_t(n));
            for (int64_t i = 0; i < n; ++i) ptrs_[a][size_t(i)] = acts_[size_t(a)].row(i);
        }
        jobs[size_t(n_jobs++)] = {m.w, ptrs_[a].data(), n, m.y, m.w.rows};
    }
    matmul_jobs(jobs.data(), n_jobs, pool);
}

std::vector<float> tensor_f32(const gguf::File& f, const gguf::TensorInfo& t) {
    std::vector<float> out(size_t(t.n_elements()));
    dequantize_row(t.type, f.data(t), out.data(), t.n_elements());
    return out;
}

WeightView matrix_view(const gguf::File& f, const gguf::TensorInfo& t) {
    return WeightView{t.type, t.ne[1] * t.ne[2] * t.ne[3], t.ne[0], f.data(t)};
}

WeightView expert_view(const gguf::File& f, const gguf::TensorInfo& t, int64_t e, int64_t row0,
                       int64_t rows) {
    const int64_t rb = row_bytes(t.type, t.ne[0]);
    const uint8_t* base = f.data(t) + (e * t.ne[1] + row0) * rb;
    return WeightView{t.type, rows, t.ne[0], base};
}

}  // namespace sluice
