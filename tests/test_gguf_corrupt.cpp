// Hostile and broken GGUF files, built byte by byte: each must give one clear line that names the
// file, the item, and what was expected vs found; none may crash or allocate from a header field.
#include <sys/stat.h>

#include <algorithm>
#include <random>

#include "tests/gguf_test_util.h"

using namespace gguf_test;
using sluice::GgmlType;

namespace {

constexpr uint32_t kU8 = 0, kBool = 7, kString = 8, kArray = 9, kU64 = 10;
constexpr uint32_t kF32 = 0, kQ8_0 = 8;

// One tensor 'w' (4 f32 unless told) at relative `offset`: 57 bytes of header, data at 64, 80 bytes.
Bytes one_tensor_file(uint64_t offset = 0, std::vector<int64_t> ne = {4}, uint32_t type = kF32) {
    Bytes b;
    b.header(3, 1, 0).tensor("w", ne, type, offset).pad_to(32).zeros(16);
    return b;
}

// EXPECT that the file's error message contains every part, is one line and names the file.
void expect_error(const std::string& name, const Bytes& bytes, std::vector<std::string> parts) {
    std::string msg = error_for(name, bytes);
    ASSERT_FALSE(msg.empty()) << name << " opened";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_HAS(msg, scratch(name) + ": ");
    for (const std::string& p : parts) EXPECT_HAS(msg, p);
}

}  // namespace

TEST(GgufOpen, MissingFile) {
    EXPECT_EQ(open_error("/nonexistent/x.gguf"), "cannot open '/nonexistent/x.gguf': No such file or directory");
}

TEST(GgufOpen, Directory) {
    std::string dir = scratch("a_directory");
    std::filesystem::create_directories(dir);
    EXPECT_EQ(open_error(dir), "'" + dir + "' is a directory, not a GGUF file");
}

TEST(GgufOpen, EmptyFile) {
    std::string path = scratch("e.gguf");
    write_file(path, {});
    EXPECT_EQ(open_error(path), "'" + path + "' is empty (0 bytes), not a GGUF file");
}

TEST(GgufOpen, NotARegularFile) {
    EXPECT_EQ(open_error("/dev/null"), "'/dev/null' is not a regular file");
    std::string path = scratch("fifo.gguf");  // must not block waiting for a writer
    std::filesystem::remove(path);
    ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
    EXPECT_EQ(open_error(path), "'" + path + "' is not a regular file");
    std::filesystem::remove(path);
}

TEST(GgufOpen, TextAndZipFiles) {
    Bytes text;
    text.raw("hello, world\n", 13);
    expect_error("text.gguf", text, {"not a GGUF file (magic 'hell', expected 'GGUF')"});
    Bytes zip;
    zip.raw("PK\x03\x04rest", 8);
    expect_error("model.zip", zip, {"not a GGUF file (magic 'PK\\x03\\x04', expected 'GGUF')"});
    Bytes tiny;
    tiny.raw("x", 1);
    expect_error("tiny.gguf", tiny, {"not a GGUF file (magic 'x', expected 'GGUF')"});
    Bytes prefix;
    prefix.raw("GG", 2);
    expect_error("prefix.gguf", prefix, {"truncated while reading the magic at offset 0"});
}

TEST(GgufCorrupt, Versions) {
    Bytes be;
    be.raw("GGUF", 4).u32(__builtin_bswap32(3)).u64(0).u64(0);
    expect_error("be.gguf", be, {"big-endian GGUF (version 3 byte-swapped)", "only little-endian"});
    Bytes v1;
    v1.header(1, 0, 0);
    expect_error("v1.gguf", v1, {"GGUF version 1 is not supported (expected 2 or 3)"});
    Bytes v4;
    v4.header(4, 0, 0);
    expect_error("v4.gguf", v4, {"unsupported GGUF version 4 (expected 2 or 3)"});
    Bytes v0;
    v0.header(0, 0, 0);
    expect_error("v0.gguf", v0, {"unsupported GGUF version 0"});
}

