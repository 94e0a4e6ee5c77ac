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

// A routed expert tensor (3-D *_exps): read per expert by an ExpertSource, never whole. Everything
// else in a MoE file is dense and resident.
inline bool is_routed_expert(const gguf::TensorInfo& t) {
    return t.n_dims == 3 && t.name.find("_exps") != std::string::npos;
}

// gate, up: (n_ff_exp, n_embd); down: (n_embd, n_ff_exp).
struct ExpertWeights {
    WeightView gate, up, down;
};

class StatsRecorder;

// Supplies the weights of routed experts. The views stay valid until the next fetch() or start().
class ExpertSource {
public:
    virtual ~ExpertSource() = default;
    // All k experts' views in out[0..k).
    virtual void fetch(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) = 0;
    // The same, as they arrive: start() fills out[0..k) with views whose bytes may still be loading;
    // each wait_ready() waits until at least one more expert is complete, appends the indices j of
    // all complete ones not yet returned, and returns how many (0: all k have been returned).
    // Sources that have everything at hand (mmap) return all k at once.
    virtual void start(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) {
        fetch(layer, ids, k, out);
        pending_ = k;
    }
    virtual int64_t wait_ready(std::vector<int64_t>& ready) {
        for (int64_t j = 0; j < pending_; ++j) ready.push_back(j);
        const int64_t n = pending_;
        pending_ = 0;
        return n;
    }
    // Prefetch: `ids` of `layer` are likely needed soon (a guess, e.g. the next layer's router applied
    // to this layer's input). Sources reading from disk start loading them and never block; a guess
    // that turns out wrong costs bandwidth only. wants_prefetch(): whether guessing is worth it now
    // (false for mmap; streaming sources turn it off while their guesses keep missing).
    virtual bool wants_prefetch() const { return false; }
    virtual void prefetch(int64_t layer, const int32_t* ids, int64_t k) {}
    // How many experts one start() may ask for at once (a cache's slots); prompt chunks fetch a
    // layer's experts in groups of this size.
    virtual int64_t capacity() const { return INT64_MAX; }
    // Whether every view points into the File's mapping, valid and unchanged while the File lives (the
    // mmap source): a GPU may then copy the experts' file ranges once and upload from that copy
    // (GpuModel::import_experts), finding a view's bytes there by its address.
    virtual bool views_in_mapping() const { return false; }
    // Where fetches are counted and timed (null: nowhere).
    StatsRecorder* recorder() const { return rec_; }
    void set_recorder(StatsRecorder* r) { rec_ = r; }

private:
    int64_t pending_ = 0;
    StatsRecorder* rec_ = nullptr;
};

// Views the experts in place in the GGUF mapping (the whole file mapped: models that fit in RAM).
std::unique_ptr<ExpertSource> mmap_expert_source(const gguf::File& f, std::vector<MoeTensors> layers,
                                                 int64_t n_embd, int64_t n_ff_exp);

// The expert source ModelOptions ask for. Every MoE architecture gets its experts through this, so
// expert streaming (engine/stream/streaming.h: reading routed slabs from disk into a bounded cache)
// applies to all of them. load_model() decides the mode (opt.stream); without it, the mmap source.
std::unique_ptr<ExpertSource> make_expert_source(const gguf::File& f, std::vector<MoeTensors> layers,
                                                 int64_t n_embd, int64_t n_ff_exp, const ModelOptions& opt);

// The top-k a model runs with: --experts-per-token K when given (1 <= K <= n_expert, else an Error;
// never clamped), else the file's expert_used_count. Routers renormalise the kept K weights.
int64_t resolve_top_k(const ModelOptions& opt, int64_t n_expert, int64_t n_expert_used);

