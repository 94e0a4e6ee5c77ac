// Qwen3-MoE (`qwen3moe`, e.g. Qwen3-30B-A3B, Qwen3-235B-A22B) and dense Qwen3 (`qwen3`).
//
//   x = token_embd[token]
//   per layer:  h = rmsnorm(x) ; q,k,v = Wq h, Wk h, Wv h ; per-head rmsnorm on q and k ; NeoX RoPE
//               x += Wo attention(q, K, V)
//               h = rmsnorm(x) ; x += moe(h)  (or a dense SwiGLU FFN for qwen3)
//   logits = Wout rmsnorm(x)          (Wout = token_embd when the head is tied)
//
// Prompts run layer-major (forward_batch): each layer over a whole chunk of tokens, q/k/v/o and the
// experts as matrix products, each routed expert fetched once per chunk for all its tokens.
//
// moe(h): softmax over the router logits, top-k experts, weights renormalised to sum 1 (qwen3moe GGUFs
// carry no norm_topk_prob flag; every Qwen3-MoE release sets it), sum of w_e * down_e(silu(gate_e h) *
// up_e h).
#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/models/qwen3moe.h"
#include "engine/moe.h"
#include "engine/state.h"
#include "engine/stats_recorder.h"

namespace sluice {

namespace {

struct Layer {
    std::vector<float> attn_norm, q_norm, k_norm, ffn_norm;  // (n_embd), (head_dim), (head_dim), (n_embd)
    WeightView wq;  // (n_head * head_dim, n_embd)
    WeightView wk;  // (n_head_kv * head_dim, n_embd)
    WeightView wv;  // (n_head_kv * head_dim_v, n_embd)
    WeightView wo;  // (n_embd, n_head * head_dim_v)
    // MoE
    WeightView router;  // (n_expert, n_embd)
    MoeTensors experts;
    // dense FFN (qwen3)
    WeightView ffn_gate, ffn_up;  // (n_ff, n_embd)
    WeightView ffn_down;          // (n_embd, n_ff)
};

class Qwen3Moe final : public Model {
public:
    Qwen3Moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, int64_t top_k)
        : Model(std::move(file), opt, std::move(hp)), opt_(opt), top_k_(top_k) {
        load_weights();
        const Hparams& h = hp_;
        kv_.resize(size_t(h.n_layer));
        for (LayerKv& kv : kv_) {
            kv.k.assign(size_t(n_ctx_ * h.n_head_kv * h.head_dim), 0.0f);
            kv.v.assign(size_t(n_ctx_ * h.n_head_kv * h.head_dim_v), 0.0f);
        }
        x_.resize(size_t(h.n_embd));
        hn_.resize(size_t(h.n_embd));
        y_.resize(size_t(h.n_embd));
        q_.resize(size_t(h.n_head * h.head_dim));
        k_.resize(size_t(h.n_head_kv * h.head_dim));
        v_.resize(size_t(h.n_head_kv * h.head_dim_v));
        att_.resize(size_t(h.n_head * h.head_dim_v));
        scores_.resize(size_t(h.n_head * n_ctx_));
        gate_.resize(size_t(h.n_ff));
        up_.resize(size_t(h.n_ff));
        if (h.n_expert > 0) moe_ = std::make_unique<MoeFfn>(h.n_embd, h.n_ff_exp, top_k_);
        router_logits_.resize(size_t(h.n_expert));
        ids_.resize(size_t(top_k_));
        weights_.resize(size_t(top_k_));
        guess_ids_.resize(size_t(top_k_));
        guess_w_.resize(size_t(top_k_));
        logits_.resize(size_t(h.n_vocab));
        if (prefill_chunk() > 1) reserve_batch(prefill_chunk());
    }