TEST(GgufCorrupt, Version2IsRead) {
    Bytes b;
    b.header(2, 1, 1).kv_str("general.architecture", "qwen3moe").tensor("w", {4}, kF32, 0).pad_to(32).zeros(16);
    std::string path = scratch("v2.gguf");
    write_file(path, b.b);
    auto f = File::open(path);
    EXPECT_EQ(f->version(), 2u);
    EXPECT_EQ(f->get_string("general.architecture"), "qwen3moe");
    EXPECT_EQ(f->tensors()[0].offset, 128u);  // 105 bytes of header, padded
}

// Every prefix of a valid file must fail cleanly: no crash, one line, a message about the cut.
TEST(GgufCorrupt, TruncatedAtEveryByte) {
    std::string full_path = scratch("full.gguf");
    {
        Writer w(full_path, 64);
        w.set_str("general.architecture", "qwen3moe");
        w.set_str_array("tokenizer.ggml.tokens", {"a", "bc", ""});
        w.set_f32_array("scores", {1, 2});
        w.set("nested", {ValueType::ARRAY, Array{ValueType::ARRAY, {{ValueType::ARRAY,
                          Array{ValueType::UINT16, {{ValueType::UINT16, uint64_t(5)}}}}}}});
        w.set_bool("flag", true);
        w.add_tensor("a", GgmlType::F32, {8});
        w.add_tensor("b", GgmlType::Q8_0, {32, 2});
        w.begin_data();
        std::vector<uint8_t> zero(68);
        w.write_data(zero.data(), 32);
        w.write_data(zero.data(), 68);
        w.finish();
    }
    std::vector<uint8_t> full = read_all(full_path);
    ASSERT_EQ(open_error(full_path), "");
    // The padding after the last tensor is not needed: cut anywhere before the end of its data.
    auto opened = File::open(full_path);
    const size_t data_end = opened->tensors().back().offset + opened->tensors().back().nbytes;
    ASSERT_LT(data_end, full.size());
    std::string path = scratch("cut.gguf");
    for (size_t n = 1; n < data_end; ++n) {
        write_file(path, std::vector<uint8_t>(full.begin(), full.begin() + n));
        std::string msg = open_error(path);
        ASSERT_FALSE(msg.empty()) << "a file cut to " << n << " bytes opened";
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        bool explained = msg.find("truncated while reading") != std::string::npos ||
                         msg.find("more than the remaining") != std::string::npos ||
                         msg.find("data ends at byte") != std::string::npos;
        EXPECT_TRUE(explained) << "cut at " << n << ": " << msg;
    }
    // A cut inside the token array names the key, the array, the element and the offset.
    const std::string key = "tokenizer.ggml.tokens";
    size_t at = std::search(full.begin(), full.end(), key.begin(), key.end()) - full.begin();
    size_t elem0 = at + key.size() + 4 + 4 + 8;  // type, element type, count
    write_file(path, std::vector<uint8_t>(full.begin(), full.begin() + elem0 + 5));
    EXPECT_EQ(open_error(path), path + ": truncated while reading metadata key #2 'tokenizer.ggml.tokens' "
                                       "(array of 3 strings) at offset " + std::to_string(elem0) +
                                       ": needs at least 3 x 8 bytes, the file has 5 left");
    // Elements "a", "bc", "" take 9 + 10 + 8 bytes: cut inside the third one.
    write_file(path, std::vector<uint8_t>(full.begin(), full.begin() + elem0 + 24));
    EXPECT_EQ(open_error(path), path + ": truncated while reading metadata key #2 'tokenizer.ggml.tokens' "
                                       "(array of 3 strings), element 2 at offset " + std::to_string(elem0 + 19) +
                                       ": needs 8 bytes, the file has 5 left");
}

