// Qwen3.5-MoE / Qwen3-Next on a GPU through Vulkan (shaders/): the one-token forward of qwen35moe.cpp
// (equations at its top), op for op, with the dense weights, the full-attention layers' KV cache and
// the linear-attention layers' recurrent states (conv inputs and S) in VRAM. qwen35moe.cpp stays the
// reference (tests/test_gpu_qwen35.cpp) and the state blob is the same, so snapshots move between
// the two. The routed experts' placements, the token's step and the uploads are GpuModel's.
//
// Prompts run in batches (GpuModel::forward_batch, record_layer_batch()): the projections, output
// projections and shared expert as products over the batch, the full-attention layers' attention in
// two dispatches, the delta net in four (delta_batch.comp: its recurrence one scan over the batch), the
// routed experts grouped by expert.
//
// Rows are regrouped at upload so that every projection of a layer writes its parts contiguously:
// q_proj's per-head [q (hd), gate (hd)] rows become [q (n_head hd) | gate (n_head hd)], so the fused
// attention reads q as qwen3's; qwen3next's ssm_ba rows (per key head [b (r), a (r)]) become
// [b (n_v) | a (n_v)], as qwen35moe's separate ssm_beta and ssm_alpha.
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/models/qwen35moe.h"
#include "engine/moe.h"
#include "engine/state.h"

#ifdef SLUICE_VULKAN
#include "engine/models/gpu_model.h"
#endif

namespace sluice {

#ifndef SLUICE_VULKAN
std::unique_ptr<Model> load_qwen35moe_gpu(std::unique_ptr<gguf::File>, const ModelOptions&) {
    throw Error("this sluice was built without Vulkan (SLUICE_VULKAN=OFF)");
}
#else

namespace {

using gpu::Mem;
constexpr float kL2Eps = 1e-6f;  // as qwen35moe.cpp (HF's l2norm eps)

struct GLayer {
    bool recurrent = false;
    uint32_t attn_norm = 0, post_norm = 0;  // float offsets in norms_
    // Projections of hn into proj_: attention [q | gate | k | v], recurrent [qkv | z | b | a]; runs of
    // one type share a buffer and a dispatch.
    std::vector<GpuModel::Merged> proj;
    gpu::Mat out;                     // attn_output (n_embd, n_head hd) or ssm_out (n_embd, value_dim)
    uint32_t q_norm = 0, k_norm = 0;  // full attention
    gpu::Buffer* k = nullptr;         // KV cache: (n_ctx, n_head_kv * head_dim)
    gpu::Buffer* v = nullptr;         //           (n_ctx, n_head_kv * head_dim_v)
    gpu::DeltaParams delta;           // conv weights, dt_bias, ssm_a, ssm_norm in norms_
    gpu::Buffer* state = nullptr;     // recurrent: conv inputs (kernel - 1, conv_dim), then S (n_v, dk, dv)
    gpu::Mat sh_gate, sh_up, sh_down, sh_router;  // shared expert (rows 0: none)
};

// Row i of the upload is stored row order[i].
// q_proj (n_head, [q (hd), gate (hd)]) -> [q (n_head, hd) | gate (n_head, hd)], then `rest` rows as stored.
std::vector<uint32_t> q_gate_order(int64_t n_head, int64_t hd, int64_t rest) {
    std::vector<uint32_t> o;
    for (int part = 0; part < 2; ++part)
        for (int64_t h = 0; h < n_head; ++h)
            for (int64_t i = 0; i < hd; ++i) o.push_back(uint32_t(h * 2 * hd + part * hd + i));
    for (int64_t r = 0; r < rest; ++r) o.push_back(uint32_t(2 * n_head * hd + r));
    return o;
}
// ssm_ba (n_k, [b (r), a (r)]) -> [b (n_v) | a (n_v)]: as qwen35moe.cpp's split_ba.
std::vector<uint32_t> ba_order(int64_t n_k, int64_t n_v) {
    const int64_t r = n_v / n_k;
    std::vector<uint32_t> o;
    for (int part = 0; part < 2; ++part)
        for (int64_t g = 0; g < n_k; ++g)
            for (int64_t j = 0; j < r; ++j) o.push_back(uint32_t(g * 2 * r + part * r + j));
    return o;
}

class Qwen35MoeGpu final : public GpuModel {
public:
    Qwen35MoeGpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt, qwen35::Config c, int device)
        : GpuModel(std::move(file), opt, std::move(c.h), c.top_k, device), ssm_(c.ssm),
          recurrent_(std::move(c.recurrent)), n_ff_sh_(c.n_ff_sh) {
        load();
        record();
    }

