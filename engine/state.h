// Serialised conversation state (a prefill snapshot's payload): a small self-describing header, then
// raw float arrays. The reader is bounds-checked: a blob from another model, another layout or a
// truncated write gives an Error, never a crash.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "engine/error.h"

namespace sluice {

class StateWriter {
public:
    explicit StateWriter(const std::string& arch) { put_u32(kMagic); put_u32(kVersion); put_str(arch); }
    void put_u32(uint32_t x) { put(&x, 4); }
    void put_u64(uint64_t x) { put(&x, 8); }
    void put_str(const std::string& s) { put_u32(uint32_t(s.size())); put(s.data(), s.size()); }
    void put_floats(const float* p, size_t n) { put(p, n * 4); }
    std::vector<uint8_t> take() { return std::move(buf_); }

    static constexpr uint32_t kMagic = 0x54534c53;  // "SLST"
    static constexpr uint32_t kVersion = 1;

private:
    void put(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        buf_.insert(buf_.end(), b, b + n);
    }
    std::vector<uint8_t> buf_;
};

class StateReader {
public:
    // Checks magic, version and that the blob was written by `arch`.
    StateReader(std::span<const uint8_t> blob, const std::string& arch) : b_(blob) {
        if (get_u32() != StateWriter::kMagic) throw Error("state blob: bad magic (not a sluice snapshot)");
        const uint32_t v = get_u32();
        if (v != StateWriter::kVersion)
            throw Error("state blob: version " + std::to_string(v) + ", expected " + std::to_string(StateWriter::kVersion));
        const std::string a = get_str();
        if (a != arch) throw Error("state blob is for architecture '" + a + "', this model is '" + arch + "'");
    }
    uint32_t get_u32() { uint32_t x; get(&x, 4); return x; }
    uint64_t get_u64() { uint64_t x; get(&x, 8); return x; }
    std::string get_str() {
        const uint32_t n = get_u32();
        need(n);
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    // A header field that must equal the model's.
    void expect_u64(const char* what, uint64_t want) {
        const uint64_t got = get_u64();
        if (got != want)
            throw Error(std::string("state blob: ") + what + " is " + std::to_string(got) + ", this model has " + std::to_string(want));
    }
    void get_floats(float* p, size_t n) { get(p, n * 4); }
    void expect_end() const {
        if (pos_ != b_.size()) throw Error("state blob: " + std::to_string(b_.size() - pos_) + " unexpected trailing bytes");
    }

private:
    void need(size_t n) const {
        if (n > b_.size() - pos_)
            throw Error("state blob truncated: need " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                        ", " + std::to_string(b_.size() - pos_) + " left");
    }
    void get(void* p, size_t n) { need(n); std::memcpy(p, b_.data() + pos_, n); pos_ += n; }
    std::span<const uint8_t> b_;
    size_t pos_ = 0;
};

}  // namespace sluice
