// GpuModel's loading (gpu_model.h): VRAM buffers, weight uploads (merged rows, repacked Q8_0), the
// VRAM plan, the output head, and the routed experts' placement with its buffers.
#ifdef SLUICE_VULKAN
#include "engine/models/gpu_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/tensor/kernels.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

using gpu::Mem;

namespace {
bool is_expert_tensor(const gguf::TensorInfo& t) { return t.n_dims == 3 && t.name.find("_exps") != std::string::npos; }
}  // namespace

GpuModel::Buffer& GpuModel::buffer(size_t bytes, Mem mem, const std::string& what) {
    bufs_.push_back(ctx_.alloc(bytes, mem, what));
    if (mem == Mem::Device) counters_.vram_bytes += bytes;
    return bufs_.back();
}

GpuModel::Buffer GpuModel::device_floats(size_t floats, const char* what) {
    counters_.vram_bytes += floats * 4;
    return ctx_.alloc(floats * 4, Mem::Device, what);
}

GpuModel::Mat GpuModel::upload_layout(const gguf::TensorInfo& t) {
    const gpu::TypeLayout* tl = gpu::gpu_type(uint32_t(t.type));
    if (!tl)
        throw gpu::GpuError("tensor '" + t.name + "' has type " + type_name(t.type) + ", " +
                            gpu::gpu_type_absent_why(uint32_t(t.type)));
    const int64_t cols = t.ne[0], rows = t.ne[1];
    if (cols % tl->chunk)
        throw gpu::GpuError("tensor '" + t.name + "': rows of " + std::to_string(cols) + " " + tl->suffix +
                            " values are not a multiple of " + std::to_string(tl->chunk));
    return {nullptr, uint32_t(t.type), 0, uint32_t(rows), uint32_t(cols), uint64_t(rows * row_bytes(t.type, cols))};
}

// Q8_0 matrices whose rows are a multiple of 256 are stored repacked (shared.h WT_Q8_0R): the
// matvecs then load 16 bytes per lane instead of 2 (H100, 8B shape decode: see bench/GPU.md).
// SLUICE_GPU_REPACK=0 keeps ggml's blocks.
const uint8_t* GpuModel::repacked(Mat& m, const uint8_t* src, uint64_t nbytes, std::vector<uint8_t>& tmp) {
    const char* e = std::getenv("SLUICE_GPU_REPACK");
    if ((e && std::string(e) == "0") || m.type != WT_Q8_0 || !gpu::q8_0_repackable(m.cols)) return src;
    ++n_repacked_;
    const uint64_t rb = uint64_t(row_bytes(GgmlType::Q8_0, m.cols));
    tmp.resize(size_t(nbytes));
    gpu::repack_q8_0(src, tmp.data(), nbytes / rb, m.cols);
    m.type = WT_Q8_0R;
    return tmp.data();
}

GpuModel::Mat GpuModel::upload(const gguf::TensorInfo& t, bool repack) {
    Mat m = upload_layout(t);
    Buffer& b = buffer(size_t(t.nbytes), Mem::Device, "tensor '" + t.name + "'");
    std::vector<uint8_t> tmp;
    const uint8_t* src = repack ? repacked(m, file_->data(t), t.nbytes, tmp) : file_->data(t);
    ctx_.upload(b, 0, src, size_t(t.nbytes));
    m.buf = &b;
    return m;
}