    void reset() override {
        n_past_ = 0;
        for (const GLayer& L : layers_)
            if (L.state) ctx_.upload(*L.state, 0, zeros_.data(), L.state->size());
    }

    void truncate(int64_t n) override {
        if (qwen35::truncate_resets(n, n_past_, hp_.arch)) reset();
    }

    // The CPU class's blob: header, n_past, per layer conv inputs + S or the cached K, V rows.
    std::vector<uint8_t> save_state() const override {
        const Hparams& h = hp_;
        StateWriter w(h.arch);
        qwen35::put_layout(w, h, ssm_, recurrent_);
        w.put_u64(uint64_t(n_past_));
        std::vector<float> tmp(std::max(state_floats(), size_t(n_past_) * std::max(kd(), vd())));
        for (const GLayer& L : layers_) {
            if (L.recurrent) {
                ctx_.download(*L.state, 0, tmp.data(), state_floats() * 4);
                w.put_floats(tmp.data(), state_floats());
                continue;
            }
            ctx_.download(*L.k, 0, tmp.data(), size_t(n_past_) * kd() * 4);
            w.put_floats(tmp.data(), size_t(n_past_) * kd());
            ctx_.download(*L.v, 0, tmp.data(), size_t(n_past_) * vd() * 4);
            w.put_floats(tmp.data(), size_t(n_past_) * vd());
        }
        return w.take();
    }

    void load_state(std::span<const uint8_t> blob) override {
        const Hparams& h = hp_;
        reset();
        try {
            StateReader r(blob, h.arch);
            qwen35::expect_layout(r, h, ssm_, recurrent_);
            const uint64_t n = r.get_u64();
            if (n > uint64_t(n_ctx_))
                throw Error("state blob holds " + std::to_string(n) + " tokens; the context is " + std::to_string(n_ctx_));
            std::vector<float> tmp(std::max(state_floats(), size_t(n) * std::max(kd(), vd())));
            for (GLayer& L : layers_) {
                if (L.recurrent) {
                    r.get_floats(tmp.data(), state_floats());
                    ctx_.upload(*L.state, 0, tmp.data(), state_floats() * 4);
                    continue;
                }
                r.get_floats(tmp.data(), size_t(n) * kd());
                if (n) ctx_.upload(*L.k, 0, tmp.data(), size_t(n) * kd() * 4);
                r.get_floats(tmp.data(), size_t(n) * vd());
                if (n) ctx_.upload(*L.v, 0, tmp.data(), size_t(n) * vd() * 4);
            }
            r.expect_end();
            n_past_ = int64_t(n);
        } catch (...) {
            reset();  // a half-read recurrent state must not survive
            throw;
        }
    }

private:
    size_t kd() const { return size_t(hp_.n_head_kv * hp_.head_dim); }
    size_t vd() const { return size_t(hp_.n_head_kv * hp_.head_dim_v); }
    size_t conv_floats() const { return size_t((ssm_.kernel - 1) * ssm_.conv_dim()); }
    size_t state_floats() const { return conv_floats() + size_t(ssm_.n_v * ssm_.dk * ssm_.dv); }
    gpu::DeltaShape delta_shape() const {
        return {uint32_t(ssm_.n_k), uint32_t(ssm_.n_v), uint32_t(ssm_.dk), uint32_t(ssm_.dv), uint32_t(ssm_.kernel), ssm_.tiled};
    }

    // ---- recording

