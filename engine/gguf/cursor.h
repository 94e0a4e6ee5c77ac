// Bounds-checked little-endian reads over the bytes of an untrusted file. Every read checks the bytes
// left before touching memory, so no header field can make the parser read past the end or allocate
// more than the file could hold. The cursor only needs a byte span, not how it got into memory: the
// whole file (a mapping) or only its first `window` bytes (read with pread when the file is not
// mapped). Reading past the window throws NeedMore, and the caller reads more and parses again;
// checks and messages always use the file's real size.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "engine/error.h"

namespace sluice::gguf {

class Cursor {
public:
    // Not an Error: the bytes exist, they are not in memory yet. `needed`: window size that would do.
    struct NeedMore {
        uint64_t needed;
    };

    Cursor(const uint8_t* bytes, uint64_t size, std::string_view path, uint64_t window = UINT64_MAX)
        : p_(bytes), size_(size), window_(window < size ? window : size), path_(path) {}

    uint64_t pos() const { return pos_; }
    uint64_t size() const { return size_; }
    uint64_t left() const { return size_ - pos_; }
    // Bytes in memory from here: at most left(), fewer when only a window of the file is read.
    const uint8_t* here() const { return p_ + pos_; }
    uint64_t in_memory() const { return window_ - pos_; }
    const std::string& path() const { return path_; }

    // What is being read, for "truncated while reading <item> at offset N". `element` >= 0 appends
    // ", element N" (kept apart so that a 150k-string array does not format 150k messages).
    void set_item(std::string item) { item_ = std::move(item); element_ = -1; extra_.clear(); }
    void set_element(int64_t i) { element_ = i; }
    const std::string& item() const { return item_; }

    // Throws unless n more bytes are left (Error) and in memory (NeedMore).
    void need(uint64_t n) const {
        if (n > left()) truncated(std::to_string(n));
        if (n > in_memory()) throw NeedMore{pos_ + n};
    }

    template <class T>
    T read() {
        need(sizeof(T));
        T x;
        std::memcpy(&x, p_ + pos_, sizeof(T));  // the mapping has no alignment guarantee
        pos_ += sizeof(T);
        return x;
    }

    // A GGUF string: u64 length, then that many bytes (not NUL-terminated).
    std::string read_string() {
        uint64_t n = read<uint64_t>();
        if (n > left()) {
            pos_ -= 8;  // report the offset of the string, not of its bytes
            set_extra(" (string of " + std::to_string(n) + " bytes)");
            truncated("8 + " + std::to_string(n));
        }
        need(n);
        std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
        pos_ += n;
        return s;
    }

    [[noreturn]] void fail(const std::string& msg) const { throw Error(path_ + ": " + msg); }

    // "truncated while reading <item>[, element N][extra] at offset P: needs <needed> bytes, ...".
    [[noreturn]] void truncated(const std::string& needed) const {
        std::string what = item_;
        if (element_ >= 0) what += ", element " + std::to_string(element_);
        fail("truncated while reading " + what + extra_ + " at offset " + std::to_string(pos_) +
             ": needs " + needed + " bytes, the file has " + std::to_string(left()) + " left");
    }
    void set_extra(std::string s) { extra_ = std::move(s); }

private:
    const uint8_t* p_;
    uint64_t size_, window_;
    uint64_t pos_ = 0;
    std::string path_;
    std::string item_ = "header";
    int64_t element_ = -1;
    std::string extra_;  // detail of the innermost read, e.g. " (string of 2^60 bytes)"
};

}  // namespace sluice::gguf
