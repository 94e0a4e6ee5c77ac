#include "engine/stream/streaming.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/error.h"
#include "engine/stats_recorder.h"

namespace sluice {

namespace {

constexpr uint64_t kAlign = 4096;  // O_DIRECT: offset, length and buffer aligned to this
uint64_t round_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

}  // namespace

StreamingExperts::StreamingExperts(const gguf::File& f, std::vector<MoeTensors> layers, int64_t n_embd,
                                   int64_t n_ff_exp, const StreamConfig& cfg, StatsRecorder* rec)
    : f_(f), cfg_(cfg), rec_(rec), n_embd_(n_embd), n_ff_(n_ff_exp) {
    set_recorder(rec);
    for (const MoeTensors& t : layers) {
        LayerPlan p;
        p.fused = t.gate_up_exps != nullptr;
        auto piece = [](const gguf::TensorInfo* ti) {  // ne (cols, rows, n_expert): one slab per expert
            return Piece{ti, uint64_t(row_bytes(ti->type, ti->ne[0]) * ti->ne[1]), 0};
        };
        if (p.fused) {
            p.pieces = {piece(t.gate_up_exps), piece(t.down_exps)};
        } else {
            p.pieces = {piece(t.gate_exps), piece(t.up_exps), piece(t.down_exps)};
        }
        n_expert_ = t.down_exps->ne[2];
        // Where each slab sits in a slot: room for the widest span over all experts (aligned reads
        // of a 32-byte-aligned slab cover one more page for some experts than for others).
        uint64_t at = 0;
        for (Piece& pc : p.pieces) {
            uint64_t span = pc.bytes;
            if (cfg_.direct)
                for (int64_t e = 0; e < n_expert_; ++e) {
                    const uint64_t off = pc.t->offset + uint64_t(e) * pc.bytes;
                    span = std::max(span, round_up(off + pc.bytes) - off / kAlign * kAlign);
                }
            pc.slot_offset = at;
            at += round_up(span);
        }
        slot_bytes_ = std::max(slot_bytes_, at);
        plan_.push_back(std::move(p));
    }

    // An open file of our own (same inode as the header was read from, even if the path is replaced
    // later): O_DIRECT, or buffered without readahead.
    const std::string src = f.fd() >= 0 ? "/proc/self/fd/" + std::to_string(f.fd()) : f.path();
    fd_ = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | (cfg_.direct ? O_DIRECT : 0));
    if (fd_ < 0 && cfg_.direct && errno == EINVAL)
        throw Error("--io direct: the filesystem holding '" + f.path() +
                    "' does not support O_DIRECT; use --io page-cache");
    if (fd_ < 0) throw Error("cannot open '" + f.path() + "' for expert reads: " + std::strerror(errno));
    if (!cfg_.direct) posix_fadvise(fd_, 0, 0, POSIX_FADV_RANDOM);
    queue_ = make_read_queue(fd_, cfg_.engine, cfg_.depth, cfg_.fault);
}

StreamingExperts::~StreamingExperts() {
    queue_.reset();  // waits for reads still writing into the slots
    if (slots_) munmap(slots_, size_t(allocated_bytes()));
    if (fd_ >= 0) ::close(fd_);
}

void StreamingExperts::allocate(uint64_t cache_bytes, int64_t max_k) {
    if (cache_) throw Error("expert streaming: allocate() called twice");
    const int64_t n = cfg_.direct ? int64_t(cache_bytes / slot_bytes_) : max_k;
    if (n < max_k)
        throw Error("an expert cache of " + std::to_string(cache_bytes >> 20) + " MiB holds " + std::to_string(n) +
                    " experts of " + std::to_string(slot_bytes_ >> 10) + " KiB; one layer uses " +
                    std::to_string(max_k) + " at once (" + std::to_string((uint64_t(max_k) * slot_bytes_ + (1 << 20) - 1) >> 20) +
                    " MiB at least)");
    // Prefaulted: the budget is resident from the start and RSS shows it.
    void* m = mmap(nullptr, size_t(uint64_t(n) * slot_bytes_), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED)
        throw Error("cannot allocate the expert cache (" + std::to_string(uint64_t(n) * slot_bytes_) + " bytes): " +
                    std::strerror(errno));
    slots_ = static_cast<uint8_t*>(m);
    cache_ = std::make_unique<ExpertCache>(n, int64_t(plan_.size()) * n_expert_, cfg_.policy);
    reads_left_.assign(size_t(n), 0);
    failed_.assign(size_t(n), ReadDone{});
    waiters_.assign(size_t(n), {});
}

