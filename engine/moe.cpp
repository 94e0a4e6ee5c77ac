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
    : n_embd_(n_embd), n_ff_(n_ff_exp), fetched_(size_t(max_k)),
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

}  // namespace sluice
