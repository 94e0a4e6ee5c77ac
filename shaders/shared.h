// Shared by the GLSL shaders and the C++ side: push-constant structs, the per-token step buffer and
// the constants both must agree on. Members are 32-bit scalars only, so std430 (GLSL) and C++ lay
// them out identically; the runtime also checks each struct's size against the shader's own
// push-constant block (spirv_reflect).
#ifndef SLUICE_SHADERS_SHARED_H
#define SLUICE_SHADERS_SHARED_H

#ifdef __cplusplus
#include <cstdint>
namespace sluice::gpu {
using uint = uint32_t;
#endif

// Matrix-vector products (matvec.comp): a workgroup is MV_TEAMS teams of MV_TEAM invocations, a team
// computes 1, 2 or 4 rows (shader variants matvec_<type>_r1/_r2/_r4; _glu and matmul_ take 2).
#define MV_TEAM 32
#define MV_TEAMS 2
#define MV_THREADS (MV_TEAM * MV_TEAMS)
#define MV_GLU_ROWS 2  // rows per team of matvec_<type>_glu and matmul_<type>
#define MM_MAX_COLS 8  // activation columns of the small-batch product (matmul_*)

// MatvecPush.flags
#define MV_ACCUMULATE 1u  // y += W x instead of y = W x
#define MV_IDS 2u         // matrix m of the batch is ids[ids_off + m] (routed experts)
#define MV_POS 4u         // y offset += step.pos * y_pos_stride (K/V written into the cache)
#define MV_SWIGLU 8u      // y = silu(W x) * (W2 x), W2 at w2_off of the same buffer (gate and up: one dispatch)
// MV_TOPK: the weights are the softmax over the top k only (else over all the logits).
#define MV_ROUTE_RENORM 32u
#define MV_ROUTE_MAX 512  // router logits at most (MV_TOPK)
// The last workgroup to finish also writes hn[norm_y_off ..] = y / sqrt(mean(y^2) + eps) * w over the
// rows (rmsnorm.comp's arithmetic), counting workgroups in the uint at norm_count_off of hn's buffer
// (zero between dispatches): the next norm of a residual stream without a dispatch of its own.
#define MV_NORM 64u
// y = sum_m w_m (W_m x_m) over sum_mats matrices (ids as usual), w_m floats at sum_w_off of the ids
// buffer, in one dispatch of one workgroup row: the routed experts' down projections and their
// weighted sum (with MV_ACCUMULATE, the residual add; with MV_NORM, the next norm).
#define MV_SUM_MATS 128u
// The last workgroup to finish ranks the rows (router logits, rows <= MV_ROUTE_MAX) and writes the ids
// of the top topk_k (ints, largest first, ties to the lower id, as topk.comp) at topk_ids_off and
// their softmax weights at topk_w_off of y's buffer (over the k with MV_ROUTE_RENORM), counting
// workgroups as MV_NORM does (the uint at norm_count_off of binding 5): the router's top-k without a
// dispatch of its own, for the experts' MV_IDS dispatches after it.
#define MV_TOPK 256u
#define MV_TOPK_MAX_K 64u  // topk_k at most
// With MV_NORM: the tail also writes hn's int8 mirror (QuantQ8Push's layout, scales from vec2
// norm_q_soff) into binding 7, so the matvecs that read hn need no quantize_q8 of their own. Rows
// and norm_y_off multiples of 32; subgroups of at least 8 (shuffles over a block's 8 invocations).
#define MV_NORM_Q8 512u
// x is the residual stream before its rmsnorm: the matvec multiplies x by the norm's weights (at
// norm_w_off of binding 6) as it loads it and the result by 1 / sqrt(mean(x^2) + norm_eps), which every
// workgroup computes over x itself. A router reading x then need not wait for the norm's dispatch
// (float weight types, one matrix, one column).
#define MV_XNORM 1024u
// Block tails (decode's quantize and norm dispatches folded into the matvec that writes their input):
// the workgroup that completes a block of 32 rows of y (an atomic count of rows per block in the uint
// at norm_count_off + block of binding 5, reset by it) writes the block's int8 mirror (QuantQ8Push's
// layout, elements from qb_q_off, scales from vec2 norm_q_soff) into binding 7: of y, or with
// MV_QBLK_NORM of y * the norm weights at norm_w_off of binding 6; with MV_QBLK_SS also the block's
// sum of y^2 at qb_ss_off + block of binding 5. A block is the rows' index within the batch
// (matrix m's rows at m * y_mat_stride): rows and y_mat_stride multiples of 32.
#define MV_QBLK 4096u
#define MV_QBLK_NORM 8192u
#define MV_QBLK_SS 16384u
// x's int8 mirror holds x * w of an rmsnorm whose scale is still to come (MV_QBLK_NORM | MV_QBLK_SS):
// the products are multiplied by 1 / sqrt(sum(ss) / cols + norm_eps), ss the cols / 32 block sums at
// norm_w_off of binding 6. The integer-dot variants only.
#define MV_XSS 32768u

// Offsets and strides of W are in the shader's storage units (16 bytes for F32/F16/BF16/Q4_K/Q5_K,
// 2 bytes for Q8_0/Q6_K: see quants.glsl); of x and y in floats. The batch (workgroup y) runs
// n_mats matrices: matrix m reads W at w_off + mat * w_mat_stride (mat = m, or ids[..] with
// MV_IDS), x at x_off + m * x_mat_stride and writes y at y_off + m * y_mat_stride.
struct MatvecPush {
    uint rows, cols;
    uint w_off, w_mat_stride;
    uint w2_off;   // MV_SWIGLU: the up matrices (same type, shape and strides as W)
    uint x_off, x_mat_stride, x_col_stride;
    uint y_off, y_mat_stride, y_col_stride, y_pos_stride;
    uint n_cols;   // activation columns (matmul_*); 1 for matvec_*
    uint ids_off;
    uint flags;
    uint norm_w_off, norm_y_off, norm_count_off;  // MV_NORM
    float norm_eps;
    uint sum_mats, sum_w_off;  // MV_SUM_MATS
    uint topk_k, topk_ids_off, topk_w_off;  // MV_TOPK
    uint xq_soff;  // _q8 variants: x is int8 (QuantQ8Push's layout), its (d, sum) pairs from this vec2
    uint norm_q_soff;  // MV_NORM_Q8, MV_QBLK: the mirror's scales
    uint qb_q_off, qb_ss_off;  // MV_QBLK: the mirror's first element, the blocks' sums of squares
};

// A prompt batch's routed experts grouped by expert (moe_group.comp, mm.comp's _ids variants): entry
// j * k + slot is token j's slot-th expert (ids: ints at ids_off + j * ids_stride + slot), tiles of at
// most bn entries of one expert. mm_<type>_ids: MatvecPush's ids_off = entries_off, topk_k = k, and
// with MM_X_TOKEN in flags x's column is the token (else the entry); y's column is the entry.
#define MM_X_TOKEN 2048u
struct MoeGroupPush {
    uint n_tokens, k, n_expert;
    uint ids_off, ids_stride;
    uint bn, entries_off;
};

// x quantized to int8 for the integer dot products of the matvec's _q8 variants (Q4_K, Q5_K): a float
// vector's mirror in a buffer of its own, element e's int8 at byte e and block e / 32's (d, d * sum of its
// 32 int8) at vec2 s_off + e / 32, x = d * q (q in -127..127). Offsets (floats) multiples of 32.
#define QUANT_Q8_THREADS 256
// norm_q8.comp: y = rmsnorm(x) * w over one vector, and with NORMQ_MIRROR y's int8 mirror (scales from
// vec2 q_soff; n and y_off multiples of 32). Offsets in floats, multiples of 4.
#define NORMQ_THREADS 256
#define NORMQ_MIRROR 1u
struct NormQ8Push {
    uint n, x_off, y_off, w_off, q_soff;
    float eps;
    uint flags;
};
struct QuantQ8Push {
    uint n;      // floats, a multiple of 32
    uint x_off;  // floats (in x) and bytes (in the mirror)
    uint s_off;  // vec2 index of block 0 of the mirror
};

// Embedding lookup: y[y_off + i] = dequant(W row r)[i], r = step.token or `row` (GETROWS_STEP_TOKEN unset).
// GETROWS_STEP_TOKENS: a prompt batch's rows, row j (workgroup y) the token of step header j (the
// headers STEP_WORDS apart, as the batch's step buffer holds them) at y_off + j * y_stride.
#define GETROWS_STEP_TOKEN 1u
#define GETROWS_STEP_TOKENS 2u
struct GetrowsPush {
    uint cols;
    uint w_off;       // storage units
    uint row;
    uint y_off;
    uint flags;
    uint y_stride;
};

// y = x / rms(x) * w over rows of n; row r at x_off + r * row_stride (+ step.pos * pos_stride with
// NORM_POS). In place when x and y are the same buffer and offsets.
#define NORM_POS 1u
struct RmsnormPush {
    uint n, n_rows;
    uint x_off, y_off, row_stride, pos_stride;
    uint w_off;
    float eps;
    uint flags;
};

// NeoX RoPE in place on n_heads heads of head_dim at x_off (+ step.pos * pos_stride with ROPE_POS):
// pairs (i, i + n_rot/2) rotate by the angle whose cos/sin the host wrote into step.rope.
#define ROPE_POS 1u
struct RopePush {
    uint n_heads, head_dim, n_rot;
    uint x_off, head_stride, pos_stride;
    uint flags;
};

// Per-head RMSNorm of q (n_head heads at q_off) and of this position's k (n_head_kv heads in the cache
// at k_off + step.pos * k_pos_stride), each followed by NeoX RoPE; one workgroup per head. The four
// ops of qwen3's Qcur_normed / Kcur_normed and RoPE in one dispatch.
struct QkNormRopePush {
    uint n_head, n_head_kv, head_dim, n_rot;
    uint q_off, k_off, k_pos_stride;
    uint qn_off, kn_off;  // norm weights (head_dim each) in the weight buffer
    float eps;
};

// Decode attention, split-K over the sequence: workgroup (split s, head block b) covers positions
// [s * chunk, (s+1) * chunk) of [0, step.n_kv), chunk = max(ceil(n_kv / n_splits), min_chunk), for
// the gh q heads [b * gh, (b+1) * gh) of one kv group (variants attn_split_g<gh>), and writes per head (max score, sum of exp,
// unnormalised output (head_dim_v)) to part; attn_combine (or attn_fused's last workgroup) merges.
#define ATTN_THREADS 128  // mla_attn (attn_split: 256)
#define ATTN_DMAX 256    // head_dim, head_dim_v at most
#define ATTN_GH_MAX 8    // q heads per workgroup at most
#define ATTN_QMAX 2560   // (gh + 1) * head_dim and gh * head_dim_v at most (shared q heads and k)
#define ATTN_SUB 128     // positions per step of the online softmax (ATTN_GH_MAX * ATTN_SUB >= ATTN_SPLITS_MAX)
#define ATTN_SPLITS_MAX 512  // a merge's gh * splits (attn_fused), a group's splits (attn_mla)
struct AttnPush {
    uint n_head, n_head_kv, head_dim, head_dim_v;
    uint n_splits;
    uint q_off, k_off, v_off;      // floats
    uint k_row_stride, v_row_stride;  // floats per cached position
    uint part_off;
    float scale;
    uint min_chunk;  // positions a split takes at least: short contexts use fewer of the splits
};
// attn_fused: AttnPush's fields, then qwen3's q/k norm + RoPE (qk_norm_rope's) and the merge's.
struct AttnFusedPush {
    uint n_head, n_head_kv, head_dim, head_dim_v;
    uint n_splits;
    uint q_off, k_off, v_off;
    uint k_row_stride, v_row_stride;
    uint part_off;
    float scale;
    uint k_raw_off;       // this position's k (n_head_kv, head_dim) before norm and RoPE, in the q buffer
    uint v_raw_off;       // this position's v (n_head_kv, head_dim_v), in the q buffer: copied to the cache row
    uint qn_off, kn_off;  // norm weights
    uint n_rot;
    float eps;
    uint out_off;         // merged output (n_head, head_dim_v)
    uint count_off;       // a counter per head block (n_head at most), zero between dispatches
    uint flags;           // ATTN_OUT_Q8: the output's int8 mirror (QuantQ8Push's layout) into binding 8,
    uint out_q_soff;      // its scales from this vec2 (head_dim_v and out_off multiples of 32)
    uint min_chunk;
    uint one_split;       // up to this many positions one split per head block: no parts, no merge
};
#define ATTN_OUT_Q8 1u

// A prompt batch's attention (attn_prompt.comp): attn_prompt_qkv, a workgroup per (head, token) of
// q, k and v heads, norms and ropes q and k and writes k and v into the cache rows pos_j; then
// attn_prompt (head dims up to 128; attn_prompt_d256 up to 256), a workgroup per (block of gb q heads
// of one kv group, ATTP_ROWS / gb tokens), causal attention over [0, pos_j]. Token j's projections lie
// at j * qkv_stride + q_off / k_off / v_off of binding 0, its output at out_off + j * out_stride; its
// step header at word j * step_words of the steps buffer.
#define ATTP_ROWS 32u  // (head, token) rows per workgroup: 8 invocations each
struct AttnPromptPush {
    uint n_tokens, n_head, n_head_kv, head_dim, head_dim_v, n_rot;
    uint qkv_stride, q_off, k_off, v_off;
    uint kc_off, vc_off, k_row_stride, v_row_stride;  // the caches (floats)
    uint out_off, out_stride;
    uint qn_off, kn_off;  // norm weights
    float eps, scale;
    uint step_words;
    uint gb;  // q heads per attn_prompt workgroup: a power of 2 dividing the group, at most 8
};
struct AttnCombinePush {
    uint n_head, head_dim_v, n_splits;
    uint part_off, out_off;
};

// y[i] = silu(g[i]) * u[i]
struct SwigluPush {
    uint n;
    uint g_off, u_off, y_off;
};

// Router: softmax over n_expert logits, the k largest (ties to the lower id), weights renormalised
// to sum 1 with TOPK_RENORM.
#define TOPK_THREADS 256
#define TOPK_RENORM 1u
struct TopkPush {
    uint n_expert, k;
    uint logits_off, ids_off, w_off;
    uint flags;
    uint row_stride;  // workgroup y takes row y: its logits, ids and weights row_stride further
};

// route_weights.comp (GpuModel's folded routers): the routed experts' weights from unscaled router
// logits, softmax over the chosen k of s * logit renormalised over them, s = 1 / sqrt(sum of the n_blocks
// block sums of squares at ss_off / n + eps) (rmsnorm's scale of the router's input). Logits at 0 of
// binding 0, the k ids (ints, largest first) at ids_off, weights written at w_off.
#define ROUTE_W_THREADS 64
struct RouteWeightsPush {
    uint k, ids_off, w_off;
    uint ss_off, n_blocks, n;
    float eps;
};

// x[i] += sum_j w[j] * outs[j * n + i]: the routed experts' weighted sum added to the residual. With
// COMBINE_NORM one workgroup also writes hn = rmsnorm(x) * norm (the next layer's attn_norm, or the
// output norm), saving a dispatch and a barrier per layer.
#define COMBINE_NORM 1u
struct MoeCombinePush {
    uint n, k;
    uint x_off, outs_off, w_off;
    uint hn_off, norm_off;
    float eps;
    uint flags;
    uint x_row_stride, outs_row_stride, w_row_stride;  // workgroup y: row y of a batch (without COMBINE_NORM)
};

// dst[dst_off + i] = src[src_off + i] for n uvec4 (16-byte) units, grid-stride: the device-memory
// bandwidth a compute shader reaches (bench_gpu's bound for decode).
struct CopyPush {
    uint n, src_off, dst_off;
};

// block_max.comp: y[y_off + b] = max of x[x_off + LOGIT_BLOCK b .. + LOGIT_BLOCK) over n floats (NaN
// ignored): the logits' block maxima (engine/sampler.h kLogitBlock is this).
#define LOGIT_BLOCK 64
struct BlockMaxPush {
    uint n, x_off, y_off;
};

// touch.comp: one 16-byte load every `stride` 16-byte units of [off, end) of a buffer, so that the
// pages' translations are in the GPU's TLBs before the dispatch that streams them (recorded beside
// the dispatch before it: the page walks then overlap its streaming).
#define TOUCH_THREADS 256
struct TouchPush {
    uint off, end, stride;
};

// grid_chain.comp (bench_gpu --grid only): stages s0 .. s0 + n_stages - 1 of x_{s+1} = W_s x_s (F16
// weights, n x n, w_stride uvec4s apart; x_s at s * n of binding 1), a team of 32 per row in turn;
// with GC_GRID the workgroups (all resident at once) wait for each other between stages (an atomic
// count at cnt_off of binding 2, zero before), and with GC_PREFETCH each team loads its next row's first
// weights before that wait.
#define GC_THREADS 256
#define GC_NMAX 4096
#define GC_GRID 1u
#define GC_PREFETCH 2u
struct GridChainPush {
    uint n, s0, n_stages, w_stride, cnt_off, flags;
};

// Written by the host before each token: what changes between tokens of a recorded command buffer.
#define STEP_ROPE_MAX 256  // cos/sin pairs: n_rot / 2 at most
struct StepHeader {
    uint pos;    // position of the token
    uint n_kv;   // positions attention reads: pos + 1
    uint token;  // token id (embedding lookup)
    uint pad;
};
#define STEP_WORDS (4u + 2u * STEP_ROPE_MAX)  // a step buffer's 32-bit words: the header, cos/sin pairs

// ggml type ids of the weight types with GPU kernels.
#define WT_F32 0
#define WT_F16 1
#define WT_Q4_0 2
#define WT_Q5_0 6
#define WT_Q5_1 7
#define WT_Q8_0 8
#define WT_Q2_K 10
#define WT_Q3_K 11
#define WT_Q4_K 12
#define WT_Q5_K 13
#define WT_Q6_K 14
#define WT_IQ2_XXS 16
#define WT_IQ2_XS 17
#define WT_IQ3_XXS 18
#define WT_IQ1_S 19
#define WT_IQ4_NL 20
#define WT_IQ3_S 21
#define WT_IQ2_S 22
#define WT_IQ4_XS 23
#define WT_IQ1_M 29
#define WT_BF16 30
// Not a ggml type: Q8_0 rows repacked at upload (ops.h repack_q8_0), each row's 32 int8 per block
// first, 16-byte aligned, then its f16 scales, so a lane loads 16 int8 at once (Q8_0's 34-byte
// blocks allow only 16-bit loads). Rows of a multiple of 256.
#define WT_Q8_0R 1008

// The grid types' lookup tables (engine/tensor/iq_grids.h) in one buffer the runtime binds at
// descriptor set 1, binding 0 for every shader that declares it (iq_grid.glsl): a uvec2 per entry, 8
// bytes (4 for IQ3, the second word 0; IQ1's -1 / 0 / 1 stored plus one), each grid from its offset.
// A buffer, not constant arrays in the shader: lavapipe's compile time grows with the square of a
// constant array's length (100 s a pipeline for IQ1_S's 2048 entries; the buffer: 0.06 s).
#define IQG_IQ2XXS 0u     // 256 entries
#define IQG_IQ2XS 256u    // 512
#define IQG_IQ2S 768u     // 1024
#define IQG_IQ3XXS 1792u  // 256
#define IQG_IQ3S 2048u    // 512
#define IQG_IQ1S 2560u    // 2048 (IQ1_S and IQ1_M)
#define IQG_ENTRIES 4608u

// qwen35moe (GatedDeltaNet): Qwen3.5-MoE / Qwen3-Next linear-attention layers and gates.
#define DELTA_THREADS 128       // delta_conv's workgroup
#define DELTA_STEP_THREADS 256  // delta_step's (16 columns of a value head): each column of S split
#define DELTA_KSPLIT 16         // over DELTA_KSPLIT invocations by rows
#define DELTA_DK_MAX 256    // key head size at most (q, k held in shared memory)
#define DELTA_DV_MAX 512    // value head size at most (the gated norm's row in shared memory)
#define DELTA_KERNEL_MAX 8  // conv kernel at most
// delta_conv.comp, one token: qkv (conv_dim = 2 n_k dk + n_v dv) at x_off becomes, in place,
// silu(causal depthwise conv1d over the kernel-1 saved inputs and this one), q and k L2-normalised per
// key head (q also times q_scale); the saved inputs (kernel-1, conv_dim), oldest first, shift by one.
// b, a (n_v each) at ba_off become beta = sigmoid(b), decay = exp(ssm_a * softplus(a + dt_bias)).
// Workgroups: 2 n_k (q, k heads), then the v channels DELTA_THREADS at a time, then one for b, a.
struct DeltaConvPush {
    uint n_k, n_v, dk, dv, kernel;
    uint x_off, ba_off;           // in the activations buffer
    uint state_off;               // conv inputs in the state buffer
    uint conv_w_off, dt_off, a_off;  // (conv_dim, kernel), (n_v), (n_v) in the parameters buffer
    float q_scale, l2_eps;
};
// delta_step.comp, value head h (key head h % n_k when tiled, else h / (n_v / n_k)):
// S_h (dk, dv) = decay S_h; S_h += k (beta (v_h - S_h^T k))^T; o = S_h^T q (workgroups (h, columns)),
// then o = rmsnorm(o) * ssm_norm * silu(z_h) at o_off + h dv (delta_norm, workgroup h).
struct DeltaStepPush {
    uint n_k, n_v, dk, dv, tiled;
    uint qkv_off, z_off, ba_off;  // conv output, z (n_v dv), beta then decay (n_v each): activations
    uint s_off;                   // S (n_v, dk, dv) in the state buffer
    uint norm_off;                // ssm_norm (dv) in the parameters buffer
    uint o_off;
    float eps;
};
// delta_batch.comp: a prompt batch of n_tokens tokens whose activation columns lie x_stride floats
// apart (offsets are token 0's): raw qkv at x_off and b, a at ba_off; the conv's outputs at cx_off
// (qkv) and cba_off (beta, decay); z at z_off; o (n_v dv per token) at o_off, o_stride apart.
struct DeltaBatchPush {
    uint n_k, n_v, dk, dv, kernel, tiled;
    uint n_tokens, x_stride;
    uint x_off, ba_off, cx_off, cba_off, z_off;
    uint state_off;                  // conv inputs (kernel-1, conv_dim) in the state buffer
    uint s_off;                      // S (n_v, dk, dv) in the state buffer
    uint conv_w_off, dt_off, a_off, norm_off;  // in the parameters buffer
    uint o_off, o_stride;
    float q_scale, l2_eps, eps;
};
// sigmoid_gate.comp: y[i] (+)= a[i] * sigmoid(g[i]) over n; with SG_SCALAR every i takes g[g_off]
// (the shared expert's one gate logit), with SG_ACCUMULATE y is added to (the residual stream).
#define SG_SCALAR 1u
#define SG_ACCUMULATE 2u
struct SigmoidGatePush {
    uint n;
    uint a_off, g_off, y_off;
    uint flags;
    uint a_row_stride, g_row_stride, y_row_stride;  // workgroup row y: row y of a batch
};

// deepseek2 (MLA) ----------------------------------------------------------------------------------
// Its rope rotates pairs (2i, 2i+1); the step buffer's cos/sin come from the model's own (YaRN)
// frequencies, times its mscale (write_step_freqs()). Workgroup h < n_head: head h's q_pe (n_rot at
// q_off + h * q_head_stride) roped into qcat_off + h * qcat_head_stride; workgroup n_head: this
// position's cache row at cache_off + step.pos * cache_row = [rmsnorm(c) * w | rope(k_pe)] of kva =
// [c (kv_lora) | k_pe (n_rot)] at kva_off. Workgroup row y: token y of a prompt batch, its q, kva and
// qcat *_tok_stride floats further and its step header at word y * step_words of the steps.
struct MlaRopePush {
    uint n_head, n_rot, kv_lora;
    uint q_off, q_head_stride;
    uint qcat_off, qcat_head_stride;
    uint kva_off;
    uint cache_off, cache_row;
    uint norm_off;
    float eps;
    uint q_tok_stride, kva_tok_stride, qcat_tok_stride, step_words;
};
// attn_mla (mla_attn.comp): every head h reads the same latent cache rows (kv_lora + n_rot floats at
// cache_off) as keys and their first kv_lora floats as values; a workgroup takes a split of (at most)
// MLA_HEADS heads (part as AttnPush's with head_dim_v = kv_lora), and the last of a group's workgroups merges
// them into out_off + h * kv_lora (counts: a uint per group, zero between dispatches).
#define MLA_HEADS 8
#define MLA_DMAX 576       // kv_lora + n_rot at most (DeepSeek-V2/V3, Kimi K2: 512 + 64)
#define MLA_CHUNK_MAX 256  // positions of a split (shared memory: 8 heads' queries and scores)
#define MLA_MIN_CHUNK 16   // positions of a split at least (fewer splits at short contexts)
struct MlaAttnPush {
    uint n_head, kv_lora, n_rot, n_splits;
    uint q_off, cache_off, part_off, out_off, count_off;
    float scale;
};
// moe_route_grouped (topk.comp -DGROUPED): deepseek2's routing, one workgroup. Top k of the selection
// scores sel = p + bias (bias at bias_off of its buffer, with ROUTE_BIAS), p = sigmoid(logits)
// (ROUTE_SIGMOID) or their softmax, within the n_group_used best of n_group groups; ids (ints) at
// ids_off, weights p (normalised over the k with ROUTE_NORM) * w_scale at w_off.
#define ROUTE_SIGMOID 1u
#define ROUTE_BIAS 2u
#define ROUTE_NORM 4u
#define ROUTE_GROUPED_MAX 1024  // experts at most
#define ROUTE_GROUPS_MAX 64
struct GroupRoutePush {
    uint n_expert, k, n_group, n_group_used;
    uint logits_off, ids_off, w_off, bias_off;
    float w_scale;
    uint flags;
    uint row_stride;  // workgroup y takes row y: its logits, ids and weights row_stride further
};
// attn_prompt_mla* (mla_prompt.comp): a prompt batch's latent attention. Token j's query row of head h
// (kv_lora + n_rot floats: [q_abs | q_pe], scaled by `scale` here) at q_off + j * q_tok_stride + h *
// q_head_stride; out (kv_lora floats) at out_off + j * out_tok_stride + h * kv_lora = softmax over the
// cache rows [0, pos_j] of q . row, times the rows' first kv_lora floats. A workgroup takes MLAP_ROWS
// rows (head, token): gb heads x MLAP_ROWS / gb tokens. Latent rows at most MLA_DMAX (kv_lora <= 512,
// n_rot <= 64: narrower ones are padded with zeros).
#define MLAP_ROWS 32u
struct MlaPromptPush {
    uint n_tokens, n_head, kv_lora, n_rot;
    uint q_off, q_tok_stride, q_head_stride;
    uint cache_off, out_off, out_tok_stride;
    uint step_words, gb;
    float scale;
};

#ifdef __cplusplus
}  // namespace sluice::gpu
#endif
#endif
