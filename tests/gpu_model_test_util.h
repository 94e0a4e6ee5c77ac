// Helpers of the whole-model GPU tests (test_gpu_model.cpp, test_gpu_qwen35.cpp): options, a file's
// logits, the routed experts' placements every fixture runs in, and the check that the GPU path's
// logits are the CPU path's in one of them.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include "engine/gguf/requantize.h"
#include "engine/model.h"
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

// A VRAM expert cache of top-k + 1 experts per layer (fewer than the fixtures' experts).
inline uint64_t small_cache(const std::string& path) {
    auto m = load_model(path, cpu_opts());
    const Hparams& h = m->hparams();
    return uint64_t(h.n_layer * (h.n_expert_used + 1) * 3 * h.n_ff_exp * h.n_embd * 2);  // F16
}

// The placements of the routed experts, forced by options.
struct Placement {
    const char* name;
    bool small_cache;  // else VRAM's room: everything resident
    GpuExperts where;
    bool discrete;       // lavapipe made to take the staging path of a discrete GPU
    const char* expect;  // in placement()
};
inline const Placement kPlacements[] = {
    {"resident", false, GpuExperts::Auto, false, "experts: resident"},
    {"resident_discrete", false, GpuExperts::Auto, true, "experts: resident"},
    {"vram_cache", true, GpuExperts::Gpu, true, "experts: VRAM cache"},
    {"vram_cache_unified", true, GpuExperts::Gpu, false, "experts: VRAM cache"},  // misses written in place
    {"cpu_experts", true, GpuExperts::Cpu, false, "experts: CPU"},
    {"auto_measured", true, GpuExperts::Auto, false, "measured"},
};

struct Bounds {
    bool check_place = true;         // placement() names the placement (a dense model has no experts)
    ModelOptions cpu = cpu_opts();   // the CPU path's options
    double max_err_cpu = 1e-5;       // max rel err against the CPU path's logits
};
// The fixture dir/name.gguf on the GPU in placement pl against the CPU path and transformers' logits
// (max rel err <= 1e-4).
inline void expect_gpu_matches_cpu(const std::string& dir, const std::string& name, const Placement& pl,
                                   const Bounds& b = {}) {
    using namespace reftest;
    const std::string path = dir + name + ".gguf";
    const auto ids = read_ids(dir + name + ".tokens.txt");
    ModelOptions g = gpu_opts();
    if (pl.small_cache) g.gpu_expert_cache = small_cache(path);
    g.gpu_experts = pl.where;
    g.gpu_emulate_discrete = pl.discrete;
    std::string where;
    const auto got = logits(path, g, ids, &where);
    const auto cpu = logits(path, b.cpu, ids);
    const auto ref = read_f32(dir + name + ".logits.f32");
    ASSERT_EQ(got.size(), cpu.size());
    const int64_t nv = int64_t(ref.size() / ids.size());
    const double err = max_rel_err(got, cpu, nv), err_ref = max_rel_err(got, ref, nv);
    std::printf("  %s %s: max rel err %.3g vs CPU, %.3g vs transformers  [%s]\n", name.c_str(), pl.name, err, err_ref,
                where.c_str());
    EXPECT_NE(where.find("GPU"), std::string::npos) << where;
    if (b.check_place) {
        EXPECT_NE(where.find(pl.expect), std::string::npos) << where;
    }
    EXPECT_LE(err, b.max_err_cpu);
    EXPECT_LE(err_ref, 1e-4);
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

}  // namespace sluice::gputest