TEST(GgufCorrupt, HugeStringLengths) {
    Bytes key;
    key.header(3, 0, 1).u64(1ull << 60).raw("abc", 3).zeros(16);
    expect_error("key_len.gguf", key, {"truncated while reading metadata key #0 (string of 1152921504606846976 bytes) at offset 24",
                                       "needs 8 + 1152921504606846976 bytes, the file has 27 left"});
    Bytes val;
    val.header(3, 0, 1).str("general.name").u32(kString).u64(~0ull).raw("abc", 3);
    expect_error("val_len.gguf", val, {"metadata key #0 'general.name' (string of 18446744073709551615 bytes)"});
    Bytes name;
    name.header(3, 1, 0).u64(1ull << 62).zeros(40);
    expect_error("name_len.gguf", name, {"truncated while reading tensor info #0 (string of 4611686018427387904 bytes)"});
}

TEST(GgufCorrupt, HugeArrayCounts) {
    Bytes u8s;
    u8s.header(3, 0, 1).str("k").u32(kArray).u32(kU8).u64(1ull << 62).zeros(16);
    expect_error("arr_u8.gguf", u8s, {"metadata key #0 'k' (array of 4611686018427387904 uint8) at offset",
                                      "needs at least 4611686018427387904 x 1 bytes, the file has 16 left"});
    Bytes strs;
    strs.header(3, 0, 1).str("tokenizer.ggml.tokens").u32(kArray).u32(kString).u64(151643).str("a").str("b");
    expect_error("arr_str.gguf", strs, {"metadata key #0 'tokenizer.ggml.tokens' (array of 151643 strings)",
                                        "needs at least 151643 x 8 bytes"});
    // Enough bytes for the count, but over the limit on values that sluice will hold.
    Bytes many;
    many.header(3, 0, 1).str("k").u32(kArray).u32(kU8).u64(File::kMaxValues + 1).zeros(File::kMaxValues + 1);
    expect_error("arr_many.gguf", many, {"metadata key #0 'k': more than 16777216 metadata values"});
}

TEST(GgufCorrupt, HugeCounts) {
    Bytes kv;
    kv.header(3, 0, 1ull << 62).zeros(64);
    expect_error("n_kv.gguf", kv, {"header claims 0 tensors and 4611686018427387904 metadata entries",
                                   "more than the remaining 64 bytes could hold"});
    Bytes t;
    t.header(3, ~0ull, 0).zeros(64);
    expect_error("n_tensors.gguf", t, {"header claims 18446744073709551615 tensors"});
    Bytes both;  // each count fits on its own, not both together: the cut is found while reading
    both.header(3, 2, 2).str("a").u32(kU8).u8(1).str("b").u32(kU8).u8(1).tensor("w", {4}, kF32, 0).zeros(10);
    expect_error("n_both.gguf", both, {"truncated while reading tensor info #1"});
}

TEST(GgufCorrupt, NestedArrayDepthBomb) {
    for (int depth : {9, 100000}) {
        Bytes b;
        b.header(3, 0, 1).str("bomb").u32(kArray);
        for (int d = 0; d < depth; ++d) b.u32(kArray).u64(1);
        b.u32(kU8).u64(0);
        expect_error("bomb.gguf", b, {"metadata key #0 'bomb': arrays nested more than 8 deep"});
    }
    Bytes ok;  // 8 levels are fine
    ok.header(3, 0, 1).str("deep").u32(kArray);
    for (int d = 0; d < 7; ++d) ok.u32(kArray).u64(1);
    ok.u32(kU8).u64(1).u8(42);
    EXPECT_EQ(error_for("deep.gguf", ok), "");
}

TEST(GgufCorrupt, UnknownValueTypes) {
    Bytes b;
    b.header(3, 0, 1).str("k").u32(13).u32(0);
    expect_error("vtype.gguf", b, {"metadata key #0 'k': value type 13 is unknown (expected 0..12)"});
    Bytes a;
    a.header(3, 0, 1).str("k").u32(kArray).u32(0xdeadbeef).u64(0);
    expect_error("etype.gguf", a, {"metadata key #0 'k': array element type 3735928559 is unknown"});
    Bytes bo;
    bo.header(3, 0, 1).str("flag").u32(kBool).u8(2);
    expect_error("bool.gguf", bo, {"metadata key #0 'flag': bool byte at offset 40 is 2; expected 0 or 1"});
    Bytes empty;
    empty.header(3, 0, 1).str("").u32(kU8).u8(2).zeros(8);
    expect_error("emptykey.gguf", empty, {"metadata key #0: empty key"});
}

