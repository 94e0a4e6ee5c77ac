#include "engine/stream/expert_cache.h"

#include <algorithm>
#include <cassert>

#include "engine/error.h"

namespace sluice {

const char* cache_policy_name(CachePolicy p) { return p == CachePolicy::Lru ? "lru" : "lfu"; }

ExpertCache::ExpertCache(int64_t n_slots, int64_t n_keys, CachePolicy policy)
    : policy_(policy), key_(size_t(n_slots), -1), last_use_(size_t(n_slots), 0), pinned_(size_t(n_slots), 0),
      busy_(size_t(n_slots), 0),
      slot_of_(size_t(n_keys), -1), freq_(size_t(n_keys), 0),
      // Halve the counts every 4 passes over max(keys, slots): for Qwen3-30B-A3B (6144 keys, 384
      // accesses a token) every 64 tokens.
      decay_every_(uint64_t(std::max(n_keys, n_slots)) * 4) {}

ExpertCache::Found ExpertCache::acquire(int64_t key) {
    assert(key >= 0 && key < int64_t(slot_of_.size()));
    ++tick_;
    if (policy_ == CachePolicy::Lfu) {
        if (freq_[size_t(key)] < UINT32_MAX) ++freq_[size_t(key)];
        if (++accesses_ % decay_every_ == 0)
            for (uint32_t& f : freq_) f >>= 1;
    }
    int64_t s = slot_of_[size_t(key)];
    const bool hit = s >= 0;
    if (hit) {
        ++hits_;
    } else {
        ++misses_;
        s = victim();
        if (s < 0) throw Error("expert cache: all " + std::to_string(key_.size()) + " slots are in use by one layer or loading");
        if (key_[size_t(s)] >= 0) slot_of_[size_t(key_[size_t(s)])] = -1;
        key_[size_t(s)] = key;
        slot_of_[size_t(key)] = s;
    }
    last_use_[size_t(s)] = tick_;
    pinned_[size_t(s)] = 1;
    return {s, hit};
}

// A free slot if any, else the unpinned slot the policy values least. A linear scan: a few thousand
// slots, once per miss, costs far less than the miss's read.
int64_t ExpertCache::victim() const {
    int64_t best = -1;
    uint64_t best_f = 0, best_t = 0;
    for (size_t s = 0; s < key_.size(); ++s) {
        if (pinned_[s] || busy_[s]) continue;
        if (key_[s] < 0) return int64_t(s);
        const uint64_t f = policy_ == CachePolicy::Lfu ? freq_[size_t(key_[s])] : 0;
        if (best < 0 || f < best_f || (f == best_f && last_use_[s] < best_t)) {
            best = int64_t(s);
            best_f = f;
            best_t = last_use_[s];
        }
    }
    return best;
}

int64_t ExpertCache::claim(int64_t key) {
    if (slot_of_[size_t(key)] >= 0) return -1;
    const int64_t s = victim();
    if (s < 0) return -1;
    if (key_[size_t(s)] >= 0) slot_of_[size_t(key_[size_t(s)])] = -1;
    key_[size_t(s)] = key;
    slot_of_[size_t(key)] = s;
    last_use_[size_t(s)] = ++tick_;
    return s;
}

void ExpertCache::unpin_all() { std::fill(pinned_.begin(), pinned_.end(), 0); }

void ExpertCache::drop(int64_t slot) {
    int64_t& k = key_[size_t(slot)];
    if (k >= 0) slot_of_[size_t(k)] = -1;
    k = -1;
}

}  // namespace sluice
