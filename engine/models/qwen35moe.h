// Private to the qwen35moe architecture: the model class, shared by qwen35moe.cpp (loading, one token
// at a time, state) and qwen35moe_prefill.cpp (prompt chunks, layer-major). The equations and the
// converter's conventions are described at the top of qwen35moe.cpp.
#pragma once
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/blocks.h"
#include "engine/model.h"
#include "engine/moe.h"
#include "engine/state.h"

namespace sluice::qwen35 {

struct Ssm {            // GatedDeltaNet shapes
    int64_t kernel = 0;  // ssm.conv_kernel
    int64_t n_k = 0;     // ssm.group_count: key (and query) heads
    int64_t n_v = 0;     // ssm.time_step_rank: value heads
    int64_t dk = 0;      // ssm.state_size: key head size
    int64_t dv = 0;      // ssm.inner_size / n_v: value head size
    bool tiled = true;   // value head h reads key head h % n_k (else h / (n_v / n_k))
    int64_t key_dim() const { return n_k * dk; }
    int64_t value_dim() const { return n_v * dv; }
    int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }
    int64_t key_head(int64_t h) const { return tiled ? h % n_k : h / (n_v / n_k); }
};

struct Layer {
    bool recurrent = false;
    std::vector<float> attn_norm, post_norm;  // (n_embd)
    // full attention
    WeightView wq;  // (n_head * 2 * hd, n_embd): per head q rows then gate rows
    WeightView wk;  // (n_head_kv * hd, n_embd)
    WeightView wv;  // (n_head_kv * hd, n_embd)
    WeightView wqkv_attn;  // converted with --fuse-qkv: [wq; wk; wv] as one matrix
    WeightView wo;  // (n_embd, n_head * hd)
    std::vector<float> q_norm, k_norm;  // (hd)
    // GatedDeltaNet
    WeightView wqkv;      // (conv_dim, n_embd)
    WeightView wz;        // (value_dim, n_embd)
    WeightView wb, wa;    // (n_v, n_embd) each (qwen35moe)
    WeightView wba;       // (2 n_v, n_embd) (qwen3next)
    std::vector<float> conv;           // (conv_dim, kernel)
    std::vector<float> dt_bias, ssm_a;  // (n_v)
    std::vector<float> ssm_norm;       // (dv)
    WeightView ssm_out;   // (n_embd, value_dim)
    // MoE
    WeightView router;    // (n_expert, n_embd)
    MoeTensors experts;
    WeightView sh_gate, sh_up;  // (n_ff_sh, n_embd); data null when the file has no shared expert
    WeightView sh_down;         // (n_embd, n_ff_sh)
    WeightView sh_router;       // (1, n_embd)
};

// A linear-attention layer's state: the last kernel-1 conv inputs and one (dk, dv) matrix per value head.
struct Recurrent {
    std::vector<float> conv;  // (kernel - 1, conv_dim), oldest first
    std::vector<float> S;     // (n_v, dk, dv)
};

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// What the file says, shared by the CPU class and the GPU backend (qwen35moe_gpu.cpp).
struct Config {
    Hparams h;
    Ssm ssm;
    std::vector<bool> recurrent;  // per layer
    int64_t n_ff_sh = 0;          // shared expert's FFN size; 0: none
    int64_t top_k = 0;
};
Config read_config(const gguf::File& f, const ModelOptions& opt);
// The state blob's header (everything that decides its layout), written by save_state() of both
// backends so snapshots move between them: (what, value) pairs.
std::vector<std::pair<const char*, uint64_t>> state_layout(const Hparams& h, const Ssm& s, const std::vector<bool>& recurrent);
void put_layout(StateWriter& w, const Hparams& h, const Ssm& s, const std::vector<bool>& recurrent);
void expect_layout(StateReader& r, const Hparams& h, const Ssm& s, const std::vector<bool>& recurrent);
// truncate(n) of a recurrent model: true when it must reset (n == 0 < n_past), false when nothing
// changes (n == n_past); an Error otherwise (the state cannot go back).
bool truncate_resets(int64_t n, int64_t n_past, const std::string& arch);