    uint32_t first_norm(int64_t il) const override { return layers_[size_t(il)].attn_norm; }

    // attn_norm, token mixing (delta net or gated attention), x += its output projection with
    // post_attention_norm(x) into hn; then the shared expert added to x, before the router.
    void record_layer(gpu::Cmd& c, int64_t il, bool hn_ready) override {
        const GLayer& L = layers_[size_t(il)];
        if (!hn_ready) norm_into_hn(c, L.attn_norm);  // attn_norm
        for (size_t i = 0; i < L.proj.size(); ++i) {
            if (i) c.independent();
            gpu::matvec(c, L.proj[i].w, {&hn_}, {&proj_, L.proj[i].y_off}, step_, with_xq({}, hn_));
        }
        if (L.recurrent) record_delta_net(c, L);
        else record_gated_attention(c, L);
        add_matvec(c, L.out, {L.recurrent ? &o_ : &att_}, add_then_norm(L.post_norm));  // x += out; post norm
        record_shared_expert(c, L);
    }

    bool batch_ok() const override { return experts_fused(); }  // prompt batches (record_layer_batch)
    uint64_t batch_vram_own(uint32_t B) const override {  // record_layer_batch()'s buffers, the state backup
        const uint64_t E = uint64_t(hp_.n_embd), F = uint64_t(std::max<int64_t>(n_ff_sh_, 0)),
                       mix = uint64_t(std::max(hp_.n_head * hp_.head_dim, ssm_.value_dim())),
                       n_rec = uint64_t(std::count(recurrent_.begin(), recurrent_.end(), true));
        uint64_t bytes = 4 * B * (uint64_t(pw()) + mix) + gpu::xq_bytes(B * mix) + 4 * n_rec * state_floats();
        if (F) bytes += 4 * B * (2 * F + E + 1) + gpu::xq_bytes(B * F);
        return bytes;
    }

    void record_state_backup(gpu::Cmd& c, bool restore) override {
        const size_t n_rec = size_t(std::count(recurrent_.begin(), recurrent_.end(), true)), n = state_floats() * 4;
        if (!n_rec) return;
        if (!state_backup_.size()) state_backup_ = device_floats(n_rec * state_floats(), "recurrent states at a prompt batch's start");
        size_t at = 0;
        for (const GLayer& L : layers_)
            if (L.recurrent) {
                if (at) c.independent();
                if (restore) c.copy(state_backup_, at, *L.state, 0, n);
                else c.copy(*L.state, 0, state_backup_, at, n);
                at += n;
            }
    }

