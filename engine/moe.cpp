#include "engine/moe.h"

#include <algorithm>

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
    (void)opt;
    return mmap_expert_source(f, std::move(layers), n_embd, n_ff_exp);
}

MoeFfn::MoeFfn(int64_t n_embd, int64_t n_ff_exp, int64_t max_k)
    : n_embd_(n_embd), n_ff_(n_ff_exp),
      gate_(size_t(n_ff_exp * max_k)), up_(size_t(n_ff_exp * max_k)), out_(size_t(n_embd * max_k)),
      down_act_(size_t(max_k)) {}

void MoeFfn::run(const ExpertWeights* experts, const float* weights, int64_t k, const float* x, float* y,
                 ThreadPool& pool) {
    const int64_t ff = n_ff_;
    std::vector<MatvecJob> jobs;
    jobs.reserve(size_t(2 * k));
    // Prepared activations of x, one per distinct weight type (gate and up may differ in mixed files).
    auto act_for = [&](GgmlType t) -> const void* {
        for (PreparedAct& a : x_act_)
            if (!a.buf.empty() && a.type == t) return a.buf.data();
        PreparedAct& a = x_act_[x_act_[0].buf.empty() ? 0 : 1];
        return a.prepare(t, x, n_embd_);
    };
    for (PreparedAct& a : x_act_) a.buf.clear();
    for (int64_t j = 0; j < k; ++j) {
        jobs.push_back({experts[j].gate, act_for(experts[j].gate.type), &gate_[size_t(j * ff)]});  // ffn_moe_gate
        jobs.push_back({experts[j].up, act_for(experts[j].up.type), &up_[size_t(j * ff)]});        // ffn_moe_up
    }
    matvec_jobs(jobs.data(), int64_t(jobs.size()), pool);
    jobs.clear();
    for (int64_t j = 0; j < k; ++j) {
        float* g = &gate_[size_t(j * ff)];
        const float* u = &up_[size_t(j * ff)];
        for (int64_t i = 0; i < ff; ++i) g[i] = silu(g[i]) * u[i];  // ffn_moe_swiglu
        const WeightView& d = experts[j].down;
        jobs.push_back({d, down_act_[size_t(j)].prepare(d.type, g, ff), &out_[size_t(j * n_embd_)]});
    }
    matvec_jobs(jobs.data(), int64_t(jobs.size()), pool);  // ffn_moe_down
    std::fill(y, y + n_embd_, 0.0f);
    for (int64_t j = 0; j < k; ++j) {  // ffn_moe_out: weighted sum
        const float w = weights[j];
        const float* o = &out_[size_t(j * n_embd_)];
        for (int64_t i = 0; i < n_embd_; ++i) y[i] += w * o[i];
    }
}

}  // namespace sluice
