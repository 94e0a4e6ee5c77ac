// GGUF reader: header, metadata, tensor infos, checks on where the tensor data lies.
// Layout (v2 and v3 are the same little-endian layout; v1 had 32-bit counts):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key, u32 type, value),
//   n_tensors x (string name, u32 n_dims, n_dims x i64 ne, u32 type, u64 offset),
//   padding to `general.alignment` (default 32), then the data section; offsets are relative to it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "engine/gguf/cursor.h"
#include "engine/gguf/gguf.h"

namespace sluice::gguf {

namespace {

constexpr uint32_t kMaxValueType = uint32_t(ValueType::FLOAT64);

// Printable ASCII as it is, the rest as \xNN: "PK\x03\x04".
std::string quote_bytes(const uint8_t* p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) {
        if (p[i] >= 0x20 && p[i] != 0x7f && p[i] != '\\' && p[i] != '\'' && p[i] < 0x80) {
            s += char(p[i]);
        } else {
            s += "\\x";
            s += hex[p[i] >> 4];
            s += hex[p[i] & 15];
        }
    }
    return s;
}

// Fewest bytes a value of this type takes in the file; bounds array counts before any allocation.
uint64_t min_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
        case ValueType::UINT16: case ValueType::INT16: return 2;
        case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
        case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
        case ValueType::STRING: return 8;   // the length
        case ValueType::ARRAY: return 12;   // element type + count
    }
    return 1;
}

std::string array_desc(ValueType et, uint64_t n) {
    std::string s = "array of " + std::to_string(n) + " ";
    if (et == ValueType::STRING) return s + "strings";
    if (et == ValueType::ARRAY) return s + "arrays";
    return s + value_type_name(et);
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Names from the file go into one-line messages shown on a terminal: no control bytes, bounded.
std::string printable(const std::string& name) {
    auto* p = reinterpret_cast<const uint8_t*>(name.data());
    if (name.size() > 200) return quote_bytes(p, 200) + "...";
    return quote_bytes(p, name.size());
}

}  // namespace

struct FileParser {
    File& f;
    Cursor c;
    uint64_t n_values = 0;
    std::string item;  // "metadata key #3 'x'": the top-level item being read

    FileParser(File& file, const uint8_t* bytes, uint64_t size, uint64_t window = UINT64_MAX)
        : f(file), c(bytes, size, file.path_, window) {}

    void parse() {
        auto [n_tensors, n_kv] = header();
        metadata(n_kv);
        alignment();
        tensor_infos(n_tensors);
        f.data_offset_ = align_up(c.pos(), f.alignment_);
        tensor_data();
    }

    std::pair<uint64_t, uint64_t> header() {
        const uint8_t* p = c.here();
        size_t n = std::min<uint64_t>(4, c.left());
        if (std::memcmp(p, "GGUF", n) != 0)
            c.fail("not a GGUF file (magic '" + quote_bytes(p, n) + "', expected 'GGUF')");
        c.set_item("the magic");
        c.need(4);
        c.read<uint32_t>();
        c.set_item("the version");
        uint32_t version = c.read<uint32_t>();
        // A big-endian file's small version number reads as a multiple of 2^16 here.
        if (version != 0 && (version & 0xffff) == 0)
            c.fail("big-endian GGUF (version " + std::to_string(__builtin_bswap32(version)) +
                   " byte-swapped); only little-endian files are supported");
        if (version == 1)
            c.fail("GGUF version 1 is not supported (expected 2 or 3); convert the model again with a "
                   "current llama.cpp");
        if (version != 2 && version != 3)
            c.fail("unsupported GGUF version " + std::to_string(version) + " (expected 2 or 3)");
        f.version_ = version;
        c.set_item("the tensor count");
        uint64_t n_tensors = c.read<uint64_t>();
        c.set_item("the metadata count");
        uint64_t n_kv = c.read<uint64_t>();
        // Smallest entries: key of 1 byte + type + 1-byte value; name of 0 bytes + n_dims 0 + type +
        // offset. Each count alone is checked now, so neither sizes an allocation past the file;
        // a file that is merely cut short gets the precise "truncated while reading" message later.
        constexpr uint64_t kv_min = 8 + 1 + 4 + 1, tensor_min = 8 + 4 + 4 + 8;
        if (n_kv > c.left() / kv_min || n_tensors > c.left() / tensor_min)
            c.fail("header claims " + std::to_string(n_tensors) + " tensors and " +
                   std::to_string(n_kv) + " metadata entries, more than the remaining " +
                   std::to_string(c.left()) + " bytes could hold (truncated or corrupt file)");
        return {n_tensors, n_kv};
    }

