// Qwen3-MoE / Qwen3 on a GPU through Vulkan (shaders/): the forward of qwen3moe.cpp, op for op, with
// the dense weights and the KV cache in VRAM. qwen3moe.cpp stays the reference this backend is tested
// against (tests/test_gpu_model.cpp), and the state blob is the same, so snapshots move between them.
// The routed experts' placements, the token's step and the uploads are GpuModel's (gpu_model.h).
#include <algorithm>
#include <string>
#include <tuple>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/models/qwen3moe.h"
#include "engine/moe.h"
#include "engine/state.h"

#ifdef SLUICE_VULKAN
#include "engine/models/gpu_model.h"
#endif

namespace sluice {

#ifndef SLUICE_VULKAN
std::unique_ptr<Model> load_qwen3moe_gpu(std::unique_ptr<gguf::File>, const ModelOptions&) {
    throw Error("this sluice was built without Vulkan (SLUICE_VULKAN=OFF)");
}
#else

namespace {

using gpu::Mem;

struct GLayer {
    uint32_t attn_norm = 0, q_norm = 0, k_norm = 0, ffn_norm = 0;  // float offsets in norms_
    // q, k, v projections into q_ (q, raw k, raw v): runs of one type share a buffer and a dispatch
    std::vector<GpuModel::Merged> qkv;
    gpu::Mat wo;                     // as qwen3moe.cpp's Layer
    gpu::Mat ffn_gate, ffn_up, ffn_down;  // dense layers (the router and experts are GpuModel's)
    gpu::Buffer* k = nullptr;        // KV cache: (n_ctx, n_head_kv * head_dim)
    gpu::Buffer* v = nullptr;        //           (n_ctx, n_head_kv * head_dim_v)
};

class Qwen3MoeGpu final : public GpuModel {
public:
    Qwen3MoeGpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, int64_t top_k, int device)
        : GpuModel(std::move(file), opt, std::move(hp), top_k, device) {
        load();
        record();
    }

    std::vector<uint8_t> save_state() const override {
        const Hparams& h = hp_;
        StateWriter w(h.arch);
        const uint64_t kd = uint64_t(h.n_head_kv * h.head_dim), vd = uint64_t(h.n_head_kv * h.head_dim_v);
        w.put_u64(uint64_t(h.n_layer));
        w.put_u64(kd);
        w.put_u64(vd);
        w.put_u64(uint64_t(n_past_));
        std::vector<float> tmp(size_t(n_past_) * std::max(kd, vd));
        for (const GLayer& L : layers_) {
            ctx_.download(*L.k, 0, tmp.data(), size_t(n_past_) * kd * 4);
            w.put_floats(tmp.data(), size_t(n_past_) * kd);
            ctx_.download(*L.v, 0, tmp.data(), size_t(n_past_) * vd * 4);
            w.put_floats(tmp.data(), size_t(n_past_) * vd);
        }
        return w.take();
    }

    void load_state(std::span<const uint8_t> blob) override {
        const Hparams& h = hp_;
        reset();
        const uint64_t kd = uint64_t(h.n_head_kv * h.head_dim), vd = uint64_t(h.n_head_kv * h.head_dim_v);
        StateReader r(blob, h.arch);
        r.expect_u64("layer count", uint64_t(h.n_layer));
        r.expect_u64("K width", kd);
        r.expect_u64("V width", vd);
        const uint64_t n = r.get_u64();
        if (n > uint64_t(n_ctx_))
            throw Error("state blob holds " + std::to_string(n) + " tokens; the context is " + std::to_string(n_ctx_));
        std::vector<float> tmp(size_t(n) * std::max(kd, vd));
        for (GLayer& L : layers_) {
            r.get_floats(tmp.data(), size_t(n * kd));
            if (n) ctx_.upload(*L.k, 0, tmp.data(), size_t(n * kd * 4));
            r.get_floats(tmp.data(), size_t(n * vd));
            if (n) ctx_.upload(*L.v, 0, tmp.data(), size_t(n * vd * 4));
        }
        r.expect_end();
        n_past_ = int64_t(n);
    }

private:
    // ---- recording

