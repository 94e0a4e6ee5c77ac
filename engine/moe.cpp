#include "engine/moe.h"

#include <algorithm>
#include <chrono>

#include "engine/error.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"
#include "engine/stream/streaming.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

namespace {

class MmapExperts final : public ExpertSource {
public:
    MmapExperts(const gguf::File& f, std::vector<MoeTensors> layers, int64_t n_embd, int64_t n_ff)
        : f_(f), layers_(std::move(layers)), n_embd_(n_embd), n_ff_(n_ff) {}

    void fetch(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) override {
        const MoeTensors& t = layers_[size_t(layer)];
        for (int64_t j = 0; j < k; ++j) {
            const int64_t e = ids[j];
            if (t.gate_up_exps) {
                out[j].gate = expert_view(f_, *t.gate_up_exps, e, 0, n_ff_);
                out[j].up = expert_view(f_, *t.gate_up_exps, e, n_ff_, n_ff_);
            } else {
                out[j].gate = expert_view(f_, *t.gate_exps, e, 0, n_ff_);
                out[j].up = expert_view(f_, *t.up_exps, e, 0, n_ff_);
            }
            out[j].down = expert_view(f_, *t.down_exps, e, 0, n_embd_);
        }
    }
    bool views_in_mapping() const override { return f_.mapped(); }

private:
    const gguf::File& f_;
    std::vector<MoeTensors> layers_;
    int64_t n_embd_, n_ff_;
};

}  // namespace

std::unique_ptr<ExpertSource> mmap_expert_source(const gguf::File& f, std::vector<MoeTensors> layers,
                                                 int64_t n_embd, int64_t n_ff_exp) {
    return std::make_unique<MmapExperts>(f, std::move(layers), n_embd, n_ff_exp);
}

std::unique_ptr<ExpertSource> make_expert_source(const gguf::File& f, std::vector<MoeTensors> layers,
                                                 int64_t n_embd, int64_t n_ff_exp, const ModelOptions& opt) {
    StreamContext* ctx = opt.stream.get();
    if (!ctx || ctx->mode == IoMode::Mmap) {
        auto src = mmap_expert_source(f, std::move(layers), n_embd, n_ff_exp);
        src->set_recorder(ctx ? ctx->rec.get() : nullptr);
        return src;
    }
    StreamConfig cfg;
    cfg.direct = ctx->mode == IoMode::Direct;
    cfg.policy = opt.cache_policy;
    cfg.engine = opt.io_engine;
    cfg.depth = opt.io_depth;
    cfg.fault = opt.read_fault;
    cfg.prefetch = opt.prefetch;
    auto src = std::make_unique<StreamingExperts>(f, std::move(layers), n_embd, n_ff_exp, cfg, ctx->rec.get());
    ctx->sources.push_back(src.get());
    return src;
}

int64_t resolve_top_k(const ModelOptions& opt, int64_t n_expert, int64_t n_expert_used) {
    if (opt.experts_per_token == 0) return n_expert_used;
    if (opt.experts_per_token < 1 || opt.experts_per_token > n_expert)
        throw Error("--experts-per-token " + std::to_string(opt.experts_per_token) + " is out of range: this model has " +
                    std::to_string(n_expert) + " experts, so K must be between 1 and " + std::to_string(n_expert) +
                    " (the file uses " + std::to_string(n_expert_used) + ")");
    return opt.experts_per_token;
}

MoeFfn::MoeFfn(int64_t n_embd, int64_t n_ff_exp, int64_t max_k)
    : n_embd_(n_embd), n_ff_(n_ff_exp), max_k_(max_k), fetched_(size_t(max_k)),
      gate_(size_t(n_ff_exp * max_k)), up_(size_t(n_ff_exp * max_k)), out_(size_t(n_embd * max_k)),
      down_act_(size_t(max_k)) {}

// x prepared for weight type t, once per type per call (gate and up may differ in mixed files).
const void* MoeFfn::x_act(GgmlType t, const float* x) {
    for (PreparedAct& a : x_act_)
        if (!a.buf.empty() && a.type == t) return a.buf.data();
    for (PreparedAct& a : x_act_)
        if (a.buf.empty()) return a.prepare(t, x, n_embd_);
    throw Error("expert gate and up matrices of more than two weight types in one layer");
}