std::vector<GpuModel::Mat> GpuModel::upload_rows(std::initializer_list<Rows> ts) {
    std::vector<Mat> out;
    std::vector<Rows> run;
    std::vector<uint8_t> reordered, tmp;
    auto flush = [&] {
        uint64_t total = 0;
        std::string names;
        for (const Rows& r : run) total += r.t->nbytes, names += (names.empty() ? "'" : " + '") + r.t->name + "'";
        Buffer& b = buffer(size_t(total), Mem::Device, "tensors " + names);
        uint64_t off = 0;
        for (const auto& [t, order] : run) {
            Mat m = upload_layout(*t);
            const uint8_t* src = file_->data(*t);
            if (order) {
                const size_t rb = size_t(row_bytes(t->type, t->ne[0]));
                if (order->size() != m.rows) throw Error("upload_rows: a row order for '" + t->name + "' of the wrong size");
                reordered.resize(size_t(t->nbytes));
                for (size_t i = 0; i < order->size(); ++i) std::memcpy(&reordered[i * rb], src + (*order)[i] * rb, rb);
                src = reordered.data();
            }
            src = repacked(m, src, t->nbytes, tmp);
            ctx_.upload(b, size_t(off), src, size_t(t->nbytes));
            m.buf = &b;
            m.offset = off;
            off += t->nbytes;
            out.push_back(m);
        }
        run.clear();
    };
    for (const Rows& r : ts) {
        if (!run.empty() && (r.t->type != run[0].t->type || r.t->ne[0] != run[0].t->ne[0])) flush();
        run.push_back(r);
    }
    flush();
    return out;
}

std::pair<GpuModel::Mat, GpuModel::Mat> GpuModel::upload_pair(const gguf::TensorInfo& g, const gguf::TensorInfo& u) {
    const std::vector<Mat> m = upload_rows({&g, &u});
    return {m[0], m[1]};
}

std::vector<GpuModel::Mat> GpuModel::upload_experts(std::initializer_list<const gguf::TensorInfo*> ts, uint64_t n_expert) {
    std::vector<Mat> out;
    uint64_t block = 0;
    for (const gguf::TensorInfo* t : ts) {
        Mat m = upload_layout(*t);
        if (m.mat_stride * n_expert != t->nbytes) throw Error("tensor '" + t->name + "' is not " + std::to_string(n_expert) + " matrices");
        m.offset = block;
        block += (m.mat_stride + 255) / 256 * 256;
        out.push_back(m);
    }
    if (block * n_expert > ctx_.info().max_buffer_range) return {};
    Buffer& b = buffer(size_t(block * n_expert), Mem::Device, "experts of '" + (*ts.begin())->name + "' and the rest, expert-major");
    // chunks of experts through host memory: a layer's experts may be gigabytes
    const uint64_t per_chunk = std::max<uint64_t>(1, (64ull << 20) / block);
    std::vector<uint8_t> chunk(size_t(std::min(per_chunk, n_expert) * block));
    std::vector<std::vector<uint8_t>> tmp(ts.size());  // a tensor's repacked bytes (Q8_0)
    std::vector<const uint8_t*> src;
    for (const gguf::TensorInfo* t : ts) src.push_back(repacked(out[src.size()], file_->data(*t), t->nbytes, tmp[src.size()]));
    for (uint64_t e0 = 0; e0 < n_expert; e0 += per_chunk) {
        const uint64_t n = std::min(per_chunk, n_expert - e0);
        for (uint64_t e = 0; e < n; ++e)
            for (size_t k = 0; k < out.size(); ++k)
                std::memcpy(&chunk[size_t(e * block + out[k].offset)], src[k] + (e0 + e) * out[k].mat_stride, size_t(out[k].mat_stride));
        ctx_.upload(b, size_t(e0 * block), chunk.data(), size_t(n * block));
    }
    for (Mat& m : out) {
        m.buf = &b;
        m.mat_stride = block;
    }
    return out;
}

