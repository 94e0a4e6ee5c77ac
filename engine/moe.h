// Routed experts, shared by every MoE architecture: where the expert weights come from (ExpertSource)
// and the SwiGLU evaluation of the experts a router picked (MoeFfn). Routing itself (softmax top-k,
// sigmoid + bias + groups...) stays in each architecture's file.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/blocks.h"
#include "engine/gguf/gguf.h"
#include "engine/model.h"
#include "engine/tensor/kernels.h"

namespace sluice {

class ThreadPool;

// One MoE layer's expert tensors as llama.cpp stores them (n_expert outermost: one slab per expert).
struct MoeTensors {
    const gguf::TensorInfo* gate_exps = nullptr;     // ne (n_embd, n_ff_exp, n_expert)
    const gguf::TensorInfo* up_exps = nullptr;       // ne (n_embd, n_ff_exp, n_expert)
    const gguf::TensorInfo* gate_up_exps = nullptr;  // fused: ne (n_embd, 2 n_ff_exp, n_expert), gate rows first
    const gguf::TensorInfo* down_exps = nullptr;     // ne (n_ff_exp, n_embd, n_expert)
};

// gate, up: (n_ff_exp, n_embd); down: (n_embd, n_ff_exp).
struct ExpertWeights {
    WeightView gate, up, down;
};

// Supplies the weights of routed experts. The views stay valid until the next fetch().
class ExpertSource {
public:
    virtual ~ExpertSource() = default;
    virtual void fetch(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) = 0;
};

// Views the experts in place in the GGUF mapping (the whole file mapped: models that fit in RAM).
std::unique_ptr<ExpertSource> mmap_expert_source(const gguf::File& f, std::vector<MoeTensors> layers,
                                                 int64_t n_embd, int64_t n_ff_exp);

// The expert source ModelOptions ask for. Every MoE architecture gets its experts through this, so
// expert streaming (reading routed slabs from disk into a bounded cache) applies to all of them.
// Today: the mmap source.
std::unique_ptr<ExpertSource> make_expert_source(const gguf::File& f, std::vector<MoeTensors> layers,
                                                 int64_t n_embd, int64_t n_ff_exp, const ModelOptions& opt);

// y (n_embd) = sum_j w_j * down_j(silu(gate_j x) * up_j x) over k experts. All gate/up rows run as one
// parallel loop, then all down rows: two thread wake-ups per layer instead of 3k.
class MoeFfn {
public:
    MoeFfn(int64_t n_embd, int64_t n_ff_exp, int64_t max_k);
    void run(const ExpertWeights* experts, const float* weights, int64_t k, const float* x, float* y,
             ThreadPool& pool);

private:
    int64_t n_embd_, n_ff_;
    std::vector<float> gate_, up_, out_;   // (k, n_ff) (k, n_ff) (k, n_embd)
    PreparedAct x_act_[2];                 // x for the gate and up types
    std::vector<PreparedAct> down_act_;    // each expert's down-projection input
};

}  // namespace sluice