void MoeFfn::compute(const ExpertWeights* experts, const int64_t* idx, int64_t n, const float* x, ThreadPool& pool) {
    const int64_t ff = n_ff_;
    std::vector<MatvecJob> jobs;
    jobs.reserve(size_t(2 * n));
    for (int64_t i = 0; i < n; ++i) {
        const int64_t j = idx[i];
        jobs.push_back({experts[j].gate, x_act(experts[j].gate.type, x), &gate_[size_t(j * ff)]});  // ffn_moe_gate
        jobs.push_back({experts[j].up, x_act(experts[j].up.type, x), &up_[size_t(j * ff)]});        // ffn_moe_up
    }
    matvec_jobs(jobs.data(), int64_t(jobs.size()), pool);
    jobs.clear();
    for (int64_t i = 0; i < n; ++i) {
        const int64_t j = idx[i];
        float* g = &gate_[size_t(j * ff)];
        const float* u = &up_[size_t(j * ff)];
        for (int64_t r = 0; r < ff; ++r) g[r] = silu(g[r]) * u[r];  // ffn_moe_swiglu
        const WeightView& d = experts[j].down;
        jobs.push_back({d, down_act_[size_t(j)].prepare(d.type, g, ff), &out_[size_t(j * n_embd_)]});
    }
    matvec_jobs(jobs.data(), int64_t(jobs.size()), pool);  // ffn_moe_down
}

void MoeFfn::run(const ExpertWeights* experts, const float* weights, int64_t k, const float* x, float* y,
                 ThreadPool& pool) {
    for (PreparedAct& a : x_act_) a.buf.clear();
    all_.resize(size_t(k));
    for (int64_t j = 0; j < k; ++j) all_[size_t(j)] = j;
    compute(experts, all_.data(), k, x, pool);
    std::fill(y, y + n_embd_, 0.0f);
    for (int64_t j = 0; j < k; ++j) {  // ffn_moe_out: weighted sum
        const float w = weights[j];
        const float* o = &out_[size_t(j * n_embd_)];
        for (int64_t i = 0; i < n_embd_; ++i) y[i] += w * o[i];
    }
}

void MoeFfn::run_streamed(ExpertSource& src, int64_t layer, const int32_t* ids, const float* weights, int64_t k,
                          int64_t n_expert, const float* x, float* y, ThreadPool& pool, const Guess* next) {
    using Clock = std::chrono::steady_clock;
    StatsRecorder* rec = src.recorder();
    if (rec) rec->routing(layer, n_expert, ids, k);
    for (PreparedAct& a : x_act_) a.buf.clear();
    double wait = 0, comp = 0;
    auto t = Clock::now();
    src.start(layer, ids, k, fetched_.data());
    if (next) src.prefetch(next->layer, next->ids, next->k);
    for (int64_t done = 0; done < k;) {
        ready_.clear();
        const int64_t n = src.wait_ready(ready_);
        const auto t1 = Clock::now();
        wait += std::chrono::duration<double>(t1 - t).count();
        if (n == 0) throw Error("expert source returned " + std::to_string(done) + " of " + std::to_string(k) + " experts");
        compute(fetched_.data(), ready_.data(), n, x, pool);
        t = Clock::now();
        comp += std::chrono::duration<double>(t - t1).count();
        done += n;
    }
    std::fill(y, y + n_embd_, 0.0f);
    for (int64_t j = 0; j < k; ++j) {  // ffn_moe_out: weighted sum, in j order whatever the arrival order
        const float w = weights[j];
        const float* o = &out_[size_t(j * n_embd_)];
        for (int64_t i = 0; i < n_embd_; ++i) y[i] += w * o[i];
    }
    if (rec) {
        rec->add_time(StatsRecorder::Part::ExpertsWait, wait);
        rec->add_time(StatsRecorder::Part::ExpertsCompute, comp + std::chrono::duration<double>(Clock::now() - t).count());
    }
}

MoeFfn::Guess MoeFfn::chunk_guess(int64_t layer, const int32_t* ids, int64_t n, int64_t k, int64_t n_expert,
                                  std::vector<int32_t>& store) {
    std::vector<uint8_t> want(static_cast<size_t>(n_expert), 0);
    for (int64_t p = 0; p < n * k; ++p) want[size_t(ids[p])] = 1;
    store.clear();
    for (int64_t e = 0; e < n_expert; ++e)
        if (want[size_t(e)]) store.push_back(int32_t(e));
    return {layer, store.data(), int64_t(store.size())};
}

void MoeFfn::reserve_batch(int64_t n) {
    const size_t pairs = size_t(n * max_k_);
    if (b_out_.size() >= pairs * size_t(n_embd_)) return;
    b_gate_.assign(pairs * size_t(n_ff_), 0.0f);
    b_up_.assign(pairs * size_t(n_ff_), 0.0f);
    b_out_.assign(pairs * size_t(n_embd_), 0.0f);
    b_down_.assign(pairs * size_t((n_ff_ * 4 + 63) / 64 * 64), 0);
    b_x_[0].buf.assign(size_t(n) * size_t((n_embd_ * 4 + 63) / 64 * 64) + 64, 0);
}

