// DeepSeek-V2/V3, Kimi K2 (`deepseek2`) on a GPU through Vulkan (shaders/): deepseek2.cpp's decode
// forward, op for op, with the dense weights and the latent cache (kv_lora + n_rot floats per token and
// layer) in VRAM. deepseek2.cpp stays the reference (tests/test_gpu_deepseek2.cpp); the state blob is
// the same, so snapshots move between the two. Placements, the token's step and uploads: GpuModel.
//
// Per layer (deepseek2.cpp's equations):
//   [q_a | kva] = [Wq_a; Wkv_a] hn      one dispatch when the types match (else [q | kva] = [Wq; Wkv_a] hn)
//   q = Wq_b rmsnorm(q_a)
//   mla_rope: qcat[h] tail = rope(q_pe[h]); cache[pos] = [rmsnorm(c) | rope(k_pe)]     one dispatch
//   qcat[h] head = Wk_b[h] q_nope[h]     one matvec over the heads (batch, strides)
//   lat[h] = softmax(qcat[h] . cache rows * kq_scale) . c      attn_mla: split-K + merge, one dispatch
//   o[h] = Wv_b[h] lat[h];  x += Wo o, ffn_norm(x) in hn
// then the dense FFN, or the shared experts (record_before_experts) and the routed ones (GpuModel).
//
// Routing (sigmoid or softmax, selection bias, groups, normalisation, scale): with resident experts a
// shader (moe_route_grouped, route_experts()'s arithmetic) and a token is one submit; with the VRAM
// cache or CPU experts the host runs route_experts() itself between segments.
//
// Prompts in batches (record_layer_batch(), where the routing shader's limits hold): each token's row
// of act_b = [q_a | kva | q] (or [q | kva]) from products over the batch, mla_rope for every token,
// Wk_b / Wv_b per head over the batch's columns, the batch's attention in one dispatch
// (mla_prompt_attention: flash attention over the latent cache), Wo, then the FFN: the dense one, or
// the shared experts (record_before_experts_batch) and the routed ones routed by moe_route_grouped
// for every token (record_route_batch), in VRAM or on the host (GpuModel).
#include <algorithm>
#include <cstdlib>
#include <string>
#include <tuple>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/models/deepseek2.h"
#include "engine/moe.h"
#include "engine/tensor/kernels.h"

#ifdef SLUICE_VULKAN
#include "engine/models/gpu_model.h"
#endif

namespace sluice {

#ifndef SLUICE_VULKAN
std::unique_ptr<Model> load_deepseek2_gpu(std::unique_ptr<gguf::File>, const ModelOptions&) {
    throw Error("this sluice was built without Vulkan (SLUICE_VULKAN=OFF)");
}
#else

namespace {

using gpu::Mem;
using ds2::MlaParams;

struct GLayer {
    uint32_t attn_norm = 0, q_a_norm = 0, kv_a_norm = 0, ffn_norm = 0;  // float offsets in norms_
    std::vector<GpuModel::Merged> in;  // [q_a | kva] or [q | kva] from hn into act_ (runs of one type)
    gpu::Mat wq_b;                     // (n_head * (n_nope + n_rot), q_lora); rows 0 without q LoRA
    gpu::Mat k_b;                      // per head (kv_lora, n_nope), a batch of n_head
    gpu::Mat v_b;                      // per head (head_dim_v, kv_lora), a batch of n_head
    gpu::Mat wo;                       // (n_embd, n_head * head_dim_v)
    gpu::Mat ffn_gate, ffn_up, ffn_down;  // leading dense layers
    gpu::Mat sh_gate, sh_up, sh_down;     // shared experts: (n_shared * n_ff_exp, n_embd), (n_embd, ..)
    std::vector<float> probs_b;           // (n_expert) selection bias, empty when absent
    uint32_t probs_b_off = 0;             // its float offset in norms_ (moe_route_grouped reads it there)
    gpu::Buffer* cache = nullptr;         // (n_ctx, kv_lora + n_rot)
};

class DeepSeek2Gpu final : public GpuModel {
public:
    DeepSeek2Gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, MlaParams mp, int64_t top_k, int device)
        : GpuModel(std::move(file), opt, std::move(hp), top_k, device), m_(std::move(mp)), host_route_([] {
              const char* e = std::getenv("SLUICE_GPU_ROUTE");  // "host": route resident experts on the host too
              return e && std::string(e) == "host";
          }()) {
        load();
        record();
    }