    uint32_t first_norm(int64_t il) const override { return layers_[size_t(il)].attn_norm; }

    bool router_reads_residual() const override { return true; }  // record_layer ends with add_matvec(wo)
    bool folds_routers() const override { return true; }  // load() calls fold_router(); record_attention() records it
    bool has_short_attention() const override { return attn_.gh > 1; }

    void record_layer(gpu::Cmd& c, int64_t il, bool hn_ready) override {
        const GLayer& L = layers_[size_t(il)];
        const bool moe = moe_[size_t(il)].router.rows;
        const bool ffn_scaled = moe ? moe_reads_scaled(il) : q8_reads({&L.ffn_gate, &L.ffn_up});
        // a folded router needs the output projection's block tails (their sums of squares)
        record_attention(c, L, hn_ready, ffn_scaled, moe && ffn_scaled && folded(il) ? il : -1);  // ffn_norm(x) in hn after it
        if (moe) return;
        // x += down(silu(gate hn) * up hn); the next norm
        record_swiglu_ffn(c, L.ffn_gate, L.ffn_up, L.ffn_down, uint32_t(hp_.n_ff), add_then_norm(next_norm(il)),
                          reads_scaled_after(il));
    }
    // the next layer's q, k, v
    bool reads_scaled_after(int64_t il) const override {
        if (il + 1 >= hp_.n_layer) return false;
        std::vector<const Mat*> next;
        for (const Merged& m : layers_[size_t(il + 1)].qkv) next.push_back(&m.w);
        return q8_reads(next);
    }
    bool q8_reads(const std::vector<const Mat*>& mats) const {
        for (const Mat* m : mats)
            if (!gpu::has_q8(ctx_, m->type)) return false;
        return xq(hn_) != nullptr;
    }

    bool batch_ok() const override { return experts_fused(); }  // prompt batches (record_layer_batch)
    uint64_t batch_vram_own(uint32_t B) const override {  // qb_, attb_ and its mirror
        const Hparams& h = hp_;
        const uint64_t qkv = uint64_t(h.n_head * h.head_dim + h.n_head_kv * (h.head_dim + h.head_dim_v)),
                       od = uint64_t(h.n_head * h.head_dim_v);
        return 4 * B * (qkv + od) + gpu::xq_bytes(B * od);
    }

    // hnb_ = attn_norm(x) per token: q, k, v for the batch (one read of the weights), every token's cache
    // rows then its attention (gpu::prompt_attention), the output projection for the batch, then the FFN.
    void record_layer_batch(gpu::Cmd& c, int64_t il, uint32_t B) override {
        const Hparams& h = hp_;
        const GLayer& L = layers_[size_t(il)];
        const uint32_t E = uint32_t(h.n_embd), qd = uint32_t(h.n_head * h.head_dim),
                       kd = uint32_t(h.n_head_kv * h.head_dim), vd = uint32_t(h.n_head_kv * h.head_dim_v),
                       qkv = qd + kd + vd, od = uint32_t(h.n_head * h.head_dim_v);
        if (!qb_.size()) {
            qb_ = device_floats(size_t(batch_max()) * qkv, "q, k, v of a prompt batch");
            attb_ = device_floats(size_t(batch_max()) * od, "attention output of a prompt batch");
            mirror(attb_, size_t(batch_max()) * od);
        }
        std::vector<const Mat*> qkv_mats;
        for (const Merged& m : L.qkv) qkv_mats.push_back(&m.w);
        quantize_for(c, hnb_, B * E, qkv_mats);
        const gpu::MatvecOpts o = batch_cols(hnb_, B, E, qkv);
        for (size_t i = 0; i < L.qkv.size(); ++i) {
            if (i) c.independent();
            gpu::matvec(c, L.qkv[i].w, {&hnb_}, {&qb_, L.qkv[i].y_off}, batch_steps(), o);
        }
        // every token's q/k norm + RoPE and cache rows, then their attention: two dispatches for the batch
        gpu::prompt_attention(c, {{&qb_}, qkv, qd, qd + kd}, B, {L.k}, {L.v}, kd, vd, {&attb_}, od, attn_,
                              {{&norms_, L.q_norm}, {&norms_, L.k_norm}, uint32_t(h.n_rot), h.rms_eps}, batch_steps());
        quantize_for(c, attb_, B * od, {&L.wo});
        gpu::matvec(c, L.wo, {&attb_}, {&xb_}, batch_steps(), batch_cols(attb_, B, od, E, true));
        record_ffn_batch(c, il, B, L.ffn_norm, L.ffn_gate, L.ffn_up, L.ffn_down);
    }