    // record_layer() for B tokens: hnb_ = attn_norm(x) of each (columns n_embd apart). The projections
    // into projb_ (columns pw() apart), token mixing (attention for the batch, or the delta net: the
    // conv of every token at once, then one scan over the batch), the output projection added to xb_,
    // post_attention_norm into hnb_, the shared expert added to xb_, then the router and routed experts.
    void record_layer_batch(gpu::Cmd& c, int64_t il, uint32_t B) override {
        const Hparams& h = hp_;
        const GLayer& L = layers_[size_t(il)];
        const uint32_t E = uint32_t(h.n_embd), P = pw(), qd = uint32_t(h.n_head * h.head_dim),
                       vdim = uint32_t(ssm_.value_dim()), cd = uint32_t(ssm_.conv_dim());
        if (!projb_.size()) {
            const size_t n = batch_max();
            projb_ = device_floats(n * P, "projections of a prompt batch");
            mixb_ = device_floats(n * std::max(qd, vdim), "token mixing output of a prompt batch");
            mirror(mixb_, n * std::max(qd, vdim));
            if (n_ff_sh_ > 0) {
                const size_t F = size_t(n_ff_sh_);
                shgb_ = device_floats(n * F, "shared expert gate of a prompt batch");
                mirror(shgb_, n * F);
                shub_ = device_floats(n * F, "shared expert up of a prompt batch");
                shyb_ = device_floats(n * E, "shared expert output of a prompt batch");
                shlb_ = device_floats(n, "shared expert gate logits of a prompt batch");
            }
        }
        const Buffer& st = batch_steps();
        std::vector<const Mat*> pm;
        for (const Merged& m : L.proj) pm.push_back(&m.w);
        quantize_for(c, hnb_, B * E, pm);
        const gpu::MatvecOpts o = batch_cols(hnb_, B, E, P);
        for (size_t i = 0; i < L.proj.size(); ++i) {
            if (i) c.independent();
            gpu::matvec(c, L.proj[i].w, {&hnb_}, {&projb_, L.proj[i].y_off}, st, o);
        }
        uint32_t mix = qd;  // floats per token of mixb_
        if (L.recurrent) {  // the conv for every token at once, the recurrence in one scan over the batch
            mix = vdim;
            const uint32_t raw = pw_raw();
            gpu::delta_batch(c, {&projb_}, {P, cd, cd + vdim, raw, raw + cd}, B, {L.state}, uint32_t(conv_floats()), L.delta,
                             {&mixb_}, vdim, delta_shape(), 1.0f / std::sqrt(float(ssm_.dk)), kL2Eps, h.rms_eps);
        } else {
            gpu::prompt_attention(c, {{&projb_}, P, 2 * qd, 2 * qd + uint32_t(kd())}, B, {L.k}, {L.v}, uint32_t(kd()),
                                  uint32_t(vd()), {&mixb_}, qd, attn_,
                                  {{&norms_, L.q_norm}, {&norms_, L.k_norm}, uint32_t(h.n_rot), h.rms_eps}, batch_steps());
            gpu::sigmoid_gate(c, {&mixb_}, {&projb_, qd}, {&mixb_}, qd, false, false, {B, qd, P, qd});  // attn_gated
        }
        quantize_for(c, mixb_, B * mix, {&L.out});
        gpu::matvec(c, L.out, {&mixb_}, {&xb_}, st, batch_cols(mixb_, B, mix, E, true));
        gpu::rmsnorm(c, {&xb_}, {&hnb_}, {&norms_, L.post_norm}, E, B, E, h.rms_eps, st);  // post_attention_norm
        record_shared_expert_batch(c, L, B);
        static const Mat none{};
        record_ffn_batch(c, il, B, L.post_norm, none, none, none, true);
    }

    // x += sigmoid(w_sh . hn) * down_sh(silu(gate_sh hn) * up_sh hn) for each token of the batch.
    void record_shared_expert_batch(gpu::Cmd& c, const GLayer& L, uint32_t B) {
        if (!L.sh_gate.rows) return;
        const uint32_t E = uint32_t(hp_.n_embd), F = uint32_t(n_ff_sh_);
        const Buffer& st = batch_steps();
        quantize_for(c, hnb_, B * E, {&L.sh_gate, &L.sh_up, &L.sh_router});
        gpu::MatvecOpts r = with_xq({}, hnb_);  // shared_expert_gate: one row, a batch of matvecs (as the router)
        r.n_mats = B;
        r.x_mat_stride = E;
        r.y_mat_stride = 1;
        Mat router = L.sh_router;
        router.mat_stride = 0;
        gpu::matvec(c, router, {&hnb_}, {&shlb_}, st, r);
        const gpu::MatvecOpts o = batch_cols(hnb_, B, E, F);
        c.independent();
        gpu::matvec(c, L.sh_gate, {&hnb_}, {&shgb_}, st, o);
        c.independent();
        gpu::matvec(c, L.sh_up, {&hnb_}, {&shub_}, st, o);
        gpu::swiglu(c, {&shgb_}, {&shub_}, {&shgb_}, B * F);
        quantize_for(c, shgb_, B * F, {&L.sh_down});
        gpu::matvec(c, L.sh_down, {&shgb_}, {&shyb_}, st, batch_cols(shgb_, B, F, E));  // ffn_shexp
        gpu::sigmoid_gate(c, {&shyb_}, {&shlb_}, {&xb_}, E, true, true, {B, E, 1, E});
    }
    // Floats per token of projb_: the widest layer's projections (pw_raw()), then the delta net's conv
    // outputs (qkv, beta and decay), rounded up to 32 (aligned columns).
    uint32_t pw_raw() const {
        const Hparams& h = hp_;
        const int64_t w = std::max(2 * h.n_head * h.head_dim + int64_t(kd() + vd()), ssm_.conv_dim() + ssm_.value_dim() + 2 * ssm_.n_v);
        return uint32_t((w + 3) / 4 * 4);
    }
    uint32_t pw() const { return uint32_t((pw_raw() + ssm_.conv_dim() + 2 * ssm_.n_v + 31) / 32 * 32); }