    // deepseek2.cpp's blob: per layer, n_past rows of [c | k_pe].
    std::vector<uint8_t> save_state() const override {
        std::vector<float> tmp(size_t(n_past_ * row_));
        return ds2::save_latent(hp_, row_, n_past_, [&](int64_t il) {
            if (n_past_) ctx_.download(*layers_[size_t(il)].cache, 0, tmp.data(), tmp.size() * 4);
            return tmp.data();
        });
    }

    void load_state(std::span<const uint8_t> blob) override {
        reset();
        n_past_ = ds2::load_latent(blob, hp_, row_, n_ctx_, [&](int64_t il, std::span<const float> rows) {
            if (!rows.empty()) ctx_.upload(*layers_[size_t(il)].cache, 0, rows.data(), rows.size() * 4);
        });
    }

private:
    // ---- what GpuModel asks of an architecture

    uint32_t first_norm(int64_t il) const override { return layers_[size_t(il)].attn_norm; }
    // Resident experts are routed by moe_route_grouped when its limits allow (up to 1024 experts, 32
    // picks, 64 groups), so a token is one submit; else, and in the other placements, on the host.
    bool gpu_routing() const override {
        return hp_.n_expert <= ROUTE_GROUPED_MAX && top_k_ <= 32 && m_.n_group <= ROUTE_GROUPS_MAX && !host_route_;
    }
    bool has_route_shader() const override { return true; }
    // Layer il's routing as moe_route_grouped takes it (its selection bias, if any, in norms_).
    gpu::GroupRoute group_route(int64_t il) const {
        const GLayer& L = layers_[size_t(il)];
        return {uint32_t(m_.n_group), uint32_t(m_.n_group_used), m_.sigmoid, m_.norm_w, m_.w_scale,
                L.probs_b.empty() ? gpu::Vec{} : gpu::Vec{&norms_, L.probs_b_off}};
    }
    void record_route(gpu::Cmd& c, int64_t il, const gpu::Buffer& route, uint32_t ids_off, uint32_t w_off) override {
        gpu::route_grouped(c, {&route}, uint32_t(hp_.n_expert), uint32_t(top_k_), route, ids_off, {&route, w_off}, group_route(il));
    }
    void route_on_host(int64_t il, const float* logits, int32_t* ids, float* w) override {
        ds2::route_experts(m_, layers_[size_t(il)].probs_b, hp_.n_expert, top_k_, logits, ids, w, rs_);
    }
    bool routes_in_parallel() const override { return false; }  // rs_: one scratch
    void fill_step(void* mapped, uint32_t pos, uint32_t token) const override {
        gpu::write_step_freqs(mapped, pos, token, m_.inv_freq.data(), uint32_t(m_.inv_freq.size()), m_.rope_mscale);
    }

    bool router_reads_residual() const override { return true; }  // record_layer ends with add_matvec(wo)

    void record_layer(gpu::Cmd& c, int64_t il, bool hn_ready) override {
        const GLayer& L = layers_[size_t(il)];
        record_attention(c, L, hn_ready);  // ffn_norm(x) in hn after it
        if (!moe_[size_t(il)].router.rows)  // x += down(silu(gate hn) * up hn); the next norm
            record_swiglu_ffn(c, L.ffn_gate, L.ffn_up, L.ffn_down, uint32_t(hp_.n_ff), add_then_norm(next_norm(il)));
    }

    // ffn_shexp: x += down(silu(gate hn) * up hn), before the routed experts add theirs and the norm.
    void record_before_experts(gpu::Cmd& c, int64_t il) override {
        const GLayer& L = layers_[size_t(il)];
        if (!L.sh_gate.rows) return;
        gpu::MatvecOpts acc;
        acc.accumulate = true;
        record_swiglu_ffn(c, L.sh_gate, L.sh_up, L.sh_down, L.sh_gate.rows, acc);
    }

