// What every architecture's Vulkan backend shares (engine/models/*_gpu.cpp): the device, weights in
// VRAM, the per-token step, and the routed experts' placements. An architecture derives from GpuModel,
// loads its own tensors, records its layers and says where its routers and experts are; the base runs
// the token. Only built with SLUICE_VULKAN.
//
// Where the routed experts live (placement()):
//   resident  all experts fit in VRAM: with GPU routing a token is one submit of a command buffer
//             recorded once (what changes per token is in the step buffer).
//   cache     they don't: VRAM holds an LRU cache of experts per layer (gpu_expert_cache bytes). The
//             token runs in segments that end at each MoE router; the CPU reads the router logits,
//             picks the top-k (route_on_host()), uploads the missing experts from the ExpertSource
//             through a staging buffer, and the next segment computes all k from VRAM.
//   cpu       as cache, but the CPU computes the experts (MoeFfn) and the next segment adds their sum.
//   split     the VRAM cache's experts run on the GPU while the CPU computes the others: the
//             segment after a router is two submits, the cached experts' products, then the CPU's sum
//             and the layers after it. The cache fills with the first experts used, then stays (no
//             uploads, so no host copies competing with the CPU's reads of the weights).
// Prompt batches outside the resident placement run each MoE layer's experts on the CPU or, uploaded
// once per batch into a VRAM arena, on the GPU (gpu_batch_experts.cpp), by measured cost.
// An architecture whose routing has no shader (gpu_routing() false) runs resident experts in segments
// too, the host writing expert ids instead of cache slots. GpuExperts::Auto runs the first tokens in
// cache, cpu and split placement (split and cpu when the cache holds fewer than k experts a layer)
// and keeps the fastest.
#pragma once
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/moe.h"
#include "shaders/ops.h"
#include "shaders/slot_cache.h"
#include "shaders/vk_runtime.h"

namespace sluice {

// "auto": the first usable GPU, discrete before integrated; software drivers (lavapipe) only by index.
int gpu_pick_device(const std::string& spec);

class GpuModel : public Model {
public:
    const float* forward(int32_t token) override { return step(token, true); }
    std::span<const float> logits_block_max() const override;
    // logits_rb_: n_vocab logits, then from float block_max_off() their logit_blocks() block maxima
    uint32_t logit_blocks() const { return uint32_t((hp_.n_vocab + LOGIT_BLOCK - 1) / LOGIT_BLOCK); }
    uint32_t block_max_off() const { return uint32_t((hp_.n_vocab + 3) / 4 * 4); }

    GpuCounters gpu_counters() const override { return counters_; }

    // Consecutive matrices of one buffer and type as one matrix (rows add up): {matrix, its first row}.
    struct Merged {
        gpu::Mat w;
        uint32_t y_off;
    };

protected:
    void forward_batch(std::span<const int32_t> tokens, bool all, float* logits) override;
    enum class Place { Resident, Cache, Cpu, Split };
    using Buffer = gpu::Buffer;
    using Mat = gpu::Mat;
    using Vec = gpu::Vec;

    // A MoE layer's router and routed experts: resident, the whole tensors (batch = experts); cache,
    // the slots. router.rows == 0: the layer has no routed experts.
    struct MoeLayer {
        Mat router;  // (n_expert, n_embd)
        // A folded router (fold_router()): R diag(w) (n_expert, n_embd) and R diag(w) Wo (n_expert, the
        // output projection's input), F32
        Mat router_x, router_att;
        Mat gate_exps, up_exps, down_exps;
        std::unique_ptr<gpu::SlotCache> slots;
        uint64_t expert_bytes[3] = {0, 0, 0};  // one expert's gate, up, down
        uint32_t expert_type[3] = {0, 0, 0};   // and their types
    };

    GpuModel(std::unique_ptr<gguf::File> file, const ModelOptions& opt, Hparams hp, int64_t top_k, int device);

    // ---- what an architecture provides