void MoeFfn::compute_batch(const ExpertWeights* experts, const int64_t* idx, int64_t n, ThreadPool& pool) {
    const int64_t ff = n_ff_;
    std::vector<MatmulJob> jobs;
    jobs.reserve(size_t(2 * n));
    for (int64_t i = 0; i < n; ++i) {  // ffn_moe_gate, ffn_moe_up over the expert's tokens
        const int64_t g = idx[i], p0 = b_first_[size_t(g)], np = b_first_[size_t(g + 1)] - p0;
        const ExpertWeights& w = experts[g];
        const int ga = w.gate.type == b_x_[0].type ? 0 : 1, ua = w.up.type == b_x_[0].type ? 0 : 1;
        jobs.push_back({w.gate, &b_xact_[ga][size_t(p0)], np, &b_gate_[size_t(p0 * ff)], ff});
        jobs.push_back({w.up, &b_xact_[ua][size_t(p0)], np, &b_up_[size_t(p0 * ff)], ff});
    }
    matmul_jobs(jobs.data(), int64_t(jobs.size()), pool);
    // ffn_moe_swiglu, and the down inputs prepared, pair by pair over the threads.
    int64_t n_pairs = 0;
    for (int64_t i = 0; i < n; ++i) n_pairs += b_first_[size_t(idx[i] + 1)] - b_first_[size_t(idx[i])];
    std::vector<int64_t> pairs;
    pairs.reserve(size_t(n_pairs));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t p = b_first_[size_t(idx[i])]; p < b_first_[size_t(idx[i] + 1)]; ++p) pairs.push_back(p);
    const GgmlType dt = experts[idx[0]].down.type;
    for (int64_t i = 1; i < n; ++i)
        if (experts[idx[i]].down.type != dt) throw Error("expert down matrices of more than one weight type in one layer");
    pool.parallel_for(n_pairs, 4, [&](int64_t a, int64_t b, int) {
        for (int64_t q = a; q < b; ++q) {
            const int64_t p = pairs[size_t(q)];
            float* g = &b_gate_[size_t(p * ff)];
            const float* u = &b_up_[size_t(p * ff)];
            for (int64_t r = 0; r < ff; ++r) g[r] = silu(g[r]) * u[r];
            prepare_act(dt, g, b_down_.data() + p * b_dstride_, ff);
        }
    });
    jobs.clear();
    for (int64_t i = 0; i < n; ++i) {  // ffn_moe_down
        const int64_t g = idx[i], p0 = b_first_[size_t(g)], np = b_first_[size_t(g + 1)] - p0;
        jobs.push_back({experts[g].down, &b_dact_[size_t(p0)], np, &b_out_[size_t(p0 * n_embd_)], n_embd_});
    }
    matmul_jobs(jobs.data(), int64_t(jobs.size()), pool);
}