    // ---- prompts in batches

    bool batch_ok() const override { return gpu_routing(); }
    uint32_t batch_ff() const override { return uint32_t(std::max<int64_t>(hp_.n_ff, m_.n_shared * hp_.n_ff_exp)); }
    // A token's row of act_b: the input projections ([q_a | kva] or [q | kva]) and, with q LoRA, q after
    // them at a multiple of 32 floats (int8 mirrors' blocks); rows 32 floats apart.
    uint32_t in_rows() const { return uint32_t((m_.q_lora > 0 ? m_.q_lora : hp_.n_head * (m_.n_nope + hp_.n_rot)) + row_); }
    uint32_t qb_off() const { return m_.q_lora > 0 ? (in_rows() + 31) / 32 * 32 : 0; }
    uint32_t act_b_row() const {
        return (m_.q_lora > 0 ? qb_off() + uint32_t(hp_.n_head * (m_.n_nope + hp_.n_rot)) + 31 : in_rows() + 31) / 32 * 32;
    }
    // act_b, qcat (n_head rows of kv_lora + n_rot), the latent outputs and the heads' values per token,
    // with the int8 mirrors of all but qcat.
    uint64_t batch_vram_own(uint32_t B) const override {
        const uint64_t nh = uint64_t(hp_.n_head), a = uint64_t(B) * act_b_row(), l = uint64_t(B) * nh * uint64_t(m_.kv_lora),
                       o = uint64_t(B) * nh * uint64_t(hp_.head_dim_v);
        return 4 * (a + uint64_t(B) * nh * uint64_t(row_) + l + o) + gpu::xq_bytes(a) + gpu::xq_bytes(l) + gpu::xq_bytes(o);
    }
    void alloc_layer_batch() {
        const size_t B = batch_max(), nh = size_t(hp_.n_head), a = B * act_b_row(), l = B * nh * size_t(m_.kv_lora),
                     o = B * nh * size_t(hp_.head_dim_v);
        act_b_ = device_floats(a, "q_a, kva and q of a prompt batch");
        qcat_b_ = device_floats(B * nh * size_t(row_), "qcat of a prompt batch");
        lat_b_ = device_floats(l, "latent attention output of a prompt batch");
        o_b_ = device_floats(o, "attention output of a prompt batch");
        mirror(act_b_, a);
        mirror(lat_b_, l);
        mirror(o_b_, o);
    }

