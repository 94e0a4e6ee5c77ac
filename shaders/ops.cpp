#include "shaders/ops.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace sluice::gpu {

namespace {

const TypeLayout kTypes[] = {
    {WT_F32, "f32", 16, 8, 1, 4},          {WT_F16, "f16", 16, 8, 1, 2},
    {WT_BF16, "bf16", 16, 8, 1, 2},        {WT_Q8_0, "q8_0", 2, 32, 32, 34},
    {WT_Q4_K, "q4_k", 16, 64, 256, 144},   {WT_Q5_K, "q5_k", 16, 64, 256, 176},
    {WT_Q6_K, "q6_k", 2, 64, 256, 210},     {WT_Q8_0R, "q8_0r", 16, 256, 32, 34},
    {WT_Q4_0, "q4_0", 2, 32, 32, 18},       {WT_Q2_K, "q2_k", 4, 32, 256, 84},
    {WT_Q3_K, "q3_k", 2, 32, 256, 110},     {WT_Q5_0, "q5_0", 2, 32, 32, 22},
    {WT_Q5_1, "q5_1", 2, 32, 32, 24},       {WT_IQ4_NL, "iq4_nl", 2, 32, 32, 18},
    {WT_IQ4_XS, "iq4_xs", 4, 32, 256, 136},  {WT_IQ2_XXS, "iq2_xxs", 2, 32, 256, 66},
    {WT_IQ2_XS, "iq2_xs", 2, 32, 256, 74},  {WT_IQ3_XXS, "iq3_xxs", 2, 32, 256, 98},
    {WT_IQ3_S, "iq3_s", 2, 32, 256, 110},    {WT_IQ2_S, "iq2_s", 2, 32, 256, 82},
    {WT_IQ1_S, "iq1_s", 2, 32, 256, 50},    {WT_IQ1_M, "iq1_m", 2, 32, 256, 56},
};

uint32_t u32(uint64_t v, const char* what) {
    if (v > 0xFFFFFFFFull) throw GpuError(std::string(what) + " does not fit 32 bits");
    return uint32_t(v);
}

// Read at every call, not cached: tests set it around one model's load.
bool skipped(const char* suffix) {
    const char* e = std::getenv("SLUICE_GPU_SKIP_TYPES");
    if (!e || !*e) return false;
    std::string list = std::string(",") + e + ",";
    std::transform(list.begin(), list.end(), list.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return list.find(std::string(",") + suffix + ",") != std::string::npos;
}

const TypeLayout* built_type(uint32_t t) {
    for (const TypeLayout& l : kTypes)
        if (l.type == t) return &l;
    return nullptr;
}

}  // namespace

const TypeLayout* gpu_type(uint32_t t) {
    const TypeLayout* l = built_type(t);
    return l && !skipped(l->suffix) ? l : nullptr;
}

std::string gpu_type_absent_why(uint32_t t) {
    return built_type(t) ? "which SLUICE_GPU_SKIP_TYPES leaves to the CPU" : "which has no GPU kernel yet";
}

uint64_t gpu_row_bytes(uint32_t type, uint64_t cols) {
    const TypeLayout* l = gpu_type(type);
    return cols / l->block_elems * l->block_bytes;
}

bool q8_0_repackable(uint64_t cols) { return cols > 0 && cols % 256 == 0; }

void repack_q8_0(const uint8_t* src, uint8_t* dst, uint64_t rows, uint64_t cols) {
    if (!q8_0_repackable(cols)) throw GpuError("repack_q8_0: rows of " + std::to_string(cols) + " are not a multiple of 256");
    const uint64_t nb = cols / 32, rb = nb * 34;
    for (uint64_t r = 0; r < rows; ++r) {
        const uint8_t* s = src + r * rb;
        uint8_t* q = dst + r * rb;
        uint8_t* d = q + cols;
        for (uint64_t b = 0; b < nb; ++b, s += 34) {
            std::memcpy(d + 2 * b, s, 2);
            std::memcpy(q + 32 * b, s + 2, 32);
        }
    }
}

uint64_t xq_bytes(uint64_t floats) { return (floats + 15) / 16 * 16 + (floats + 31) / 32 * 8; }
uint32_t xq_soff(uint64_t floats) { return u32((floats + 15) / 16 * 2, "int8 mirror"); }

// Every quantized type with GPU kernels has integer-dot variants; the float types have none.
bool has_q8(const Context& ctx, uint32_t type) {
    return ctx.info().int_dot && built_type(type) && type != WT_F32 && type != WT_F16 && type != WT_BF16;
}

void quantize_q8(Cmd& cmd, Vec x, const Xq& q, uint32_t n) {
    if (n % 32 || x.off % 32) throw GpuError("quantize_q8: n and the offset must be multiples of 32");
    QuantQ8Push p{n, x.off, q.soff};
    cmd.dispatch("quant_q8", {x.buf, q.buf}, p, {n / 4, 1, 1});  // an invocation per vec4
}

void rmsnorm_q8(Cmd& cmd, Vec x, Vec y, Vec w, uint32_t n, float eps, const Xq* yq) {
    if ((n | x.off | y.off | w.off) % 4 || (yq && (n % 32 || y.off % 32 || !cmd.context().info().int_dot)))
        throw GpuError("rmsnorm_q8: n and offsets must be multiples of 4 (32 with the int8 mirror)");
    NormQ8Push p{n, x.off, y.off, w.off, yq ? yq->soff : 0u, eps, yq ? NORMQ_MIRROR : 0u};
    cmd.dispatch("norm_q8", {x.buf, y.buf, w.buf, yq ? yq->buf : &cmd.context().dummy()}, p, {1, 1, 1});
}

namespace {

// A tuning switch from the environment (measurements), fallback where unset.
int env_int(const char* name, int fallback) {
    const char* e = std::getenv(name);
    return e && *e ? std::atoi(e) : fallback;
}

// The push constants every matvec / matmul variant shares: W's shape and offsets (in the type's storage
// units), x's and y's offsets and column strides.
MatvecPush mv_push(const TypeLayout& t, const Mat& w, Vec x, uint32_t x_col_stride, Vec y, uint32_t y_col_stride) {
    MatvecPush p{};
    p.rows = w.rows;
    p.cols = w.cols;
    p.w_off = u32(w.offset / t.unit_bytes, "weight offset");
    p.w_mat_stride = u32(w.mat_stride / t.unit_bytes, "matrix stride");
    p.x_off = x.off;
    p.x_col_stride = x_col_stride;
    p.y_off = y.off;
    p.y_col_stride = y_col_stride;
    return p;
}

}  // namespace

// Tensor cores where the device has them (VK_NV_cooperative_matrix), SLUICE_GPU_COOPMAT=0 turns them off
// (read at each recording: tests switch it). H200, 8B shape, 2048-token prompt: 3320 tok/s with mmc_*
// against 2957 with mm_* (4096x4096 x512 241 us vs 278); session 8's mmc (float16 tiles made from the
// int8 ones a quarter step at a time) was slower than mm_*, 1599 vs 1997.
bool use_coopmat(const Context& ctx) {
    const char* e = std::getenv("SLUICE_GPU_COOPMAT");
    return ctx.info().coopmat && !(e && std::string(e) == "0");
}

namespace {

// Many activation columns (prompts, more than 32) of an integer-dot type with x's int8 mirror:
// mm_<type>_n64, tiles of 64 rows x 64 columns (mm.comp); of a float type: mmf_<type> (float x).
// False where it does not apply (the caller then runs matmul_* over chunks of columns);
// SLUICE_GPU_MM=0 turns it off (measurements).
bool matmul_tiled(Cmd& cmd, const Mat& w, Vec x, Vec y, const MatvecOpts& o) {
    static const bool on = env_int("SLUICE_GPU_MM", 1) != 0;
    // H200, 4096x12288 Q4_K: mm 181 / 229 / 408 us for 16 / 64 / 256 columns, matmul_* 52 us per 8:
    // the tiles pay from a few dozen columns on.
    if (o.n_cols <= 32) return false;
    const TypeLayout* t = gpu_type(w.type);
    const bool q8 = o.xq && has_mm(cmd.context(), w.type) && (x.off | o.x_col_stride | o.x_mat_stride) % 32 == 0 &&
                    mm_cols_ok(w.type, w.cols);
    const bool flt = (w.type == WT_F32 || w.type == WT_F16 || w.type == WT_BF16) && w.cols % 32 == 0 &&
                     (x.off | o.x_col_stride | o.x_mat_stride) % 4 == 0;
    // a batch of matrices (workgroup z): strides, no ids
    const bool mats_ok = o.n_mats == 1 || (!o.ids && o.n_mats <= 65535 && (w.mat_stride || o.y_mat_stride));
    if (!on || (!q8 && !flt) || !mats_ok || o.ids || o.swiglu_up || o.sum_mats || o.norm_out || o.x_norm || o.topk ||
        o.y_pos_stride)
        return false;
    MatvecPush p = mv_push(*t, w, x, o.x_col_stride, y, o.y_col_stride);
    p.n_cols = o.n_cols;
    p.x_mat_stride = o.x_mat_stride;
    p.y_mat_stride = o.y_mat_stride;
    p.flags = o.accumulate ? MV_ACCUMULATE : 0;
    auto shape = [&] {  // the profile's row name
        return std::to_string(w.rows) + "x" + std::to_string(w.cols) + " x" + std::to_string(o.n_cols) +
               (o.n_mats > 1 ? " x" + std::to_string(o.n_mats) + " mats" : "");
    };
    if (flt) {  // mmf.comp: float x, tiles of 64 x 64
        if (cmd.profiling()) cmd.note(shape());
        cmd.dispatch(std::string("mmf_") + t->suffix, {w.buf, x.buf, y.buf}, p, {(w.rows + 63) / 64, (o.n_cols + 63) / 64, o.n_mats});
        return true;
    }
    p.xq_soff = o.xq->soff;
    uint32_t bm = 64, bn = 64;
    if (cmd.profiling()) cmd.note(shape());
    // Tensor cores: mmt_* (mmt.comp, 128 rows x 128 or 64 columns) or mmc_* (mm.comp, 64 x 64),
    // whichever takes fewer waves of workgroups: mmt_ runs one workgroup per multiprocessor (registers)
    // and a wave of its tiles takes ~1.7x one of mmc_'s, which runs two. H200 (132), 512 columns:
    // 4096x4096 Q4_K 182 us (1 wave) vs 214 (2), Q6_K 224 vs 280, 12288x4096 536 (3) vs 627 (6); but
    // 2048x4096 182 (1) vs 114 (1). Without a multiprocessor count (VK_NV_shader_sm_builtins): mmc_.
    // SLUICE_GPU_MMT=1 / 0 forces it (tests). mmh_ / mmth_: their float16 tiles without tensor cores
    // (SLUICE_GPU_COOPMAT=scalar: tests, any device).
    const char* cm = std::getenv("SLUICE_GPU_COOPMAT");
    const bool scalar = cm && std::string(cm) == "scalar", tensor = scalar || use_coopmat(cmd.context());
    const int force_t = env_int("SLUICE_GPU_MMT", -1);
    // IQ4: no mmt_*_n128 (its 48 KiB of shared memory leave no room for the IQ4 table)
    const bool iq4 = w.type == WT_IQ4_NL || w.type == WT_IQ4_XS;
    const uint32_t bn_t = o.n_cols > 64 && !iq4 ? 128 : 64, sms = cmd.context().info().sm_count;
    const uint32_t waves_t = sms ? ((w.rows + 127) / 128 * ((o.n_cols + bn_t - 1) / bn_t) * o.n_mats + sms - 1) / sms : 0;
    const uint32_t waves_c = sms ? ((w.rows + 63) / 64 * ((o.n_cols + 63) / 64) * o.n_mats + 2 * sms - 1) / (2 * sms) : 0;
    const bool big = tensor && (force_t == 1 || (force_t != 0 && sms && 17 * waves_t < 10 * waves_c));
    std::string kind = !tensor ? "mm_" : big ? (scalar ? "mmth_" : "mmt_") : (scalar ? "mmh_" : "mmc_");
    if (big) {
        bm = 128;
        bn = bn_t;
    }
    // SLUICE_GPU_MM_KIND=KIND:BM:BN (measurements, bench_gpu --mm): another build of mm.comp, e.g. mmc_:64:64
    if (const char* k = std::getenv("SLUICE_GPU_MM_KIND"); k && *k) {
        const std::string ks = k;
        const size_t a = ks.find(':'), b = ks.rfind(':');
        if (a == std::string::npos || a == b) throw GpuError("SLUICE_GPU_MM_KIND: KIND:BM:BN");
        kind = ks.substr(0, a);
        bm = uint32_t(std::strtoul(ks.c_str() + a + 1, nullptr, 10));
        bn = uint32_t(std::strtoul(ks.c_str() + b + 1, nullptr, 10));
        if (!bm || !bn) throw GpuError("SLUICE_GPU_MM_KIND: KIND:BM:BN");
    }
    cmd.dispatch(kind + t->suffix + "_n" + std::to_string(bn), {w.buf, o.xq->buf, y.buf}, p,
                 {(w.rows + bm - 1) / bm, (o.n_cols + bn - 1) / bn, o.n_mats});
    return true;
}

}  // namespace

// Every integer-dot type has tiles (mm_load.glsl).
bool has_mm(const Context& ctx, uint32_t type) { return has_q8(ctx, type); }

bool mm_cols_ok(uint32_t type, uint64_t cols) {
    const TypeLayout* t = gpu_type(type);
    return t && cols > 0 && cols % (t->block_elems >= 256 ? 256 : 128) == 0;
}

void moe_group(Cmd& cmd, Vec ids, uint32_t ids_stride, const ExpertGroups& g) {
    if (!g.n_tokens || !g.k || g.n_expert > MV_ROUTE_MAX || (g.bn != 16 && g.bn != 32 && g.bn != 64) || g.k > ids_stride)
        throw GpuError("moe_group: at most 512 experts, tiles of 16, 32 or 64 entries, k <= the ids' stride");
    MoeGroupPush p{g.n_tokens, g.k, g.n_expert, ids.off, ids_stride, g.bn, g.entries_off()};
    cmd.dispatch("moe_group", {ids.buf, g.buf}, p, {1, 1, 1});
}

void matmul_experts(Cmd& cmd, const Mat& w, Vec x, uint32_t x_col_stride, bool x_by_token, Vec y, uint32_t y_col_stride,
                    const Xq& xq, const ExpertGroups& g) {
    if (!has_mm(cmd.context(), w.type)) throw GpuError("matmul_experts: no grouped expert kernel for this type here");
    const TypeLayout* t = gpu_type(w.type);
    if (!mm_cols_ok(w.type, w.cols) || (x.off | x_col_stride) % 32 || w.offset % t->unit_bytes || w.mat_stride % t->unit_bytes)
        throw GpuError("matmul_experts: rows a multiple of 128 (K-quants: 256), x offsets and strides multiples of 32, aligned weights");
    MatvecPush p = mv_push(*t, w, x, x_col_stride, y, y_col_stride);
    p.ids_off = g.entries_off();
    p.topk_k = g.k;
    p.flags = x_by_token ? MM_X_TOKEN : 0u;
    p.xq_soff = xq.soff;
    if (cmd.profiling()) cmd.note(std::to_string(w.rows) + "x" + std::to_string(w.cols) + " experts x" + std::to_string(g.n_tokens * g.k));
    const char* cm = std::getenv("SLUICE_GPU_COOPMAT");
    const bool scalar = cm && std::string(cm) == "scalar";
    if ((g.kind == 1 && g.bn != 32) || (g.kind == 2 && g.bn != 64) || (g.kind == 0 && g.bn > 32))
        throw GpuError("matmul_experts: tiles of " + std::to_string(g.bn) + " entries for kind " + std::to_string(g.kind));
    const std::string kind = g.kind == 0 ? "mm_" : g.kind == 1 ? (scalar ? "mmh_" : "mmc_") : (scalar ? "mmth_" : "mmt_");
    cmd.dispatch(kind + t->suffix + "_ids_n" + std::to_string(g.bn), {w.buf, xq.buf, y.buf, g.buf}, p,
                 {(w.rows + (g.kind == 2 ? 127 : 63)) / (g.kind == 2 ? 128 : 64), g.max_tiles(), 1});
}

ExpertGroups expert_groups(const Context& ctx, const Buffer* buf, uint32_t n_tokens, uint32_t k, uint32_t n_expert) {
    ExpertGroups g{buf, n_tokens, k, n_expert, n_tokens * k >= 24 * n_expert ? 32u : 16u, 0};
    const char* e = std::getenv("SLUICE_GPU_MOE_KIND");
    const std::string want = e ? e : "";
    const char* cm = std::getenv("SLUICE_GPU_COOPMAT");
    const bool tensor = (cm && std::string(cm) == "scalar") || use_coopmat(ctx);
    // H100, prompts of 512 / 2048 tokens, tok/s: mmc_ vs int8 tiles of 32, V2-Lite's shape (64 experts,
    // 6 used) +3.4% / +3.1%, V3's widths (16 experts, 8 used) +6.8% / +4.3%, 30B-A3B's -0.3% / +0.3%;
    // mmt_'s 128 x 64 tiles +1.0% / +1.3%, +3.7% / +1.3%, -13% / -13%.
    if (tensor && (want == "mmc" || (want.empty() && g.bn == 32))) {
        g.bn = 32;
        g.kind = 1;
    } else if (tensor && want == "mmt") {
        g.bn = 64;
        g.kind = 2;
    }
    return g;
}

void matvec(Cmd& cmd, const Mat& w, Vec x, Vec y, const Buffer& step, const MatvecOpts& o) {
    const TypeLayout* t = gpu_type(w.type);
    if (!t) throw GpuError("matvec: no GPU kernel for ggml type " + std::to_string(w.type));
    if (w.cols % t->chunk || w.cols % t->block_elems)
        throw GpuError(std::string("matvec: ") + t->suffix + " rows of " + std::to_string(w.cols) +
                       " are not a multiple of " + std::to_string(std::max(t->chunk, t->block_elems)));
    if (w.offset % t->unit_bytes || w.mat_stride % t->unit_bytes || gpu_row_bytes(w.type, w.cols) % t->unit_bytes)
        throw GpuError(std::string("matvec: ") + t->suffix + " weights not aligned to " + std::to_string(t->unit_bytes) + " bytes");
    if (o.n_cols < 1) throw GpuError("matvec: no activation columns");
    if (o.n_cols > MM_MAX_COLS) {
        if (matmul_tiled(cmd, w, x, y, o)) return;
        // Chunks of MM_MAX_COLS columns (matmul_*), independent of each other.
        for (uint32_t c0 = 0; c0 < o.n_cols; c0 += MM_MAX_COLS) {
            if (c0) cmd.independent();
            MatvecOpts c = o;
            c.n_cols = std::min<uint32_t>(MM_MAX_COLS, o.n_cols - c0);
            matvec(cmd, w, {x.buf, x.off + c0 * o.x_col_stride}, {y.buf, y.off + c0 * o.y_col_stride}, step, c);
        }
        return;
    }
    if ((x.off | o.x_mat_stride | o.x_col_stride) % 4)
        throw GpuError("matvec: x offsets and strides must be multiples of 4 floats (vec4 loads)");
    if (o.n_mats > 1 && o.ids == nullptr && w.mat_stride == 0 && o.y_mat_stride == 0)
        throw GpuError("matvec: a batch of matrices needs strides or ids");
    MatvecPush p = mv_push(*t, w, x, o.x_col_stride, y, o.y_col_stride);
    p.x_mat_stride = o.x_mat_stride;
    p.y_mat_stride = o.y_mat_stride;
    p.y_pos_stride = o.y_pos_stride;
    p.n_cols = o.n_cols;
    p.ids_off = o.ids_off;
    p.flags = (o.accumulate ? MV_ACCUMULATE : 0) | (o.ids ? MV_IDS : 0) | (o.y_pos_stride ? MV_POS : 0);
    if (const Mat* u = o.swiglu_up) {
        if (u->buf != w.buf || u->type != w.type || u->rows != w.rows || u->cols != w.cols || u->mat_stride != w.mat_stride ||
            u->offset % t->unit_bytes || o.n_cols != 1 || o.accumulate || o.y_pos_stride)
            throw GpuError("matvec: the SwiGLU up matrix must match gate (buffer, type, shape, strides), one column");
        p.w2_off = u32(u->offset / t->unit_bytes, "up offset");
        p.flags |= MV_SWIGLU;
    }
    if (o.sum_mats) {
        if (!o.ids || o.swiglu_up || o.n_cols != 1 || o.y_pos_stride)
            throw GpuError("matvec: a weighted sum of matrices needs ids (and weights) and one column, no GLU, no position offset");
        p.flags |= MV_SUM_MATS;
        p.sum_mats = o.n_mats;
        p.sum_w_off = o.sum_w_off;
    }
    if (o.norm_out) {
        if ((o.n_mats != 1 && !o.sum_mats) || o.n_cols != 1 || o.swiglu_up || o.y_pos_stride || !o.norm_w.buf)
            throw GpuError("matvec: the norm tail takes one output vector: one matrix or a sum, one column, no GLU, no position offset");
        p.flags |= MV_NORM;
        p.norm_w_off = o.norm_w.off;
        p.norm_y_off = o.norm_out->off;
        p.norm_count_off = o.norm_count;
        p.norm_eps = o.norm_eps;
        if (o.norm_q) {
            if (w.rows % 32 || o.norm_out->off % 32 || o.norm_w.off % 4 || y.off % 4 || !cmd.context().info().int_dot)
                throw GpuError("matvec: the norm tail's int8 mirror needs rows and offsets that are multiples of 32");
            p.flags |= MV_NORM_Q8;
            p.norm_q_soff = o.norm_q->soff;
        }
    }
    if (o.qblk.q) {
        const auto& b = o.qblk;
        if (w.rows % 32 || (o.n_mats > 1 && !o.sum_mats && o.y_mat_stride % 32) || o.n_cols != 1 || o.y_pos_stride ||
            o.norm_out || o.topk || y.off % 4 || b.q_off % 32 || !b.count.buf || (b.ss.buf && b.ss.buf != b.count.buf) ||
            (b.ss.buf && !b.norm_w.buf) || b.norm_w.off % 4 || (o.x_ss.buf && b.norm_w.buf) || !cmd.context().info().int_dot)
            throw GpuError("matvec: block tails take rows (and matrix strides) in multiples of 32, one column, no position "
                           "offset, norm or top-k tail, a counter buffer holding the sums of squares, an int8 mirror, and "
                           "norm weights only where x_ss is not set");
        p.flags |= MV_QBLK | (b.norm_w.buf ? MV_QBLK_NORM : 0u) | (b.ss.buf ? MV_QBLK_SS : 0u);
        p.norm_count_off = b.count.off;
        p.norm_w_off = b.norm_w.off;
        p.norm_q_soff = b.q->soff;
        p.qb_q_off = b.q_off;
        p.qb_ss_off = b.ss.off;
    }
    if (o.x_norm) {
        if ((w.type != WT_F32 && w.type != WT_F16 && w.type != WT_BF16) || o.n_mats != 1 || o.n_cols != 1 || o.sum_mats ||
            o.swiglu_up || o.norm_out || o.y_pos_stride || !o.norm_w.buf || o.norm_w.off % 4 || w.cols % 4)
            throw GpuError("matvec: x_norm takes F32/F16/BF16 weights, one matrix and column, no GLU, sum or norm tail");
        p.flags |= MV_XNORM;
        p.norm_w_off = o.norm_w.off;
        p.norm_eps = o.norm_eps;
    }
    if (o.topk) {
        if (o.n_mats != 1 || o.n_cols != 1 || o.swiglu_up || o.norm_out || o.sum_mats || o.y_pos_stride || !o.topk_count.buf ||
            w.rows > MV_ROUTE_MAX || o.topk > w.rows || o.topk > MV_TOPK_MAX_K)
            throw GpuError("matvec: the top-k tail takes k <= 64 of one matrix of at most " + std::to_string(MV_ROUTE_MAX) +
                           " rows, one column, a counter, no GLU, norm, sum or position offset");
        p.flags |= MV_TOPK | (o.route_renorm ? MV_ROUTE_RENORM : 0u);
        p.topk_k = o.topk;
        p.topk_ids_off = o.topk_ids_off;
        p.topk_w_off = o.topk_w_off;
        p.norm_count_off = o.topk_count.off;
    }
    // The int8 mirror's blocks must line up with x's (offsets and strides multiples of 32); else the
    // floats, which are always there.
    const bool q8 = o.xq && !o.x_norm && has_q8(cmd.context(), w.type) &&
                    (x.off | o.x_mat_stride | (o.n_cols > 1 ? o.x_col_stride : 0)) % 32 == 0;
    if (q8) p.xq_soff = o.xq->soff;
    if (o.x_ss.buf) {
        if (!q8 || o.x_norm || o.norm_out) throw GpuError("matvec: x_ss needs the integer-dot variant (x's int8 mirror)");
        p.flags |= MV_XSS;
        p.norm_w_off = o.x_ss.off;
        p.norm_eps = o.norm_eps;
    }
    uint32_t nr = MV_GLU_ROWS, teams = MV_TEAMS;
    // The _q8w variants for rows of 2048 or more (H200: faster on every such shape measured, 7168 and
    // 29696 columns included, whose last step leaves lanes idle); o.wide = 1 takes them for any.
    static const bool wide_env = env_int("SLUICE_GPU_MV_WIDE", 1) != 0;
    const bool wide = q8 && o.n_cols == 1 && (w.type == WT_Q4_K || w.type == WT_Q5_K) && w.cols % 256 == 0 &&
                      (o.wide < 0 ? wide_env && w.cols >= 2048 : o.wide != 0);
    std::string name = std::string(o.n_cols > 1 ? "matmul_" : "matvec_") + t->suffix + (wide ? "_q8w" : q8 ? "_q8" : "");
    const MvPick pick = o.n_cols > 1   ? MvPick{0, 0}
                        : o.swiglu_up ? MvPick{0, wide ? glu_team_rows(w.rows, w.cols, o.n_mats) : MV_GLU_ROWS}
                                      : matvec_pick(w.type, q8, w.rows, w.cols, o.n_mats, o.sum_mats, o.norm_out != nullptr, wide);
    const uint32_t ks = o.swiglu_up || o.n_cols > 1 ? 0 : o.ksplit >= 0 ? uint32_t(o.ksplit) : pick.ksplit;
    if (ks && ks != 4 && ks != 8) throw GpuError("matvec: 4 or 8 teams per row");
    if (o.swiglu_up) {
        name += "_glu";
        if (wide) {  // _q8w_glu (2 rows per team), _glu1, _glu4
            nr = o.team_rows ? o.team_rows : pick.team_rows;
            if (nr != 1 && nr != 2 && nr != 4) throw GpuError("matvec: 1, 2 or 4 rows per team");
            if (nr != MV_GLU_ROWS) name += std::to_string(nr);
        }
    } else if (ks) {
        name += "_k" + std::to_string(ks);
        nr = ks == 4 ? 2 : 1;  // the builds' NR
        teams = 1;
    } else if (o.n_cols == 1) {
        nr = o.team_rows ? o.team_rows : pick.team_rows;
        if (nr != 1 && nr != 2 && nr != 4) throw GpuError("matvec: 1, 2 or 4 rows per team");
        name += "_r" + std::to_string(nr);
    }
    const Buffer* d = &cmd.context().dummy();
    const Buffer* ids = o.ids ? o.ids : d;
    const uint32_t rows_per_group = teams * nr;
    const Buffer* counter = o.norm_out ? o.norm_out->buf : o.topk ? o.topk_count.buf : o.qblk.q ? o.qblk.count.buf : d;
    const Buffer* norm_w = o.norm_out || o.x_norm ? o.norm_w.buf : o.qblk.norm_w.buf ? o.qblk.norm_w.buf : o.x_ss.buf ? o.x_ss.buf : d;
    const Buffer* mirror = o.norm_q ? o.norm_q->buf : o.qblk.q ? o.qblk.q->buf : d;
    if (cmd.profiling())
        cmd.note(std::to_string(w.rows) + "x" + std::to_string(w.cols) + (o.n_mats > 1 ? " x" + std::to_string(o.n_mats) : "") +
                 (o.norm_out ? " +norm" : "") + (o.topk ? " +topk" : "") + (o.x_norm ? " +xnorm" : "") +
                 (o.qblk.q ? o.qblk.ss.buf ? " +qnorm" : " +qblk" : "") + (o.x_ss.buf ? " +xss" : ""));
    cmd.dispatch(name, {w.buf, q8 ? o.xq->buf : x.buf, y.buf, ids, &step, counter, norm_w, mirror}, p,
                 {(w.rows + rows_per_group - 1) / rows_per_group, o.sum_mats ? 1 : o.n_mats, 1});
}

namespace {

uint32_t matvec_ksplit(uint32_t rows, uint32_t cols, uint32_t n_mats, bool sum_mats, bool wide_q8) {
    static const int env = env_int("SLUICE_GPU_KSPLIT", -1);
    const uint64_t units = uint64_t(sum_mats ? n_mats : 1) * ((cols + 511) / 512);  // steps of a row (MV_STEP)
    const uint64_t outputs = uint64_t(rows) * (sum_mats ? 1 : n_mats);
    if (units < 4 || outputs > 4096) return 0;
    // H100, integer dots: one row per team beat 4 teams per row on 4096x4096 (7.5 vs 8.7 us) and
    // 4096x12288 (15.4 vs 17.1); summed experts still split (8x2048x768: 7.5 vs 10.3).
    if (wide_q8 && !sum_mats && outputs >= 2048) return 0;
    if (env == 0 || env == 4 || env == 8) return uint32_t(env);
    // H200, Qwen3-30B-A3B shape decode: 4 teams 205.7 tok/s, none 192.3, 8 teams 184.1.
    return 4;
}

uint32_t matvec_team_rows(uint32_t rows, uint32_t n_mats, bool wide_q8) {
    // More rows per team read x from L1 fewer times per weight byte (what bounds a large matvec), but
    // leave fewer workgroups: keep ~8 per SM of a 132-SM H200, else one row per team (small matrices
    // are latency-bound: the more workgroups the better). Integer dots read a quarter of the x bytes
    // and step twice as far: one row per team up to 4096 rows (H100, 4096x4096: 7.5 us vs r2 9.0).
    const uint64_t kMinGroups = wide_q8 ? 4096 : 1024;
    for (uint32_t nr : {4u, 2u})
        if (uint64_t(rows + MV_TEAMS * nr - 1) / (MV_TEAMS * nr) * n_mats >= kMinGroups) return nr;
    return 1;
}

}  // namespace

uint32_t glu_team_rows(uint32_t rows, uint32_t cols, uint32_t n_mats) {
    static const int env = env_int("SLUICE_GPU_GLU_ROWS", 0);
    if (env == 1 || env == 2 || env == 4) return uint32_t(env);
    // H200 decode (_q8w GLU with its block tails, us): 4 rows per team where a team's rows hold at most
    // 16384 weights and that leaves 1024 workgroups (12288x4096 23.5 vs 27.0 with 2, 27.8 with 1: 8B
    // 377 -> 396 tok/s), else 2 (29696x8192 77.4 vs 82.4 with 4, 86.9 with 1; 8 experts' 768x2048
    // 12.5 vs 14.3 / 14.7). Experts keep 2: H100, a Mixtral-shaped model's 2 experts' 14336x4096
    // 57.6 us vs 60.1 with 4 (decode 235.0-236.3 vs 226.9-228.6 tok/s).
    if (n_mats == 1 && 4 * cols <= 16384 && uint64_t(rows) / (MV_TEAMS * 4) >= 1024) return 4;
    return MV_GLU_ROWS;
}

MvPick matvec_pick(uint32_t type, bool q8, uint32_t rows, uint32_t cols, uint32_t n_mats, bool sum_mats, bool norm_tail,
                   bool wide_kq) {
    if (q8 && type == WT_Q6_K && !norm_tail && cols >= 4096) {
        // H200, word loads (bench_gpu, dependent dispatches, us): 4 teams per row for long rows and
        // weighted sums (5120x25600 40.1 vs r2 45.1, 10240x8192 26.7 vs r4 29.8, 8192x29696 70.6 vs r4
        // 85.9 (r2 67.4), 8x7168x2048 sum 36.6 vs r2 38.8), else one row per team (10240x5120 19.4 vs
        // r4 20.4, 4096x4096 8.6 vs k4 9.4).
        return cols >= 8192 || sum_mats ? MvPick{4, 0} : MvPick{0, 1};
    }
    if (wide_kq && !norm_tail) {
        // H200, _q8w (bench_gpu, dependent dispatches): weighted sums of experts 4 teams per row
        // (8x7168x2048 23.1 us, r2 23.9, r1 30.1); few long rows too (5120x25600 k4 24.9, r2 26.4; but
        // 8192x29696 r2 39.1, k4 41.3); else no k-split (a row is half the steps) and the most rows per
        // team that leave ~10 workgroups per SM: 10240x8192 r4 17.9 (k4 17.5-18.6), 8192x8192 r2 14.1
        // (r4 16.2, k4 14.9), 5120x8192 r2 11.2 (k4 10.8), 4096x12288 r1 13.0 (k4 13.7), 4096x4096 r1
        // 6.7, 768x2048 r1 3.5 (k4 4.7).
        if (sum_mats || (cols >= 16384 && rows <= 6144)) return {4, 0};
        for (uint32_t nr : {4u, 2u})
            if (uint64_t(rows + MV_TEAMS * nr - 1) / (MV_TEAMS * nr) * n_mats >= 1280) return {0, nr};
        return {0, 1};
    }
    // Integer dots of Q4_K and the repacked Q8_0 load 16 bytes of W per lane and part ("wide"): they
    // favour one row per team; the other types keep the float path's choices (H100, 4096x4096: Q8_0
    // k4 20.5 us vs r1 27.0, Q5_K k4 14.2 vs r1 17.6; Q6_K 4096x12288 k4 30.0 vs r1 33.7).
    const bool wide = q8 && (type == WT_Q4_K || type == WT_Q8_0R);
    uint32_t ks = 0;
    if (q8 && norm_tail && rows <= 4096 && cols >= 1024) {
        // H100 decode, integer dots with the norm tail (128 invocations read y back, not 64):
        // 4096x4096 16.2 us vs r1 20.9, 4096x12288 25.5 vs 29.3
        ks = 4;
    } else if (wide && n_mats == 1 && !sum_mats && (cols >= 16384 || (cols >= 8192 && rows > 4096))) {
        // Long rows: a team's chain of steps is what a matvec waits on (H100, Q4_K 5120x25600: k4
        // 34.8 us vs r1 44.7, r2 38.5; 5120x8192 14.0 vs 16.4; but 4096x12288 r1 15.5 vs k4 17.2;
        // repacked Q8_0 5120x25600 55.7 vs 66.1, 5120x8192 19.6 vs 23.4).
        ks = 4;
    } else {
        ks = matvec_ksplit(rows, cols, n_mats, sum_mats, wide);
    }
    return {ks, ks ? 0u : matvec_team_rows(rows, sum_mats ? 1 : n_mats, wide)};
}

namespace {

// The embedding lookup's type, checked, and its push constants but for the row(s).
const TypeLayout* getrows_layout(const Mat& w, Vec y, GetrowsPush& p) {
    const TypeLayout* t = gpu_type(w.type);
    if (!t || w.type == WT_Q8_0R) throw GpuError("getrows: no GPU kernel for type " + std::to_string(w.type));
    if (w.cols % t->chunk || w.offset % t->unit_bytes)
        throw GpuError(std::string("getrows: ") + t->suffix + " rows of " + std::to_string(w.cols) + " cannot be read");
    p = {};
    p.cols = w.cols;
    p.w_off = u32(w.offset / t->unit_bytes, "weight offset");
    p.y_off = y.off;
    return t;
}

}  // namespace

void getrows(Cmd& cmd, const Mat& w, Vec y, const Buffer& step, int64_t row) {
    GetrowsPush p;
    const TypeLayout* t = getrows_layout(w, y, p);
    p.row = row < 0 ? 0 : uint32_t(row);
    p.flags = row < 0 ? GETROWS_STEP_TOKEN : 0;
    cmd.dispatch(std::string("getrows_") + t->suffix, {w.buf, y.buf, &step}, p, {w.cols / t->chunk, 1, 1});
}

void getrows_tokens(Cmd& cmd, const Mat& w, Vec y, uint32_t y_stride, const Buffer& steps, uint32_t n) {
    if (steps.size() < n * kStepBytes) throw GpuError("getrows_tokens: the step buffer holds fewer headers than rows");
    GetrowsPush p;
    const TypeLayout* t = getrows_layout(w, y, p);
    p.flags = GETROWS_STEP_TOKENS;
    p.y_stride = y_stride;
    cmd.dispatch(std::string("getrows_") + t->suffix, {w.buf, y.buf, &steps}, p, {w.cols / t->chunk, n, 1});
}

void rmsnorm(Cmd& cmd, Vec x, Vec y, Vec w, uint32_t n, uint32_t n_rows, uint32_t row_stride, float eps,
             const Buffer& step, uint32_t pos_stride) {
    RmsnormPush p{n, n_rows, x.off, y.off, row_stride, pos_stride, w.off, eps, pos_stride ? NORM_POS : 0u};
    cmd.dispatch("rmsnorm", {x.buf, y.buf, w.buf, &step}, p, {n_rows, 1, 1});
}

void rope_neox(Cmd& cmd, Vec x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot, uint32_t head_stride,
               const Buffer& step, uint32_t pos_stride) {
    if (n_rot % 2 || n_rot > head_dim || n_rot / 2 > STEP_ROPE_MAX) throw GpuError("rope: bad n_rot " + std::to_string(n_rot));
    RopePush p{n_heads, head_dim, n_rot, x.off, head_stride, pos_stride, pos_stride ? ROPE_POS : 0u};
    cmd.dispatch("rope_neox", {x.buf, &step}, p, {n_rot / 2, n_heads, 1});
}

void qk_norm_rope(Cmd& cmd, Vec q, Vec k, uint32_t k_pos_stride, Vec q_norm, Vec k_norm, uint32_t n_head,
                  uint32_t n_head_kv, uint32_t head_dim, uint32_t n_rot, float eps, const Buffer& step) {
    if (head_dim > 512 || n_rot % 2 || n_rot > head_dim || n_rot / 2 > STEP_ROPE_MAX)
        throw GpuError("qk_norm_rope: head_dim " + std::to_string(head_dim) + ", n_rot " + std::to_string(n_rot));
    if (q_norm.buf != k_norm.buf) throw GpuError("qk_norm_rope: q and k norm weights must share a buffer");
    QkNormRopePush p{n_head, n_head_kv, head_dim, n_rot, q.off, k.off, k_pos_stride, q_norm.off, k_norm.off, eps};
    cmd.dispatch("qk_norm_rope", {q.buf, k.buf, q_norm.buf, &step}, p, {n_head + n_head_kv, 1, 1});
}

namespace {

// The checks both attention variants share; GpuError with the reason.
void check_attention(Cmd& cmd, const AttnShape& s, Vec k, uint32_t k_row_stride, Vec v, uint32_t v_row_stride) {
    if (cmd.context().info().subgroup_size < 8)  // attn_split.comp sums a K row over 8 invocations by shuffles
        throw GpuError("attention: needs subgroups of at least 8 invocations");
    if (s.n_head_kv == 0 || s.n_head % s.n_head_kv) throw GpuError("attention: heads not a multiple of kv heads");
    if (s.head_dim > ATTN_DMAX || s.head_dim_v > ATTN_DMAX || s.head_dim % 4 || s.head_dim_v % 4 || s.head_dim == 0 || s.head_dim_v == 0)
        throw GpuError("attention: head dims " + std::to_string(s.head_dim) + ", " + std::to_string(s.head_dim_v) +
                       " (the GPU attention takes multiples of 4 up to " + std::to_string(ATTN_DMAX) + ")");
    if (k.off % 4 || k_row_stride % 4 || v.off % 4 || v_row_stride % 4)
        throw GpuError("attention: K and V rows must start at multiples of 4 floats");
    const uint32_t group = s.n_head / s.n_head_kv;
    if (s.gh == 0 || s.gh > ATTN_GH_MAX || (s.gh & (s.gh - 1)) || group % s.gh || (s.gh + 1) * s.head_dim > ATTN_QMAX || s.gh * s.head_dim_v > ATTN_QMAX ||
        s.n_splits == 0 || uint64_t(s.gh) * s.n_splits > ATTN_SPLITS_MAX || s.min_chunk == 0)
        throw GpuError("attention: " + std::to_string(s.gh) + " heads per workgroup and " + std::to_string(s.n_splits) +
                       " splits do not fit (attn_shape() picks them)");
}

}  // namespace

AttnShape attn_shape(uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t head_dim_v, uint64_t n_ctx,
                     uint32_t heads_cap, uint32_t wgs, uint32_t min_chunk) {
    // gh * head_dim <= 512 (H200, bench_gpu --attn, session 12): qwen3's 128-dim heads 4 per workgroup
    // (the whole group of 8: 182 registers and a merge of 8 heads, 1.2-1.9x slower from 4096
    // positions), qwen3.5's 256-dim heads 2 (4: 1.1-1.5x slower).
    const uint32_t group = n_head_kv && n_head % n_head_kv == 0 ? n_head / n_head_kv : 1;
    uint32_t gh = 1;
    for (uint32_t g = 2; g <= std::min<uint32_t>(group, heads_cap); g *= 2)  // a shader variant per power of 2
        if (group % g == 0 && g * std::max(head_dim, head_dim_v) <= 512 && (g + 1) * head_dim <= ATTN_QMAX) gh = g;
    const uint32_t blocks = std::max(1u, n_head / gh);
    min_chunk = std::max(min_chunk, 1u);
    uint64_t splits = (uint64_t(std::max(wgs, 1u)) + blocks - 1) / blocks;
    splits = std::min<uint64_t>({splits, ATTN_SPLITS_MAX / gh, (n_ctx + min_chunk - 1) / min_chunk});
    return {n_head, n_head_kv, head_dim, head_dim_v, uint32_t(std::max<uint64_t>(splits, 1)), gh, min_chunk};
}

AttnShape attn_shape(uint32_t n_head, uint32_t n_head_kv, uint32_t head_dim, uint32_t head_dim_v, uint64_t n_ctx) {
    static const int wgs = std::max(1, env_int("SLUICE_GPU_ATTN_WGS", 256));
    static const int min_chunk = std::clamp(env_int("SLUICE_GPU_ATTN_MIN_CHUNK", 32), 1, 4096);
    static const int cap = std::clamp(env_int("SLUICE_GPU_ATTN_HEADS", ATTN_GH_MAX), 1, ATTN_GH_MAX);
    return attn_shape(n_head, n_head_kv, head_dim, head_dim_v, n_ctx, uint32_t(cap), uint32_t(wgs), uint32_t(min_chunk));
}

uint64_t attn_part_floats(const AttnShape& s) { return uint64_t(s.n_head) * s.n_splits * (s.head_dim_v + 2); }

void attention(Cmd& cmd, Vec q, Vec k, Vec v, uint32_t k_row_stride, uint32_t v_row_stride, Vec part, Vec out,
               const AttnShape& s, const Buffer& step) {
    check_attention(cmd, s, k, k_row_stride, v, v_row_stride);
    AttnPush p{s.n_head, s.n_head_kv, s.head_dim, s.head_dim_v, s.n_splits, q.off, k.off, v.off,
               k_row_stride, v_row_stride, part.off, 1.0f / std::sqrt(float(s.head_dim)), s.min_chunk};  // as the CPU computes it
    cmd.dispatch("attn_split_g" + std::to_string(s.gh), {q.buf, k.buf, v.buf, part.buf, &step}, p, {s.n_splits, s.n_head / s.gh, 1});
    AttnCombinePush c{s.n_head, s.head_dim_v, s.n_splits, part.off, out.off};
    cmd.dispatch("attn_combine", {part.buf, out.buf}, c, {s.n_head, 1, 1});
}

void attention_qk(Cmd& cmd, Vec q, Vec k_raw, Vec v_raw, Vec k, Vec v, uint32_t k_row_stride, uint32_t v_row_stride, Vec part,
                  Vec out, const AttnShape& s, const QkNorm& n, Vec counts, const Buffer& step, const Xq* out_q) {
    check_attention(cmd, s, k, k_row_stride, v, v_row_stride);
    if (n.n_rot % 2 || n.n_rot > s.head_dim || n.n_rot / 2 > STEP_ROPE_MAX)
        throw GpuError("attention: head_dim " + std::to_string(s.head_dim) + ", n_rot " + std::to_string(n.n_rot));
    if (k_raw.buf != q.buf || v_raw.buf != q.buf || n.q_norm.buf != n.k_norm.buf)
        throw GpuError("attention: q, raw k and raw v share a buffer, and the q and k norm weights another");
    AttnFusedPush p{s.n_head, s.n_head_kv, s.head_dim, s.head_dim_v, s.n_splits, q.off, k.off, v.off, k_row_stride, v_row_stride,
                    part.off, 1.0f / std::sqrt(float(s.head_dim)), k_raw.off, v_raw.off, n.q_norm.off, n.k_norm.off, n.n_rot, n.eps,
                    out.off, counts.off, 0u, 0u, s.min_chunk, 0u};
    // Up to this many positions one split per head block, its output written without a merge.
    static const int one_split = std::max(0, env_int("SLUICE_GPU_ATTN_ONE", 128));
    p.one_split = uint32_t(one_split);
    if (out_q) {
        if (s.head_dim_v % 32 || out.off % 32 || !cmd.context().info().int_dot)
            throw GpuError("attention: the output's int8 mirror needs head_dim_v and its offset to be multiples of 32");
        p.flags = ATTN_OUT_Q8;
        p.out_q_soff = out_q->soff;
    }
    cmd.dispatch("attn_fused_g" + std::to_string(s.gh), {q.buf, k.buf, v.buf, part.buf, &step, n.q_norm.buf, out.buf, counts.buf,
                                out_q ? out_q->buf : &cmd.context().dummy()}, p,
                 {s.n_splits, s.n_head / s.gh, 1});
}

void touch(Cmd& cmd, const Buffer& b, uint64_t off, uint64_t bytes, uint32_t page) {
    if (off % 16 || page < 16 || page % 16 || (off + bytes + 15) / 16 > UINT32_MAX)
        throw GpuError("touch: offsets multiples of 16 bytes within 64 GiB, pages multiples of 16 bytes");
    if (!bytes) return;
    const TouchPush p{uint32_t(off / 16), uint32_t((off + bytes + 15) / 16), page / 16};
    const uint64_t pages = (bytes + page - 1) / page;
    cmd.dispatch("touch", {&b, &cmd.context().dummy()}, p, {uint32_t(std::min<uint64_t>((pages + TOUCH_THREADS - 1) / TOUCH_THREADS, 64)), 1, 1});
}

void block_max(Cmd& cmd, Vec x, Vec y, uint32_t n) {
    if (!n) return;
    const BlockMaxPush p{n, x.off, y.off};
    cmd.dispatch("block_max", {x.buf, y.buf}, p, {(n + LOGIT_BLOCK - 1) / LOGIT_BLOCK, 1, 1});
}

void swiglu(Cmd& cmd, Vec g, Vec u, Vec y, uint32_t n) {
    SwigluPush p{n, g.off, u.off, y.off};
    cmd.dispatch("swiglu", {g.buf, u.buf, y.buf}, p, {n, 1, 1});
}

void route_weights(Cmd& cmd, Vec route, uint32_t k, uint32_t ids_off, uint32_t w_off, Vec ss, uint32_t n_blocks, uint32_t n,
                   float eps) {
    static_assert(ROUTE_W_THREADS >= MV_TOPK_MAX_K);
    if (k == 0 || k > MV_TOPK_MAX_K || route.off != 0 || n == 0 || n_blocks == 0)
        throw GpuError("route_weights: 1 to 64 experts, the logits at 0 of their buffer, a residual with blocks");
    RouteWeightsPush p{k, ids_off, w_off, ss.off, n_blocks, n, eps};
    cmd.dispatch("route_weights", {route.buf, ss.buf}, p, {1, 1, 1});
}

void topk_softmax(Cmd& cmd, Vec logits, uint32_t n_expert, uint32_t k, bool renorm, const Buffer& ids,
                  uint32_t ids_off, Vec w, uint32_t n_rows, uint32_t row_stride) {
    if (k < 1 || k > 32 || n_expert > 2048 || k > n_expert || n_rows < 1)
        throw GpuError("topk: k 1..32 of at most 2048 experts, at least one row");
    TopkPush p{n_expert, k, logits.off, ids_off, w.off, renorm ? TOPK_RENORM : 0u, row_stride};
    cmd.dispatch("topk_softmax", {logits.buf, &ids, w.buf}, p, {1, n_rows, 1});
}

void prompt_attention(Cmd& cmd, const PromptQkv& x, uint32_t n_tokens, Vec k, Vec v, uint32_t k_row_stride,
                      uint32_t v_row_stride, Vec out, uint32_t out_stride, const AttnShape& s, const QkNorm& n,
                      const Buffer& steps) {
    if (!n_tokens || !s.n_head_kv || s.n_head % s.n_head_kv || s.head_dim > ATTN_DMAX || s.head_dim_v > ATTN_DMAX ||
        n.n_rot > s.head_dim || n.n_rot % 2 || n.n_rot / 2 > STEP_ROPE_MAX || (s.head_dim | s.head_dim_v) % 4 ||
        (x.qkv.off | x.qkv_stride | k.off | v.off | k_row_stride | v_row_stride) % 4)
        throw GpuError("prompt_attention: heads must divide into kv groups, head dims multiples of 4 up to 256, n_rot <= "
                       "head_dim, offsets and strides multiples of 4");
    if (cmd.context().info().subgroup_size < 8)  // attn_prompt sums a row's scores over 8 invocations by shuffles
        throw GpuError("prompt_attention: needs subgroups of at least 8 invocations");
    static_assert(kStepBytes % 8 == 0);
    // gb q heads of a kv group per workgroup (they share its K and V rows), ATTP_ROWS / gb tokens
    const uint32_t group = s.n_head / s.n_head_kv;
    uint32_t gb = 1;
    while (gb < 8 && group % (2 * gb) == 0) gb *= 2;
    AttnPromptPush p{n_tokens, s.n_head, s.n_head_kv, s.head_dim, s.head_dim_v, n.n_rot,
                     x.qkv_stride, x.qkv.off, x.qkv.off + x.k_raw, x.qkv.off + x.v_raw,
                     k.off, v.off, k_row_stride, v_row_stride, out.off, out_stride,
                     n.q_norm.off, n.k_norm.off, n.eps, 1.0f / std::sqrt(float(s.head_dim)), uint32_t(kStepBytes / 4), gb};
    cmd.dispatch("attn_prompt_qkv", {x.qkv.buf, k.buf, v.buf, n.q_norm.buf, &steps}, p,
                 {s.n_head + 2 * s.n_head_kv, n_tokens, 1});
    // 128- and 256-dim heads on tensor cores (attn_prompt_cm*, 64 or 32 rows per workgroup: subgroups of
    // 32), or their float16 tiles without them (SLUICE_GPU_COOPMAT=scalar: tests); SLUICE_GPU_ATTN_CM=0
    // turns them off.
    const char* cm = std::getenv("SLUICE_GPU_COOPMAT");
    const bool same = s.head_dim == s.head_dim_v, d128 = same && s.head_dim == 128, d256 = same && s.head_dim == 256;
    const bool scalar = cm && std::string(cm) == "scalar";
    const bool tensor = use_coopmat(cmd.context()) && cmd.context().info().subgroup_size == 32 &&
                        env_int("SLUICE_GPU_ATTN_CM", 1) != 0;
    const bool tiles = (d128 || d256) && (scalar || tensor);
    const std::string name = tiles ? std::string(scalar ? "attn_prompt_cmh" : "attn_prompt_cm") + (d256 ? "_d256" : "")
                             : std::max(s.head_dim, s.head_dim_v) <= 128 ? "attn_prompt" : "attn_prompt_d256";
    const uint32_t tt = (tiles ? (d256 ? 32u : 64u) : ATTP_ROWS) / gb;
    cmd.dispatch(name, {x.qkv.buf, k.buf, v.buf, out.buf, &steps}, p, {s.n_head / gb, (n_tokens + tt - 1) / tt, 1});
}

void moe_combine(Cmd& cmd, Vec x, Vec outs, Vec w, uint32_t n, uint32_t k, const Vec* hn, Vec norm, float eps) {
    MoeCombinePush p{n, k, x.off, outs.off, w.off, hn ? hn->off : 0, norm.off, eps, hn ? COMBINE_NORM : 0u, 0, 0, 0};
    const Buffer* d = &cmd.context().dummy();
    cmd.dispatch("moe_combine", {x.buf, outs.buf, w.buf, hn ? hn->buf : d, hn ? norm.buf : d}, p, {hn ? 1u : n, 1, 1});
}

void moe_combine_rows(Cmd& cmd, Vec x, Vec outs, Vec w, uint32_t n, uint32_t k, uint32_t n_rows, uint32_t x_stride,
                      uint32_t outs_stride, uint32_t w_stride) {
    MoeCombinePush p{n, k, x.off, outs.off, w.off, 0, 0, 0.0f, 0u, x_stride, outs_stride, w_stride};
    cmd.dispatch("moe_combine", {x.buf, outs.buf, w.buf, &cmd.context().dummy(), &cmd.context().dummy()}, p, {n, n_rows, 1});
}

void write_step(void* mapped, uint32_t pos, uint32_t token, uint32_t n_rot, float rope_base) {
    StepHeader h{pos, pos + 1, token, 0};
    std::memcpy(mapped, &h, sizeof h);
    float* cs = reinterpret_cast<float*>(static_cast<uint8_t*>(mapped) + sizeof h);
    for (uint32_t i = 0; i < n_rot / 2 && i < STEP_ROPE_MAX; ++i) {
        const double theta = double(pos) * std::pow(double(rope_base), -2.0 * double(i) / double(n_rot));
        cs[2 * i] = float(std::cos(theta));
        cs[2 * i + 1] = float(std::sin(theta));
    }
}

// qwen35moe (GatedDeltaNet)

namespace {
void check_delta(const DeltaShape& s, const char* op) {
    if (s.n_k == 0 || s.n_v % s.n_k || s.dk == 0 || s.dk > DELTA_DK_MAX || s.dv == 0 || s.dv > DELTA_DV_MAX ||
        s.kernel == 0 || s.kernel > DELTA_KERNEL_MAX)
        throw GpuError(std::string(op) + ": key heads " + std::to_string(s.n_k) + ", value heads " + std::to_string(s.n_v) +
                       " (a multiple), dk " + std::to_string(s.dk) + " (<= " + std::to_string(DELTA_DK_MAX) + "), dv " +
                       std::to_string(s.dv) + " (<= " + std::to_string(DELTA_DV_MAX) + "), kernel " + std::to_string(s.kernel) +
                       " (<= " + std::to_string(DELTA_KERNEL_MAX) + ")");
}
}  // namespace

void delta_conv(Cmd& cmd, Vec qkv, Vec ba, Vec conv_state, const DeltaParams& w, const DeltaShape& s, float q_scale,
                float l2_eps) {
    check_delta(s, "delta_conv");
    if (qkv.buf != ba.buf) throw GpuError("delta_conv: qkv and b, a must share a buffer");
    DeltaConvPush p{s.n_k, s.n_v, s.dk, s.dv, s.kernel, qkv.off, ba.off, conv_state.off, w.conv_w, w.dt_bias, w.ssm_a,
                    q_scale, l2_eps};
    const uint32_t groups = 2 * s.n_k + (s.n_v * s.dv + DELTA_THREADS - 1) / DELTA_THREADS + 1;
    cmd.dispatch("delta_conv", {qkv.buf, conv_state.buf, w.buf}, p, {groups * DELTA_THREADS, 1, 1});
}

void delta_step(Cmd& cmd, Vec qkv, Vec z, Vec ba, Vec S, const DeltaParams& w, Vec o, const DeltaShape& s, float eps) {
    check_delta(s, "delta_step");
    if (qkv.buf != z.buf || qkv.buf != ba.buf) throw GpuError("delta_step: qkv, z and beta, decay must share a buffer");
    DeltaStepPush p{s.n_k, s.n_v, s.dk, s.dv, s.tiled ? 1u : 0u, qkv.off, z.off, ba.off, S.off, w.ssm_norm, o.off, eps};
    const uint32_t col_groups = (s.dv + DELTA_STEP_THREADS / DELTA_KSPLIT - 1) / (DELTA_STEP_THREADS / DELTA_KSPLIT);
    cmd.dispatch("delta_step", {qkv.buf, S.buf, o.buf}, p, {s.n_v * DELTA_STEP_THREADS, col_groups, 1});
    cmd.dispatch("delta_norm", {qkv.buf, w.buf, o.buf}, p, {s.n_v * DELTA_STEP_THREADS, 1, 1});
}

void delta_batch(Cmd& cmd, Vec cols, const DeltaCols& at, uint32_t n_tokens, Vec conv_state, uint32_t s_off,
                 const DeltaParams& w, Vec o, uint32_t o_stride, const DeltaShape& s, float q_scale, float l2_eps, float eps) {
    check_delta(s, "delta_batch");
    const uint32_t c0 = cols.off;
    DeltaBatchPush p{s.n_k, s.n_v, s.dk, s.dv, s.kernel, s.tiled ? 1u : 0u, n_tokens, at.stride, c0, c0 + at.ba,
                     c0 + at.cqkv, c0 + at.cba, c0 + at.z, conv_state.off, s_off, w.conv_w, w.dt_bias, w.ssm_a,
                     w.ssm_norm, o.off, o_stride, q_scale, l2_eps, eps};
    const uint32_t conv_dim = 2 * s.n_k * s.dk + s.n_v * s.dv;
    const uint32_t groups = 2 * s.n_k + (s.n_v * s.dv + DELTA_THREADS - 1) / DELTA_THREADS + 1;
    cmd.dispatch("delta_conv_b", {cols.buf, conv_state.buf, w.buf}, p, {groups * DELTA_THREADS, n_tokens, 1});
    cmd.dispatch("delta_conv_save", {cols.buf, conv_state.buf}, p, {conv_dim, 1, 1});  // after every token's reads
    const uint32_t col_groups = (s.dv + DELTA_STEP_THREADS / DELTA_KSPLIT - 1) / (DELTA_STEP_THREADS / DELTA_KSPLIT);
    cmd.independent();  // the scan reads the conv's outputs, not the saved inputs
    cmd.dispatch("delta_scan", {cols.buf, conv_state.buf, o.buf}, p, {s.n_v * DELTA_STEP_THREADS, col_groups, 1});
    cmd.dispatch("delta_norm_b", {cols.buf, w.buf, o.buf}, p, {s.n_v * DELTA_STEP_THREADS, n_tokens, 1});
}

void sigmoid_gate(Cmd& cmd, Vec a, Vec g, Vec y, uint32_t n, bool scalar_gate, bool accumulate, const Rows& rows) {
    SigmoidGatePush p{n, a.off, g.off, y.off, (scalar_gate ? SG_SCALAR : 0u) | (accumulate ? SG_ACCUMULATE : 0u),
                      rows.a_stride, rows.g_stride, rows.y_stride};
    cmd.dispatch("sigmoid_gate", {a.buf, g.buf, y.buf}, p, {n, rows.n, 1});
}

// deepseek2 (MLA)

void write_step_freqs(void* mapped, uint32_t pos, uint32_t token, const double* inv_freq, uint32_t n_pairs, float mscale) {
    if (n_pairs > STEP_ROPE_MAX) throw GpuError("rope: " + std::to_string(n_pairs) + " pairs, above " + std::to_string(STEP_ROPE_MAX));
    StepHeader h{pos, pos + 1, token, 0};
    std::memcpy(mapped, &h, sizeof h);
    float* cs = reinterpret_cast<float*>(static_cast<uint8_t*>(mapped) + sizeof h);
    for (uint32_t i = 0; i < n_pairs; ++i) {
        const double theta = double(pos) * inv_freq[i];
        cs[2 * i] = float(std::cos(theta)) * mscale;
        cs[2 * i + 1] = float(std::sin(theta)) * mscale;
    }
}

void mla_rope(Cmd& cmd, Vec q, uint32_t q_head_stride, Vec kva, Vec qcat, Vec cache, Vec norm, const MlaShape& s,
              float eps, const Buffer& step, const MlaTokens& t) {
    if (s.n_rot % 2 || s.n_rot / 2 > STEP_ROPE_MAX) throw GpuError("mla_rope: bad n_rot " + std::to_string(s.n_rot));
    if (q.buf != kva.buf) throw GpuError("mla_rope: q and kva share a buffer");
    if (t.n < 1) throw GpuError("mla_rope: no tokens");
    static_assert(kStepBytes % 8 == 0);
    const uint32_t row = s.kv_lora + s.n_rot;
    MlaRopePush p{s.n_head, s.n_rot, s.kv_lora, q.off, q_head_stride, qcat.off + s.kv_lora, row, kva.off, cache.off, row,
                  norm.off, eps, t.q_stride, t.kva_stride, t.qcat_stride, uint32_t(kStepBytes / 4)};
    // Items count invocations here (mla_rope is not in Context::kernel's per-workgroup list): a workgroup
    // per head, and one for the cache row; a row of them per token.
    cmd.dispatch("mla_rope", {q.buf, qcat.buf, cache.buf, norm.buf, &step}, p, {(s.n_head + 1) * 256, t.n, 1});
}

namespace {
// Heads a workgroup of attn_mla takes: 8 (each cache row loaded once for 8 heads) where that leaves
// 8 groups or more, else fewer (a 16-head model: 8 groups of 2, not 2 of 8 whose few workgroups run
// their positions in long serial rounds: 85 us a layer at ~40 positions on the H100).
uint32_t mla_heads(uint32_t n_head) { return n_head >= 64 ? 8u : n_head >= 32 ? 4u : 2u; }
}  // namespace

uint32_t mla_splits(const MlaShape& s) {
    const uint32_t hg = mla_heads(s.n_head), groups = (s.n_head + hg - 1) / hg;
    const uint32_t need = (s.n_ctx + MLA_CHUNK_MAX - 1) / MLA_CHUNK_MAX, fill = std::min(64u, (256 + groups - 1) / groups);
    return std::max(need, fill);
}

uint64_t mla_part_floats(const MlaShape& s) { return uint64_t(s.n_head) * mla_splits(s) * (s.kv_lora + 2); }

void mla_attention(Cmd& cmd, Vec qcat, Vec cache, Vec part, Vec out, Vec counts, const MlaShape& s, float scale,
                   const Buffer& step) {
    const uint32_t row = s.kv_lora + s.n_rot, splits = mla_splits(s);
    if (row > MLA_DMAX) throw GpuError("mla_attention: latent rows of " + std::to_string(row) + " floats, above " + std::to_string(MLA_DMAX));
    if (splits > ATTN_SPLITS_MAX)
        throw GpuError("mla_attention: a context of " + std::to_string(s.n_ctx) + " needs " + std::to_string(splits) + " splits, above " +
                       std::to_string(ATTN_SPLITS_MAX) + " (context too long for the GPU attention)");
    MlaAttnPush p{s.n_head, s.kv_lora, s.n_rot, splits, qcat.off, cache.off, part.off, out.off, counts.off, scale};
    const uint32_t hg = mla_heads(s.n_head);
    cmd.dispatch(hg == 8 ? "attn_mla" : "attn_mla_h" + std::to_string(hg), {qcat.buf, cache.buf, part.buf, &step, out.buf, counts.buf},
                 p, {splits * ATTN_THREADS, (s.n_head + hg - 1) / hg, 1});  // a workgroup per (split, group)
}

void route_grouped(Cmd& cmd, Vec logits, uint32_t n_expert, uint32_t k, const Buffer& ids, uint32_t ids_off, Vec w,
                   const GroupRoute& r, uint32_t n_rows, uint32_t row_stride) {
    if (k < 1 || k > 32 || k > n_expert || n_expert > ROUTE_GROUPED_MAX || r.n_group < 1 || r.n_group > ROUTE_GROUPS_MAX ||
        n_expert % r.n_group || r.n_group_used < 1 || r.n_group_used > r.n_group)
        throw GpuError("route_grouped: k 1..32 of at most " + std::to_string(ROUTE_GROUPED_MAX) + " experts in at most " +
                       std::to_string(ROUTE_GROUPS_MAX) + " equal groups");
    GroupRoutePush p{n_expert, k, r.n_group, r.n_group_used, logits.off, ids_off, w.off, r.bias.off, r.scale,
                     (r.sigmoid ? ROUTE_SIGMOID : 0u) | (r.bias.buf ? ROUTE_BIAS : 0u) | (r.norm ? ROUTE_NORM : 0u), row_stride};
    const Buffer* bias = r.bias.buf ? r.bias.buf : &cmd.context().dummy();
    if (n_rows < 1) throw GpuError("route_grouped: no rows");
    cmd.dispatch("moe_route_grouped", {logits.buf, &ids, w.buf, bias}, p, {TOPK_THREADS, n_rows, 1});  // a workgroup a row
}

void mla_prompt_attention(Cmd& cmd, Vec qcat, uint32_t q_stride, Vec cache, Vec out, uint32_t out_stride, uint32_t n_tokens,
                          const MlaShape& s, float scale, const Buffer& steps) {
    const uint32_t row = s.kv_lora + s.n_rot;
    if (!n_tokens || !s.n_head || s.kv_lora > 512 || s.n_rot > 64 || s.kv_lora % 4 || s.n_rot % 4 ||
        (qcat.off | q_stride | cache.off) % 4)
        throw GpuError("mla_prompt_attention: kv_lora up to 512 and n_rot up to 64, multiples of 4, as are q's and the cache's "
                       "offsets and strides");
    if (cmd.context().info().subgroup_size < 8)  // the softmax sums a row's scores over 8 invocations by shuffles
        throw GpuError("mla_prompt_attention: needs subgroups of at least 8 invocations");
    // gb heads (a power of 2 dividing n_head, at most 32) x MLAP_ROWS / gb tokens a workgroup
    uint32_t gb = 1;
    while (gb < MLAP_ROWS && s.n_head % (2 * gb) == 0) gb *= 2;
    const uint32_t tt = MLAP_ROWS / gb;
    MlaPromptPush p{n_tokens, s.n_head, s.kv_lora, s.n_rot, qcat.off, q_stride, row, cache.off, out.off, out_stride,
                    uint32_t(kStepBytes / 4), gb, scale};
    const char* cm = std::getenv("SLUICE_GPU_COOPMAT");
    const bool scalar = cm && std::string(cm) == "scalar";
    const bool tensor = use_coopmat(cmd.context()) && cmd.context().info().subgroup_size == 32 && env_int("SLUICE_GPU_ATTN_CM", 1) != 0;
    const std::string name = scalar ? "attn_prompt_mla_cmh" : tensor ? "attn_prompt_mla_cm" : "attn_prompt_mla";
    cmd.dispatch(name, {qcat.buf, cache.buf, out.buf, &steps}, p, {s.n_head / gb, (n_tokens + tt - 1) / tt, 1});
}

}  // namespace sluice::gpu