    // proj_: [q | gate | k | v] -> att_ = attention(q, K, V) * sigmoid(gate)
    void record_gated_attention(gpu::Cmd& c, const GLayer& L) {
        const Hparams& h = hp_;
        const uint32_t qd = uint32_t(h.n_head * h.head_dim);
        // Qcur_normed, Kcur_normed, RoPE, k and v into the cache rows, kqv_out: one dispatch
        gpu::attention_qk(c, {&proj_}, {&proj_, 2 * qd}, {&proj_, 2 * qd + uint32_t(kd())}, {L.k}, {L.v}, uint32_t(kd()),
                          uint32_t(vd()), {&part_}, {&att_}, attn_,
                          {{&norms_, L.q_norm}, {&norms_, L.k_norm}, uint32_t(h.n_rot), h.rms_eps}, {&counts_}, step_);
        gpu::sigmoid_gate(c, {&att_}, {&proj_, qd}, {&att_}, qd, false, false);  // attn_gated
    }

    // proj_: [qkv | z | b | a] -> o_ = gated_rmsnorm(delta rule over the conv of qkv), the state updated
    void record_delta_net(gpu::Cmd& c, const GLayer& L) {
        const uint32_t cd = uint32_t(ssm_.conv_dim()), vdim = uint32_t(ssm_.value_dim());
        const gpu::DeltaShape s = delta_shape();
        // conv_output_silu, q/k l2 norm, beta_sigmoid, decay
        gpu::delta_conv(c, {&proj_}, {&proj_, cd + vdim}, {L.state}, L.delta, s, 1.0f / std::sqrt(float(ssm_.dk)), kL2Eps);
        gpu::delta_step(c, {&proj_}, {&proj_, cd}, {&proj_, cd + vdim}, {L.state, uint32_t(conv_floats())}, L.delta, {&o_}, s,
                        hp_.rms_eps);
    }

    // x += sigmoid(w_sh . hn) * down_sh(silu(gate_sh hn) * up_sh hn), hn the post-attention norm.
    // The router after it reads hn only: it need not wait.
    void record_shared_expert(gpu::Cmd& c, const GLayer& L) {
        if (!L.sh_gate.rows) return;
        const uint32_t F = uint32_t(n_ff_sh_);
        gpu::matvec(c, L.sh_router, {&hn_}, {&sh_, sh_logit()}, step_, with_xq({}, hn_));  // shared_expert_gate
        c.independent();
        if (fused(L.sh_gate, L.sh_up)) {
            gpu::MatvecOpts o = with_xq({}, hn_);
            o.swiglu_up = &L.sh_up;
            gpu::matvec(c, L.sh_gate, {&hn_}, {&sh_}, step_, o);
        } else {
            gpu::matvec(c, L.sh_gate, {&hn_}, {&sh_}, step_, with_xq({}, hn_));
            c.independent();
            gpu::matvec(c, L.sh_up, {&hn_}, {&sh_, sh_up()}, step_, with_xq({}, hn_));
            gpu::swiglu(c, {&sh_}, {&sh_, sh_up()}, {&sh_}, F);
        }
        gpu::matvec(c, L.sh_down, {&sh_}, {&sh_, sh_y()}, step_);  // ffn_shexp
        gpu::sigmoid_gate(c, {&sh_, sh_y()}, {&sh_, sh_logit()}, {&x_}, uint32_t(hp_.n_embd), true, true);
        c.independent();
    }
    // sh_: silu(gate) * up (n_ff_sh), up (n_ff_sh), the down projection (n_embd), the gate logit;
    // offsets multiples of 4 (matvec's vec4 loads of x).
    uint32_t sh_up() const { return uint32_t((n_ff_sh_ + 3) / 4 * 4); }
    uint32_t sh_y() const { return 2 * sh_up(); }
    uint32_t sh_logit() const { return sh_y() + uint32_t((hp_.n_embd + 3) / 4 * 4); }