    // hnb_ = attn_norm(x) per token: record_attention()'s steps for the B tokens (products over the
    // batch, mla_rope and Wk_b / Wv_b per head for every token, the batch's attention in one dispatch),
    // x += Wo o, then the FFN (record_ffn_batch()).
    void record_layer_batch(gpu::Cmd& c, int64_t il, uint32_t B) override {
        const Hparams& h = hp_;
        const GLayer& L = layers_[size_t(il)];
        const uint32_t E = uint32_t(h.n_embd), nh = uint32_t(h.n_head), kvl = uint32_t(m_.kv_lora),
                       qk = uint32_t(m_.n_nope + h.n_rot), hdv = uint32_t(h.head_dim_v), row = uint32_t(row_),
                       ts = act_b_row(), qo = qb_off();
        if (!act_b_.size()) alloc_layer_batch();
        const gpu::Buffer& st = batch_steps();
        std::vector<const Mat*> in;
        for (const Merged& m : L.in) in.push_back(&m.w);
        quantize_for(c, hnb_, B * E, in);
        for (size_t i = 0; i < L.in.size(); ++i) {  // [q_a | kva] (or [q | kva]) of every token
            if (i) c.independent();
            gpu::matvec(c, L.in[i].w, {&hnb_}, {&act_b_, L.in[i].y_off}, st, batch_cols(hnb_, B, E, ts));
        }
        if (m_.q_lora > 0) {  // q = Wq_b rmsnorm(q_a)
            gpu::rmsnorm(c, {&act_b_}, {&act_b_}, {&norms_, L.q_a_norm}, uint32_t(m_.q_lora), B, ts, h.rms_eps, st);
            quantize_for(c, act_b_, B * ts, {&L.wq_b});
            gpu::matvec(c, L.wq_b, {&act_b_}, {&act_b_, qo}, st, batch_cols(act_b_, B, ts, ts));
        }
        // every token's q_pe roped into its qcat rows and its cache row; beside it q_abs = Wk_b q_nope
        gpu::mla_rope(c, {&act_b_, qo + uint32_t(m_.n_nope)}, qk, {&act_b_, kva_off_}, {&qcat_b_}, {L.cache},
                      {&norms_, L.kv_a_norm}, mla_, h.rms_eps, st, {B, ts, ts, nh * row});
        c.independent();
        quantize_for(c, act_b_, B * ts, {&L.k_b});
        gpu::matvec(c, L.k_b, {&act_b_, qo}, {&qcat_b_}, st, per_head_batch(qk, row, act_b_, B, ts, nh * row));
        gpu::mla_prompt_attention(c, {&qcat_b_}, nh * row, {L.cache}, {&lat_b_}, nh * kvl, B, mla_, m_.kq_scale, st);
        quantize_for(c, lat_b_, B * nh * kvl, {&L.v_b});
        gpu::matvec(c, L.v_b, {&lat_b_}, {&o_b_}, st, per_head_batch(kvl, hdv, lat_b_, B, nh * kvl, nh * hdv));
        quantize_for(c, o_b_, B * nh * hdv, {&L.wo});
        gpu::matvec(c, L.wo, {&o_b_}, {&xb_}, st, batch_cols(o_b_, B, nh * hdv, E, true));
        record_ffn_batch(c, il, B, L.ffn_norm, L.ffn_gate, L.ffn_up, L.ffn_down);
    }

    // per_head() over B columns: token j's heads at x + j * x_col, y + j * y_col (through x's mirror).
    gpu::MatvecOpts per_head_batch(uint32_t x_stride, uint32_t y_stride, const gpu::Buffer& x, uint32_t B, uint32_t x_col,
                                   uint32_t y_col) const {
        gpu::MatvecOpts o = with_xq(per_head(x_stride, y_stride), x);
        o.n_cols = B;
        o.x_col_stride = x_col;
        o.y_col_stride = y_col;
        return o;
    }

    void record_before_experts_batch(gpu::Cmd& c, int64_t il, uint32_t B) override {
        const GLayer& L = layers_[size_t(il)];
        if (L.sh_gate.rows) record_glu_batch(c, B, L.sh_gate, L.sh_up, L.sh_down);
    }

    void record_route_batch(gpu::Cmd& c, int64_t il, uint32_t B) override {
        const uint32_t NE = uint32_t(hp_.n_expert), K = uint32_t(top_k_);
        gpu::route_grouped(c, {&rb_}, NE, K, rb_, NE, {&rb_, NE + K}, group_route(il), B, route_row());
    }

