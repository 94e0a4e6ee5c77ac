// Which routed experts sit in which VRAM slots of one layer's expert cache; least recently used
// slots are reassigned. The caller uploads an expert's weights into its slot when get() misses.
#pragma once
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace sluice::gpu {

class SlotCache {
public:
    explicit SlotCache(uint32_t n_slots) : n_slots_(n_slots) {}
    uint32_t n_slots() const { return n_slots_; }

    // The slot holding expert e. On a miss the slot is assigned to e (a free one, else the least
    // recently used) and *hit is false: e's weights must be uploaded before use. The k experts of one
    // token are looked up together, so with n_slots >= k none evicts another of the same token.
    uint32_t get(int32_t e, bool* hit) {
        auto it = where_.find(e);
        if (it != where_.end()) {
            lru_.splice(lru_.end(), lru_, it->second.pos);  // most recent at the back
            *hit = true;
            return it->second.slot;
        }
        *hit = false;
        uint32_t slot;
        if (next_free_ < n_slots_) {
            slot = next_free_++;
        } else {
            const int32_t victim = lru_.front();
            lru_.pop_front();
            slot = where_[victim].slot;
            where_.erase(victim);
        }
        lru_.push_back(e);
        where_[e] = {slot, std::prev(lru_.end())};
        return slot;
    }

    // The slot holding expert e (most recently used now), or -1: nothing is assigned.
    int64_t find(int32_t e) {
        auto it = where_.find(e);
        if (it == where_.end()) return -1;
        lru_.splice(lru_.end(), lru_, it->second.pos);
        return it->second.slot;
    }
    bool has(int32_t e) const { return where_.count(e) != 0; }  // without making it recent
    bool full() const { return next_free_ >= n_slots_; }

private:
    struct Entry {
        uint32_t slot;
        std::list<int32_t>::iterator pos;
    };
    uint32_t n_slots_, next_free_ = 0;
    std::list<int32_t> lru_;  // experts, least recently used first
    std::unordered_map<int32_t, Entry> where_;
};

}  // namespace sluice::gpu
