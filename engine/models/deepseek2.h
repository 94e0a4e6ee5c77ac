// deepseek2 (DeepSeek-V2/V3, Kimi K2): the model class, shared by deepseek2.cpp (loading, decode, and the
// per-token pieces both paths run: rope, the latent cache row, routing) and deepseek2_prefill.cpp (prompt
// chunks, layer-major). The equations are at the top of deepseek2.cpp.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "engine/attention.h"
#include "engine/blocks.h"
#include "engine/model.h"
#include "engine/moe.h"

namespace sluice::ds2 {

// What deepseek2 adds to Hparams (the GGUF key in comments).
struct MlaParams {
    int64_t n_dense_lead = 0;  // leading_dense_block_count
    int64_t q_lora = 0;        // attention.q_lora_rank (0: one plain Wq)
    int64_t kv_lora = 0;       // attention.kv_lora_rank
    int64_t n_nope = 0;        // key_length_mla - rope.dimension_count
    bool legacy_kv_b = false;  // files from before the converter split attn_kv_b into attn_k_b / attn_v_b
    int64_t n_shared = 0;      // expert_shared_count
    int64_t n_group = 1, n_group_used = 1;  // expert_group_count, expert_group_used_count
    bool sigmoid = true;       // expert_gating_func 2 (sigmoid) or 1 (softmax; also when absent)
    bool norm_w = false;       // expert_weights_norm
    float w_scale = 1.0f;      // expert_weights_scale
    float kq_scale = 0.0f;     // 1/sqrt(key_length_mla), times YaRN's mscale^2
    float temp_scale = 0.0f;   // attention.temperature_scale (0: off)
    int64_t temp_length = 1;   // attention.temperature_length
    std::vector<double> inv_freq;  // (n_rot / 2) rotation speed of pair i, YaRN-corrected
    float rope_mscale = 1.0f;      // cos/sin multiplier (YaRN attention factor)
};

struct Layer {
    std::vector<float> attn_norm, q_a_norm, kv_a_norm, ffn_norm;  // (n_embd) (q_lora) (kv_lora) (n_embd)
    WeightView wq_a;    // (q_lora, n_embd)
    WeightView wq_b;    // (n_head * (n_nope + n_rot), q_lora)
    WeightView wq;      // (n_head * (n_nope + n_rot), n_embd) when there is no q LoRA
    WeightView wkv_a;   // (kv_lora + n_rot, n_embd)
    std::vector<WeightView> k_b;  // per head (kv_lora, n_nope); legacy files: (n_nope, kv_lora) rows of kv_b
    std::vector<WeightView> v_b;  // per head (head_dim_v, kv_lora)
    WeightView wo;      // (n_embd, n_head * head_dim_v)
    // dense FFN (leading layers)
    WeightView ffn_gate, ffn_up;  // (n_ff, n_embd)
    WeightView ffn_down;          // (n_embd, n_ff)
    // MoE
    WeightView router;            // (n_expert, n_embd)
    std::vector<float> probs_b;   // (n_expert) selection bias, empty when absent
    MoeTensors experts;
    WeightView sh_gate, sh_up;    // (n_shared * n_ff_exp, n_embd)
    WeightView sh_down;           // (n_embd, n_shared * n_ff_exp)
};

// route()'s scratch (one per thread when tokens route in parallel).
struct RouteScratch {
    std::vector<float> p, sel;
    std::vector<int32_t> order;
};

// Hparams and MlaParams from the file's metadata (the GPU backend, deepseek2_gpu.cpp, loads through it too).
Hparams deepseek2_hparams(const gguf::File& f, const ModelOptions& opt, MlaParams* m, int64_t* top_k);
// The state blob of both paths: per layer, n_past rows of [c | k_pe] (row floats each), layer il's
// first row at rows(il) (valid until the next call).
std::vector<uint8_t> save_latent(const Hparams& h, int64_t row, int64_t n_past, const std::function<const float*(int64_t)>& rows);
// Checks the blob against h, row and n_ctx and hands layer il's rows (n_past * row floats) to
// put(il, rows); returns the blob's token count n_past.
int64_t load_latent(std::span<const uint8_t> blob, const Hparams& h, int64_t row, int64_t n_ctx,
                    const std::function<void(int64_t, std::span<const float>)>& put);
// Router logits (n_expert) -> ids, weights (top_k each): sigmoid (or softmax) scores, the selection bias
// `probs_b` (may be empty) and expert groups, as the file asks; shared by the CPU and GPU paths.
void route_experts(const MlaParams& m, const std::vector<float>& probs_b, int64_t n_expert, int64_t top_k,
                   const float* logits, int32_t* ids, float* weights, RouteScratch& s);

// The per-head inputs of Wk_b and Wv_b over a prompt chunk: T x n_head vectors of n floats (token t,
// head h at x + t * t_stride + h * h_stride) prepared for one weight type, grouped by head as MatmulJob
// takes them.
struct HeadActs {
    std::vector<uint8_t> buf;       // bytes(type, T, n_head, n)
    std::vector<const void*> ptrs;  // (n_head, T)
    void prepare(GgmlType type, const float* x, int64_t T, int64_t n_head, int64_t t_stride, int64_t h_stride,
                 int64_t n, ThreadPool& pool);
    const void* const* head(int64_t h, int64_t T) const { return ptrs.data() + h * T; }
    static size_t bytes(GgmlType type, int64_t T, int64_t n_head, int64_t n);
};

class DeepSeek2 final : public Model {
public:
    DeepSeek2(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, MlaParams mp, int64_t top_k);
    const float* forward(int32_t token) override;
    std::vector<uint8_t> save_state() const override;
    void load_state(std::span<const uint8_t> blob) override;

protected:
    void forward_batch(std::span<const int32_t> tokens, bool all, float* logits) override;

private:
    // Per token, shared by decode and prompt chunks (so both compute the same bits).
    void rope_angles(int64_t pos, float* cs) const;                        // cs (n_rot): cos, sin of pair i
    void rope(float* x, int64_t n_heads, int64_t stride, const float* cs) const;
    void cache_row(float* row, const float* kva, const Layer& L, const float* cs) const;  // [c | k_pe]
    void q_pe_into(float* qcat, const float* q, const float* cs) const;    // roped q_pe into each head's row
    float q_scale(int64_t pos) const;
    AttnChunk mla_args(int64_t il, const float* q, float* out, int64_t pos0, int64_t n_q, float scale,
                       const float* q_scales) const;
    void absorb_legacy(const float* rows, const float* q_nope, float* q_abs) const;
    void route(const Layer& L, const float* logits, int32_t* ids, float* weights, RouteScratch& s) const;

