// DeepSeek-V2/V3 and Kimi K2/K2.5 (`deepseek2`): Multi-head Latent Attention and sigmoid-routed MoE.
//
//   x = token_embd[token]
//   per layer:  h = rmsnorm(x)
//               q = Wq_b rmsnorm(Wq_a h)   (or Wq h)      per head [q_nope (n_nope) | q_pe (n_rot)]
//               [c | k_pe] = Wkv_a h ;  c = rmsnorm(c)     the latent (kv_lora) and one rope key for all heads
//               rope(q_pe), rope(k_pe)                     pairs (2i, 2i+1), YaRN frequencies
//               cache[pos] = [c | k_pe]                    kv_lora + n_rot floats per token, not K and V
//               per head h:  q_abs = Wk_b[h] q_nope        (kv_lora) : q_nope . (Wk_b[h]^T c) = q_abs . c
//                            s_t = [q_abs | q_pe] . [c_t | k_pe_t] * kq_scale   (one dot per cache row)
//                            o_h = Wv_b[h] (softmax(s) . c)
//               x += Wo o
//               h = rmsnorm(x) ; x += SwiGLU(h) for the first leading_dense_block_count layers,
//                                     moe(h) + shared_experts(h) after them
//   logits = Wout rmsnorm(x)
//
// This is the absorbed form of MLA (llama.cpp's, from DeepSeek-V2's paper): keys and values are never
// expanded, so the cache holds 576 floats per token and layer for V3 instead of 2 x 128 x 128+.
//
// moe(h): p = sigmoid(router h) (softmax when the file says so, e.g. DeepSeek-V2); experts are chosen by
// p + exp_probs_b within the expert_group_used_count groups whose two best experts sum highest (V2: whose
// best is highest); their weights are p (not the biased score), normalised when expert_weights_norm,
// times expert_weights_scale.
//
// Prompts run layer-major (forward_batch, deepseek2_prefill.cpp): each layer over a whole chunk of tokens,
// the projections as matrix products, each routed expert fetched once per chunk for all its tokens.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "engine/models/deepseek2.h"

#include "engine/error.h"
#include "engine/state.h"
#include "engine/stats_recorder.h"
#include "engine/tensor/threadpool.h"

namespace sluice::ds2 {

namespace {

// The rope frequencies and attention scale the metadata asks for. Matches HF transformers'
// DeepseekV3 (_compute_yarn_parameters + the attention's softmax_scale); llama.cpp computes the same for
// every released checkpoint (all set mscale == mscale_all_dim) but ignores yarn_beta_fast/slow, which
// Kimi K2 sets to 1.
void rope_params(const gguf::File& f, const std::string& p, const Hparams& h, MlaParams& m) {
    const int64_t half = h.n_rot / 2;
    m.inv_freq.resize(size_t(half));
    for (int64_t i = 0; i < half; ++i) m.inv_freq[size_t(i)] = std::pow(double(h.rope_base), -2.0 * double(i) / double(h.n_rot));
    m.kq_scale = float(1.0 / std::sqrt(double(h.head_dim)));

    const std::string type = f.get_string_or(p + "rope.scaling.type", "none");
    const double factor = f.get_float_or(p + "rope.scaling.factor", 0.0);
    if (type == "none" || factor <= 1.0) return;
    if (type == "linear") {
        for (double& w : m.inv_freq) w /= factor;
        return;
    }
    if (type != "yarn") throw Error(f.path() + ": rope.scaling.type '" + type + "' is not supported for deepseek2");

    // Pairs rotating fewer than beta_slow times over the original context are interpolated (slowed by
    // `factor`), those rotating more than beta_fast times keep their speed, a linear ramp in between.
    const double orig_ctx = double(f.get_uint_or(p + "rope.scaling.original_context_length", uint64_t(h.n_ctx_train)));
    const double beta_fast = f.get_float_or(p + "rope.scaling.yarn_beta_fast", 32.0);
    const double beta_slow = f.get_float_or(p + "rope.scaling.yarn_beta_slow", 1.0);
    const double ext = f.get_float_or(p + "rope.scaling.yarn_ext_factor", 1.0);
    auto corr_dim = [&](double rotations) {
        return double(h.n_rot) * std::log(orig_ctx / (rotations * 2.0 * M_PI)) / (2.0 * std::log(double(h.rope_base)));
    };
    const double low = std::max(0.0, std::floor(corr_dim(beta_fast)));
    const double high = std::min(double(h.n_rot - 1), std::ceil(corr_dim(beta_slow)));
    for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((double(i) - low) / std::max(0.001, high - low), 0.0, 1.0);
        const double keep = (1.0 - ramp) * ext;  // 1: extrapolate (original speed), 0: interpolate
        double& w = m.inv_freq[size_t(i)];
        w = w / factor * (1.0 - keep) + w * keep;
    }
    // YaRN's attention temperature. The converter stores 0.1 * mscale_all_dim as yarn_log_multiplier
    // and drops mscale; DeepSeek scales the softmax by mscale(factor, mscale_all_dim)^2 and the rope by
    // mscale(factor, mscale) / mscale(factor, mscale_all_dim), which is 1 when the two are equal.
    auto mscale = [&](double m_all) { return 0.1 * m_all * std::log(factor) + 1.0; };
    if (f.find(p + "rope.scaling.yarn_log_multiplier")) {
        const double m_all = f.get_float(p + "rope.scaling.yarn_log_multiplier") / 0.1;
        if (m_all != 0.0) m.kq_scale *= float(mscale(m_all) * mscale(m_all));
        m.rope_mscale = 1.0f;
    } else {
        m.rope_mscale = float(mscale(1.0));  // HF's default attention factor without mscale keys
    }
    m.rope_mscale = float(f.get_float_or(p + "rope.scaling.yarn_attn_factor", m.rope_mscale));
}

}  // namespace

