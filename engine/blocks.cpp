#include "engine/blocks.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

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

namespace {

// One head of one query over cache positions [0, n): s = softmax(q . k_t * scale), out = sum_t s_t v_t.
// The one body both attention paths run, so decode and prompt chunks agree to the bit. Built for AVX2
// too (picked at load time): the v accumulation is most of a prompt chunk's attention.
__attribute__((target_clones("arch=x86-64-v3", "default")))
void attend_head(float* __restrict out, const float* qh, const float* kb, const float* __restrict vb, int64_t k_stride, int64_t v_stride,
                 int64_t n, int64_t head_dim, int64_t head_dim_v, float scale, float* s) {
    for (int64_t t = 0; t < n; ++t) s[t] = vec_dot(GgmlType::F32, kb + t * k_stride, qh, head_dim) * scale;
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

}  // namespace

void attention_one(float* out, const float* q, const LayerKv& kv, int64_t n_tokens, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, int64_t head_dim_v, float* scores,
                   ThreadPool& pool) {
    const int64_t group = n_head / n_head_kv;
    const int64_t k_stride = n_head_kv * head_dim, v_stride = n_head_kv * head_dim_v;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    // Heads are independent; split them over threads only when the context makes it worth a wake-up.
    const int64_t grain = n_tokens * head_dim < 16384 ? n_head : 1;
    pool.parallel_for(n_head, grain, [&](int64_t h0, int64_t h1, int) {
        for (int64_t h = h0; h < h1; ++h)
            attend_head(out + h * head_dim_v, q + h * head_dim, kv.k.data() + (h / group) * head_dim,
                        kv.v.data() + (h / group) * head_dim_v, k_stride, v_stride, n_tokens, head_dim, head_dim_v,
                        scale, scores + h * n_tokens);
    });
}

void attention_batch(float* out, const float* q, const LayerKv& kv, int64_t pos0, int64_t n_q, int64_t n_head,
                     int64_t n_head_kv, int64_t head_dim, int64_t head_dim_v, ThreadPool& pool) {
    const int64_t group = n_head / n_head_kv;
    const int64_t k_stride = n_head_kv * head_dim, v_stride = n_head_kv * head_dim_v;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    // (query, head) pairs, later queries (longer rows) first so the last chunks claimed are short.
    pool.parallel_for(n_q * n_head, 1, [&](int64_t a, int64_t b, int) {
        thread_local std::vector<float> s;
        s.resize(size_t(pos0 + n_q));
        for (int64_t x = a; x < b; ++x) {
            const int64_t i = n_q - 1 - x / n_head, h = x % n_head;
            attend_head(out + i * n_head * head_dim_v + h * head_dim_v, q + i * n_head * head_dim + h * head_dim,
                        kv.k.data() + (h / group) * head_dim, kv.v.data() + (h / group) * head_dim_v, k_stride, v_stride,
                        pos0 + i + 1, head_dim, head_dim_v, scale, s.data());
        }
    });
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

void conv1d_step(float* out, const float* x, float* state, const float* w, int64_t channels, int64_t kernel) {
    const int64_t hist = kernel - 1;
    for (int64_t c = 0; c < channels; ++c) {
        const float* wc = w + c * kernel;
        float acc = wc[hist] * x[c];
        for (int64_t j = 0; j < hist; ++j) acc += wc[j] * state[j * channels + c];
        out[c] = acc;
    }
    if (hist > 0) {
        std::copy(state + channels, state + hist * channels, state);
        std::copy(x, x + channels, state + (hist - 1) * channels);
    }
}

void l2norm(float* x, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float s = float(1.0 / std::sqrt(ss + double(eps)));
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void gated_delta_step(float* S, float* out, const float* q, const float* k, const float* v, float decay,
                      float beta, int64_t dk, int64_t dv, float* scratch) {
    // Pass 1: decay the state and read what it predicts for k: kv[j] = sum_i S[i][j] k[i].
    float* kv = scratch;
    std::fill(kv, kv + dv, 0.0f);
    for (int64_t i = 0; i < dk; ++i) {
        float* row = S + i * dv;
        const float ki = k[i];
        for (int64_t j = 0; j < dv; ++j) {
            row[j] *= decay;
            kv[j] += row[j] * ki;
        }
    }
    // Only the part of v the state does not already predict is written (the delta rule).
    for (int64_t j = 0; j < dv; ++j) kv[j] = (v[j] - kv[j]) * beta;
    // Pass 2: S += k delta^T, and read the output with q from the updated state.
    std::fill(out, out + dv, 0.0f);
    for (int64_t i = 0; i < dk; ++i) {
        float* row = S + i * dv;
        const float ki = k[i], qi = q[i];
        for (int64_t j = 0; j < dv; ++j) {
            row[j] += ki * kv[j];
            out[j] += row[j] * qi;
        }
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