    // ---- loading

    void load() {
        const gguf::File& f = *file_;
        const Hparams& h = hp_;
        const qwen35::Ssm& s = ssm_;
        auto blk = [](int64_t il, const char* name) { return "blk." + std::to_string(il) + "." + name; };
        auto t = [&](int64_t il, const char* name, std::initializer_list<int64_t> shape) -> const gguf::TensorInfo& {
            return f.require_tensor(blk(il, name), shape);
        };
        auto vec = [&](int64_t il, const char* name, int64_t n) { return tensor_f32(f, t(il, name, {n})); };
        int64_t n_rec = 0;
        for (bool r : recurrent_) n_rec += r;
        const uint64_t kv_bytes = uint64_t(h.n_layer - n_rec) * uint64_t(n_ctx_) * (kd() + vd()) * 4;
        plan_vram(kv_bytes + uint64_t(n_rec) * state_floats() * 4);
        load_head();
        zeros_.assign(state_floats(), 0.0f);
        layers_.resize(size_t(h.n_layer));
        std::vector<MoeTensors> moe;
        const int64_t qd = h.n_head * h.head_dim, vdim = s.value_dim();
        const std::vector<uint32_t> q_order = q_gate_order(h.n_head, h.head_dim, 0),
                                    qkv_order = q_gate_order(h.n_head, h.head_dim, int64_t(kd() + vd())),
                                    b_a_order = ba_order(s.n_k, s.n_v);
        for (int64_t il = 0; il < h.n_layer; ++il) {
            GLayer& L = layers_[size_t(il)];
            L.recurrent = recurrent_[size_t(il)];
            L.attn_norm = add_norm(vec(il, "attn_norm.weight", h.n_embd));
            L.post_norm = add_norm(vec(il, "post_attention_norm.weight", h.n_embd));
            if (L.recurrent) {
                const gguf::TensorInfo &qkv = t(il, "attn_qkv.weight", {h.n_embd, s.conv_dim()}),
                                       &z = t(il, "attn_gate.weight", {h.n_embd, vdim});
                if (h.arch == "qwen3next")
                    L.proj = merge_rows(upload_rows({&qkv, &z, {&t(il, "ssm_ba.weight", {h.n_embd, 2 * s.n_v}), &b_a_order}}));
                else
                    L.proj = merge_rows(upload_rows({&qkv, &z, &t(il, "ssm_beta.weight", {h.n_embd, s.n_v}),
                                                     &t(il, "ssm_alpha.weight", {h.n_embd, s.n_v})}));
                L.out = upload(t(il, "ssm_out.weight", {vdim, h.n_embd}));
                L.delta.conv_w = add_norm(tensor_f32(f, t(il, "ssm_conv1d.weight", {s.kernel, s.conv_dim()})));
                L.delta.dt_bias = add_norm(vec(il, "ssm_dt.bias", s.n_v));
                L.delta.ssm_a = add_norm(vec(il, "ssm_a", s.n_v));
                L.delta.ssm_norm = add_norm(vec(il, "ssm_norm.weight", s.dv));
                L.delta.buf = &norms_;
                L.state = &buffer(state_floats() * 4, Mem::Device, "recurrent state");
                ctx_.upload(*L.state, 0, zeros_.data(), state_floats() * 4);
            } else {
                const int64_t rows = 2 * qd + int64_t(kd() + vd());
                if (f.find_tensor(blk(il, "attn_qkv.weight")))  // converted with --fuse-qkv
                    L.proj = merge_rows(upload_rows({{&t(il, "attn_qkv.weight", {h.n_embd, rows}), &qkv_order}}));
                else
                    L.proj = merge_rows(upload_rows({{&t(il, "attn_q.weight", {h.n_embd, 2 * qd}), &q_order},
                                                     &t(il, "attn_k.weight", {h.n_embd, int64_t(kd())}),
                                                     &t(il, "attn_v.weight", {h.n_embd, int64_t(vd())})}));
                L.out = upload(t(il, "attn_output.weight", {h.n_head * h.head_dim_v, h.n_embd}));
                L.q_norm = add_norm(vec(il, "attn_q_norm.weight", h.head_dim));
                L.k_norm = add_norm(vec(il, "attn_k_norm.weight", h.head_dim));
                L.k = &buffer(size_t(n_ctx_) * kd() * 4, Mem::Device, "K cache");
                L.v = &buffer(size_t(n_ctx_) * vd() * 4, Mem::Device, "V cache");
            }
            if (n_ff_sh_ > 0) {
                std::tie(L.sh_gate, L.sh_up) = upload_pair(t(il, "ffn_gate_shexp.weight", {h.n_embd, n_ff_sh_}),
                                                           t(il, "ffn_up_shexp.weight", {h.n_embd, n_ff_sh_}));
                L.sh_down = upload(t(il, "ffn_down_shexp.weight", {n_ff_sh_, h.n_embd}));
                L.sh_router = upload(t(il, "ffn_gate_inp_shexp.weight", {h.n_embd, 1}));
            }
            const MoeTensors mt = require_moe_tensors(il);
            moe.push_back(mt);
            load_moe(il, t(il, "ffn_gate_inp.weight", {h.n_embd, h.n_expert}), mt);
        }
        finish_load(std::move(moe), 0);
        proj_ = device_floats(size_t(std::max(2 * qd + int64_t(kd() + vd()), s.conv_dim() + vdim + 2 * s.n_v)),
                              "projections of hn");
        att_ = device_floats(size_t(qd), "attention output");
        o_ = device_floats(size_t(vdim), "delta net output");
        sh_ = device_floats(sh_logit() + 1, "shared expert");
        attn_ = gpu::attn_shape(uint32_t(h.n_head), uint32_t(h.n_head_kv), uint32_t(h.head_dim), uint32_t(h.head_dim_v),
                                uint64_t(n_ctx_));
        part_ = device_floats(gpu::attn_part_floats(attn_), "attention splits");
        counts_ = device_floats(size_t(h.n_head), "attention merge counters");
        ctx_.upload(counts_, 0, std::vector<uint32_t>(size_t(h.n_head), 0u).data(), size_t(h.n_head) * 4);
    }

