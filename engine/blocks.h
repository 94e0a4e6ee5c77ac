// Shared CPU building blocks of the forward passes: norms, RoPE, attention over the KV cache, router
// top-k, and views of GGUF tensors as matrices. Plain loops: this is the reference path.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/tensor/kernels.h"

namespace sluice {

class ThreadPool;

// out (n) = x / rms(x) * w; out may alias x.
void rmsnorm(float* out, const float* x, const float* w, int64_t n, float eps);

// NeoX-style rotary embedding on x (n_heads, head_dim): the first n_rot dims of each head rotate as
// pairs (i, i + n_rot/2) by pos * base^(-2i/n_rot).
void rope_neox(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float base);

void softmax(float* x, int64_t n);
inline float silu(float x) { return x / (1.0f + __builtin_expf(-x)); }

// KV cache of one layer: k (n_ctx, n_head_kv * head_dim), v (n_ctx, n_head_kv * head_dim_v), float32.
struct LayerKv {
    std::vector<float> k, v;
};

// One head of one query over cache positions [0, n): out (head_dim_v) = sum_t softmax_t(qh . k_t * scale) v_t
// with k_t = kb + t * k_stride (head_dim floats), v_t = vb + t * v_stride. s: n floats of scratch; out
// aliases none of the inputs. The plain reference of attention_chunk (engine/attention.h), which every
// attention path runs.
void attend_head(float* out, const float* qh, const float* kb, const float* vb, int64_t k_stride, int64_t v_stride,
                 int64_t n, int64_t head_dim, int64_t head_dim_v, float scale, float* s);

// Causal attention of one query (all heads) over positions [0, n_tokens) of the cache.
// q (n_head, head_dim) -> out (n_head, head_dim_v); head h reads kv head h / (n_head / n_head_kv).
// scores: unused (attention_chunk keeps its own scratch).
void attention_one(float* out, const float* q, const LayerKv& kv, int64_t n_tokens, int64_t n_head,
                   int64_t n_head_kv, int64_t head_dim, int64_t head_dim_v, float* scores,
                   ThreadPool& pool);

// Causal attention of n_q consecutive queries (a prompt chunk at positions pos0 .. pos0 + n_q - 1,
// their K and V already in the cache): query i sees positions [0, pos0 + i]. q (n_q, n_head, head_dim)
// -> out (n_q, n_head, head_dim_v) through attention_chunk; each (query, head) computes exactly what
// attention_one does.
void attention_batch(float* out, const float* q, const LayerKv& kv, int64_t pos0, int64_t n_q, int64_t n_head,
                     int64_t n_head_kv, int64_t head_dim, int64_t head_dim_v, ThreadPool& pool);

// Router: softmax over all n_expert logits, keep the k largest; weights renormalised to sum 1 when
// `renorm`. ids/weights: k entries, largest first.
void router_topk_softmax(const float* logits, int64_t n_expert, int64_t k, bool renorm, int32_t* ids,
                         float* weights);

// One matrix-vector product whose activations are already prepared for w.type (prepare_act):
// y (w.rows) = W @ x.
struct MatvecJob {
    WeightView w;
    const void* act;
    float* y;
};
// Runs several matvecs as one parallel loop over all their rows: a decode step's q/k/v, or the gate and
// up (then down) matrices of all routed experts, cost one thread wake-up instead of one each.
void matvec_jobs(const MatvecJob* jobs, int64_t n_jobs, ThreadPool& pool);

// Activations of x prepared once for a weight type (reused by every matrix of that type).
struct PreparedAct {
    GgmlType type = GgmlType::F32;
    std::vector<uint8_t> buf;
    const void* prepare(GgmlType t, const float* x, int64_t n) {
        type = t;
        buf.resize(act_bytes(t, n));
        prepare_act(t, x, buf.data(), n);
        return buf.data();
    }
};

// GatedDeltaNet pieces (Qwen3-Next, Qwen3.5 linear-attention layers), one token at a time (the delta
// rule is a recurrence: prompt chunks scan it token by token too; the conv has a chunk form).
// Causal depthwise conv, one step: out[c] = sum_j w[c][j] * in_j[c] over the last `kernel` inputs, the
// newest being x. state (kernel - 1, channels) holds the previous inputs oldest first and is shifted.
// w (channels, kernel): GGUF ssm_conv1d ne = (kernel, channels).
void conv1d_step(float* out, const float* x, float* state, const float* w, int64_t channels, int64_t kernel);
// The same over n consecutive inputs x (n, channels) -> out (n, channels), bit-identical to n
// conv1d_step calls (the state ends holding the last kernel - 1 inputs); tokens split over the pool.
void conv1d_chunk(float* out, const float* x, int64_t n, float* state, const float* w, int64_t channels,
                  int64_t kernel, ThreadPool& pool);
// x *= 1 / sqrt(sum x^2 + eps)
void l2norm(float* x, int64_t n, float eps);
// The gated delta rule for one head; S (dk, dv) is the state, k and q already L2-normalised (q also
// scaled by 1/sqrt(dk)):  S = decay S ;  S += k (beta (v - S^T k))^T ;  out (dv) = S^T q.
// scratch: dv floats.
void gated_delta_step(float* S, float* out, const float* q, const float* k, const float* v, float decay,
                      float beta, int64_t dk, int64_t dv, float* scratch);

// Several matrices applied to one input x (q/k/v, an FFN's gate and up, router + shared expert):
// x is prepared once per weight type and every row runs in one parallel loop.
class SharedInputMatvec {
public:
    void run(const float* x, int64_t n, std::initializer_list<std::pair<WeightView, float*>> mats, ThreadPool& pool);

private:
    static constexpr int kMaxMats = 6;
    std::array<PreparedAct, kMaxMats> acts_;  // one per distinct weight type
};

// The prompt-chunk counterpart: several matrices applied to the same rows x (n, cols), each row of x
// prepared once per weight type; every weight row of every matrix in one parallel loop, meeting all
// n rows of x. Entry (W, y, ldy): y[i * ldy + r] = W row r . x row i (ldy = W.rows: y is (n, W.rows)).
struct MatmulOut {
    WeightView w;
    float* y;
};
class SharedInputMatmul {
public:
    void run(const float* x, int64_t n, int64_t cols, std::initializer_list<MatmulOut> mats, ThreadPool& pool);

private:
    static constexpr int kMaxMats = 6;
    std::array<ActBatch, kMaxMats> acts_;
    std::vector<const void*> ptrs_[kMaxMats];
};

// A GGUF tensor as floats (norm weights and other small vectors).
std::vector<float> tensor_f32(const gguf::File& f, const gguf::TensorInfo& t);
// A 2-D GGUF tensor ne = (cols, rows) as a matrix W (rows, cols).
WeightView matrix_view(const gguf::File& f, const gguf::TensorInfo& t);
// Rows [row0, row0 + rows) of slice e of a 3-D tensor ne = (cols, rows_total, n): expert e's matrix.
WeightView expert_view(const gguf::File& f, const gguf::TensorInfo& t, int64_t e, int64_t row0,
                       int64_t rows);

}  // namespace sluice
