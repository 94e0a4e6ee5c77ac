// The engine side of stats.h: what a forward pass did (times, expert reads, cache lookups, routing),
// summed per token and published as one StatsSnapshot when the token ends. Used from the engine's
// thread only; readers go through the StatsBoard.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/stats.h"

namespace sluice {

class StatsRecorder {
public:
    enum class Part { Attention, ExpertsCompute, ExpertsWait };
    explicit StatsRecorder(std::shared_ptr<StatsBoard> board);

    const std::shared_ptr<StatsBoard>& board() const { return board_; }
    // Fields that change at load only: io mode, budgets, K. Published with every token.
    StatsSnapshot& setup() { return cur_; }

    void begin_token();
    void end_token(int64_t n_past, int64_t n_ctx);  // publishes
    // Inside forward_tokens, before each chunk of `chunk` tokens; total 0: prompt over.
    void set_prompt(int64_t done, int64_t total, int64_t chunk = 1);
    void add_time(Part p, double seconds);
    void add_reads(uint64_t bytes, uint64_t n_reads);
    void add_lookups(uint64_t hits, uint64_t misses);
    void add_prefetch(uint64_t bytes, uint64_t experts, uint64_t n_reads);  // counted in the reads too
    void add_guess(int64_t guessed, int64_t used);  // a next-layer guess scored against the routing
    void routing(int64_t layer, int64_t n_expert, const int32_t* ids, int64_t k);
    void set_expert_cache_bytes(uint64_t in_use) { cur_.expert_cache_bytes = in_use; }

    // The totals so far (what the last publish carried).
    const StatsSnapshot& last() const { return cur_; }
    // Routing trace for bench's policy replay: key = layer * n_expert + expert, in access order.
    void keep_trace(bool on) {  // turning it on starts an empty trace
        if (on) trace_.clear();
        trace_on_ = on;
    }
    const std::vector<int32_t>& trace() const { return trace_; }

private:
    using Clock = std::chrono::steady_clock;
    std::shared_ptr<StatsBoard> board_;
    StatsSnapshot cur_;
    Clock::time_point t0_, prompt_t0_;
    double parts_[3] = {0, 0, 0};
    uint64_t bytes_ = 0, hits_ = 0, misses_ = 0, os_read0_ = 0;
    int depth_ = 0;
    int64_t prompt_chunk_ = 1;                     // nested begin_token (a forward calling forward)
    std::vector<double> recent_;        // last decode token times
    // routing: per layer, the previous token's experts and every expert seen
    std::vector<std::vector<uint8_t>> prev_, seen_;
    std::vector<int64_t> n_seen_;
    int64_t guessed_ = 0, guess_used_ = 0;
    double overlap_sum_ = 0;
    int64_t overlap_n_ = 0;
    bool trace_on_ = false;
    std::vector<int32_t> trace_;
};

// Times a scope into one Part (no-op with a null recorder).
class ScopedTime {
public:
    ScopedTime(StatsRecorder* r, StatsRecorder::Part p) : r_(r), p_(p), t0_(std::chrono::steady_clock::now()) {}
    ~ScopedTime() {
        if (r_) r_->add_time(p_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
    }
    ScopedTime(const ScopedTime&) = delete;
    ScopedTime& operator=(const ScopedTime&) = delete;

private:
    StatsRecorder* r_;
    StatsRecorder::Part p_;
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace sluice
