// Prompt batches' routed experts on the GPU when the experts live outside VRAM (cache, cpu and split
// placements). Between a batch's segments (gpu_batch.cpp run_batch) the host routes every token, then
// uploads each expert the batch picked once into a VRAM arena (copied within VRAM where the expert
// cache holds it) and submits the grouped products over the arena's slots (matmul_experts, groups
// laid out by the host), the threads copying into one staging half while the other's DMA runs; the
// last submit adds each token's weighted sum. The CPU only copies bytes, so a prompt moves at the
// host-to-GPU copy rate (or the disk's) instead of the CPU's products.
#ifdef SLUICE_VULKAN
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/models/gpu_model.h"
#include "engine/stats_recorder.h"
#include "engine/tensor/threadpool.h"

namespace sluice {

using gpu::Mem;

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point& t) {  // seconds since t; t becomes now
    const auto now = Clock::now();
    const double s = std::chrono::duration<double>(now - t).count();
    t = now;
    return s;
}
// SLUICE_GPU_TIMING=1: where the host's time in the batches' GPU experts went, printed at exit.
struct BatchTiming {
    bool on = std::getenv("SLUICE_GPU_TIMING") != nullptr;
    double route = 0, source = 0, copy = 0, dma = 0, gpu = 0;
    uint64_t layers = 0, experts = 0, bytes = 0;
    ~BatchTiming() {
        if (on && layers)
            std::fprintf(stderr,
                         "prompt batches' GPU experts: %llu layer passes, %llu experts uploaded (%.1f MB each pass): "
                         "route %.1f ms, source %.1f ms, copy into staging %.1f ms, waiting for DMA %.1f ms, for the "
                         "products %.1f ms (per pass)\n",
                         (unsigned long long)layers, (unsigned long long)experts, double(bytes) / double(layers) * 1e-6,
                         route / double(layers) * 1e3, source / double(layers) * 1e3, copy / double(layers) * 1e3,
                         dma / double(layers) * 1e3, gpu / double(layers) * 1e3);
    }
} g_bt;
}  // namespace

bool GpuModel::batch_experts_gpu_ok() const {
    if (!arena_bytes_ || !host_experts_batch() || !batch_ok() || !xq(hnb_) || !xq(gb_)) return false;
    if (hp_.n_ff_exp % 32 != 0) return false;  // the int8 mirrors' blocks per entry
    for (int64_t il : sync_layers_) {
        const MoeLayer& L = moe_[size_t(il)];
        for (size_t i = 0; i < 3; ++i)  // gate, up: rows of n_embd; down: of n_ff_exp (the tiles' K steps)
            if (!gpu::has_mm(ctx_, L.expert_type[i]) ||
                !gpu::mm_cols_ok(L.expert_type[i], uint64_t(i < 2 ? hp_.n_embd : hp_.n_ff_exp)))
                return false;
    }
    return true;
}

// Which side runs this layer pass's experts (hb_ids_ routed): SLUICE_GPU_BATCH_EXPERTS=gpu or cpu,
// else measured. The GPU's pass costs about its uploads (the experts the batch picked that VRAM does
// not hold), the CPU's about its (token, expert) entries: each side's seconds per byte or per entry
// is averaged over its passes, the first of each ignored (allocations, pipelines). Until both are
// measured: the GPU for batches of at least kGpuBatchExperts tokens (two passes), then the CPU
// (two); then the cheaper prediction, and every 256th pass the other side, to follow changes.
bool GpuModel::batch_pass_on_gpu(int64_t il, uint32_t B) {
    const char* e = std::getenv("SLUICE_GPU_BATCH_EXPERTS");
    const std::string mode = e ? e : "";
    if (mode == "cpu" || !batch_experts_gpu_ok()) return false;
    if (mode == "gpu") return true;
    BatchRates& r = bx_rates_;
    ++r.passes;
    if (r.gpu_n < 2) return B >= kGpuBatchExperts;
    if (r.cpu_n < 2) return false;
    const MoeLayer& L = moe_[size_t(il)];
    std::vector<bool> seen(size_t(hp_.n_expert), false);
    uint64_t bytes = 0;
    const uint64_t per = L.expert_bytes[0] + L.expert_bytes[1] + L.expert_bytes[2];
    for (size_t i = 0; i < size_t(B) * size_t(top_k_); ++i) {
        const int32_t x = hb_ids_[i];
        if (x < 0 || x >= hp_.n_expert || seen[size_t(x)]) continue;
        seen[size_t(x)] = true;
        if (!(L.slots && L.gate_exps.buf && L.slots->has(x))) bytes += per;
    }
    const bool gpu = double(bytes) * r.gpu_s_per_byte < double(B) * double(top_k_) * r.cpu_s_per_entry;
    return r.passes % 256 == 0 ? !gpu : gpu;
}