    // Layer il from its start through its FFN input: leaves the FFN's norm of x in hn_ (for a MoE
    // layer, the router's input); a layer without routed experts also records its FFN, leaving the
    // next layer's attn_norm(x) (next_norm(il)) in hn_. hn_ready: the previous layer already wrote
    // this layer's first norm to hn_.
    virtual void record_layer(gpu::Cmd& c, int64_t il, bool hn_ready) = 0;
    // Recorded before a MoE layer's routed experts (their weighted sum, the residual add and the next
    // norm come last): e.g. shared experts adding to x_. hn_ holds the FFN input.
    virtual void record_before_experts(gpu::Cmd& c, int64_t il) {}
    // Recurrent states (qwen35moe's conv inputs and S) copied aside (restore false) or back: a prompt
    // batch whose segments wait on the host is all or nothing, as the CPU's chunks.
    virtual void record_state_backup(gpu::Cmd& c, bool restore) {}
    // The host's top-k of layer il's router logits (n_expert) into ids / w (top_k_ each).
    virtual void route_on_host(int64_t il, const float* logits, int32_t* ids, float* w);
    // Whether route_on_host() may run for several tokens at once (prompt batches' routing on the pool).
    virtual bool routes_in_parallel() const { return true; }
    // Whether the router's top-k + softmax can run on the GPU (else resident experts run in segments).
    virtual bool gpu_routing() const { return true; }
    // An architecture's own routing shader (with gpu_routing()): record_route() records layer il's top-k
    // ids (ints at ids_off) and weights (at w_off) of `route` from its router logits (at 0), in place of
    // the base's softmax top-k.
    virtual bool has_route_shader() const { return false; }
    virtual void record_route(gpu::Cmd& c, int64_t il, const Buffer& route, uint32_t ids_off, uint32_t w_off) {}
    // The step buffer's contents for the token at pos (shared.h StepHeader, rope cos/sin): by default
    // gpu::write_step() with the file's rope base; an architecture with its own rope frequencies
    // (deepseek2's YaRN) writes its table.
    virtual void fill_step(void* mapped, uint32_t pos, uint32_t token) const;

    // ---- loading (call in the derived constructor, in this order)

    // Before any upload: place_ from the bytes VRAM must hold for everything but the routed experts
    // (the file's other tensors and `other_bytes`, e.g. the KV cache) and the experts' total; returns
    // the expert cache's bytes (shared evenly by the MoE layers).
    uint64_t plan_vram(uint64_t other_bytes);
    // Layer il's router and experts: resident, or this layer's cache slots (may switch place_ to Cpu
    // when too few fit). Called for the MoE layers in order (the ExpertSource's layer index).
    void load_moe(int64_t il, const gguf::TensorInfo& router, const MoeTensors& mt);
    // Layer il's routed expert tensors under llama.cpp's names (fused gate_up or gate and up; down).
    MoeTensors require_moe_tensors(int64_t il) const;
    // token_embd, output (or the tied embedding), output_norm.
    void load_head();
    // The norms, the expert source and the activations the base uses: gate_/up_ hold ff_floats.
    void finish_load(std::vector<MoeTensors> moe, size_t ff_floats);
    // Records the resident body and the head; placement_ (after the derived class's buffers exist).
    void record();

    Buffer& buffer(size_t bytes, gpu::Mem mem, const std::string& what);
    Buffer device_floats(size_t floats, const char* what);  // counted in vram_bytes
    // How a 2-D tensor (or 3-D batch of matrices) is read on the GPU; a GpuError when no shader can.
    Mat upload_layout(const gguf::TensorInfo& t);
    Mat upload(const gguf::TensorInfo& t, bool repack = true);  // whole, in its own buffer
    // src (nbytes of m's rows) as the GPU stores m: Q8_0 repacked into tmp (m.type becomes WT_Q8_0R)
    // where the rows allow, else src itself.
    const uint8_t* repacked(Mat& m, const uint8_t* src, uint64_t nbytes, std::vector<uint8_t>& tmp);
    // Tensors of one type and row length uploaded into one buffer, each after the one before, so one
    // dispatch reads them as one matrix (gate + up, q + k + v); another type starts a buffer. A
    // tensor's rows may be uploaded in another order (row i of the upload is stored row order[i]).
    struct Rows {
        Rows(const gguf::TensorInfo* t, const std::vector<uint32_t>* order = nullptr) : t(t), order(order) {}
        const gguf::TensorInfo* t;
        const std::vector<uint32_t>* order;
    };
    std::vector<Mat> upload_rows(std::initializer_list<Rows> ts);
    std::pair<Mat, Mat> upload_pair(const gguf::TensorInfo& g, const gguf::TensorInfo& u);
    // 3-D expert tensors (n_expert matrices each) uploaded expert-major into one buffer: expert e's
    // matrix of every tensor side by side (each at a 256-byte boundary), so the experts a token picks
    // span fewer pages; each Mat's stride is the expert's whole block. Empty when the block times the
    // experts exceeds what one binding may hold (the caller uploads tensor by tensor).
    std::vector<Mat> upload_experts(std::initializer_list<const gguf::TensorInfo*> ts, uint64_t n_expert);
    static std::vector<Merged> merge_rows(const std::vector<Mat>& mats);
    uint32_t add_norm(const gguf::TensorInfo& t);  // float offset in norms_
    uint32_t add_norm(const std::vector<float>& v);