void StreamingExperts::views(int64_t layer, int64_t e, const uint8_t* slot, ExpertWeights* out) const {
    const LayerPlan& p = plan_[size_t(layer)];
    auto at = [&](const Piece& pc) {
        const uint64_t off = pc.t->offset + uint64_t(e) * pc.bytes;
        return slot + pc.slot_offset + (cfg_.direct ? off % kAlign : 0);
    };
    auto view = [](const Piece& pc, const uint8_t* base, int64_t row0, int64_t rows) {
        return WeightView{pc.t->type, rows, pc.t->ne[0], base + row0 * row_bytes(pc.t->type, pc.t->ne[0])};
    };
    if (p.fused) {
        out->gate = view(p.pieces[0], at(p.pieces[0]), 0, n_ff_);
        out->up = view(p.pieces[0], at(p.pieces[0]), n_ff_, n_ff_);
        out->down = view(p.pieces[1], at(p.pieces[1]), 0, n_embd_);
    } else {
        out->gate = view(p.pieces[0], at(p.pieces[0]), 0, n_ff_);
        out->up = view(p.pieces[1], at(p.pieces[1]), 0, n_ff_);
        out->down = view(p.pieces[2], at(p.pieces[2]), 0, n_embd_);
    }
}

uint64_t StreamingExperts::load(int64_t layer, int64_t e, int64_t slot, bool guess, bool* from_disk) {
    const size_t s = size_t(slot);
    uint8_t* base = slots_ + uint64_t(slot) * slot_bytes_;
    uint64_t bytes = 0;
    failed_[s] = ReadDone{};
    *from_disk = false;
    const LayerPlan& p = plan_[size_t(layer)];
    for (size_t pi = 0; pi < p.pieces.size(); ++pi) {
        const Piece& pc = p.pieces[pi];
        const uint64_t off = pc.t->offset + uint64_t(e) * pc.bytes;
        uint8_t* dst = base + pc.slot_offset;
        const uint64_t tag = uint64_t(slot) * 8 + (guess ? 4 : 0) + pi;
        if (cfg_.direct) {
            const uint64_t a0 = off / kAlign * kAlign, a1 = round_up(off + pc.bytes);
            reqs_.push_back({dst, a0, a1 - a0, off + pc.bytes - a0, tag});
            bytes += a1 - a0;
        } else {
            // Whatever the page cache holds comes without waiting; the rest goes to the disk.
            // (With a fault hook, tests want every read to reach it: no probe.)
            iovec iov{dst, size_t(pc.bytes)};
            ssize_t got = cfg_.fault ? 0 : preadv2(fd_, &iov, 1, off_t(off), RWF_NOWAIT);
            if (got < 0) got = 0;
            if (uint64_t(got) == pc.bytes) continue;
            reqs_.push_back({dst + got, off + uint64_t(got), pc.bytes - uint64_t(got), pc.bytes - uint64_t(got), tag});
            bytes += pc.bytes - uint64_t(got);
        }
        ++reads_left_[s];
        *from_disk = true;
    }
    if (*from_disk) cache_->set_busy(slot, true);
    return bytes;
}

void StreamingExperts::start(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) {
    if (!cache_) allocate(0, k);
    cache_->unpin_all();  // the previous layer's views expire now
    ready_.clear();
    reqs_.clear();
    k_ = k;
    returned_ = 0;
    if (guess_layer_ == layer) {  // score the guess for this layer
        int64_t used = 0;
        for (int64_t j = 0; j < k; ++j) used += std::count(guess_.begin(), guess_.end(), ids[j]) > 0;
        const double frac = double(used) / double(std::max<size_t>(guess_.size(), 1));
        accuracy_ = 0.9 * accuracy_ + 0.1 * frac;
        if (rec_) rec_->add_guess(int64_t(guess_.size()), used);
        guess_layer_ = -1;
    }
    uint64_t hits = 0, misses = 0, bytes = 0;
    for (int64_t j = 0; j < k; ++j) {
        const int64_t e = ids[j];
        const ExpertCache::Found fd = cache_->acquire(layer * n_expert_ + e);
        const size_t s = size_t(fd.slot);
        views(layer, e, slots_ + uint64_t(fd.slot) * slot_bytes_, &out[j]);
        if (fd.hit) {
            ++hits;
            if (reads_left_[s] > 0)
                waiters_[s].push_back(j);  // still loading: a prefetch, or the same expert twice
            else
                ready_.push_back(j);
            continue;
        }
        waiters_[s].assign(1, j);
        bool from_disk;
        bytes += load(layer, e, fd.slot, false, &from_disk);
        if (from_disk) {
            ++misses;
        } else {
            ++hits;
            waiters_[s].clear();
            ready_.push_back(j);
        }
    }
    if (!reqs_.empty()) queue_->submit(reqs_.data(), reqs_.size());
    if (rec_) {
        rec_->add_lookups(hits, misses);
        rec_->add_reads(bytes, reqs_.size());
        rec_->set_expert_cache_bytes(cfg_.direct ? allocated_bytes() : 0);
    }
}

