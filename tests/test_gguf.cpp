// GGUF writer -> reader round trips, typed getters, writer misuse, and a file from llama.cpp's own
// Python writer (gguf-py). Corrupt and hostile files are in test_gguf_corrupt.cpp.
#include <cmath>
#include <limits>
#include <random>

#include "tests/gguf_test_util.h"

using namespace gguf_test;
using sluice::Error;
using sluice::GgmlType;

namespace {

Value u(ValueType t, uint64_t x) { return {t, x}; }
Value i(ValueType t, int64_t x) { return {t, x}; }
Value f(ValueType t, double x) { return {t, x}; }
Value s(std::string x) { return {ValueType::STRING, std::move(x)}; }
Value arr(ValueType et, std::vector<Value> items) { return {ValueType::ARRAY, Array{et, std::move(items)}}; }

// Values as the reader returns them: file type + widened alternative; floats compared bitwise.
void expect_same(const Value& a, const Value& b, const std::string& where) {
    ASSERT_EQ(a.type, b.type) << where;
    ASSERT_EQ(a.v.index(), b.v.index()) << where;
    if (auto* x = std::get_if<Array>(&a.v)) {
        const Array& y = std::get<Array>(b.v);
        ASSERT_EQ(x->type, y.type) << where;
        ASSERT_EQ(x->items.size(), y.items.size()) << where;
        for (size_t k = 0; k < x->items.size(); ++k)
            expect_same(x->items[k], y.items[k], where + "[" + std::to_string(k) + "]");
    } else if (auto* d = std::get_if<double>(&a.v)) {
        double e = std::get<double>(b.v);
        EXPECT_EQ(std::memcmp(d, &e, 8), 0) << where << ": " << *d << " vs " << e;
    } else {
        EXPECT_EQ(describe(a, 1000), describe(b, 1000)) << where;
    }
}

std::vector<std::pair<std::string, Value>> every_value_type() {
    using VT = ValueType;
    return {
        {"t.u8", u(VT::UINT8, 255)},
        {"t.i8", i(VT::INT8, -128)},
        {"t.u16", u(VT::UINT16, 65535)},
        {"t.i16", i(VT::INT16, -32768)},
        {"t.u32", u(VT::UINT32, 4000000000u)},
        {"t.i32", i(VT::INT32, -2000000000)},
        {"t.f32", f(VT::FLOAT32, double(1e-6f))},
        {"t.bool_true", {VT::BOOL, true}},
        {"t.bool_false", {VT::BOOL, false}},
        {"t.str", s("qwen3moe \xe2\x9c\x93 \"quoted\"\n")},
        {"t.str_empty", s("")},
        {"t.u64", u(VT::UINT64, std::numeric_limits<uint64_t>::max())},
        {"t.i64", i(VT::INT64, std::numeric_limits<int64_t>::min())},
        {"t.f64", f(VT::FLOAT64, -1.0 / 3.0)},
        {"t.f32_inf", f(VT::FLOAT32, -INFINITY)},
        {"t.arr_empty_i32", arr(VT::INT32, {})},
        {"t.arr_empty_str", arr(VT::STRING, {})},
        {"t.arr_u8", arr(VT::UINT8, {u(VT::UINT8, 0), u(VT::UINT8, 7), u(VT::UINT8, 255)})},
        {"t.arr_i64", arr(VT::INT64, {i(VT::INT64, -1), i(VT::INT64, 1LL << 40)})},
        {"t.arr_f32", arr(VT::FLOAT32, {f(VT::FLOAT32, 0.5), f(VT::FLOAT32, -2.25)})},
        {"t.arr_f64", arr(VT::FLOAT64, {f(VT::FLOAT64, 1e300)})},
        {"t.arr_bool", arr(VT::BOOL, {{VT::BOOL, true}, {VT::BOOL, false}})},
        {"t.arr_str", arr(VT::STRING, {s("a"), s(""), s("<|im_start|>")})},
        {"t.arr_nested", arr(VT::ARRAY, {arr(VT::INT32, {i(VT::INT32, 1), i(VT::INT32, 2)}),
                                         arr(VT::INT32, {}),
                                         arr(VT::STRING, {s("x")})})},
        {"t.arr_deep", arr(VT::ARRAY, {arr(VT::ARRAY, {arr(VT::UINT16, {u(VT::UINT16, 9)})})})},
    };
}

struct TensorSpec {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
};

std::vector<TensorSpec> some_tensors() {
    std::mt19937 rng(42);
    auto bytes = [&](GgmlType t, std::vector<int64_t> ne) {
        int64_t n = 1;
        for (int64_t x : ne) n *= x;
        const auto& ti = sluice::type_info(t);
        std::vector<uint8_t> d(size_t(n / ti.block_size * ti.type_size));
        for (auto& b : d) b = uint8_t(rng());
        return TensorSpec{"", t, ne, d};
    };
    std::vector<TensorSpec> ts = {
        bytes(GgmlType::F32, {4, 3}),            bytes(GgmlType::F16, {7}),
        bytes(GgmlType::Q8_0, {64, 2}),          bytes(GgmlType::Q4_K, {256, 1, 3}),
        bytes(GgmlType::BF16, {3, 1, 2, 2}),     bytes(GgmlType::I32, {0, 5}),
        bytes(GgmlType::MXFP4, {32, 2, 2}),
    };
    const char* names[] = {"token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight",
                           "blk.0.ffn_up_exps.weight", "blk.0.bf16", "empty", "blk.0.mxfp4"};
    for (size_t k = 0; k < ts.size(); ++k) ts[k].name = names[k];
    return ts;
}

void write_model(const std::string& path, uint64_t alignment,
                 const std::vector<std::pair<std::string, Value>>& kv,
                 const std::vector<TensorSpec>& ts) {
    Writer w(path, alignment);
    for (const auto& [k, v] : kv) w.set(k, v);
    for (const TensorSpec& t : ts) w.add_tensor(t.name, t.type, t.ne);
    w.begin_data();
    for (const TensorSpec& t : ts) {  // uneven chunks, to exercise partial writes
        size_t pos = 0, step = 1;
        while (pos < t.data.size()) {
            size_t n = std::min(step, t.data.size() - pos);
            w.write_data(t.data.data() + pos, n);
            pos += n;
            step = step * 3 + 1;
        }
    }
    w.finish();
}

}  // namespace