    // ---- recording helpers

    // y += W x, then hn = rmsnorm(y) * the norm at norm_off: the residual stream's next norm in the
    // matvec's last workgroup (hn_'s last word counts workgroups).
    gpu::MatvecOpts add_then_norm(uint32_t norm_off) const;
    // hn = rmsnorm(x) * the norm at norm_off as a dispatch of its own (a layer's first norm when no
    // tail wrote it), and hn's int8 mirror.
    void norm_into_hn(gpu::Cmd& c, uint32_t norm_off, Vec x = {});  // x: x_ unless given
    // x_ += W x with o (add_then_norm(): and the next norm into hn_, in the matvec's tail or, where
    // hn_ has an int8 mirror, as norm_q8's dispatch after it). fuse_norm: the caller knows that only
    // integer-dot products through with_xq() read hn_ next: then the matvec's block tails write hn's
    // mirror of x * w and its sums of squares instead (no float hn, no dispatch; hn_scaled_).
    void add_matvec(gpu::Cmd& c, const Mat& w, Vec x, gpu::MatvecOpts o, bool fuse_norm = false);
    // ---- prompts in batches (forward_batch): batch_max() tokens while that many remain, then halves
    // down to kBatchSmall: every matrix is read once per batch (mm_* tiles or matmul_*, int8 columns where the
    // type has them; routed experts grouped by expert where grouped_experts()), attention for the batch
    // in two dispatches.
    // Resident placement with the GPU's routing, or the experts on the host side (VRAM cache or CPU
    // placements: the CPU computes each batch's experts, host_experts_batch()); SLUICE_GPU_BATCH=0 runs
    // prompts token by token.
    static constexpr uint32_t kBatchSmall = MM_MAX_COLS;
    // Tokens of a big batch: SLUICE_GPU_PROMPT_BATCH when the model is loaded (8..1024, a multiple of
    // 8), else kBatchDefault (H200, 2048-token prompts, 512 vs 256: 30B-A3B and qwen35moe shapes +22%,
    // their experts' tiles fuller; 8B +2.5%), or with the experts on the host the prompt chunk (--batch,
    // up to 1024): each routed expert is read once per batch, and reads are what a batch then waits on.
    static constexpr uint32_t kBatchDefault = 512;
    uint32_t batch_max() const;
    // Before plan_vram()'s cap: SLUICE_GPU_PROMPT_BATCH, else the prompt chunk (--batch, 8..1024, a
    // multiple of 8) with the experts on the host, else kBatchDefault.
    uint32_t batch_wanted(bool host_experts) const;
    // VRAM the buffers of prompt batches of B tokens take (allocated at the first prompt, so
    // plan_vram() sets them aside): the base's (x, hn, the FFN's gate / up, router rows, grouped
    // experts, step headers, the host's expert sums) plus the architecture's own (record_layer_batch()
    // and record_state_backup() buffers).
    uint64_t batch_vram(uint32_t B) const;
    virtual uint64_t batch_vram_own(uint32_t B) const { return 0; }
    // An architecture that records record_layer_batch() (and whose MoE layers fuse gate and up:
    // experts_fused()).
    virtual bool batch_ok() const { return false; }
    bool experts_fused() const {
        for (const MoeLayer& M : moe_)
            if (M.router.rows && !fused(M.gate_exps, M.up_exps)) return false;
        return true;
    }
    // Options of a product over a batch's B columns of x (x_stride floats apart, through x's int8
    // mirror where it has one) into y's (y_stride apart).
    gpu::MatvecOpts batch_cols(const Buffer& x, uint32_t B, uint32_t x_stride, uint32_t y_stride, bool accumulate = false) const {
        gpu::MatvecOpts o = with_xq({}, x);
        o.n_cols = B;
        o.x_col_stride = x_stride;
        o.y_col_stride = y_stride;
        o.accumulate = accumulate;
        return o;
    }
    // Layer il for B tokens (B <= batch_max()): hnb_ holds attn_norm(x) of each (columns n_embd apart);
    // adds the layer's attention and FFN to xb_ (record_ffn_batch() for the FFN part). Buffers of its
    // own are sized for batch_max().
    virtual void record_layer_batch(gpu::Cmd& c, int64_t il, uint32_t B) {}
    // ffn_norm(xb_) into hnb_ (hn_ready: hnb_ holds the FFN input already), then xb_ += the FFN of each
    // of the B tokens: dense (gate, up, down) or layer il's router and top-k for the batch, then its
    // routed experts (record_experts_grouped() or per token).
    void record_ffn_batch(gpu::Cmd& c, int64_t il, uint32_t B, uint32_t ffn_norm, const Mat& gate, const Mat& up,
                          const Mat& down, bool hn_ready = false);
    // xb_ += down(silu(gate hnb_) * (up hnb_)) for the B tokens: a dense FFN (rows <= batch_ff()).
    void record_glu_batch(gpu::Cmd& c, uint32_t B, const Mat& gate, const Mat& up, const Mat& down);
    // The widest dense FFN record_glu_batch() runs (gb_ and ub_ hold it per token): the file's n_ff, or
    // an architecture's shared experts where wider.
    virtual uint32_t batch_ff() const { return uint32_t(hp_.n_ff); }
    // In record_ffn_batch(), before a MoE layer's router: e.g. shared experts (record_glu_batch()).
    virtual void record_before_experts_batch(gpu::Cmd& c, int64_t il, uint32_t B) {}
    // The routed experts' ids and weights of the batch's B tokens after each row's router logits in
    // rb_ (route_row() floats a token): by default the softmax's top-k, renormalised.
    virtual void record_route_batch(gpu::Cmd& c, int64_t il, uint32_t B);
    // Whether a batch's routed experts of layer M run grouped by expert (record_experts_grouped():
    // integer-dot mm types; SLUICE_GPU_MOE_GROUP=0 turns it off), else per token.
    bool grouped_experts(const MoeLayer& M) const;
    void record_experts_grouped(gpu::Cmd& c, const MoeLayer& M, uint32_t B);
    // The batch's step headers back to back: kernels reading one step see the batch's first token's.
    const Buffer& batch_steps() const { return steps_all_; }

