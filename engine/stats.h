// Live engine statistics: the one header the UI reads. The engine thread publishes a plain snapshot
// after every token (and during prompt processing); readers copy the latest on their own clock and
// never call into the engine.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>

namespace sluice {

struct StatsSnapshot {
    // What the engine is doing now.
    enum class Phase : uint8_t { Idle, Loading, Prompt, Decode } phase = Phase::Idle;
    int64_t prompt_done = 0, prompt_total = 0;  // tokens of the prompt being processed
    double prompt_eta_s = 0;
    int64_t n_ctx_used = 0, n_ctx = 0;          // context used N / M

    // Speed.
    double tok_s = 0;           // decode tokens/s over the last few tokens
    double prompt_tok_s = 0;    // of the last (or current) prompt
    int64_t tokens_generated = 0;

    // Disk and expert cache (expert streaming).
    const char* io_mode = "mmap";    // static string: "mmap", "page-cache" or "direct"
    const char* io_engine = "";      // "io_uring", "pread pool"; "" when mmap
    uint64_t bytes_read_token = 0;   // expert bytes sluice read from the file for the last token
    uint64_t bytes_read_total = 0;
    uint64_t reads_total = 0;        // read requests (3 per missed expert, 2 with fused gate_up)
    double disk_mb_s = 0;            // bytes_read_token / the token's wall time, MB/s (1e6)
    uint64_t os_read_bytes_token = 0;  // what the kernel fetched from storage for this process during
                                       // the last token (/proc/self/io read_bytes: readahead and page
                                       // faults included; 0 where the kernel does not say)
    uint64_t expert_hits = 0, expert_misses = 0;  // cumulative; hit rate = hits / (hits + misses)
    double hit_rate_recent = 0;      // over the last token
    bool hit_rate_estimated = false; // page-cache mode: the kernel's cache, probed (see hit_rate_source)
    const char* hit_rate_source = "";  // static string: "own cache", "page cache (RWF_NOWAIT probe)",
                                       // "" when not measured (mmap)
    int64_t experts_per_token = 0;   // K used (after --experts-per-token)
    // Prefetch of guessed next-layer experts (streaming): reads issued on a guess (counted in
    // bytes_read_* too) and how many guessed experts the routing then used.
    uint64_t prefetch_bytes_total = 0, prefetch_experts_total = 0;
    double guess_accuracy = 0;       // used / guessed, cumulative

    // Routing: how much a cache can help. Cumulative since load.
    double routing_overlap = 0;      // mean experts a layer shares with the previous token (of K)
    double routing_distinct = 0;     // mean distinct experts used per layer

    // Where a decode step's time went (last token, seconds). Attention includes its projections;
    // experts_wait is time blocked on expert reads; other: norms, router, embedding, output head.
    double t_token = 0;
    double t_attention = 0, t_experts_compute = 0, t_experts_wait = 0, t_other = 0;

    // GPU (Vulkan backend): GPU time of the last token, routed experts found in / uploaded to the VRAM
    // expert cache (cumulative), VRAM held.
    double t_gpu = 0;
    uint64_t gpu_cache_hits = 0, gpu_cache_misses = 0;
    uint64_t vram_bytes = 0;

    // Memory. RSS is measured (/proc/self/statm) after every token, not derived from the parts.
    uint64_t rss_bytes = 0, memory_budget = 0;  // budget 0: none
    uint64_t dense_bytes = 0;                   // weights held in RAM (streaming modes)
    uint64_t expert_cache_bytes = 0, expert_cache_budget = 0;  // own cache (direct mode): in use, size
};

// Single writer (engine thread), many readers. A mutex is cheap at a few updates per second per reader
// and keeps the snapshot consistent.
class StatsBoard {
public:
    void publish(const StatsSnapshot& s) {
        std::lock_guard<std::mutex> lk(m_);
        s_ = s;
        version_.fetch_add(1, std::memory_order_release);
    }
    StatsSnapshot read() const {
        std::lock_guard<std::mutex> lk(m_);
        return s_;
    }
    uint64_t version() const { return version_.load(std::memory_order_acquire); }  // changes on publish

private:
    mutable std::mutex m_;
    StatsSnapshot s_;
    std::atomic<uint64_t> version_{0};
};

}  // namespace sluice
