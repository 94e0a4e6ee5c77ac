// qwen35moe / qwen3next prompt chunks, layer-major: each layer runs over all T tokens of a chunk
// before the next. Every projection (q+gate/k/v/o, the delta net's qkv/z/b/a and out, router, shared
// expert and its gate) is a matrix product over the chunk; routed experts go through MoeFfn::run_batch
// (each one fetched once per chunk). Full-attention layers attend causally over the chunk
// (attention_batch). The delta rule is a recurrence: it scans the chunk token by token, the value
// heads split over the threads (each head's (dk, dv) state stays in cache for the whole chunk).
// Each token computes what forward() computes for it (the same per-token and per-head steps, kernels
// bit-identical to the matvecs), so results equal token-by-token processing.
//
// A chunk is all or nothing: when it throws (a stop between layers, a failed read) every recurrent
// state is put back as it was at the chunk's start and n_past() is unchanged. (KV rows written past
// n_past() are never read.)
#include <algorithm>
#include <cmath>

#include "engine/blocks.h"
#include "engine/models/qwen35moe.h"
#include "engine/stats_recorder.h"
#include "engine/tensor/threadpool.h"

namespace sluice::qwen35 {

void Qwen35Moe::forward_batch(std::span<const int32_t> tokens, bool all, float* logits) {
    const Hparams& h = hp_;
    const int64_t T = int64_t(tokens.size()), pos0 = n_past_, E = h.n_embd;
    reserve_batch(T);
    for (int64_t t = 0; t < T; ++t)  // token_embd rows -> xb (T, n_embd)
        dequantize_row(tok_embd_->type, file_->data(*tok_embd_) + tokens[size_t(t)] * row_bytes(tok_embd_->type, E),
                       &xb_[size_t(t * E)], E);
    int64_t saved = 0;  // layers [0, saved) have their chunk-start recurrent state in saved_
    try {
        for (int64_t il = 0; il < h.n_layer; ++il) {
            const Layer& L = layers_[size_t(il)];
            if (L.recurrent) {
                saved_[size_t(il)].conv = rec_[size_t(il)].conv;  // same sizes: no allocation
                saved_[size_t(il)].S = rec_[size_t(il)].S;
            }
            saved = il + 1;
            {
                ScopedTime st(Model::rec_, StatsRecorder::Part::Attention);
                rows_rmsnorm(hb_.data(), xb_.data(), L.attn_norm.data(), T);  // attn_norm
                if (L.recurrent)
                    delta_net_batch(L, rec_[size_t(il)], T);
                else
                    attention_batch_block(L, kv_[size_t(il)], pos0, T);
            }
            for (int64_t i = 0; i < T * E; ++i) xb_[size_t(i)] += yb_[size_t(i)];  // attn_residual
            rows_rmsnorm(hb_.data(), xb_.data(), L.post_norm.data(), T);         // attn_post_norm
            moe_batch(il, L, T);
            for (int64_t i = 0; i < T * E; ++i) xb_[size_t(i)] += yb_[size_t(i)];  // post_moe
            layer_done(il);
        }
    } catch (...) {
        for (int64_t il = 0; il < saved; ++il)
            if (layers_[size_t(il)].recurrent) {
                rec_[size_t(il)].conv = saved_[size_t(il)].conv;
                rec_[size_t(il)].S = saved_[size_t(il)].S;
            }
        throw;
    }
    // The head only where logits are read.
    const int64_t first = all ? 0 : T - 1;
    rows_rmsnorm(&hb_[size_t(first * E)], &xb_[size_t(first * E)], output_norm_.data(), T - first);
    if (all)
        matmul(output_, hb_.data(), T, logits, *pool_);
    else
        matvec(output_, &hb_[size_t(first * E)], logits, *pool_);
    n_past_ += T;
}

// Sized (and touched) for chunks of T tokens, once: the constructor calls it with the chunk size so
// the resident set after loading includes them.
void Qwen35Moe::reserve_batch(int64_t T) {
    const Hparams& h = hp_;
    const Ssm& s = ssm_;
    if (int64_t(xb_.size()) >= T * h.n_embd) return;
    auto size = [](std::vector<float>& v, int64_t n) { v.assign(size_t(n), 0.0f); };
    for (auto* v : {&xb_, &hb_, &yb_, &shy_b_}) size(*v, T * h.n_embd);
    bool any_full = false, any_rec = false;
    for (const Layer& L : layers_) (L.recurrent ? any_rec : any_full) = true;
    const int64_t nq = h.n_head * h.head_dim, nk = h.n_head_kv * h.head_dim, nv = h.n_head_kv * h.head_dim_v;
    // qkvb_ holds the full layers' projections [q and gate | k | v] and the delta net's qkv.
    size(qkvb_, T * std::max(any_full ? 2 * nq + nk + nv : 0, any_rec ? s.conv_dim() : 0));
    if (any_full) {
        for (auto* v : {&qb_, &gateb_, &attb_}) size(*v, T * nq);
        size(kb_, T * nk);
        size(vb_, T * nv);
    }
    if (any_rec) {
        size(convb_, T * s.conv_dim());
        for (auto* v : {&zb_, &ob_}) size(*v, T * s.value_dim());
        for (auto* v : {&bb_, &ab_}) size(*v, T * s.n_v);
        size(bab_, T * 2 * s.n_v);
        saved_.resize(rec_.size());
        for (size_t il = 0; il < rec_.size(); ++il) {
            saved_[il].conv.assign(rec_[il].conv.size(), 0.0f);
            saved_[il].S.assign(rec_[il].S.size(), 0.0f);
        }
    }
    size(router_b_, T * h.n_expert);
    size(w_b_, T * top_k_);
    ids_b_.assign(size_t(T * top_k_), 0);
    for (auto* v : {&shg_b_, &shu_b_}) size(*v, T * n_ff_sh_);
    size(shl_b_, T);
    moe_->reserve_batch(T);
}

void Qwen35Moe::rows_rmsnorm(float* out, const float* x, const float* w, int64_t T) {
    const int64_t E = hp_.n_embd;
    pool_->parallel_for(T, 16, [&](int64_t a, int64_t b, int) {
        for (int64_t t = a; t < b; ++t) rmsnorm(out + t * E, x + t * E, w, E, hp_.rms_eps);
    });
}

// yb = Wo (attention(q, K, V) * sigmoid(gate)) for every token of the chunk.
void Qwen35Moe::attention_batch_block(const Layer& L, LayerKv& kv, int64_t pos0, int64_t T) {
    const Hparams& h = hp_;
    const int64_t nq = h.n_head * h.head_dim, nk = h.n_head_kv * h.head_dim, nv = h.n_head_kv * h.head_dim_v;
    // Row t of the projections: qg (2 nq), k (nk), v (nv), at a stride of `ld` floats.
    float *qg0 = qkvb_.data(), *k0 = kb_.data(), *v0 = vb_.data();
    int64_t ldq = 2 * nq, ldk = nk, ldv = nv;
    if (L.wqkv_attn.data) {  // one matrix: rows [q and gate | k | v]
        shared_b_.run(hb_.data(), T, h.n_embd, {{L.wqkv_attn, qkvb_.data()}}, *pool_);
        k0 = qg0 + 2 * nq;
        v0 = k0 + nk;
        ldq = ldk = ldv = L.wqkv_attn.rows;
    } else {
        shared_b_.run(hb_.data(), T, h.n_embd, {{L.wq, qg0}, {L.wk, k0}, {L.wv, v0}}, *pool_);
    }
    pool_->parallel_for(T, 4, [&](int64_t a, int64_t b, int) {
        for (int64_t t = a; t < b; ++t) {
            float* k = k0 + t * ldk;
            const float* v = v0 + t * ldv;
            attn_inputs(L, qg0 + t * ldq, &qb_[size_t(t * nq)], &gateb_[size_t(t * nq)], k, pos0 + t);
            std::copy(k, k + nk, kv.k.begin() + (pos0 + t) * nk);
            std::copy(v, v + nv, kv.v.begin() + (pos0 + t) * nv);
        }
    });
    attention_batch(attb_.data(), qb_.data(), kv, pos0, T, h.n_head, h.n_head_kv, h.head_dim, h.head_dim_v, *pool_);
    for (int64_t i = 0; i < T * nq; ++i) attb_[size_t(i)] *= sigmoid(gateb_[size_t(i)]);  // attn_gated
    matmul(L.wo, attb_.data(), T, yb_.data(), *pool_);
}

// yb = Wout gated_rmsnorm(delta rule over the conv of Wqkv hb), the chunk's tokens in order.
void Qwen35Moe::delta_net_batch(const Layer& L, Recurrent& st, int64_t T) {
    const Ssm& s = ssm_;
    const int64_t nv = s.n_v, cd = s.conv_dim(), vd = s.value_dim();
    if (L.wba.data)
        shared_b_.run(hb_.data(), T, hp_.n_embd, {{L.wqkv, qkvb_.data()}, {L.wz, zb_.data()}, {L.wba, bab_.data()}},
                      *pool_);
    else
        shared_b_.run(hb_.data(), T, hp_.n_embd,
                      {{L.wqkv, qkvb_.data()}, {L.wz, zb_.data()}, {L.wb, bb_.data()}, {L.wa, ab_.data()}}, *pool_);
    // The conv depends only on inputs (known for the whole chunk): all tokens at once.
    conv1d_chunk(convb_.data(), qkvb_.data(), T, st.conv.data(), L.conv.data(), cd, s.kernel, *pool_);
    pool_->parallel_for(T, 4, [&](int64_t a, int64_t b, int) {
        for (int64_t t = a; t < b; ++t) {
            float* bt = &bb_[size_t(t * nv)];
            float* at = &ab_[size_t(t * nv)];
            if (L.wba.data) split_ba(&bab_[size_t(t * 2 * nv)], bt, at);
            delta_inputs(L, &convb_[size_t(t * cd)], bt, at);
        }
    });
    // The recurrence: per value head, the chunk's tokens in order.
    pool_->parallel_for(nv, 1, [&](int64_t h0, int64_t h1, int) {
        for (int64_t hh = h0; hh < h1; ++hh) {
            float* S = &st.S[size_t(hh * s.dk * s.dv)];
            float* scratch = &delta_scratch_[size_t(hh * s.dv)];
            for (int64_t t = 0; t < T; ++t)
                delta_head(L, S, &ob_[size_t(t * vd + hh * s.dv)], &convb_[size_t(t * cd)], ab_[size_t(t * nv + hh)],
                           bb_[size_t(t * nv + hh)], &zb_[size_t(t * vd + hh * s.dv)], hh, scratch);
        }
    });
    matmul(L.ssm_out, ob_.data(), T, yb_.data(), *pool_);  // linear_attn_out
}

// yb = routed experts (run_batch, grouped by expert) + sigmoid(w_sh . hb) * shared_expert(hb), per token.
void Qwen35Moe::moe_batch(int64_t il, const Layer& L, int64_t T) {
    const Hparams& h = hp_;
    const int64_t k = top_k_, E = h.n_embd;
    if (L.sh_gate.data)
        shared_b_.run(hb_.data(), T, E,
                      {{L.router, router_b_.data()}, {L.sh_gate, shg_b_.data()}, {L.sh_up, shu_b_.data()},
                       {L.sh_router, shl_b_.data()}},
                      *pool_);
    else
        shared_b_.run(hb_.data(), T, E, {{L.router, router_b_.data()}}, *pool_);  // ffn_moe_logits
    for (int64_t t = 0; t < T; ++t)
        router_topk_softmax(&router_b_[size_t(t * h.n_expert)], h.n_expert, k, true, &ids_b_[size_t(t * k)],
                            &w_b_[size_t(t * k)]);
    // Streaming: the next layer's router on this layer's input guesses its experts (the union over
    // the chunk), read while this layer computes.
    MoeFfn::Guess guess{il + 1, nullptr, 0};
    const bool do_guess = il + 1 < h.n_layer && experts_->wants_prefetch();
    if (do_guess) {
        std::vector<float> lg(static_cast<size_t>(T * h.n_expert)), gw(static_cast<size_t>(T * k));
        std::vector<int32_t> gid(static_cast<size_t>(T * k));
        matmul(layers_[size_t(il + 1)].router, hb_.data(), T, lg.data(), *pool_);
        for (int64_t t = 0; t < T; ++t)
            router_topk_softmax(&lg[size_t(t * h.n_expert)], h.n_expert, k, false, &gid[size_t(t * k)], &gw[size_t(t * k)]);
        guess = MoeFfn::chunk_guess(il + 1, gid.data(), T, k, h.n_expert, guess_union_);
    }
    moe_->run_batch(*experts_, il, ids_b_.data(), w_b_.data(), T, k, h.n_expert, hb_.data(), yb_.data(), *pool_,
                    do_guess ? &guess : nullptr);  // ffn_moe_out
    if (!L.sh_gate.data) return;
    for (int64_t i = 0; i < T * n_ff_sh_; ++i) shg_b_[size_t(i)] = silu(shg_b_[size_t(i)]) * shu_b_[size_t(i)];
    matmul(L.sh_down, shg_b_.data(), T, shy_b_.data(), *pool_);  // ffn_shexp
    for (int64_t t = 0; t < T; ++t) {
        const float g = sigmoid(shl_b_[size_t(t)]);  // shared_expert_gate_sigmoid
        for (int64_t i = 0; i < E; ++i) yb_[size_t(t * E + i)] += g * shy_b_[size_t(t * E + i)];
    }
}

}  // namespace sluice::qwen35