class RoundTrip : public ::testing::TestWithParam<uint64_t> {};

TEST_P(RoundTrip, EverythingComesBack) {
    const uint64_t alignment = GetParam();
    const std::string path = scratch("roundtrip_" + std::to_string(alignment) + ".gguf");
    auto kv = every_value_type();
    auto ts = some_tensors();
    write_model(path, alignment, kv, ts);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

    auto file = File::open(path);
    EXPECT_EQ(file->version(), 3u);
    EXPECT_EQ(file->alignment(), alignment);
    EXPECT_EQ(file->data_offset() % alignment, 0u);

    // general.alignment is written only when it differs from the default, and comes first.
    size_t skip = 0;
    if (alignment != 32) {
        ASSERT_EQ(file->metadata()[0].first, "general.alignment");
        EXPECT_EQ(file->get_uint("general.alignment"), alignment);
        skip = 1;
    } else {
        EXPECT_EQ(file->find("general.alignment"), nullptr);
    }
    ASSERT_EQ(file->metadata().size(), kv.size() + skip);
    for (size_t k = 0; k < kv.size(); ++k) {
        EXPECT_EQ(file->metadata()[k + skip].first, kv[k].first);
        expect_same(file->metadata()[k + skip].second, kv[k].second, kv[k].first);
    }

    ASSERT_EQ(file->tensors().size(), ts.size());
    uint64_t expect_offset = file->data_offset();
    for (size_t k = 0; k < ts.size(); ++k) {
        const TensorInfo& t = file->tensors()[k];
        SCOPED_TRACE(t.name);
        EXPECT_EQ(t.name, ts[k].name);
        EXPECT_EQ(t.type, ts[k].type);
        EXPECT_EQ(t.n_dims, ts[k].ne.size());
        for (size_t d = 0; d < 4; ++d) EXPECT_EQ(t.ne[d], d < ts[k].ne.size() ? ts[k].ne[d] : 1);
        EXPECT_EQ(t.nbytes, ts[k].data.size());
        EXPECT_EQ(t.offset, expect_offset);  // packed in declaration order, each padded
        EXPECT_EQ(t.offset % alignment, 0u);
        if (t.nbytes > 0) {
            EXPECT_EQ(std::memcmp(file->data(t), ts[k].data.data(), t.nbytes), 0);
        }
        EXPECT_EQ(file->find_tensor(t.name), &t);
        expect_offset += (t.nbytes + alignment - 1) / alignment * alignment;
    }
    EXPECT_EQ(file->file_size(), expect_offset);
}