    // Whether nothing writes x_ between record_layer()'s last add_matvec() and the router: then a float
    // router reads x_ and normalises it itself, beside norm_q8 (MatvecOpts::x_norm).
    virtual bool router_reads_residual() const { return false; }
    // The norm that follows layer il: the next layer's attn_norm (first_norm()), or the output norm.
    uint32_t next_norm(int64_t il) const { return il + 1 < hp_.n_layer ? first_norm(il + 1) : out_norm_; }
    virtual uint32_t first_norm(int64_t il) const = 0;
    // y = silu(gate x) * (up x) into gate_ (fused when gate and up share a buffer), then x_ += down y
    // with the next norm; down_opts = add_then_norm(...) or plain accumulate.
    // fuse_norm: add_matvec()'s.
    void record_swiglu_ffn(gpu::Cmd& c, const Mat& gate, const Mat& up, const Mat& down, uint32_t n_ff,
                           const gpu::MatvecOpts& down_opts, bool fuse_norm = false);
    // The fused GLU's block tails write gate_'s int8 mirror (outputs of n_ff per matrix, for `users`,
    // every one an integer-dot type): o.qblk set and true, else false (quantize_for() then).
    bool glu_tails(gpu::MatvecOpts& o, uint32_t n_ff, const std::vector<const Mat*>& users);
    // Whether only with_xq()'s integer-dot products read hn after layer il (the next layer's first
    // products, unless il is the last: the output head also runs after batch_logits()): then the
    // residual product before it may fold the norm into block tails (add_matvec()'s fuse_norm).
    virtual bool reads_scaled_after(int64_t il) const { return false; }
    // Whether MoE layer il reads hn so: routed by the router's top-k tail without segments, a float
    // router (normalising x itself, MV_XNORM), fused integer-dot experts.
    bool moe_reads_scaled(int64_t il) const;
    // A router folded over the output projection before it (gpu_load.cpp): whether layer il may be
    // (at load), folding it, and recording its two matvecs (the first beside the attention, x final;
    // the second, with the top-k tail, beside the output projection) and its weights (route_weights).
    virtual bool folds_routers() const { return false; }  // the architecture calls fold_router() (qwen3moe)
    bool fold_ok(const gguf::TensorInfo& router, const gguf::TensorInfo& wo) const;
    void fold_router(int64_t il, const gguf::TensorInfo& router, uint32_t norm_off, const gguf::TensorInfo& wo);
    bool folded(int64_t il) const { return moe_[size_t(il)].router_att.buf && !segmented() && xq(hn_); }
    void record_fold_x(gpu::Cmd& c, int64_t il);
    void record_fold_att(gpu::Cmd& c, int64_t il, const Buffer& att);
    int64_t routed_layer_ = -1;  // the layer whose top-k record_fold_att() recorded
    bool fold_weights_ = false;  // record_experts() records route_weights()
    uint64_t fold_bytes_ = 0;    // VRAM of the folded routers where the experts are resident (plan_vram)
    static bool xnorm_router(const Mat& router);  // MV_XNORM applies (SLUICE_GPU_XNORM=0: never)
    // Decode attention at short contexts: an architecture with a variant for them (has_short_attention():
    // one q head per workgroup, less serial work per workgroup where re-reading K and V per head costs
    // nothing yet) records it while short_attn_ is set; the unsegmented token is recorded twice and
    // step() runs that recording up to short_ctx_ positions (SLUICE_GPU_ATTN_SHORT when the model
    // loads, default 1024; 0: never).
    virtual bool has_short_attention() const { return false; }
    bool short_attn_ = false;
    uint32_t short_ctx_ = 0;
    // SLUICE_GPU_QBLK: 1 the norms' block tails (add_matvec's fuse_norm), 2 the GLU's, 3 both (default), 0 none.
    static uint32_t qblk_mode();
    static bool fused(const Mat& gate, const Mat& up) { return gate.buf == up.buf && gate.type == up.type; }
    // One load per 1 MiB of each of ws, recorded beside the dispatch recorded last: the page walks
    // of the dispatches that stream them later overlap that one (gpu_model.cpp; SLUICE_GPU_TOUCH=0: off).
    void touch_ahead(gpu::Cmd& c, std::initializer_list<const Mat*> ws) const;
    bool touch_ = true;

