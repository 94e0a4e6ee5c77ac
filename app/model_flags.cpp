#include "app/model_flags.h"

#include "engine/error.h"

namespace sluice {

const std::set<std::string> kModelFlags = {"-t", "-c", "--batch", "--experts-per-token", "--io", "--memory", "--expert-cache",
                                           "--cache-policy", "--io-engine", "--io-depth",
                                           "--gpu", "--gpu-expert-cache", "--gpu-experts", "--gpu-memory"};
const std::set<std::string> kModelBoolFlags = {"--no-prefetch"};
const char* const kModelFlagsHelp =
    "[-t THREADS] [-c CTX] [--batch N] [--experts-per-token K] [--io auto|mmap|page-cache|direct] [--memory SIZE] "
    "[--expert-cache SIZE] [--cache-policy lfu|lru] [--io-engine auto|io_uring|pread] [--no-prefetch] " SLUICE_GPU_USAGE;

ModelOptions model_options(const Args& a) {
    ModelOptions o;
    o.n_threads = int(a.i64("-t", 0));
    o.n_ctx = a.i64("-c", 0);
    if (o.n_threads < 0) throw Error("-t must be >= 0 (0: all cores)");
    if (o.n_ctx < 0) throw Error("-c must be >= 0 (0: the model's context, at most 4096)");
    o.prefill_chunk = a.i64("--batch", o.prefill_chunk);
    if (o.prefill_chunk < 1) throw Error("--batch must be at least 1 (prompt tokens processed together), got " + a.str("--batch"));
    o.experts_per_token = a.i64("--experts-per-token", 0);
    if (a.has("--experts-per-token") && o.experts_per_token < 1)
        throw Error("--experts-per-token must be at least 1, got " + a.str("--experts-per-token"));
    const std::string io = a.str("--io", "auto");
    if (io == "auto") o.io = IoMode::Auto;
    else if (io == "mmap") o.io = IoMode::Mmap;
    else if (io == "page-cache") o.io = IoMode::PageCache;
    else if (io == "direct") o.io = IoMode::Direct;
    else throw Error("--io '" + io + "' is not a mode (expected auto, mmap, page-cache or direct)");
    o.memory_budget = a.size("--memory", 0);
    if (a.has("--memory") && o.memory_budget == 0) throw Error("--memory must be more than 0");
    o.expert_cache = a.size("--expert-cache", 0);
    if (a.has("--expert-cache") && (o.io == IoMode::PageCache || o.io == IoMode::Mmap))
        throw Error("--expert-cache sizes the cache of --io direct (got --io " + io + ")");
    const std::string pol = a.str("--cache-policy", "lfu");
    if (pol == "lru") o.cache_policy = CachePolicy::Lru;
    else if (pol == "lfu") o.cache_policy = CachePolicy::Lfu;
    else throw Error("--cache-policy '" + pol + "' is not a policy (expected lru or lfu)");
    const std::string eng = a.str("--io-engine", "auto");
    if (eng == "auto") o.io_engine = IoEngine::Auto;
    else if (eng == "io_uring" || eng == "uring") o.io_engine = IoEngine::Uring;
    else if (eng == "pread") o.io_engine = IoEngine::Pread;
    else throw Error("--io-engine '" + eng + "' is not an engine (expected auto, io_uring or pread)");
    o.io_depth = int(a.i64("--io-depth", 32));
    o.prefetch = !a.has("--no-prefetch");
    if (o.io_depth < 1 || o.io_depth > 4096) throw Error("--io-depth must be between 1 and 4096");
    apply_gpu_flags(a, o);  // --gpu auto|none|INDEX, --gpu-expert-cache, --gpu-experts, --gpu-memory
    return o;
}

}  // namespace sluice
