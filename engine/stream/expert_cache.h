// Which (layer, expert) each slot of sluice's own expert cache holds, and which slot a miss takes.
// Only bookkeeping, no memory or I/O: the streaming source drives it, and bench replays routing traces
// through it to compare policies at any size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice {

// Lru: evict the least recently used. Lfu: evict the least frequently used, counting every access to
// a key (cached or not) with counts halved every few passes over the keys, so popularity follows
// the conversation; ties go to the least recently used. Lfu is the default: on B30 (bench/B30.md)
// it read 4-5% fewer bytes per token than Lru under a 4 GiB cap and hit more at every replayed size
// (17% of the experts cached: 0.256 vs 0.134), at equal speed within the machine's noise.
enum class CachePolicy { Lru, Lfu };
const char* cache_policy_name(CachePolicy p);  // "lru", "lfu"

class ExpertCache {
public:
    // n_keys: n_layer * n_expert (key = layer * n_expert + expert).
    ExpertCache(int64_t n_slots, int64_t n_keys, CachePolicy policy);

    struct Found {
        int64_t slot;
        bool hit;  // false: the slot was (re)assigned to the key and must be filled
    };
    // Finds or assigns a slot for `key` and pins it until unpin_all(): a layer's experts stay put
    // while it computes. Needs an unpinned slot on a miss (n_slots >= experts per layer).
    Found acquire(int64_t key);
    void unpin_all();
    void drop(int64_t slot);  // contents invalid (a failed read): the slot is free again
    // Prefetch: a slot for `key` if it is not cached and one can be given up, without counting an
    // access (a guess is not a use); -1 otherwise. The slot is not pinned.
    int64_t claim(int64_t key);
    // A slot whose read is in flight must not be given to another key.
    void set_busy(int64_t slot, bool busy) { busy_[size_t(slot)] = busy; }

    int64_t n_slots() const { return int64_t(key_.size()); }
    int64_t key_of(int64_t slot) const { return key_[size_t(slot)]; }
    uint64_t hits() const { return hits_; }
    uint64_t misses() const { return misses_; }

private:
    int64_t victim() const;

    CachePolicy policy_;
    std::vector<int64_t> key_;          // per slot; -1 free
    std::vector<uint64_t> last_use_;    // per slot
    std::vector<uint8_t> pinned_;       // per slot
    std::vector<uint8_t> busy_;         // per slot
    std::vector<int64_t> slot_of_;      // per key; -1 not cached
    std::vector<uint32_t> freq_;        // per key (Lfu)
    uint64_t tick_ = 0, accesses_ = 0, decay_every_, hits_ = 0, misses_ = 0;
};

}  // namespace sluice