    // ---- int8 activations for the integer-dot matvecs (gpu::has_q8; SLUICE_GPU_Q8=0 turns them off)
    bool q8_wanted() const;  // the device has integer dots and SLUICE_GPU_Q8 is not 0 (q8_ from finish_load())
    // Gives activation buffer b (floats from offset 0) an int8 mirror; finish_load() mirrors hn_ (kept
    // fresh by every write of hn_: the norm tails, norm_into_hn) and gate_.
    void mirror(const Buffer& b, size_t floats);
    // b's mirror for MatvecOpts::xq: nullptr while off.
    const gpu::Xq* xq(const Buffer& b) const;
    // hn_ while hn_scaled_: its mirror holds x * w without the norm's scale, which the product applies
    // (MatvecOpts::x_ss).
    gpu::MatvecOpts with_xq(gpu::MatvecOpts o, const Buffer& b) const {
        o.xq = xq(b);
        if (&b == &hn_ && hn_scaled_ && o.xq) {
            o.x_ss = {&tails_, tails_ss_off_};
            o.norm_eps = hp_.rms_eps;
        }
        return o;
    }
    // Records b's quantization (its first n floats, after b was written) when one of `users` reads it
    // with integer dots.
    void quantize_for(gpu::Cmd& c, const Buffer& b, uint32_t n, const std::vector<const Mat*>& users);

