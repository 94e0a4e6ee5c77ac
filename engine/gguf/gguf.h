// GGUF v2/v3 reader and streaming writer. The file is untrusted input: every field is checked and
// errors (sluice::Error) name the file, the item, what was expected and what was found.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/error.h"
#include "engine/tensor/types.h"

namespace sluice::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char* value_type_name(ValueType t);  // "uint32", "string", "array"; "unknown" past FLOAT64

struct Value;
struct Array {
    ValueType type;             // element type (ARRAY for nested arrays)
    std::vector<Value> items;
};
// One metadata value. Scalars widen into the three numeric alternatives; `type` keeps the file's type.
struct Value {
    ValueType type;
    std::variant<uint64_t, int64_t, double, bool, std::string, Array> v;
};
// For info output and error messages: "42", "\"qwen3moe\"", "[1, 2, 3, ... (151643 items)]".
std::string describe(const Value& v, size_t max_items = 8);
// What kind of value this is, with an article: "a uint32", "a string", "an array of 3 int32".
std::string describe_type(const Value& v);

struct TensorInfo {
    std::string name;
    GgmlType type;
    uint32_t n_dims;
    int64_t ne[4];      // ggml order: ne[0] is the contiguous (row) dimension; unused dims are 1
    uint64_t offset;    // absolute offset of the data in the file
    uint64_t nbytes;    // bytes of data
    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};
// "(2048, 768, 128)": the first n_dims entries of ne.
std::string shape_string(const TensorInfo& t);

struct OpenOptions {
    // false: nothing of the file is mapped. The header is read with pread; tensor bytes are reachable
    // through data() only once load_resident() has read them into RAM. The rest (routed experts) is
    // read on demand through fd(): a model larger than RAM must not depend on the page cache.
    bool map = true;
    uint64_t header_window = 4u << 20;  // unmapped: bytes read first; grows x4 while the parser needs more
};

class File {
public:
    // Maps the file read-only (or reads its header, see OpenOptions), then reads and validates the header, metadata and tensor infos through
    // a bounds-checked cursor over the bytes (cursor.h; it does not care how they got into memory).
    // Accepted, as llama.cpp does: n_dims 0..4 and dimensions of size 0 (such a tensor has 0 bytes);
    // tensor data in any order, if aligned, inside the file and not overlapping another tensor.
    // Rejected beyond that: empty or duplicate keys, bool bytes other than 0/1, arrays nested deeper
    // than kMaxArrayDepth, more than kMaxValues metadata values in all (each becomes a 48-byte
    // Value, so a small file must not make a huge tree; real files have ~1M).
    static constexpr int kMaxArrayDepth = 8;
    static constexpr uint64_t kMaxValues = uint64_t(1) << 24;
    static constexpr uint64_t kMaxHeaderBytes = uint64_t(1) << 30;  // unmapped files: header read at most
    static std::unique_ptr<File> open(const std::string& path, const OpenOptions& opt = {});
    ~File();
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return file_size_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;

