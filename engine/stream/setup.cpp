// Memory budget and I/O mode at load time: what stays resident, what streams, and whether it fits.
#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/model_info.h"
#include "engine/moe.h"
#include "engine/stats_recorder.h"
#include "engine/stream/context.h"
#include "engine/stream/memory.h"
#include "engine/stream/streaming.h"

namespace sluice {

namespace {

// The streaming mode Auto picks for a model larger than memory: measured on this project's machine
// (bench/B30.md), 4 GiB cap, Qwen3-30B-A3B shape.
constexpr IoMode kDefaultStreaming = IoMode::Direct;
constexpr uint64_t kMiB = uint64_t(1) << 20;
// Left out of the budget for what is not counted in advance: allocator slack, stacks, page tables,
// the code itself.
constexpr uint64_t kSlack = 96 * kMiB;

uint64_t dense_bytes_of(const gguf::File& f) {
    uint64_t n = 0;
    for (const gguf::TensorInfo& t : f.tensors())
        if (!is_routed_expert(t)) n += t.nbytes;
    return n;
}

bool has_experts(const gguf::File& f) {
    for (const gguf::TensorInfo& t : f.tensors())
        if (is_routed_expert(t)) return true;
    return false;
}

// The memory a model may use: the tightest of --memory, the cgroup limit and RAM.
uint64_t memory_limit(uint64_t budget, std::string* why) {
    uint64_t lim = ram_bytes();
    *why = "RAM " + format_bytes(lim);
    if (uint64_t cg = cgroup_memory_limit(); cg && (!lim || cg < lim)) {
        lim = cg;
        *why = "cgroup limit " + format_bytes(cg);
    }
    if (budget && (!lim || budget < lim)) {
        lim = budget;
        *why = "--memory " + format_bytes(budget);
    }
    return lim;
}

}  // namespace

std::string describe(const MemoryReport& m) {
    std::string s = "io: " + std::string(io_mode_name(m.mode));
    if (m.mode != IoMode::Mmap) s += " (" + m.engine + ")";
    if (!m.note.empty()) s += "; " + m.note;
    s += "\nresident: ";
    if (m.mode == IoMode::Mmap) {
        s += "the file is mapped (" + format_bytes(m.file_bytes) + "; pages become resident as they are used)";
    } else {
        s += "dense weights " + format_bytes(m.dense_bytes) + ", expert ";
        s += m.mode == IoMode::Direct ? "cache " : "buffers ";
        s += format_bytes(m.expert_cache_bytes) + " (" + std::to_string(m.cache_slots) + " x " +
             format_bytes(m.slot_bytes) + (m.mode == IoMode::Direct ? ", " + m.policy : "") + ")";
        s += ", other " + format_bytes(m.other_bytes) + " (KV cache, buffers)";
    }
    s += "\nRSS measured: " + format_bytes(m.rss_bytes);
    if (m.budget) s += " of --memory " + format_bytes(m.budget);
    if (m.mode == IoMode::PageCache) s += " (the page cache is the kernel's, outside RSS)";
    return s;
}

std::unique_ptr<gguf::File> open_model_file(const std::string& path, ModelOptions& opt) {
    auto ctx = std::make_shared<StreamContext>();
    ctx->rec = std::make_shared<StatsRecorder>(opt.stats ? opt.stats : std::make_shared<StatsBoard>());
    MemoryReport& mem = ctx->mem;
    mem.budget = opt.memory_budget;

    // The header alone (unmapped), to size things before deciding.
    auto f = gguf::File::open(path, {.map = false});
    mem.file_bytes = f->file_size();
    const uint64_t dense = dense_bytes_of(*f);
    const bool moe = has_experts(*f);
    if (opt.memory_budget && dense + kSlack > opt.memory_budget)
        throw Error("--memory " + format_bytes(opt.memory_budget) + " is too small for '" + path +
                    "': its dense weights (attention, embeddings, output, router, norms" +
                    std::string(moe ? "" : "; the model has no routed experts to stream") + ") take " +
                    format_bytes(dense) + " and must stay resident; give at least " +
                    format_bytes(dense + kSlack + (moe ? 64 * kMiB : 0)) + " plus the KV cache");
    if (opt.expert_cache && opt.io == IoMode::PageCache)
        throw Error("--expert-cache sizes sluice's own cache of --io direct; --io page-cache leaves caching to the OS");

    IoMode mode = opt.io;
    if (!moe && (mode == IoMode::Direct || mode == IoMode::PageCache)) {
        mem.note = "no routed experts to stream";
        mode = IoMode::Mmap;
    }
    if (mode == IoMode::Auto) {
        std::string why;
        const uint64_t lim = memory_limit(opt.memory_budget, &why);
        if (!moe || !lim || mem.file_bytes + mem.file_bytes / 10 + 64 * kMiB <= lim) {
            mode = IoMode::Mmap;
            mem.note = "auto: the file fits in memory (" + why + ")";
        } else {
            mode = kDefaultStreaming;
            mem.note = "auto: the file (" + format_bytes(mem.file_bytes) + ") is larger than memory (" + why + ")";
        }
    }
    if (mode == IoMode::Mmap && opt.memory_budget && mem.file_bytes > opt.memory_budget)
        throw Error("--io mmap maps all of '" + path + "' (" + format_bytes(mem.file_bytes) +
                    "), which can become resident, more than --memory " + format_bytes(opt.memory_budget) +
                    "; use --io direct or --io page-cache to stay within the budget");
    ctx->mode = mode;
    mem.mode = mode;
    if (mode == IoMode::Mmap) {
        f = gguf::File::open(path);
    } else {
        mem.dense_bytes = f->load_resident([](const gguf::TensorInfo& t) { return !is_routed_expert(t); },
                                           mode == IoMode::Direct);
    }
    opt.stream = ctx;
    return f;
}

void finish_load(Model& m, const ModelOptions& opt) {
    StreamContext& ctx = *opt.stream;
    MemoryReport& mem = ctx.mem;
    StatsSnapshot& st = ctx.rec->setup();
    const Hparams& h = m.hparams();
    const int64_t k = h.n_expert > 0 ? resolve_top_k(opt, h.n_expert, h.n_expert_used) : 0;
    st.io_mode = io_mode_name(ctx.mode);
    st.memory_budget = opt.memory_budget;
    st.dense_bytes = mem.dense_bytes;
    st.experts_per_token = k;
    if (!ctx.sources.empty()) {
        const uint64_t rss = rss_bytes();
        const uint64_t slot = ctx.sources[0]->slot_bytes();
        const uint64_t min_cache = uint64_t(k) * slot * ctx.sources.size();
        uint64_t cache = opt.expert_cache;
        if (ctx.mode == IoMode::Direct && !cache) {
            // The budget: --memory, else 90% of a cgroup limit (the page cache of other files and
            // the kernel's own use count there too), else a quarter of the RAM left.
            uint64_t budget = opt.memory_budget;
            const uint64_t cg = cgroup_memory_limit(), ram = ram_bytes();
            if (!budget && cg && (!ram || cg < ram)) budget = cg / 10 * 9;
            if (budget) {
                if (rss + kSlack + min_cache > budget)
                    throw Error("--memory " + format_bytes(budget) + " is too small: after loading, " +
                                format_bytes(rss) + " is resident (dense weights " + format_bytes(mem.dense_bytes) +
                                ", KV cache and buffers), and the " + std::to_string(k) + " experts one layer uses at once need " +
                                format_bytes(min_cache) + " more; give at least " + format_bytes(rss + kSlack + min_cache) +
                                " (or a smaller -c context)");
                cache = budget - rss - kSlack;
            } else {
                cache = ram > rss ? (ram - rss) / 4 : 0;
            }
            // Never more than every expert of the model.
            uint64_t all = 0;
            for (StreamingExperts* s : ctx.sources) all += s->max_cache_bytes();
            cache = std::max(min_cache, std::min(cache, all));
        }
        if (ctx.mode == IoMode::Direct && opt.expert_cache && opt.memory_budget &&
            rss + kSlack + opt.expert_cache > opt.memory_budget)
            throw Error("--expert-cache " + format_bytes(opt.expert_cache) + " does not fit in --memory " +
                        format_bytes(opt.memory_budget) + ": " + format_bytes(rss) +
                        " is resident already (dense weights, KV cache, buffers)");
        for (StreamingExperts* s : ctx.sources) s->allocate(cache / ctx.sources.size(), k);
        mem.engine = ctx.sources[0]->engine_name();
        mem.policy = cache_policy_name(opt.cache_policy);
        mem.slot_bytes = slot;
        for (StreamingExperts* s : ctx.sources) {
            mem.cache_slots += s->n_slots();
            mem.expert_cache_bytes += s->allocated_bytes();
        }
        st.io_engine = ctx.sources[0]->engine_name();
        st.hit_rate_estimated = ctx.mode == IoMode::PageCache;
        st.hit_rate_source = ctx.mode == IoMode::Direct ? "own cache" : "page cache (RWF_NOWAIT probe)";
        st.expert_cache_budget = ctx.mode == IoMode::Direct ? mem.expert_cache_bytes : 0;
        st.expert_cache_bytes = st.expert_cache_budget;
    }
    mem.rss_bytes = rss_bytes();
    const uint64_t counted = mem.dense_bytes + mem.expert_cache_bytes;
    mem.other_bytes = mem.rss_bytes > counted ? mem.rss_bytes - counted : 0;
    st.rss_bytes = mem.rss_bytes;
    if (opt.memory_budget && mem.rss_bytes > opt.memory_budget)
        throw Error("--memory " + format_bytes(opt.memory_budget) + ": " + format_bytes(mem.rss_bytes) +
                    " is resident after loading (measured), more than the budget");
    ctx.rec->board()->publish(st);
}

}  // namespace sluice