    // hn_ready: the previous layer already wrote attn_norm(x) to hn. Leaves ffn_norm(x) in hn.
    void record_attention(gpu::Cmd& c, const GLayer& L, bool hn_ready) {
        const Hparams& h = hp_;
        const uint32_t kvl = uint32_t(m_.kv_lora), qk = uint32_t(m_.n_nope + h.n_rot),
                       hdv = uint32_t(h.head_dim_v);
        if (!hn_ready) norm_into_hn(c, L.attn_norm);  // attn_norm
        for (size_t i = 0; i < L.in.size(); ++i) {  // q_a (or q) and kv_cmpr_pe
            if (i) c.independent();
            gpu::matvec(c, L.in[i].w, {&hn_}, {&act_, L.in[i].y_off}, step_, with_xq({}, hn_));
        }
        if (m_.q_lora > 0) {  // q = Wq_b rmsnorm(q_a), through q_a's int8 mirror where it has one
            if (const gpu::Xq* q = xq(act_)) gpu::rmsnorm_q8(c, {&act_}, {&act_}, {&norms_, L.q_a_norm}, uint32_t(m_.q_lora), h.rms_eps, q);
            else gpu::rmsnorm(c, {&act_}, {&act_}, {&norms_, L.q_a_norm}, uint32_t(m_.q_lora), 1, 0, h.rms_eps, step_);
            gpu::matvec(c, L.wq_b, {&act_}, {&act_, q_off_}, step_, with_xq({}, act_));
        }
        // q_pe roped into qcat, Kcur = [kv_cmpr | k_pe] into the cache row; and q_nope_absorbed beside it
        gpu::mla_rope(c, {&act_, q_off_ + uint32_t(m_.n_nope)}, qk, {&act_, kva_off_}, {&qcat_}, {L.cache}, {&norms_, L.kv_a_norm},
                      mla_, h.rms_eps, step_);
        c.independent();
        gpu::matvec(c, L.k_b, {&act_, q_off_}, {&qcat_}, step_, per_head(qk, uint32_t(row_)));
        gpu::mla_attention(c, {&qcat_}, {L.cache}, {&part_}, {&lat_}, {&counts_}, mla_, m_.kq_scale, step_);
        gpu::matvec(c, L.v_b, {&lat_}, {&o_}, step_, per_head(kvl, hdv));               // o_h = Wv_b[h] lat_h
        quantize_for(c, o_, uint32_t(h.n_head) * hdv, {&L.wo});                          // Wo's integer dots
        add_matvec(c, L.wo, {&o_}, with_xq(add_then_norm(L.ffn_norm), o_));             // x += Wo o; ffn_norm
    }

    // A matvec per head: head h reads x at h * x_stride and writes y at h * y_stride floats.
    gpu::MatvecOpts per_head(uint32_t x_stride, uint32_t y_stride) const {
        gpu::MatvecOpts o;
        o.n_mats = uint32_t(hp_.n_head);
        o.x_mat_stride = x_stride;
        o.y_mat_stride = y_stride;
        return o;
    }

    // ---- loading

