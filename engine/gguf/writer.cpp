// Streaming GGUF v3 writer. The header (metadata + tensor infos with offsets computed from the declared
// shapes) is written first, then the tensor bytes as they arrive, each padded to the alignment, into
// PATH.tmp; finish() renames it so a half-written model never appears under the real name.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "engine/gguf/gguf.h"

namespace sluice::gguf {

namespace {

struct Bytes {
    std::vector<uint8_t> b;
    template <class T>
    void put(T x) {
        uint8_t tmp[sizeof(T)];
        std::memcpy(tmp, &x, sizeof(T));
        b.insert(b.end(), tmp, tmp + sizeof(T));
    }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        b.insert(b.end(), s.begin(), s.end());
    }
};

bool integer_of(const Value& v, __int128& out) {
    if (auto* u = std::get_if<uint64_t>(&v.v)) return out = *u, true;
    if (auto* i = std::get_if<int64_t>(&v.v)) return out = *i, true;
    return false;
}

template <class T>
bool fits(__int128 x) {
    return x >= __int128(std::numeric_limits<T>::min()) && x <= __int128(std::numeric_limits<T>::max());
}

// Integer types accept either integer alternative when the value fits; the rest need their own.
std::string check_value(const Value& v, int depth) {
    __int128 x = 0;
    const bool is_int = integer_of(v, x);
    auto range = [&](bool ok) -> std::string {
        if (!is_int) return std::string("type ") + value_type_name(v.type) + " but it holds no integer";
        if (!ok) return "value " + describe(v) + " does not fit " + value_type_name(v.type);
        return "";
    };
    switch (v.type) {
        case ValueType::UINT8: return range(fits<uint8_t>(x));
        case ValueType::INT8: return range(fits<int8_t>(x));
        case ValueType::UINT16: return range(fits<uint16_t>(x));
        case ValueType::INT16: return range(fits<int16_t>(x));
        case ValueType::UINT32: return range(fits<uint32_t>(x));
        case ValueType::INT32: return range(fits<int32_t>(x));
        case ValueType::UINT64: return range(fits<uint64_t>(x));
        case ValueType::INT64: return range(fits<int64_t>(x));
        case ValueType::FLOAT32:
        case ValueType::FLOAT64:
            return std::holds_alternative<double>(v.v) ? "" : "a float type but it holds no double";
        case ValueType::BOOL: return std::holds_alternative<bool>(v.v) ? "" : "type bool but it holds no bool";
        case ValueType::STRING:
            return std::holds_alternative<std::string>(v.v) ? "" : "type string but it holds no string";
        case ValueType::ARRAY: {
            auto* a = std::get_if<Array>(&v.v);
            if (!a) return "type array but it holds no Array";
            if (uint32_t(a->type) > uint32_t(ValueType::FLOAT64))
                return "array element type " + std::to_string(uint32_t(a->type)) + " is unknown";
            if (a->type == ValueType::ARRAY && depth + 1 >= File::kMaxArrayDepth)
                return "arrays nested more than " + std::to_string(File::kMaxArrayDepth) + " deep";
            for (size_t i = 0; i < a->items.size(); ++i) {
                const Value& it = a->items[i];
                if (it.type != a->type)
                    return "element " + std::to_string(i) + " is " + value_type_name(it.type) +
                           " in an array of " + value_type_name(a->type);
                std::string e = check_value(it, depth + 1);
                if (!e.empty()) return "element " + std::to_string(i) + ": " + e;
            }
            return "";
        }
    }
    return "unknown value type " + std::to_string(uint32_t(v.type));
}

void put_value(Bytes& out, const Value& v) {
    __int128 x = 0;
    integer_of(v, x);
    switch (v.type) {
        case ValueType::UINT8: return out.put(uint8_t(x));
        case ValueType::INT8: return out.put(int8_t(x));
        case ValueType::UINT16: return out.put(uint16_t(x));
        case ValueType::INT16: return out.put(int16_t(x));
        case ValueType::UINT32: return out.put(uint32_t(x));
        case ValueType::INT32: return out.put(int32_t(x));
        case ValueType::UINT64: return out.put(uint64_t(x));
        case ValueType::INT64: return out.put(int64_t(x));
        case ValueType::FLOAT32: return out.put(float(std::get<double>(v.v)));
        case ValueType::FLOAT64: return out.put(std::get<double>(v.v));
        case ValueType::BOOL: return out.put(uint8_t(std::get<bool>(v.v) ? 1 : 0));
        case ValueType::STRING: return out.str(std::get<std::string>(v.v));
        case ValueType::ARRAY: {
            const Array& a = std::get<Array>(v.v);
            out.put(uint32_t(a.type));
            out.put(uint64_t(a.items.size()));
            for (const Value& it : a.items) put_value(out, it);
            return;
        }
    }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

struct Writer::Impl {
    struct Tensor {
        std::string name;
        GgmlType type;
        std::vector<int64_t> ne;
        uint64_t nbytes, offset = 0;
    };
    enum class State { declaring, data, finished, failed };

    std::string path, tmp;
    uint64_t alignment;
    std::FILE* f = nullptr;
    State state = State::declaring;
    std::vector<std::pair<std::string, Value>> kv;
    std::map<std::string, size_t, std::less<>> kv_index;
    std::vector<Tensor> tensors;
    std::set<std::string, std::less<>> names;
    uint64_t data_start = 0;  // file offset of the data section
    uint64_t data_written = 0;  // tensor bytes received, all tensors
    size_t cur = 0;        // tensor receiving bytes
    uint64_t written = 0;  // bytes of tensors[cur] so far

    [[noreturn]] void fail(const std::string& msg) const { throw Error(path + ": " + msg); }

    void expect(State s, const char* call) const {
        if (state == s) return;
        if (state == State::finished) fail(std::string(call) + " after finish()");
        if (state == State::failed) fail(std::string(call) + " after an earlier write error");
        if (s == State::declaring) fail(std::string(call) + " after begin_data()");
        fail(std::string(call) + " before begin_data()");
    }

    void out(const void* p, size_t n) {
        if (n && std::fwrite(p, 1, n, f) != n) {
            state = State::failed;
            fail(std::string("write failed: ") + std::strerror(errno));
        }
    }

    void pad(uint64_t n) {
        static const uint8_t zeros[64] = {};
        while (n) {
            size_t k = std::min<uint64_t>(n, sizeof zeros);
            out(zeros, k);
            n -= k;
        }
    }

    // Skips tensors with nothing (left) to write, padding each finished one to the alignment.
    void advance() {
        while (cur < tensors.size() && written == tensors[cur].nbytes) {
            pad(align_up(written, alignment) - written);
            ++cur;
            written = 0;
        }
    }
};

Writer::Writer(const std::string& path, uint64_t alignment) : impl_(std::make_unique<Impl>()) {
    Impl& w = *impl_;
    w.path = path;
    w.tmp = path + ".tmp";
    w.alignment = alignment;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > UINT32_MAX)
        w.fail("alignment " + std::to_string(alignment) + " is not a power of two below 2^32");
    w.f = std::fopen(w.tmp.c_str(), "wb");
    if (!w.f) throw Error("cannot create '" + w.tmp + "': " + std::strerror(errno));
    std::setvbuf(w.f, nullptr, _IOFBF, 1 << 20);
    if (alignment != 32) set_u32("general.alignment", uint32_t(alignment));
}

Writer::~Writer() {
    if (!impl_ || impl_->state == Impl::State::finished) return;
    if (impl_->f) std::fclose(impl_->f);
    std::remove(impl_->tmp.c_str());
}

void Writer::set(std::string key, Value v) {
    Impl& w = *impl_;
    w.expect(Impl::State::declaring, "set()");
    if (key.empty()) w.fail("metadata key is empty");
    std::string err = check_value(v, 0);
    if (!err.empty()) w.fail("key '" + key + "': " + err);
    if (key == "general.alignment" &&
        (v.type != ValueType::UINT32 || std::get<uint64_t>(v.v) != w.alignment))
        w.fail("key 'general.alignment' must be the uint32 " + std::to_string(w.alignment) +
               " given to the Writer; got " + describe(v) + " (" + value_type_name(v.type) + ")");
    if (auto it = w.kv_index.find(key); it != w.kv_index.end()) {
        w.kv[it->second].second = std::move(v);
        return;
    }
    w.kv_index.emplace(key, w.kv.size());
    w.kv.emplace_back(std::move(key), std::move(v));
}

void Writer::set_u32(std::string key, uint32_t x) { set(std::move(key), {ValueType::UINT32, uint64_t(x)}); }
void Writer::set_i32(std::string key, int32_t x) { set(std::move(key), {ValueType::INT32, int64_t(x)}); }
void Writer::set_u64(std::string key, uint64_t x) { set(std::move(key), {ValueType::UINT64, x}); }
void Writer::set_f32(std::string key, float x) { set(std::move(key), {ValueType::FLOAT32, double(x)}); }
void Writer::set_bool(std::string key, bool x) { set(std::move(key), {ValueType::BOOL, x}); }
void Writer::set_str(std::string key, std::string s) {
    set(std::move(key), {ValueType::STRING, std::move(s)});
}

void Writer::set_str_array(std::string key, const std::vector<std::string>& a) {
    Array arr{ValueType::STRING, {}};
    arr.items.reserve(a.size());
    for (const std::string& s : a) arr.items.push_back({ValueType::STRING, s});
    set(std::move(key), {ValueType::ARRAY, std::move(arr)});
}

void Writer::set_i32_array(std::string key, const std::vector<int32_t>& a) {
    Array arr{ValueType::INT32, {}};
    arr.items.reserve(a.size());
    for (int32_t x : a) arr.items.push_back({ValueType::INT32, int64_t(x)});
    set(std::move(key), {ValueType::ARRAY, std::move(arr)});
}

void Writer::set_f32_array(std::string key, const std::vector<float>& a) {
    Array arr{ValueType::FLOAT32, {}};
    arr.items.reserve(a.size());
    for (float x : a) arr.items.push_back({ValueType::FLOAT32, double(x)});
    set(std::move(key), {ValueType::ARRAY, std::move(arr)});
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne) {
    Impl& w = *impl_;
    w.expect(Impl::State::declaring, "add_tensor()");
    const std::string what = "tensor '" + name + "': ";
    if (name.empty()) w.fail("tensor name is empty");
    if (w.names.count(name)) w.fail("duplicate tensor name '" + name + "'");
    auto ti = type_info(uint32_t(type));
    if (!ti) w.fail(what + "type id " + std::to_string(uint32_t(type)) + " is unknown");
    if (ne.empty() || ne.size() > 4)
        w.fail(what + std::to_string(ne.size()) + " dimensions; expected 1 to 4");
    int64_t n = 1;
    for (size_t d = 0; d < ne.size(); ++d) {
        if (ne[d] < 0)
            w.fail(what + "dimension " + std::to_string(d) + " is " + std::to_string(ne[d]) +
                   "; expected >= 0");
        if (__builtin_mul_overflow(n, ne[d], &n)) w.fail(what + "more than 2^63-1 elements");
    }
    if (ne[0] % ti->block_size != 0)
        w.fail(what + "rows of " + std::to_string(ne[0]) + " elements are not a multiple of " +
               ti->name + "'s block size " + std::to_string(ti->block_size));
    uint64_t nbytes;
    if (__builtin_mul_overflow(uint64_t(n / ti->block_size), uint64_t(ti->type_size), &nbytes))
        w.fail(what + "more than 2^64 bytes");
    w.names.insert(name);
    w.tensors.push_back({std::move(name), type, std::move(ne), nbytes});
}

void Writer::begin_data() {
    Impl& w = *impl_;
    w.expect(Impl::State::declaring, "begin_data()");
    uint64_t off = 0;
    for (Impl::Tensor& t : w.tensors) {
        t.offset = off;
        if (__builtin_add_overflow(off, align_up(t.nbytes, w.alignment), &off))
            w.fail("tensor '" + t.name + "': data section exceeds 2^64 bytes");
    }
    Bytes h;
    h.put<uint32_t>(0x46554747);  // "GGUF" in little-endian byte order
    h.put<uint32_t>(3);
    h.put<uint64_t>(w.tensors.size());
    h.put<uint64_t>(w.kv.size());
    for (const auto& [key, v] : w.kv) {
        h.str(key);
        h.put(uint32_t(v.type));
        put_value(h, v);
    }
    for (const Impl::Tensor& t : w.tensors) {
        h.str(t.name);
        h.put(uint32_t(t.ne.size()));
        for (int64_t x : t.ne) h.put(x);
        h.put(uint32_t(t.type));
        h.put(t.offset);
    }
    w.state = Impl::State::data;
    w.out(h.b.data(), h.b.size());
    w.pad(align_up(h.b.size(), w.alignment) - h.b.size());
    w.data_start = align_up(h.b.size(), w.alignment);
    w.advance();
}

void Writer::write_data(const void* bytes, size_t n) {
    Impl& w = *impl_;
    w.expect(Impl::State::data, "write_data()");
    if (n == 0) return;
    if (w.cur == w.tensors.size())
        w.fail("write_data(): " + std::to_string(n) + " bytes after all " +
               std::to_string(w.tensors.size()) + " tensors are complete");
    const Impl::Tensor& t = w.tensors[w.cur];
    if (n > t.nbytes - w.written)
        w.fail("tensor '" + t.name + "': write_data() of " + std::to_string(n) + " bytes, but only " +
               std::to_string(t.nbytes - w.written) + " of its " + std::to_string(t.nbytes) +
               " bytes are left");
    w.out(bytes, n);
    w.written += n;
    w.data_written += n;
    w.advance();
}

void Writer::finish() { close(false); }

void Writer::finish_header_only() { close(true); }

void Writer::close(bool header_only) {
    Impl& w = *impl_;
    const char* call = header_only ? "finish_header_only()" : "finish()";
    if (w.state == Impl::State::declaring) begin_data();
    w.expect(Impl::State::data, call);
    if (header_only && w.data_written > 0)
        w.fail(std::string(call) + ": tensor data was already written");
    if (!header_only && w.cur < w.tensors.size()) {
        const Impl::Tensor& t = w.tensors[w.cur];
        w.fail("finish(): tensor '" + t.name + "' has " + std::to_string(w.written) + " of its " +
               std::to_string(t.nbytes) + " bytes (" + std::to_string(w.tensors.size() - w.cur - 1) +
               " more tensors not written)");
    }
    uint64_t end = w.data_start;
    if (!w.tensors.empty()) end += w.tensors.back().offset + align_up(w.tensors.back().nbytes, w.alignment);
    std::FILE* f = w.f;
    w.f = nullptr;
    w.state = Impl::State::failed;  // until the rename succeeds
    bool ok = std::fflush(f) == 0 && (!header_only || ftruncate(fileno(f), off_t(end)) == 0) && fsync(fileno(f)) == 0;
    int e = errno;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) w.fail(std::string("write failed: ") + std::strerror(e ? e : errno));
    if (std::rename(w.tmp.c_str(), w.path.c_str()) != 0)
        w.fail("cannot rename '" + w.tmp + "' into place: " + std::strerror(errno));
    w.state = Impl::State::finished;
}

}  // namespace sluice::gguf
