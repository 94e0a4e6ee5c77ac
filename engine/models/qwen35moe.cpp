// Qwen3.5-MoE (`qwen35moe`, e.g. Qwen3.5-397B-A17B) and its sibling Qwen3-Next (`qwen3next`): hybrid
// layers, most of them GatedDeltaNet linear attention with a recurrent state, every few a gated full
// attention layer, each followed by routed experts plus a gated shared expert.
//
//   x = token_embd[token]
//   per layer:  h = rmsnorm(x)
//               x += delta_net(h)   (recurrent layers)   or   x += gated_attention(h)   (full layers)
//               h = rmsnorm(x) ; x += moe(h) + sigmoid(w_sh . h) * shared_expert(h)
//   logits = Wout rmsnorm(x)
//
// gated_attention(h): Wq gives per head [q (hd), gate (hd)]; per-head rmsnorm on q and k; NeoX RoPE on
//   the first n_rot dims; Wo (attention(q, K, V) * sigmoid(gate)).
// delta_net(h), with a state S_h (dk, dv) per value head h and the last K-1 conv inputs:
//   qkv = silu(causal depthwise conv1d(Wqkv h)) -> q, k (n_k heads of dk), v (n_v heads of dv)
//   q, k L2-normalised per head, q /= sqrt(dk) ; beta = sigmoid(Wb h) ;
//   decay = exp(ssm_a * softplus(Wa h + dt_bias))        (ssm_a is stored as -exp(A_log))
//   S_h = decay S_h ; S_h += k (beta (v_h - S_h^T k))^T ; o_h = S_h^T q
//   Wout (rmsnorm(o_h) * ssm_norm * silu(z_h)),  z = Wz h
// moe(h): softmax over all experts, top-k, weights renormalised to sum 1.
//
// Conventions of llama.cpp's converter this file relies on: norm weights are stored as 1 + w (HF's
// zero-centred RMSNorm), except ssm_norm (used as is); q/k/v come out of the conv as [q | k | v]; for
// qwen35moe the converter reorders value heads so that value head h reads key head h % n_k ("tiled"),
// while qwen3next keeps HF's grouped order (h reads key head h / (n_v / n_k)) and fuses b and a into
// ssm_ba, per key head [b (n_v/n_k), a (n_v/n_k)]. rope.dimension_sections (interleaved M-RoPE) is not
// used: for text every section has the same position, which makes it plain NeoX RoPE.
//
// Prompts run layer-major (qwen35moe_prefill.cpp): each layer over a whole chunk, every projection a
// matrix product, the delta rule scanning the chunk token by token per head.
//
// The recurrent state only moves forward: truncate() cannot go back except to 0 (reset); save_state()
// stores it with the full layers' KV cache so a prefill snapshot restores exactly.
#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/models/qwen35moe.h"
#include "engine/moe.h"
#include "engine/state.h"
#include "engine/stats_recorder.h"