void MoeFfn::run_batch(ExpertSource& src, int64_t layer, const int32_t* ids, const float* weights, int64_t n, int64_t k,
                       int64_t n_expert, const float* x, float* y, ThreadPool& pool, const Guess* next) {
    using Clock = std::chrono::steady_clock;
    StatsRecorder* rec = src.recorder();
    if (rec)
        for (int64_t t = 0; t < n; ++t) rec->routing(layer, n_expert, ids + t * k, k);
    // Pairs sorted by expert (counting sort: experts in id order, tokens in order within each).
    std::vector<int64_t> count(size_t(n_expert) + 1, 0);
    for (int64_t p = 0; p < n * k; ++p) {
        if (ids[p] < 0 || ids[p] >= n_expert) throw Error("router picked expert " + std::to_string(ids[p]));
        ++count[size_t(ids[p]) + 1];
    }
    b_experts_.clear();
    b_first_.clear();
    std::vector<int64_t> at(size_t(n_expert), 0);
    for (int64_t e = 0, sum = 0; e < n_expert; ++e) {
        at[size_t(e)] = sum;
        if (count[size_t(e) + 1] == 0) continue;
        b_experts_.push_back(int32_t(e));
        b_first_.push_back(sum);
        sum += count[size_t(e) + 1];
    }
    b_first_.push_back(n * k);
    const int64_t n_pairs = n * k, ne = int64_t(b_experts_.size());
    b_pair_of_.resize(size_t(n_pairs));
    std::vector<int64_t> token_of(static_cast<size_t>(n_pairs));
    for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < k; ++j) {
            const int64_t p = at[size_t(ids[t * k + j])]++;
            b_pair_of_[size_t(t * k + j)] = p;
            token_of[size_t(p)] = t;
        }
    b_gate_.resize(size_t(n_pairs * n_ff_));
    b_up_.resize(size_t(n_pairs * n_ff_));
    b_out_.resize(size_t(n_pairs * n_embd_));
    b_dact_.resize(size_t(n_pairs));
    b_dstride_ = 0;

    double wait = 0, comp = 0;
    auto t = Clock::now();
    const int64_t cap = std::max<int64_t>(1, std::min<int64_t>(src.capacity(), ne));
    std::vector<ExpertWeights> fetched(static_cast<size_t>(cap));
    std::vector<int64_t> ready;
    std::vector<ExpertWeights> all(static_cast<size_t>(ne));
    int n_xt = 0;  // activation types prepared (gate's, and up's when it differs)
    auto has_x = [&](GgmlType t) { return (n_xt > 0 && b_x_[0].type == t) || (n_xt > 1 && b_x_[1].type == t); };
    bool prepared = false;
    for (int64_t g0 = 0; g0 < ne; g0 += cap) {
        const int64_t gn = std::min(cap, ne - g0);
        src.start(layer, b_experts_.data() + g0, gn, fetched.data());
        // The next layer's guess only when this layer's experts leave it room in the cache.
        if (next && g0 == 0 && src.capacity() >= 2 * ne) src.prefetch(next->layer, next->ids, next->k);
        if (!prepared) {  // x for the gate and up types, once per chunk, while the first reads run
            prepared = true;
            const GgmlType gt = fetched[0].gate.type, ut = fetched[0].up.type;
            b_x_[0].prepare(gt, x, n, n_embd_, pool);
            if (ut != gt) b_x_[1].prepare(ut, x, n, n_embd_, pool);
            n_xt = ut != gt ? 2 : 1;
            for (int a = 0; a < n_xt; ++a) {
                b_xact_[a].resize(size_t(n_pairs));
                for (int64_t p = 0; p < n_pairs; ++p) b_xact_[a][size_t(p)] = b_x_[a].row(token_of[size_t(p)]);
            }
            b_dstride_ = (int64_t(act_bytes(fetched[0].down.type, n_ff_)) + 63) / 64 * 64;
            b_down_.resize(size_t(n_pairs * b_dstride_));
            for (int64_t p = 0; p < n_pairs; ++p) b_dact_[size_t(p)] = b_down_.data() + p * b_dstride_;
        }
        for (int64_t done = 0; done < gn;) {
            ready.clear();
            const int64_t r = src.wait_ready(ready);
            const auto t1 = Clock::now();
            wait += std::chrono::duration<double>(t1 - t).count();
            if (r == 0) throw Error("expert source returned " + std::to_string(done) + " of " + std::to_string(gn) + " experts");
            // compute_batch indexes b_first_ by distinct-expert index: shift the group's ready list.
            for (int64_t i = 0; i < r; ++i) {
                const ExpertWeights& w = fetched[size_t(ready[size_t(i)])];
                if (!has_x(w.gate.type) || !has_x(w.up.type))
                    throw Error("expert gate and up matrices of more than two weight types in one layer");
                all[size_t(g0 + ready[size_t(i)])] = w;
                ready[size_t(i)] += g0;
            }
            compute_batch(all.data(), ready.data(), r, pool);
            t = Clock::now();
            comp += std::chrono::duration<double>(t - t1).count();
            done += r;
        }
    }
    // ffn_moe_out: per token, the weighted sum in j order, as run_streamed.
    pool.parallel_for(n, 4, [&](int64_t a, int64_t b, int) {
        for (int64_t tk = a; tk < b; ++tk) {
            float* yt = y + tk * n_embd_;
            std::fill(yt, yt + n_embd_, 0.0f);
            for (int64_t j = 0; j < k; ++j) {
                const float w = weights[tk * k + j];
                const float* o = &b_out_[size_t(b_pair_of_[size_t(tk * k + j)] * n_embd_)];
                for (int64_t i = 0; i < n_embd_; ++i) yt[i] += w * o[i];
            }
        }
    });
    if (rec) {
        rec->add_time(StatsRecorder::Part::ExpertsWait, wait);
        rec->add_time(StatsRecorder::Part::ExpertsCompute, comp + std::chrono::duration<double>(Clock::now() - t).count());
    }
}

}  // namespace sluice