// y (n_embd) = sum_j w_j * down_j(silu(gate_j x) * up_j x) over k experts. All gate/up rows run as one
// parallel loop, then all down rows: two thread wake-ups per layer instead of 3k.
class MoeFfn {
public:
    MoeFfn(int64_t n_embd, int64_t n_ff_exp, int64_t max_k);
    int64_t max_k() const { return max_k_; }
    void run(const ExpertWeights* experts, const float* weights, int64_t k, const float* x, float* y,
             ThreadPool& pool);
    // The same with the experts of `layer` taken from `src` as they arrive: experts whose reads are
    // complete compute while the others load. Bit-identical to fetch() + run() (each expert's output
    // is computed alone; the weighted sum runs in j order at the end). Records routing and the
    // compute / wait split in src.recorder().
    // `next`: a guess for the next layer, handed to src.prefetch() right after this layer's reads are
    // queued, so the disk works on it while this layer computes and the next attention runs.
    struct Guess {
        int64_t layer;
        const int32_t* ids;
        int64_t k;
    };
    void run_streamed(ExpertSource& src, int64_t layer, const int32_t* ids, const float* weights, int64_t k,
                      int64_t n_expert, const float* x, float* y, ThreadPool& pool, const Guess* next = nullptr);

    // A prompt chunk: n tokens, each routed to k experts (ids, weights: (n, k)); x (n, n_embd) -> y (n,
    // n_embd). Tokens are grouped by expert: each routed expert of the layer is fetched once (groups of
    // src.capacity()) and applied to all its tokens as matrix products, the gate and up of every expert
    // whose reads are complete in one parallel loop, then their down, while the other reads go on.
    // Every (token, expert) output is what run_streamed computes for that token, and the weighted sum
    // runs in j order, so results are bit-identical to token-by-token processing.
    // next: the union of the next layer's guessed experts over the chunk (prefetched, as run_streamed).
    // Sizes run_batch's buffers for chunks of n tokens now (resident from the start, as the budget
    // expects), with room for float activations (the largest prepared form).
    void reserve_batch(int64_t n);
    void run_batch(ExpertSource& src, int64_t layer, const int32_t* ids, const float* weights, int64_t n, int64_t k,
                   int64_t n_expert, const float* x, float* y, ThreadPool& pool, const Guess* next = nullptr);

    // A prompt chunk's guess for `layer`: the distinct experts among the n x k ids guessed for its
    // tokens, ascending, kept in `store` (which the Guess points into).
    static Guess chunk_guess(int64_t layer, const int32_t* ids, int64_t n, int64_t k, int64_t n_expert,
                             std::vector<int32_t>& store);

private:
    // Batched: the routed pairs of the experts listed (indices into b_experts_) as matrix products.
    void compute_batch(const ExpertWeights* experts, const int64_t* idx, int64_t n, ThreadPool& pool);
    // out_[j] = down_j(silu(gate_j x) * up_j x) for the listed j.
    void compute(const ExpertWeights* experts, const int64_t* idx, int64_t n, const float* x, ThreadPool& pool);
    const void* x_act(GgmlType t, const float* x);

    int64_t n_embd_, n_ff_, max_k_;
    std::vector<ExpertWeights> fetched_;   // run_streamed's views
    std::vector<int64_t> ready_, all_;
    std::vector<float> gate_, up_, out_;   // (k, n_ff) (k, n_ff) (k, n_embd)
    PreparedAct x_act_[2];                 // x for the gate and up types
    std::vector<PreparedAct> down_act_;    // each expert's down-projection input
    // run_batch: routed (token, slot) pairs sorted by expert; pair p's rows live at p in the buffers.
    std::vector<int32_t> b_experts_;       // distinct experts of the chunk
    std::vector<int64_t> b_first_;         // per distinct expert: its first pair (size + 1)
    std::vector<int64_t> b_pair_of_;       // (n, k): the pair of token t's j-th expert
    std::vector<const void*> b_xact_[2];   // per pair: its token's prepared x (gate, up types)
    std::vector<const void*> b_dact_;      // per pair: its down input, prepared
    std::vector<float> b_gate_, b_up_, b_out_;  // (pairs, n_ff) (pairs, n_ff) (pairs, n_embd)
    ActBatch b_x_[2];                      // the chunk's x for the gate and up types
    std::vector<uint8_t> b_down_;          // prepared down inputs, b_dstride_ apart
    int64_t b_dstride_ = 0;
};

}  // namespace sluice