namespace sluice {

namespace qwen35 {

namespace {
constexpr float kL2Eps = 1e-6f;  // HF's l2norm eps (fixed, not the model's rms eps)
}  // namespace

Qwen35Moe::Qwen35Moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Config c)
    : Model(std::move(file), opt, std::move(c.h)), opt_(opt), ssm_(c.ssm), recurrent_(std::move(c.recurrent)),
      n_ff_sh_(c.n_ff_sh), top_k_(c.top_k) {
    const Hparams& h = hp_;
    layers_.resize(size_t(h.n_layer));
    for (int64_t il = 0; il < h.n_layer; ++il) layers_[size_t(il)].recurrent = recurrent_[size_t(il)];
    load_weights();
    kv_.resize(size_t(h.n_layer));
    rec_.resize(size_t(h.n_layer));
    for (int64_t il = 0; il < h.n_layer; ++il) {
        if (layers_[size_t(il)].recurrent) {
            rec_[size_t(il)].conv.assign(size_t((ssm_.kernel - 1) * ssm_.conv_dim()), 0.0f);
            rec_[size_t(il)].S.assign(size_t(ssm_.n_v * ssm_.dk * ssm_.dv), 0.0f);
        } else {
            kv_[size_t(il)].k.assign(size_t(n_ctx_ * h.n_head_kv * h.head_dim), 0.0f);
            kv_[size_t(il)].v.assign(size_t(n_ctx_ * h.n_head_kv * h.head_dim_v), 0.0f);
        }
    }
    x_.resize(size_t(h.n_embd));
    hn_.resize(size_t(h.n_embd));
    y_.resize(size_t(h.n_embd));
    qg_.resize(size_t(h.n_head * 2 * h.head_dim));
    q_.resize(size_t(h.n_head * h.head_dim));
    gate_.resize(size_t(h.n_head * h.head_dim_v));
    k_.resize(size_t(h.n_head_kv * h.head_dim));
    v_.resize(size_t(h.n_head_kv * h.head_dim_v));
    qkv_attn_.resize(qg_.size() + k_.size() + v_.size());
    att_.resize(size_t(h.n_head * h.head_dim_v));
    scores_.resize(size_t(h.n_head * n_ctx_));
    qkv_.resize(size_t(ssm_.conv_dim()));
    conv_out_.resize(size_t(ssm_.conv_dim()));
    z_.resize(size_t(ssm_.value_dim()));
    ba_.resize(size_t(2 * ssm_.n_v));
    ba_raw_.resize(size_t(2 * ssm_.n_v));
    o_.resize(size_t(ssm_.value_dim()));
    delta_scratch_.resize(size_t(ssm_.value_dim()));
    moe_ = std::make_unique<MoeFfn>(h.n_embd, h.n_ff_exp, top_k_);
    router_logits_.resize(size_t(h.n_expert));
    ids_.resize(size_t(top_k_));
    weights_.resize(size_t(top_k_));
    guess_ids_.resize(size_t(top_k_));
    guess_w_.resize(size_t(top_k_));
    sh_g_.resize(size_t(n_ff_sh_));
    sh_u_.resize(size_t(n_ff_sh_));
    sh_y_.resize(size_t(h.n_embd));
    logits_.resize(size_t(h.n_vocab));
    if (prefill_chunk() > 1) reserve_batch(prefill_chunk());
}

const float* Qwen35Moe::forward(int32_t token) {
    check_token(token);
    TokenScope stats(*this);
    const Hparams& h = hp_;
    const int64_t pos = n_past_;
    // token_embd row -> x (n_embd)
    dequantize_row(tok_embd_->type, file_->data(*tok_embd_) + token * row_bytes(tok_embd_->type, h.n_embd),
                   x_.data(), h.n_embd);
    for (int64_t il = 0; il < h.n_layer; ++il) {
        const Layer& L = layers_[size_t(il)];
        {
            // Both kinds of token mixing count as attention in the statistics. (rec_ here is the
            // recurrent state; the statistics recorder is Model::rec_.)
            ScopedTime t(Model::rec_, StatsRecorder::Part::Attention);
            rmsnorm(hn_.data(), x_.data(), L.attn_norm.data(), h.n_embd, h.rms_eps);  // attn_norm
            if (L.recurrent)
                delta_net_block(L, rec_[size_t(il)]);
            else
                attention_block(L, kv_[size_t(il)], pos);
        }
        for (int64_t i = 0; i < h.n_embd; ++i) x_[size_t(i)] += y_[size_t(i)];  // attn_residual
        rmsnorm(hn_.data(), x_.data(), L.post_norm.data(), h.n_embd, h.rms_eps);  // attn_post_norm
        moe_block(il, L);
        for (int64_t i = 0; i < h.n_embd; ++i) x_[size_t(i)] += y_[size_t(i)];  // post_moe
    }
    rmsnorm(hn_.data(), x_.data(), output_norm_.data(), h.n_embd, h.rms_eps);
    matvec(output_, hn_.data(), logits_.data(), *pool_);
    ++n_past_;
    return logits_.data();
}

void Qwen35Moe::reset() {
    n_past_ = 0;
    for (Recurrent& r : rec_) {
        std::fill(r.conv.begin(), r.conv.end(), 0.0f);
        std::fill(r.S.begin(), r.S.end(), 0.0f);
    }
}

// The recurrent state is a summary of every token so far; positions cannot be dropped from it.
void Qwen35Moe::truncate(int64_t n) {
    if (truncate_resets(n, n_past_, hp_.arch)) reset();
}

bool truncate_resets(int64_t n, int64_t n_past, const std::string& arch) {
    if (n < 0 || n > n_past)
        throw Error("cannot truncate to " + std::to_string(n) + " tokens: only " + std::to_string(n_past) + " are cached");
    if (n == n_past) return false;
    if (n == 0) return true;
    throw Error("cannot truncate to " + std::to_string(n) + " of " + std::to_string(n_past) + " tokens: " + arch +
                " keeps a recurrent state that cannot go back; restore a saved state instead");
}

std::vector<uint8_t> Qwen35Moe::save_state() const {
    const Hparams& h = hp_;
    StateWriter w(h.arch);
    put_layout(w, h, ssm_, recurrent_);
    w.put_u64(uint64_t(n_past_));
    for (size_t il = 0; il < layers_.size(); ++il) {
        if (layers_[il].recurrent) {
            w.put_floats(rec_[il].conv.data(), rec_[il].conv.size());
            w.put_floats(rec_[il].S.data(), rec_[il].S.size());
        } else {
            w.put_floats(kv_[il].k.data(), size_t(n_past_ * h.n_head_kv * h.head_dim));
            w.put_floats(kv_[il].v.data(), size_t(n_past_ * h.n_head_kv * h.head_dim_v));
        }
    }
    return w.take();
}

void Qwen35Moe::load_state(std::span<const uint8_t> blob) {
    const Hparams& h = hp_;
    reset();
    try {
        StateReader r(blob, h.arch);
        expect_layout(r, h, ssm_, recurrent_);
        const uint64_t n = r.get_u64();
        if (n > uint64_t(n_ctx_))
            throw Error("state blob holds " + std::to_string(n) + " tokens; the context is " + std::to_string(n_ctx_));
        for (size_t il = 0; il < layers_.size(); ++il) {
            if (layers_[il].recurrent) {
                r.get_floats(rec_[il].conv.data(), rec_[il].conv.size());
                r.get_floats(rec_[il].S.data(), rec_[il].S.size());
            } else {
                r.get_floats(kv_[il].k.data(), size_t(n) * size_t(h.n_head_kv * h.head_dim));
                r.get_floats(kv_[il].v.data(), size_t(n) * size_t(h.n_head_kv * h.head_dim_v));
            }
        }
        r.expect_end();
        n_past_ = int64_t(n);
    } catch (...) {
        reset();  // a half-read recurrent state must not survive
        throw;
    }
}

std::vector<std::pair<const char*, uint64_t>> state_layout(const Hparams& h, const Ssm& s, const std::vector<bool>& recurrent) {
    uint64_t mask = 0, n_rec = 0;  // which layers are recurrent (the mask covers the first 64)
    for (size_t il = 0; il < recurrent.size(); ++il) {
        if (!recurrent[il]) continue;
        ++n_rec;
        if (il < 64) mask |= uint64_t(1) << il;
    }
    return {{"layer count", uint64_t(h.n_layer)},
            {"recurrent layer mask", mask},
            {"recurrent layer count", n_rec},
            {"K width", uint64_t(h.n_head_kv * h.head_dim)},
            {"V width", uint64_t(h.n_head_kv * h.head_dim_v)},
            {"conv state size", uint64_t((s.kernel - 1) * s.conv_dim())},
            {"delta state size", uint64_t(s.n_v * s.dk * s.dv)}};
}
void put_layout(StateWriter& w, const Hparams& h, const Ssm& s, const std::vector<bool>& recurrent) {
    for (const auto& [what, x] : state_layout(h, s, recurrent)) w.put_u64(x);
}
void expect_layout(StateReader& r, const Hparams& h, const Ssm& s, const std::vector<bool>& recurrent) {
    for (const auto& [what, x] : state_layout(h, s, recurrent)) r.expect_u64(what, x);
}

void Qwen35Moe::attn_inputs(const Layer& L, const float* qg, float* q, float* gate, float* k, int64_t pos) const {
    const Hparams& h = hp_;
    const int64_t hd = h.head_dim;
    for (int64_t hh = 0; hh < h.n_head; ++hh) {  // Qcur_full -> Qcur, gate
        const float* src = qg + hh * 2 * hd;
        std::copy(src, src + hd, q + hh * hd);
        std::copy(src + hd, src + 2 * hd, gate + hh * hd);
        rmsnorm(q + hh * hd, q + hh * hd, L.q_norm.data(), hd, h.rms_eps);  // Qcur_normed
    }
    for (int64_t hh = 0; hh < h.n_head_kv; ++hh)  // Kcur_normed
        rmsnorm(k + hh * hd, k + hh * hd, L.k_norm.data(), hd, h.rms_eps);
    rope_neox(q, h.n_head, hd, h.n_rot, pos, h.rope_base);
    rope_neox(k, h.n_head_kv, hd, h.n_rot, pos, h.rope_base);
}

// y = Wo (attention(q, K, V) * sigmoid(gate))
void Qwen35Moe::attention_block(const Layer& L, LayerKv& kv, int64_t pos) {
    const Hparams& h = hp_;
    const float* qg = qg_.data();
    float *k = k_.data(), *v = v_.data();
    if (L.wqkv_attn.data) {  // one matrix: rows [q and gate | k | v]
        run_shared_input({{L.wqkv_attn, qkv_attn_.data()}});
        qg = qkv_attn_.data();
        k = qkv_attn_.data() + qg_.size();
        v = k + k_.size();
    } else {
        run_shared_input({{L.wq, qg_.data()}, {L.wk, k_.data()}, {L.wv, v_.data()}});
    }
    attn_inputs(L, qg, q_.data(), gate_.data(), k, pos);
    std::copy(k, k + k_.size(), kv.k.begin() + pos * int64_t(k_.size()));
    std::copy(v, v + v_.size(), kv.v.begin() + pos * int64_t(v_.size()));
    attention_one(att_.data(), q_.data(), kv, pos + 1, h.n_head, h.n_head_kv, h.head_dim, h.head_dim_v,
                  scores_.data(), *pool_);
    for (size_t i = 0; i < att_.size(); ++i) att_[i] *= sigmoid(gate_[i]);  // attn_gated
    matvec(L.wo, att_.data(), y_.data(), *pool_);
}

void Qwen35Moe::split_ba(const float* raw, float* b, float* a) const {
    const int64_t r = ssm_.n_v / ssm_.n_k;  // value heads per key head g: g r .. g r + r - 1
    for (int64_t g = 0; g < ssm_.n_k; ++g)
        for (int64_t j = 0; j < r; ++j) {
            b[g * r + j] = raw[g * 2 * r + j];
            a[g * r + j] = raw[g * 2 * r + r + j];
        }
}

void Qwen35Moe::delta_inputs(const Layer& L, float* qkv, float* b, float* a) const {
    const Ssm& s = ssm_;
    for (int64_t c = 0; c < s.conv_dim(); ++c) qkv[c] = silu(qkv[c]);  // conv_output_silu
    float* q = qkv;
    float* k = q + s.key_dim();
    const float qscale = 1.0f / std::sqrt(float(s.dk));
    for (int64_t g = 0; g < s.n_k; ++g) {
        l2norm(q + g * s.dk, s.dk, kL2Eps);
        l2norm(k + g * s.dk, s.dk, kL2Eps);
        for (int64_t i = 0; i < s.dk; ++i) q[g * s.dk + i] *= qscale;
    }
    for (int64_t hh = 0; hh < s.n_v; ++hh) {
        b[hh] = sigmoid(b[hh]);                                          // beta_sigmoid
        const float t = a[hh] + L.dt_bias[size_t(hh)];                   // a_softplus
        const float sp = t > 20.0f ? t : std::log1p(std::exp(t));
        a[hh] = std::exp(L.ssm_a[size_t(hh)] * sp);                      // decay = exp(gate)
    }
}

void Qwen35Moe::delta_head(const Layer& L, float* S, float* o, const float* qkv, float decay, float beta,
                           const float* z, int64_t hh, float* scratch) const {
    const Ssm& s = ssm_;
    const int64_t kh = s.key_head(hh);
    const float* q = qkv + kh * s.dk;
    const float* k = qkv + s.key_dim() + kh * s.dk;
    const float* v = qkv + 2 * s.key_dim() + hh * s.dv;
    gated_delta_step(S, o, q, k, v, decay, beta, s.dk, s.dv, scratch);
    rmsnorm(o, o, L.ssm_norm.data(), s.dv, hp_.rms_eps);  // gated norm: rmsnorm(o) w silu(z)
    for (int64_t j = 0; j < s.dv; ++j) o[j] *= silu(z[j]);
}

// y = Wout gated_rmsnorm(delta rule over the conv of Wqkv hn)
void Qwen35Moe::delta_net_block(const Layer& L, Recurrent& st) {
    const Ssm& s = ssm_;
    const int64_t nv = s.n_v;
    float* b = ba_.data();
    float* a = ba_.data() + nv;
    if (L.wba.data) {
        run_shared_input({{L.wqkv, qkv_.data()}, {L.wz, z_.data()}, {L.wba, ba_raw_.data()}});
        split_ba(ba_raw_.data(), b, a);
    } else {
        run_shared_input({{L.wqkv, qkv_.data()}, {L.wz, z_.data()}, {L.wb, b}, {L.wa, a}});
    }
    // conv_output_silu (conv_dim) = silu(conv1d over the last `kernel` qkv inputs)
    conv1d_step(conv_out_.data(), qkv_.data(), st.conv.data(), L.conv.data(), s.conv_dim(), s.kernel);
    delta_inputs(L, conv_out_.data(), b, a);
    // Heads are independent: each updates its own (dk, dv) state.
    const int64_t grain = s.dk * s.dv * nv < (1 << 16) ? nv : 1;
    pool_->parallel_for(nv, grain, [&](int64_t h0, int64_t h1, int) {
        for (int64_t hh = h0; hh < h1; ++hh)
            delta_head(L, &st.S[size_t(hh * s.dk * s.dv)], &o_[size_t(hh * s.dv)], conv_out_.data(), a[hh], b[hh],
                       &z_[size_t(hh * s.dv)], hh, &delta_scratch_[size_t(hh * s.dv)]);
    });
    matvec(L.ssm_out, o_.data(), y_.data(), *pool_);  // linear_attn_out
}

// y = sum over the top-k experts of w_e * down_e(silu(gate_e hn) * up_e hn)
//     + sigmoid(w_sh . hn) * down_sh(silu(gate_sh hn) * up_sh hn)
void Qwen35Moe::moe_block(int64_t il, const Layer& L) {
    const Hparams& h = hp_;
    float sh_logit = 0.0f;
    if (L.sh_gate.data)
        run_shared_input({{L.router, router_logits_.data()}, {L.sh_gate, sh_g_.data()}, {L.sh_up, sh_u_.data()},
                          {L.sh_router, &sh_logit}});
    else
        run_shared_input({{L.router, router_logits_.data()}});
    router_topk_softmax(router_logits_.data(), h.n_expert, top_k_, true, ids_.data(), weights_.data());
    // Streaming: guess the next layer's experts from this layer's input (as qwen3moe does; every
    // layer here is MoE with the same softmax top-k routing) so their reads start now.
    MoeFfn::Guess guess{il + 1, guess_ids_.data(), top_k_};
    const bool do_guess = il + 1 < h.n_layer && experts_->wants_prefetch();
    if (do_guess) {
        matvec(layers_[size_t(il + 1)].router, hn_.data(), router_logits_.data(), *pool_);
        router_topk_softmax(router_logits_.data(), h.n_expert, top_k_, false, guess_ids_.data(), guess_w_.data());
    }
    // experts compute as their reads complete (streaming); all at once when mapped
    moe_->run_streamed(*experts_, il, ids_.data(), weights_.data(), top_k_, h.n_expert, hn_.data(), y_.data(),
                       *pool_, do_guess ? &guess : nullptr);  // ffn_moe_out
    if (!L.sh_gate.data) return;
    for (int64_t i = 0; i < n_ff_sh_; ++i) sh_g_[size_t(i)] = silu(sh_g_[size_t(i)]) * sh_u_[size_t(i)];
    matvec(L.sh_down, sh_g_.data(), sh_y_.data(), *pool_);  // ffn_shexp
    const float g = sigmoid(sh_logit);                      // shared_expert_gate_sigmoid
    for (int64_t i = 0; i < h.n_embd; ++i) y_[size_t(i)] += g * sh_y_[size_t(i)];
}

// Several matrices applied to hn in one parallel loop.
void Qwen35Moe::run_shared_input(std::initializer_list<std::pair<WeightView, float*>> mats) {
    shared_.run(hn_.data(), hp_.n_embd, mats, *pool_);
}

void Qwen35Moe::load_weights() {
    const gguf::File& f = *file_;
    const Hparams& h = hp_;
    const Ssm& s = ssm_;
    auto blk = [](int64_t il, const char* name) { return "blk." + std::to_string(il) + "." + name; };
    auto vec = [&](int64_t il, const char* name, int64_t n) {
        return tensor_f32(f, f.require_tensor(blk(il, name), {n}));
    };
    auto mat = [&](int64_t il, const char* name, int64_t cols, int64_t rows) {
        return matrix_view(f, f.require_tensor(blk(il, name), {cols, rows}));
    };

    tok_embd_ = &f.require_tensor("token_embd.weight", {h.n_embd, h.n_vocab});
    output_norm_ = tensor_f32(f, f.require_tensor("output_norm.weight", {h.n_embd}));
    const gguf::TensorInfo* out = f.find_tensor("output.weight");  // absent: tied to the embedding
    output_ = matrix_view(f, out ? f.require_tensor("output.weight", {h.n_embd, h.n_vocab}) : *tok_embd_);

    for (int64_t il = 0; il < h.n_layer; ++il) {
        Layer& L = layers_[size_t(il)];
        L.attn_norm = vec(il, "attn_norm.weight", h.n_embd);
        L.post_norm = vec(il, "post_attention_norm.weight", h.n_embd);
        if (L.recurrent) {
            const int64_t vd = s.value_dim();
            L.wqkv = mat(il, "attn_qkv.weight", h.n_embd, s.conv_dim());
            L.wz = mat(il, "attn_gate.weight", h.n_embd, vd);
            if (h.arch == "qwen3next") {
                L.wba = mat(il, "ssm_ba.weight", h.n_embd, 2 * s.n_v);
            } else {
                L.wb = mat(il, "ssm_beta.weight", h.n_embd, s.n_v);
                L.wa = mat(il, "ssm_alpha.weight", h.n_embd, s.n_v);
            }
            L.conv = tensor_f32(f, f.require_tensor(blk(il, "ssm_conv1d.weight"), {s.kernel, s.conv_dim()}));
            L.dt_bias = vec(il, "ssm_dt.bias", s.n_v);
            L.ssm_a = vec(il, "ssm_a", s.n_v);
            L.ssm_norm = vec(il, "ssm_norm.weight", s.dv);
            L.ssm_out = mat(il, "ssm_out.weight", vd, h.n_embd);
        } else {
            const int64_t nq = 2 * h.n_head * h.head_dim, nk = h.n_head_kv * h.head_dim;
            if (f.find_tensor(blk(il, "attn_qkv.weight"))) {
                L.wqkv_attn = mat(il, "attn_qkv.weight", h.n_embd, nq + 2 * nk);
            } else {
                L.wq = mat(il, "attn_q.weight", h.n_embd, nq);
                L.wk = mat(il, "attn_k.weight", h.n_embd, nk);
                L.wv = mat(il, "attn_v.weight", h.n_embd, nk);
            }
            L.wo = mat(il, "attn_output.weight", h.n_head * h.head_dim_v, h.n_embd);
            L.q_norm = vec(il, "attn_q_norm.weight", h.head_dim);
            L.k_norm = vec(il, "attn_k_norm.weight", h.head_dim);
        }
        L.router = mat(il, "ffn_gate_inp.weight", h.n_embd, h.n_expert);
        if (f.find_tensor(blk(il, "ffn_gate_up_exps.weight"))) {
            L.experts.gate_up_exps = &f.require_tensor(blk(il, "ffn_gate_up_exps.weight"), {h.n_embd, 2 * h.n_ff_exp, h.n_expert});
        } else {
            L.experts.gate_exps = &f.require_tensor(blk(il, "ffn_gate_exps.weight"), {h.n_embd, h.n_ff_exp, h.n_expert});
            L.experts.up_exps = &f.require_tensor(blk(il, "ffn_up_exps.weight"), {h.n_embd, h.n_ff_exp, h.n_expert});
        }
        L.experts.down_exps = &f.require_tensor(blk(il, "ffn_down_exps.weight"), {h.n_ff_exp, h.n_embd, h.n_expert});
        if (n_ff_sh_ > 0) {
            L.sh_gate = mat(il, "ffn_gate_shexp.weight", h.n_embd, n_ff_sh_);
            L.sh_up = mat(il, "ffn_up_shexp.weight", h.n_embd, n_ff_sh_);
            L.sh_down = mat(il, "ffn_down_shexp.weight", n_ff_sh_, h.n_embd);
            L.sh_router = mat(il, "ffn_gate_inp_shexp.weight", h.n_embd, 1);
        }
    }
    for (const gguf::TensorInfo& t : f.tensors())
        if (!type_info(t.type).has_kernels)
            throw Error(f.path() + ": tensor '" + t.name + "' has type " + type_name(t.type) +
                        ", which sluice cannot compute yet");
    std::vector<MoeTensors> moe;
    for (const Layer& L : layers_) moe.push_back(L.experts);
    experts_ = make_expert_source(f, std::move(moe), h.n_embd, h.n_ff_exp, opt_);
}

}  // namespace qwen35