DeepSeek2::DeepSeek2(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, MlaParams mp, int64_t top_k)
    : Model(std::move(file), opt, std::move(hp)), opt_(opt), m_(std::move(mp)), top_k_(top_k) {
    load_weights();
    const Hparams& h = hp_;
    const int64_t qk = m_.n_nope + h.n_rot;
    row_ = m_.kv_lora + h.n_rot;
    cache_.resize(size_t(h.n_layer));
    for (auto& c : cache_) c.assign(size_t(n_ctx_ * row_), 0.0f);
    x_.resize(size_t(h.n_embd));
    hn_.resize(size_t(h.n_embd));
    y_.resize(size_t(h.n_embd));
    y2_.resize(size_t(h.n_embd));
    qa_.resize(size_t(std::max<int64_t>(m_.q_lora, 1)));
    q_.resize(size_t(h.n_head * qk));
    kva_.resize(size_t(row_));
    qcat_.resize(size_t(h.n_head * row_));
    lat_.resize(size_t(h.n_head * m_.kv_lora));
    o_.resize(size_t(h.n_head * h.head_dim_v));
    head_act_.resize(size_t(h.n_head));
    cs_.resize(size_t(h.n_rot));
    gate_.resize(size_t(std::max(h.n_ff, m_.n_shared * h.n_ff_exp)));
    up_.resize(gate_.size());
    router_logits_.resize(size_t(h.n_expert));
    ids_.resize(size_t(top_k_));
    weights_.resize(size_t(top_k_));
    guess_ids_.resize(size_t(top_k_));
    guess_w_.resize(size_t(top_k_));
    logits_.resize(size_t(h.n_vocab));
    if (h.n_expert > 0) moe_ = std::make_unique<MoeFfn>(h.n_embd, h.n_ff_exp, top_k_);
    if (prefill_chunk() > 1) reserve_batch(std::min(prefill_chunk(), n_ctx_));
}

const float* DeepSeek2::forward(int32_t token) {
    check_token(token);
    TokenScope stats(*this);
    const Hparams& h = hp_;
    const int64_t pos = n_past_;
    dequantize_row(tok_embd_->type, file_->data(*tok_embd_) + token * row_bytes(tok_embd_->type, h.n_embd),
                   x_.data(), h.n_embd);
    rope_angles(pos, cs_.data());

    for (int64_t il = 0; il < h.n_layer; ++il) {
        const Layer& L = layers_[size_t(il)];
        attention_block(il, L, pos);
        rmsnorm(hn_.data(), x_.data(), L.ffn_norm.data(), h.n_embd, h.rms_eps);  // ffn_norm
        if (il < m_.n_dense_lead)
            dense_ffn_block(L);
        else
            moe_block(il, L);
        for (int64_t i = 0; i < h.n_embd; ++i) x_[size_t(i)] += y_[size_t(i)];
    }

    rmsnorm(hn_.data(), x_.data(), output_norm_.data(), h.n_embd, h.rms_eps);
    matvec(output_, hn_.data(), logits_.data(), *pool_);
    ++n_past_;
    return logits_.data();
}

// The latent cache: per layer, n_past rows of [c (kv_lora) | k_pe (n_rot)].
std::vector<uint8_t> DeepSeek2::save_state() const {
    return save_latent(hp_, row_, n_past_, [&](int64_t il) { return cache_[size_t(il)].data(); });
}

