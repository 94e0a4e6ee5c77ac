// The architecture-independent part of the Vulkan backends (gpu_model.h): device choice, the token's
// step, recording, and the routed experts' placements (weight uploads: gpu_load.cpp).
#ifdef SLUICE_VULKAN
#include "engine/models/gpu_model.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>

#include "engine/blocks.h"
#include "engine/error.h"
#include "engine/sampler.h"

namespace sluice {

using gpu::Mem;
using Clock = std::chrono::steady_clock;

namespace {
const char* place_name(int p) { return p == 0 ? "resident" : p == 1 ? "VRAM cache" : p == 2 ? "CPU" : "VRAM cache + CPU"; }
}  // namespace

int gpu_pick_device(const std::string& spec) {
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

GpuModel::GpuModel(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, int64_t top_k, int device)
    : Model(std::move(file), opt, std::move(hp)), opt_(opt), top_k_(top_k), ctx_(device, opt.gpu_emulate_discrete),
      body_(ctx_), body_head_(ctx_), head_(ctx_), body_s_(ctx_), body_head_s_(ctx_) {
    moe_.resize(size_t(hp_.n_layer));
    const char* t = std::getenv("SLUICE_GPU_TOUCH");
    touch_ = !t || std::string(t) != "0";
    if (hp_.n_rot / 2 > STEP_ROPE_MAX) throw gpu::GpuError("rope.dimension_count above the GPU's limit");
}

// ---- per token

// SLUICE_GPU_TIMING=1: where a token's wall time goes on the host, printed at exit (measurements).
namespace {
struct HostTiming {  // tokens with logits; "between steps" includes what the caller did with them
    bool on = [] {
        const char* e = std::getenv("SLUICE_GPU_TIMING");
        return e && *e && std::string(e) != "0";
    }();
    double sum[12] = {};
    // this step's segmented parts (sum[5..11] when it counts); split: [4] the CPU's experts, [5] the
    // cached experts' segments on the GPU (timestamps), [6] the experts the CPU computed
    double seg[7] = {};
    size_t uploads = 0;            // upload groups submitted since the last segment wait
    int64_t n = 0;
    bool readback_cached = false;
    Clock::time_point last_exit{};
    ~HostTiming() {
        if (!on || !n) return;
        const char* names[5] = {"between steps (caller, stats)", "enter -> last submit", "last submit -> done",
                                "done -> exit", "gpu (timestamps)"};
        std::fprintf(stderr, "host timing over %lld tokens (logits in %s memory), us per token:\n", (long long)n,
                     readback_cached ? "host-cached" : "uncached");
        for (int i = 0; i < 5; ++i) std::fprintf(stderr, "%10.1f  %s\n", sum[i] / double(n) * 1e6, names[i]);
        // Segmented placements (experts outside VRAM): of "enter -> last submit"
        const char* seg_names[4] = {"  waiting for segments (router logits)",
                                    "  experts on the host (route, fetch, copies, submits; the pinned copy's making, once)",
                                    "  upload groups on the GPU (their timestamps, summed)", "  memcpy into the staging buffer"};
        if (sum[5] + sum[6] > 0)
            for (int i = 5; i < 9; ++i) std::fprintf(stderr, "%10.1f  %s\n", sum[i] / double(n) * 1e6, seg_names[i - 5]);
        if (sum[11] > 0)
            std::fprintf(stderr, "split: %.1f us the CPU's experts (%.1f of them), %.1f us the GPU's cached experts (timestamps)\n",
                         sum[9] / double(n) * 1e6, sum[11] / double(n), sum[10] / double(n) * 1e6);
    }
};
HostTiming g_timing;
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

const float* GpuModel::step(int32_t token, bool want_logits) {
    const auto t_enter = Clock::now();
    std::fill(g_timing.seg, g_timing.seg + 7, 0.0);
    check_token(token);
    TokenScope stats(*this);  // the token's statistics (expert reads, hit rate, tok/s) reach the board
    const auto t0 = Clock::now();
    fill_step(step_host_.mapped(), uint32_t(n_past_), uint32_t(token));
    double gpu_ms = 0;
    auto run_last = [&](gpu::Cmd& c) {  // submits c, the head after it when logits are wanted, and waits
        const bool has_head = &c == &body_head_ || &c == &body_head_s_;
        if (want_logits && !has_head) head_.submit();
        c.wait();
        gpu_ms += c.last_gpu_ms();
        if (want_logits && !has_head) {
            head_.wait();
            gpu_ms += head_.last_gpu_ms();
        }
    };
    auto t_sub = Clock::now();
    if (!segmented()) {  // one submit: the body and (usually) the head in one command buffer
        const bool s = uint64_t(n_past_) < short_ctx_;  // n_past_ + 1 positions of K and V
        gpu::Cmd& c = want_logits ? (s ? body_head_s_ : body_head_) : (s ? body_s_ : body_);
        c.submit();
        t_sub = Clock::now();
        run_last(c);
    } else if (place_ == Place::Split) {
        run_split(gpu_ms);
        t_sub = Clock::now();
        run_last(*segments_for(place_).back());
    } else {
        std::vector<gpu::Cmd*>& segs = segments_for(place_);
        for (size_t s = 0; s < segs.size(); ++s) {
            const auto tm = Clock::now();
            if (s > 0) moe_on_host(sync_layers_[s - 1]);
            const auto tw = Clock::now();
            if (s > 0) g_timing.seg[1] += secs(tm, tw);
            segs[s]->submit();
            if (s + 1 < segs.size()) {  // the next segment needs this one's router logits
                segs[s]->wait();
                if (g_timing.on) {
                    g_timing.seg[0] += secs(tw, Clock::now());
                    for (size_t u = 0; u < std::min(g_timing.uploads, upload_cmds_.size()); ++u) {  // done: the segment waited for them
                        upload_cmds_[u].wait();
                        g_timing.seg[2] += upload_cmds_[u].last_gpu_ms() * 1e-3;
                    }
                }
                g_timing.uploads = 0;
                gpu_ms += segs[s]->last_gpu_ms();
            }
        }
        t_sub = Clock::now();
        run_last(*segs.back());
    }
    const auto t_done = Clock::now();
    counters_.gpu_s_last_token = gpu_ms * 1e-3;
    ++n_past_;
    probe(std::chrono::duration<double>(Clock::now() - t0).count());
    if (g_timing.on && want_logits) {  // decode tokens (a prompt's run without the head)
        const auto t_exit = Clock::now();
        if (g_timing.n) g_timing.sum[0] += secs(g_timing.last_exit, t_enter);
        g_timing.sum[1] += secs(t_enter, t_sub);
        g_timing.sum[2] += secs(t_sub, t_done);
        g_timing.sum[3] += secs(t_done, t_exit);
        g_timing.sum[4] += gpu_ms * 1e-3;
        for (int i = 0; i < 7; ++i) g_timing.sum[5 + i] += g_timing.seg[i];
        ++g_timing.n;
        g_timing.last_exit = t_exit;
        g_timing.readback_cached = logits_rb_.memory_flags() & VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    }
    return want_logits ? static_cast<const float*>(logits_rb_.mapped()) : nullptr;
}

void GpuModel::fill_step(void* mapped, uint32_t pos, uint32_t token) const {
    gpu::write_step(mapped, pos, token, uint32_t(hp_.n_rot), hp_.rope_base);
}

void GpuModel::route_on_host(int64_t il, const float* logits, int32_t* ids, float* w) {
    router_topk_softmax(logits, hp_.n_expert, top_k_, true, ids, w);
}

// Between segments: the router of layer il ran on the GPU; pick its experts and either name them
// (resident), make sure they are in VRAM (cache) or compute them here (cpu), writing what the next
// segment reads: ids or slots then weights, or the experts' sum.
void GpuModel::moe_on_host(int64_t il) {
    const Hparams& h = hp_;
    const float* rb = static_cast<const float*>(router_rb_.mapped());
    route_on_host(il, rb, ids_.data(), weights_.data());
    auto* in = static_cast<uint8_t*>(moe_host_.mapped());
    if (place_ == Place::Cpu) {
        experts_->fetch(moe_index_[size_t(il)], ids_.data(), top_k_, fetched_.data());
        moe_cpu_->run(fetched_.data(), weights_.data(), top_k_, rb + h.n_expert, y_cpu_.data(), *pool_);
        std::memcpy(in, y_cpu_.data(), size_t(h.n_embd) * 4);
        return;
    }
    std::memcpy(in + 4 * top_k_, weights_.data(), size_t(top_k_) * 4);
    if (place_ == Place::Resident) {
        std::memcpy(in, ids_.data(), size_t(top_k_) * 4);
        return;
    }
    MoeLayer& L = moe_[size_t(il)];
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
    if (!miss_ids.empty()) upload_misses(il, miss_ids, miss_slots);
}

// Misses: host bytes from the ExpertSource -> staging (room for top-k experts) -> their slots, in
// kUploadParts groups of experts: the pool's threads copy a group into staging, its DMA is submitted
// at once, and the copy engine moves it while the threads copy the next group. Every group is
// copied by all threads (one thread's memcpy is far below the PCIe bandwidth). The staging and the
// groups' command buffers are free again by the next layer: its segment waited for these DMAs.
void GpuModel::upload_misses(int64_t il, const std::vector<int32_t>& ids, const std::vector<uint32_t>& slots) {
    MoeLayer& L = moe_[size_t(il)];
    experts_->fetch(moe_index_[size_t(il)], ids.data(), int64_t(ids.size()), fetched_.data());
    uint8_t* st = static_cast<uint8_t*>(miss_staging_.mapped());
    const Mat* dst[3] = {&L.gate_exps, &L.up_exps, &L.down_exps};
    struct Part {
        const uint8_t* src;
        size_t off, n;
    };
    constexpr size_t kPart = 256u << 10;
    std::vector<Part> parts;
    auto copy_parts = [&](uint8_t* to) {
        pool_->parallel_for(int64_t(parts.size()), 1, [&](int64_t a, int64_t b, int) {
            for (int64_t i = a; i < b; ++i) std::memcpy(to + parts[size_t(i)].off, parts[size_t(i)].src, parts[size_t(i)].n);
        });
    };
    if (dst[0]->buf->mapped() && dst[1]->buf->mapped() && dst[2]->buf->mapped()) {
        // Memory the CPU and GPU share (unified, mapped): the slots are written in place, no staging
        // and no DMA; the next segment's submit makes the writes visible.
        for (size_t m = 0; m < ids.size(); ++m) {
            const WeightView* src[3] = {&fetched_[m].gate, &fetched_[m].up, &fetched_[m].down};
            for (int t = 0; t < 3; ++t) {
                parts.clear();
                const size_t bytes = L.expert_bytes[t], at = size_t(dst[t]->offset + slots[m] * bytes);
                for (size_t o = 0; o < bytes; o += kPart)
                    parts.push_back({static_cast<const uint8_t*>(src[t]->data) + o, at + o, std::min(kPart, bytes - o)});
                copy_parts(static_cast<uint8_t*>(dst[t]->buf->mapped()));
            }
        }
        return;
    }
    const size_t n = ids.size(), groups = std::min(n, upload_cmds_.size());
    size_t off = 0;
    for (size_t g = 0, m = 0; g < groups; ++g) {
        gpu::Cmd& c = upload_cmds_[g];
        c.begin();
        parts.clear();
        for (const size_t end = (g + 1) * n / groups; m < end; ++m) {
            const WeightView* src[3] = {&fetched_[m].gate, &fetched_[m].up, &fetched_[m].down};
            for (int t = 0; t < 3; ++t) {
                const size_t bytes = L.expert_bytes[t], to = size_t(dst[t]->offset + slots[m] * bytes);
                const uint8_t* from = static_cast<const uint8_t*>(src[t]->data);
                if (const HostImport* h = imported(from, bytes, place_ == Place::Cache)) {  // from the pinned copy
                    copy_imported(c, h, from, bytes, *dst[t]->buf, to);
                    counters_.upload_bytes_direct += bytes;
                } else {
                    for (size_t o = 0; o < bytes; o += kPart) parts.push_back({from + o, off + o, std::min(kPart, bytes - o)});
                    c.copy(miss_staging_, off, *dst[t]->buf, to, bytes);
                    counters_.upload_bytes_staged += bytes;
                    off += bytes;
                }
                c.independent();
            }
        }
        c.end();
        const auto tc = Clock::now();
        copy_parts(st);
        g_timing.seg[3] += secs(tc, Clock::now());
        c.submit();
        g_timing.uploads = g + 1;
    }
}

// Split placement: segment 0 up to the first router, then per MoE layer A (the cached experts) and
// B (the CPU's sum, the layers up to the next router); A runs while the CPU computes the others.
void GpuModel::run_split(double& gpu_ms) {
    std::vector<gpu::Cmd*>& segs = segments_for(Place::Split);
    segs[0]->submit();
    for (size_t i = 0; i < sync_layers_.size(); ++i) {
        const auto tw = Clock::now();
        segs[2 * i]->wait();  // the router logits and hn of layer sync_layers_[i]
        gpu_ms += segs[2 * i]->last_gpu_ms();
        if (i > 0) {  // done before the segment just waited for
            segs[2 * i - 1]->wait();
            gpu_ms += segs[2 * i - 1]->last_gpu_ms();
            g_timing.seg[5] += segs[2 * i - 1]->last_gpu_ms() * 1e-3;
        }
        const auto th = Clock::now();
        split_to_gpu(sync_layers_[i]);
        segs[2 * i + 1]->submit();
        const auto tc = Clock::now();
        split_on_cpu(sync_layers_[i]);
        if (g_timing.on) {
            g_timing.seg[0] += secs(tw, th);
            g_timing.seg[1] += secs(th, tc);
            g_timing.seg[4] += secs(tc, Clock::now());
            g_timing.seg[6] += double(cpu_ids_.size());
        }
        segs[2 * i + 2]->submit();  // the last one run_last() waits for
    }
}

// Routes layer il; the experts in its VRAM cache go to the GPU (slots and weights in moe_host_, the
// rest of the k padded with weight 0), the others to cpu_ids_. While the cache has free slots, the
// missing experts are uploaded into them (so the cache holds the first experts used).
void GpuModel::split_to_gpu(int64_t il) {
    const float* rb = static_cast<const float*>(router_rb_.mapped());
    route_on_host(il, rb, ids_.data(), weights_.data());
    MoeLayer& L = moe_[size_t(il)];
    std::vector<int32_t> slots, miss_ids;
    std::vector<uint32_t> miss_slots;
    std::vector<float> w;
    cpu_ids_.clear();
    cpu_w_.clear();
    for (int64_t j = 0; j < top_k_; ++j) {
        const int32_t e = ids_[size_t(j)];
        int64_t slot = L.slots->find(e);
        if (slot >= 0) {
            ++counters_.vram_cache_hits;
        } else {
            ++counters_.vram_cache_misses;
            if (!L.slots->full()) {  // admitted: uploaded below, then computed on the GPU
                bool hit;
                slot = L.slots->get(e, &hit);
                miss_ids.push_back(e);
                miss_slots.push_back(uint32_t(slot));
            }
        }
        if (slot >= 0) {
            slots.push_back(int32_t(slot));
            w.push_back(weights_[size_t(j)]);
        } else {
            cpu_ids_.push_back(e);
            cpu_w_.push_back(weights_[size_t(j)]);
        }
    }
    // Padding: weight 0 on slot 0, which holds an expert's weights (the first one admitted), so the
    // products stay finite and add nothing.
    while (int64_t(slots.size()) < top_k_) {
        slots.push_back(0);
        w.push_back(0.0f);
    }
    auto* in = static_cast<uint8_t*>(moe_host_.mapped());
    std::memcpy(in, slots.data(), size_t(top_k_) * 4);
    std::memcpy(in + 4 * top_k_, w.data(), size_t(top_k_) * 4);
    if (!miss_ids.empty()) upload_misses(il, miss_ids, miss_slots);
}

void GpuModel::split_on_cpu(int64_t il) {
    const Hparams& h = hp_;
    const float* rb = static_cast<const float*>(router_rb_.mapped());
    const int64_t n = int64_t(cpu_ids_.size());
    if (n) {
        experts_->fetch(moe_index_[size_t(il)], cpu_ids_.data(), n, fetched_.data());
        moe_cpu_->run(fetched_.data(), cpu_w_.data(), n, rb + h.n_expert, y_cpu_.data(), *pool_);
    } else {
        std::fill(y_cpu_.begin(), y_cpu_.end(), 0.0f);
    }
    std::memcpy(static_cast<float*>(moe_host_.mapped()) + split_sum_off(), y_cpu_.data(), size_t(h.n_embd) * 4);
}

// GpuExperts::Auto with experts outside VRAM: 4 tokens in each placement of probe_arms_ (the first
// of each ignored: warm-up; split's after its cache filled), then the fastest for good.
void GpuModel::probe(double seconds) {
    if (!probing_) return;
    // Split fills its cache at the cache placement's speed (uploads) and then uploads nothing: its
    // tokens count once every layer's cache is full (or after 64 tokens of filling).
    if (place_ == Place::Split && probe_fill_ < 64) {
        bool full = true;
        for (int64_t il : sync_layers_) full = full && moe_[size_t(il)].slots->full();
        if (!full) {
            ++probe_fill_;
            return;
        }
    }
    ++probe_n_;
    const size_t arm = size_t((probe_n_ - 1) / 4);
    if (probe_n_ % 4 != 1) probe_s_[arm] += seconds;
    if (probe_n_ % 4 != 0) return;
    if (arm + 1 < probe_arms_.size()) {
        place_ = probe_arms_[arm + 1];
        return;
    }
    size_t best = 0;
    for (size_t a = 1; a < probe_arms_.size(); ++a)
        if (probe_s_[a] < probe_s_[best]) best = a;
    place_ = probe_arms_[best];
    probing_ = false;
    std::string m;
    for (size_t a = 0; a < probe_arms_.size(); ++a)
        m += std::string(a ? ", " : "") + std::to_string(int(3 / probe_s_[a])) + " tok/s " + place_name(int(probe_arms_[a]));
    placement_ = describe() + " (measured " + m + ")";
}

// ---- recording (once; buffers and offsets never change)

void GpuModel::record() {
    const Hparams& h = hp_;
    for (int64_t il = 0; il < h.n_layer; ++il)
        if (moe_[size_t(il)].router.rows) sync_layers_.push_back(il);
    if (!segmented()) {
        const char* e = std::getenv("SLUICE_GPU_ATTN_SHORT");  // read per model (tests set it)
        short_ctx_ = has_short_attention() ? uint32_t(e ? std::max(0, std::atoi(e)) : 1024) : 0;
        for (gpu::Cmd* c : {&body_, &body_head_, &body_s_, &body_head_s_}) {
            short_attn_ = c == &body_s_ || c == &body_head_s_;
            if (short_attn_ && !short_ctx_) break;
            c->begin();
            record_layers(*c, Place::Resident, -1, h.n_layer);
            if (c == &body_head_ || c == &body_head_s_) record_head(*c);
            c->end();
        }
        short_attn_ = false;
    }
    head_.begin();
    record_head(head_);
    head_.end();
    placement_ = describe();
}

// The logits of hn = output_norm(x) (written by the last layer's down projection, experts or FFN, or
// combine; or by batch_logits()) into logits_rb_.
void GpuModel::record_head(gpu::Cmd& c) {
    c.barrier();  // after the body (recorded or submitted just before)
    gpu::matvec(c, output_, {&hn_}, {&logits_}, step_, with_xq({}, hn_));
    c.copy(logits_, 0, logits_rb_, 0, size_t(hp_.n_vocab) * 4);
    c.independent();  // beside the copy: both only read the logits
    gpu::block_max(c, {&logits_}, {&logits_rb_, block_max_off()}, uint32_t(hp_.n_vocab));
}

// Every logits_rb_ fill (record_head) writes both, so they always belong together.
std::span<const float> GpuModel::logits_block_max() const {
    static_assert(kLogitBlock == LOGIT_BLOCK, "the sampler's blocks are block_max.comp's");
    return {static_cast<const float*>(logits_rb_.mapped()) + block_max_off(), logit_blocks()};
}

// Segments of a token for segmented placements (recorded on first use): segment 0 runs up to the
// first MoE router, segment s > 0 starts with the experts of sync layer s - 1.
std::vector<gpu::Cmd*>& GpuModel::segments_for(Place p) {
    auto& segs = segments_[int(p)];
    if (!segs.empty()) return segs;
    const int64_t n_layer = hp_.n_layer;
    if (p == Place::Split) {
        owned_cmds_.emplace_back(ctx_);
        gpu::Cmd& c0 = owned_cmds_.back();
        c0.begin();
        record_layers(c0, p, -1, sync_layers_.empty() ? n_layer : sync_layers_[0]);
        c0.end();
        segs.push_back(&c0);
        for (size_t s = 0; s < sync_layers_.size(); ++s) {
            owned_cmds_.emplace_back(ctx_);
            gpu::Cmd& a = owned_cmds_.back();
            owned_cmds_.emplace_back(ctx_);
            gpu::Cmd& b = owned_cmds_.back();
            record_split(a, b, sync_layers_[s], s + 1 < sync_layers_.size() ? sync_layers_[s + 1] : n_layer);
            segs.push_back(&a);
            segs.push_back(&b);
        }
        return segs;
    }
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

// Split placement after layer from's router: a = the cached experts' products added to x (slots and
// weights from moe_host_), b = the CPU's sum added, the next norm, and the layers through the router
// of layer `to` (as record_layers()).
void GpuModel::record_split(gpu::Cmd& a, gpu::Cmd& b, int64_t from, int64_t to) {
    const Hparams& h = hp_;
    const uint32_t E = uint32_t(h.n_embd);
    a.begin();
    a.barrier();  // after the segment before and any expert uploads
    a.copy(step_host_, 0, step_, 0, gpu::kStepBytes);
    a.independent();
    a.copy(moe_host_, 0, moe_in_, 0, size_t(split_sum_off()) * 4);  // the host writes the CPU's sum later: not that
    record_experts(a, Place::Split, from);
    a.end();
    b.begin();
    b.barrier();
    b.copy(moe_host_, size_t(split_sum_off()) * 4, moe_in_, size_t(split_sum_off()) * 4, size_t(E) * 4);
    record_host_sum(b, from, split_sum_off());
    for (int64_t il = from + 1; il <= std::min<int64_t>(to, h.n_layer - 1); ++il) {
        record_layer(b, il, true);
        if (moe_[size_t(il)].router.rows) record_router(b, Place::Split, il, il == to);
    }
    b.end();
}

// x += the host's sum of layer il's experts (moe_in_ from float off), hn = the next norm of x and its mirror
void GpuModel::record_host_sum(gpu::Cmd& c, int64_t il, uint32_t off) {
    const uint32_t E = uint32_t(hp_.n_embd);
    const Vec hn{&hn_};
    gpu::moe_combine(c, {&x_}, {&moe_in_, off}, {&one_}, E, 1, &hn, {&norms_, next_norm(il)}, hp_.rms_eps);
    if (const gpu::Xq* q = xq(hn_)) gpu::quantize_q8(c, hn, *q, E);
}

// Records from layer `from`'s experts (from < 0: the embedding) through the router of layer `to`
// (to == n_layer: through the last layer). Unsegmented, everything.
// row: token row.j of a prompt batch of row.B tokens (record_batch()): its step header, the
// host's expert sum and x come from the batch buffers' row j, and x, the router logits and hn go back
// there at the end.
void GpuModel::record_layers(gpu::Cmd& c, Place p, int64_t from, int64_t to, const BatchRow* row) {
    const size_t E = size_t(hp_.n_embd);
    c.barrier();  // after the previous segment and any expert uploads (or the batch's previous token)
    if (!row) {
        c.copy(step_host_, 0, step_, 0, gpu::kStepBytes);
        c.independent();
        c.copy(moe_host_, 0, moe_in_, 0, moe_host_.size());
    } else {
        c.copy(steps_b_host_, size_t(row->j) * gpu::kStepBytes, step_, 0, gpu::kStepBytes);
        if (from >= 0) {  // the token's x and FFN input (shared experts read hn) as the last segment left them
            c.independent();
            c.copy(hb_y_host_, size_t(row->j) * E * 4, moe_in_, 0, E * 4);
            c.independent();
            c.copy(xb_, size_t(row->j) * E * 4, x_, 0, E * 4);
            c.independent();
            c.copy(hb_rb_, hb_hn_off(row->j, row->B) * 4, hn_, 0, E * 4);
            if (const gpu::Xq* q = xq(hn_)) gpu::quantize_q8(c, hn_vec_, *q, uint32_t(E));
        }
    }
    if (from < 0) {
        gpu::getrows(c, embd_, {&x_}, step_);
    } else {
        record_experts(c, p, from);
    }
    for (int64_t il = from + 1; il <= std::min<int64_t>(to, hp_.n_layer - 1); ++il) {
        record_layer(c, il, il > 0);  // the FFN's norm in hn after it
        if (moe_[size_t(il)].router.rows) record_router(c, p, il, il == to && !row);
    }
    if (row) {
        c.copy(x_, 0, xb_, size_t(row->j) * E * 4, E * 4);
        if (to < hp_.n_layer) {  // ended at layer to's router: its logits and input for the host
            c.independent();
            c.copy(route_, 0, hb_rb_, size_t(row->j) * route_row() * 4, size_t(hp_.n_expert) * 4);
            c.independent();
            c.copy(hn_, 0, hb_rb_, hb_hn_off(row->j, row->B) * 4, E * 4);
        }
    }
}

void GpuModel::record_router(gpu::Cmd& c, Place p, int64_t il, bool ends_segment) {
    const Hparams& h = hp_;
    const bool gpu_topk = p == Place::Resident && gpu_routing();
    const Route r = route_mode();
    gpu::MatvecOpts ro;
    if (gpu_topk && r == Route::Tail) {  // ffn_moe_topk in the router's last workgroup
        ro.topk = uint32_t(top_k_);
        ro.topk_ids_off = route_ids();
        ro.topk_w_off = route_w();
        ro.route_renorm = true;
        ro.topk_count = {&hn_, uint32_t(h.n_embd)};
    }
    if (routed_layer_ == il && gpu_topk && r == Route::Tail) {  // a folded router's top-k: recorded already
        routed_layer_ = -1;
        resid_norm_ = -1;
        fold_weights_ = true;
        record_experts(c, p, il);
        return;
    }
    routed_layer_ = -1;
    const Mat& router = moe_[size_t(il)].router;
    if (hn_scaled_ || (xnorm_router(router) && router_reads_residual() && resid_norm_ >= 0)) {
        // The norm just recorded (norm_q8: hn = rmsnorm(x)) and the router side by side: the router
        // normalises x itself (MV_XNORM), one dependent dispatch fewer per MoE layer. Where block tails
        // left hn's mirror unscaled (moe_reads_scaled()), after them.
        ro.x_norm = true;
        ro.norm_w = {&norms_, uint32_t(hn_scaled_ ? scaled_norm_ : resid_norm_)};
        ro.norm_eps = h.rms_eps;
        if (!hn_scaled_) c.independent();
        gpu::matvec(c, router, {&x_}, {&route_}, step_, ro);  // ffn_moe_logits
    } else {
        gpu::matvec(c, router, {&hn_}, {&route_}, step_, with_xq(ro, hn_));  // ffn_moe_logits
    }
    resid_norm_ = -1;
    if (gpu_topk) {
        if (r == Route::Dispatch)
            gpu::topk_softmax(c, {&route_}, uint32_t(h.n_expert), uint32_t(top_k_), true, route_, route_ids(),
                              {&route_, route_w()});
        else if (r == Route::Own)
            record_route(c, il, route_, route_ids(), route_w());
        record_experts(c, p, il);
    } else if (ends_segment) {  // the host reads the logits (and hn for the CPU's experts)
        c.copy(route_, 0, router_rb_, 0, size_t(h.n_expert) * 4);
        c.independent();
        c.copy(hn_, 0, router_rb_, size_t(h.n_expert) * 4, size_t(h.n_embd) * 4);
    }
}

// A folded router's two matvecs (fold_router()): R diag(w) x beside the attention, then + R diag(w) Wo
// att with the top-k tail beside the output projection (whose block tails write the sums of squares
// route_weights() scales by). Recorded by an architecture right after the dispatch they go beside.
void GpuModel::record_fold_x(gpu::Cmd& c, int64_t il) {
    c.independent();
    gpu::matvec(c, moe_[size_t(il)].router_x, {&x_}, {&route_}, step_, {});
}

void GpuModel::record_fold_att(gpu::Cmd& c, int64_t il, const Buffer& att) {
    gpu::MatvecOpts ro;
    ro.accumulate = true;
    ro.topk = uint32_t(top_k_);
    ro.topk_ids_off = route_ids();
    ro.topk_w_off = route_w();
    ro.route_renorm = true;
    ro.topk_count = {&hn_, uint32_t(hp_.n_embd)};
    // (H100, 30B-A3B shape: the shape's pick, 4 teams per row, 356.8-361.7 tok/s; 8 teams 343-350)
    c.independent();
    gpu::matvec(c, moe_[size_t(il)].router_att, {&att}, {&route_}, step_, ro);
    routed_layer_ = il;
}

bool GpuModel::xnorm_router(const Mat& router) {
    static const bool on = [] {  // SLUICE_GPU_XNORM=0: the router reads hn after the norm (measurements)
        const char* e = std::getenv("SLUICE_GPU_XNORM");
        return !(e && std::string(e) == "0");
    }();
    return on && (router.type == WT_F32 || router.type == WT_F16 || router.type == WT_BF16);
}

bool GpuModel::moe_reads_scaled(int64_t il) const {
    const MoeLayer& M = moe_[size_t(il)];
    return M.router.rows && !segmented() && route_mode() == Route::Tail && xnorm_router(M.router) && fused(M.gate_exps, M.up_exps) &&
           gpu::has_q8(ctx_, M.gate_exps.type) && xq(hn_);
}

// x += sum_j w_j down_j(silu(gate_j hn) * up_j hn) over layer il's k experts: ids from the GPU's top-k
// or from the host (ids, or slots of the cache); cpu placement only adds the host's sum. The next
// norm of x goes to hn too (the next layer's attn_norm, or the output norm).
void GpuModel::record_experts(gpu::Cmd& c, Place p, int64_t il) {
    const Hparams& h = hp_;
    const MoeLayer& L = moe_[size_t(il)];
    const uint32_t F = uint32_t(h.n_ff_exp), K = uint32_t(top_k_);
    record_before_experts(c, il);
    if (p == Place::Cpu) {
        record_host_sum(c, il, 0);
        return;
    }
    const bool gpu_ids = p == Place::Resident && gpu_routing();
    const Buffer& ids = gpu_ids ? route_ : moe_in_;  // ids, then their weights
    gpu::MatvecOpts o = with_xq({}, hn_);
    o.n_mats = K;
    o.ids = &ids;
    o.ids_off = gpu_ids ? route_ids() : 0;
    o.y_mat_stride = F;
    bool quantized = false;  // gate_'s mirror written by the GLU's block tails
    if (fused(L.gate_exps, L.up_exps)) {  // ffn_moe_swiglu of ffn_moe_gate, ffn_moe_up in one pass
        o.swiglu_up = &L.up_exps;
        quantized = glu_tails(o, F, {&L.down_exps});
        gpu::matvec(c, L.gate_exps, {&hn_}, {&gate_}, step_, o);
        o.swiglu_up = nullptr;
        o.qblk = {};
    } else {
        gpu::matvec(c, L.gate_exps, {&hn_}, {&gate_}, step_, o);  // ffn_moe_gate
        c.independent();
        gpu::matvec(c, L.up_exps, {&hn_}, {&up_}, step_, o);      // ffn_moe_up
        gpu::swiglu(c, {&gate_}, {&up_}, {&gate_}, K * F);        // ffn_moe_swiglu
    }
    if (!quantized) quantize_for(c, gate_, K * F, {&L.down_exps});
    if (fold_weights_) {  // beside the GLU: the folded router's weights, for the down projection
        fold_weights_ = false;
        c.independent();
        gpu::route_weights(c, {&route_}, K, route_ids(), route_w(), {&tails_, tails_ss_off_}, uint32_t(h.n_embd) / 32,
                           uint32_t(h.n_embd), h.rms_eps);
    }
    // ffn_moe_down, ffn_moe_out (the weighted sum), the residual add and the next norm: one dispatch
    // (split: no norm; the CPU's sum comes after)
    gpu::MatvecOpts acc;
    acc.accumulate = true;
    gpu::MatvecOpts d = with_xq(p == Place::Split ? acc : add_then_norm(next_norm(il)), gate_);
    d.n_mats = K;
    d.ids = &ids;
    d.ids_off = o.ids_off;
    d.x_mat_stride = F;
    d.sum_mats = true;
    d.sum_w_off = gpu_ids ? route_w() : K;
    add_matvec(c, L.down_exps, {&gate_}, d, !segmented() && reads_scaled_after(il));
}

// A large model's weights span more memory than the GPU's TLBs cover: a matvec then waits on its
// matrix's page walks, which the GPU serves one after another (H200, one load per 2 MiB of the 72B-like
// gate+up's 137 pages: 6.3 us). Touching the matrices ahead, beside a dispatch that streams little
// (attention), overlaps those walks with it: 72B-like decode 73.1 vs 69.5 tok/s (bench/README).
// SLUICE_GPU_TOUCH=0 turns it off.
void GpuModel::touch_ahead(gpu::Cmd& c, std::initializer_list<const Mat*> ws) const {
    if (!touch_) return;
    for (const Mat* w : ws) {
        if (!w->buf) continue;
        const uint64_t a = w->offset / 16 * 16, b = w->offset + uint64_t(w->rows) * gpu::gpu_row_bytes(w->type, w->cols);
        c.independent();
        gpu::touch(c, *w->buf, a, b - a);
    }
}

void GpuModel::record_swiglu_ffn(gpu::Cmd& c, const Mat& gate, const Mat& up, const Mat& down, uint32_t n_ff,
                                 const gpu::MatvecOpts& down_opts, bool fuse_norm) {
    gpu::MatvecOpts o = with_xq({}, hn_);
    bool quantized = false;  // gate_'s mirror written by the GLU's block tails
    if (fused(gate, up)) {
        o.swiglu_up = &up;
        quantized = glu_tails(o, n_ff, {&down});
        gpu::matvec(c, gate, {&hn_}, {&gate_}, step_, o);
    } else {
        gpu::matvec(c, gate, {&hn_}, {&gate_}, step_, o);
        c.independent();
        gpu::matvec(c, up, {&hn_}, {&up_}, step_, o);
        gpu::swiglu(c, {&gate_}, {&up_}, {&gate_}, n_ff);
    }
    // A GLU variant writing the mirror itself (a workgroup per 32 rows) measured slower than this
    // dispatch on an H100: 12288x4096 31.3 us vs 26.0 + 4.3, 8 experts' 768x2048 44 vs 10.5 + 4.3.
    if (!quantized) quantize_for(c, gate_, n_ff, {&down});
    add_matvec(c, down, {&gate_}, with_xq(down_opts, gate_), fuse_norm);
}

bool GpuModel::glu_tails(gpu::MatvecOpts& o, uint32_t n_ff, const std::vector<const Mat*>& users) {
    const gpu::Xq* q = xq(gate_);
    if (!(qblk_mode() & 2) || !q || n_ff % 32) return false;
    for (const Mat* m : users)
        if (!m || !gpu::has_q8(ctx_, m->type)) return false;
    o.qblk = {q, 0, {&tails_, 0}, {}, {}};
    return true;
}

uint32_t GpuModel::qblk_mode() {
    static const int mode = [] {
        const char* e = std::getenv("SLUICE_GPU_QBLK");
        return e ? std::atoi(e) : 3;
    }();
    return uint32_t(mode);
}

void GpuModel::mirror(const Buffer& b, size_t floats) {
    if (!q8_) return;
    Mirror& m = mirrors_.emplace_back();
    m.of = &b;
    m.buf = ctx_.alloc(size_t(gpu::xq_bytes(floats)), Mem::Device, "int8 activations");
    counters_.vram_bytes += m.buf.size();
    m.xq = {&m.buf, gpu::xq_soff(floats)};
}

const gpu::Xq* GpuModel::xq(const Buffer& b) const {
    for (const Mirror& m : mirrors_)
        if (m.of == &b) return &m.xq;
    return nullptr;
}

void GpuModel::quantize_for(gpu::Cmd& c, const Buffer& b, uint32_t n, const std::vector<const Mat*>& users) {
    const gpu::Xq* q = xq(b);
    if (!q || n % 32) return;
    for (const Mat* m : users)
        if (m && gpu::has_q8(ctx_, m->type)) {
            gpu::quantize_q8(c, {&b, 0}, *q, n);
            return;
        }
}

gpu::MatvecOpts GpuModel::add_then_norm(uint32_t norm_off) const {
    gpu::MatvecOpts o;
    o.accumulate = true;
    o.norm_out = &hn_vec_;
    o.norm_w = {&norms_, norm_off};
    o.norm_eps = hp_.rms_eps;
    o.norm_count = uint32_t(hp_.n_embd);
    o.norm_q = xq(hn_);
    return o;
}

void GpuModel::norm_into_hn(gpu::Cmd& c, uint32_t norm_off, Vec x) {
    if (!x.buf) x = {&x_};
    hn_scaled_ = false;
    if (const gpu::Xq* q = xq(hn_)) gpu::rmsnorm_q8(c, x, {&hn_}, {&norms_, norm_off}, uint32_t(hp_.n_embd), hp_.rms_eps, q);
    else gpu::rmsnorm(c, x, {&hn_}, {&norms_, norm_off}, uint32_t(hp_.n_embd), 1, 0, hp_.rms_eps, step_);
}

// Where hn_ has an int8 mirror, the norm after a residual add is norm_q8's dispatch (one workgroup of
// 256 reading x once): the matvec's tail (its last workgroup of 64-128 invocations reading y back in
// 2-4 rounds after an atomic count of every workgroup) measured 7-12 us on an H100, the dispatch 6
// (decode: 8B dense 220 -> 247 tok/s). SLUICE_GPU_NORM=tail keeps the tails (A/B runs).
void GpuModel::add_matvec(gpu::Cmd& c, const Mat& w, Vec x, gpu::MatvecOpts o, bool fuse_norm) {
    static const bool tails = [] {
        const char* e = std::getenv("SLUICE_GPU_NORM");
        return e && std::string(e) == "tail";
    }();
    resid_norm_ = -1;
    hn_scaled_ = false;
    if (!o.norm_out || !o.norm_q || tails) {
        gpu::matvec(c, w, x, {&x_}, step_, o);
        return;
    }
    const Vec nw = o.norm_w;
    o.norm_out = nullptr;
    o.norm_q = nullptr;
    if (fuse_norm && (qblk_mode() & 1) && hp_.n_embd % 32 == 0) {  // hn's mirror of x * w and its block sums
        o.qblk = {xq(hn_), 0, {&tails_, 0}, nw, {&tails_, tails_ss_off_}};
        gpu::matvec(c, w, x, {&x_}, step_, o);
        hn_scaled_ = true;
        scaled_norm_ = nw.off;
        return;
    }
    gpu::matvec(c, w, x, {&x_}, step_, o);
    gpu::rmsnorm_q8(c, {&x_}, {&hn_}, nw, uint32_t(hp_.n_embd), hp_.rms_eps, xq(hn_));
    resid_norm_ = int64_t(nw.off);
}

// Where a resident MoE layer's top-k is computed: the router matvec's last workgroup (MV_TOPK), or a
// dispatch of its own (more than MV_ROUTE_MAX experts or MV_TOPK_MAX_K picks; SLUICE_GPU_ROUTE=dispatch
// in the environment, for measurements), or the architecture's shader (record_route()).
GpuModel::Route GpuModel::route_mode() const {
    if (has_route_shader()) return Route::Own;
    static const bool dispatch = [] {
        const char* e = std::getenv("SLUICE_GPU_ROUTE");
        return e && std::string(e) == "dispatch";
    }();
    if (hp_.n_expert > MV_ROUTE_MAX || uint64_t(top_k_) > MV_TOPK_MAX_K || dispatch) return Route::Dispatch;
    return Route::Tail;
}

std::string GpuModel::describe() const {
    const gpu::DeviceInfo& d = ctx_.info();
    std::string s = "GPU " + std::to_string(d.index) + ": " + d.name + " (Vulkan" + (d.unified ? ", unified memory" : "") +
                    "), dense weights + KV cache in VRAM";
    if (hp_.n_expert > 0) {
        s += ", experts: " + std::string(place_name(int(place_)));
        if ((place_ == Place::Cache || place_ == Place::Split) && !sync_layers_.empty() && moe_[size_t(sync_layers_[0])].slots)
            s += " (" + std::to_string(moe_[size_t(sync_layers_[0])].slots->n_slots()) + " of " + std::to_string(hp_.n_expert) +
                 " per layer)";
        if (!experts_cpu_why_.empty()) s += " (" + experts_cpu_why_ + ")";
        if (probing_) s += ", measuring which placement is fastest";
    }
    if (n_repacked_) s += ", " + std::to_string(n_repacked_) + " Q8_0 tensors repacked";
    s += ", " + std::to_string(counters_.vram_bytes >> 20) + " MiB";
    if (batching()) s += " + " + std::to_string(counters_.vram_batch_bytes >> 20) + " for prompt batches of " + std::to_string(batch_max());
    return s;
}

}  // namespace sluice

#endif  // SLUICE_VULKAN
