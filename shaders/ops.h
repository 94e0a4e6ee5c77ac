// One function per shader operation: fills its push constants from shapes and offsets, checks what
// the shader cannot (alignment, sizes), and records the dispatch. The model files and the tests call
// these; shapes follow the CPU blocks they mirror (engine/blocks.h, engine/tensor/kernels.h).
#pragma once
#include <algorithm>
#include <cstdint>

#include "shaders/shared.h"
#include "shaders/vk_runtime.h"

namespace sluice::gpu {

// How a weight type is stored and read on the GPU (quants.glsl).
struct TypeLayout {
    uint32_t type;        // ggml type id
    const char* suffix;   // shader name suffix: "q4_k"
    uint32_t unit_bytes;  // storage unit of the shader's loads
    uint32_t chunk;       // elements one invocation dequantizes at a time; cols must be a multiple
    uint32_t block_elems, block_bytes;
};
// nullptr: no GPU kernels for this type, or SLUICE_GPU_SKIP_TYPES names it (a comma-separated list of
// type names, "iq1_s,q4_k": tensors of those types are left to the CPU, a way around a kernel a driver
// gets wrong; the tests use it to take the CPU's side of a mixed placement).
const TypeLayout* gpu_type(uint32_t ggml_type);
// Why gpu_type() is nullptr, for messages: "which has no GPU kernel yet" or "which SLUICE_GPU_SKIP_TYPES ...".
std::string gpu_type_absent_why(uint32_t ggml_type);
uint64_t gpu_row_bytes(uint32_t ggml_type, uint64_t cols);
// Q8_0 rows (cols a multiple of 256) as WT_Q8_0R stores them: per row its blocks' int8, then their
// f16 scales; the same bytes per row, so offsets and strides of rows and matrices stay. src != dst.
bool q8_0_repackable(uint64_t cols);
void repack_q8_0(const uint8_t* src, uint8_t* dst, uint64_t rows, uint64_t cols);

// W (rows, cols) of `type` at byte `offset` in buf; a batch of matrices lies mat_stride bytes apart
// (the experts of a 3-D expert tensor).
struct Mat {
    const Buffer* buf = nullptr;
    uint32_t type = 0;
    uint64_t offset = 0;
    uint32_t rows = 0, cols = 0;
    uint64_t mat_stride = 0;
};
// Floats at element offset `off` of buf.
struct Vec {
    const Buffer* buf = nullptr;
    uint32_t off = 0;
};

// A float vector's int8 mirror (shared.h QuantQ8Push: element e's int8 at byte e, block scales and
// sums from vec2 soff) for the integer-dot matvecs (matvec_<type>_q8_*: Q4_K, Q5_K).
struct Xq {
    const Buffer* buf = nullptr;
    uint32_t soff = 0;
};
// Bytes of a mirror of `floats` floats, and where its scales start.
uint64_t xq_bytes(uint64_t floats);
uint32_t xq_soff(uint64_t floats);
// Whether prompts' dense tiled products run on tensor cores (mmc_*): the device has them
// (info().coopmat) and SLUICE_GPU_COOPMAT is not 0.
bool use_coopmat(const Context& ctx);
// Whether matvec() has an integer-dot variant for this type on this device (shaderIntegerDotProduct).
bool has_q8(const Context& ctx, uint32_t ggml_type);
// q's mirror of x[0 .. n) (n and x.off multiples of 32).
void quantize_q8(Cmd& cmd, Vec x, const Xq& q, uint32_t n);
// y = rmsnorm(x) * w over one vector of n in one workgroup, and with yq y's int8 mirror (n, y.off
// multiples of 32; subgroups of 8 or more). Offsets multiples of 4.
void rmsnorm_q8(Cmd& cmd, Vec x, Vec y, Vec w, uint32_t n, float eps, const Xq* yq);

struct MatvecOpts {
    uint32_t n_mats = 1;                          // batch of matrices (workgroup y)
    uint32_t x_mat_stride = 0, y_mat_stride = 0;  // floats between the batch's inputs / outputs
    const Buffer* ids = nullptr;                  // matrix m of the batch is ids[ids_off + m]
    uint32_t ids_off = 0;
    bool accumulate = false;                      // y += W x
    uint32_t y_pos_stride = 0;                    // nonzero: y offset += step.pos * y_pos_stride
    uint32_t n_cols = 1, x_col_stride = 0, y_col_stride = 0;  // > 1: small-batch product (matmul_*)
    const Mat* swiglu_up = nullptr;  // y = silu(W x) * (up x); up: same buffer, type, shape, strides
    uint32_t team_rows = 0;          // rows per team of matvec_* and the _q8w GLU: 1, 2 or 4; 0: by the shape
    int ksplit = -1;                 // teams sharing a workgroup's rows (matvec_*_k4: 2 rows, _k8: 1 row),
                                     // 0: none (team_rows), -1: by the shape (matvec_ksplit)
    bool route_renorm = false;  // topk: softmax over the k (else over all the rows)
    // With norm_out (one matrix, one column): the last workgroup also writes norm_out = rmsnorm(y) *
    // norm_w over the rows, counting workgroups in the uint at norm_count of norm_out's buffer (zero
    // before; left zero): the residual stream's next norm without a dispatch of its own.
    // sum_mats: y (+)= sum_m w_m (W_m x_m) over the n_mats matrices of ids, w_m floats at sum_w_off of
    // the ids buffer (MV_SUM_MATS): routed experts' down projections and their weighted sum at once.
    bool sum_mats = false;
    uint32_t sum_w_off = 0;
    const Vec* norm_out = nullptr;
    Vec norm_w;
    float norm_eps = 0;
    // x_norm (F32/F16/BF16 weights, one matrix, one column): x is the residual stream before the
    // rmsnorm with weights norm_w and norm_eps, and y = W rmsnorm(x) (MV_XNORM): a router that need
    // not wait for the norm's dispatch.
    bool x_norm = false;
    uint32_t norm_count = 0;
    // With norm_out: the tail also writes norm_out's int8 mirror (MV_NORM_Q8: rows and norm_out's
    // offset multiples of 32).
    const Xq* norm_q = nullptr;
    // topk (rows <= MV_ROUTE_MAX router logits, one matrix, one column): the last workgroup also writes
    // the top `topk` ids (ints) at topk_ids_off and softmax weights at topk_w_off of y's buffer
    // (renormalised over them with route_renorm), counting workgroups in the uint at topk_count
    // (zero before; left zero; shared.h MV_TOPK).
    uint32_t topk = 0, topk_ids_off = 0, topk_w_off = 0;
    Vec topk_count;
    // x's int8 mirror (quantize_q8() after x was written): the integer-dot variant where has_q8() and
    // x's offset, matrix and column strides are multiples of 32, else x is read as floats.
    const Xq* xq = nullptr;
    // Block tails (shared.h MV_QBLK): with qblk.q, y's int8 mirror is written by the workgroups that
    // complete each block of 32 rows (qblk.count: a uint per block, zero, left zero), from element
    // qblk.q_off of the mirror; with qblk.norm_w, the mirror of y * norm_w (an rmsnorm's weights, its
    // scale left to the reader: x_ss) and with qblk.ss the blocks' sums of y^2 (same buffer as count).
    struct QBlocks {
        const Xq* q = nullptr;
        uint32_t q_off = 0;
        Vec count, norm_w, ss;
    } qblk;
    // x_ss (integer-dot variants): x's mirror is of x * w before its rmsnorm's scale, which the product
    // applies: 1 / sqrt(sum(cols / 32 block sums of squares at x_ss) / cols + norm_eps) (MV_XSS).
    Vec x_ss;
    // Q4_K / Q5_K integer dots: the _q8w variants (4 lanes per super-block, mv_types.glsl KQ_WIDE).
    // -1: for rows of 2048 or more unless SLUICE_GPU_MV_WIDE=0; 0 / 1: off / on (any multiple of 256).
    int wide = -1;
};
// The variant matvec() runs for one column of a shape unless MatvecOpts names one: ksplit 4 or 8
// teams per row (latency-bound shapes: few rows, long rows, weighted sums of matrices), else
// team_rows rows per team. q8: the integer-dot variant (x's int8 mirror). SLUICE_GPU_KSPLIT=0|4|8
// overrides the k-split choice for the shapes that qualify (measurements).
struct MvPick {
    uint32_t ksplit, team_rows;
};
// Rows per team of the _q8w GLU (gate and up in one pass) for a gate of rows x cols, n_mats matrices;
// SLUICE_GPU_GLU_ROWS=1|2|4 overrides (measurements).
uint32_t glu_team_rows(uint32_t rows, uint32_t cols, uint32_t n_mats);
// wide: the _q8w variants (MatvecOpts::wide).
MvPick matvec_pick(uint32_t type, bool q8, uint32_t rows, uint32_t cols, uint32_t n_mats, bool sum_mats, bool norm_tail,
                   bool wide = false);

// y (rows) = W (rows, cols) @ x (cols), per matrix of the batch and activation column.
void matvec(Cmd& cmd, const Mat& w, Vec x, Vec y, const Buffer& step, const MatvecOpts& o = {});
// y (cols) = W[row] dequantized; row < 0: step.token.
void getrows(Cmd& cmd, const Mat& w, Vec y, const Buffer& step, int64_t row = -1);
// A prompt batch's embeddings in one dispatch: row j at y.off + j * y_stride, the token of step header
// j of `steps` (n headers kStepBytes apart, as write_step() fills them).
void getrows_tokens(Cmd& cmd, const Mat& w, Vec y, uint32_t y_stride, const Buffer& steps, uint32_t n);
// y = x / rms(x) * w over n_rows rows of n, row_stride floats apart (+ step.pos * pos_stride).
void rmsnorm(Cmd& cmd, Vec x, Vec y, Vec w, uint32_t n, uint32_t n_rows, uint32_t row_stride, float eps,
             const Buffer& step, uint32_t pos_stride = 0);
// NeoX RoPE in place on n_heads heads (head_stride floats apart, + step.pos * pos_stride).
void rope_neox(Cmd& cmd, Vec x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, uint32_t head_stride,
               const Buffer& step, uint32_t pos_stride = 0);

// qwen3's per-head q/k RMSNorm + NeoX RoPE in one dispatch: q (n_head, head_dim) in place; k
// (n_head_kv, head_dim) in place in the cache row k_off + step.pos * k_pos_stride.
void qk_norm_rope(Cmd& cmd, Vec q, Vec k, uint32_t k_pos_stride, Vec q_norm, Vec k_norm, uint32_t n_head,
                  uint32_t n_head_kv, uint32_t head_dim, uint32_t n_rot, float eps, const Buffer& step);

struct AttnShape {
    uint32_t n_head, n_head_kv, head_dim, head_dim_v;
    uint32_t n_splits;  // of the sequence
    uint32_t gh;        // q heads per workgroup (of one kv group): each K and V row read once for them
    uint32_t min_chunk; // positions per split at least
};
// The shape for contexts up to n_ctx: gh the largest power of 2 dividing the group up to heads_cap
// with gh * head_dim <= 512, and enough splits for ~wgs workgroups, at most ATTN_SPLITS_MAX / gh (the
// merge's) and one per min_chunk positions of n_ctx.
AttnShape attn_shape(uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t head_dim_v, uint64_t n_ctx,
                     uint32_t heads_cap, uint32_t wgs, uint32_t min_chunk);
// The same with the defaults (environment: SLUICE_GPU_ATTN_HEADS, SLUICE_GPU_ATTN_WGS,
// SLUICE_GPU_ATTN_MIN_CHUNK).
AttnShape attn_shape(uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t head_dim_v, uint64_t n_ctx);
// Floats of scratch attention() needs.
uint64_t attn_part_floats(const AttnShape& s);
// out (n_head, head_dim_v) = causal attention of q (n_head, head_dim) over cached positions
// [0, step.n_kv): k, v rows k_row_stride / v_row_stride floats apart. Two dispatches (split, combine).
void attention(Cmd& cmd, Vec q, Vec k, Vec v, uint32_t k_row_stride, uint32_t v_row_stride, Vec part, Vec out,
               const AttnShape& s, const Buffer& step);
// attention() with qwen3's per-head q/k RMSNorm + NeoX RoPE before it (qk_norm_rope()) and the merge
// of the splits, in one dispatch: q (n_head, head_dim) and k_raw (n_head_kv, head_dim, this position's
// projection) and v_raw (n_head_kv, head_dim_v) in one buffer, read only; the normalised k and v
// are written into the cache rows step.pos.
// counts: n_head uints, zero (each dispatch leaves them zero).
struct QkNorm {
    Vec q_norm, k_norm;  // head_dim weights each, one buffer
    uint32_t n_rot;
    float eps;
};
// out_q: also out's int8 mirror (head_dim_v and out's offset multiples of 32), for the output projection.
void attention_qk(Cmd& cmd, Vec q, Vec k_raw, Vec v_raw, Vec k, Vec v, uint32_t k_row_stride, uint32_t v_row_stride, Vec part,
                  Vec out, const AttnShape& s, const QkNorm& n, Vec counts, const Buffer& step, const Xq* out_q = nullptr);
// A prompt batch of n_tokens tokens (qwen3): qkv holds token j's q (n_head, head_dim), raw k (n_head_kv,
// head_dim) at k_raw and raw v (n_head_kv, head_dim_v) at v_raw floats into its row, rows qkv_stride
// apart; q is normed and roped in place, k and v go into the cache rows pos_j, and out + j * out_stride
// (n_head, head_dim_v) = causal attention of token j over [0, pos_j]. steps: the tokens' step buffers
// back to back (kStepBytes apart). Two dispatches.
struct PromptQkv {
    Vec qkv;
    uint32_t qkv_stride, k_raw, v_raw;
};
void prompt_attention(Cmd& cmd, const PromptQkv& x, uint32_t n_tokens, Vec k, Vec v, uint32_t k_row_stride,
                      uint32_t v_row_stride, Vec out, uint32_t out_stride, const AttnShape& s, const QkNorm& n,
                      const Buffer& steps);
// A prompt batch's routed experts grouped by expert (moe_group(), then matmul_experts() per matrix):
// the group buffer (expert_groups_words() uints) and its shape.
struct ExpertGroups {
    const Buffer* buf = nullptr;
    uint32_t n_tokens = 0, k = 0, n_expert = 0;
    uint32_t bn = 16;  // entries per tile: 16 or 32 (int8 tiles), 32 (mmc), 64 (mmt)
    uint32_t kind = 0;  // matmul_experts()'s tiles: 0 int8 (mm_*), 1 tensor cores 64 x 32 (mmc_*), 2 128 x 64 (mmt_*)
    uint32_t max_tiles() const { return (n_tokens * k + bn - 1) / bn + std::min(n_expert, n_tokens * k); }
    uint32_t entries_off() const { return 1 + 3 * max_tiles(); }
    uint64_t words() const { return uint64_t(entries_off()) + uint64_t(n_tokens) * k; }
};
// The tiles (bn, kind) of a batch's n_tokens x k entries over n_expert experts: int8 tiles of 16
// entries, or where the experts get 24 entries each on average 32, on tensor cores where the device
// has them (mmc_). SLUICE_GPU_MOE_KIND = mm | mmc | mmt forces a kind (measurements; the tensor-core kinds where the device has them, or with
// SLUICE_GPU_COOPMAT=scalar their tiles in plain arithmetic).
ExpertGroups expert_groups(const Context& ctx, const Buffer* buf, uint32_t n_tokens, uint32_t k, uint32_t n_expert);
// Groups the n_tokens x k routed experts (ints at ids.off + j * ids_stride + slot, n_expert <= 512)
// by expert into g. One dispatch.
void moe_group(Cmd& cmd, Vec ids, uint32_t ids_stride, const ExpertGroups& g);
// Whether rows of `cols` of this type fit the tiled kernels' K steps of 128 (K-quants' super-blocks
// of 256 take two steps).
bool mm_cols_ok(uint32_t type, uint64_t cols);
// Whether this type has the tiled int8 kernels (mm_*: matvec() past 32 columns, matmul_experts()):
// every integer-dot type (has_q8), Q8_0 in ggml's blocks and repacked, on devices with integer dots.
bool has_mm(const Context& ctx, uint32_t type);
// For every entry e = j * k + slot of g: y column e (y.off + e * y_col_stride, w.rows floats) = W_expert
// @ x column (x_by_token ? j : e) (x.off + col * x_col_stride, through x's int8 mirror xq; offsets and
// strides multiples of 32). w: the experts' 3-D tensor (mat_stride apart).
void matmul_experts(Cmd& cmd, const Mat& w, Vec x, uint32_t x_col_stride, bool x_by_token, Vec y, uint32_t y_col_stride,
                    const Xq& xq, const ExpertGroups& g);

// One load per `page` bytes of [off, off + bytes) of b (off a multiple of 16): the pages'
// translations into the TLBs before the dispatch that streams them (shared.h TouchPush). 1 MiB: two
// loads per 2 MiB page whatever the range's alignment (H200 72B-like decode 73.1 vs 72.7 tok/s with
// 2 MiB); one load per 64 KiB measured slower than none (bench/README).
void touch(Cmd& cmd, const Buffer& b, uint64_t off, uint64_t bytes, uint32_t page = 1u << 20);

// y[b] = the largest of x[64b .. 64b + 64) of n floats, NaN ignored (-inf for a block without a
// number): the logits' block maxima for the host's top-k scan (engine/sampler.h kLogitBlock).
void block_max(Cmd& cmd, Vec x, Vec y, uint32_t n);
// y = silu(g) * u over n
void swiglu(Cmd& cmd, Vec g, Vec u, Vec y, uint32_t n);
// ids (k ints at ids_off), w (k) = the router's top-k of n_expert logits with softmax weights.
// n_rows > 1: rows of a batch, each's logits, ids and weights row_stride further.
// A folded router's weights (route_weights.comp, shared.h RouteWeightsPush): route holds the unscaled
// logits at its offset, the k ids at ids_off and gets the weights at w_off (offsets in route's buffer);
// ss: the n_blocks block sums of squares of the n-float residual; k <= MV_TOPK_MAX_K.
void route_weights(Cmd& cmd, Vec route, uint32_t k, uint32_t ids_off, uint32_t w_off, Vec ss, uint32_t n_blocks, uint32_t n,
                   float eps);
void topk_softmax(Cmd& cmd, Vec logits, uint32_t n_expert, uint32_t k, bool renorm, const Buffer& ids,
                  uint32_t ids_off, Vec w, uint32_t n_rows = 1, uint32_t row_stride = 0);
// x (n) += sum_j w[j] * outs[j] (k outputs of n); with hn: also hn = rmsnorm(x) * norm (one workgroup).
void moe_combine(Cmd& cmd, Vec x, Vec outs, Vec w, uint32_t n, uint32_t k, const Vec* hn = nullptr, Vec norm = {},
                 float eps = 0);
// The same for n_rows rows of a batch (no norm): row r's x, outs and w x_stride, outs_stride and
// w_stride further.
void moe_combine_rows(Cmd& cmd, Vec x, Vec outs, Vec w, uint32_t n, uint32_t k, uint32_t n_rows, uint32_t x_stride,
                      uint32_t outs_stride, uint32_t w_stride);

// The per-token step buffer (shared.h StepHeader + RoPE cos/sin).
constexpr uint64_t kStepBytes = sizeof(StepHeader) + 8ull * STEP_ROPE_MAX;
static_assert(kStepBytes == 4 * STEP_WORDS, "getrows.comp reads a batch's headers STEP_WORDS apart");
// Writes position, token and this position's RoPE cos/sin (computed in double, as the CPU does).
void write_step(void* mapped, uint32_t pos, uint32_t token, uint32_t n_rot, float rope_base);

// qwen35moe (GatedDeltaNet)
// Shapes of a linear-attention layer (qwen35::Ssm): value head h reads key head h % n_k when tiled,
// else h / (n_v / n_k).
struct DeltaShape {
    uint32_t n_k, n_v, dk, dv, kernel;
    bool tiled;
    uint32_t conv_dim() const { return 2 * n_k * dk + n_v * dv; }
};
// Per-layer parameters, floats in one buffer: conv weights (conv_dim, kernel), dt_bias, ssm_a (n_v),
// ssm_norm (dv) at these offsets.
struct DeltaParams {
    const Buffer* buf = nullptr;
    uint32_t conv_w = 0, dt_bias = 0, ssm_a = 0, ssm_norm = 0;
};
// qkv (conv_dim) in place = silu(conv1d(saved inputs, qkv)), q and k L2-normalised per head (q times
// q_scale); conv_state (kernel - 1, conv_dim) shifted; ba: b, a (n_v each) -> beta, decay. qkv and ba
// in one buffer.
void delta_conv(Cmd& cmd, Vec qkv, Vec ba, Vec conv_state, const DeltaParams& w, const DeltaShape& s, float q_scale,
                float l2_eps);
// Per value head: the delta-rule step on S (n_v, dk, dv), o (n_v, dv) = rmsnorm(S^T q) * ssm_norm * silu(z).
// qkv (delta_conv's output), z (n_v dv) and ba (beta, decay) in one buffer.
void delta_step(Cmd& cmd, Vec qkv, Vec z, Vec ba, Vec S, const DeltaParams& w, Vec o, const DeltaShape& s, float eps);
// A prompt batch's delta net (delta_batch.comp): n_tokens columns `stride` floats apart in cols.buf,
// token 0's at cols.off: raw qkv at 0, z at z, b and a at ba, and room for the conv's outputs (qkv at
// cqkv, beta and decay at cba). conv_state (the saved inputs) and S (s_off) in one state buffer; o
// (n_v dv per token) o_stride apart. The same results as delta_conv + delta_step token by token.
struct DeltaCols {
    uint32_t stride, z, ba, cqkv, cba;
};
void delta_batch(Cmd& cmd, Vec cols, const DeltaCols& at, uint32_t n_tokens, Vec conv_state, uint32_t s_off,
                 const DeltaParams& w, Vec o, uint32_t o_stride, const DeltaShape& s, float q_scale, float l2_eps, float eps);
// y (+)= a * sigmoid(g) over n; scalar_gate: every element takes g[0]. rows: n rows of a prompt batch,
// each's a, g and y their strides further.
struct Rows {
    uint32_t n = 1, a_stride = 0, g_stride = 0, y_stride = 0;
};
void sigmoid_gate(Cmd& cmd, Vec a, Vec g, Vec y, uint32_t n, bool scalar_gate, bool accumulate, const Rows& rows = {});

// deepseek2 (MLA)

// write_step() with the model's own rope: pair i turns by pos * inv_freq[i], cos and sin times mscale
// (deepseek2.cpp rope_angles(), in double as there). n_pairs <= STEP_ROPE_MAX.
void write_step_freqs(void* mapped, uint32_t pos, uint32_t token, const double* inv_freq, uint32_t n_pairs, float mscale);
struct MlaShape {
    uint32_t n_head, kv_lora, n_rot;
    uint32_t n_ctx;  // positions the cache holds (the attention's splits are planned for it)
};
// qcat (n_head, kv_lora + n_rot): head h's q_pe (n_rot floats at q + h * q_head_stride), roped, into
// the tail of its row; the cache row step.pos (kv_lora + n_rot) = [rmsnorm(c) * norm | rope(k_pe)] of
// kva = [c (kv_lora) | k_pe (n_rot)]. q points at head 0's q_pe; q and kva share a buffer. One dispatch.
// MlaTokens: a prompt batch of n tokens, token j's q, kva and qcat rows these floats further and its
// step header the j-th of `step` (the batch's headers back to back, kStepBytes apart).
struct MlaTokens {
    uint32_t n = 1, q_stride = 0, kva_stride = 0, qcat_stride = 0;
};
void mla_rope(Cmd& cmd, Vec q, uint32_t q_head_stride, Vec kva, Vec qcat, Vec cache, Vec norm, const MlaShape& s,
              float eps, const Buffer& step, const MlaTokens& t = {});
// Splits of the sequence mla_attention() uses: chunks of at most MLA_CHUNK_MAX positions, and enough
// workgroups (splits x head groups) to fill a GPU at short contexts.
uint32_t mla_splits(const MlaShape& s);
// Floats of scratch mla_attention() needs.
uint64_t mla_part_floats(const MlaShape& s);
// out (n_head, kv_lora) = sum_t softmax_t(qcat_h . row_t * scale) c_t over the latent cache rows
// [0, step.n_kv) (row_t = [c_t | k_pe_t], kv_lora + n_rot floats), split-K and merged in one dispatch.
// counts: n_head uints (one per group of MLA_HEADS heads is used), zero (each dispatch leaves them zero).
void mla_attention(Cmd& cmd, Vec qcat, Vec cache, Vec part, Vec out, Vec counts, const MlaShape& s, float scale,
                   const Buffer& step);
// A prompt batch of n_tokens: out + j * out_stride (n_head, kv_lora) = mla_attention() of token j's
// qcat + j * q_stride (n_head rows of kv_lora + n_rot) over the cache rows [0, pos_j] (steps: the
// batch's step headers back to back). Flash attention in one dispatch: on tensor cores in float16
// where the device has them (SLUICE_GPU_ATTN_CM=0: not; SLUICE_GPU_COOPMAT=scalar: their tiles in
// plain arithmetic), else in float. kv_lora <= 512, n_rot <= 64, multiples of 4.
void mla_prompt_attention(Cmd& cmd, Vec qcat, uint32_t q_stride, Vec cache, Vec out, uint32_t out_stride, uint32_t n_tokens,
                          const MlaShape& s, float scale, const Buffer& steps);
// deepseek2's routing of n_expert router logits (ds2::route_experts() on the GPU): ids (k ints at
// ids_off of `ids`) and weights w (k); bias (n_expert) when bias.buf is set. One dispatch.
struct GroupRoute {
    uint32_t n_group = 1, n_group_used = 1;
    bool sigmoid = true, norm = false;
    float scale = 1.0f;
    Vec bias;
};
// n_rows rows (a prompt batch): row y's logits, ids and weights row_stride floats further.
void route_grouped(Cmd& cmd, Vec logits, uint32_t n_expert, uint32_t k, const Buffer& ids, uint32_t ids_off, Vec w,
                   const GroupRoute& r, uint32_t n_rows = 1, uint32_t row_stride = 0);

}  // namespace sluice::gpu