namespace {

// Which layers are recurrent: attention.recurrent_layers when present (the converter writes it from
// HF's layer_types), else every full_attention_interval-th layer is full attention.
std::vector<bool> recurrent_layers(const gguf::File& f, const std::string& p, int64_t n_layer) {
    std::vector<bool> rec(static_cast<size_t>(n_layer));
    if (const gguf::Value* v = f.find(p + "attention.recurrent_layers")) {
        const gguf::Array& a = f.get_array(p + "attention.recurrent_layers");
        if (int64_t(a.items.size()) < n_layer)
            throw Error(f.path() + ": " + p + "attention.recurrent_layers has " + std::to_string(a.items.size()) +
                        " entries; expected " + std::to_string(n_layer));
        for (int64_t i = 0; i < n_layer; ++i) {
            const gguf::Value& x = a.items[size_t(i)];
            if (x.type == gguf::ValueType::BOOL) rec[size_t(i)] = std::get<bool>(x.v);
            else if (x.v.index() == 0) rec[size_t(i)] = std::get<uint64_t>(x.v) != 0;
            else if (x.v.index() == 1) rec[size_t(i)] = std::get<int64_t>(x.v) != 0;
            else throw Error(f.path() + ": " + p + "attention.recurrent_layers is " + gguf::describe_type(*v) +
                             "; expected an array of bool");
        }
        return rec;
    }
    const int64_t interval = int64_t(f.get_uint_or(p + "full_attention_interval", 4));
    if (interval < 1) throw Error(f.path() + ": " + p + "full_attention_interval must be at least 1");
    for (int64_t i = 0; i < n_layer; ++i) rec[size_t(i)] = (i + 1) % interval != 0;
    return rec;
}

}  // namespace