    const float* forward(int32_t token) override {
        check_token(token);
        TokenScope stats(*this);
        const Hparams& h = hp_;
        const int64_t pos = n_past_;
        // token_embd row -> x (n_embd)
        dequantize_row(tok_embd_->type, file_->data(*tok_embd_) + token * row_bytes(tok_embd_->type, h.n_embd),
                       x_.data(), h.n_embd);

        for (int64_t il = 0; il < h.n_layer; ++il) {
            const Layer& L = layers_[size_t(il)];
            attention_block(L, kv_[size_t(il)], pos);
            rmsnorm(hn_.data(), x_.data(), L.ffn_norm.data(), h.n_embd, h.rms_eps);  // ffn_norm
            if (L.router.data)
                moe_block(il, L);
            else
                dense_ffn_block(L);
            for (int64_t i = 0; i < h.n_embd; ++i) x_[size_t(i)] += y_[size_t(i)];
        }

        rmsnorm(hn_.data(), x_.data(), output_norm_.data(), h.n_embd, h.rms_eps);
        matvec(output_, hn_.data(), logits_.data(), *pool_);
        ++n_past_;
        return logits_.data();
    }

    void forward_batch(std::span<const int32_t> tokens, bool all, float* logits) override {
        const Hparams& h = hp_;
        const int64_t T = int64_t(tokens.size()), pos0 = n_past_, E = h.n_embd;
        reserve_batch(T);
        for (int64_t t = 0; t < T; ++t)  // token_embd rows -> xb (T, n_embd)
            dequantize_row(tok_embd_->type, file_->data(*tok_embd_) + tokens[size_t(t)] * row_bytes(tok_embd_->type, E),
                           &xb_[size_t(t * E)], E);
        for (int64_t il = 0; il < h.n_layer; ++il) {
            const Layer& L = layers_[size_t(il)];
            attention_batch_block(L, kv_[size_t(il)], pos0, T);
            rows_rmsnorm(hb_.data(), xb_.data(), L.ffn_norm.data(), T);
            if (L.router.data)
                moe_batch(il, L, T);
            else
                dense_ffn_batch(L, T);
            for (int64_t i = 0; i < T * E; ++i) xb_[size_t(i)] += yb_[size_t(i)];
            layer_done(il);
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

    std::vector<uint8_t> save_state() const override {
        const Hparams& h = hp_;
        StateWriter w(h.arch);
        w.put_u64(uint64_t(h.n_layer));
        w.put_u64(uint64_t(h.n_head_kv * h.head_dim));
        w.put_u64(uint64_t(h.n_head_kv * h.head_dim_v));
        w.put_u64(uint64_t(n_past_));
        for (const LayerKv& kv : kv_) {
            w.put_floats(kv.k.data(), size_t(n_past_ * h.n_head_kv * h.head_dim));
            w.put_floats(kv.v.data(), size_t(n_past_ * h.n_head_kv * h.head_dim_v));
        }
        return w.take();
    }

    void load_state(std::span<const uint8_t> blob) override {
        const Hparams& h = hp_;
        reset();
        StateReader r(blob, h.arch);
        r.expect_u64("layer count", uint64_t(h.n_layer));
        r.expect_u64("K width", uint64_t(h.n_head_kv * h.head_dim));
        r.expect_u64("V width", uint64_t(h.n_head_kv * h.head_dim_v));
        const uint64_t n = r.get_u64();
        if (n > uint64_t(n_ctx_))
            throw Error("state blob holds " + std::to_string(n) + " tokens; the context is " + std::to_string(n_ctx_));
        for (LayerKv& kv : kv_) {
            r.get_floats(kv.k.data(), size_t(n) * size_t(h.n_head_kv * h.head_dim));
            r.get_floats(kv.v.data(), size_t(n) * size_t(h.n_head_kv * h.head_dim_v));
        }
        r.expect_end();
        n_past_ = int64_t(n);
    }

private:
    void attention_block(const Layer& L, LayerKv& kv, int64_t pos) {
        const Hparams& h = hp_;
        ScopedTime t(rec_, StatsRecorder::Part::Attention);
        rmsnorm(hn_.data(), x_.data(), L.attn_norm.data(), h.n_embd, h.rms_eps);  // attn_norm
        run_shared_input({{L.wq, q_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}});
        for (int64_t hh = 0; hh < h.n_head; ++hh)  // Qcur_normed
            rmsnorm(&q_[size_t(hh * h.head_dim)], &q_[size_t(hh * h.head_dim)], L.q_norm.data(), h.head_dim, h.rms_eps);
        for (int64_t hh = 0; hh < h.n_head_kv; ++hh)  // Kcur_normed
            rmsnorm(&k_[size_t(hh * h.head_dim)], &k_[size_t(hh * h.head_dim)], L.k_norm.data(), h.head_dim, h.rms_eps);
        rope_neox(q_.data(), h.n_head, h.head_dim, h.n_rot, pos, h.rope_base);
        rope_neox(k_.data(), h.n_head_kv, h.head_dim, h.n_rot, pos, h.rope_base);
        std::copy(k_.begin(), k_.end(), kv.k.begin() + pos * int64_t(k_.size()));
        std::copy(v_.begin(), v_.end(), kv.v.begin() + pos * int64_t(v_.size()));
        attention_one(att_.data(), q_.data(), kv, pos + 1, h.n_head, h.n_head_kv, h.head_dim, h.head_dim_v,
                      scores_.data(), *pool_);
        matvec(L.wo, att_.data(), y_.data(), *pool_);
        for (int64_t i = 0; i < h.n_embd; ++i) x_[size_t(i)] += y_[size_t(i)];
    }

    // Prompt chunks: the same blocks over T rows (xb, hb, yb: (T, n_embd)).
    void reserve_batch(int64_t T) {
        const Hparams& h = hp_;
        if (int64_t(xb_.size()) >= T * h.n_embd) return;
        // Sized (and touched) once, so the resident set after loading includes them.
        for (auto* v : {&xb_, &hb_, &yb_}) v->assign(size_t(T * h.n_embd), 0.0f);
        qb_.assign(size_t(T * h.n_head * h.head_dim), 0.0f);
        kb_.assign(size_t(T * h.n_head_kv * h.head_dim), 0.0f);
        vb_.assign(size_t(T * h.n_head_kv * h.head_dim_v), 0.0f);
        attb_.assign(size_t(T * h.n_head * h.head_dim_v), 0.0f);
        if (h.n_expert > 0) {
            router_b_.assign(size_t(T * h.n_expert), 0.0f);
            ids_b_.assign(size_t(T * top_k_), 0);
            w_b_.assign(size_t(T * top_k_), 0.0f);
            moe_->reserve_batch(T);
        } else {
            gate_b_.assign(size_t(T * h.n_ff), 0.0f);
            up_b_.assign(size_t(T * h.n_ff), 0.0f);
        }
    }

    void rows_rmsnorm(float* out, const float* x, const float* w, int64_t T) {
        const int64_t E = hp_.n_embd;
        pool_->parallel_for(T, 16, [&](int64_t a, int64_t b, int) {
            for (int64_t t = a; t < b; ++t) rmsnorm(out + t * E, x + t * E, w, E, hp_.rms_eps);
        });
    }

    void attention_batch_block(const Layer& L, LayerKv& kv, int64_t pos0, int64_t T) {
        const Hparams& h = hp_;
        ScopedTime st(rec_, StatsRecorder::Part::Attention);
        const int64_t nq = h.n_head * h.head_dim, nk = h.n_head_kv * h.head_dim, nv = h.n_head_kv * h.head_dim_v;
        rows_rmsnorm(hb_.data(), xb_.data(), L.attn_norm.data(), T);  // attn_norm
        shared_b_.run(hb_.data(), T, h.n_embd, {{L.wq, qb_.data()}, {L.wk, kb_.data()}, {L.wv, vb_.data()}}, *pool_);
        pool_->parallel_for(T, 4, [&](int64_t a, int64_t b, int) {
            for (int64_t t = a; t < b; ++t) {
                float* q = &qb_[size_t(t * nq)];
                float* k = &kb_[size_t(t * nk)];
                for (int64_t hh = 0; hh < h.n_head; ++hh)  // Qcur_normed
                    rmsnorm(q + hh * h.head_dim, q + hh * h.head_dim, L.q_norm.data(), h.head_dim, h.rms_eps);
                for (int64_t hh = 0; hh < h.n_head_kv; ++hh)  // Kcur_normed
                    rmsnorm(k + hh * h.head_dim, k + hh * h.head_dim, L.k_norm.data(), h.head_dim, h.rms_eps);
                rope_neox(q, h.n_head, h.head_dim, h.n_rot, pos0 + t, h.rope_base);
                rope_neox(k, h.n_head_kv, h.head_dim, h.n_rot, pos0 + t, h.rope_base);
                std::copy(k, k + nk, kv.k.begin() + (pos0 + t) * nk);
                std::copy(&vb_[size_t(t * nv)], &vb_[size_t((t + 1) * nv)], kv.v.begin() + (pos0 + t) * nv);
            }
        });
        attention_batch(attb_.data(), qb_.data(), kv, pos0, T, h.n_head, h.n_head_kv, h.head_dim, h.head_dim_v, *pool_);
        matmul(L.wo, attb_.data(), T, yb_.data(), *pool_);
        for (int64_t i = 0; i < T * h.n_embd; ++i) xb_[size_t(i)] += yb_[size_t(i)];
    }

    void moe_batch(int64_t il, const Layer& L, int64_t T) {
        const Hparams& h = hp_;
        const int64_t k = top_k_;
        matmul(L.router, hb_.data(), T, router_b_.data(), *pool_);  // ffn_moe_logits
        for (int64_t t = 0; t < T; ++t)
            router_topk_softmax(&router_b_[size_t(t * h.n_expert)], h.n_expert, k, true, &ids_b_[size_t(t * k)],
                                &w_b_[size_t(t * k)]);
        // Streaming: the next layer's router on this layer's input guesses its experts (the union
        // over the chunk), read while this layer computes.
        MoeFfn::Guess guess{il + 1, nullptr, 0};
        const bool do_guess = il + 1 < h.n_layer && layers_[size_t(il + 1)].router.data && experts_->wants_prefetch();
        if (do_guess) {
            std::vector<float> lg(static_cast<size_t>(T * h.n_expert)), gw(static_cast<size_t>(T * k));
            std::vector<int32_t> gid(static_cast<size_t>(T * k));
            matmul(layers_[size_t(il + 1)].router, hb_.data(), T, lg.data(), *pool_);
            for (int64_t t = 0; t < T; ++t)
                router_topk_softmax(&lg[size_t(t * h.n_expert)], h.n_expert, k, false, &gid[size_t(t * k)], &gw[size_t(t * k)]);
            guess = MoeFfn::chunk_guess(il + 1, gid.data(), T, k, h.n_expert, guess_union_);
        }
        moe_->run_batch(*experts_, il, ids_b_.data(), w_b_.data(), T, k, h.n_expert, hb_.data(), yb_.data(), *pool_,
                        do_guess ? &guess : nullptr);
    }

    void dense_ffn_batch(const Layer& L, int64_t T) {
        shared_b_.run(hb_.data(), T, hp_.n_embd, {{L.ffn_gate, gate_b_.data()}, {L.ffn_up, up_b_.data()}}, *pool_);
        for (int64_t i = 0; i < T * hp_.n_ff; ++i) gate_b_[size_t(i)] = silu(gate_b_[size_t(i)]) * up_b_[size_t(i)];
        matmul(L.ffn_down, gate_b_.data(), T, yb_.data(), *pool_);
    }

    // y = sum over the top-k experts of w_e * down_e(silu(gate_e hn) * up_e hn)
    void moe_block(int64_t il, const Layer& L) {
        const Hparams& h = hp_;
        matvec(L.router, hn_.data(), router_logits_.data(), *pool_);  // ffn_moe_logits
        router_topk_softmax(router_logits_.data(), h.n_expert, top_k_, true, ids_.data(), weights_.data());
        // Streaming: guess the next layer's experts from this layer's input (the residual changes
        // little between layers) so their reads start now.
        MoeFfn::Guess guess{il + 1, guess_ids_.data(), top_k_};
        const bool do_guess = il + 1 < h.n_layer && layers_[size_t(il + 1)].router.data && experts_->wants_prefetch();
        if (do_guess) {
            matvec(layers_[size_t(il + 1)].router, hn_.data(), router_logits_.data(), *pool_);
            router_topk_softmax(router_logits_.data(), h.n_expert, top_k_, false, guess_ids_.data(), guess_w_.data());
        }
        // experts compute as their reads complete (streaming); all at once when mapped
        moe_->run_streamed(*experts_, il, ids_.data(), weights_.data(), top_k_, h.n_expert, hn_.data(), y_.data(), *pool_,
                           do_guess ? &guess : nullptr);
    }

    // y = down(silu(gate hn) * up hn)
    void dense_ffn_block(const Layer& L) {
        run_shared_input({{L.ffn_gate, gate_.data()}, {L.ffn_up, up_.data()}});
        for (int64_t i = 0; i < hp_.n_ff; ++i) gate_[size_t(i)] = silu(gate_[size_t(i)]) * up_[size_t(i)];
        matvec(L.ffn_down, gate_.data(), y_.data(), *pool_);
    }

    // Several matrices applied to hn in one parallel loop.
    void run_shared_input(std::initializer_list<std::pair<WeightView, float*>> mats) {
        shared_.run(hn_.data(), hp_.n_embd, mats, *pool_);
    }

    void load_weights() {
        const gguf::File& f = *file_;
        const Hparams& h = hp_;
        auto blk = [](int64_t il, const char* name) { return "blk." + std::to_string(il) + "." + name + ".weight"; };

        tok_embd_ = &f.require_tensor("token_embd.weight", {h.n_embd, h.n_vocab});
        output_norm_ = tensor_f32(f, f.require_tensor("output_norm.weight", {h.n_embd}));
        // No output.weight: the head is tied to the embedding (llama.cpp reads it the same way).
        const gguf::TensorInfo* out = f.find_tensor("output.weight");
        output_ = matrix_view(f, out ? f.require_tensor("output.weight", {h.n_embd, h.n_vocab}) : *tok_embd_);

        layers_.resize(size_t(h.n_layer));
        for (int64_t il = 0; il < h.n_layer; ++il) {
            Layer& L = layers_[size_t(il)];
            L.attn_norm = tensor_f32(f, f.require_tensor(blk(il, "attn_norm"), {h.n_embd}));
            L.wq = matrix_view(f, f.require_tensor(blk(il, "attn_q"), {h.n_embd, h.n_head * h.head_dim}));
            L.wk = matrix_view(f, f.require_tensor(blk(il, "attn_k"), {h.n_embd, h.n_head_kv * h.head_dim}));
            L.wv = matrix_view(f, f.require_tensor(blk(il, "attn_v"), {h.n_embd, h.n_head_kv * h.head_dim_v}));
            L.wo = matrix_view(f, f.require_tensor(blk(il, "attn_output"), {h.n_head * h.head_dim_v, h.n_embd}));
            L.q_norm = tensor_f32(f, f.require_tensor(blk(il, "attn_q_norm"), {h.head_dim}));
            L.k_norm = tensor_f32(f, f.require_tensor(blk(il, "attn_k_norm"), {h.head_dim}));
            L.ffn_norm = tensor_f32(f, f.require_tensor(blk(il, "ffn_norm"), {h.n_embd}));
            if (h.n_expert > 0) {
                L.router = matrix_view(f, f.require_tensor(blk(il, "ffn_gate_inp"), {h.n_embd, h.n_expert}));
                if (f.find_tensor(blk(il, "ffn_gate_up_exps"))) {
                    L.experts.gate_up_exps = &f.require_tensor(blk(il, "ffn_gate_up_exps"), {h.n_embd, 2 * h.n_ff_exp, h.n_expert});
                } else {
                    L.experts.gate_exps = &f.require_tensor(blk(il, "ffn_gate_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
                    L.experts.up_exps = &f.require_tensor(blk(il, "ffn_up_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
                }
                L.experts.down_exps = &f.require_tensor(blk(il, "ffn_down_exps"), {h.n_ff_exp, h.n_embd, h.n_expert});
            } else {
                L.ffn_gate = matrix_view(f, f.require_tensor(blk(il, "ffn_gate"), {h.n_embd, h.n_ff}));
                L.ffn_up = matrix_view(f, f.require_tensor(blk(il, "ffn_up"), {h.n_embd, h.n_ff}));
                L.ffn_down = matrix_view(f, f.require_tensor(blk(il, "ffn_down"), {h.n_ff, h.n_embd}));
            }
        }
        check_kernels();
        if (h.n_expert > 0) {
            std::vector<MoeTensors> moe;
            for (const Layer& L : layers_) moe.push_back(L.experts);
            experts_ = make_expert_source(f, std::move(moe), h.n_embd, h.n_ff_exp, opt_);
        }
    }

    // Every matrix must be of a type sluice has kernels for; say which tensor is not.
    void check_kernels() const {
        for (const gguf::TensorInfo& t : file_->tensors())
            if (!type_info(t.type).has_kernels)
                throw Error(file_->path() + ": tensor '" + t.name + "' has type " + type_name(t.type) +
                            ", which sluice cannot compute yet");
    }

    ModelOptions opt_;
    int64_t top_k_;
    const gguf::TensorInfo* tok_embd_ = nullptr;
    std::vector<float> output_norm_;
    WeightView output_{};
    std::vector<Layer> layers_;
    std::vector<LayerKv> kv_;
    // Activations of one token.
    std::vector<float> x_, hn_, y_, q_, k_, v_, att_, scores_, gate_, up_, router_logits_, weights_, logits_, guess_w_;
    std::vector<int32_t> ids_, guess_ids_;
    SharedInputMatvec shared_;  // hn prepared once per weight type
    // Activations of a prompt chunk (T rows each).
    std::vector<float> xb_, hb_, yb_, qb_, kb_, vb_, attb_, router_b_, w_b_, gate_b_, up_b_;
    std::vector<int32_t> ids_b_, guess_union_;
    SharedInputMatmul shared_b_;
    std::unique_ptr<ExpertSource> experts_;
    std::unique_ptr<MoeFfn> moe_;
};

}  // namespace

Hparams qwen3moe_hparams(const gguf::File& f, const ModelOptions& opt, int64_t* top_k_out) {
    Hparams h;
    h.arch = f.get_string("general.architecture");
    const std::string p = h.arch + ".";
    h.n_embd = int64_t(f.get_uint(p + "embedding_length"));
    h.n_layer = int64_t(f.get_uint(p + "block_count"));
    h.n_head = int64_t(f.get_uint(p + "attention.head_count"));
    h.n_head_kv = int64_t(f.get_uint_or(p + "attention.head_count_kv", uint64_t(h.n_head)));
    h.n_ctx_train = int64_t(f.get_uint(p + "context_length"));
    h.rms_eps = float(f.get_float(p + "attention.layer_norm_rms_epsilon"));
    h.rope_base = float(f.get_float_or(p + "rope.freq_base", 10000.0));
    if (h.n_head <= 0 || h.n_head_kv <= 0 || h.n_head % h.n_head_kv != 0)
        throw Error(f.path() + ": attention.head_count " + std::to_string(h.n_head) +
                    " must be a positive multiple of head_count_kv " + std::to_string(h.n_head_kv));
    h.head_dim = int64_t(f.get_uint_or(p + "attention.key_length", uint64_t(h.n_embd / h.n_head)));
    h.head_dim_v = int64_t(f.get_uint_or(p + "attention.value_length", uint64_t(h.head_dim)));
    h.n_rot = int64_t(f.get_uint_or(p + "rope.dimension_count", uint64_t(h.head_dim)));
    if (h.n_rot <= 0 || h.n_rot > h.head_dim || h.n_rot % 2)
        throw Error(f.path() + ": rope.dimension_count " + std::to_string(h.n_rot) +
                    " must be even and at most the head size " + std::to_string(h.head_dim));
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    if (!embd) throw Error(f.path() + ": missing tensor 'token_embd.weight'");
    h.n_vocab = embd->ne[1];

    int64_t top_k = 0;
    if (h.arch == "qwen3moe") {
        h.n_expert = int64_t(f.get_uint(p + "expert_count"));
        h.n_expert_used = int64_t(f.get_uint(p + "expert_used_count"));
        h.n_ff_exp = int64_t(f.get_uint(p + "expert_feed_forward_length"));
        if (h.n_expert <= 0 || h.n_expert_used <= 0 || h.n_expert_used > h.n_expert)
            throw Error(f.path() + ": expert_used_count " + std::to_string(h.n_expert_used) +
                        " must be between 1 and expert_count " + std::to_string(h.n_expert));
        top_k = resolve_top_k(opt, h.n_expert, h.n_expert_used);
    } else {
        h.n_ff = int64_t(f.get_uint(p + "feed_forward_length"));
        if (opt.experts_per_token != 0)
            throw Error("--experts-per-token applies to MoE models; " + f.path() + " is dense (" + h.arch + ")");
    }
    *top_k_out = top_k;
    return h;
}

std::unique_ptr<Model> load_qwen3moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    int64_t top_k = 0;
    Hparams h = qwen3moe_hparams(*file, opt, &top_k);
    return std::make_unique<Qwen3Moe>(std::move(file), opt, std::move(h), top_k);
}

}  // namespace sluice