void DeepSeek2::load_state(std::span<const uint8_t> blob) {
    reset();
    n_past_ = load_latent(blob, hp_, row_, n_ctx_, [&](int64_t il, std::span<const float> rows) {
        std::copy(rows.begin(), rows.end(), cache_[size_t(il)].data());
    });
}

std::vector<uint8_t> save_latent(const Hparams& h, int64_t row, int64_t n_past, const std::function<const float*(int64_t)>& rows) {
    StateWriter w(h.arch);
    w.put_u64(uint64_t(h.n_layer));
    w.put_u64(uint64_t(row));
    w.put_u64(uint64_t(n_past));
    for (int64_t il = 0; il < h.n_layer; ++il) w.put_floats(rows(il), size_t(n_past * row));
    return w.take();
}

int64_t load_latent(std::span<const uint8_t> blob, const Hparams& h, int64_t row, int64_t n_ctx,
                    const std::function<void(int64_t, std::span<const float>)>& put) {
    StateReader r(blob, h.arch);
    r.expect_u64("layer count", uint64_t(h.n_layer));
    r.expect_u64("latent row width", uint64_t(row));
    const uint64_t n = r.get_u64();
    if (n > uint64_t(n_ctx))
        throw Error("state blob holds " + std::to_string(n) + " tokens; the context is " + std::to_string(n_ctx));
    std::vector<float> tmp(size_t(n) * size_t(row));
    for (int64_t il = 0; il < h.n_layer; ++il) {
        r.get_floats(tmp.data(), tmp.size());
        put(il, tmp);
    }
    r.expect_end();
    return int64_t(n);
}

// This position's rotation of each pair: cs (n_rot) = cos, sin of pair 0, of pair 1, ...
void DeepSeek2::rope_angles(int64_t pos, float* cs) const {
    for (int64_t i = 0; i < hp_.n_rot / 2; ++i) {
        const double theta = double(pos) * m_.inv_freq[size_t(i)];
        cs[2 * i] = float(std::cos(theta)) * m_.rope_mscale;
        cs[2 * i + 1] = float(std::sin(theta)) * m_.rope_mscale;
    }
}

// Rotates pairs (2i, 2i+1) of each head's rope part (x + head * stride, n_rot floats) by the angles cs.
// llama.cpp's "normal" rope; HF's interleaved DeepSeek rope permutes the dims of q and k alike, so the
// dot products are the same.
void DeepSeek2::rope(float* x, int64_t n_heads, int64_t stride, const float* cs) const {
    for (int64_t hh = 0; hh < n_heads; ++hh) {
        float* v = x + hh * stride;
        for (int64_t i = 0; i < hp_.n_rot; i += 2) {
            const float c = cs[i], s = cs[i + 1], a = v[i], b = v[i + 1];
            v[i] = a * c - b * s;
            v[i + 1] = a * s + b * c;
        }
    }
}

// A token's cache row (Kcur) [rmsnorm(c) | rope(k_pe)] from kva = Wkv_a h = [c | k_pe].
void DeepSeek2::cache_row(float* row, const float* kva, const Layer& L, const float* cs) const {
    const int64_t kvl = m_.kv_lora;
    rmsnorm(row, kva, L.kv_a_norm.data(), kvl, hp_.rms_eps);
    std::copy(kva + kvl, kva + row_, row + kvl);
    rope(row + kvl, 1, 0, cs);
}

// Each head's q_pe of q (n_head, n_nope + n_rot), roped, into the tail of its row of qcat (n_head, row_).
void DeepSeek2::q_pe_into(float* qcat, const float* q, const float* cs) const {
    const int64_t qk = m_.n_nope + hp_.n_rot;
    for (int64_t hh = 0; hh < hp_.n_head; ++hh)
        std::copy(q + hh * qk + m_.n_nope, q + (hh + 1) * qk, qcat + hh * row_ + m_.kv_lora);
    rope(qcat + m_.kv_lora, hp_.n_head, row_, cs);
}

// The softmax scale of the query at pos: llama 4-style temperature tuning (mistral-large files) on top.
float DeepSeek2::q_scale(int64_t pos) const {
    if (m_.temp_scale == 0.0f) return m_.kq_scale;
    return m_.kq_scale * float(std::log(std::floor(double(pos) / double(m_.temp_length)) + 1.0) * m_.temp_scale + 1.0);
}

// Legacy kv_b holds k_nope's rows as (n_nope, kv_lora) per head (`rows`, dequantized):
// q_abs (kv_lora) = sum_d q_nope[d] * rows[d].
void DeepSeek2::absorb_legacy(const float* rows, const float* q_nope, float* q_abs) const {
    const int64_t kvl = m_.kv_lora;
    std::fill(q_abs, q_abs + kvl, 0.0f);
    for (int64_t d = 0; d < m_.n_nope; ++d) {
        const float qd = q_nope[d];
        const float* r = rows + d * kvl;
        for (int64_t c = 0; c < kvl; ++c) q_abs[c] += qd * r[c];
    }
}