TEST(GgufCorrupt, NamesInMessagesAreEscaped) {
    // A hostile name must not put newlines or terminal escapes into the one-line message.
    Bytes b;
    b.header(3, 0, 2).kv_u32("a\n\x1b[2J'", 1).kv_u32("a\n\x1b[2J'", 2);
    expect_error("escape.gguf", b, {"duplicate metadata key 'a\\x0a\\x1b[2J\\x27'"});
}

TEST(GgufCorrupt, DuplicateKeyAndTensorName) {
    Bytes k;
    k.header(3, 0, 3).kv_u32("a", 1).kv_u32("b", 2).kv_str("a", "x");
    expect_error("dupkey.gguf", k, {"duplicate metadata key 'a' (#0 and #2)"});
    Bytes t;
    t.header(3, 2, 0).tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32).pad_to(32).zeros(64);
    expect_error("dupname.gguf", t, {"duplicate tensor name 'w' (tensor infos #0 and #1)"});
}

TEST(GgufCorrupt, TensorShapes) {
    expect_error("type.gguf", one_tensor_file(0, {4}, 99), {"tensor 'w': type id 99 is unknown"});
    expect_error("type4.gguf", one_tensor_file(0, {4}, 4), {"tensor 'w': type id 4 is unknown"});
    expect_error("ndims.gguf", one_tensor_file(0, {1, 1, 1, 1, 1}), {"tensor 'w': 5 dimensions; expected at most 4"});
    expect_error("negdim.gguf", one_tensor_file(0, {4, -2}), {"tensor 'w': dimension 1 is -2; expected >= 0"});
    expect_error("overflow.gguf", one_tensor_file(0, {1LL << 32, 1LL << 32}),
                 {"tensor 'w': shape (4294967296, 4294967296) has more than 2^63-1 elements"});
    expect_error("overflow4.gguf", one_tensor_file(0, {INT64_MAX, 1, 1, 2}), {"has more than 2^63-1 elements"});
    expect_error("bytes.gguf", one_tensor_file(0, {1LL << 62}),
                 {"tensor 'w': shape (4611686018427387904) of type f32 needs more than 2^64 bytes"});
    expect_error("block.gguf", one_tensor_file(0, {33}, kQ8_0),
                 {"tensor 'w': rows of 33 elements are not a multiple of q8_0's block size 32"});
    expect_error("huge.gguf", one_tensor_file(0, {1LL << 40}),
                 {"tensor 'w': data ends at byte 4398046511168 but the file has 80 bytes"});
}

TEST(GgufCorrupt, ZeroSizedTensorsAreAccepted) {
    // As in llama.cpp: n_dims 0 (a scalar) and a 0-sized dimension are valid; the latter has no bytes.
    Bytes b;
    b.header(3, 2, 0).tensor("scalar", {}, kF32, 0).tensor("none", {0, 3}, kF32, 0).pad_to(32).zeros(32);
    std::string path = scratch("zero.gguf");
    write_file(path, b.b);
    auto f = File::open(path);
    EXPECT_EQ(f->tensors()[0].nbytes, 4u);
    EXPECT_EQ(f->tensors()[0].n_dims, 0u);
    EXPECT_EQ(f->tensors()[1].nbytes, 0u);
    EXPECT_EQ(f->tensors()[1].n_elements(), 0);
}

