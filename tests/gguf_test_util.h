// Helpers for the GGUF tests: a byte-by-byte file builder (for files our writer would refuse to
// write), scratch paths, and "the error message File::open gives for this file".
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "engine/gguf/gguf.h"

namespace gguf_test {

using namespace sluice::gguf;

// Per process: ctest runs each test in its own process, several at once, and tests of one suite
// write the same names.
inline std::string scratch(const std::string& name) {
    const char* env = std::getenv("SLUICE_TMP");
    std::filesystem::path dir = env ? env : std::filesystem::temp_directory_path() / "sluice-test";
    dir /= "gguf-" + std::to_string(getpid());
    std::filesystem::create_directories(dir);
    return (dir / name).string();
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

inline std::vector<uint8_t> read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The message File::open throws, or "" if the file opened. The same file opened without mapping (the
// header read into a window that grows, from the default size and from 64 bytes) must give the same
// message: streaming must not weaken the checks.
inline std::string open_error(const std::string& path) {
    auto error_of = [&](const OpenOptions& o) -> std::string {
        try {
            File::open(path, o);
        } catch (const sluice::Error& e) {
            return e.what();
        }
        return "";
    };
    const std::string mapped = error_of({});
    EXPECT_EQ(error_of({.map = false}), mapped) << path;
    EXPECT_EQ(error_of({.map = false, .header_window = 64}), mapped) << path;
    return mapped;
}

inline ::testing::AssertionResult has_substr(const char*, const char*, const std::string& text,
                                             const std::string& part) {
    if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message: " << text << "\nlacks:   " << part;
}
#define EXPECT_HAS(text, part) EXPECT_PRED_FORMAT2(gguf_test::has_substr, text, part)

// Little-endian GGUF pieces, appended in the order called.
struct Bytes {
    std::vector<uint8_t> b;
    Bytes& raw(const void* p, size_t n) {
        auto* c = static_cast<const uint8_t*>(p);
        b.insert(b.end(), c, c + n);
        return *this;
    }
    template <class T>
    Bytes& put(T x) { return raw(&x, sizeof x); }
    Bytes& u8(uint8_t x) { return put(x); }
    Bytes& u32(uint32_t x) { return put(x); }
    Bytes& u64(uint64_t x) { return put(x); }
    Bytes& i64(int64_t x) { return put(x); }
    Bytes& str(const std::string& s) { u64(s.size()); return raw(s.data(), s.size()); }
    Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
        raw("GGUF", 4);
        return u32(version).u64(n_tensors).u64(n_kv);
    }
    Bytes& kv_u32(const std::string& key, uint32_t x) { return str(key).u32(4).u32(x); }
    Bytes& kv_str(const std::string& key, const std::string& s) { return str(key).u32(8).str(s); }
    Bytes& tensor(const std::string& name, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
        str(name).u32(uint32_t(ne.size()));
        for (int64_t x : ne) i64(x);
        return u32(type).u64(offset);
    }
    Bytes& pad_to(size_t alignment) {
        while (b.size() % alignment) b.push_back(0);
        return *this;
    }
    Bytes& zeros(size_t n) {
        b.insert(b.end(), n, 0);
        return *this;
    }
    size_t size() const { return b.size(); }
};

// Writes the bytes to a scratch file and returns File::open's error ("" if it opened).
inline std::string error_for(const std::string& name, const Bytes& bytes) {
    std::string path = scratch(name);
    write_file(path, bytes.b);
    return open_error(path);
}

}  // namespace gguf_test