void DeepSeek2::attention_block(int64_t il, const Layer& L, int64_t pos) {
    const Hparams& h = hp_;
    const int64_t kvl = m_.kv_lora;
    ScopedTime t(rec_, StatsRecorder::Part::Attention);
    rmsnorm(hn_.data(), x_.data(), L.attn_norm.data(), h.n_embd, h.rms_eps);  // attn_norm
    if (m_.q_lora > 0) {
        run_shared_input({{L.wq_a, qa_.data()}, {L.wkv_a, kva_.data()}});   // q_a, kv_cmpr_pe
        rmsnorm(qa_.data(), qa_.data(), L.q_a_norm.data(), m_.q_lora, h.rms_eps);
        matvec(L.wq_b, qa_.data(), q_.data(), *pool_);                      // q
    } else {
        run_shared_input({{L.wq, q_.data()}, {L.wkv_a, kva_.data()}});
    }
    cache_row(cache_[size_t(il)].data() + pos * row_, kva_.data(), L, cs_.data());  // Kcur = [kv_cmpr | k_pe]
    q_pe_into(qcat_.data(), q_.data(), cs_.data());                          // q_pe
    absorb_k(L);                                                            // q_nope_absorbed
    mla_attention(il, pos + 1, q_scale(pos));                                // lat_ (n_head, kv_lora)

    std::vector<MatvecJob> jobs;                                            // o_h = Wv_b[h] lat_h
    for (int64_t hh = 0; hh < h.n_head; ++hh) {
        const WeightView& w = L.v_b[size_t(hh)];
        jobs.push_back({w, head_act_[size_t(hh)].prepare(w.type, &lat_[size_t(hh * kvl)], kvl), &o_[size_t(hh * h.head_dim_v)]});
    }
    matvec_jobs(jobs.data(), int64_t(jobs.size()), *pool_);
    matvec(L.wo, o_.data(), y_.data(), *pool_);                              // attn_out
    for (int64_t i = 0; i < h.n_embd; ++i) x_[size_t(i)] += y_[size_t(i)];
}

// q_abs[h] (kv_lora) = Wk_b[h] (kv_lora, n_nope) @ q_nope[h], into the head's row of qcat_.
void DeepSeek2::absorb_k(const Layer& L) {
    const Hparams& h = hp_;
    const int64_t qk = m_.n_nope + h.n_rot, kvl = m_.kv_lora;
    if (!m_.legacy_kv_b) {
        std::vector<MatvecJob> jobs;
        for (int64_t hh = 0; hh < h.n_head; ++hh) {
            const WeightView& w = L.k_b[size_t(hh)];
            jobs.push_back({w, head_act_[size_t(hh)].prepare(w.type, &q_[size_t(hh * qk)], m_.n_nope), &qcat_[size_t(hh * row_)]});
        }
        matvec_jobs(jobs.data(), int64_t(jobs.size()), *pool_);
        return;
    }
    pool_->parallel_for(h.n_head, 1, [&](int64_t h0, int64_t h1, int) {
        std::vector<float> rows(static_cast<size_t>(m_.n_nope * kvl));
        for (int64_t hh = h0; hh < h1; ++hh) {
            const WeightView& w = L.k_b[size_t(hh)];
            dequantize_row(w.type, w.data, rows.data(), m_.n_nope * kvl);
            absorb_legacy(rows.data(), &q_[size_t(hh * qk)], &qcat_[size_t(hh * row_)]);
        }
    });
}

// Attention of every head over the latent cache (MQA with one 576-wide key per token for V3):
// lat_[h] = sum_t softmax_t(s) c_t with s_t = [q_abs[h] | q_pe[h]] . [c_t | k_pe_t] * scale.
void DeepSeek2::mla_attention(int64_t il, int64_t n_tokens, float scale) {
    attention_chunk(mla_args(il, qcat_.data(), lat_.data(), n_tokens - 1, 1, scale, nullptr), *pool_);
}