TEST(GgufCorrupt, TensorOffsets) {
    expect_error("unaligned.gguf", one_tensor_file(16),
                 {"tensor 'w': offset 16 in the data section is not a multiple of the alignment 32"});
    expect_error("past_eof.gguf", one_tensor_file(32),
                 {"tensor 'w': data ends at byte 112 but the file has 80 bytes"});
    expect_error("wrap.gguf", one_tensor_file(~0ull - 31), {"tensor 'w': data at offset 18446744073709551584",
                                                           "lies past 2^64"});
    Bytes cut = one_tensor_file(0);
    cut.b.resize(cut.b.size() - 1);
    expect_error("cut_data.gguf", cut, {"tensor 'w': data ends at byte 80 but the file has 79 bytes"});
    Bytes overlap;
    overlap.header(3, 2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad_to(32).zeros(64);
    expect_error("overlap.gguf", overlap, {"tensors 'a' (bytes 96..160) and 'b' (bytes 128..160) overlap"});
}

TEST(GgufCorrupt, Alignment) {
    auto with_alignment = [](auto add_kv) {
        Bytes b;
        b.header(3, 1, 1);
        add_kv(b);
        return b.tensor("w", {4}, kF32, 0).pad_to(32).zeros(16);
    };
    expect_error("align0.gguf", with_alignment([](Bytes& b) { b.kv_u32("general.alignment", 0); }),
                 {"general.alignment is 0; expected a nonzero power of two"});
    expect_error("align48.gguf", with_alignment([](Bytes& b) { b.kv_u32("general.alignment", 48); }),
                 {"general.alignment is 48; expected a nonzero power of two"});
    expect_error("align_str.gguf", with_alignment([](Bytes& b) { b.kv_str("general.alignment", "32"); }),
                 {"general.alignment is a string; expected a uint32"});
    expect_error("align_u64.gguf",
                 with_alignment([](Bytes& b) { b.str("general.alignment").u32(kU64).u64(32); }),
                 {"general.alignment is a uint64; expected a uint32"});
    // A valid non-default alignment moves the data section.
    Bytes b;
    b.header(3, 1, 1).kv_u32("general.alignment", 256).tensor("w", {4}, kF32, 0).pad_to(256).zeros(16);
    std::string path = scratch("align256.gguf");
    write_file(path, b.b);
    auto f = File::open(path);
    EXPECT_EQ(f->alignment(), 256u);
    EXPECT_EQ(f->data_offset(), 256u);
    EXPECT_EQ(f->tensors()[0].offset, 256u);
}

// Random byte changes in a valid header: each open either succeeds or throws an Error; never a
// crash, a hang or a huge allocation (run under valgrind / sanitizers to see the rest).
TEST(GgufCorrupt, RandomMutationsNeverCrash) {
    std::string src = scratch("mut_src.gguf");
    {
        Writer w(src);
        w.set_str("general.architecture", "qwen3moe");
        w.set_str_array("tokenizer.ggml.tokens", {"a", "bc", "def"});
        w.set("nested", {ValueType::ARRAY, Array{ValueType::ARRAY, {{ValueType::ARRAY,
                          Array{ValueType::INT8, {{ValueType::INT8, int64_t(-1)}}}}}}});
        w.add_tensor("a", GgmlType::F32, {8, 2});
        w.add_tensor("b", GgmlType::Q8_0, {32});
        w.begin_data();
        std::vector<uint8_t> zero(64);
        w.write_data(zero.data(), 64);
        w.write_data(zero.data(), 34);
        w.finish();
    }
    const std::vector<uint8_t> good = read_all(src);
    const size_t header_end = File::open(src)->data_offset();
    std::mt19937 rng(1234);
    std::string path = scratch("mut.gguf");
    int opened = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::vector<uint8_t> b = good;
        int changes = 1 + int(rng() % 4);
        for (int k = 0; k < changes; ++k) {
            size_t at = rng() % header_end;
            switch (rng() % 3) {
                case 0: b[at] = uint8_t(rng()); break;          // any byte
                case 1: b[at] ^= uint8_t(1u << (rng() % 8)); break;  // one bit
                case 2: b[at] = (rng() & 1) ? 0xff : 0x00; break;  // extremes of a length/count
            }
        }
        write_file(path, b);
        std::string msg = open_error(path);
        if (msg.empty()) ++opened;
        else EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_LT(opened, 3000);  // most changes are caught
}