void GpuModel::batch_pass_done(bool gpu, double work, double secs) {
    ++(gpu ? counters_.batch_passes_gpu : counters_.batch_passes_cpu);
    BatchRates& r = bx_rates_;
    int& n = gpu ? r.gpu_n : r.cpu_n;
    double& avg = gpu ? r.gpu_s_per_byte : r.cpu_s_per_entry;
    if (work <= 0 || ++n == 1) return;  // the first pass of each side: warm-up
    avg = n == 2 ? secs / work : 0.75 * avg + 0.25 * secs / work;
}

// The arena (a buffer each for the experts' gate, up and down, so each stays within a binding's
// range), the staging halves, the groups' regions and their command buffers: at the first GPU pass.
void GpuModel::alloc_arena() {
    if (arena_slots_) return;
    uint64_t per = 0, most = 0;
    for (int64_t il : sync_layers_) {
        const MoeLayer& L = moe_[size_t(il)];
        for (int t = 0; t < 3; ++t) arena_part_[t] = std::max(arena_part_[t], L.expert_bytes[t]);
    }
    for (int t = 0; t < 3; ++t) per += arena_part_[t];
    uint64_t n = std::min<uint64_t>(arena_bytes_ / std::max<uint64_t>(per, 1), uint64_t(hp_.n_expert));
    for (int t = 0; t < 3; ++t) n = std::min<uint64_t>(n, ctx_.info().max_buffer_range / std::max<uint64_t>(arena_part_[t], 1));
    if (const char* e = std::getenv("SLUICE_GPU_ARENA"); e && std::atoi(e) > 0) n = std::min<uint64_t>(n, uint64_t(std::atoi(e)));
    if (n == 0) throw gpu::GpuError("the prompt batches' expert arena holds no expert");
    arena_slots_ = uint32_t(n);
    for (int t = 0; t < 3; ++t) arena_[t] = device_floats(size_t(n * arena_part_[t] + 3) / 4, "prompt batches' expert arena");
    most = std::max({arena_part_[0], arena_part_[1], arena_part_[2]});
    // A part's uploads: the arena (SLUICE_GPU_BATCH_PART_KIB: at most that; tests' tiny experts).
    // The copy engine and the products share one queue, so smaller parts only queue each DMA behind
    // the products before it (H200, 30B-A3B shape: 64 MiB parts 1428-1449 tok/s, 16 MiB 1119-1244,
    // vs 1489-1553 in one part). Staging halves of 32 MiB: the threads copy one while the other's
    // DMA runs.
    const char* pk = std::getenv("SLUICE_GPU_BATCH_PART_KIB");
    bx_part_bytes_ = pk && std::atoi(pk) > 0 ? size_t(std::atoi(pk)) << 10 : SIZE_MAX;
    if (!arena_[0].mapped()) {
        bx_half_ = size_t(std::max<uint64_t>(most, std::min<size_t>(bx_part_bytes_, size_t(32) << 20)));
        bx_staging_ = ctx_.alloc(2 * bx_half_, Mem::Upload, "prompt batches' expert staging");
        for (int h = 0; h < 2; ++h) bx_copy_.emplace_back(ctx_);
    }
    const gpu::ExpertGroups g{nullptr, batch_max(), uint32_t(top_k_), uint32_t(hp_.n_expert), 16};
    constexpr int kParts = 3;  // parts' products in flight
    bx_groups_ = ctx_.alloc(size_t(kParts * g.words() * 4), Mem::Upload, "prompt batches' expert groups");
    for (int r = 0; r < kParts; ++r) bx_compute_.emplace_back(ctx_);
    bx_w_host_ = ctx_.alloc(size_t(batch_max()) * size_t(top_k_) * 4, Mem::Upload, "prompt batches' expert weights");
    bx_w_ = device_floats(size_t(batch_max()) * size_t(top_k_), "prompt batches' expert weights");
    alloc_grouped();
}