    ModelOptions opt_;
    int64_t top_k_;
    mutable gpu::Context ctx_;  // save_state() downloads
    std::deque<Buffer> bufs_;   // weights, caches, slots (a deque: Mats point into it)
    Mat embd_, output_;
    std::vector<float> norms_host_;
    Buffer norms_;
    uint32_t out_norm_ = 0;
    std::vector<MoeLayer> moe_;  // per layer
    Place place_ = Place::Resident;
    GpuCounters counters_;
    int n_repacked_ = 0;  // Q8_0 tensors stored as WT_Q8_0R (describe())
    int64_t resid_norm_ = -1;  // the norm offset of add_matvec()'s norm_q8 when it was the last dispatch
    // Recording state: add_matvec()'s block tails left hn_ as its mirror of x * w, its float stale
    // (only the integer-dot readers with_xq() equips may follow). tails_: the tails' counters, then hn's
    // block sums of squares from tails_ss_off_.
    bool hn_scaled_ = false;
    uint32_t scaled_norm_ = 0;  // the norm weights' offset hn_'s mirror holds
    Buffer tails_;
    uint32_t tails_ss_off_ = 0;

    bool batching() const;
    // kBatchSmall .. batch_max() tokens at n_past_.. (`first`: the batch's first token in the chunk)
    void run_batch(std::span<const int32_t> tokens, size_t first);
    // Floats per token of rb_: router logits (n_expert), top-k ids and weights, rounded up to 4.
    uint32_t route_row() const { return uint32_t(hp_.n_expert + 2 * top_k_ + 3) / 4 * 4; }
    Buffer gb_, ub_, rb_, steps_b_host_;  // the FFN's gate, up and router outputs per token; step headers
    Buffer upe_b_, oute_b_, grp_b_;       // grouped experts: up and output per entry, the group buffer
    void alloc_grouped();                 // those three, on first use
    Buffer steps_all_;                    // the batch's step headers on the device, back to back
    std::map<uint32_t, std::vector<std::unique_ptr<gpu::Cmd>>> batch_cmd_;  // recorded per batch size (segments)
    void alloc_batch();
    const float* batch_logits(uint32_t B);
    std::map<uint32_t, std::unique_ptr<gpu::Cmd>> batch_head_;  // per batch size
    void record_batch(uint32_t B, std::vector<std::unique_ptr<gpu::Cmd>>& segs);
    // Experts in the VRAM cache or on the CPU: a batch's routed experts run on the CPU grouped by expert
    // (each read once per batch), between segments that end at each MoE router. The GPU part of a
    // segment: record_layer_batch() where the architecture has it (batch_ok()), else each token's
    // recording of the token path in turn (layer-major: a layer's tokens in order, so KV rows and
    // recurrent states are what token by token leaves).
    bool host_experts_batch() const { return place_ != Place::Resident && experts_ && moe_cpu_; }
    void experts_on_host(int64_t il, uint32_t B);
    // Each token's top-k: hb_ids_, hb_w_; batch kernels (batch_ok()) read back the GPU's, token rows
    // only the logits (the host's top-k, on the pool).
    void route_batch(int64_t il, uint32_t B);
    // Prompt batches with the experts on the host side, each MoE layer's pass either on the CPU
    // (experts_on_host()) or on the GPU (gpu_batch_experts.cpp): the batch's routed experts go up
    // once each into a VRAM arena (copied within VRAM where the cache holds them) and run there as
    // grouped products, the CPU only copying; batch_pass_on_gpu() picks by measured cost.
    // SLUICE_GPU_BATCH_EXPERTS=cpu or gpu: always that side. SLUICE_GPU_ARENA=N: at most N experts
    // in the arena (reused).
    static constexpr uint32_t kGpuBatchExperts = 64;  // before the costs are measured: the GPU from here
    bool batch_experts_gpu_ok() const;  // the arena is planned, the architecture batches, the types tile
    bool batch_pass_on_gpu(int64_t il, uint32_t B);
    void batch_pass_done(bool gpu, double work, double secs);  // work: bytes uploaded, or entries
    struct BatchRates {
        double gpu_s_per_byte = 0, cpu_s_per_entry = 0;
        int gpu_n = 0, cpu_n = 0;  // passes measured (the first ignored)
        uint64_t passes = 0;
    } bx_rates_;
    bool hb_y_zero_ = false;  // hb_y_host_ holds zeros (a GPU pass added its sums itself)
    Buffer bx_w_host_, bx_w_;  // the GPU pass's combine weights (B x K)
    void experts_to_gpu_batch(int64_t il, uint32_t B);
    void alloc_arena();
    // Uploads the listed experts of layer il from the ExpertSource into arena slots `at` through
    // bx_staging_'s two halves (a DMA each, submitted as it fills; after the earlier products when
    // `wrapped`: they may read those slots), or in place where the arena is mapped.
    void upload_to_arena(int64_t il, const std::vector<int32_t>& ids, const std::vector<uint32_t>& at, bool wrapped);
    uint64_t arena_bytes_ = 0;  // planned (plan_vram): one MoE layer's experts, at most a quarter of the room
    uint32_t arena_slots_ = 0;  // experts the arena holds (alloc_arena)
    uint64_t arena_part_[3] = {0, 0, 0};  // its gate, up, down strides: the largest expert's over the layers
    Buffer arena_[3], bx_staging_, bx_groups_;
    size_t bx_half_ = 0, bx_part_bytes_ = 0;  // bytes of each staging half; a part's uploads at most
    int bx_next_half_ = 0;                     // the staging half the next DMA fills
    std::deque<gpu::Cmd> bx_copy_, bx_compute_;  // per staging half; per groups region (parts in flight)
    Buffer hb_rb_, hb_y_host_, hb_y_;  // host experts: router logits + hn read back, sums up and on the GPU
    // hb_rb_'s layout for B tokens: token j's router logits at j route_row(), its hn at hb_hn_off(j, B).
    size_t hb_hn_off(uint32_t j, uint32_t B) const { return size_t(B) * route_row() + size_t(j) * size_t(hp_.n_embd); }
    std::vector<int32_t> hb_ids_;
    std::vector<float> hb_w_, hb_out_;
    const uint32_t batch_max_ = prompt_batch_from_env();  // 0: unset
    uint32_t batch_cap_ = 1024;  // the largest batch whose buffers plan_vram() found room for
    static uint32_t prompt_batch_from_env();
    // Activations the base and most layers use: x (n_embd), hn (n_embd + a workgroup counter), gate
    // and up (ff_floats), the step buffer.
    const Vec hn_vec_{&hn_};
    Buffer x_, hn_, gate_, up_, step_;
    Buffer xb_, hnb_;  // prompt batches: x and hn of batch_max() tokens, n_embd apart
    std::vector<int32_t> ids_;
    std::vector<float> weights_;

private:
    struct Mirror {
        const Buffer* of;
        Buffer buf;
        gpu::Xq xq;
    };
    bool q8_ = false;
    std::deque<Mirror> mirrors_;

