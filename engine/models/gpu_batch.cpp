// GpuModel's prompts: a chunk from Model::forward_tokens in batches of up to batch_max() tokens where
// the architecture and placement allow (record_layer_batch(); the dense matrices as mm_* tiles or
// matmul_*, attention for the batch, the routed experts grouped by expert or per token), else token by
// token.
#ifdef SLUICE_VULKAN
#include "engine/models/gpu_model.h"
#include "engine/tensor/threadpool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice {

using gpu::Mem;

// A prompt's chunk (Model::forward_tokens does the chunking, progress and statistics): batch_max() tokens
// at a time where the architecture and placement allow (batching()), then halves of that down to
// kBatchSmall, each while that many remain: a chunk of 255 tokens runs as 128 + 64 + 32 + 16 + 8 and 7
// token by token (each batch size recorded once, on first use). When a batch ends the chunk, the last
// token's logits come from its column (batch_logits()); else from the last token's own step.
void GpuModel::forward_batch(std::span<const int32_t> tokens, bool all, float* logits) {
    const size_t nv = size_t(hp_.n_vocab);
    size_t i = 0;
    if (!all && batching()) {
        uint32_t last = 0;
        for (uint32_t B = batch_max(); B >= kBatchSmall; B = B / 2 / kBatchSmall * kBatchSmall) {
            for (; tokens.size() - i >= B; i += B) {
                if (i > 0) check_stop();
                run_batch(tokens.subspan(i, B), i);
                token_done(i + B - 1);
                last = B;
            }
        }
        if (i == tokens.size()) {
            const float* l = batch_logits(last);
            std::copy(l, l + nv, logits);
            return;
        }
    }
    for (; i < tokens.size(); ++i) {
        if (i > 0) check_stop();
        const bool want = all || i + 1 == tokens.size();
        const float* l = step(tokens[i], want);
        if (want) std::copy(l, l + nv, all ? logits + i * nv : logits);
        token_done(i);
    }
}

// The head on the last column of the batch of B tokens just run: output_norm(x) into hn, the logits.
const float* GpuModel::batch_logits(uint32_t B) {
    std::unique_ptr<gpu::Cmd>& cmd = batch_head_[B];
    if (!cmd) {
        cmd = std::make_unique<gpu::Cmd>(ctx_);
        gpu::Cmd& c = *cmd;
        c.begin();
        c.barrier();
        norm_into_hn(c, out_norm_, {&xb_, (B - 1) * uint32_t(hp_.n_embd)});
        record_head(c);
        c.end();
    }
    cmd->run();
    return static_cast<const float*>(logits_rb_.mapped());
}

uint32_t GpuModel::prompt_batch_from_env() {
    const char* e = std::getenv("SLUICE_GPU_PROMPT_BATCH");
    return e && *e ? uint32_t(std::clamp(std::atoi(e), 8, 1024) / 8 * 8) : 0;
}

uint32_t GpuModel::batch_wanted(bool host_experts) const {
    if (batch_max_) return batch_max_;
    return host_experts ? uint32_t(std::clamp<int64_t>(prefill_chunk(), 8, 1024) / 8 * 8) : kBatchDefault;
}

uint32_t GpuModel::batch_max() const { return std::min(batch_wanted(host_experts_batch()), batch_cap_); }

bool GpuModel::batching() const {
    const char* e = std::getenv("SLUICE_GPU_BATCH");
    return !(e && std::string(e) == "0") && batch_max() >= kBatchSmall && ((batch_ok() && !segmented()) || host_experts_batch());
}

// What alloc_batch(), record_experts_grouped() and the architecture (batch_vram_own()) allocate for B
// tokens, int8 mirrors included: an upper bound whatever the placement turns out to be.
uint64_t GpuModel::batch_vram(uint32_t B) const {
    const Hparams& h = hp_;
    const uint64_t E = uint64_t(h.n_embd), K = uint64_t(top_k_), F = uint64_t(h.n_ff_exp);
    const uint64_t ff = std::max<uint64_t>(batch_ff(), K * F);
    uint64_t bytes = 4 * (3 * B * E + B * ff + B * std::max<uint64_t>(batch_ff(), 1) + B * std::max<uint64_t>(route_row(), 1));
    bytes += gpu::xq_bytes(B * E) + gpu::xq_bytes(B * ff) + uint64_t(B) * gpu::kStepBytes;
    if (h.n_expert > 0 && K > 0) {
        const gpu::ExpertGroups most{nullptr, B, uint32_t(K), uint32_t(h.n_expert), 16};
        bytes += 4 * (B * K * F + B * K * E + most.words());
    }
    return bytes + batch_vram_own(B);
}

