// Qwen3-MoE / Qwen3 on a GPU through Vulkan (shaders/): the forward of qwen3moe.cpp, op for op, with
// the dense weights and the KV cache in VRAM. qwen3moe.cpp stays the reference this backend is tested
// against (tests/test_gpu_model.cpp), and the state blob is the same, so snapshots move between them.
//
// Where the routed experts live (placement()):
//   resident  all experts fit in VRAM: the router's top-k runs on the GPU too, and a token is one
//             submit of a command buffer recorded once (what changes per token is in the step buffer).
//   cache     they don't: VRAM holds an LRU cache of experts per layer (gpu_expert_cache bytes). The
//             token runs in segments that end at each MoE router; the CPU reads the router logits,
//             picks the top-k (router_topk_softmax, as the CPU path does), uploads the missing experts
//             from the ExpertSource through a staging buffer, and the next segment computes all k
//             from VRAM.
//   cpu       as cache, but the CPU computes the experts (MoeFfn) and the next segment adds their sum.
// GpuExperts::Auto runs the first tokens in cache and then in cpu placement and keeps the faster.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <tuple>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/models/qwen3moe.h"
#include "engine/moe.h"
#include "engine/state.h"

#ifdef SLUICE_VULKAN
#include "shaders/ops.h"
#include "shaders/slot_cache.h"
#include "shaders/vk_runtime.h"
#endif

namespace sluice {

#ifndef SLUICE_VULKAN
std::unique_ptr<Model> load_qwen3moe_gpu(std::unique_ptr<gguf::File>, const ModelOptions&) {
    throw Error("this sluice was built without Vulkan (SLUICE_VULKAN=OFF)");
}
#else

namespace {

using gpu::Buffer;
using gpu::Mat;
using gpu::Mem;
using gpu::Vec;
using Clock = std::chrono::steady_clock;

enum class Place { Resident, Cache, Cpu };
const char* place_name(Place p) { return p == Place::Resident ? "resident" : p == Place::Cache ? "VRAM cache" : "CPU"; }

struct GLayer {
    uint32_t attn_norm = 0, q_norm = 0, k_norm = 0, ffn_norm = 0;  // float offsets in norms_
    // q, k, v projections into q_ (q, raw k, raw v): runs of one type share a buffer and a dispatch
    struct Proj {
        Mat w;
        uint32_t y_off;
    };
    std::vector<Proj> qkv;
    Mat wo;                      // as qwen3moe.cpp's Layer
    Mat router;                  // (n_expert, n_embd); rows 0 for a dense layer
    Mat gate_exps, up_exps, down_exps;  // resident: the whole tensors (batch = experts); cache: the slots
    Mat ffn_gate, ffn_up, ffn_down;
    Buffer* k = nullptr;         // KV cache: (n_ctx, n_head_kv * head_dim)
    Buffer* v = nullptr;         //           (n_ctx, n_head_kv * head_dim_v)
    std::unique_ptr<gpu::SlotCache> slots;
    uint64_t expert_bytes[3] = {0, 0, 0};  // one expert's gate, up, down
};

// "auto": the first usable GPU, discrete before integrated; software drivers (lavapipe) only by index.
int pick_device(const std::string& spec) {
    const auto devs = gpu::list_devices();
    if (spec == "auto") {
        int best = -1;
        std::string seen;
        for (const gpu::DeviceInfo& d : devs) {
            seen += (seen.empty() ? "" : ", ") + std::to_string(d.index) + ": " + d.name +
                    (d.usable ? (d.is_cpu ? " (software)" : "") : " (" + d.why_not + ")");
            if (d.usable && !d.is_cpu && (best < 0 || (!d.unified && devs[size_t(best)].unified))) best = d.index;
        }
        if (best < 0) throw gpu::GpuError("no GPU found" + (seen.empty() ? std::string() : " (Vulkan devices: " + seen + ")"));
        return best;
    }
    char* end = nullptr;
    const long i = std::strtol(spec.c_str(), &end, 10);
    if (spec.empty() || *end || i < 0) throw Error("--gpu expects auto, none or a device index, got '" + spec + "'");
    if (size_t(i) >= devs.size())
        throw gpu::GpuError("no Vulkan device " + spec + " (" + std::to_string(devs.size()) + " found)");
    return int(i);
}

class Qwen3MoeGpu final : public Model {
public:
    Qwen3MoeGpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, int64_t top_k, int device)
        : Model(std::move(file), opt, std::move(hp)), opt_(opt), top_k_(top_k),
          ctx_(device, opt.gpu_emulate_discrete), body_(ctx_), head_(ctx_), upload_(ctx_) {
        load();
        record();
        placement_ = describe();
    }

    const float* forward(int32_t token) override { return step(token, true); }