void GpuModel::upload_to_arena(int64_t il, const std::vector<int32_t>& ids, const std::vector<uint32_t>& at, bool wrapped) {
    const MoeLayer& L = moe_[size_t(il)];
    const int64_t n = int64_t(ids.size()), cap = std::max<int64_t>(1, std::min(experts_->capacity(), n));
    struct Part {
        const uint8_t* src;
        size_t off, n;  // in the staging half, or in the arena part's mapping
        int t;          // the arena part (mapped arenas)
    };
    struct Region {
        size_t src, dst, n;
        int t;
        const uint8_t* host;   // an imported source, else the staging half at src
        const HostImport* imp;  // imported(host, n)
    };
    constexpr size_t kPart = 256u << 10;
    std::vector<Part> parts;
    std::vector<Region> regions;
    const bool mapped = arena_[0].mapped() != nullptr;
    int& half = bx_next_half_;  // alternating across calls too: a part's first half is not the last one's
    size_t fill = 0;
    auto copy_parts = [&](uint8_t* base) {
        auto t = Clock::now();
        for (const Part& p : parts) g_bt.bytes += p.n;
        pool_->parallel_for(int64_t(parts.size()), 1, [&](int64_t a, int64_t b, int) {
            for (int64_t i = a; i < b; ++i) {
                const Part& p = parts[size_t(i)];
                uint8_t* to = base ? base : static_cast<uint8_t*>(arena_[p.t].mapped());
                std::memcpy(to + p.off, p.src, p.n);
            }
        });
        parts.clear();
        g_bt.copy += since(t);
    };
    auto flush = [&] {  // the filled half: copied by every thread, then its DMA submitted
        if (mapped || regions.empty()) return;
        gpu::Cmd& c = bx_copy_[size_t(half)];
        auto t = Clock::now();
        c.wait();  // its previous DMA read the half
        g_bt.dma += since(t);
        copy_parts(static_cast<uint8_t*>(bx_staging_.mapped()) + size_t(half) * bx_half_);
        c.begin();
        if (wrapped) c.barrier();  // after the products that read these slots before (else it may overlap them)
        for (const Region& r : regions) {
            c.independent();
            if (r.imp)
                copy_imported(c, r.imp, r.host, r.n, arena_[r.t], r.dst);
            else
                c.copy(bx_staging_, size_t(half) * bx_half_ + r.src, arena_[r.t], r.dst, r.n);
        }
        c.end();
        c.submit();
        regions.clear();
        half ^= 1;
        fill = 0;
    };
    std::vector<ExpertWeights> got(static_cast<size_t>(cap));
    std::vector<int64_t> ready;
    for (int64_t g0 = 0; g0 < n; g0 += cap) {
        const int64_t gn = std::min(cap, n - g0);
        experts_->start(moe_index_[size_t(il)], ids.data() + g0, gn, got.data());
        for (int64_t done = 0; done < gn;) {
            ready.clear();
            auto t = Clock::now();
            const int64_t r = experts_->wait_ready(ready);
            g_bt.source += since(t);
            if (r == 0) throw Error("expert source returned " + std::to_string(done) + " of " + std::to_string(gn) + " experts");
            g_bt.experts += uint64_t(r);
            for (int64_t j : ready) {
                const WeightView* src[3] = {&got[size_t(j)].gate, &got[size_t(j)].up, &got[size_t(j)].down};
                const uint64_t slot = at[size_t(g0 + j)];
                for (int t = 0; t < 3; ++t) {
                    const size_t bytes = size_t(L.expert_bytes[t]), dst = size_t(slot * arena_part_[t]);
                    const uint8_t* from = static_cast<const uint8_t*>(src[t]->data);
                    if (const HostImport* h = mapped ? nullptr : imported(from, bytes, true)) {  // from the pinned copy
                        regions.push_back({0, dst, bytes, t, from, h});
                        counters_.upload_bytes_direct += bytes;
                        continue;
                    }
                    if (!mapped) counters_.upload_bytes_staged += bytes;
                    if (!mapped && fill + bytes > bx_half_) flush();
                    const size_t base = mapped ? dst : fill;
                    for (size_t o = 0; o < bytes; o += kPart) parts.push_back({from + o, base + o, std::min(kPart, bytes - o), t});
                    if (!mapped) regions.push_back({fill, dst, bytes, t, nullptr, nullptr});
                    fill += bytes;
                }
            }
            done += r;
        }
        // the views last until the next start(): their bytes are copied before it
        if (mapped)
            copy_parts(nullptr);
        else
            flush();
    }
}