    // hn_ready: the previous layer (its experts' combine or FFN down) already wrote attn_norm(x) to hn.
    // Leaves ffn_norm(x) in hn: the output projection's last workgroup writes it.
    // fuse_norm: only integer-dot products read ffn_norm(x) (add_matvec()).
    // fold: the layer whose folded router runs beside the attention and the output projection, or -1.
    void record_attention(gpu::Cmd& c, const GLayer& L, bool hn_ready, bool fuse_norm, int64_t fold = -1) {
        const Hparams& h = hp_;
        const uint32_t qd = uint32_t(h.n_head * h.head_dim), kd = uint32_t(h.n_head_kv * h.head_dim),
                       vd = uint32_t(h.n_head_kv * h.head_dim_v);
        if (!hn_ready) norm_into_hn(c, L.attn_norm);  // attn_norm
        for (const Merged& m : L.qkv) touch_ahead(c, {&m.w});
        for (size_t i = 0; i < L.qkv.size(); ++i) {  // q, raw k, raw v (attention_qk puts k and v in the cache)
            if (i) c.independent();
            gpu::matvec(c, L.qkv[i].w, {&hn_}, {&q_, L.qkv[i].y_off}, step_, with_xq({}, hn_));
        }
        // Qcur_normed, Kcur_normed, RoPE, k and v into the cache rows, kqv_out: one dispatch
        gpu::attention_qk(c, {&q_}, {&q_, qd}, {&q_, qd + kd}, {L.k}, {L.v}, kd, vd, {&part_}, {&att_}, short_attn_ ? attn_short_ : attn_,
                          {{&norms_, L.q_norm}, {&norms_, L.k_norm}, uint32_t(h.n_rot), h.rms_eps}, {&counts_}, step_,
                          gpu::has_q8(ctx_, L.wo.type) ? xq(att_) : nullptr);  // and its int8 mirror where wo reads it
        if (fold >= 0) record_fold_x(c, fold);  // the router's share of x, beside the attention
        touch_ahead(c, {&L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down});  // beside the attention (gpu_model.cpp)
        add_matvec(c, L.wo, {&att_}, with_xq(add_then_norm(L.ffn_norm), att_), fuse_norm);  // x += Wo att; ffn_norm
        if (fold >= 0) record_fold_att(c, fold, att_);  // and of Wo att, with its top-k, beside it
    }

    // ---- loading