    void load() {
        const gguf::File& f = *file_;
        const Hparams& h = hp_;
        const int64_t qk = m_.n_nope + h.n_rot, kvl = m_.kv_lora;
        auto blk = [](int64_t il, const char* name, const char* suffix = "weight") {
            return "blk." + std::to_string(il) + "." + name + "." + suffix;
        };
        if (m_.temp_scale != 0.0f) throw gpu::GpuError("attention.temperature_scale has no GPU path yet");
        if (qk % 4 || kvl % 4) throw gpu::GpuError("key and latent widths must be multiples of 4 floats on the GPU");
        row_ = kvl + h.n_rot;
        // + the latent cache (+ legacy files' Wk_b transposed, in F32: legacy_kv_b())
        plan_vram(uint64_t(h.n_layer) * uint64_t(n_ctx_) * uint64_t(row_) * 4 +
                  (m_.legacy_kv_b ? uint64_t(h.n_layer * h.n_head * kvl * m_.n_nope) * 4 : 0));
        load_head();
        layers_.resize(size_t(h.n_layer));
        std::vector<MoeTensors> moe;
        int64_t n_sh = 0;
        for (int64_t il = 0; il < h.n_layer; ++il) {
            GLayer& L = layers_[size_t(il)];
            L.attn_norm = add_norm(f.require_tensor(blk(il, "attn_norm"), {h.n_embd}));
            const gguf::TensorInfo& kv_a = f.require_tensor(blk(il, "attn_kv_a_mqa"), {h.n_embd, row_});
            if (m_.q_lora > 0) {
                L.in = merge_rows(upload_rows({&f.require_tensor(blk(il, "attn_q_a"), {h.n_embd, m_.q_lora}), &kv_a}));
                L.q_a_norm = add_norm(f.require_tensor(blk(il, "attn_q_a_norm"), {m_.q_lora}));
                L.wq_b = upload(f.require_tensor(blk(il, "attn_q_b"), {m_.q_lora, h.n_head * qk}));
            } else {
                L.in = merge_rows(upload_rows({&f.require_tensor(blk(il, "attn_q"), {h.n_embd, h.n_head * qk}), &kv_a}));
            }
            L.kv_a_norm = add_norm(f.require_tensor(blk(il, "attn_kv_a_norm"), {kvl}));
            if (m_.legacy_kv_b) {
                legacy_kv_b(L, f.require_tensor(blk(il, "attn_kv_b"), {kvl, h.n_head * (m_.n_nope + h.head_dim_v)}));
            } else {
                L.k_b = upload(f.require_tensor(blk(il, "attn_k_b"), {m_.n_nope, kvl, h.n_head}));
                L.v_b = upload(f.require_tensor(blk(il, "attn_v_b"), {kvl, h.head_dim_v, h.n_head}));
            }
            L.wo = upload(f.require_tensor(blk(il, "attn_output"), {h.n_head * h.head_dim_v, h.n_embd}));
            L.ffn_norm = add_norm(f.require_tensor(blk(il, "ffn_norm"), {h.n_embd}));
            L.cache = &buffer(size_t(n_ctx_ * row_ * 4), Mem::Device, "latent cache");
            if (il < m_.n_dense_lead) {
                std::tie(L.ffn_gate, L.ffn_up) = upload_pair(f.require_tensor(blk(il, "ffn_gate"), {h.n_embd, h.n_ff}),
                                                             f.require_tensor(blk(il, "ffn_up"), {h.n_embd, h.n_ff}));
                L.ffn_down = upload(f.require_tensor(blk(il, "ffn_down"), {h.n_ff, h.n_embd}));
                continue;
            }
            if (f.find_tensor(blk(il, "exp_probs_b", "bias"))) {
                L.probs_b = tensor_f32(f, f.require_tensor(blk(il, "exp_probs_b", "bias"), {h.n_expert}));
                L.probs_b_off = add_norm(L.probs_b);
            }
            MoeTensors mt;
            if (f.find_tensor(blk(il, "ffn_gate_up_exps"))) {
                mt.gate_up_exps = &f.require_tensor(blk(il, "ffn_gate_up_exps"), {h.n_embd, 2 * h.n_ff_exp, h.n_expert});
            } else {
                mt.gate_exps = &f.require_tensor(blk(il, "ffn_gate_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
                mt.up_exps = &f.require_tensor(blk(il, "ffn_up_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
            }
            mt.down_exps = &f.require_tensor(blk(il, "ffn_down_exps"), {h.n_ff_exp, h.n_embd, h.n_expert});
            moe.push_back(mt);
            load_moe(il, f.require_tensor(blk(il, "ffn_gate_inp"), {h.n_embd, h.n_expert}), mt);
            if (m_.n_shared > 0) {
                n_sh = m_.n_shared * h.n_ff_exp;
                std::tie(L.sh_gate, L.sh_up) = upload_pair(f.require_tensor(blk(il, "ffn_gate_shexp"), {h.n_embd, n_sh}),
                                                           f.require_tensor(blk(il, "ffn_up_shexp"), {h.n_embd, n_sh}));
                L.sh_down = upload(f.require_tensor(blk(il, "ffn_down_shexp"), {n_sh, h.n_embd}));
            }
        }
        finish_load(std::move(moe), size_t(std::max(h.n_ff, n_sh)));

        // act_: the input projections' outputs ([q_a | kva], or [q | kva]), then q after Wq_b.
        const uint32_t in_rows = uint32_t((m_.q_lora > 0 ? m_.q_lora : h.n_head * qk) + row_);
        kva_off_ = in_rows - uint32_t(row_);
        q_off_ = m_.q_lora > 0 ? (in_rows + 3) / 4 * 4 : 0;  // vec4 loads of Wq_b's output by Wk_b
        act_ = device_floats(m_.q_lora > 0 ? size_t(q_off_ + h.n_head * qk) : size_t(in_rows), "q_a, kva and q");
        mla_ = {uint32_t(h.n_head), uint32_t(kvl), uint32_t(h.n_rot), uint32_t(n_ctx_)};
        qcat_ = device_floats(size_t(h.n_head * row_), "qcat: [q_abs | q_pe] per head");
        lat_ = device_floats(size_t(h.n_head * kvl), "latent attention output");
        o_ = device_floats(size_t(h.n_head * h.head_dim_v), "attention output");
        // int8 mirrors for the integer-dot products of Wq_b and Wo (V3's 24576x1536 and 7168x16384
        // Q4_K took 25 and 66 us a layer through floats; V3's widths decode 392-400 tok/s vs 351-355
        // on the H100, V2-Lite's unchanged)
        if (m_.q_lora > 0 && m_.q_lora % 32 == 0) mirror(act_, size_t(m_.q_lora));
        if (h.n_head * h.head_dim_v % 32 == 0) mirror(o_, size_t(h.n_head * h.head_dim_v));
        part_ = device_floats(gpu::mla_part_floats(mla_), "attention splits");
        counts_ = device_floats(size_t(h.n_head), "attention merge counters");
        ctx_.upload(counts_, 0, std::vector<uint32_t>(size_t(h.n_head), 0u).data(), size_t(h.n_head) * 4);
    }

    // Files from before the converter split attn_kv_b: kv_b (n_head * (n_nope + head_dim_v), kv_lora)
    // holds per head n_nope key rows, then head_dim_v value rows. Wv_b reads the value rows in place
    // (a batch with the stride of a head); the absorb needs the key rows' transpose (kv_lora, n_nope),
    // written here in F32 (the CPU's absorb_legacy() multiplies the dequantized rows in float too).
    void legacy_kv_b(GLayer& L, const gguf::TensorInfo& kvb) {
        const Hparams& h = hp_;
        const int64_t kvl = m_.kv_lora, nope = m_.n_nope, per_head = nope + h.head_dim_v;
        const uint64_t rb = uint64_t(row_bytes(kvb.type, kvl));
        L.v_b = upload(kvb);
        L.v_b.rows = uint32_t(h.head_dim_v);
        L.v_b.offset = uint64_t(nope) * rb;
        L.v_b.mat_stride = uint64_t(per_head) * rb;
        std::vector<float> rows(size_t(nope * kvl)), t(size_t(h.n_head * kvl * nope));
        for (int64_t hh = 0; hh < h.n_head; ++hh) {
            dequantize_row(kvb.type, file_->data(kvb) + uint64_t(hh * per_head) * rb, rows.data(), nope * kvl);
            for (int64_t d = 0; d < nope; ++d)
                for (int64_t c = 0; c < kvl; ++c) t[size_t((hh * kvl + c) * nope + d)] = rows[size_t(d * kvl + c)];
        }
        gpu::Buffer& b = buffer(t.size() * 4, Mem::Device, "Wk_b transposed from attn_kv_b");
        ctx_.upload(b, 0, t.data(), t.size() * 4);
        L.k_b = {&b, WT_F32, 0, uint32_t(kvl), uint32_t(nope), uint64_t(kvl * nope) * 4};
    }

    MlaParams m_;
    bool host_route_;
    int64_t row_ = 0;  // kv_lora + n_rot: one cached token of one layer
    std::vector<GLayer> layers_;
    gpu::MlaShape mla_{};
    uint32_t q_off_ = 0, kva_off_ = 0;  // in act_
    gpu::Buffer act_, qcat_, lat_, o_, part_, counts_;
    gpu::Buffer act_b_, qcat_b_, lat_b_, o_b_;  // prompt batches' (batch_max() tokens)
    ds2::RouteScratch rs_;
};

}  // namespace

std::unique_ptr<Model> load_deepseek2_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    MlaParams m;
    int64_t top_k = 0;
    Hparams h = ds2::deepseek2_hparams(*file, opt, &m, &top_k);
    const int device = gpu_pick_device(opt.gpu);
    return std::make_unique<DeepSeek2Gpu>(std::move(file), opt, std::move(h), std::move(m), top_k, device);
}

#endif  // SLUICE_VULKAN

}  // namespace sluice