void GpuModel::experts_to_gpu_batch(int64_t il, uint32_t B) {
    const auto t0 = Clock::now();
    auto t = t0;
    alloc_arena();
    const Hparams& h = hp_;
    const uint32_t K = uint32_t(top_k_), NE = uint32_t(h.n_expert), E = uint32_t(h.n_embd), F = uint32_t(h.n_ff_exp);
    if (StatsRecorder* rec = experts_->recorder())
        for (uint32_t j = 0; j < B; ++j) rec->routing(moe_index_[size_t(il)], NE, hb_ids_.data() + j * K, K);
    std::memcpy(bx_w_host_.mapped(), hb_w_.data(), size_t(B) * K * 4);  // the combine's weights
    if (!hb_y_zero_) {  // the next segment adds the host's sums: none (this pass adds its own)
        std::memset(hb_y_host_.mapped(), 0, hb_y_host_.size());
        hb_y_zero_ = true;
    }
    // Entries (j * K + slot) by expert: the experts in id order, each one's entries in token order.
    std::vector<uint32_t> first(NE + 1, 0), entries(size_t(B) * K);
    for (uint32_t i = 0; i < B * K; ++i) {
        const int32_t e = hb_ids_[i];
        if (e < 0 || uint32_t(e) >= NE) throw Error("router picked expert " + std::to_string(e));
        ++first[size_t(e) + 1];
    }
    for (uint32_t e = 0; e < NE; ++e) first[e + 1] += first[e];
    {
        std::vector<uint32_t> fill(first.begin(), first.end() - 1);
        for (uint32_t i = 0; i < B * K; ++i) entries[fill[size_t(hb_ids_[i])]++] = i;
    }
    std::vector<int32_t> used;
    for (uint32_t e = 0; e < NE; ++e)
        if (first[e + 1] > first[e]) used.push_back(int32_t(e));

    g_bt.route += since(t);
    MoeLayer& L = moe_[size_t(il)];
    const Mat gate{&arena_[0], L.expert_type[0], 0, F, E, L.expert_bytes[0]};
    const Mat up{&arena_[1], L.expert_type[1], 0, F, E, L.expert_bytes[1]};
    const Mat down{&arena_[2], L.expert_type[2], 0, E, F, L.expert_bytes[2]};
    const gpu::ExpertGroups g = gpu::expert_groups(ctx_, &grp_b_, B, K, NE);
    const size_t region = size_t(g.words());  // uints of one part's groups in bx_groups_
    const bool mapped = arena_[0].mapped() != nullptr;
    const uint64_t per = L.expert_bytes[0] + L.expert_bytes[1] + L.expert_bytes[2];
    const size_t chunk = bx_part_bytes_;  // the staging halves only pace the DMAs within a part
    std::vector<int32_t> up_ids;
    std::vector<uint32_t> up_at;
    std::vector<std::pair<uint32_t, uint32_t>> in_vram, to_cache;  // (cache slot, arena slot)
    // Parts of at most the arena's slots (and SLUICE_GPU_BATCH_PART_KIB of uploads), each part's
    // products submitted after its DMAs. Arena slots are taken in turn; a part that would pass the
    // arena's end starts again at slot 0, after the products that read those slots (wrapped).
    uint32_t next = 0;
    bool wrapped = false;
    uint64_t uploaded = 0;
    for (size_t i = 0, part = 0; i < used.size(); ++part) {
        if (next == arena_slots_) {
            next = 0;
            wrapped = true;
            if (mapped)  // the threads write the slots in place: after every product that reads them
                for (gpu::Cmd& p : bx_compute_) p.wait();
        }
        gpu::Cmd& c = bx_compute_[part % bx_compute_.size()];
        c.wait();  // its groups region is free again
        // This part's tiles: (arena slot, first entry, entries), bn entries at most each.
        uint32_t* G = static_cast<uint32_t*>(bx_groups_.mapped()) + (part % bx_compute_.size()) * region;
        uint32_t nt = 0, ne = 0;
        uint64_t bytes = 0;
        up_ids.clear();
        up_at.clear();
        in_vram.clear();
        to_cache.clear();
        for (; i < used.size() && next < arena_slots_; ++i) {
            const int32_t e = used[i];
            const int64_t slot = L.slots && L.gate_exps.buf ? L.slots->find(e) : -1;
            if (slot < 0 && bytes + per > chunk && !(up_ids.empty() && in_vram.empty())) break;
            const uint32_t a = next++;
            for (uint32_t s = first[size_t(e)]; s < first[size_t(e) + 1]; s += g.bn) {
                G[1 + 3 * nt] = a;
                G[2 + 3 * nt] = ne + (s - first[size_t(e)]);
                G[3 + 3 * nt] = std::min(g.bn, first[size_t(e) + 1] - s);
                ++nt;
            }
            for (uint32_t s = first[size_t(e)]; s < first[size_t(e) + 1]; ++s) G[g.entries_off() + ne++] = entries[s];
            if (slot >= 0) {
                in_vram.push_back({uint32_t(slot), a});
            } else {
                up_ids.push_back(e);
                up_at.push_back(a);
                bytes += per;
                if (L.slots && L.gate_exps.buf && !L.slots->full()) {  // a free cache slot: keep a copy
                    bool hit;
                    to_cache.push_back({L.slots->get(e, &hit), a});
                }
            }
        }
        G[0] = nt;
        if (L.slots) {
            counters_.vram_cache_hits += in_vram.size();
            counters_.vram_cache_misses += up_ids.size();
        }
        upload_to_arena(il, up_ids, up_at, wrapped);
        uploaded += bytes;
        c.begin();
        c.barrier();  // after this part's DMA (and everything before it)
        c.copy(bx_groups_, (part % bx_compute_.size()) * region * 4, grp_b_, 0, size_t(g.entries_off() + ne) * 4);
        const Mat* cached[3] = {&L.gate_exps, &L.up_exps, &L.down_exps};
        for (const auto& [slot, a] : in_vram)
            for (int t = 0; t < 3; ++t) {
                c.independent();
                c.copy(*cached[t]->buf, size_t(cached[t]->offset + slot * L.expert_bytes[t]), arena_[t],
                       size_t(a * arena_part_[t]), size_t(L.expert_bytes[t]));
            }
        if (part == 0) {
            c.independent();
            quantize_for(c, hnb_, B * E, {&gate, &up});
        }
        c.barrier();
        // Every part runs SwiGLU and the int8 mirror over all B x K entries: the earlier parts' are
        // garbled again but never read (each down product reads only its part's entries).
        const gpu::Xq& xh = *xq(hnb_);
        gpu::matmul_experts(c, gate, {&hnb_}, E, true, {&gb_}, F, xh, g);
        c.independent();
        gpu::matmul_experts(c, up, {&hnb_}, E, true, {&upe_b_}, F, xh, g);
        gpu::swiglu(c, {&gb_}, {&upe_b_}, {&gb_}, B * K * F);
        quantize_for(c, gb_, B * K * F, {&down});
        gpu::matmul_experts(c, down, {&gb_}, F, false, {&oute_b_}, E, *xq(gb_), g);
        // Uploaded experts into the VRAM cache's free slots (the cache and split placements fill it
        // with the first experts used): later batches and tokens find them there.
        for (const auto& [slot, a] : to_cache)
            for (int t = 0; t < 3; ++t) {
                c.independent();
                c.copy(arena_[t], size_t(a * arena_part_[t]), *cached[t]->buf, size_t(cached[t]->offset + slot * L.expert_bytes[t]),
                       size_t(L.expert_bytes[t]));
            }
        if (i == used.size()) {  // the last part: x += each token's weighted sum of its K outputs
            c.independent();
            c.copy(bx_w_host_, 0, bx_w_, 0, size_t(B) * K * 4);
            gpu::moe_combine_rows(c, {&xb_}, {&oute_b_}, {&bx_w_}, E, K, B, E, K * E, K);
        }
        c.end();
        c.submit();
    }
    t = Clock::now();
    for (gpu::Cmd& c : bx_compute_) c.wait();
    g_bt.gpu += since(t);
    ++g_bt.layers;
    batch_pass_done(true, double(uploaded), std::chrono::duration<double>(Clock::now() - t0).count());
    if (StatsRecorder* rec = experts_->recorder())
        rec->add_time(StatsRecorder::Part::ExpertsCompute, std::chrono::duration<double>(Clock::now() - t0).count());
}

}  // namespace sluice

#endif  // SLUICE_VULKAN