    void load() {
        const gguf::File& f = *file_;
        const Hparams& h = hp_;
        auto blk = [](int64_t il, const char* name) { return "blk." + std::to_string(il) + "." + name + ".weight"; };
        const uint64_t kd = uint64_t(h.n_head_kv * h.head_dim), vd = uint64_t(h.n_head_kv * h.head_dim_v);
        plan_vram(uint64_t(h.n_layer) * uint64_t(n_ctx_) * (kd + vd) * 4);  // + the KV cache
        load_head();
        layers_.resize(size_t(h.n_layer));
        std::vector<MoeTensors> moe;
        for (int64_t il = 0; il < h.n_layer; ++il) {
            GLayer& L = layers_[size_t(il)];
            L.attn_norm = add_norm(f.require_tensor(blk(il, "attn_norm"), {h.n_embd}));
            L.q_norm = add_norm(f.require_tensor(blk(il, "attn_q_norm"), {h.head_dim}));
            L.k_norm = add_norm(f.require_tensor(blk(il, "attn_k_norm"), {h.head_dim}));
            L.ffn_norm = add_norm(f.require_tensor(blk(il, "ffn_norm"), {h.n_embd}));
            L.qkv = merge_rows(upload_rows({&f.require_tensor(blk(il, "attn_q"), {h.n_embd, h.n_head * h.head_dim}),
                                            &f.require_tensor(blk(il, "attn_k"), {h.n_embd, int64_t(kd)}),
                                            &f.require_tensor(blk(il, "attn_v"), {h.n_embd, int64_t(vd)})}));
            L.wo = upload(f.require_tensor(blk(il, "attn_output"), {h.n_head * h.head_dim_v, h.n_embd}));
            L.k = &buffer(size_t(n_ctx_ * kd * 4), Mem::Device, "K cache");
            L.v = &buffer(size_t(n_ctx_ * vd * 4), Mem::Device, "V cache");
            if (h.n_expert == 0) {
                std::tie(L.ffn_gate, L.ffn_up) = upload_pair(f.require_tensor(blk(il, "ffn_gate"), {h.n_embd, h.n_ff}),
                                                             f.require_tensor(blk(il, "ffn_up"), {h.n_embd, h.n_ff}));
                L.ffn_down = upload(f.require_tensor(blk(il, "ffn_down"), {h.n_ff, h.n_embd}));
                continue;
            }
            const MoeTensors mt = require_moe_tensors(il);
            moe.push_back(mt);
            const gguf::TensorInfo& router = f.require_tensor(blk(il, "ffn_gate_inp"), {h.n_embd, h.n_expert});
            load_moe(il, router, mt);
            fold_router(il, router, L.ffn_norm, f.require_tensor(blk(il, "attn_output"), {h.n_head * h.head_dim_v, h.n_embd}));
        }
        finish_load(std::move(moe), size_t(h.n_ff));
        q_ = device_floats(size_t(h.n_head * h.head_dim + h.n_head_kv * (h.head_dim + h.head_dim_v)),
                           "q and this position's raw k, v");
        att_ = device_floats(size_t(h.n_head * h.head_dim_v), "attention output");
        if (h.head_dim_v % 32 == 0) mirror(att_, size_t(h.n_head * h.head_dim_v));  // written by attention_qk
        attn_ = gpu::attn_shape(uint32_t(h.n_head), uint32_t(h.n_head_kv), uint32_t(h.head_dim), uint32_t(h.head_dim_v),
                                uint64_t(n_ctx_));
        // short contexts (has_short_attention()): one q head per workgroup (H200, bench_gpu --attn, 64
        // positions: 10.0 us vs 14.2 with 4; 512: 12.1 vs 15.3; but 4096: 25.6 vs 20.8)
        attn_short_ = gpu::attn_shape(uint32_t(h.n_head), uint32_t(h.n_head_kv), uint32_t(h.head_dim), uint32_t(h.head_dim_v),
                                      uint64_t(n_ctx_), 1, 256, 32);
        part_ = device_floats(std::max(gpu::attn_part_floats(attn_), gpu::attn_part_floats(attn_short_)), "attention splits");
        counts_ = device_floats(size_t(h.n_head), "attention merge counters");
        ctx_.upload(counts_, 0, std::vector<uint32_t>(size_t(h.n_head), 0u).data(), size_t(h.n_head) * 4);
    }

    std::vector<GLayer> layers_;
    gpu::AttnShape attn_{}, attn_short_{};
    gpu::Buffer q_, att_, part_, counts_;
    gpu::Buffer qb_, attb_;  // prompt batches: q | k | v and the attention output per token
};

}  // namespace

std::unique_ptr<Model> load_qwen3moe_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    int64_t top_k = 0;
    Hparams h = qwen3moe_hparams(*file, opt, &top_k);
    const int device = gpu_pick_device(opt.gpu);
    return std::make_unique<Qwen3MoeGpu>(std::move(file), opt, std::move(h), top_k, device);
}

#endif  // SLUICE_VULKAN

}  // namespace sluice