INSTANTIATE_TEST_SUITE_P(Alignments, RoundTrip, ::testing::Values(32, 64, 1, 4096));

TEST(GgufWriter, EmptyFileHasHeaderOnly) {
    const std::string path = scratch("empty_model.gguf");
    { Writer w(path); w.finish(); }
    auto file = File::open(path);
    EXPECT_TRUE(file->metadata().empty());
    EXPECT_TRUE(file->tensors().empty());
    EXPECT_EQ(file->file_size(), 32u);  // 24 bytes of header padded to 32
}

TEST(GgufWriter, SetReplacesAndKeepsPosition) {
    const std::string path = scratch("replace.gguf");
    {
        Writer w(path);
        w.set_u32("a", 1);
        w.set_str("b", "x");
        w.set_f32("a", 2.5f);
        w.set_i32_array("c", {1, -2});
        w.set_f32_array("d", {0.25f});
        w.set_str_array("e", {"p", "q"});
        w.set_bool("g", true);
        w.set_u64("h", 1ull << 50);
        w.set_i32("i", -7);
        w.finish();
    }
    auto file = File::open(path);
    ASSERT_EQ(file->metadata().size(), 8u);
    EXPECT_EQ(file->metadata()[0].first, "a");
    EXPECT_EQ(file->get_float("a"), 2.5);
    EXPECT_EQ(file->get_int_array("c"), (std::vector<int64_t>{1, -2}));
    EXPECT_EQ(file->get_float_array("d"), (std::vector<double>{0.25}));
    EXPECT_EQ(file->get_string_array("e"), (std::vector<std::string>{"p", "q"}));
    EXPECT_TRUE(file->get_bool("g"));
    EXPECT_EQ(file->get_uint("h"), 1ull << 50);
    EXPECT_EQ(file->get_int("i"), -7);
}

// ---- getters ----------------------------------------------------------------------------------------

class Getters : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        path_ = scratch("m.gguf");
        auto kv = every_value_type();
        kv.push_back({"qwen3moe.block_count", s("48")});
        kv.push_back({"neg", i(ValueType::INT32, -3)});
        write_model(path_, 32, kv, some_tensors());
    }
    void SetUp() override { file = File::open(path_); }
    template <class F>
    std::string error(F fn) {
        try {
            fn();
        } catch (const Error& e) {
            return e.what();
        }
        return "(no error)";
    }
    static inline std::string path_;
    std::unique_ptr<File> file;
};