// n_q queries at pos0.. as attention_chunk sees them: q rows (n_q, n_head, row_); out rows of kv_lora
// floats at the stride of `out`'s layout (lat_: (n_head, kv_lora); prefill writes over the q rows).
AttnChunk DeepSeek2::mla_args(int64_t il, const float* q, float* out, int64_t pos0, int64_t n_q, float scale,
                              const float* q_scales) const {
    const int64_t nh = hp_.n_head, kvl = m_.kv_lora;
    const bool in_place = out == q;
    AttnChunk a{};
    a.q = q;
    a.q_row = nh * row_;
    a.q_head = row_;
    a.out = out;
    a.out_row = in_place ? nh * row_ : nh * kvl;
    a.out_head = in_place ? row_ : kvl;
    a.k = a.v = cache_[size_t(il)].data();
    a.k_stride = a.v_stride = row_;
    a.pos0 = pos0;
    a.n_q = n_q;
    a.n_head = nh;
    a.n_head_kv = 1;
    a.head_dim = row_;
    a.head_dim_v = kvl;
    a.scale = scale;
    a.q_scale = q_scales;
    return a;
}

// y = down(silu(gate hn) * up hn)
void DeepSeek2::dense_ffn_block(const Layer& L) {
    run_shared_input({{L.ffn_gate, gate_.data()}, {L.ffn_up, up_.data()}});
    for (int64_t i = 0; i < hp_.n_ff; ++i) gate_[size_t(i)] = silu(gate_[size_t(i)]) * up_[size_t(i)];
    matvec(L.ffn_down, gate_.data(), y_.data(), *pool_);
}

// y = routed experts + shared experts. The router and the shared gate/up read hn in one loop.
void DeepSeek2::moe_block(int64_t il, const Layer& L) {
    const Hparams& h = hp_;
    const int64_t n_sh = m_.n_shared * h.n_ff_exp;
    if (n_sh > 0)
        run_shared_input({{L.router, router_logits_.data()}, {L.sh_gate, gate_.data()}, {L.sh_up, up_.data()}});
    else
        run_shared_input({{L.router, router_logits_.data()}});        // ffn_moe_logits
    route(L, router_logits_.data(), ids_.data(), weights_.data(), rs_);  // ffn_moe_topk, ffn_moe_weights
    // Sources (and so the statistics' layers) count MoE layers only: layer il is il - n_dense_lead.
    // Streaming: guess the next layer's experts from this layer's input (its router and route(),
    // groups and bias included) so their reads start now.
    const int64_t src_layer = il - m_.n_dense_lead;
    MoeFfn::Guess guess{src_layer + 1, guess_ids_.data(), top_k_};
    const bool do_guess = il + 1 < h.n_layer && experts_->wants_prefetch();
    if (do_guess) {
        const Layer& next = layers_[size_t(il + 1)];
        matvec(next.router, hn_.data(), router_logits_.data(), *pool_);
        route(next, router_logits_.data(), guess_ids_.data(), guess_w_.data(), rs_);
    }
    // experts compute as their reads complete (streaming); all at once when mapped
    moe_->run_streamed(*experts_, src_layer, ids_.data(), weights_.data(), top_k_, h.n_expert, hn_.data(),
                       y_.data(), *pool_, do_guess ? &guess : nullptr);
    if (n_sh > 0) {                                                   // ffn_shexp
        for (int64_t i = 0; i < n_sh; ++i) gate_[size_t(i)] = silu(gate_[size_t(i)]) * up_[size_t(i)];
        matvec(L.sh_down, gate_.data(), y2_.data(), *pool_);
        for (int64_t i = 0; i < h.n_embd; ++i) y_[size_t(i)] += y2_[size_t(i)];
    }
}

void DeepSeek2::route(const Layer& L, const float* logits, int32_t* ids, float* weights, RouteScratch& s) const {
    route_experts(m_, L.probs_b, hp_.n_expert, top_k_, logits, ids, weights, s);
}

