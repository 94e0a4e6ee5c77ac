#include "engine/stats_recorder.h"

#include <algorithm>
#include <numeric>

#include "engine/stream/memory.h"

namespace sluice {

namespace {
constexpr size_t kRecent = 8;  // tok/s over the last 8 decode tokens
}

StatsRecorder::StatsRecorder(std::shared_ptr<StatsBoard> board) : board_(std::move(board)) {}

void StatsRecorder::begin_token() {
    if (depth_++ > 0) return;
    t0_ = Clock::now();
    parts_[0] = parts_[1] = parts_[2] = 0;
    bytes_ = hits_ = misses_ = 0;
    os_read0_ = os_read_bytes();
}

void StatsRecorder::end_token(int64_t n_past, int64_t n_ctx) {
    if (--depth_ > 0) return;
    StatsSnapshot& s = cur_;
    const double t = std::chrono::duration<double>(Clock::now() - t0_).count();
    s.t_token = t;
    s.t_attention = parts_[0];
    s.t_experts_compute = parts_[1];
    s.t_experts_wait = parts_[2];
    s.t_other = std::max(0.0, t - parts_[0] - parts_[1] - parts_[2]);
    s.bytes_read_token = bytes_;
    s.disk_mb_s = t > 0 ? double(bytes_) / t / 1e6 : 0;
    const uint64_t os = os_read_bytes();
    s.os_read_bytes_token = os >= os_read0_ ? os - os_read0_ : 0;
    s.hit_rate_recent = hits_ + misses_ ? double(hits_) / double(hits_ + misses_) : 0;
    s.n_ctx_used = n_past;
    s.n_ctx = n_ctx;
    s.rss_bytes = rss_bytes();
    if (s.prompt_total > 0) {
        s.phase = StatsSnapshot::Phase::Prompt;
        const double el = std::chrono::duration<double>(Clock::now() - prompt_t0_).count();
        const int64_t done = s.prompt_done + prompt_chunk_;
        s.prompt_tok_s = el > 0 ? double(done) / el : 0;
        s.prompt_eta_s = s.prompt_tok_s > 0 ? double(s.prompt_total - done) / s.prompt_tok_s : 0;
    } else {
        s.phase = StatsSnapshot::Phase::Decode;
        ++s.tokens_generated;
        if (recent_.size() == kRecent) recent_.erase(recent_.begin());
        recent_.push_back(t);
        const double sum = std::accumulate(recent_.begin(), recent_.end(), 0.0);
        s.tok_s = sum > 0 ? double(recent_.size()) / sum : 0;
    }
    s.routing_overlap = overlap_n_ ? overlap_sum_ / double(overlap_n_) : 0;
    if (!n_seen_.empty())
        s.routing_distinct = double(std::accumulate(n_seen_.begin(), n_seen_.end(), int64_t(0))) / double(n_seen_.size());
    board_->publish(s);
}

void StatsRecorder::set_prompt(int64_t done, int64_t total, int64_t chunk) {
    prompt_chunk_ = chunk;
    if (total > 0 && (cur_.prompt_total != total || done == 0)) prompt_t0_ = Clock::now();
    cur_.prompt_done = done;
    cur_.prompt_total = total;
    if (total == 0) {
        cur_.phase = StatsSnapshot::Phase::Idle;
        cur_.prompt_eta_s = 0;
        board_->publish(cur_);
    }
}

void StatsRecorder::add_time(Part p, double seconds) { parts_[int(p)] += seconds; }

void StatsRecorder::add_reads(uint64_t bytes, uint64_t n_reads) {
    bytes_ += bytes;
    cur_.bytes_read_total += bytes;
    cur_.reads_total += n_reads;
}

void StatsRecorder::add_lookups(uint64_t hits, uint64_t misses) {
    hits_ += hits;
    misses_ += misses;
    cur_.expert_hits += hits;
    cur_.expert_misses += misses;
}

void StatsRecorder::add_prefetch(uint64_t bytes, uint64_t experts, uint64_t n_reads) {
    add_reads(bytes, n_reads);
    cur_.prefetch_bytes_total += bytes;
    cur_.prefetch_experts_total += experts;
}

void StatsRecorder::add_guess(int64_t guessed, int64_t used) {
    guessed_ += guessed;
    guess_used_ += used;
    cur_.guess_accuracy = guessed_ ? double(guess_used_) / double(guessed_) : 0;
}

void StatsRecorder::routing(int64_t layer, int64_t n_expert, const int32_t* ids, int64_t k) {
    if (layer >= int64_t(prev_.size())) {
        prev_.resize(size_t(layer + 1));
        seen_.resize(size_t(layer + 1));
        n_seen_.resize(size_t(layer + 1), 0);
    }
    std::vector<uint8_t>& prev = prev_[size_t(layer)];
    std::vector<uint8_t>& seen = seen_[size_t(layer)];
    const bool first = prev.empty();
    if (first) {
        prev.assign(size_t(n_expert), 0);
        seen.assign(size_t(n_expert), 0);
    }
    int64_t shared = 0;
    for (int64_t j = 0; j < k; ++j) shared += prev[size_t(ids[j])];
    if (!first) {
        overlap_sum_ += double(shared);
        ++overlap_n_;
    }
    std::fill(prev.begin(), prev.end(), 0);
    for (int64_t j = 0; j < k; ++j) {
        prev[size_t(ids[j])] = 1;
        if (!seen[size_t(ids[j])]) {
            seen[size_t(ids[j])] = 1;
            ++n_seen_[size_t(layer)];
        }
        if (trace_on_) trace_.push_back(int32_t(layer * n_expert + ids[j]));
    }
}

}  // namespace sluice