    void count_values(uint64_t n) {
        if (n > File::kMaxValues - n_values)
            c.fail(item + ": more than " + std::to_string(File::kMaxValues) +
                   " metadata values in all (sluice's limit)");
        n_values += n;
    }

    Value read_array(int depth) {
        if (depth > File::kMaxArrayDepth)
            c.fail(item + ": arrays nested more than " + std::to_string(File::kMaxArrayDepth) +
                   " deep");
        uint32_t et = c.read<uint32_t>();
        if (et > kMaxValueType)
            c.fail(item + ": array element type " + std::to_string(et) + " is unknown (expected 0.." +
                   std::to_string(kMaxValueType) + ")");
        uint64_t n = c.read<uint64_t>();
        ValueType t = ValueType(et);
        if (depth == 1) c.set_item(item + " (" + array_desc(t, n) + ")");
        if (n > c.left() / min_size(t))
            c.truncated("at least " + std::to_string(n) + " x " + std::to_string(min_size(t)));
        count_values(n);
        Array a{t, {}};
        a.items.reserve(n);
        for (uint64_t i = 0; i < n; ++i) {
            if (depth == 1) c.set_element(int64_t(i));
            a.items.push_back(read_value(t, depth));
        }
        return Value{ValueType::ARRAY, std::move(a)};
    }

    Value read_value(ValueType t, int depth) {
        switch (t) {
            case ValueType::UINT8: return {t, uint64_t(c.read<uint8_t>())};
            case ValueType::INT8: return {t, int64_t(c.read<int8_t>())};
            case ValueType::UINT16: return {t, uint64_t(c.read<uint16_t>())};
            case ValueType::INT16: return {t, int64_t(c.read<int16_t>())};
            case ValueType::UINT32: return {t, uint64_t(c.read<uint32_t>())};
            case ValueType::INT32: return {t, int64_t(c.read<int32_t>())};
            case ValueType::UINT64: return {t, c.read<uint64_t>()};
            case ValueType::INT64: return {t, c.read<int64_t>()};
            case ValueType::FLOAT32: return {t, double(c.read<float>())};
            case ValueType::FLOAT64: return {t, c.read<double>()};
            case ValueType::STRING: return {t, c.read_string()};
            case ValueType::ARRAY: return read_array(depth + 1);
            case ValueType::BOOL: {
                uint8_t b = c.read<uint8_t>();
                if (b > 1)
                    c.fail(item + ": bool byte at offset " + std::to_string(c.pos() - 1) + " is " +
                           std::to_string(b) + "; expected 0 or 1");
                return {t, b == 1};
            }
        }
        c.fail(item + ": unknown value type");  // unreachable: types are checked by the callers
    }

    void metadata(uint64_t n_kv) {
        f.kv_.reserve(n_kv);
        for (uint64_t i = 0; i < n_kv; ++i) {
            item = "metadata key #" + std::to_string(i);
            c.set_item(item);
            std::string key = c.read_string();
            if (key.empty()) c.fail(item + ": empty key");
            item += " '" + printable(key) + "'";
            c.set_item(item);
            if (auto it = f.kv_index_.find(key); it != f.kv_index_.end())
                c.fail("duplicate metadata key '" + printable(key) + "' (#" + std::to_string(it->second) +
                       " and #" + std::to_string(i) + ")");
            uint32_t type = c.read<uint32_t>();
            if (type > kMaxValueType)
                c.fail(item + ": value type " + std::to_string(type) + " is unknown (expected 0.." +
                       std::to_string(kMaxValueType) + ")");
            count_values(1);
            Value v = read_value(ValueType(type), 0);
            f.kv_index_.emplace(key, f.kv_.size());
            f.kv_.emplace_back(std::move(key), std::move(v));
        }
    }