// The batch as recorded segments: one for resident placements; with the experts on the host
// (host_experts_batch()), each MoE layer's segment ends at its router (logits and hn read back) and
// the next one starts by adding the host's expert sums (experts_on_host()).
void GpuModel::run_batch(std::span<const int32_t> tokens, size_t first) {
    const uint32_t B = uint32_t(tokens.size());
    for (int32_t t : tokens) check_token(t);
    if (!xb_.size()) alloc_batch();
    std::vector<std::unique_ptr<gpu::Cmd>>& segs = batch_cmd_[B];
    if (segs.empty()) record_batch(B, segs);
    uint8_t* st = static_cast<uint8_t*>(steps_b_host_.mapped());
    for (uint32_t j = 0; j < B; ++j) fill_step(st + size_t(j) * gpu::kStepBytes, uint32_t(n_past_ + j), uint32_t(tokens[j]));
    double gpu_ms = 0;
    try {
        for (size_t s = 0; s < segs.size(); ++s) {
            if (s > 0) {
                const int64_t il = sync_layers_[s - 1];
                route_batch(il, B);
                if (batch_pass_on_gpu(il, B))
                    experts_to_gpu_batch(il, B);
                else
                    experts_on_host(il, B);
                // progress inside the batch; a stop between layers leaves n_past_ at the batch's start
                chunk_progress(double(first) + double(B) * double(il + 1) / double(hp_.n_layer));
            }
            segs[s]->run();
            gpu_ms += segs[s]->last_gpu_ms();
        }
    } catch (...) {  // a stop or a failed expert read between segments: recurrent states as at the start
        if (segs.size() > 1) {
            gpu::Cmd c(ctx_);
            c.begin();
            c.barrier();
            record_state_backup(c, true);
            c.end();
            c.run();
        }
        throw;
    }
    counters_.gpu_s_last_token = gpu_ms * 1e-3;
    counters_.batched_tokens += B;
    n_past_ += B;
}

// Buffers for batch_max() tokens, on first use.
void GpuModel::alloc_batch() {
    const Hparams& h = hp_;
    const uint32_t B = batch_max(), E = uint32_t(h.n_embd);
    const uint64_t K = uint64_t(top_k_), R = route_row();
    const uint64_t ff = std::max<uint64_t>(batch_ff(), K * uint64_t(h.n_ff_exp));
    xb_ = device_floats(size_t(B) * E, "x of a prompt batch");
    hnb_ = device_floats(size_t(B) * E, "hn of a prompt batch");
    gb_ = device_floats(size_t(B * ff), "gate of a prompt batch");
    ub_ = device_floats(size_t(B * std::max<uint64_t>(batch_ff(), 1)), "up of a prompt batch");
    rb_ = device_floats(size_t(B * std::max<uint64_t>(R, 1)), "router logits, ids, weights of a prompt batch");
    mirror(hnb_, size_t(B) * E);  // int8 activations: the integer-dot matmul_*_q8 variants
    mirror(gb_, size_t(B * ff));
    steps_b_host_ = ctx_.alloc(size_t(B) * gpu::kStepBytes, Mem::Upload, "step headers of a prompt batch");
    steps_all_ = device_floats(size_t(B) * gpu::kStepBytes / 4, "step headers of a prompt batch");
    if (host_experts_batch()) {
        hb_rb_ = ctx_.alloc(size_t(B) * (R + E) * 4, Mem::Readback, "router logits and hn of a prompt batch");
        hb_y_host_ = ctx_.alloc(size_t(B) * E * 4, Mem::Upload, "the host's expert sums of a prompt batch");
        hb_y_ = device_floats(size_t(B) * E, "the host's expert sums of a prompt batch");
        hb_ids_.resize(size_t(B * K));
        hb_w_.resize(size_t(B * K));
        hb_out_.resize(size_t(B) * E);
        moe_cpu_->reserve_batch(int64_t(B));
    }
}