void StreamingExperts::prefetch(int64_t layer, const int32_t* ids, int64_t k) {
    if (!wants_prefetch() || !cache_ || layer >= int64_t(plan_.size())) return;
    guess_layer_ = layer;
    guess_.assign(ids, ids + k);
    if (accuracy_ < 0.5) return;  // guesses keep missing: not worth the bandwidth now
    uint64_t bytes = 0;
    int64_t n = 0;
    reqs_.clear();
    for (int64_t j = 0; j < k; ++j) {
        const int64_t e = ids[j];
        const int64_t slot = cache_->claim(layer * n_expert_ + e);
        if (slot < 0) continue;  // cached already, or no slot to spare
        waiters_[size_t(slot)].clear();
        bool from_disk;
        bytes += load(layer, e, slot, true, &from_disk);
        ++n;
    }
    if (!reqs_.empty()) queue_->submit(reqs_.data(), reqs_.size());
    if (rec_) rec_->add_prefetch(bytes, uint64_t(n), reqs_.size());
}

void StreamingExperts::on_done(const ReadDone& d) {
    const size_t s = size_t(d.tag / 8);
    if (d.err && !failed_[s].err) failed_[s] = d;
    if (--reads_left_[s] > 0) return;
    cache_->set_busy(int64_t(s), false);
    const ReadDone f = failed_[s];
    if (f.err) {
        // A failed guess matters only if a layer now waits for it.
        if (!waiters_[s].empty() && error_.empty()) {
            const int64_t key = cache_->key_of(int64_t(s));
            const LayerPlan& p = plan_[size_t(key / n_expert_)];
            error_ = "reading expert " + std::to_string(key % n_expert_) + " of layer " + std::to_string(key / n_expert_) +
                     " ('" + p.pieces[f.tag % 4].t->name + "') from '" + f_.path() + "' at offset " +
                     std::to_string(f.offset) + ": " + read_error_text(f.err);
        }
        cache_->drop(int64_t(s));
    } else {
        ready_.insert(ready_.end(), waiters_[s].begin(), waiters_[s].end());
    }
    waiters_[s].clear();
}

// A failed read ends the request, but only once nothing is in flight any more: no read may land in
// a slot after the error, whatever the caller does next.
void StreamingExperts::fail_after_drain() {
    while (queue_->in_flight() > 0) {
        done_.clear();
        queue_->reap(done_, true);
        for (const ReadDone& d : done_) on_done(d);
    }
    ready_.clear();
    returned_ = k_;
    std::string msg;
    msg.swap(error_);
    throw Error(msg);
}

int64_t StreamingExperts::wait_ready(std::vector<int64_t>& ready) {
    for (;;) {
        if (!ready_.empty()) {
            ready.insert(ready.end(), ready_.begin(), ready_.end());
            const int64_t n = int64_t(ready_.size());
            returned_ += n;
            ready_.clear();
            return n;
        }
        if (returned_ >= k_) return 0;
        if (queue_->in_flight() == 0) throw Error("expert streaming: internal error (no read in flight for a pending expert)");
        done_.clear();
        queue_->reap(done_, true);
        for (const ReadDone& d : done_) on_done(d);
        if (!error_.empty()) fail_after_drain();
    }
}

void StreamingExperts::fetch(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) {
    start(layer, ids, k, out);
    std::vector<int64_t> sink;
    while (wait_ready(sink) > 0) {
    }
}

}  // namespace sluice