class Qwen35Moe final : public Model {
public:
    Qwen35Moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Config c);

    const float* forward(int32_t token) override;
    void reset() override;
    void truncate(int64_t n) override;
    std::vector<uint8_t> save_state() const override;
    void load_state(std::span<const uint8_t> blob) override;

protected:
    void forward_batch(std::span<const int32_t> tokens, bool all, float* logits) override;

private:
    // One token (qwen35moe.cpp): x_, hn_ -> y_.
    void attention_block(const Layer& L, LayerKv& kv, int64_t pos);
    void delta_net_block(const Layer& L, Recurrent& st);
    void moe_block(int64_t il, const Layer& L);
    void run_shared_input(std::initializer_list<std::pair<WeightView, float*>> mats);

    // Per-token and per-head steps both paths run, so a chunk computes what single tokens do.
    // qg (n_head, 2 hd) -> q (n_head, hd) normed and roped, gate (n_head, hd); k (n_head_kv, hd) normed
    // and roped in place.
    void attn_inputs(const Layer& L, const float* qg, float* q, float* gate, float* k, int64_t pos) const;
    // qwen3next's fused ssm_ba row (per key head [b (r), a (r)]) -> b (n_v), a (n_v).
    void split_ba(const float* raw, float* b, float* a) const;
    // After the conv: qkv (conv_dim) silu'd, q and k L2-normalised (q scaled); b -> beta, a -> decay.
    void delta_inputs(const Layer& L, float* qkv, float* b, float* a) const;
    // Value head hh: one delta-rule step on S (dk, dv), then o (dv) = rmsnorm(S^T q) * ssm_norm * silu(z).
    void delta_head(const Layer& L, float* S, float* o, const float* qkv, float decay, float beta, const float* z,
                    int64_t hh, float* scratch) const;

    // Prompt chunks (qwen35moe_prefill.cpp): xb_, hb_ (T, n_embd) -> yb_.
    void reserve_batch(int64_t T);
    void rows_rmsnorm(float* out, const float* x, const float* w, int64_t T);
    void attention_batch_block(const Layer& L, LayerKv& kv, int64_t pos0, int64_t T);
    void delta_net_batch(const Layer& L, Recurrent& st, int64_t T);
    void moe_batch(int64_t il, const Layer& L, int64_t T);

    void load_weights();

    ModelOptions opt_;
    Ssm ssm_;
    std::vector<bool> recurrent_;
    int64_t n_ff_sh_, top_k_;
    const gguf::TensorInfo* tok_embd_ = nullptr;
    std::vector<float> output_norm_;
    WeightView output_{};
    std::vector<Layer> layers_;
    std::vector<LayerKv> kv_;      // full-attention layers only (empty for recurrent ones)
    std::vector<Recurrent> rec_;   // recurrent layers only
    // Activations of one token.
    std::vector<float> x_, hn_, y_, qg_, q_, gate_, k_, v_, qkv_attn_, att_, scores_;
    std::vector<float> qkv_, conv_out_, z_, ba_, ba_raw_, o_, delta_scratch_;
    std::vector<float> router_logits_, weights_, guess_w_, sh_g_, sh_u_, sh_y_, logits_;
    std::vector<int32_t> ids_, guess_ids_;
    SharedInputMatvec shared_;  // hn prepared once per weight type
    // Activations of a prompt chunk (T rows each).
    std::vector<float> xb_, hb_, yb_;
    std::vector<float> qkvb_, kb_, vb_, qb_, gateb_, attb_;          // full attention
    std::vector<float> convb_, zb_, bb_, ab_, bab_, ob_;            // GatedDeltaNet (qkvb_: its projection too)
    std::vector<float> router_b_, w_b_, shg_b_, shu_b_, shl_b_, shy_b_;
    std::vector<int32_t> ids_b_, guess_union_;
    std::vector<Recurrent> saved_;  // recurrent states at the chunk's start: put back if it throws
    SharedInputMatmul shared_b_;
    std::unique_ptr<ExpertSource> experts_;
    std::unique_ptr<MoeFfn> moe_;
};

}  // namespace sluice::qwen35