    std::vector<float> forward_tokens(std::span<const int32_t> tokens, bool all) override {
        std::vector<float> out;
        const size_t nv = size_t(hp_.n_vocab);
        for (size_t i = 0; i < tokens.size(); ++i) {
            const bool want = all || i + 1 == tokens.size();  // the head only where logits are read
            const float* l = step(tokens[i], want);
            if (want) out.insert(out.end(), l, l + nv);
        }
        return out;
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

    GpuCounters gpu_counters() const override { return counters_; }

private:
    // ---- per token

    const float* step(int32_t token, bool want_logits) {
        check_token(token);
        TokenScope stats(*this);  // the token's statistics (expert reads, hit rate, tok/s) reach the board
        const Hparams& h = hp_;
        const auto t0 = Clock::now();
        gpu::write_step(step_host_.mapped(), uint32_t(n_past_), uint32_t(token), uint32_t(h.n_rot), h.rope_base);
        double gpu_ms = 0;
        if (place_ == Place::Resident) {
            body_.submit();
        } else {
            std::vector<gpu::Cmd*>& segs = segments_for(place_);
            for (size_t s = 0; s < segs.size(); ++s) {
                if (s > 0) moe_on_host(sync_layers_[s - 1]);
                segs[s]->submit();
                if (s + 1 < segs.size()) {  // the next segment needs this one's router logits
                    segs[s]->wait();
                    gpu_ms += segs[s]->last_gpu_ms();
                }
            }
            body_last_ = segs.back();
        }
        gpu::Cmd& last = place_ == Place::Resident ? body_ : *body_last_;
        if (want_logits) head_.submit();
        last.wait();
        gpu_ms += last.last_gpu_ms();
        if (want_logits) {
            head_.wait();
            gpu_ms += head_.last_gpu_ms();
        }
        counters_.gpu_s_last_token = gpu_ms * 1e-3;
        ++n_past_;
        probe(std::chrono::duration<double>(Clock::now() - t0).count());
        return want_logits ? static_cast<const float*>(logits_rb_.mapped()) : nullptr;
    }

    // Between segments: the router of layer il ran on the GPU; pick its experts and either make sure
    // they are in VRAM (cache) or compute them here (cpu), writing what the next segment reads.
    void moe_on_host(int64_t il) {
        const Hparams& h = hp_;
        const float* rb = static_cast<const float*>(router_rb_.mapped());
        router_topk_softmax(rb, h.n_expert, top_k_, true, ids_.data(), weights_.data());
        auto* in = static_cast<uint8_t*>(moe_host_.mapped());
        if (place_ == Place::Cpu) {
            experts_->fetch(il, ids_.data(), top_k_, fetched_.data());
            moe_cpu_->run(fetched_.data(), weights_.data(), top_k_, rb + h.n_expert, y_cpu_.data(), *pool_);
            std::memcpy(in, y_cpu_.data(), size_t(h.n_embd) * 4);
            return;
        }
        GLayer& L = layers_[size_t(il)];
        std::vector<int32_t> slots(static_cast<size_t>(top_k_)), miss_ids;
        std::vector<uint32_t> miss_slots;
        for (int64_t j = 0; j < top_k_; ++j) {
            bool hit;
            slots[size_t(j)] = int32_t(L.slots->get(ids_[size_t(j)], &hit));
            if (hit) {
                ++counters_.vram_cache_hits;
            } else {
                ++counters_.vram_cache_misses;
                miss_ids.push_back(ids_[size_t(j)]);
                miss_slots.push_back(uint32_t(slots[size_t(j)]));
            }
        }
        std::memcpy(in, slots.data(), size_t(top_k_) * 4);
        std::memcpy(in + 4 * top_k_, weights_.data(), size_t(top_k_) * 4);
        if (miss_ids.empty()) return;
        // Misses: host bytes from the ExpertSource -> staging -> their slots (before the next segment,
        // which starts with a barrier).
        experts_->fetch(il, miss_ids.data(), int64_t(miss_ids.size()), fetched_.data());
        upload_.begin();
        uint8_t* st = static_cast<uint8_t*>(miss_staging_.mapped());
        struct Piece {
            const void* src;
            size_t off, n;
        };
        std::vector<Piece> pieces;
        size_t off = 0;
        const Mat* dst[3] = {&L.gate_exps, &L.up_exps, &L.down_exps};
        for (size_t m = 0; m < miss_ids.size(); ++m) {
            const WeightView* src[3] = {&fetched_[m].gate, &fetched_[m].up, &fetched_[m].down};
            for (int t = 0; t < 3; ++t) {
                const size_t n = L.expert_bytes[t];
                pieces.push_back({src[t]->data, off, n});
                upload_.copy(miss_staging_, off, *dst[t]->buf, dst[t]->offset + miss_slots[m] * n, n);
                upload_.independent();
                off += n;
            }
        }
        // Host copies in parallel: one thread's memcpy is far below the PCIe bandwidth.
        constexpr size_t kPart = 1u << 20;
        std::vector<Piece> parts;
        for (const Piece& p : pieces)
            for (size_t o = 0; o < p.n; o += kPart)
                parts.push_back({static_cast<const uint8_t*>(p.src) + o, p.off + o, std::min(kPart, p.n - o)});
        pool_->parallel_for(int64_t(parts.size()), 1, [&](int64_t a, int64_t b, int) {
            for (int64_t i = a; i < b; ++i) std::memcpy(st + parts[size_t(i)].off, parts[size_t(i)].src, parts[size_t(i)].n);
        });
        upload_.end();
        upload_.submit();
    }

    // GpuExperts::Auto with experts outside VRAM: 4 tokens in cache placement, 4 on the CPU (the first
    // of each ignored: warm-up), then the faster for good.
    void probe(double seconds) {
        if (!probing_) return;
        ++probe_n_;
        if (probe_n_ % 4 != 1) probe_s_[place_ == Place::Cache ? 0 : 1] += seconds;
        if (probe_n_ == 4) place_ = Place::Cpu;
        if (probe_n_ == 8) {
            place_ = probe_s_[0] <= probe_s_[1] ? Place::Cache : Place::Cpu;
            probing_ = false;
            placement_ = describe() + " (measured " + std::to_string(int(3 / probe_s_[0])) + " tok/s in the VRAM cache, " +
                         std::to_string(int(3 / probe_s_[1])) + " on the CPU)";
        }
    }

    // ---- recording (once; buffers and offsets never change)

    void record() {
        const Hparams& h = hp_;
        for (int64_t il = 0; il < h.n_layer; ++il)
            if (layers_[size_t(il)].router.rows) sync_layers_.push_back(il);
        if (place_ == Place::Resident) {
            body_.begin();
            record_layers(body_, Place::Resident, -1, h.n_layer);
            body_.end();
        }
        head_.begin();
        head_.barrier();  // after the body, submitted just before
        // hn = output_norm(x): written by the last layer's down projection (experts or FFN) or combine
        gpu::matvec(head_, output_, {&hn_}, {&logits_}, step_);
        head_.copy(logits_, 0, logits_rb_, 0, size_t(h.n_vocab) * 4);
        head_.end();
    }

    // Segments of a token for cache / cpu placement (recorded on first use): segment 0 runs up to the
    // first MoE router, segment s > 0 starts with the experts of sync layer s - 1.
    std::vector<gpu::Cmd*>& segments_for(Place p) {
        auto& segs = segments_[p == Place::Cache ? 0 : 1];
        if (!segs.empty()) return segs;
        const int64_t n_layer = hp_.n_layer;
        for (size_t s = 0; s <= sync_layers_.size(); ++s) {
            owned_cmds_.emplace_back(ctx_);
            gpu::Cmd& c = owned_cmds_.back();
            const int64_t from = s == 0 ? -1 : sync_layers_[s - 1];
            const int64_t to = s < sync_layers_.size() ? sync_layers_[s] : n_layer;
            c.begin();
            record_layers(c, p, from, to);
            c.end();
            segs.push_back(&c);
        }
        return segs;
    }

    // Records from layer `from`'s experts (from < 0: the embedding) through the attention and router
    // of layer `to` (to == n_layer: through the last layer). Resident placement runs everything.
    void record_layers(gpu::Cmd& c, Place p, int64_t from, int64_t to) {
        const Hparams& h = hp_;
        c.barrier();  // after the previous segment and any expert uploads
        c.copy(step_host_, 0, step_, 0, gpu::kStepBytes);
        c.independent();
        c.copy(moe_host_, 0, moe_in_, 0, moe_host_.size());
        if (from < 0) {
            gpu::getrows(c, embd_, {&x_}, step_);
        } else {
            record_experts(c, p, from);
        }
        for (int64_t il = from + 1; il <= std::min<int64_t>(to, h.n_layer - 1); ++il) {
            const GLayer& L = layers_[size_t(il)];
            record_attention(c, L, il > 0);  // ffn_norm(x) in hn after it
            if (!L.router.rows) {
                record_dense_ffn(c, il);
                continue;
            }
            const Route r = route_mode();
            gpu::MatvecOpts ro;
            if (p == Place::Resident && r == Route::Tail) {  // ffn_moe_topk in the router's last workgroup
                ro.topk = uint32_t(top_k_);
                ro.topk_ids_off = route_ids();
                ro.topk_w_off = route_w();
                ro.route_renorm = true;
                ro.topk_count = {&hn_, uint32_t(h.n_embd)};
            }
            gpu::matvec(c, L.router, {&hn_}, {&route_}, step_, ro);  // ffn_moe_logits
            if (p == Place::Resident) {
                if (r == Route::Dispatch)
                    gpu::topk_softmax(c, {&route_}, uint32_t(h.n_expert), uint32_t(top_k_), true, route_, route_ids(),
                                      {&route_, route_w()});
                record_experts(c, p, il);
            } else if (il == to) {  // segment ends: the host reads logits (and hn for the CPU)
                c.copy(route_, 0, router_rb_, 0, size_t(h.n_expert) * 4);
                c.independent();
                c.copy(hn_, 0, router_rb_, size_t(h.n_expert) * 4, size_t(h.n_embd) * 4);
            }
        }
    }

    // hn_ready: the previous layer (its experts' combine or FFN down) already wrote attn_norm(x) to hn.
    // Leaves ffn_norm(x) in hn: the output projection's last workgroup writes it.
    void record_attention(gpu::Cmd& c, const GLayer& L, bool hn_ready) {
        const Hparams& h = hp_;
        const uint32_t E = uint32_t(h.n_embd), qd = uint32_t(h.n_head * h.head_dim), kd = uint32_t(h.n_head_kv * h.head_dim),
                       vd = uint32_t(h.n_head_kv * h.head_dim_v);
        if (!hn_ready) gpu::rmsnorm(c, {&x_}, {&hn_}, {&norms_, L.attn_norm}, E, 1, 0, h.rms_eps, step_);  // attn_norm
        for (size_t i = 0; i < L.qkv.size(); ++i) {  // q, raw k, raw v (attention_qk puts k and v in the cache)
            if (i) c.independent();
            gpu::matvec(c, L.qkv[i].w, {&hn_}, {&q_, L.qkv[i].y_off}, step_);
        }
        // Qcur_normed, Kcur_normed, RoPE, k and v into the cache rows, kqv_out: one dispatch
        gpu::attention_qk(c, {&q_}, {&q_, qd}, {&q_, qd + kd}, {L.k}, {L.v}, kd, vd, {&part_}, {&att_}, attn_,
                          {{&norms_, L.q_norm}, {&norms_, L.k_norm}, uint32_t(h.n_rot), h.rms_eps}, {&counts_}, step_);
        gpu::matvec(c, L.wo, {&att_}, {&x_}, step_, add_then_norm(L.ffn_norm));  // x += Wo att; ffn_norm
    }

    // y += W x, then hn = rmsnorm(y) * the norm at norm_off (MatvecOpts::norm_out): the residual
    // stream's next norm without a dispatch of its own. hn_'s last word counts the workgroups.
    gpu::MatvecOpts add_then_norm(uint32_t norm_off) {
        gpu::MatvecOpts o;
        o.accumulate = true;
        o.norm_out = &hn_vec_;
        o.norm_w = {&norms_, norm_off};
        o.norm_eps = hp_.rms_eps;
        o.norm_count = uint32_t(hp_.n_embd);
        return o;
    }
    uint32_t next_norm(int64_t il) const { return il + 1 < hp_.n_layer ? layers_[size_t(il + 1)].attn_norm : out_norm_; }

    // x += sum_j w_j down_j(silu(gate_j hn) * up_j hn) over layer il's k experts: ids from the GPU's
    // top-k (resident) or slots from the host (cache); cpu placement only adds the host's sum. The
    // next norm of x goes to hn too (the next layer's attn_norm, or the output norm).
    void record_experts(gpu::Cmd& c, Place p, int64_t il) {
        const Hparams& h = hp_;
        const GLayer& L = layers_[size_t(il)];
        const uint32_t E = uint32_t(h.n_embd), F = uint32_t(h.n_ff_exp), K = uint32_t(top_k_);
        const Vec hn{&hn_}, norm{&norms_, next_norm(il)};
        if (p == Place::Cpu) {
            gpu::moe_combine(c, {&x_}, {&moe_in_}, {&one_}, E, 1, &hn, norm, h.rms_eps);
            return;
        }
        const bool resident = p == Place::Resident;
        const Buffer& ids = resident ? route_ : moe_in_;  // ids, then their weights
        gpu::MatvecOpts o;
        o.n_mats = K;
        o.ids = &ids;
        o.ids_off = resident ? route_ids() : 0;
        o.y_mat_stride = F;
        if (fused(L.gate_exps, L.up_exps)) {  // ffn_moe_swiglu of ffn_moe_gate, ffn_moe_up in one pass
            o.swiglu_up = &L.up_exps;
            gpu::matvec(c, L.gate_exps, {&hn_}, {&gate_}, step_, o);
            o.swiglu_up = nullptr;
        } else {
            gpu::matvec(c, L.gate_exps, {&hn_}, {&gate_}, step_, o);  // ffn_moe_gate
            c.independent();
            gpu::matvec(c, L.up_exps, {&hn_}, {&up_}, step_, o);      // ffn_moe_up
            gpu::swiglu(c, {&gate_}, {&up_}, {&gate_}, K * F);        // ffn_moe_swiglu
        }
        // ffn_moe_down, ffn_moe_out (the weighted sum), the residual add and the next norm: one dispatch
        gpu::MatvecOpts d = add_then_norm(next_norm(il));
        d.n_mats = K;
        d.ids = &ids;
        d.ids_off = o.ids_off;
        d.x_mat_stride = F;
        d.sum_mats = true;
        d.sum_w_off = resident ? route_w() : K;
        gpu::matvec(c, L.down_exps, {&gate_}, {&x_}, step_, d);
    }

    static bool fused(const Mat& gate, const Mat& up) { return gate.buf == up.buf && gate.type == up.type; }
    // Where a resident MoE layer's top-k is computed: the router matvec's last workgroup (MV_TOPK), or
    // a dispatch of its own (more than MV_ROUTE_MAX experts or MV_TOPK_MAX_K picks;
    // SLUICE_GPU_ROUTE=dispatch in the environment, for measurements).
    enum class Route { Tail, Dispatch };
    Route route_mode() const {
        static const bool dispatch = [] {
            const char* e = std::getenv("SLUICE_GPU_ROUTE");
            return e && std::string(e) == "dispatch";
        }();
        if (hp_.n_expert > MV_ROUTE_MAX || uint64_t(top_k_) > MV_TOPK_MAX_K || dispatch) return Route::Dispatch;
        return Route::Tail;
    }
    // route_: router logits (n_expert), then the top-k's ids (as ints) and weights.
    uint32_t route_ids() const { return uint32_t(hp_.n_expert); }
    uint32_t route_w() const { return uint32_t(hp_.n_expert + top_k_); }

    void record_dense_ffn(gpu::Cmd& c, int64_t il) {
        const GLayer& L = layers_[size_t(il)];
        if (fused(L.ffn_gate, L.ffn_up)) {
            gpu::MatvecOpts o;
            o.swiglu_up = &L.ffn_up;
            gpu::matvec(c, L.ffn_gate, {&hn_}, {&gate_}, step_, o);
        } else {
            gpu::matvec(c, L.ffn_gate, {&hn_}, {&gate_}, step_);
            c.independent();
            gpu::matvec(c, L.ffn_up, {&hn_}, {&up_}, step_);
            gpu::swiglu(c, {&gate_}, {&up_}, {&gate_}, uint32_t(hp_.n_ff));
        }
        gpu::matvec(c, L.ffn_down, {&gate_}, {&x_}, step_, add_then_norm(next_norm(il)));  // x += down; next norm
    }

    // ---- loading

    Buffer& buffer(size_t bytes, Mem mem, const std::string& what) {
        bufs_.push_back(ctx_.alloc(bytes, mem, what));
        if (mem == Mem::Device) counters_.vram_bytes += bytes;
        return bufs_.back();
    }

    // How a 2-D tensor ne = (cols, rows) (or 3-D: a batch of such matrices) is read on the GPU; an
    // Error when no shader can.
    Mat upload_layout(const gguf::TensorInfo& t) {
        const gpu::TypeLayout* tl = gpu::gpu_type(uint32_t(t.type));
        if (!tl) throw gpu::GpuError("tensor '" + t.name + "' has type " + type_name(t.type) + ", which has no GPU kernel yet");
        const int64_t cols = t.ne[0], rows = t.ne[1];
        if (cols % tl->chunk)
            throw gpu::GpuError("tensor '" + t.name + "': rows of " + std::to_string(cols) + " " + tl->suffix +
                                " values are not a multiple of " + std::to_string(tl->chunk));
        return {nullptr, uint32_t(t.type), 0, uint32_t(rows), uint32_t(cols), uint64_t(rows * row_bytes(t.type, cols))};
    }

    // The tensor uploaded whole, in its own buffer.
    Mat upload(const gguf::TensorInfo& t) {
        Mat m = upload_layout(t);
        Buffer& b = buffer(size_t(t.nbytes), Mem::Device, "tensor '" + t.name + "'");
        ctx_.upload(b, 0, file_->data(t), size_t(t.nbytes));
        m.buf = &b;
        return m;
    }

    // Tensors of the same type and row length uploaded into one buffer, each after the one before, so
    // that one dispatch reads them as one matrix: gate + up of an FFN (2-D, or 3-D expert tensors;
    // MatvecOpts::swiglu_up), q + k + v. A tensor of another type starts a buffer of its own.
    std::vector<Mat> upload_rows(std::initializer_list<const gguf::TensorInfo*> ts) {
        std::vector<Mat> out;
        std::vector<const gguf::TensorInfo*> run;
        auto flush = [&] {
            uint64_t total = 0;
            std::string names;
            for (const gguf::TensorInfo* t : run) total += t->nbytes, names += (names.empty() ? "'" : " + '") + t->name + "'";
            Buffer& b = buffer(size_t(total), Mem::Device, "tensors " + names);
            uint64_t off = 0;
            for (const gguf::TensorInfo* t : run) {
                Mat m = upload_layout(*t);
                ctx_.upload(b, size_t(off), file_->data(*t), size_t(t->nbytes));
                m.buf = &b;
                m.offset = off;
                off += t->nbytes;
                out.push_back(m);
            }
            run.clear();
        };
        for (const gguf::TensorInfo* t : ts) {
            if (!run.empty() && (t->type != run[0]->type || t->ne[0] != run[0]->ne[0])) flush();
            run.push_back(t);
        }
        flush();
        return out;
    }
    std::pair<Mat, Mat> upload_pair(const gguf::TensorInfo& g, const gguf::TensorInfo& u) {
        const std::vector<Mat> m = upload_rows({&g, &u});
        return {m[0], m[1]};
    }

    // q, k, v: consecutive matrices in one buffer become one matrix (rows add up), one dispatch.
    static std::vector<GLayer::Proj> merge_rows(const std::vector<Mat>& mats) {
        std::vector<GLayer::Proj> out;
        uint32_t y = 0;
        for (const Mat& m : mats) {
            GLayer::Proj* last = out.empty() ? nullptr : &out.back();
            if (last && last->w.buf == m.buf && last->w.offset + last->w.mat_stride == m.offset && last->w.type == m.type) {
                last->w.rows += m.rows;
                last->w.mat_stride += m.mat_stride;  // 2-D: the whole matrix
            } else {
                out.push_back({m, y});
            }
            y += m.rows;
        }
        return out;
    }

    uint32_t add_norm(const gguf::TensorInfo& t) {
        const auto v = tensor_f32(*file_, t);
        const uint32_t off = uint32_t(norms_host_.size());
        norms_host_.insert(norms_host_.end(), v.begin(), v.end());
        return off;
    }

    void load() {
        const gguf::File& f = *file_;
        const Hparams& h = hp_;
        auto blk = [](int64_t il, const char* name) { return "blk." + std::to_string(il) + "." + name + ".weight"; };
        const uint64_t kd = uint64_t(h.n_head_kv * h.head_dim), vd = uint64_t(h.n_head_kv * h.head_dim_v);
        if (h.n_rot / 2 > STEP_ROPE_MAX) throw gpu::GpuError("rope.dimension_count above the GPU's limit");

        // What VRAM must hold before any expert: every tensor that is not a routed expert, the KV cache.
        uint64_t dense = 0, experts_total = 0;
        for (const gguf::TensorInfo& t : f.tensors())
            (t.n_dims == 3 && t.name.find("_exps") != std::string::npos ? experts_total : dense) += t.nbytes;
        const uint64_t kv_bytes = uint64_t(h.n_layer) * uint64_t(n_ctx_) * (kd + vd) * 4;
        const uint64_t budget = ctx_.vram_budget(), margin = 256ull << 20;
        if (dense + kv_bytes + margin > budget)
            throw gpu::GpuError(ctx_.info().name + " has " + std::to_string(budget >> 20) + " MiB free; the dense weights and KV cache need " +
                                std::to_string((dense + kv_bytes + margin) >> 20) + " MiB");
        const uint64_t room = budget - dense - kv_bytes - margin;
        const uint64_t cache = opt_.gpu_expert_cache ? std::min(opt_.gpu_expert_cache, room) : room;
        // Resident experts are uploaded from the mapping. Streaming (--io direct / page-cache) leaves
        // expert ranges unreadable through file_->data(): then every expert reaches VRAM through the
        // ExpertSource (a cache that may hold them all) or stays on the CPU.
        const bool experts_mapped = f.mapped();
        place_ = experts_total <= cache && experts_mapped ? Place::Resident
                 : opt_.gpu_experts == GpuExperts::Cpu ? Place::Cpu : Place::Cache;

        const gguf::TensorInfo& tok = f.require_tensor("token_embd.weight", {h.n_embd, h.n_vocab});
        embd_ = upload(tok);
        const gguf::TensorInfo* out = f.find_tensor("output.weight");
        output_ = out ? upload(f.require_tensor("output.weight", {h.n_embd, h.n_vocab})) : embd_;
        out_norm_ = add_norm(f.require_tensor("output_norm.weight", {h.n_embd}));

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
            L.router = upload(f.require_tensor(blk(il, "ffn_gate_inp"), {h.n_embd, h.n_expert}));
            MoeTensors mt;
            if (f.find_tensor(blk(il, "ffn_gate_up_exps"))) {
                mt.gate_up_exps = &f.require_tensor(blk(il, "ffn_gate_up_exps"), {h.n_embd, 2 * h.n_ff_exp, h.n_expert});
            } else {
                mt.gate_exps = &f.require_tensor(blk(il, "ffn_gate_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
                mt.up_exps = &f.require_tensor(blk(il, "ffn_up_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
            }
            mt.down_exps = &f.require_tensor(blk(il, "ffn_down_exps"), {h.n_ff_exp, h.n_embd, h.n_expert});
            moe.push_back(mt);
            load_experts(L, mt, cache / uint64_t(h.n_layer));
        }
        norms_ = ctx_.alloc(norms_host_.size() * 4, Mem::Device, "norm weights");
        counters_.vram_bytes += norms_host_.size() * 4;
        ctx_.upload(norms_, 0, norms_host_.data(), norms_host_.size() * 4);
        if (h.n_expert > 0) {
            experts_ = make_expert_source(f, std::move(moe), h.n_embd, h.n_ff_exp, opt_);
            moe_cpu_ = std::make_unique<MoeFfn>(h.n_embd, h.n_ff_exp, top_k_);
            fetched_.resize(size_t(top_k_));
        }
        probing_ = place_ == Place::Cache && opt_.gpu_experts == GpuExperts::Auto;
        alloc_activations();
    }

    // Resident: the expert tensors whole (gate and up of a fused tensor are row ranges of one matrix).
    // Otherwise this layer's cache: `bytes` / one expert's bytes slots of gate, up and down.
    void load_experts(GLayer& L, const MoeTensors& mt, uint64_t bytes) {
        const int64_t F = hp_.n_ff_exp, E = hp_.n_embd;
        const gguf::TensorInfo& g = mt.gate_up_exps ? *mt.gate_up_exps : *mt.gate_exps;
        const gguf::TensorInfo& u = mt.gate_up_exps ? *mt.gate_up_exps : *mt.up_exps;
        const gguf::TensorInfo& d = *mt.down_exps;
        L.expert_bytes[0] = uint64_t(F * row_bytes(g.type, E));
        L.expert_bytes[1] = uint64_t(F * row_bytes(u.type, E));
        L.expert_bytes[2] = uint64_t(E * row_bytes(d.type, F));
        if (place_ == Place::Resident) {
            if (mt.gate_up_exps) {
                L.gate_exps = upload(g);
                L.gate_exps.rows = uint32_t(F);
                L.up_exps = L.gate_exps;
                L.up_exps.offset = L.expert_bytes[0];  // up rows follow gate rows in each expert's slab
            } else {
                std::tie(L.gate_exps, L.up_exps) = upload_pair(g, u);
            }
            L.down_exps = upload(d);
            return;
        }
        const uint64_t per = L.expert_bytes[0] + L.expert_bytes[1] + L.expert_bytes[2];
        uint64_t n = std::min<uint64_t>(bytes / per, uint64_t(hp_.n_expert));
        for (int t = 0; t < 3; ++t) n = std::min<uint64_t>(n, ctx_.info().max_buffer_range / L.expert_bytes[t]);
        if (n < uint64_t(top_k_)) {
            if (opt_.gpu_experts == GpuExperts::Gpu)
                throw gpu::GpuError("the VRAM expert cache holds " + std::to_string(n) + " experts per layer; a token needs " +
                                    std::to_string(top_k_));
            place_ = Place::Cpu;
        }
        if (place_ == Place::Cpu) return;
        L.slots = std::make_unique<gpu::SlotCache>(uint32_t(n));
        const gguf::TensorInfo* src[3] = {&g, &u, &d};
        Mat* dst[3] = {&L.gate_exps, &L.up_exps, &L.down_exps};
        const bool pair = g.type == u.type;  // gate slots then up slots in one buffer (fused SwiGLU)
        Buffer* shared = pair ? &buffer(size_t(2 * n * L.expert_bytes[0]), Mem::Device, "expert cache") : nullptr;
        for (int t = 0; t < 3; ++t) {
            upload_layout(*src[t]);  // a type the shaders read
            Buffer& b = t < 2 && pair ? *shared : buffer(size_t(n * L.expert_bytes[t]), Mem::Device, "expert cache");
            const bool down = t == 2;
            *dst[t] = {&b, uint32_t(src[t]->type), t == 1 && pair ? n * L.expert_bytes[0] : 0, uint32_t(down ? E : F),
                       uint32_t(down ? F : E), L.expert_bytes[t]};
        }
        max_expert_bytes_ = std::max(max_expert_bytes_, per);
    }

    void alloc_activations() {
        const Hparams& h = hp_;
        const size_t E = size_t(h.n_embd), K = size_t(std::max<int64_t>(top_k_, 1));
        const size_t ff = std::max(size_t(h.n_ff), K * size_t(h.n_ff_exp));
        auto dev = [&](size_t floats, const char* what) {
            counters_.vram_bytes += floats * 4;
            return ctx_.alloc(floats * 4, Mem::Device, what);
        };
        x_ = dev(E, "x");
        hn_ = dev(E + 1, "hn (+ a workgroup counter)");
        ctx_.upload(hn_, 0, std::vector<float>(E + 1, 0.0f).data(), (E + 1) * 4);
        q_ = dev(size_t(h.n_head * h.head_dim + h.n_head_kv * (h.head_dim + h.head_dim_v)), "q and this position's raw k, v");
        att_ = dev(size_t(h.n_head * h.head_dim_v), "attention output");
        attn_ = {uint32_t(h.n_head), uint32_t(h.n_head_kv), uint32_t(h.head_dim), uint32_t(h.head_dim_v),
                 gpu::attn_splits(uint64_t(n_ctx_))};
        part_ = dev(gpu::attn_part_floats(attn_), "attention splits");
        counts_ = dev(size_t(h.n_head), "attention merge counters");
        ctx_.upload(counts_, 0, std::vector<uint32_t>(size_t(h.n_head), 0u).data(), size_t(h.n_head) * 4);
        logits_ = dev(size_t(h.n_vocab), "logits");
        route_ = dev(size_t(std::max<int64_t>(h.n_expert, 1)) + 2 * K, "router logits, top-k ids and weights");
        gate_ = dev(ff, "gate");
        up_ = dev(ff, "up");
        const float one = 1.0f;
        one_ = dev(1, "one");
        ctx_.upload(one_, 0, &one, 4);
        step_ = dev(gpu::kStepBytes / 4, "step");
        step_host_ = ctx_.alloc(gpu::kStepBytes, Mem::Upload, "step");
        // Inputs of a segment's experts written by the host: slots + weights (cache) or their sum (cpu).
        moe_in_ = dev(std::max(E, 2 * K), "expert inputs");
        moe_host_ = ctx_.alloc(moe_in_.size(), Mem::Upload, "expert inputs");
        logits_rb_ = ctx_.alloc(size_t(h.n_vocab) * 4, Mem::Readback, "logits readback");
        router_rb_ = ctx_.alloc((size_t(std::max<int64_t>(h.n_expert, 1)) + E) * 4, Mem::Readback, "router readback");
        if (max_expert_bytes_) miss_staging_ = ctx_.alloc(size_t(max_expert_bytes_) * K, Mem::Upload, "expert staging");
        ids_.resize(K);
        weights_.resize(K);
        y_cpu_.resize(E);
    }

    std::string describe() const {
        const gpu::DeviceInfo& d = ctx_.info();
        std::string s = "GPU " + std::to_string(d.index) + ": " + d.name + " (Vulkan" + (d.unified ? ", unified memory" : "") +
                        "), dense weights + KV cache in VRAM";
        if (hp_.n_expert > 0) {
            s += ", experts: " + std::string(place_name(place_));
            if (place_ == Place::Cache && layers_[size_t(sync_layers_[0])].slots)
                s += " (" + std::to_string(layers_[size_t(sync_layers_[0])].slots->n_slots()) + " of " +
                     std::to_string(hp_.n_expert) + " per layer)";
            if (probing_) s += ", measuring VRAM cache vs CPU";
        }
        return s + ", " + std::to_string(counters_.vram_bytes >> 20) + " MiB";
    }

    ModelOptions opt_;
    int64_t top_k_;
    mutable gpu::Context ctx_;  // save_state() downloads
    std::deque<Buffer> bufs_;  // weights, KV cache, cache slots (deque: Mats point into it)
    Mat embd_, output_;
    std::vector<float> norms_host_;
    Buffer norms_;
    uint32_t out_norm_ = 0;
    std::vector<GLayer> layers_;
    gpu::AttnShape attn_{};
    Place place_ = Place::Resident;
    // Activations (device) and the host's windows.
    const Vec hn_vec_{&hn_};
    Buffer x_, hn_, q_, att_, part_, counts_, logits_, route_, gate_, up_, one_, step_, moe_in_;
    Buffer step_host_, moe_host_, logits_rb_, router_rb_, miss_staging_;
    uint64_t max_expert_bytes_ = 0;
    // Recorded work: resident body, head, expert uploads, segments per placement (cache, cpu).
    gpu::Cmd body_, head_, upload_;
    std::deque<gpu::Cmd> owned_cmds_;
    std::vector<gpu::Cmd*> segments_[2];
    gpu::Cmd* body_last_ = nullptr;
    std::vector<int64_t> sync_layers_;  // MoE layers, where segments end
    // Host side of cache / cpu placement.
    std::unique_ptr<ExpertSource> experts_;
    std::unique_ptr<MoeFfn> moe_cpu_;
    std::vector<ExpertWeights> fetched_;
    std::vector<int32_t> ids_;
    std::vector<float> weights_, y_cpu_;
    bool probing_ = false;
    int probe_n_ = 0;
    double probe_s_[2] = {0, 0};
    GpuCounters counters_;
};

}  // namespace

std::unique_ptr<Model> load_qwen3moe_gpu(std::unique_ptr<gguf::File> file, const ModelOptions& opt) {
    int64_t top_k = 0;
    Hparams h = qwen3moe_hparams(*file, opt, &top_k);
    const int device = pick_device(opt.gpu);
    return std::make_unique<Qwen3MoeGpu>(std::move(file), opt, std::move(h), top_k, device);
}

#endif  // SLUICE_VULKAN

}  // namespace sluice