    // Decode: one token.
    void attention_block(int64_t il, const Layer& L, int64_t pos);
    void absorb_k(const Layer& L);
    void mla_attention(int64_t il, int64_t n_tokens, float scale);
    void dense_ffn_block(const Layer& L);
    void moe_block(int64_t il, const Layer& L);
    void run_shared_input(std::initializer_list<std::pair<WeightView, float*>> mats);

    // Prompt chunks (deepseek2_prefill.cpp): the same blocks over T rows.
    void reserve_batch(int64_t T);
    void rows_rmsnorm(float* out, const float* x, const float* w, int64_t n, int64_t T);
    void attention_batch_block(int64_t il, const Layer& L, int64_t pos0, int64_t T);
    void absorb_k_batch(const Layer& L, int64_t T);
    void mla_attention_batch(int64_t il, int64_t pos0, int64_t T);
    void dense_ffn_batch(const Layer& L, int64_t T);
    void moe_batch(int64_t il, const Layer& L, int64_t T);

    void load_weights();

    ModelOptions opt_;
    MlaParams m_;
    int64_t top_k_;
    int64_t row_ = 0;  // kv_lora + n_rot: one cached token of one layer
    const gguf::TensorInfo* tok_embd_ = nullptr;
    std::vector<float> output_norm_;
    WeightView output_{};
    std::vector<Layer> layers_;
    std::vector<std::vector<float>> cache_;  // per layer (n_ctx, kv_lora + n_rot)
    // Activations of one token. qcat_ (n_head, kv_lora + n_rot): per head [q_abs | q_pe], matched
    // against whole cache rows [c | k_pe].
    std::vector<float> x_, hn_, y_, y2_, qa_, q_, kva_, qcat_, lat_, o_, cs_, gate_, up_;
    std::vector<float> router_logits_, weights_, guess_w_, logits_;
    std::vector<int32_t> ids_, guess_ids_;  // guess_*: the next layer's guessed routing
    RouteScratch rs_;
    SharedInputMatvec shared_;  // hn prepared once per weight type
    std::vector<PreparedAct> head_act_;   // per head: q_nope for Wk_b, then the latent for Wv_b
    // Activations of a prompt chunk (T rows each): xb, hb, yb, y2b (T, n_embd); qab (T, q_lora);
    // qb (T, n_head * (n_nope + n_rot)); kvab (T, kv_lora + n_rot); qcatb (T, n_head, kv_lora + n_rot),
    // the latent attention output overwriting each head's query; ob (T, n_head * head_dim_v).
    std::vector<float> xb_, hb_, yb_, y2b_, qab_, qb_, kvab_, qcatb_, ob_, csb_, gate_b_, up_b_;
    std::vector<float> router_b_, w_b_, router_g_, gw_b_;
    std::vector<int32_t> ids_b_, gids_b_, guess_union_;
    std::vector<RouteScratch> rs_b_;  // per thread
    HeadActs qn_act_, lat_act_;
    std::vector<MatmulJob> head_jobs_;
    SharedInputMatmul shared_b_;
    std::unique_ptr<ExpertSource> experts_;
    std::unique_ptr<MoeFfn> moe_;
};

}  // namespace sluice::ds2
