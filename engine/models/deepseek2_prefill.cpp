// deepseek2 prompt chunks (forward_batch): every layer over T tokens at positions n_past .. n_past + T - 1.
// Projections are matrix products (each weight row read once per chunk and met by all T rows), the
// per-head Wk_b / Wv_b products one job per head over the chunk, attention through attention_chunk over
// the latent cache as decode does, routing per token by route(), and the routed
// experts through MoeFfn::run_batch: each expert read once per chunk for all its tokens. Every element
// is computed with decode's kernels in decode's order, so chunks and token-by-token processing agree to
// the bit.
#include <algorithm>
#include <cmath>

#include "engine/models/deepseek2.h"

#include "engine/stats_recorder.h"
#include "engine/tensor/threadpool.h"

namespace sluice::ds2 {

void HeadActs::prepare(GgmlType type, const float* x, int64_t T, int64_t n_head, int64_t t_stride, int64_t h_stride,
                       int64_t n, ThreadPool& pool) {
    const int64_t stride = (int64_t(act_bytes(type, n)) + 63) / 64 * 64;
    const size_t need = bytes(type, T, n_head, n);
    if (buf.size() < need) buf.resize(need);
    uint8_t* base = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    ptrs.resize(size_t(T * n_head));
    for (int64_t i = 0; i < T * n_head; ++i) ptrs[size_t(i)] = base + i * stride;
    pool.parallel_for(T, 4, [&](int64_t a, int64_t b, int) {
        for (int64_t t = a; t < b; ++t)
            for (int64_t hh = 0; hh < n_head; ++hh)
                prepare_act(type, x + t * t_stride + hh * h_stride, base + (hh * T + t) * stride, n);
    });
}

size_t HeadActs::bytes(GgmlType type, int64_t T, int64_t n_head, int64_t n) {
    return size_t((int64_t(act_bytes(type, n)) + 63) / 64 * 64 * T * n_head) + 64;
}

void DeepSeek2::forward_batch(std::span<const int32_t> tokens, bool all, float* logits) {
    const Hparams& h = hp_;
    const int64_t T = int64_t(tokens.size()), pos0 = n_past_, E = h.n_embd;
    reserve_batch(T);
    for (int64_t t = 0; t < T; ++t) {  // token_embd rows -> xb (T, n_embd); each position's rope angles
        dequantize_row(tok_embd_->type, file_->data(*tok_embd_) + tokens[size_t(t)] * row_bytes(tok_embd_->type, E),
                       &xb_[size_t(t * E)], E);
        rope_angles(pos0 + t, &csb_[size_t(t * h.n_rot)]);
    }
    for (int64_t il = 0; il < h.n_layer; ++il) {
        const Layer& L = layers_[size_t(il)];
        attention_batch_block(il, L, pos0, T);
        rows_rmsnorm(hb_.data(), xb_.data(), L.ffn_norm.data(), E, T);  // ffn_norm
        if (il < m_.n_dense_lead)
            dense_ffn_batch(L, T);
        else
            moe_batch(il, L, T);
        for (int64_t i = 0; i < T * E; ++i) xb_[size_t(i)] += yb_[size_t(i)];
        layer_done(il);
    }
    // The head only where logits are read.
    const int64_t first = all ? 0 : T - 1;
    rows_rmsnorm(&hb_[size_t(first * E)], &xb_[size_t(first * E)], output_norm_.data(), E, T - first);
    if (all)
        matmul(output_, hb_.data(), T, logits, *pool_);
    else
        matvec(output_, &hb_[size_t(first * E)], logits, *pool_);
    n_past_ += T;
}

void DeepSeek2::reserve_batch(int64_t T) {
    const Hparams& h = hp_;
    const int64_t E = h.n_embd, qk = m_.n_nope + h.n_rot, kvl = m_.kv_lora;
    if (int64_t(xb_.size()) >= T * E) return;
    // Sized (and touched) once, so the resident set after loading includes them.
    for (auto* v : {&xb_, &hb_, &yb_, &y2b_}) v->assign(size_t(T * E), 0.0f);
    qab_.assign(size_t(T * m_.q_lora), 0.0f);
    qb_.assign(size_t(T * h.n_head * qk), 0.0f);
    kvab_.assign(size_t(T * row_), 0.0f);
    qcatb_.assign(size_t(T * h.n_head * row_), 0.0f);
    ob_.assign(size_t(T * h.n_head * h.head_dim_v), 0.0f);
    csb_.assign(size_t(T * h.n_rot), 0.0f);
    const int64_t ff = std::max(h.n_ff, m_.n_shared * h.n_ff_exp);
    gate_b_.assign(size_t(T * ff), 0.0f);
    up_b_.assign(size_t(T * ff), 0.0f);
    rs_b_.resize(size_t(pool_->size()));
    size_t qn = 0, lat = 0;  // the largest prepared per-head inputs of any layer
    for (const Layer& L : layers_) {
        if (!m_.legacy_kv_b) qn = std::max(qn, HeadActs::bytes(L.k_b[0].type, T, h.n_head, m_.n_nope));
        lat = std::max(lat, HeadActs::bytes(L.v_b[0].type, T, h.n_head, kvl));
    }
    qn_act_.buf.assign(qn, 0);
    lat_act_.buf.assign(lat, 0);
    if (h.n_expert > 0) {
        router_b_.assign(size_t(T * h.n_expert), 0.0f);
        router_g_.assign(size_t(T * h.n_expert), 0.0f);
        for (auto* v : {&ids_b_, &gids_b_}) v->assign(size_t(T * top_k_), 0);
        for (auto* v : {&w_b_, &gw_b_}) v->assign(size_t(T * top_k_), 0.0f);
        moe_->reserve_batch(T);
    }
}

// out (T, n) = rmsnorm of each row of x (T, n); out may alias x.
void DeepSeek2::rows_rmsnorm(float* out, const float* x, const float* w, int64_t n, int64_t T) {
    pool_->parallel_for(T, 16, [&](int64_t a, int64_t b, int) {
        for (int64_t t = a; t < b; ++t) rmsnorm(out + t * n, x + t * n, w, n, hp_.rms_eps);
    });
}

void DeepSeek2::attention_batch_block(int64_t il, const Layer& L, int64_t pos0, int64_t T) {
    const Hparams& h = hp_;
    const int64_t E = h.n_embd, nq = h.n_head * (m_.n_nope + h.n_rot), kvl = m_.kv_lora;
    ScopedTime st(rec_, StatsRecorder::Part::Attention);
    rows_rmsnorm(hb_.data(), xb_.data(), L.attn_norm.data(), E, T);  // attn_norm
    if (m_.q_lora > 0) {
        shared_b_.run(hb_.data(), T, E, {{L.wq_a, qab_.data()}, {L.wkv_a, kvab_.data()}}, *pool_);  // q_a, kv_cmpr_pe
        rows_rmsnorm(qab_.data(), qab_.data(), L.q_a_norm.data(), m_.q_lora, T);
        matmul(L.wq_b, qab_.data(), T, qb_.data(), *pool_);                                        // q
    } else {
        shared_b_.run(hb_.data(), T, E, {{L.wq, qb_.data()}, {L.wkv_a, kvab_.data()}}, *pool_);
    }
    float* cache = cache_[size_t(il)].data();
    pool_->parallel_for(T, 4, [&](int64_t a, int64_t b, int) {
        for (int64_t t = a; t < b; ++t) {
            const float* cs = &csb_[size_t(t * h.n_rot)];
            cache_row(cache + (pos0 + t) * row_, &kvab_[size_t(t * row_)], L, cs);  // Kcur = [kv_cmpr | k_pe]
            q_pe_into(&qcatb_[size_t(t * h.n_head * row_)], &qb_[size_t(t * nq)], cs);  // q_pe
        }
    });
    absorb_k_batch(L, T);                                                     // q_nope_absorbed
    mla_attention_batch(il, pos0, T);                                         // latents in qcatb_

    // o_h = Wv_b[h] lat_h: one job per head, all tokens of the chunk.
    lat_act_.prepare(L.v_b[0].type, qcatb_.data(), T, h.n_head, h.n_head * row_, row_, kvl, *pool_);
    head_jobs_.clear();
    for (int64_t hh = 0; hh < h.n_head; ++hh)
        head_jobs_.push_back({L.v_b[size_t(hh)], lat_act_.head(hh, T), T, &ob_[size_t(hh * h.head_dim_v)], h.n_head * h.head_dim_v});
    matmul_jobs(head_jobs_.data(), int64_t(head_jobs_.size()), *pool_);
    matmul(L.wo, ob_.data(), T, yb_.data(), *pool_);                          // attn_out
    for (int64_t i = 0; i < T * E; ++i) xb_[size_t(i)] += yb_[size_t(i)];
}

// q_abs[t, h] = Wk_b[h] q_nope[t, h], into the head's row of qcatb_.
void DeepSeek2::absorb_k_batch(const Layer& L, int64_t T) {
    const Hparams& h = hp_;
    const int64_t qk = m_.n_nope + h.n_rot, nq = h.n_head * qk, kvl = m_.kv_lora;
    if (!m_.legacy_kv_b) {
        qn_act_.prepare(L.k_b[0].type, qb_.data(), T, h.n_head, nq, qk, m_.n_nope, *pool_);
        head_jobs_.clear();
        for (int64_t hh = 0; hh < h.n_head; ++hh)
            head_jobs_.push_back({L.k_b[size_t(hh)], qn_act_.head(hh, T), T, &qcatb_[size_t(hh * row_)], h.n_head * row_});
        matmul_jobs(head_jobs_.data(), int64_t(head_jobs_.size()), *pool_);
        return;
    }
    // Legacy kv_b: each head's key rows dequantized once for the chunk.
    pool_->parallel_for(h.n_head, 1, [&](int64_t h0, int64_t h1, int) {
        std::vector<float> rows(static_cast<size_t>(m_.n_nope * kvl));
        for (int64_t hh = h0; hh < h1; ++hh) {
            const WeightView& w = L.k_b[size_t(hh)];
            dequantize_row(w.type, w.data, rows.data(), m_.n_nope * kvl);
            for (int64_t t = 0; t < T; ++t)
                absorb_legacy(rows.data(), &qb_[size_t(t * nq + hh * qk)], &qcatb_[size_t((t * h.n_head + hh) * row_)]);
        }
    });
}

// Causal attention of the chunk over the latent cache: query t sees positions [0, pos0 + t]. All heads
// share the one cache row (MQA over latents: K = [c | k_pe], V = c), so attention_chunk's tiles feed
// each loaded row to many (query, head) rows; the latent output overwrites its query row in qcatb_.
void DeepSeek2::mla_attention_batch(int64_t il, int64_t pos0, int64_t T) {
    std::vector<float> scales(static_cast<size_t>(T));  // YaRN's temperature, per position
    for (int64_t i = 0; i < T; ++i) scales[size_t(i)] = q_scale(pos0 + i);
    attention_chunk(mla_args(il, qcatb_.data(), qcatb_.data(), pos0, T, 0.0f, scales.data()), *pool_);
}

// y = down(silu(gate hn) * up hn) for every row.
void DeepSeek2::dense_ffn_batch(const Layer& L, int64_t T) {
    shared_b_.run(hb_.data(), T, hp_.n_embd, {{L.ffn_gate, gate_b_.data()}, {L.ffn_up, up_b_.data()}}, *pool_);
    for (int64_t i = 0; i < T * hp_.n_ff; ++i) gate_b_[size_t(i)] = silu(gate_b_[size_t(i)]) * up_b_[size_t(i)];
    matmul(L.ffn_down, gate_b_.data(), T, yb_.data(), *pool_);
}

// y = routed experts + shared experts for every row: the router and the shared gate/up as one product,
// each token routed as decode routes it, the routed experts grouped by expert (read once per chunk).
void DeepSeek2::moe_batch(int64_t il, const Layer& L, int64_t T) {
    const Hparams& h = hp_;
    const int64_t E = h.n_embd, k = top_k_, n_sh = m_.n_shared * h.n_ff_exp;
    if (n_sh > 0)
        shared_b_.run(hb_.data(), T, E, {{L.router, router_b_.data()}, {L.sh_gate, gate_b_.data()}, {L.sh_up, up_b_.data()}},
                      *pool_);
    else
        shared_b_.run(hb_.data(), T, E, {{L.router, router_b_.data()}}, *pool_);  // ffn_moe_logits
    auto route_rows = [&](const Layer& layer, const float* lg, int32_t* ids, float* w) {
        pool_->parallel_for(T, 8, [&](int64_t a, int64_t b, int thread) {
            for (int64_t t = a; t < b; ++t)
                route(layer, lg + t * h.n_expert, ids + t * k, w + t * k, rs_b_[size_t(thread)]);
        });
    };
    route_rows(L, router_b_.data(), ids_b_.data(), w_b_.data());  // ffn_moe_topk, ffn_moe_weights
    // Streaming: the next layer's router and route() on this layer's input guess its experts (the union
    // over the chunk), read while this layer computes.
    const int64_t src_layer = il - m_.n_dense_lead;
    MoeFfn::Guess guess{src_layer + 1, nullptr, 0};
    const bool do_guess = il + 1 < h.n_layer && experts_->wants_prefetch();
    if (do_guess) {
        const Layer& next = layers_[size_t(il + 1)];
        matmul(next.router, hb_.data(), T, router_g_.data(), *pool_);
        route_rows(next, router_g_.data(), gids_b_.data(), gw_b_.data());
        guess = MoeFfn::chunk_guess(src_layer + 1, gids_b_.data(), T, k, h.n_expert, guess_union_);
    }
    moe_->run_batch(*experts_, src_layer, ids_b_.data(), w_b_.data(), T, k, h.n_expert, hb_.data(), yb_.data(), *pool_,
                    do_guess ? &guess : nullptr);
    if (n_sh > 0) {  // ffn_shexp
        for (int64_t i = 0; i < T * n_sh; ++i) gate_b_[size_t(i)] = silu(gate_b_[size_t(i)]) * up_b_[size_t(i)];
        matmul(L.sh_down, gate_b_.data(), T, y2b_.data(), *pool_);
        for (int64_t i = 0; i < T * E; ++i) yb_[size_t(i)] += y2b_[size_t(i)];
    }
}

}  // namespace sluice::ds2