void GpuModel::record_batch(uint32_t B, std::vector<std::unique_ptr<gpu::Cmd>>& segs) {
    const Hparams& h = hp_;
    const uint32_t E = uint32_t(h.n_embd);
    auto open = [&] {
        segs.push_back(std::make_unique<gpu::Cmd>(ctx_));
        gpu::Cmd& c = *segs.back();
        c.begin();
        c.barrier();  // after the host's writes and the previous submit
        return &c;
    };
    if (!batch_ok()) {  // host experts: each token's own recording, layer-major (segment s: its tokens in order)
        for (size_t s = 0; s <= sync_layers_.size(); ++s) {
            gpu::Cmd* c = open();
            if (s == 0) record_state_backup(*c, false);
            const int64_t from = s == 0 ? -1 : sync_layers_[s - 1];
            const int64_t to = s < sync_layers_.size() ? sync_layers_[s] : h.n_layer;
            for (uint32_t j = 0; j < B; ++j) {
                const BatchRow row{j, B};
                record_layers(*c, Place::Cpu, from, to, &row);
            }
            c->end();
        }
        return;
    }
    gpu::Cmd* c = open();
    c->copy(steps_b_host_, 0, steps_all_, 0, size_t(B) * gpu::kStepBytes);
    gpu::getrows_tokens(*c, embd_, {&xb_}, E, steps_all_, B);
    const bool host = host_experts_batch();
    if (host) record_state_backup(*c, false);
    for (int64_t il = 0; il < h.n_layer; ++il) {
        gpu::rmsnorm(*c, {&xb_}, {&hnb_}, {&norms_, first_norm(il)}, E, B, E, h.rms_eps, steps_all_);
        record_layer_batch(*c, il, B);  // with host: a MoE layer's recording ends at its router's readback
        if (host && moe_[size_t(il)].router.rows) {
            c->end();
            c = open();
            // x += the host's expert sums (zeros after experts_to_gpu_batch(), which added its own)
            c->copy(hb_y_host_, 0, hb_y_, 0, size_t(B) * E * 4);
            gpu::moe_combine_rows(*c, {&xb_}, {&hb_y_}, {&one_}, E, 1, B, E, E, 0);
        }
    }
    c->end();
}

