// Expert streaming: the ExpertSource that reads exactly the routed experts' slabs from the GGUF file
// (3 reads per expert: gate, up, down; 2 with a fused gate_up) into slots of its own memory, many reads
// in flight, and hands each expert to the MoE block as soon as its reads are in.
//
//   direct:     O_DIRECT reads (4 KiB-aligned ranges around each slab) into sluice's expert cache,
//               a byte budget of slots managed by ExpertCache (LRU or LFU).
//   page-cache: buffered reads with POSIX_FADV_RANDOM (no readahead: only the slab's bytes), the OS
//               page cache caching experts; sluice holds one layer's K experts. Residency is probed
//               per slab with preadv2(RWF_NOWAIT), which copies the slab if every page is cached and
//               fails otherwise: a hit is a read that needed no disk.
//
// Prefetch: the architecture guesses the next layer's experts (next router on this layer's input);
// their reads queue behind this layer's, so the disk keeps working while this layer computes and the
// next attention runs. Guesses are scored when the layer's real routing arrives; while fewer than
// half of the guessed experts get used (running average) no prefetch reads are issued, guessing
// goes on so they resume when guesses improve. Direct mode only: in page-cache mode under a 4 GiB
// cap, POSIX_FADV_WILLNEED on the guessed slabs made B30 slower (0.84 vs 1.30 tok/s, bench/B30.md):
// the readahead runs on the computing thread and adds to the reclaim the cap forces.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/moe.h"
#include "engine/stream/expert_cache.h"
#include "engine/stream/io.h"

namespace sluice {

class StatsRecorder;

struct StreamConfig {
    bool direct = true;
    CachePolicy policy = CachePolicy::Lfu;
    IoEngine engine = IoEngine::Auto;
    int depth = 32;          // reads in flight at most
    bool prefetch = true;    // act on next-layer guesses
    ReadFault fault;         // tests
};

class StreamingExperts final : public ExpertSource {
public:
    StreamingExperts(const gguf::File& f, std::vector<MoeTensors> layers, int64_t n_embd, int64_t n_ff_exp,
                     const StreamConfig& cfg, StatsRecorder* rec);
    ~StreamingExperts() override;

    uint64_t slot_bytes() const { return slot_bytes_; }  // one expert, all slabs, page-rounded
    // Sizes the slots: cache_bytes / slot_bytes of them (direct), or exactly max_k (page-cache: the
    // OS caches). Throws Error when fewer than max_k fit. Once, before the first fetch.
    void allocate(uint64_t cache_bytes, int64_t max_k);
    int64_t n_slots() const { return cache_ ? cache_->n_slots() : 0; }
    uint64_t max_cache_bytes() const { return uint64_t(plan_.size()) * uint64_t(n_expert_) * slot_bytes_; }
    uint64_t allocated_bytes() const { return uint64_t(n_slots()) * slot_bytes_; }
    const char* engine_name() const { return queue_->name(); }
    bool direct() const { return cfg_.direct; }

    void fetch(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) override;
    void start(int64_t layer, const int32_t* ids, int64_t k, ExpertWeights* out) override;
    int64_t wait_ready(std::vector<int64_t>& ready) override;
    bool wants_prefetch() const override { return cfg_.prefetch && cfg_.direct; }
    int64_t capacity() const override { return cache_ ? cache_->n_slots() : 1; }
    void prefetch(int64_t layer, const int32_t* ids, int64_t k) override;
    double guess_accuracy() const { return accuracy_; }

private:
    struct Piece {  // one slab of expert e: bytes [t->offset + e * bytes, + bytes) of the file
        const gguf::TensorInfo* t;
        uint64_t bytes;
        uint64_t slot_offset;  // where it goes in a slot
    };
    struct LayerPlan {
        std::vector<Piece> pieces;  // gate, up, down (or gate_up, down)
        bool fused;
    };
    void views(int64_t layer, int64_t e, const uint8_t* slot, ExpertWeights* out) const;
    void on_done(const ReadDone& d);
    // Queues the reads of expert e of `layer` into `slot` (direct), or probes the page cache first;
    // returns bytes sent to the disk.
    uint64_t load(int64_t layer, int64_t e, int64_t slot, bool guess, bool* from_disk);
    [[noreturn]] void fail_after_drain();

    const gguf::File& f_;
    StreamConfig cfg_;
    StatsRecorder* rec_;
    int64_t n_embd_, n_ff_, n_expert_;
    std::vector<LayerPlan> plan_;
    int fd_ = -1;
    std::unique_ptr<ReadQueue> queue_;
    uint64_t slot_bytes_ = 0;
    std::unique_ptr<ExpertCache> cache_;
    uint8_t* slots_ = nullptr;
    // The request in progress.
    std::vector<int32_t> reads_left_;            // per slot: reads still in flight
    std::vector<ReadDone> failed_;               // per slot: the first failed read (err 0: none)
    std::vector<std::vector<int64_t>> waiters_;  // per slot: request indices it serves
    std::vector<int64_t> ready_;
    std::vector<ReadReq> reqs_;
    std::vector<ReadDone> done_;
    int64_t k_ = 0, returned_ = 0;
    std::string error_;
    // The pending guess and how good guesses have been.
    int64_t guess_layer_ = -1;
    std::vector<int32_t> guess_;
    double accuracy_ = 1.0;
};

}  // namespace sluice
