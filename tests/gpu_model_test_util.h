// Helpers of the whole-model GPU tests (test_gpu_model.cpp, test_gpu_qwen35.cpp, test_gpu_deepseek2.cpp):
// options, a file's logits, the routed experts' placements every fixture runs in, the check that the
// GPU path's logits are the CPU path's in one of them, snapshots moving between the paths, and
// quantized copies.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/gguf/requantize.h"
#include "engine/model.h"
#include "engine/stats.h"
#include "engine/stream/context.h"
#include "tests/gpu_test_util.h"
#include "tests/ref_test_util.h"

namespace sluice::gputest {

inline ModelOptions cpu_opts() {
    ModelOptions o;
    o.n_ctx = 128;
    return o;
}
inline ModelOptions gpu_opts() {
    ModelOptions o = cpu_opts();
    o.gpu = std::to_string(test_device_index());
    return o;
}

// Logits of every position; *placement: what the model says after running them.
inline std::vector<float> logits(const std::string& path, const ModelOptions& o, const std::vector<int32_t>& ids,
                                 std::string* placement = nullptr) {
    auto m = load_model(path, o);
    auto l = m->forward_tokens(ids, true);
    if (placement) *placement = m->placement();
    return l;
}

// A VRAM expert cache of top-k + 1 routed experts per MoE layer (F16), fewer than the layer has.
inline uint64_t small_cache(const std::string& path) {
    auto m = load_model(path, cpu_opts());
    const Hparams& h = m->hparams();
    int64_t n_moe = 0;
    const auto file = gguf::File::open(path);
    for (const gguf::TensorInfo& t : file->tensors()) n_moe += t.name.find("ffn_down_exps") != std::string::npos;
    return uint64_t(n_moe * std::min(h.n_expert_used + 1, h.n_expert - 1) * 3 * h.n_ff_exp * h.n_embd * 2);
}

// The placements of the routed experts, forced by options.
struct Placement {
    const char* name;
    bool small_cache;  // else VRAM's room: everything resident
    GpuExperts where;
    bool discrete;            // lavapipe made to take the staging path of a discrete GPU
    const char* expect;       // in placement()
    bool host_route = false;  // SLUICE_GPU_ROUTE=host: resident experts routed on the host (deepseek2)
};
inline const Placement kPlacements[] = {
    {"resident", false, GpuExperts::Auto, false, "experts: resident"},
    {"resident_discrete", false, GpuExperts::Auto, true, "experts: resident"},
    {"vram_cache", true, GpuExperts::Gpu, true, "experts: VRAM cache"},
    {"vram_cache_unified", true, GpuExperts::Gpu, false, "experts: VRAM cache"},  // misses written in place
    {"cpu_experts", true, GpuExperts::Cpu, false, "experts: CPU"},
    {"split", true, GpuExperts::Split, true, "experts: VRAM cache + CPU"},  // cached on the GPU, the rest on the CPU
    {"split_unified", true, GpuExperts::Split, false, "experts: VRAM cache + CPU"},
    {"auto_measured", true, GpuExperts::Auto, false, "measured"},
};

// fixture (dir + name + .gguf / .tokens.txt / .logits.f32) on the GPU in placement pl and on the CPU:
// prints and returns the max relative errors of the GPU's logits against both (vs CPU with cpu_o, vs
// reference).
struct PlacementErrors {
    double cpu, ref;
    std::string where;
};
inline PlacementErrors run_placement(const std::string& dir, const std::string& fixture, const Placement& pl,
                                     const ModelOptions& cpu_o = cpu_opts()) {
    using namespace reftest;
    const std::string path = dir + fixture + ".gguf";
    const auto ids = read_ids(dir + fixture + ".tokens.txt");
    ModelOptions g = gpu_opts();
    if (pl.small_cache) g.gpu_expert_cache = small_cache(path);
    g.gpu_experts = pl.where;
    g.gpu_emulate_discrete = pl.discrete;
    PlacementErrors e;
    if (pl.host_route) setenv("SLUICE_GPU_ROUTE", "host", 1);  // read when the model loads
    const auto got = logits(path, g, ids, &e.where);
    unsetenv("SLUICE_GPU_ROUTE");
    const auto cpu = logits(path, cpu_o, ids);
    const auto ref = read_f32(dir + fixture + ".logits.f32");
    EXPECT_EQ(got.size(), cpu.size());
    const int64_t nv = int64_t(ref.size() / ids.size());
    e.cpu = max_rel_err(got, cpu, nv);
    e.ref = max_rel_err(got, ref, nv);
    std::printf("  %s %s: max rel err %.3g vs CPU, %.3g vs transformers  [%s]\n", fixture.c_str(), pl.name, e.cpu, e.ref,
                e.where.c_str());
    EXPECT_NE(e.where.find("GPU"), std::string::npos) << e.where;
    return e;
}

struct Bounds {
    bool check_place = true;         // placement() names the placement (a dense model has no experts)
    ModelOptions cpu = cpu_opts();   // the CPU path's options
    double max_err_cpu = 1e-5;       // max rel err against the CPU path's logits
};
// run_placement() within bounds: max rel err <= b.max_err_cpu against the CPU path, <= 1e-4 against
// transformers' logits.
inline void expect_gpu_matches_cpu(const std::string& dir, const std::string& name, const Placement& pl,
                                   const Bounds& b = {}) {
    const PlacementErrors e = run_placement(dir, name, pl, b.cpu);
    if (b.check_place) {
        EXPECT_NE(e.where.find(pl.expect), std::string::npos) << e.where;
    }
    EXPECT_LE(e.cpu, b.max_err_cpu);
    EXPECT_LE(e.ref, 1e-4);
}

// Logits of dir/name.gguf requantized to `type` (a temporary copy), on the GPU and the CPU (cpu_o),
// beside transformers' (of the float model).
struct QuantLogits {
    std::vector<float> gpu, cpu, ref;
    int64_t n_vocab;
    std::string placement;  // the GPU model's
};
inline QuantLogits quantized_logits(const std::string& dir, const std::string& name, GgmlType type,
                                    const ModelOptions& cpu_o = cpu_opts()) {
    using namespace reftest;
    const std::string q = tmp_dir() + "gpu_" + std::to_string(getpid()) + "_" + name + "." + type_name(type) + ".gguf";
    requantize_file(dir + name + ".gguf", q, type);
    const auto ids = read_ids(dir + name + ".tokens.txt");
    QuantLogits r;
    r.ref = read_f32(dir + name + ".logits.f32");
    r.n_vocab = int64_t(r.ref.size() / ids.size());
    r.gpu = logits(q, gpu_opts(), ids, &r.placement);
    r.cpu = logits(q, cpu_o, ids);
    std::remove(q.c_str());
    return r;
}

// Batched vs token by token where a prompt batch's attention runs in float16 on tensor cores (devices
// with cooperative matrices: the H100 measured 2.6e-4 .. 9.1e-4 on the deepseek2 fixtures), else (float
// attention, lavapipe in CI) summation order only.
inline double batch_attention_err(double float_err = 1e-5) { return gpu::use_coopmat(ctx()) ? 2e-3 : float_err; }

// The state blob is the CPU path's: a conversation of fixture `path` (ids) started on the CPU (with
// cpu options `co`) continues on the GPU and back. Returns both models (the GPU's at 40 tokens, the
// CPU's at the end) and the CPU's logits of every position, for the architecture's own truncate checks.
struct SnapshotModels {
    std::unique_ptr<Model> cpu, gpu;
    std::vector<float> full;
    size_t nv = 0;
};
inline SnapshotModels expect_snapshots_move_both_ways(const std::string& path, const std::vector<int32_t>& ids,
                                                      const ModelOptions& co) {
    using reftest::max_rel_err;
    const std::vector<int32_t> first(ids.begin(), ids.begin() + 40), rest(ids.begin() + 40, ids.end());
    SnapshotModels m{load_model(path, co), load_model(path, gpu_opts()), {}, 0};
    EXPECT_NE(m.gpu->placement().find("GPU"), std::string::npos) << m.gpu->placement();
    m.full = m.cpu->forward_tokens(ids, true);
    m.nv = size_t(m.cpu->hparams().n_vocab);
    const std::vector<float> want(m.full.end() - std::ptrdiff_t(rest.size() * m.nv), m.full.end());

    m.cpu->reset();
    m.cpu->forward_tokens(first, false);
    const auto cpu_blob = m.cpu->save_state();
    m.gpu->load_state(cpu_blob);
    EXPECT_EQ(m.gpu->n_past(), 40);
    EXPECT_EQ(m.gpu->save_state().size(), cpu_blob.size());
    EXPECT_LE(max_rel_err(m.gpu->forward_tokens(rest, true), want, int64_t(m.nv)), 1e-5);

    m.gpu->reset();  // recurrent states start from zero again
    m.gpu->forward_tokens(first, false);
    const auto gpu_blob = m.gpu->save_state();
    EXPECT_EQ(gpu_blob.size(), cpu_blob.size());
    m.cpu->load_state(gpu_blob);  // the GPU's prompt ran in batches
    EXPECT_LE(max_rel_err(m.cpu->forward_tokens(rest, true), want, int64_t(m.nv)), batch_attention_err());
    return m;
}

// expect_snapshots_move_both_ways(), and truncate() recomputes the positions after n, as on the CPU.
inline void expect_snapshots_move(const std::string& path, const std::vector<int32_t>& ids) {
    SnapshotModels m = expect_snapshots_move_both_ways(path, ids, cpu_opts());
    m.gpu->truncate(30);
    const std::vector<int32_t> again(ids.begin() + 30, ids.end());
    const std::vector<float> want2(m.full.end() - std::ptrdiff_t(again.size() * m.nv), m.full.end());
    EXPECT_LE(reftest::max_rel_err(m.gpu->forward_tokens(again, true), want2, int64_t(m.nv)), batch_attention_err());
}

// Quantized files: fixture requantized to `type`, the GPU's and the CPU's agreement with the float
// reference (printed).
struct QuantCase {
    const char* fixture;
    GgmlType type;
    double min_top1, max_kl;
};
struct QuantAgreement {
    reftest::Agreement gpu, cpu;
    std::string where;
};
inline QuantAgreement run_quantized(const std::string& dir, const QuantCase& c) {
    using namespace reftest;
    const std::string q = tmp_dir() + "gpu_" + std::to_string(getpid()) + "_" + c.fixture + "." + type_name(c.type) + ".gguf";
    requantize_file(dir + c.fixture + ".gguf", q, c.type);
    const auto ids = read_ids(dir + c.fixture + ".tokens.txt");
    const auto ref = read_f32(dir + c.fixture + ".logits.f32");
    const int64_t nv = int64_t(ref.size() / ids.size());
    QuantAgreement a;
    a.gpu = agreement(logits(q, gpu_opts(), ids, &a.where), ref, nv);
    a.cpu = agreement(logits(q, cpu_opts(), ids), ref, nv);
    std::remove(q.c_str());
    std::printf("  %s %s: GPU top-1 %.3f KL %.3g; CPU top-1 %.3f KL %.3g  [%s]\n", c.fixture, type_name(c.type), a.gpu.top1,
                a.gpu.kl, a.cpu.top1, a.cpu.kl, a.where.c_str());
    EXPECT_NE(a.where.find("GPU"), std::string::npos) << a.where;
    EXPECT_GE(a.gpu.top1, c.min_top1);
    EXPECT_LE(a.gpu.kl, c.max_kl);
    return a;
}

// Tokens a prompt of n runs in batches (GpuModel::forward_batch): `big` (SLUICE_GPU_PROMPT_BATCH,
// default 512) at a time while that many remain, then halves of it down to 8; fewer than 8 left run
// token by token.
inline uint64_t batched_tokens(size_t n, size_t big = 512) {
    return n / big * big + n % big / 8 * 8;  // the halves take every multiple of 8 below big
}

// A prompt on the GPU, then `rest` with every position's logits: the prompt's last logits and rest's,
// with prompt batches (batch) or token by token (SLUICE_GPU_BATCH=0). batched: the tokens the prompt
// must have run in batches; where: the placement.
inline std::vector<float> prompt_then_rest(const std::string& path, std::span<const int32_t> prompt, std::span<const int32_t> rest,
                                    bool batch, uint64_t batched, std::string* where = nullptr, ModelOptions o = gpu_opts(),
                                    StatsSnapshot* prompt_stats = nullptr) {
    if (!batch) setenv("SLUICE_GPU_BATCH", "0", 1);
    o.n_ctx = std::max<int64_t>(o.n_ctx, int64_t(prompt.size() + rest.size()));
    auto m = load_model(path, o);
    if (where) *where = m->placement();
    const GpuCounters loaded = m->gpu_counters();
    std::vector<float> l = m->forward_tokens(prompt, false);
    const GpuCounters c = m->gpu_counters();
    EXPECT_EQ(c.batched_tokens, batch ? batched : 0u) << path;
    // the batches' buffers (allocated now) within what the load set aside for them
    EXPECT_LE(c.vram_bytes - loaded.vram_bytes, loaded.vram_batch_bytes) << path;
    if (batch && batched) EXPECT_GT(c.vram_bytes, loaded.vram_bytes) << path;
    if (batch) std::printf("  prompt batches' VRAM %llu of %llu set aside\n", (unsigned long long)(c.vram_bytes - loaded.vram_bytes),
                           (unsigned long long)loaded.vram_batch_bytes);
    if (prompt_stats) *prompt_stats = m->stats()->read();
    const std::vector<float> r = m->forward_tokens(rest, true);
    l.insert(l.end(), r.begin(), r.end());
    unsetenv("SLUICE_GPU_BATCH");
    return l;
}

// A model `sluice gen-model GEN_ARGS --type TYPE` writes (vocabulary 300): a 100-token prompt in batches
// of 64 (SLUICE_GPU_PROMPT_BATCH; then 32 and token by token), then 8 more tokens, against token by
// token (SLUICE_GPU_BATCH=0) and the CPU path (options cpu_o); q8 false: float activations
// (SLUICE_GPU_Q8=0); cpu_experts: the experts on the CPU. Prints and returns the batched run's max rel
// err against token by token, and both runs' top-1 agreement with the CPU.
struct GeneratedBatch {
    const char* type;
    bool q8, cpu_experts;
};
struct GeneratedBatchResult {
    double err = 0, top1 = 0, top1_single = 0;
};
inline GeneratedBatchResult run_generated_batches(const std::string& gen_args, const GeneratedBatch& t, ModelOptions cpu_o) {
    using namespace reftest;
    GeneratedBatchResult r;
    const std::string f = tmp_dir() + "gpu_gen_batch_" + std::to_string(getpid()) + ".gguf";
    const std::string cmd = std::string(SLUICE_BIN) + " gen-model " + gen_args + " --vocab 300 --type " + t.type + " --out " + f +
                            " >/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < 108; ++i) ids.push_back((i * 53 + 7) % 300);
    const std::span<const int32_t> prompt(ids.data(), 100), rest(ids.data() + 100, 8);
    ModelOptions o = gpu_opts();
    if (t.cpu_experts) {
        o.gpu_experts = GpuExperts::Cpu;
        o.gpu_expert_cache = 1;  // too small for any expert
    }
    if (!t.q8) setenv("SLUICE_GPU_Q8", "0", 1);
    setenv("SLUICE_GPU_PROMPT_BATCH", "64", 1);
    std::string where;
    const auto batched = prompt_then_rest(f, prompt, rest, true, batched_tokens(100, 64), &where, o);
    unsetenv("SLUICE_GPU_PROMPT_BATCH");
    EXPECT_NE(where.find(t.cpu_experts ? "experts: CPU" : "experts: resident"), std::string::npos) << where;
    const auto single = prompt_then_rest(f, prompt, rest, false, 0, nullptr, o);
    unsetenv("SLUICE_GPU_Q8");
    std::vector<float> cpu;
    {
        cpu_o.n_ctx = int64_t(ids.size());
        auto m = load_model(f, cpu_o);
        cpu = m->forward_tokens(prompt, false);
        const auto rr = m->forward_tokens(rest, true);
        cpu.insert(cpu.end(), rr.begin(), rr.end());
    }
    std::remove(f.c_str());
    r.err = max_rel_err(batched, single, 300);
    r.top1 = agreement(batched, cpu, 300).top1;
    r.top1_single = agreement(single, cpu, 300).top1;
    std::printf("  %s%s%s: batched vs token by token max rel err %.3g; top-1 vs CPU %.3f (token by token %.3f)\n", t.type,
                t.q8 ? "" : " (float activations)", t.cpu_experts ? " (CPU experts)" : "", r.err, r.top1, r.top1_single);
    return r;
}

// Experts in the VRAM cache or on the CPU: a prompt's batches run their routed experts on the CPU,
// grouped by expert (each read once per batch), between GPU segments that end at each router. Against
// token by token (F16: the CPU's experts and the GPU's differ by summation order only), and with the
// file streamed (--io direct, a host cache of K + 1 experts) reading fewer expert bytes than token by
// token, batched within max_err of token by token.
inline void expect_host_expert_batches(const std::string& dir, const std::string& fixture, size_t n_prompt,
                                       double max_err = 1e-5) {
    using namespace reftest;
    for (const Placement& pl : kPlacements) {
        if (!pl.small_cache || (!pl.discrete && pl.where == GpuExperts::Gpu)) continue;  // one VRAM cache case
        const std::string path = dir + fixture + ".gguf";
        SCOPED_TRACE(fixture + " " + pl.name);
        const auto ids = read_ids(dir + fixture + ".tokens.txt");
        ASSERT_GT(ids.size(), n_prompt);
        const std::span<const int32_t> prompt(ids.data(), n_prompt), rest(ids.data() + n_prompt, ids.size() - n_prompt);
        ModelOptions o = gpu_opts();
        o.gpu_expert_cache = small_cache(path);
        o.gpu_experts = pl.where;
        o.gpu_emulate_discrete = pl.discrete;
        o.io = IoMode::Direct;  // a host cache of K + 1 experts: token by token reads most routings again
        o.prefetch = false;
        {
            ModelOptions p = cpu_opts();
            p.io = IoMode::Direct;
            auto probe = load_model(path, p);
            o.expert_cache = uint64_t(probe->hparams().n_expert_used + 1) * probe->memory().slot_bytes;
        }
        std::string where;
        StatsSnapshot sb, ss;
        const auto batched = prompt_then_rest(path, prompt, rest, true, batched_tokens(n_prompt), &where, o, &sb);
        EXPECT_NE(where.find(pl.where == GpuExperts::Auto ? "measuring" : pl.expect), std::string::npos) << where;
        const auto single = prompt_then_rest(path, prompt, rest, false, 0, &where, o, &ss);
        const int64_t nv = int64_t(batched.size() / (1 + rest.size()));
        const double err = max_rel_err(batched, single, nv);
        std::printf("  %s %s: max rel err %.3g (batched vs token by token); prompt's expert bytes read %llu vs %llu\n",
                    fixture.c_str(), pl.name, err, (unsigned long long)sb.bytes_read_total,
                    (unsigned long long)ss.bytes_read_total);
        EXPECT_LE(err, max_err);
        EXPECT_GT(sb.bytes_read_total, 0u);
        // Split (and auto, which measures split on some tokens): token by token, the experts the VRAM
        // cache holds are not read from the file at all, so the bytes compare only for gpu and cpu.
        if (pl.where == GpuExperts::Gpu || pl.where == GpuExperts::Cpu) EXPECT_LT(sb.bytes_read_total, ss.bytes_read_total);
    }
}

// A 2-layer MoE of 16 Q4_K experts of 256 (4 used), vocabulary 300, written by `sluice gen-model`
// into the test directory ("" if that failed), and n tokens for it.
inline std::string small_moe(const std::string& arch, const std::string& prefix) {
    const std::string f = reftest::tmp_dir() + prefix + std::to_string(getpid()) + ".gguf";
    const std::string cmd = std::string(SLUICE_BIN) + " gen-model --arch " + arch + " --layers 2 --embd 256 --heads 4 " +
                            "--kv-heads 2 --head-dim 64 --experts 16 --used 4 --ff-exp 256 --vocab 300 --out-std 0.06 " +
                            "--type q4_K --out " + f + " >/dev/null";
    return std::system(cmd.c_str()) == 0 ? f : "";
}
inline std::vector<int32_t> small_moe_ids(int32_t n) {
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < n; ++i) ids.push_back((i * 53 + 7) % 300);
    return ids;
}

}  // namespace sluice::gputest