TEST_F(Getters, TypedValues) {
    EXPECT_EQ(file->get_uint("t.u8"), 255u);
    EXPECT_EQ(file->get_uint("t.u64"), std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(file->get_int("t.i8"), -128);
    EXPECT_EQ(file->get_int("t.u32"), 4000000000LL);  // an unsigned type whose value fits int64
    EXPECT_EQ(file->get_int("t.i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(file->get_float("t.f64"), -1.0 / 3.0);
    EXPECT_EQ(file->get_float("t.f32"), double(1e-6f));
    EXPECT_EQ(file->get_float("t.i16"), -32768.0);  // integers are numbers too
    EXPECT_TRUE(file->get_bool("t.bool_true"));
    EXPECT_FALSE(file->get_bool("t.bool_false"));
    EXPECT_EQ(file->get_string("t.str_empty"), "");
    EXPECT_EQ(file->get_array("t.arr_nested").items.size(), 3u);
    EXPECT_EQ(file->get_string_array("t.arr_str"), (std::vector<std::string>{"a", "", "<|im_start|>"}));
    EXPECT_EQ(file->get_int_array("t.arr_u8"), (std::vector<int64_t>{0, 7, 255}));
    EXPECT_EQ(file->get_float_array("t.arr_f32"), (std::vector<double>{0.5, -2.25}));
    EXPECT_EQ(file->get_float_array("t.arr_i64"), (std::vector<double>{-1, double(1LL << 40)}));
    EXPECT_TRUE(file->get_int_array("t.arr_empty_i32").empty());
}

TEST_F(Getters, Defaults) {
    EXPECT_EQ(file->get_uint_or("absent", 7), 7u);
    EXPECT_EQ(file->get_uint_or("t.u16", 7), 65535u);
    EXPECT_EQ(file->get_float_or("absent", 1.5), 1.5);
    EXPECT_TRUE(file->get_bool_or("absent", true));
    EXPECT_EQ(file->get_string_or("absent", "d"), "d");
    EXPECT_EQ(file->get_string_or("t.str_empty", "d"), "");
    // Present with the wrong type is still an error.
    EXPECT_HAS(error([&] { file->get_uint_or("t.str", 1); }), "is a string; expected an integer");
}

TEST_F(Getters, MissingKeyNamesFileAndKey) {
    EXPECT_HAS(error([&] { file->get_uint("qwen3moe.expert_count"); }),
                "m.gguf: missing required key 'qwen3moe.expert_count'");
    EXPECT_HAS(error([&] { file->get_string_array("tokenizer.ggml.tokens"); }),
                "missing required key 'tokenizer.ggml.tokens'");
}

TEST_F(Getters, WrongTypeNamesKeyFileAndFoundType) {
    EXPECT_HAS(error([&] { file->get_uint("qwen3moe.block_count"); }),
                "key 'qwen3moe.block_count' in " + path_ + " is a string; expected an integer");
    EXPECT_HAS(error([&] { file->get_int("t.f32"); }), "is a float32; expected an integer");
    EXPECT_HAS(error([&] { file->get_uint("neg"); }),
                "key 'neg' in " + path_ + " is -3 (int32); expected a non-negative integer");
    EXPECT_HAS(error([&] { file->get_int("t.u64"); }),
                "is 18446744073709551615 (uint64); expected an integer that fits int64");
    EXPECT_HAS(error([&] { file->get_float("t.str"); }), "is a string; expected a number");
    EXPECT_HAS(error([&] { file->get_bool("t.u8"); }), "is a uint8; expected a bool");
    EXPECT_HAS(error([&] { file->get_string("t.arr_str"); }),
                "is an array of 3 strings; expected a string");
    EXPECT_HAS(error([&] { file->get_array("t.i32"); }), "is an int32; expected an array");
    EXPECT_HAS(error([&] { file->get_string_array("t.arr_u8"); }),
                "key 't.arr_u8' in " + path_ + " is an array of 3 uint8; expected an array of strings");
    EXPECT_HAS(error([&] { file->get_int_array("t.arr_str"); }),
                "is an array of 3 strings; expected an array of integers");
    EXPECT_HAS(error([&] { file->get_float_array("t.arr_nested"); }),
                "is an array of 3 arrays; expected an array of numbers");
}

TEST_F(Getters, RequireTensor) {
    const TensorInfo& t = file->require_tensor("blk.0.ffn_up_exps.weight", {256, 1, 3});
    EXPECT_EQ(t.type, GgmlType::Q4_K);
    file->require_tensor("token_embd.weight", {4, 3, 1});  // trailing 1s ignored
    file->require_tensor("output_norm.weight", {7, 1});
    EXPECT_HAS(error([&] { file->require_tensor("blk.0.ffn_up_exps.weight", {256, 1, 4}); }),
                "tensor 'blk.0.ffn_up_exps.weight' in " + path_ +
                          " has shape (256, 1, 3); expected (256, 1, 4)");
    EXPECT_HAS(error([&] { file->require_tensor("token_embd.weight", {4}); }),
                "has shape (4, 3); expected (4)");
    EXPECT_HAS(error([&] { file->require_tensor("blk.3.ffn_up_exps.weight", {1}); }),
                path_ + ": missing tensor 'blk.3.ffn_up_exps.weight'");
}

TEST(GgufDescribe, Values) {
    EXPECT_EQ(describe(u(ValueType::UINT32, 42)), "42");
    EXPECT_EQ(describe(i(ValueType::INT8, -1)), "-1");
    EXPECT_EQ(describe(f(ValueType::FLOAT32, 0.5)), "0.5");
    EXPECT_EQ(describe({ValueType::BOOL, true}), "true");
    EXPECT_EQ(describe(s("a\"b\n")), "\"a\\\"b\\n\"");
    Value big = arr(ValueType::INT32, {});
    for (int k = 0; k < 20; ++k) std::get<Array>(big.v).items.push_back(i(ValueType::INT32, k));
    EXPECT_EQ(describe(big, 3), "[0, 1, 2, ... (20 items)]");
    EXPECT_EQ(describe(arr(ValueType::ARRAY, {arr(ValueType::STRING, {s("x")})})), "[[\"x\"]]");
    EXPECT_EQ(describe_type(big), "an array of 20 int32");
    EXPECT_EQ(describe_type(u(ValueType::UINT64, 1)), "a uint64");
    EXPECT_EQ(describe_type(i(ValueType::INT64, 1)), "an int64");
}

// ---- writer misuse ----------------------------------------------------------------------------------

namespace {
template <class F>
std::string writer_error(F fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST(GgufWriter, RejectsBadTensors) {
    const std::string path = scratch("bad_tensors.gguf");
    Writer w(path);
    w.add_tensor("a", GgmlType::F32, {4});
    EXPECT_HAS(writer_error([&] { w.add_tensor("a", GgmlType::F32, {4}); }),
                "duplicate tensor name 'a'");
    EXPECT_HAS(writer_error([&] { w.add_tensor("q", GgmlType::Q8_0, {33, 2}); }),
                "tensor 'q': rows of 33 elements are not a multiple of q8_0's block size 32");
    EXPECT_HAS(writer_error([&] { w.add_tensor("k", GgmlType::Q4_K, {128}); }),
                "not a multiple of q4_K's block size 256");
    EXPECT_HAS(writer_error([&] { w.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}); }),
                "tensor 'five': 5 dimensions; expected 1 to 4");
    EXPECT_HAS(writer_error([&] { w.add_tensor("neg", GgmlType::F32, {4, -1}); }),
                "dimension 1 is -1; expected >= 0");
    EXPECT_HAS(writer_error([&] { w.add_tensor("huge", GgmlType::F32, {1LL << 40, 1LL << 40}); }),
                "more than 2^63-1 elements");
    EXPECT_HAS(writer_error([&] { w.add_tensor("t", GgmlType(99), {4}); }),
                "type id 99 is unknown");
}

TEST(GgufWriter, RejectsWrongByteCounts) {
    const std::string path = scratch("bad_bytes.gguf");
    std::filesystem::remove(path);
    Writer w(path);
    w.add_tensor("a", GgmlType::F32, {4});   // 16 bytes
    w.add_tensor("b", GgmlType::F16, {4});   // 8 bytes
    EXPECT_HAS(writer_error([&] { w.write_data("x", 1); }), "write_data() before begin_data()");
    w.begin_data();
    EXPECT_HAS(writer_error([&] { w.set_u32("late", 1); }), "set() after begin_data()");
    EXPECT_HAS(writer_error([&] { w.add_tensor("late", GgmlType::F32, {1}); }),
                "add_tensor() after begin_data()");
    uint8_t buf[32] = {};
    EXPECT_HAS(writer_error([&] { w.write_data(buf, 17); }),
                "tensor 'a': write_data() of 17 bytes, but only 16 of its 16 bytes are left");
    w.write_data(buf, 10);
    // A call may not run on into the next tensor.
    EXPECT_HAS(writer_error([&] { w.write_data(buf, 7); }), "only 6 of its 16 bytes are left");
    w.write_data(buf, 6);
    w.write_data(buf, 3);
    EXPECT_HAS(writer_error([&] { w.finish(); }),
                "finish(): tensor 'b' has 3 of its 8 bytes");
    EXPECT_FALSE(std::filesystem::exists(path));
    w.write_data(buf, 5);
    EXPECT_HAS(writer_error([&] { w.write_data(buf, 1); }),
                "1 bytes after all 2 tensors are complete");
    w.finish();
    EXPECT_TRUE(std::filesystem::exists(path));
    EXPECT_HAS(writer_error([&] { w.write_data(buf, 1); }), "write_data() after finish()");
    EXPECT_HAS(writer_error([&] { w.finish(); }), "finish() after finish()");
    EXPECT_EQ(File::open(path)->tensors().size(), 2u);
}

TEST(GgufWriter, RejectsBadValues) {
    Writer w(scratch("bad_values.gguf"));
    EXPECT_HAS(writer_error([&] { w.set("k", u(ValueType::UINT8, 256)); }),
                "key 'k': value 256 does not fit uint8");
    EXPECT_HAS(writer_error([&] { w.set("k", i(ValueType::INT8, -129)); }), "does not fit int8");
    EXPECT_HAS(writer_error([&] { w.set("k", s("x")); w.set("k", {ValueType::UINT32, std::string("x")}); }),
                "type uint32 but it holds no integer");
    EXPECT_HAS(writer_error([&] { w.set("k", arr(ValueType::INT32, {u(ValueType::UINT32, 1)})); }),
                "element 0 is uint32 in an array of int32");
    EXPECT_HAS(writer_error([&] { w.set("", s("x")); }), "metadata key is empty");
    EXPECT_HAS(writer_error([&] { w.set_u32("general.alignment", 64); }),
                "key 'general.alignment' must be the uint32 32 given to the Writer; got 64");
    Value deep = arr(ValueType::INT32, {});
    for (int k = 0; k < 10; ++k) deep = arr(ValueType::ARRAY, {deep});
    EXPECT_HAS(writer_error([&] { w.set("deep", deep); }), "nested more than 8 deep");
    EXPECT_HAS(writer_error([&] { Writer bad(scratch("bad_align.gguf"), 48); }),
                "alignment 48 is not a power of two");
}

TEST(GgufWriter, UnfinishedFileIsRemoved) {
    const std::string path = scratch("unfinished.gguf");
    std::filesystem::remove(path);
    {
        Writer w(path);
        w.add_tensor("a", GgmlType::F32, {4});
        w.begin_data();
        EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
        EXPECT_FALSE(std::filesystem::exists(path));
    }
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    EXPECT_FALSE(std::filesystem::exists(path));
    EXPECT_HAS(writer_error([&] { Writer w("/nonexistent-dir/x.gguf"); }),
                "cannot create '/nonexistent-dir/x.gguf.tmp': No such file or directory");
}

TEST(GgufWriter, HeaderOnlyFileHasFullSizeAndZeroData) {
    const std::string path = scratch("header_only.gguf");
    {
        Writer w(path);
        w.set_u32("n", 3);
        w.add_tensor("a", GgmlType::F32, {5});
        w.add_tensor("b", GgmlType::Q8_0, {64, 1000});
        w.finish_header_only();
    }
    auto file = File::open(path);  // offsets and sizes check out against the file's length
    const TensorInfo& b = file->require_tensor("b", {64, 1000});
    EXPECT_EQ(file->file_size(), b.offset + b.nbytes);
    EXPECT_EQ(file->data(b)[b.nbytes - 1], 0);
    EXPECT_HAS(writer_error([&] {
                   Writer w(scratch("header_only_bad.gguf"));
                   w.add_tensor("a", GgmlType::F32, {2});
                   w.begin_data();
                   const float x = 1.0f;
                   w.write_data(&x, 4);
                   w.finish_header_only();
               }),
               "finish_header_only(): tensor data was already written");
}

// ---- a file from llama.cpp's Python writer (tests/fixtures/gguf/make_pywriter.py) ------------------

TEST(GgufPyWriter, ReadsEverything) {
    const std::string path = std::string(SLUICE_FIXTURES) + "/gguf/pywriter.gguf";
    auto file = File::open(path);
    EXPECT_EQ(file->version(), 3u);
    EXPECT_EQ(file->alignment(), 64u);
    EXPECT_EQ(file->get_string("general.architecture"), "qwen3moe");
    EXPECT_EQ(file->get_uint("qwen3moe.block_count"), 2u);
    EXPECT_EQ(file->find("qwen3moe.block_count")->type, ValueType::UINT32);
    EXPECT_EQ(file->get_uint("qwen3moe.expert_count"), 8u);
    EXPECT_EQ(file->get_float("qwen3moe.attention.layer_norm_rms_epsilon"), double(1e-6f));
    EXPECT_EQ(file->get_float("qwen3moe.rope.freq_base"), 1e6);
    EXPECT_EQ(file->get_string_array("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "<|im_end|>"}));
    EXPECT_EQ(file->get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 1, 3}));
    EXPECT_EQ(file->get_float_array("tokenizer.ggml.scores"), (std::vector<double>{0, -1.5, 2.25}));
    EXPECT_EQ(file->find("test.u8")->type, ValueType::UINT8);
    EXPECT_EQ(file->get_uint("test.u8"), 200u);
    EXPECT_EQ(file->get_int("test.i8"), -100);
    EXPECT_EQ(file->get_uint("test.u16"), 60000u);
    EXPECT_EQ(file->get_int("test.i16"), -30000);
    EXPECT_EQ(file->get_int("test.i32"), -7);
    EXPECT_EQ(file->get_uint("test.u64"), (1ull << 63) + 5);
    EXPECT_EQ(file->get_int("test.i64"), -(1LL << 40));
    EXPECT_EQ(file->get_float("test.f64"), 0.1);
    EXPECT_TRUE(file->get_bool("test.bool"));
    EXPECT_EQ(file->get_string("test.unicode"), "h\xc3\xa9llo \xe2\x9c\x93");
    EXPECT_EQ(describe(*file->find("test.nested")), "[[1, 2], [\"x\", \"y\"], [[true]]]");

    const TensorInfo& f32 = file->require_tensor("f32", {4, 2});
    EXPECT_EQ(f32.type, GgmlType::F32);
    float row[8];
    std::memcpy(row, file->data(f32), sizeof row);
    for (int k = 0; k < 8; ++k) EXPECT_EQ(row[k], float(k));
    const TensorInfo& f16 = file->require_tensor("f16", {3});
    uint16_t h[3];
    std::memcpy(h, file->data(f16), sizeof h);
    EXPECT_EQ(sluice::fp16_to_f32(h[0]), 1.0f);
    EXPECT_EQ(sluice::fp16_to_f32(h[1]), -2.0f);
    const TensorInfo& q8 = file->require_tensor("q8_0", {32, 2});  // byte shape (2, 34) -> 2 blocks
    EXPECT_EQ(q8.type, GgmlType::Q8_0);
    ASSERT_EQ(q8.nbytes, 68u);
    for (int k = 0; k < 68; ++k) EXPECT_EQ(file->data(q8)[k], k);
    const TensorInfo& i32 = file->require_tensor("i32", {3});
    int32_t iv[3];
    std::memcpy(iv, file->data(i32), sizeof iv);
    EXPECT_EQ(iv[1], -6);
    for (const TensorInfo& t : file->tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
}

TEST(GgufPyWriter, BigEndianFileIsRefused) {
    const std::string path = std::string(SLUICE_FIXTURES) + "/gguf/pywriter_be.gguf";
    EXPECT_HAS(open_error(path), path + ": big-endian GGUF (version 3 byte-swapped); only little-endian");
}

// Copying the Python writer's file through our writer keeps every value, shape and byte.
TEST(GgufPyWriter, CopyThroughOurWriter) {
    auto src = File::open(std::string(SLUICE_FIXTURES) + "/gguf/pywriter.gguf");
    const std::string path = scratch("pycopy.gguf");
    {
        Writer w(path, src->alignment());
        for (const auto& [k, v] : src->metadata()) w.set(k, v);
        for (const TensorInfo& t : src->tensors())
            w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims));
        w.begin_data();
        for (const TensorInfo& t : src->tensors()) w.write_data(src->data(t), t.nbytes);
        w.finish();
    }
    auto copy = File::open(path);
    ASSERT_EQ(copy->metadata().size(), src->metadata().size());
    for (const auto& [k, v] : src->metadata()) expect_same(*copy->find(k), v, k);
    ASSERT_EQ(copy->tensors().size(), src->tensors().size());
    for (const TensorInfo& t : src->tensors()) {
        const TensorInfo* c = copy->find_tensor(t.name);
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(shape_string(*c), shape_string(t));
        EXPECT_EQ(c->offset - copy->data_offset(), t.offset - src->data_offset()) << t.name;
        EXPECT_EQ(std::memcmp(copy->data(*c), src->data(t), t.nbytes), 0);
    }
    // Same layout rules as gguf-py: the data sections are byte-identical.
    auto a = read_all(path), b = read_all(src->path());
    EXPECT_EQ(std::vector<uint8_t>(a.begin() + copy->data_offset(), a.end()),
              std::vector<uint8_t>(b.begin() + src->data_offset(), b.end()));
}