// Between a batch's segments: the routed experts of MoE layer il for its B tokens (route_batch()) on
// the CPU, grouped by expert (MoeFfn::run_batch: each expert read once for the batch, from the page
// cache or the disk), from hn the segment read back; their sums go up for the next segment.
void GpuModel::experts_on_host(int64_t il, uint32_t B) {
    const auto t0 = std::chrono::steady_clock::now();
    const Hparams& h = hp_;
    const size_t K = size_t(top_k_), E = size_t(h.n_embd);
    const float* rb = static_cast<const float*>(hb_rb_.mapped());
    hb_y_zero_ = false;
    moe_cpu_->run_batch(*experts_, moe_index_[size_t(il)], hb_ids_.data(), hb_w_.data(), int64_t(B), int64_t(K),
                        h.n_expert, rb + hb_hn_off(0, B), hb_out_.data(), *pool_);
    std::memcpy(hb_y_host_.mapped(), hb_out_.data(), size_t(B) * E * 4);
    batch_pass_done(false, double(B) * double(K), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void GpuModel::route_batch(int64_t il, uint32_t B) {
    const size_t K = size_t(top_k_), R = route_row();
    const float* rb = static_cast<const float*>(hb_rb_.mapped());
    if (batch_ok()) {  // record_ffn_batch()'s segment picked them: ids and weights after each row's logits
        const size_t NE = size_t(hp_.n_expert);
        for (size_t j = 0; j < B; ++j) {
            std::memcpy(hb_ids_.data() + j * K, rb + j * R + NE, K * 4);
            std::memcpy(hb_w_.data() + j * K, rb + j * R + NE + K, K * 4);
        }
        return;
    }
    auto route = [&](int64_t a, int64_t b, int) {
        for (int64_t j = a; j < b; ++j) route_on_host(il, rb + j * R, hb_ids_.data() + j * K, hb_w_.data() + j * K);
    };
    if (routes_in_parallel())
        pool_->parallel_for(int64_t(B), 16, route);
    else
        route(0, int64_t(B), 0);
}

void GpuModel::record_ffn_batch(gpu::Cmd& c, int64_t il, uint32_t B, uint32_t ffn_norm, const Mat& gate, const Mat& up,
                                const Mat& down, bool hn_ready) {
    const Hparams& h = hp_;
    const uint32_t E = uint32_t(h.n_embd);
    const Buffer& st = steps_all_;
    if (!hn_ready) gpu::rmsnorm(c, {&xb_}, {&hnb_}, {&norms_, ffn_norm}, E, B, E, h.rms_eps, st);
    const MoeLayer& M = moe_[size_t(il)];
    if (!M.router.rows) {  // x += down(silu(gate hn) * up hn), the weights read once for the batch
        record_glu_batch(c, B, gate, up, down);
        return;
    }
    record_before_experts_batch(c, il, B);  // e.g. shared experts
    if (!host_experts_batch()) quantize_for(c, hnb_, B * E, {&M.gate_exps});
    // The router and the top-k for the batch, then the experts grouped by expert, or per token: its
    // experts' gate + up, their weighted sum into its x (the tokens' dispatches independent).
    const uint32_t K = uint32_t(top_k_), F = uint32_t(h.n_ff_exp), NE = uint32_t(h.n_expert), R = route_row();
    // The router (few rows, F32 in llama.cpp's files) as a batch of B matvecs over the same matrix,
    // one workgroup row per token: tiles of 64 rows would leave most of the GPU idle (H200, 128 x 2048
    // for 128 tokens: mmf_f32 178 us on 4 workgroups).
    gpu::MatvecOpts r;
    r.n_mats = B;
    r.x_mat_stride = E;
    r.y_mat_stride = R;
    Mat router = M.router;
    router.mat_stride = 0;  // every token's "matrix" is the one router
    gpu::matvec(c, router, {&hnb_}, {&rb_}, st, r);
    if (host_experts_batch()) {  // the segment ends: the host runs the experts (experts_on_host, experts_to_gpu_batch)
        // The GPU's top-k and weights, read back with the logits, as the resident placement's to the
        // bit: the host's exp differs by an ulp, and the float16 tiles downstream (mmc_) round such a
        // difference in x up to 2^-11 (H100, Q3_K: 6e-3 apart at the logits with the host's weights).
        record_route_batch(c, il, B);
        c.copy(rb_, 0, hb_rb_, 0, size_t(B) * R * 4);
        c.independent();
        c.copy(hnb_, 0, hb_rb_, hb_hn_off(0, B) * 4, size_t(B) * E * 4);
        return;
    }
    record_route_batch(c, il, B);  // each token's row of rb_
    if (grouped_experts(M)) {  // each expert's weights read once for the batch
        record_experts_grouped(c, M, B);
        return;
    }
    auto experts_of = [&](uint32_t j, const Buffer& x) {  // token j's K experts (ids at j * R + NE of rb_)
        gpu::MatvecOpts o = with_xq({}, x);
        o.n_mats = K;
        o.ids = &rb_;
        o.ids_off = j * R + NE;
        return o;
    };
    for (uint32_t j = 0; j < B; ++j) {
        if (j) c.independent();
        gpu::MatvecOpts o = experts_of(j, hnb_);
        o.y_mat_stride = F;
        o.swiglu_up = &M.up_exps;
        gpu::matvec(c, M.gate_exps, {&hnb_, j * E}, {&gb_, j * K * F}, st, o);
    }
    quantize_for(c, gb_, B * K * F, {&M.down_exps});
    for (uint32_t j = 0; j < B; ++j) {
        if (j) c.independent();
        gpu::MatvecOpts d = experts_of(j, gb_);
        d.x_mat_stride = F;
        d.sum_mats = true;
        d.sum_w_off = j * R + NE + K;
        d.accumulate = true;
        gpu::matvec(c, M.down_exps, {&gb_, j * K * F}, {&xb_, j * E}, st, d);
    }
}

void GpuModel::record_glu_batch(gpu::Cmd& c, uint32_t B, const Mat& gate, const Mat& up, const Mat& down) {
    const uint32_t E = uint32_t(hp_.n_embd), F = gate.rows;
    if (F > batch_ff() || up.rows != F || down.cols != F) throw gpu::GpuError("a batch's FFN wider than batch_ff()");
    quantize_for(c, hnb_, B * E, {&gate, &up});
    const gpu::MatvecOpts o = batch_cols(hnb_, B, E, F);
    gpu::matvec(c, gate, {&hnb_}, {&gb_}, steps_all_, o);
    c.independent();
    gpu::matvec(c, up, {&hnb_}, {&ub_}, steps_all_, o);
    gpu::swiglu(c, {&gb_}, {&ub_}, {&gb_}, B * F);
    quantize_for(c, gb_, B * F, {&down});
    gpu::matvec(c, down, {&gb_}, {&xb_}, steps_all_, batch_cols(gb_, B, F, E, true));
}

void GpuModel::record_route_batch(gpu::Cmd& c, int64_t il, uint32_t B) {
    const uint32_t K = uint32_t(top_k_), NE = uint32_t(hp_.n_expert);
    gpu::topk_softmax(c, {&rb_}, NE, K, true, rb_, NE, {&rb_, NE + K}, B, route_row());
}

void GpuModel::alloc_grouped() {
    if (upe_b_.size()) return;
    const uint32_t K = uint32_t(top_k_), F = uint32_t(hp_.n_ff_exp), NE = uint32_t(hp_.n_expert), E = uint32_t(hp_.n_embd);
    upe_b_ = device_floats(size_t(batch_max()) * K * F, "experts' up of a prompt batch");
    oute_b_ = device_floats(size_t(batch_max()) * K * E, "experts' outputs of a prompt batch");
    const gpu::ExpertGroups most{nullptr, batch_max(), K, NE, 16};
    grp_b_ = device_floats(size_t(most.words()), "routed experts grouped by expert");
}

bool GpuModel::grouped_experts(const MoeLayer& M) const {
    static const bool on = [] {
        const char* e = std::getenv("SLUICE_GPU_MOE_GROUP");
        return !(e && std::string(e) == "0");
    }();
    // rows the tiles take (V2-Lite's experts of 1408: Q5_0 / Q8_0 downs in llama.cpp's Q4_K_M), int8
    // mirrors' blocks of 32 per entry
    return on && xq(hnb_) && xq(gb_) && uint32_t(hp_.n_expert) <= MV_ROUTE_MAX && hp_.n_ff_exp % 32 == 0 &&
           gpu::has_mm(ctx_, M.gate_exps.type) && M.up_exps.type == M.gate_exps.type &&
           gpu::has_mm(ctx_, M.down_exps.type) && gpu::mm_cols_ok(M.gate_exps.type, uint64_t(hp_.n_embd)) &&
           gpu::mm_cols_ok(M.down_exps.type, uint64_t(hp_.n_ff_exp));
}

// The batch's routed experts grouped by expert (moe_group): gate and up of every (token, slot) entry as
// one product per expert (mm_*_ids), SwiGLU, down per entry, then each token's weighted sum of its K
// outputs added to its x (moe_combine). rb_ holds each token's top-k ids and weights.
void GpuModel::record_experts_grouped(gpu::Cmd& c, const MoeLayer& M, uint32_t B) {
    const Hparams& h = hp_;
    const uint32_t K = uint32_t(top_k_), F = uint32_t(h.n_ff_exp), NE = uint32_t(h.n_expert), E = uint32_t(h.n_embd);
    const uint32_t R = route_row();
    alloc_grouped();
    // Tiles of 16 entries unless the experts get 24 tokens each on average (gpu::expert_groups()).
    const gpu::ExpertGroups g = gpu::expert_groups(ctx_, &grp_b_, B, K, NE);
    gpu::moe_group(c, {&rb_, NE}, R, g);
    const gpu::Xq& xh = *xq(hnb_);
    gpu::matmul_experts(c, M.gate_exps, {&hnb_}, E, true, {&gb_}, F, xh, g);
    c.independent();
    gpu::matmul_experts(c, M.up_exps, {&hnb_}, E, true, {&upe_b_}, F, xh, g);
    gpu::swiglu(c, {&gb_}, {&upe_b_}, {&gb_}, B * K * F);
    quantize_for(c, gb_, B * K * F, {&M.down_exps});
    gpu::matmul_experts(c, M.down_exps, {&gb_}, F, false, {&oute_b_}, E, *xq(gb_), g);
    gpu::moe_combine_rows(c, {&xb_}, {&oute_b_}, {&rb_, NE + K}, E, K, B, E, K * E, R);
}

}  // namespace sluice

#endif  // SLUICE_VULKAN