    qwen35::Ssm ssm_;
    std::vector<bool> recurrent_;
    int64_t n_ff_sh_;
    std::vector<GLayer> layers_;
    std::vector<float> zeros_;  // a recurrent state's floats: reset()
    gpu::AttnShape attn_{};
    // proj_: a layer's projections (attention: 2 n_head hd + kd + vd; delta net: conv_dim + value_dim
    // + 2 n_v); att_: gated attention output (n_head hd); o_: delta net output (value_dim); sh_: the
    // shared expert's (sh_up() ...); part_, counts_: attention splits and merge counters.
    gpu::Buffer proj_, att_, o_, sh_, part_, counts_;
    // Prompt batches (batch_max() tokens): projections, token mixing output, the shared expert's gate,
    // up, output and gate logit.
    gpu::Buffer projb_, mixb_, shgb_, shub_, shyb_, shlb_;
    gpu::Buffer state_backup_;  // record_state_backup()
};

}  // namespace

std::unique_ptr<Model> load_qwen35moe_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    qwen35::Config c = qwen35::read_config(*file, opt);
    const int device = gpu_pick_device(opt.gpu);
    return std::make_unique<Qwen35MoeGpu>(std::move(file), opt, std::move(c), device);
}

#endif  // SLUICE_VULKAN

}  // namespace sluice