void route_experts(const MlaParams& m, const std::vector<float>& probs_b, int64_t n, int64_t top_k, const float* logits,
                   int32_t* ids, float* weights, RouteScratch& s) {
    std::vector<float>& p = s.p;
    p.assign(logits, logits + n);
    if (m.sigmoid)
        for (float& v : p) v = 1.0f / (1.0f + std::exp(-v));
    else
        softmax(p.data(), n);
    std::vector<float>& sel = s.sel;  // selection score: biased, then groups masked out
    sel = p;
    if (!probs_b.empty())
        for (int64_t e = 0; e < n; ++e) sel[size_t(e)] += probs_b[size_t(e)];
    // Keep the n_group_used best groups: by the sum of their two best scores (V3, noaux_tc), or by
    // their best score with softmax scores (V2's group_limited_greedy; llama.cpp uses the sum there too).
    if (m.n_group > 1) {
        const int64_t per = n / m.n_group;
        std::vector<std::pair<float, int64_t>> group(size_t(m.n_group));
        for (int64_t g = 0; g < m.n_group; ++g) {
            float best = -std::numeric_limits<float>::infinity(), second = best;
            for (int64_t e = g * per; e < (g + 1) * per; ++e) {
                const float v = sel[size_t(e)];
                if (v > best) second = best, best = v;
                else if (v > second) second = v;
            }
            group[size_t(g)] = {per > 1 && m.sigmoid ? best + second : best, g};
        }
        std::stable_sort(group.begin(), group.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        for (int64_t k = m.n_group_used; k < m.n_group; ++k) {
            float* b = &sel[size_t(group[size_t(k)].second * per)];
            std::fill(b, b + per, -std::numeric_limits<float>::infinity());
        }
    }
    std::vector<int32_t>& order = s.order;
    order.resize(size_t(n));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int32_t a, int32_t b) {
        return sel[size_t(a)] > sel[size_t(b)] || (sel[size_t(a)] == sel[size_t(b)] && a < b);
    });
    double sum = 0.0;
    for (int64_t k = 0; k < top_k; ++k) {
        ids[k] = order[size_t(k)];
        weights[k] = p[size_t(order[size_t(k)])];
        sum += weights[k];
    }
    const float norm = m.norm_w ? float(1.0 / std::max(sum, 6.103515625e-5)) : 1.0f;
    for (int64_t k = 0; k < top_k; ++k) weights[k] *= norm * m.w_scale;
}

// Several matrices applied to hn in one parallel loop.
void DeepSeek2::run_shared_input(std::initializer_list<std::pair<WeightView, float*>> mats) {
    shared_.run(hn_.data(), hp_.n_embd, mats, *pool_);
}

