// Decode benchmark: prompt of P tokens once (with --prompt-runs K, K times from an empty state: the
// first run includes pipeline creation and recording), then R repetitions of N greedy tokens from the same state
// (the KV cache is truncated back to the prompt); prints one JSON object with the median tok/s.
// Same fields as bench/peer/llama_peer so scripts can put the two side by side. --gpu runs the Vulkan
// backend (placement, GPU time per token and VRAM expert-cache traffic are added to the JSON).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/model_info.h"
#include "engine/sampler.h"

using namespace sluice;
using Clock = std::chrono::steady_clock;

static long peak_rss_bytes() {
    FILE* f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (std::fgets(line, sizeof line, f))
        if (!std::strncmp(line, "VmHWM:", 6)) kb = std::atol(line + 6);
    std::fclose(f);
    return kb * 1024;
}

int main(int argc, char** argv) {
    std::string path, gpu = "none", gpu_experts = "auto";
    uint64_t gpu_cache = 0;
    int threads = 2, P = 32, N = 32, R = 5, PR = 1, chunk = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> const char* {
            if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
            return argv[++i];
        };
        if (a == "-m") path = next();
        else if (a == "-t") threads = std::atoi(next());
        else if (a == "-p") P = std::atoi(next());
        else if (a == "-n") N = std::atoi(next());
        else if (a == "-r") R = std::atoi(next());
        else if (a == "--prompt-runs") PR = std::atoi(next());
        else if (a == "--gpu") gpu = next();
        else if (a == "--gpu-expert-cache") gpu_cache = uint64_t(std::atof(next()) * (1u << 20));  // MiB
        else if (a == "--gpu-experts") gpu_experts = next();
        else if (a == "--batch") chunk = std::atoi(next());
        else if (a == "--json") {}
        else {
            std::fprintf(stderr, "usage: bench_decode -m MODEL.gguf [-t 2] [-p 32] [-n 32] [-r 5] [--prompt-runs 1] [--gpu none|auto|INDEX]\n"
                                 "                    [--gpu-expert-cache MIB] [--gpu-experts auto|gpu|cpu|split] [--batch N] [--json]\n");
            return 2;
        }
    }
    if (path.empty() || P < 1 || N < 1 || R < 1 || PR < 1) { std::fprintf(stderr, "bench_decode: -m MODEL.gguf required\n"); return 2; }
    try {
        ModelOptions opt;
        opt.n_threads = threads;
        opt.n_ctx = P + N + 1;
        opt.gpu = gpu;
        opt.gpu_expert_cache = gpu_cache;
        if (chunk > 0) opt.prefill_chunk = chunk;  // prompt tokens per chunk (sluice --batch)
        opt.gpu_experts = gpu_experts == "gpu"     ? GpuExperts::Gpu
                          : gpu_experts == "cpu"   ? GpuExperts::Cpu
                          : gpu_experts == "split" ? GpuExperts::Split
                                                   : GpuExperts::Auto;
        const auto t_load = Clock::now();
        auto m = load_model(path, opt);
        const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
        const int64_t nv = m->hparams().n_vocab;
        std::vector<int32_t> prompt;
        for (int i = 0; i < P; ++i) prompt.push_back(int32_t((i * 7919 + 13) % nv));

        const std::vector<uint8_t> empty = PR > 1 ? m->save_state() : std::vector<uint8_t>{};
        std::vector<double> prompt_runs;
        std::vector<float> last;
        for (int r = 0; r < PR; ++r) {
            if (r) m->load_state(empty);
            const auto t0 = Clock::now();
            last = m->forward_tokens(prompt, false);
            prompt_runs.push_back(P / std::chrono::duration<double>(Clock::now() - t0).count());
        }
        const int32_t first = argmax(last);
        // Each run restarts from the prompt's state: a snapshot, since recurrent models (qwen35moe)
        // cannot truncate back.
        const std::vector<uint8_t> after_prompt = m->save_state();

        std::vector<double> runs;
        const GpuCounters before = m->gpu_counters();
        double gpu_s = 0, forward_s = 0;  // GPU time; wall time inside forward() (the rest: argmax here)
        // SLUICE_BENCH_BLOCK_MAX=0: argmax reads every logit, not the GPU's block maxima first (what they save)
        const char* bm_env = std::getenv("SLUICE_BENCH_BLOCK_MAX");
        const bool use_bm = !(bm_env && std::string(bm_env) == "0");
        for (int r = 0; r < R; ++r) {
            m->load_state(after_prompt);
            int32_t tok = first;
            const auto t1 = Clock::now();
            for (int i = 0; i < N; ++i) {
                const auto tf = Clock::now();
                const float* l = m->forward(tok);
                forward_s += std::chrono::duration<double>(Clock::now() - tf).count();
                tok = argmax(std::span<const float>(l, size_t(nv)), use_bm ? m->logits_block_max() : std::span<const float>());
                gpu_s += m->gpu_counters().gpu_s_last_token;
            }
            runs.push_back(N / std::chrono::duration<double>(Clock::now() - t1).count());
        }
        std::vector<double> sorted = runs;
        std::sort(sorted.begin(), sorted.end());
        const double median = sorted[sorted.size() / 2];
        auto f = gguf::File::open(path);
        const ModelInfo mi = model_info(*f);
        std::printf("{\"engine\":\"sluice\",\"model\":\"%s\",\"model_bytes\":%llu,\"isa\":\"%s\",\"threads\":%d,"
                    "\"load_s\":%.3f,\"prompt_tokens\":%d,\"prompt_tok_s\":%.3f,\"decode_tokens\":%d,"
                    "\"decode_tok_s_median\":%.3f,\"decode_tok_s_runs\":[",
                    path.c_str(), (unsigned long long)f->file_size(), isa_name(active_isa()), threads, load_s, P,
                    prompt_runs[0], N, median);
        for (size_t i = 0; i < runs.size(); ++i) std::printf("%s%.3f", i ? "," : "", runs[i]);
        const GpuCounters after = m->gpu_counters();
        std::string where = m->placement();
        for (char& c : where)
            if (c == '"' || c == '\\') c = '\'';
        std::printf("],\"prompt_tok_s_runs\":[");
        for (size_t i = 0; i < prompt_runs.size(); ++i) std::printf("%s%.3f", i ? "," : "", prompt_runs[i]);
        std::printf("],\"bytes_per_token\":%llu,\"dense_bytes_per_token\":%llu,\"expert_bytes_per_token\":%llu,"
                    "\"expert_slab_bytes\":%llu,\"rss_peak_bytes\":%ld,\"placement\":\"%s\",\"gpu_ms_per_token\":%.4f,\"forward_ms_per_token\":%.4f,\"vram_bytes\":%llu,"
                    "\"vram_cache_hits\":%llu,\"vram_cache_misses\":%llu,\"batch_passes_gpu\":%llu,\"batch_passes_cpu\":%llu,"
                    "\"upload_bytes_direct\":%llu,\"upload_bytes_staged\":%llu}\n",
                    (unsigned long long)(mi.dense_bytes_per_token + mi.expert_bytes_per_token),
                    (unsigned long long)mi.dense_bytes_per_token, (unsigned long long)mi.expert_bytes_per_token,
                    (unsigned long long)mi.expert_slab_bytes, peak_rss_bytes(), where.c_str(), gpu_s * 1e3 / (double(N) * R), forward_s * 1e3 / (double(N) * R), (unsigned long long)after.vram_bytes,
                    (unsigned long long)(after.vram_cache_hits - before.vram_cache_hits),
                    (unsigned long long)(after.vram_cache_misses - before.vram_cache_misses),
                    (unsigned long long)after.batch_passes_gpu, (unsigned long long)after.batch_passes_cpu,  // all prompt runs'
                    (unsigned long long)after.upload_bytes_direct, (unsigned long long)after.upload_bytes_staged);  // all runs
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_decode: %s\n", e.what());
        return 1;
    }
    return 0;
}