namespace qwen35 {

Config read_config(const gguf::File& f, const ModelOptions& opt) {
    Hparams h;
    h.arch = f.get_string("general.architecture");
    const std::string p = h.arch + ".";
    auto u = [&](const std::string& key) { return int64_t(f.get_uint(p + key)); };
    auto bad = [&](const std::string& what) { return Error(f.path() + ": " + what); };
    h.n_embd = u("embedding_length");
    // MTP (next-token prediction) blocks are counted in block_count but are not part of the forward.
    h.n_layer = u("block_count") - int64_t(f.get_uint_or(p + "nextn_predict_layers", 0));
    h.n_head = u("attention.head_count");
    h.n_head_kv = int64_t(f.get_uint_or(p + "attention.head_count_kv", uint64_t(h.n_head)));
    h.n_ctx_train = u("context_length");
    h.rms_eps = float(f.get_float(p + "attention.layer_norm_rms_epsilon"));
    h.rope_base = float(f.get_float_or(p + "rope.freq_base", 10000.0));
    if (h.n_layer < 1) throw bad("block_count leaves no layers");
    if (h.n_head <= 0 || h.n_head_kv <= 0 || h.n_head % h.n_head_kv != 0)
        throw bad("attention.head_count " + std::to_string(h.n_head) + " must be a positive multiple of head_count_kv " +
                  std::to_string(h.n_head_kv));
    h.head_dim = int64_t(f.get_uint_or(p + "attention.key_length", uint64_t(h.n_embd / h.n_head)));
    h.head_dim_v = int64_t(f.get_uint_or(p + "attention.value_length", uint64_t(h.head_dim)));
    if (h.head_dim_v != h.head_dim)  // the output gate is sliced from q_proj with the key head size
        throw bad("attention.value_length " + std::to_string(h.head_dim_v) + " differs from key_length " +
                  std::to_string(h.head_dim));
    h.n_rot = int64_t(f.get_uint_or(p + "rope.dimension_count", uint64_t(h.head_dim)));
    if (h.n_rot <= 0 || h.n_rot > h.head_dim || h.n_rot % 2)
        throw bad("rope.dimension_count " + std::to_string(h.n_rot) + " must be even and at most the head size " +
                  std::to_string(h.head_dim));
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    if (!embd) throw bad("missing tensor 'token_embd.weight'");
    h.n_vocab = embd->ne[1];

    h.n_expert = u("expert_count");
    h.n_expert_used = u("expert_used_count");
    h.n_ff_exp = u("expert_feed_forward_length");
    if (h.n_expert <= 0 || h.n_expert_used <= 0 || h.n_expert_used > h.n_expert)
        throw bad("expert_used_count " + std::to_string(h.n_expert_used) + " must be between 1 and expert_count " +
                  std::to_string(h.n_expert));
    const int64_t top_k = opt.experts_per_token > 0 ? opt.experts_per_token : h.n_expert_used;
    if (top_k > h.n_expert)
        throw Error("--experts-per-token " + std::to_string(top_k) + " is more than the model's " +
                    std::to_string(h.n_expert) + " experts");
    const int64_t n_ff_sh = int64_t(f.get_uint_or(p + "expert_shared_feed_forward_length", 0));

    Ssm s;
    s.kernel = u("ssm.conv_kernel");
    s.dk = u("ssm.state_size");
    s.n_k = u("ssm.group_count");
    s.n_v = u("ssm.time_step_rank");
    const int64_t inner = u("ssm.inner_size");
    s.tiled = h.arch != "qwen3next";
    if (s.kernel < 1 || s.dk < 1 || s.n_k < 1 || s.n_v < 1 || s.n_v % s.n_k != 0 || inner % s.n_v != 0)
        throw bad("ssm shapes (conv_kernel " + std::to_string(s.kernel) + ", state_size " + std::to_string(s.dk) +
                  ", group_count " + std::to_string(s.n_k) + ", time_step_rank " + std::to_string(s.n_v) +
                  ", inner_size " + std::to_string(inner) +
                  ") must be positive, time_step_rank a multiple of group_count and inner_size of time_step_rank");
    s.dv = inner / s.n_v;
    std::vector<bool> rec = recurrent_layers(f, p, h.n_layer);
    return {std::move(h), s, std::move(rec), n_ff_sh, top_k};
}

}  // namespace qwen35

std::unique_ptr<Model> load_qwen35moe(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    qwen35::Config c = qwen35::read_config(*file, opt);
    return std::make_unique<qwen35::Qwen35Moe>(std::move(file), opt, std::move(c));
}

}  // namespace sluice