    // Typed getters. A missing key or a value of an incompatible type throws an Error that names the
    // key, the file and what was found ("key 'qwen3moe.block_count' in m.gguf is a string; expected an
    // integer", "m.gguf: missing required key 'qwen3moe.expert_count'"). Integer getters
    // accept any integer type whose value fits; float getters accept floats and integers.
    uint64_t get_uint(std::string_view key) const;
    int64_t get_int(std::string_view key) const;
    double get_float(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    const std::string& get_string(std::string_view key) const;
    const Array& get_array(std::string_view key) const;
    // ..._or(): default when the key is absent (still an error when present with a wrong type).
    uint64_t get_uint_or(std::string_view key, uint64_t def) const;
    double get_float_or(std::string_view key, double def) const;
    bool get_bool_or(std::string_view key, bool def) const;
    std::string get_string_or(std::string_view key, std::string def) const;
    std::vector<std::string> get_string_array(std::string_view key) const;
    std::vector<int64_t> get_int_array(std::string_view key) const;
    std::vector<double> get_float_array(std::string_view key) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    // Throws unless present with exactly this shape (ggml order, trailing 1s ignored):
    // "tensor 'blk.3.ffn_up_exps' in m.gguf has shape (2048, 768, 64); expected (2048, 768, 128)".
    const TensorInfo& require_tensor(std::string_view name, std::initializer_list<int64_t> shape) const;

    // Tensor bytes inside the read-only mapping (valid while the File lives). Unmapped files: inside
    // the resident copy; only tensors load_resident() kept may be read (the others' addresses are
    // reserved but inaccessible: a stray read faults instead of silently touching the disk).
    const uint8_t* data(const TensorInfo& t) const { return map_ + t.offset; }
    const uint8_t* mapping() const { return map_; }
    bool mapped() const { return mapped_; }

    // Unmapped files: reads the tensors `keep` selects into RAM (O_DIRECT when `direct` and the
    // filesystem allows it, else buffered reads), at their file offsets in one reserved address range
    // so data() works as for a mapping. Call once. Returns the bytes now resident (page-rounded).
    uint64_t load_resident(const std::function<bool(const TensorInfo&)>& keep, bool direct);
    uint64_t resident_bytes() const { return resident_bytes_; }
    // Unmapped files: a read-only descriptor of the file as opened (a file replaced on disk later is
    // not seen). Reopen /proc/self/fd/<fd> for another open file (other flags, own readahead state).
    int fd() const { return fd_; }

private:
    File() = default;
    static std::unique_ptr<File> open_unmapped(const std::string& path, int fd, uint64_t size, uint64_t window);
    std::string path_;
    uint32_t version_ = 0;
    uint64_t file_size_ = 0, alignment_ = 32, data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<TensorInfo> tensors_;
    const uint8_t* map_ = nullptr;   // the file mapping, or the reserved range of the resident copy
    bool mapped_ = true;
    int fd_ = -1;
    uint64_t resident_bytes_ = 0;
    std::map<std::string, size_t, std::less<>> kv_index_, tensor_index_;
    friend struct FileParser;
};

// Streams a GGUF v3 file: declare metadata and tensors, then write each tensor's bytes in declaration
// order. Nothing but the header is held in memory. Errors are sluice::Error naming the item; a call
// that throws for bad arguments changes nothing. Bytes go to PATH.tmp, renamed to PATH by finish().
class Writer {
public:
    // alignment: a power of two; when not 32 it is written as `general.alignment` (uint32).
    explicit Writer(const std::string& path, uint64_t alignment = 32);
    ~Writer();  // an unfinished file is removed

    void set(std::string key, Value v);  // replaces an existing key, keeps first position
    void set_u32(std::string key, uint32_t x);
    void set_i32(std::string key, int32_t x);
    void set_u64(std::string key, uint64_t x);
    void set_f32(std::string key, float x);
    void set_bool(std::string key, bool x);
    void set_str(std::string key, std::string s);
    void set_str_array(std::string key, const std::vector<std::string>& a);
    void set_i32_array(std::string key, const std::vector<int32_t>& a);
    void set_f32_array(std::string key, const std::vector<float>& a);

    // ne in ggml order (ne[0] = row length, must be a multiple of the type's block size).
    void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne);

    // Writes header + tensor infos. After this, only write_data / finish.
    void begin_data();
    // Appends bytes of the current tensor (may be called several times per tensor); moves to the next
    // tensor when its byte count is reached. Throws if more bytes arrive than the current tensor has
    // left: one call never spans two tensors.
    void write_data(const void* bytes, size_t n);
    // Checks every tensor was written in full, flushes, renames the temp file into place. Calls
    // begin_data() first if needed (a file with no tensors).
    void finish();
    // Ends a file whose tensor bytes are not written (none may have been): the header, then the file
    // extended to its full size as a hole, so it is sparse (no disk blocks; the data reads as zeros).
    // For `gen-model --dry-run`: `sluice info` reads a 200 GB model's header without 200 GB of disk.
    void finish_header_only();

private:
    void close(bool header_only);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::gguf
