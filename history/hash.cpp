#include "history/hash.h"

#include <cstring>

namespace sluice::history {

namespace {

constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull,
                   P4 = 0x85EBCA77C2B2AE63ull, P5 = 0x27D4EB2F165667C5ull;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
uint64_t read64(const uint8_t* p) { uint64_t x; std::memcpy(&x, p, 8); return x; }  // little-endian hosts
uint32_t read32(const uint8_t* p) { uint32_t x; std::memcpy(&x, p, 4); return x; }
uint64_t round(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
uint64_t merge(uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; }

}  // namespace

Xxh64::Xxh64(uint64_t seed) : v_{seed + P1 + P2, seed + P2, seed, seed - P1}, seed_(seed) {}

void Xxh64::update(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    total_ += n;
    if (nbuf_ + n < 32) {
        if (n) std::memcpy(buf_ + nbuf_, p, n);
        nbuf_ += n;
        return;
    }
    if (nbuf_) {
        const size_t take = 32 - nbuf_;
        std::memcpy(buf_ + nbuf_, p, take);
        for (int i = 0; i < 4; ++i) v_[i] = round(v_[i], read64(buf_ + 8 * i));
        p += take;
        n -= take;
        nbuf_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32)
        for (int i = 0; i < 4; ++i) v_[i] = round(v_[i], read64(p + 8 * i));
    if (n) std::memcpy(buf_, p, n);
    nbuf_ = n;
}

uint64_t Xxh64::digest() const {
    uint64_t h;
    if (total_ >= 32) {
        h = rotl(v_[0], 1) + rotl(v_[1], 7) + rotl(v_[2], 12) + rotl(v_[3], 18);
        for (int i = 0; i < 4; ++i) h = merge(h, v_[i]);
    } else {
        h = seed_ + P5;
    }
    h += total_;
    const uint8_t* p = buf_;
    size_t n = nbuf_;
    for (; n >= 8; p += 8, n -= 8) h = rotl(h ^ round(0, read64(p)), 27) * P1 + P4;
    if (n >= 4) {
        h = rotl(h ^ (uint64_t(read32(p)) * P1), 23) * P2 + P3;
        p += 4;
        n -= 4;
    }
    for (; n > 0; ++p, --n) h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

}  // namespace sluice::history