void DeepSeek2::load_weights() {
    const gguf::File& f = *file_;
    const Hparams& h = hp_;
    const int64_t qk = m_.n_nope + h.n_rot, kvl = m_.kv_lora;
    auto blk = [](int64_t il, const char* name, const char* suffix = "weight") {
        return "blk." + std::to_string(il) + "." + name + "." + suffix;
    };
    tok_embd_ = &f.require_tensor("token_embd.weight", {h.n_embd, h.n_vocab});
    output_norm_ = tensor_f32(f, f.require_tensor("output_norm.weight", {h.n_embd}));
    const gguf::TensorInfo* out = f.find_tensor("output.weight");
    output_ = matrix_view(f, out ? f.require_tensor("output.weight", {h.n_embd, h.n_vocab}) : *tok_embd_);

    layers_.resize(size_t(h.n_layer));
    for (int64_t il = 0; il < h.n_layer; ++il) {
        Layer& L = layers_[size_t(il)];
        L.attn_norm = tensor_f32(f, f.require_tensor(blk(il, "attn_norm"), {h.n_embd}));
        if (m_.q_lora > 0) {
            L.wq_a = matrix_view(f, f.require_tensor(blk(il, "attn_q_a"), {h.n_embd, m_.q_lora}));
            L.q_a_norm = tensor_f32(f, f.require_tensor(blk(il, "attn_q_a_norm"), {m_.q_lora}));
            L.wq_b = matrix_view(f, f.require_tensor(blk(il, "attn_q_b"), {m_.q_lora, h.n_head * qk}));
        } else {
            L.wq = matrix_view(f, f.require_tensor(blk(il, "attn_q"), {h.n_embd, h.n_head * qk}));
        }
        L.wkv_a = matrix_view(f, f.require_tensor(blk(il, "attn_kv_a_mqa"), {h.n_embd, kvl + h.n_rot}));
        L.kv_a_norm = tensor_f32(f, f.require_tensor(blk(il, "attn_kv_a_norm"), {kvl}));
        if (!m_.legacy_kv_b) {
            const auto& kb = f.require_tensor(blk(il, "attn_k_b"), {m_.n_nope, kvl, h.n_head});
            const auto& vb = f.require_tensor(blk(il, "attn_v_b"), {kvl, h.head_dim_v, h.n_head});
            for (int64_t hh = 0; hh < h.n_head; ++hh) {
                L.k_b.push_back(expert_view(f, kb, hh, 0, kvl));
                L.v_b.push_back(expert_view(f, vb, hh, 0, h.head_dim_v));
            }
        } else {
            // kv_b (n_head * (n_nope + head_dim_v), kv_lora): per head n_nope key rows, then value rows.
            const auto& kvb = f.require_tensor(blk(il, "attn_kv_b"), {kvl, h.n_head * (m_.n_nope + h.head_dim_v)});
            const WeightView all = matrix_view(f, kvb);
            const int64_t rb = row_bytes(kvb.type, kvl);
            for (int64_t hh = 0; hh < h.n_head; ++hh) {
                const auto* base = f.data(kvb) + hh * (m_.n_nope + h.head_dim_v) * rb;
                L.k_b.push_back(WeightView{all.type, m_.n_nope, kvl, base});
                L.v_b.push_back(WeightView{all.type, h.head_dim_v, kvl, base + m_.n_nope * rb});
            }
        }
        L.wo = matrix_view(f, f.require_tensor(blk(il, "attn_output"), {h.n_head * h.head_dim_v, h.n_embd}));
        L.ffn_norm = tensor_f32(f, f.require_tensor(blk(il, "ffn_norm"), {h.n_embd}));
        if (il < m_.n_dense_lead) {
            L.ffn_gate = matrix_view(f, f.require_tensor(blk(il, "ffn_gate"), {h.n_embd, h.n_ff}));
            L.ffn_up = matrix_view(f, f.require_tensor(blk(il, "ffn_up"), {h.n_embd, h.n_ff}));
            L.ffn_down = matrix_view(f, f.require_tensor(blk(il, "ffn_down"), {h.n_ff, h.n_embd}));
            continue;
        }
        L.router = matrix_view(f, f.require_tensor(blk(il, "ffn_gate_inp"), {h.n_embd, h.n_expert}));
        if (f.find_tensor(blk(il, "exp_probs_b", "bias")))
            L.probs_b = tensor_f32(f, f.require_tensor(blk(il, "exp_probs_b", "bias"), {h.n_expert}));
        if (f.find_tensor(blk(il, "ffn_gate_up_exps"))) {
            L.experts.gate_up_exps = &f.require_tensor(blk(il, "ffn_gate_up_exps"), {h.n_embd, 2 * h.n_ff_exp, h.n_expert});
        } else {
            L.experts.gate_exps = &f.require_tensor(blk(il, "ffn_gate_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
            L.experts.up_exps = &f.require_tensor(blk(il, "ffn_up_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
        }
        L.experts.down_exps = &f.require_tensor(blk(il, "ffn_down_exps"), {h.n_ff_exp, h.n_embd, h.n_expert});
        if (m_.n_shared > 0) {
            const int64_t n_sh = m_.n_shared * h.n_ff_exp;
            L.sh_gate = matrix_view(f, f.require_tensor(blk(il, "ffn_gate_shexp"), {h.n_embd, n_sh}));
            L.sh_up = matrix_view(f, f.require_tensor(blk(il, "ffn_up_shexp"), {h.n_embd, n_sh}));
            L.sh_down = matrix_view(f, f.require_tensor(blk(il, "ffn_down_shexp"), {n_sh, h.n_embd}));
        }
    }
    for (const gguf::TensorInfo& t : f.tensors())
        if (!type_info(t.type).has_kernels)
            throw Error(f.path() + ": tensor '" + t.name + "' has type " + type_name(t.type) +
                        ", which sluice cannot compute yet");
    if (h.n_layer > m_.n_dense_lead) {
        // Expert streaming plugs in here. Sources index MoE layers only: layer il is entry il - n_dense_lead.
        std::vector<MoeTensors> moe;
        for (int64_t il = m_.n_dense_lead; il < h.n_layer; ++il) moe.push_back(layers_[size_t(il)].experts);
        experts_ = make_expert_source(f, std::move(moe), h.n_embd, h.n_ff_exp, opt_);
    }
}

Hparams deepseek2_hparams(const gguf::File& f, const ModelOptions& opt, MlaParams* mp, int64_t* top_k_out) {
    Hparams h;
    MlaParams& m = *mp;
    h.arch = f.get_string("general.architecture");
    const std::string p = h.arch + ".";
    auto need = [&](bool ok, const std::string& what) {
        if (!ok) throw Error(f.path() + ": " + what);
    };
    h.n_embd = int64_t(f.get_uint(p + "embedding_length"));
    // MTP ("nextn") blocks follow the main layers in some files; decoding does not run them.
    h.n_layer = int64_t(f.get_uint(p + "block_count")) - int64_t(f.get_uint_or(p + "nextn_predict_layers", 0));
    h.n_head = int64_t(f.get_uint(p + "attention.head_count"));
    h.n_head_kv = 1;  // MLA: one latent shared by every head
    h.n_ctx_train = int64_t(f.get_uint(p + "context_length"));
    h.rms_eps = float(f.get_float(p + "attention.layer_norm_rms_epsilon"));
    h.rope_base = float(f.get_float_or(p + "rope.freq_base", 10000.0));
    h.n_rot = int64_t(f.get_uint(p + "rope.dimension_count"));
    m.q_lora = int64_t(f.get_uint_or(p + "attention.q_lora_rank", 0));
    m.kv_lora = int64_t(f.get_uint(p + "attention.kv_lora_rank"));
    // Files with the _mla keys store the absorbed form (attn_k_b, attn_v_b; key_length is then the
    // latent's width); older ones have the per-head sizes in key_length/value_length and one attn_kv_b.
    m.legacy_kv_b = !f.find(p + "attention.key_length_mla");
    h.head_dim = int64_t(f.get_uint(p + (m.legacy_kv_b ? "attention.key_length" : "attention.key_length_mla")));
    h.head_dim_v = int64_t(f.get_uint(p + (m.legacy_kv_b ? "attention.value_length" : "attention.value_length_mla")));
    m.n_nope = h.head_dim - h.n_rot;
    need(h.n_layer > 0 && h.n_head > 0 && h.n_embd > 0, "block_count, head_count and embedding_length must be positive");
    need(h.n_rot > 0 && h.n_rot % 2 == 0 && m.n_nope > 0,
         "rope.dimension_count " + std::to_string(h.n_rot) + " must be even and below the key length " + std::to_string(h.head_dim));
    need(m.kv_lora > 0 && h.head_dim_v > 0, "kv_lora_rank and the value length must be positive");
    const gguf::TensorInfo* embd = f.find_tensor("token_embd.weight");
    need(embd != nullptr, "missing tensor 'token_embd.weight'");
    h.n_vocab = embd->ne[1];

    m.n_dense_lead = std::min<int64_t>(int64_t(f.get_uint_or(p + "leading_dense_block_count", 0)), h.n_layer);
    if (m.n_dense_lead > 0) h.n_ff = int64_t(f.get_uint(p + "feed_forward_length"));
    int64_t top_k = 0;
    if (m.n_dense_lead < h.n_layer) {
        h.n_expert = int64_t(f.get_uint(p + "expert_count"));
        h.n_expert_used = int64_t(f.get_uint(p + "expert_used_count"));
        h.n_ff_exp = int64_t(f.get_uint(p + "expert_feed_forward_length"));
        need(h.n_expert > 0 && h.n_expert_used > 0 && h.n_expert_used <= h.n_expert,
             "expert_used_count " + std::to_string(h.n_expert_used) + " must be between 1 and expert_count " + std::to_string(h.n_expert));
        m.n_shared = int64_t(f.get_uint_or(p + "expert_shared_count", 0));
        m.n_group = std::max<int64_t>(1, int64_t(f.get_uint_or(p + "expert_group_count", 1)));
        m.n_group_used = int64_t(f.get_uint_or(p + "expert_group_used_count", uint64_t(m.n_group)));
        need(h.n_expert % m.n_group == 0 && m.n_group_used >= 1 && m.n_group_used <= m.n_group,
             "expert_group_count " + std::to_string(m.n_group) + " must divide expert_count and expert_group_used_count " +
                 std::to_string(m.n_group_used) + " lie in [1, groups]");
        const uint64_t gating = f.get_uint_or(p + "expert_gating_func", 0);  // absent: softmax, as llama.cpp reads V2 files
        need(gating <= 2, "expert_gating_func " + std::to_string(gating) + " is not supported (1 softmax, 2 sigmoid)");
        m.sigmoid = gating == 2;
        m.norm_w = f.get_bool_or(p + "expert_weights_norm", false);
        const double scale = f.get_float_or(p + "expert_weights_scale", 0.0);
        m.w_scale = scale == 0.0 ? 1.0f : float(scale);
        top_k = opt.experts_per_token > 0 ? opt.experts_per_token : h.n_expert_used;
        if (top_k > h.n_expert)
            throw Error("--experts-per-token " + std::to_string(top_k) + " is more than the model's " +
                        std::to_string(h.n_expert) + " experts");
        // Fewer groups than needed to hold top_k experts would leave -inf picks.
        need(m.n_group_used * (h.n_expert / m.n_group) >= top_k, "expert_group_used_count groups hold fewer than top-k experts");
    } else if (opt.experts_per_token > 0) {
        throw Error("--experts-per-token applies to MoE models; " + f.path() + " has no MoE layers");
    }
    m.temp_scale = float(f.get_float_or(p + "attention.temperature_scale", 0.0));
    m.temp_length = std::max<int64_t>(1, int64_t(f.get_uint_or(p + "attention.temperature_length", 1)));
    rope_params(f, p, h, m);
    *top_k_out = top_k;
    return h;
}

}  // namespace ds2

namespace sluice {

std::unique_ptr<Model> load_deepseek2(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    ds2::MlaParams m;
    int64_t top_k = 0;
    Hparams h = ds2::deepseek2_hparams(*file, opt, &m, &top_k);
    return std::make_unique<ds2::DeepSeek2>(std::move(file), opt, std::move(h), std::move(m), top_k);
}


}  // namespace sluice