    const float* step(int32_t token, bool want_logits);
    void moe_on_host(int64_t il);
    void upload_misses(int64_t il, const std::vector<int32_t>& ids, const std::vector<uint32_t>& slots);
    void probe(double seconds);
    bool segmented() const { return place_ != Place::Resident || !gpu_routing(); }
    std::vector<gpu::Cmd*>& segments_for(Place p);
    void record_split(gpu::Cmd& a, gpu::Cmd& b, int64_t from, int64_t to);
    void run_split(double& gpu_ms);                 // a token's segments in split placement
    void split_to_gpu(int64_t il);                  // route; the cached experts' slots and weights
    void split_on_cpu(int64_t il);                  // the others' weighted sum, on the CPU
    uint32_t split_sum_off() const { return uint32_t(2 * top_k_); }  // floats of moe_in_ before the CPU's sum
    void record_host_sum(gpu::Cmd& c, int64_t il, uint32_t off);  // x += the host's expert sum; the next norm
    std::vector<int32_t> cpu_ids_;                  // split: this layer's experts for the CPU
    std::vector<float> cpu_w_;                      // and their weights
    struct BatchRow {
        uint32_t j, B;
    };
    void record_layers(gpu::Cmd& c, Place p, int64_t from, int64_t to, const BatchRow* row = nullptr);
    void record_router(gpu::Cmd& c, Place p, int64_t il, bool ends_segment);
    void record_head(gpu::Cmd& c);
    void record_experts(gpu::Cmd& c, Place p, int64_t il);
    enum class Route { Tail, Dispatch, Own };
    Route route_mode() const;
    // route_: router logits (n_expert), then the top-k's ids (as ints) and weights.
    uint32_t route_ids() const { return uint32_t(hp_.n_expert); }
    uint32_t route_w() const { return uint32_t(hp_.n_expert + top_k_); }
    std::string describe() const;