std::vector<GpuModel::Merged> GpuModel::merge_rows(const std::vector<Mat>& mats) {
    std::vector<Merged> out;
    uint32_t y = 0;
    for (const Mat& m : mats) {
        Merged* last = out.empty() ? nullptr : &out.back();
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

uint32_t GpuModel::add_norm(const std::vector<float>& v) {
    norms_host_.resize((norms_host_.size() + 3) / 4 * 4);  // vec4 loads (norm tail, norm_q8)
    const uint32_t off = uint32_t(norms_host_.size());
    norms_host_.insert(norms_host_.end(), v.begin(), v.end());
    return off;
}
uint32_t GpuModel::add_norm(const gguf::TensorInfo& t) { return add_norm(tensor_f32(*file_, t)); }

uint64_t GpuModel::plan_vram(uint64_t other_bytes) {
    const gguf::File& f = *file_;
    int64_t n_moe = 0;
    for (const gguf::TensorInfo& t : f.tensors()) {
        (is_expert_tensor(t) ? experts_total_ : dense_bytes_) += t.nbytes;
        const gpu::TypeLayout* tl = gpu::gpu_type(uint32_t(t.type));
        if (is_expert_tensor(t) && (!tl || t.ne[0] % tl->chunk) && experts_cpu_why_.empty())
            experts_cpu_why_ = t.name + " is " + type_name(t.type) + ", " +
                               (tl ? "whose rows of " + std::to_string(t.ne[0]) + " are not a multiple of " + std::to_string(tl->chunk)
                                   : gpu::gpu_type_absent_why(uint32_t(t.type)));
        if (is_expert_tensor(t) && t.name.find("ffn_down_exps") != std::string::npos) ++n_moe;
        const size_t at = t.name.find("ffn_gate_inp.weight");
        if (at != std::string::npos && folds_routers())
            if (const gguf::TensorInfo* wo = f.find_tensor(t.name.substr(0, at) + "attn_output.weight"); wo && fold_ok(t, *wo))
                fold_bytes_ += uint64_t(t.ne[1] * (t.ne[0] + wo->ne[0])) * 4;  // fold_router() with resident experts
    }
    const uint64_t free = ctx_.vram_budget(), margin = 256ull << 20, need = dense_bytes_ + other_bytes + margin;
    const bool capped = opt_.gpu_memory && opt_.gpu_memory < free;  // --gpu-memory
    const uint64_t budget = capped ? opt_.gpu_memory : free;
    if (need > budget)
        throw gpu::GpuError((capped ? "--gpu-memory allows " : ctx_.info().name + " has ") + std::to_string(budget >> 20) +
                            (capped ? " MiB" : " MiB free") + "; the dense weights and caches need " + std::to_string(need >> 20) +
                            " MiB (" + std::to_string(margin >> 20) + " of them left to the driver)");
    // Resident experts are uploaded from the mapping. Streaming (--io direct / page-cache) leaves
    // expert ranges unreadable through file_->data(): then every expert reaches VRAM through the
    // ExpertSource (a cache that may hold them all) or stays on the CPU.
    experts_mapped_ = f.mapped();
    // Room for the prompt batches' buffers, allocated at the first prompt: the largest batch that fits
    // beside all the experts when they would fit with the smallest one, else beside the rest; halves of
    // it down to kBatchSmall, else prompts run token by token.
    if (!experts_cpu_why_.empty() && (opt_.gpu_experts == GpuExperts::Gpu || opt_.gpu_experts == GpuExperts::Split))
        throw gpu::GpuError(experts_cpu_why_ + ": --gpu-experts cpu (or auto) computes the experts on the CPU");
    const bool resident = experts_mapped_ && experts_cpu_why_.empty() && need + experts_total_ + fold_bytes_ + batch_vram(kBatchSmall) <= budget &&
                          (!opt_.gpu_expert_cache || experts_total_ <= opt_.gpu_expert_cache);
    const uint64_t fixed = need + (resident ? experts_total_ + fold_bytes_ : 0);
    batch_cap_ = batch_wanted(!resident);  // batch_max() as it will be
    while (batch_cap_ >= kBatchSmall && fixed + batch_vram(batch_cap_) > budget) batch_cap_ = batch_cap_ / 2 / kBatchSmall * kBatchSmall;
    counters_.vram_batch_bytes = batch_cap_ >= kBatchSmall ? batch_vram(batch_cap_) : 0;
    uint64_t room = budget > need + counters_.vram_batch_bytes ? budget - need - counters_.vram_batch_bytes : 0;
    // The arena of prompt batches' GPU experts (gpu_batch_experts.cpp): one MoE layer's experts, at
    // most a quarter of the room, when the experts live outside VRAM and their types have the tiled
    // kernels.
    if (!resident && batch_cap_ >= kBatchSmall) {
        std::map<std::string, uint64_t> per_layer;
        bool mm = true;
        for (const gguf::TensorInfo& t : f.tensors()) {
            if (!is_expert_tensor(t)) continue;
            per_layer[t.name.substr(0, t.name.find('.', t.name.find('.') + 1))] += t.nbytes;
            mm = mm && gpu::has_mm(ctx_, uint32_t(t.type));
        }
        for (const auto& [layer, bytes] : per_layer) arena_bytes_ = std::max(arena_bytes_, bytes);
        const uint64_t expert = arena_bytes_ / uint64_t(std::max<int64_t>(hp_.n_expert, 1));
        arena_bytes_ = mm && experts_cpu_why_.empty() ? std::min(arena_bytes_, room / 4) : 0;
        if (arena_bytes_ < uint64_t(std::max<int64_t>(top_k_, 1)) * expert) arena_bytes_ = 0;  // not even a token's experts
        room -= arena_bytes_;
        counters_.vram_batch_bytes += arena_bytes_ + (arena_bytes_ ? uint64_t(batch_cap_) * uint64_t(top_k_) * 4 : 0);  // + weights
    }
    const uint64_t cache = opt_.gpu_expert_cache ? std::min(opt_.gpu_expert_cache, room) : room;
    place_ = experts_total_ + fold_bytes_ <= cache && experts_mapped_ && experts_cpu_why_.empty() ? Place::Resident
             : opt_.gpu_experts == GpuExperts::Cpu || !experts_cpu_why_.empty() ? Place::Cpu
             : opt_.gpu_experts == GpuExperts::Split ? Place::Split
                                                     : Place::Cache;
    cache_per_layer_ = cache / uint64_t(std::max<int64_t>(n_moe, 1));
    return cache;
}

void GpuModel::load_head() {
    const gguf::File& f = *file_;
    const Hparams& h = hp_;
    embd_ = upload(f.require_tensor("token_embd.weight", {h.n_embd, h.n_vocab}), false);  // getrows reads ggml's blocks
    output_ = f.find_tensor("output.weight") ? upload(f.require_tensor("output.weight", {h.n_embd, h.n_vocab})) : embd_;
    out_norm_ = add_norm(f.require_tensor("output_norm.weight", {h.n_embd}));
}

MoeTensors GpuModel::require_moe_tensors(int64_t il) const {
    const gguf::File& f = *file_;
    const Hparams& h = hp_;
    auto blk = [&](const char* name) { return "blk." + std::to_string(il) + "." + name + ".weight"; };
    MoeTensors mt;
    if (f.find_tensor(blk("ffn_gate_up_exps"))) {
        mt.gate_up_exps = &f.require_tensor(blk("ffn_gate_up_exps"), {h.n_embd, 2 * h.n_ff_exp, h.n_expert});
    } else {
        mt.gate_exps = &f.require_tensor(blk("ffn_gate_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
        mt.up_exps = &f.require_tensor(blk("ffn_up_exps"), {h.n_embd, h.n_ff_exp, h.n_expert});
    }
    mt.down_exps = &f.require_tensor(blk("ffn_down_exps"), {h.n_ff_exp, h.n_embd, h.n_expert});
    return mt;
}

void GpuModel::load_moe(int64_t il, const gguf::TensorInfo& router, const MoeTensors& mt) {
    MoeLayer& L = moe_[size_t(il)];
    moe_index_.resize(size_t(hp_.n_layer), -1);
    moe_index_[size_t(il)] = n_moe_loaded_++;
    L.router = upload(router);
    const int64_t F = hp_.n_ff_exp, E = hp_.n_embd;
    const gguf::TensorInfo& g = mt.gate_up_exps ? *mt.gate_up_exps : *mt.gate_exps;
    const gguf::TensorInfo& u = mt.gate_up_exps ? *mt.gate_up_exps : *mt.up_exps;
    const gguf::TensorInfo& d = *mt.down_exps;
    L.expert_bytes[0] = uint64_t(F * row_bytes(g.type, E));
    L.expert_bytes[1] = uint64_t(F * row_bytes(u.type, E));
    L.expert_bytes[2] = uint64_t(E * row_bytes(d.type, F));
    L.expert_type[0] = uint32_t(g.type);
    L.expert_type[1] = uint32_t(u.type);
    L.expert_type[2] = uint32_t(d.type);
    if (place_ == Place::Resident) {
        const bool expert_major = !std::getenv("SLUICE_GPU_EXPERT_MAJOR") || std::string(std::getenv("SLUICE_GPU_EXPERT_MAJOR")) != "0";
        const std::vector<Mat> m = !expert_major ? std::vector<Mat>{}
                                   : mt.gate_up_exps ? upload_experts({&g, &d}, uint64_t(hp_.n_expert))
                                                     : upload_experts({&g, &u, &d}, uint64_t(hp_.n_expert));
        if (!m.empty()) {
            L.gate_exps = L.up_exps = m[0];
            if (mt.gate_up_exps) {
                L.gate_exps.rows = L.up_exps.rows = uint32_t(F);
                L.up_exps.offset += L.expert_bytes[0];  // up rows follow gate rows in each expert's slab
            } else {
                L.up_exps = m[1];
            }
            L.down_exps = m.back();
            return;
        }
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
    uint64_t n = std::min<uint64_t>(cache_per_layer_ / per, uint64_t(hp_.n_expert));
    for (int t = 0; t < 3; ++t) n = std::min<uint64_t>(n, ctx_.info().max_buffer_range / L.expert_bytes[t]);
    if (n < uint64_t(place_ == Place::Split ? 1 : top_k_)) {  // split: any slots help
        if (opt_.gpu_experts == GpuExperts::Gpu)
            throw gpu::GpuError("the VRAM expert cache holds " + std::to_string(n) + " experts per layer; a token needs " +
                                std::to_string(top_k_));
        // too few for the cache placement: split (measured against the CPU, probe()) if any fit
        place_ = n >= 1 && opt_.gpu_experts == GpuExperts::Auto ? Place::Split : Place::Cpu;
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

// A MoE layer's router folded over the output projection before it: with the router's input hn = s w
// o (x + Wo att) (s rmsnorm's scale of the new residual), its logits are s (R diag(w) x + R diag(w) Wo
// att). Both products are F32 matrices computed here once, so the first matvec runs beside the
// attention (x is final by then) and the second beside the output projection (att is), and the router
// leaves the chain of dependent dispatches between them and the experts. Ranking is the same without
// s; route_weights() applies it for the weights. Resident experts whose top-k the GPU takes in a tail,
// a float router; SLUICE_GPU_ROUTE_FOLD=0 keeps the router's own dispatch.
bool GpuModel::q8_wanted() const {
    const char* q8 = std::getenv("SLUICE_GPU_Q8");
    return ctx_.info().int_dot && !(q8 && std::string(q8) == "0");
}

bool GpuModel::fold_ok(const gguf::TensorInfo& r, const gguf::TensorInfo& wo) const {
    const char* e = std::getenv("SLUICE_GPU_ROUTE_FOLD");  // read at each load (tests switch it)
    const bool flt = r.type == GgmlType::F32 || r.type == GgmlType::F16 || r.type == GgmlType::BF16;
    // q8_wanted(): the fold reads the output projection's block tails (integer dots)
    return !(e && std::string(e) == "0") && q8_wanted() && folds_routers() && flt && r.n_dims == 2 && r.ne[0] == hp_.n_embd && r.ne[1] == hp_.n_expert && wo.n_dims == 2 &&
           wo.ne[1] == hp_.n_embd && wo.ne[0] % 4 == 0 && hp_.n_embd % 4 == 0 && gpu_routing() && route_mode() == Route::Tail;
}

void GpuModel::fold_router(int64_t il, const gguf::TensorInfo& router, uint32_t norm_off, const gguf::TensorInfo& wo) {
    if (place_ != Place::Resident || !fold_ok(router, wo)) return;
    const int64_t E = hp_.n_embd, N = hp_.n_expert, D = wo.ne[0];
    const uint8_t* src = file_->data(router);
    const float* w = &norms_host_[norm_off];
    std::vector<float> a(size_t(N * E)), m(size_t(N * D), 0.0f);  // R diag(w), R diag(w) Wo
    dequantize_row(router.type, src, a.data(), N * E);
    for (int64_t i = 0; i < N * E; ++i) a[size_t(i)] *= w[i % E];
    // m = a Wo: Wo dequantized and transposed (D, E), then the CPU's F32 matmul (each of a's rows a column)
    const uint8_t* wsrc = file_->data(wo);
    const size_t rb = size_t(row_bytes(wo.type, D));
    std::vector<float> wt(size_t(E * D));
    pool().parallel_for(E, 16, [&](int64_t d0, int64_t d1, int) {
        std::vector<float> row(static_cast<size_t>(D));
        for (int64_t d = d0; d < d1; ++d) {
            dequantize_row(wo.type, wsrc + size_t(d) * rb, row.data(), D);
            for (int64_t c = 0; c < D; ++c) wt[size_t(c * E + d)] = row[size_t(c)];
        }
    });
    matmul({GgmlType::F32, D, E, wt.data()}, a.data(), N, m.data(), pool());
    MoeLayer& L = moe_[size_t(il)];
    Buffer& b = buffer((a.size() + m.size()) * 4, Mem::Device, "folded router of layer " + std::to_string(il));
    ctx_.upload(b, 0, a.data(), a.size() * 4);
    ctx_.upload(b, a.size() * 4, m.data(), m.size() * 4);
    L.router_x = {&b, WT_F32, 0, uint32_t(N), uint32_t(E), a.size() * 4};
    L.router_att = {&b, WT_F32, a.size() * 4, uint32_t(N), uint32_t(D), m.size() * 4};
}

void GpuModel::finish_load(std::vector<MoeTensors> moe, size_t ff_floats) {
    const Hparams& h = hp_;
    norms_ = ctx_.alloc(norms_host_.size() * 4, Mem::Device, "norm weights");
    counters_.vram_bytes += norms_host_.size() * 4;
    ctx_.upload(norms_, 0, norms_host_.data(), norms_host_.size() * 4);
    if (!moe.empty()) {
        for (const MoeTensors& m : moe)
            for (const gguf::TensorInfo* t : {m.gate_exps, m.up_exps, m.gate_up_exps, m.down_exps})
                if (t) expert_ranges_.push_back({t->offset, t->offset + t->nbytes});
        experts_ = make_expert_source(*file_, std::move(moe), h.n_embd, h.n_ff_exp, opt_);
        moe_cpu_ = std::make_unique<MoeFfn>(h.n_embd, h.n_ff_exp, top_k_);
        fetched_.resize(size_t(top_k_));
    }
    probing_ = (place_ == Place::Cache || place_ == Place::Split) && opt_.gpu_experts == GpuExperts::Auto;
    if (place_ == Place::Cache) probe_arms_ = {Place::Cache, Place::Cpu, Place::Split};
    if (place_ == Place::Split) probe_arms_ = {Place::Split, Place::Cpu};

    const size_t E = size_t(h.n_embd), K = size_t(std::max<int64_t>(top_k_, 1));
    const size_t ff = std::max(ff_floats, K * size_t(h.n_ff_exp));
    x_ = device_floats(E, "x");
    hn_ = device_floats(E + 1, "hn (+ a workgroup counter)");
    ctx_.upload(hn_, 0, std::vector<float>(E + 1, 0.0f).data(), (E + 1) * 4);
    logits_ = device_floats(size_t(h.n_vocab), "logits");
    route_ = device_floats(size_t(std::max<int64_t>(h.n_expert, 1)) + 2 * K, "router logits, top-k ids and weights");
    gate_ = device_floats(ff, "gate");
    up_ = device_floats(ff, "up");
    q8_ = q8_wanted();
    if (E % 32 == 0) mirror(hn_, E);  // written wherever hn is (norm tails, norm_into_hn, the CPU experts' combine)
    mirror(gate_, ff);
    // block tails' counters (a uint per block of the longest vector they quantize), then hn's sums of squares
    tails_ss_off_ = uint32_t((std::max(E, ff) + 31) / 32);
    tails_ = device_floats(tails_ss_off_ + (E + 31) / 32, "block tail counters, hn's block sums of squares");
    ctx_.upload(tails_, 0, std::vector<float>(tails_.size() / 4, 0.0f).data(), tails_.size());
    const float one = 1.0f;
    one_ = device_floats(1, "one");
    ctx_.upload(one_, 0, &one, 4);
    step_ = device_floats(gpu::kStepBytes / 4, "step");
    step_host_ = ctx_.alloc(gpu::kStepBytes, Mem::Upload, "step");
    // Inputs of a segment's experts written by the host: ids or slots + weights, or their sum (cpu).
    moe_in_ = device_floats(2 * K + E, "expert inputs");  // slots or ids, weights; the CPU's sum (at 0, split at 2K)
    moe_host_ = ctx_.alloc(moe_in_.size(), Mem::Upload, "expert inputs");
    logits_rb_ = ctx_.alloc((size_t(block_max_off()) + logit_blocks()) * 4, Mem::Readback, "logits readback");  // + block maxima
    router_rb_ = ctx_.alloc((size_t(std::max<int64_t>(h.n_expert, 1)) + E) * 4, Mem::Readback, "router readback");
    if (max_expert_bytes_ && !ctx_.info().unified) {
        miss_staging_ = ctx_.alloc(size_t(max_expert_bytes_) * K, Mem::Upload, "expert staging");
        for (size_t i = 0; i < kUploadParts; ++i) upload_cmds_.emplace_back(ctx_);
    }
    ids_.resize(K);
    weights_.resize(K);
    y_cpu_.resize(E);
}

// The expert tensors' bytes, merged where they touch, copied into anonymous memory in pieces of at
// most 1 GiB (drivers cap one allocation; an expert that straddles two is copied in two pieces) and
// imported. A copy, not the file's pages: NVIDIA's driver (580) refuses to import a file mapping, and
// after that refusal its device fails every later host-visible allocation (H100, session 27), so
// file-backed memory is never offered. Not where the copy would take more than half the RAM, or
// leave less than the file's size beside it (the CPU's experts still read the mapping), or exceed
// --memory with the file: then the staging path.
void GpuModel::import_experts() {
    imports_tried_ = true;
    const char* e = std::getenv("SLUICE_GPU_IMPORT");
    const char* t = std::getenv("SLUICE_GPU_TIMING");  // says what happened (measurements)
    auto say = [&](const std::string& what) {
        if (t && *t && std::string(t) != "0") std::fprintf(stderr, "expert pages: %s\n", what.c_str());
    };
    if ((e && std::string(e) == "0") || !ctx_.can_import() || !experts_ || !experts_->views_in_mapping())
        return say("staged (no import: SLUICE_GPU_IMPORT=0, no VK_EXT_external_memory_host, or not the file mapping)");
    const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE)), A = std::max<uint64_t>(ctx_.import_alignment(), page);
    const uint64_t cap = (1ull << 30) / A * A, file = file_->file_size();
    std::vector<std::pair<uint64_t, uint64_t>> r;
    for (auto [a, b] : expert_ranges_) r.push_back({a / A * A, std::min((b + A - 1) / A * A, (file + A - 1) / A * A)});
    std::sort(r.begin(), r.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (auto [a, b] : r) {
        if (!merged.empty() && a <= merged.back().second) merged.back().second = std::max(merged.back().second, b);
        else merged.push_back({a, b});
    }
    uint64_t total = 0;
    for (auto [a, b] : merged) total += b - a;
    const uint64_t ram = uint64_t(sysconf(_SC_PHYS_PAGES)) * page;
    if (total > ram / 2 || total + file > ram / 10 * 9)
        return say("staged (a pinned copy of " + std::to_string(total >> 20) + " MiB would leave too little of the RAM)");
    if (opt_.memory_budget && total + file > opt_.memory_budget)  // --memory: the mapping may become resident too
        return say("staged (a pinned copy of " + std::to_string(total >> 20) + " MiB beside the file exceeds --memory)");
    const uint8_t* map = file_->mapping();
    const auto t0 = std::chrono::steady_clock::now();
    try {
        for (auto [a, b] : merged)
            for (uint64_t o = a; o < b; o += cap) {
                const size_t n = size_t(std::min(cap, b - o)), valid = size_t(std::min<uint64_t>(o + n, file) - o);
                void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (m == MAP_FAILED) throw gpu::GpuError("cannot allocate " + std::to_string(n >> 20) + " MiB for the copy");
                HostImport h{map + o, n, PinnedCopy(static_cast<uint8_t*>(m), Unmap{n}), {}};
                constexpr size_t kChunk = 4u << 20;
                pool_->parallel_for(int64_t((valid + kChunk - 1) / kChunk), 1, [&](int64_t i0, int64_t i1, int) {
                    for (int64_t i = i0; i < i1; ++i) {
                        const size_t at = size_t(i) * kChunk;
                        std::memcpy(h.copy.get() + at, map + o + at, std::min(kChunk, valid - at));
                    }
                });
                h.buf = ctx_.import_host(h.copy.get(), n, "expert pages");
                imports_.push_back(std::move(h));
            }
    } catch (const gpu::GpuError& err) {
        imports_.clear();
        // A driver that refused an import may refuse every allocation after it (NVIDIA after a file
        // mapping): say so plainly rather than fail later as "out of memory".
        try {
            ctx_.alloc(page, Mem::Upload, "a check after a refused import");
        } catch (const gpu::GpuError&) {
            throw Error(std::string("the GPU driver refused to import host memory (") + err.what() +
                        ") and now refuses allocations; run with SLUICE_GPU_IMPORT=0");
        }
        return say(std::string("staged (") + err.what() + ")");
    }
    say("imported a copy of " + std::to_string(total >> 20) + " MiB in " + std::to_string(imports_.size()) + " pieces, " +
        std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) + " s");
}

void GpuModel::Unmap::operator()(uint8_t* p) const { munmap(p, n); }

const GpuModel::HostImport* GpuModel::imported(const uint8_t* src, size_t n, bool make) {
    if (!imports_tried_ && make) import_experts();
    auto j = std::upper_bound(imports_.begin(), imports_.end(), src, [](const uint8_t* p, const HostImport& h) { return p < h.base; });
    if (j == imports_.begin()) return nullptr;
    const HostImport* first = &*--j;  // the import holding src, if any; an expert may go on into the next (adjacent) one
    for (const uint8_t* p = src; p < src + n; ++j) {
        if (j == imports_.end() || p < j->base || p >= j->base + j->bytes) return nullptr;
        p = j->base + j->bytes;
    }
    return first;
}

void GpuModel::copy_imported(gpu::Cmd& c, const HostImport* it, const uint8_t* src, size_t n, const gpu::Buffer& dst, size_t off) {
    for (size_t done = 0; done < n; ++it) {
        const size_t at = size_t(src + done - it->base), m = std::min(n - done, it->bytes - at);
        if (done) c.independent();
        c.copy(it->buf, at, dst, off + done, m);
        done += m;
    }
}

}  // namespace sluice

#endif  // SLUICE_VULKAN
