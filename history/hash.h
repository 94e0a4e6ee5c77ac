// XXH64 (Yann Collet's xxHash, 64-bit): a fast non-cryptographic hash for model fingerprints and token
// prefixes. Not a defence against someone crafting collisions; it tells honest files apart.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sluice::history {

class Xxh64 {
public:
    explicit Xxh64(uint64_t seed = 0);
    void update(const void* data, size_t n);
    uint64_t digest() const;

private:
    uint64_t v_[4];
    uint64_t seed_, total_ = 0;
    uint8_t buf_[32];
    size_t nbuf_ = 0;
};

inline uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0) {
    Xxh64 h(seed);
    h.update(data, n);
    return h.digest();
}

}  // namespace sluice::history