    Buffer logits_, route_, one_, moe_in_;
    Buffer step_host_, moe_host_, logits_rb_, router_rb_, miss_staging_;
    uint64_t max_expert_bytes_ = 0, experts_total_ = 0, dense_bytes_ = 0, cache_per_layer_ = 0;
    std::vector<int64_t> moe_index_;  // per layer: its index among the MoE layers (ExpertSource), or -1
    int64_t n_moe_loaded_ = 0;
    bool experts_mapped_ = true;
    // An expert tensor no shader reads (its type has no GPU kernel yet): the CPU computes every
    // expert, the dense weights still run on the GPU (plan_vram). Empty when all can run here.
    std::string experts_cpu_why_;
    // Recorded work: resident body (alone, and with the head: one submit per token), head, segments
    // per placement (resident with host routing, cache, cpu), expert uploads (upload_misses()).
    gpu::Cmd body_, body_head_, head_;
    gpu::Cmd body_s_, body_head_s_;  // the same with short_attn_ (short contexts)
    static constexpr size_t kUploadParts = 2;
    std::deque<gpu::Cmd> upload_cmds_;
    std::deque<gpu::Cmd> owned_cmds_;
    std::vector<gpu::Cmd*> segments_[4];  // split: segment 0, then two per MoE layer (record_split())
    std::vector<int64_t> sync_layers_;  // MoE layers, where segments end
    // Host side of segmented placements.
    std::unique_ptr<ExpertSource> experts_;
    // The routed experts' bytes (file ranges at base, in the mapping) copied into anonymous memory and
    // imported as copy sources (discrete GPUs with VK_EXT_external_memory_host, the mmap source):
    // uploads are copied by the GPU from that pinned copy, no staging memcpy. Made at the first upload
    // that asks (imported()'s make) and kept; SLUICE_GPU_IMPORT=0: never.
    struct Unmap {
        size_t n;
        void operator()(uint8_t* p) const;  // munmap
    };
    using PinnedCopy = std::unique_ptr<uint8_t, Unmap>;
    struct HostImport {
        const uint8_t* base = nullptr;  // the range [base, base + bytes) of the mapping it copies
        size_t bytes = 0;
        PinnedCopy copy;  // declared before buf: the import is released before its memory
        gpu::Buffer buf;
    };
    std::vector<std::pair<uint64_t, uint64_t>> expert_ranges_;  // file offsets [a, b) of the *_exps tensors
    std::vector<HostImport> imports_;                           // by address
    bool imports_tried_ = false;
    void import_experts();
    // The import holding src if the imports hold all of [src, src + n) (it, and the ones after it), else
    // null. make: import the experts first if not tried yet: the cache placement, whose every token
    // uploads, and prompt batches (every turn of a chat); not split's uploads, which fill its cache
    // once.
    const HostImport* imported(const uint8_t* src, size_t n, bool make);
    // Records the copies of [src, src + n) into dst at off from `from` (imported(src, n)) and those after it.
    void copy_imported(gpu::Cmd& c, const HostImport* from, const uint8_t* src, size_t n, const gpu::Buffer& dst, size_t off);
    std::unique_ptr<MoeFfn> moe_cpu_;
    std::vector<ExpertWeights> fetched_;
    std::vector<float> y_cpu_;
    bool probing_ = false;
    int probe_n_ = 0, probe_fill_ = 0;
    std::vector<Place> probe_arms_;  // GpuExperts::Auto: the placements probe() measures, in turn
    double probe_s_[3] = {0, 0, 0};
};

}  // namespace sluice