    void alignment() {
        const Value* v = f.find("general.alignment");
        if (!v) return;
        if (v->type != ValueType::UINT32)
            c.fail("general.alignment is " + describe_type(*v) + "; expected a uint32");
        uint64_t a = std::get<uint64_t>(v->v);
        if (a == 0 || (a & (a - 1)) != 0)
            c.fail("general.alignment is " + std::to_string(a) + "; expected a nonzero power of two");
        f.alignment_ = a;
    }

    void tensor_infos(uint64_t n) {
        f.tensors_.reserve(n);
        for (uint64_t i = 0; i < n; ++i) {
            item = "tensor info #" + std::to_string(i);
            c.set_item(item);
            TensorInfo t{};
            t.name = c.read_string();
            item += " '" + printable(t.name) + "'";
            c.set_item(item);
            if (auto it = f.tensor_index_.find(t.name); it != f.tensor_index_.end())
                c.fail("duplicate tensor name '" + printable(t.name) + "' (tensor infos #" +
                       std::to_string(it->second) + " and #" + std::to_string(i) + ")");
            const std::string what = "tensor '" + printable(t.name) + "': ";
            t.n_dims = c.read<uint32_t>();
            if (t.n_dims > 4)
                c.fail(what + std::to_string(t.n_dims) + " dimensions; expected at most 4");
            for (int d = 0; d < 4; ++d) t.ne[d] = 1;
            for (uint32_t d = 0; d < t.n_dims; ++d) {
                t.ne[d] = c.read<int64_t>();
                if (t.ne[d] < 0)
                    c.fail(what + "dimension " + std::to_string(d) + " is " + std::to_string(t.ne[d]) +
                           "; expected >= 0");
            }
            uint32_t type = c.read<uint32_t>();
            t.offset = c.read<uint64_t>();  // relative until tensor_data()
            auto ti = type_info(type);
            if (!ti) c.fail(what + "type id " + std::to_string(type) + " is unknown");
            t.type = GgmlType(type);
            t.nbytes = checked_nbytes(t, *ti, what);
            f.tensor_index_.emplace(t.name, f.tensors_.size());
            f.tensors_.push_back(std::move(t));
        }
    }

    uint64_t checked_nbytes(const TensorInfo& t, const TypeInfo& ti, const std::string& what) {
        int64_t n = 1;
        for (int64_t d : t.ne)
            if (__builtin_mul_overflow(n, d, &n))
                c.fail(what + "shape " + shape_string(t) + " has more than 2^63-1 elements");
        if (t.ne[0] % ti.block_size != 0)
            c.fail(what + "rows of " + std::to_string(t.ne[0]) + " elements are not a multiple of " +
                   ti.name + "'s block size " + std::to_string(ti.block_size));
        uint64_t bytes;
        if (__builtin_mul_overflow(uint64_t(n / ti.block_size), uint64_t(ti.type_size), &bytes))
            c.fail(what + "shape " + shape_string(t) + " of type " + ti.name +
                   " needs more than 2^64 bytes");
        return bytes;
    }

    void tensor_data() {
        const uint64_t size = f.file_size_;
        for (TensorInfo& t : f.tensors_) {
            const std::string what = "tensor '" + printable(t.name) + "': ";
            if (t.offset % f.alignment_ != 0)
                c.fail(what + "offset " + std::to_string(t.offset) +
                       " in the data section is not a multiple of the alignment " +
                       std::to_string(f.alignment_));
            // Saturating: an offset near 2^64 must read as "past the end", not wrap around.
            uint64_t start, end;
            if (__builtin_add_overflow(f.data_offset_, t.offset, &start) ||
                __builtin_add_overflow(start, t.nbytes, &end))
                c.fail(what + "data at offset " + std::to_string(t.offset) + " (+" +
                       std::to_string(t.nbytes) + " bytes) lies past 2^64, the file has " +
                       std::to_string(size) + " bytes");
            if (end > size)
                c.fail(what + "data ends at byte " + std::to_string(end) + " but the file has " +
                       std::to_string(size) + " bytes");
            t.offset = start;
        }
        std::vector<const TensorInfo*> by_offset;
        for (const TensorInfo& t : f.tensors_)
            if (t.nbytes > 0) by_offset.push_back(&t);
        std::sort(by_offset.begin(), by_offset.end(),
                  [](auto* a, auto* b) { return a->offset < b->offset; });
        for (size_t i = 1; i < by_offset.size(); ++i) {
            const TensorInfo& a = *by_offset[i - 1];
            const TensorInfo& b = *by_offset[i];
            if (a.offset + a.nbytes > b.offset)
                c.fail("tensors '" + printable(a.name) + "' (bytes " + std::to_string(a.offset) + ".." +
                       std::to_string(a.offset + a.nbytes) + ") and '" + printable(b.name) + "' (bytes " +
                       std::to_string(b.offset) + ".." + std::to_string(b.offset + b.nbytes) +
                       ") overlap");
        }
    }
};

namespace {

// Reads [off, off + n) fully; Error naming the file on failure or a short read (file changed).
void pread_all(int fd, uint8_t* dst, uint64_t n, uint64_t off, const std::string& path) {
    while (n > 0) {
        ssize_t r = ::pread(fd, dst, size_t(std::min<uint64_t>(n, 1u << 30)), off_t(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw Error("reading '" + path + "' at offset " + std::to_string(off) + ": " + std::strerror(errno));
        if (r == 0) throw Error("reading '" + path + "' at offset " + std::to_string(off) + ": unexpected end of file (truncated while open?)");
        dst += r;
        off += uint64_t(r);
        n -= uint64_t(r);
    }
}

}  // namespace

std::unique_ptr<File> File::open(const std::string& path, const OpenOptions& opt) {
    // O_NONBLOCK: a FIFO must be refused below, not wait for a writer. No effect on regular files.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw Error("cannot stat '" + path + "': " + std::strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        ::close(fd);
        throw Error("'" + path + "' is a directory, not a GGUF file");
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error("'" + path + "' is not a regular file");
    }
    if (st.st_size == 0) {
        ::close(fd);
        throw Error("'" + path + "' is empty (0 bytes), not a GGUF file");
    }
    const uint64_t size = uint64_t(st.st_size);
    if (!opt.map) return open_unmapped(path, fd, size, std::max<uint64_t>(opt.header_window, 64));

    void* m = mmap(nullptr, size_t(size), PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    ::close(fd);  // the mapping keeps the file alive
    if (m == MAP_FAILED) throw Error("cannot map '" + path + "': " + std::strerror(e));

    std::unique_ptr<File> f(new File());  // owns the mapping from here: a parse error unmaps it
    f->path_ = path;
    f->map_ = static_cast<const uint8_t*>(m);
    f->file_size_ = size;
    FileParser(*f, f->map_, f->file_size_).parse();
    return f;
}

// The header is read into a window that grows until the parser has all it needs (4 MiB covers most
// models; a 150k-token vocabulary takes a few MiB more). The same bounds-checked parser runs over it.
std::unique_ptr<File> File::open_unmapped(const std::string& path, int fd, uint64_t size, uint64_t window) {
    std::unique_ptr<File> f;
    try {
        std::vector<uint8_t> head;
        window = std::min(size, window);
        for (;;) {
            const uint64_t have = head.size();
            head.resize(size_t(window));
            pread_all(fd, head.data() + have, window - have, have, path);
            f.reset(new File());
            f->path_ = path;
            f->file_size_ = size;
            f->mapped_ = false;
            try {
                FileParser(*f, head.data(), size, window).parse();
                break;
            } catch (const Cursor::NeedMore& m) {
                if (m.needed > kMaxHeaderBytes)
                    throw Error(path + ": metadata and tensor infos need more than " +
                                std::to_string(kMaxHeaderBytes >> 20) + " MiB (" + std::to_string(m.needed) +
                                " bytes); sluice reads at most that much header");
                window = std::min(size, std::max(window * 4, m.needed + (1u << 20)));
            }
        }
    } catch (...) {
        ::close(fd);
        throw;
    }
    f->fd_ = fd;
    // The resident copy's address range: reserved, inaccessible until load_resident() fills parts.
    void* m = mmap(nullptr, size_t(size), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw Error("cannot reserve address space for '" + path + "': " + std::strerror(errno));
    f->map_ = static_cast<const uint8_t*>(m);
    return f;
}

File::~File() {
    if (map_) munmap(const_cast<uint8_t*>(map_), size_t(file_size_));
    if (fd_ >= 0) ::close(fd_);
}

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string shape_string(const TensorInfo& t) {
    std::string s = "(";
    for (uint32_t d = 0; d < t.n_dims && d < 4; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + ")";
}

}  // namespace sluice::gguf
